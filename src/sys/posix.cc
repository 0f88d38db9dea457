#include "sys/posix.h"

#include <unistd.h>

#include <cstring>
#include <utility>

namespace einhorn::sys {

UniqueFd::UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(std::exchange(other.fd_, -1));
  return *this;
}

UniqueFd::~UniqueFd() { reset(); }

int UniqueFd::release() { return std::exchange(fd_, -1); }

void UniqueFd::reset(int fd) {
  // close(2) is not retried on EINTR: on Linux the fd is gone either way.
  if (fd_ >= 0 && fd_ != fd) close(fd_);
  fd_ = fd;
}

std::string ErrnoText(int err) { return std::strerror(err); }

std::string PosixError(std::string_view context, int err) {
  std::string text(context);
  text += ": ";
  text += std::strerror(err);
  return text;
}

}  // namespace einhorn::sys
