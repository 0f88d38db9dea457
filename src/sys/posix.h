// The two things every POSIX wrapper needs, written once (leveldb's util/env_posix.cc:
// PosixError and its file classes that own their fd): an owned file descriptor, and the one
// way an errno becomes text.
#pragma once

#include <string>
#include <string_view>

namespace einhorn::sys {

// Owns one file descriptor (or none: -1) and closes it when destroyed or reset. Move-only:
// exactly one owner at a time; release() hands the fd back to the caller, who then owns it.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept;
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // The fd, no longer owned: it stays open.
  int release();
  // Closes the fd held (if any) and owns `fd` instead.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Writes all of `data`, retrying on EINTR and short writes; false with errno set on an error.
bool WriteAll(int fd, std::string_view data);

// strerror(err) alone, for a caller that frames the line itself ("cannot lock X: <this>").
std::string ErrnoText(int err);

// "context: strerror(err)", e.g. PosixError("bind 127.0.0.1:80", EACCES) is
// "bind 127.0.0.1:80: Permission denied".
std::string PosixError(std::string_view context, int err);

}  // namespace einhorn::sys
