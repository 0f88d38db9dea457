// The syscalls of a master re-exec: the state travels in a memfd, the fds that must survive
// lose FD_CLOEXEC, and execve replaces the image under the same pid.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace einhorn::sys {

// An anonymous file (memfd) holding `bytes`, CLOEXEC, named `name` in /proc/PID/fd. Sealed,
// nobody can write, shrink or grow it any more, so that its reader may map it (FdBytes).
core::Result<int> BytesMemfd(const char* name, std::string_view bytes, bool sealed = false);

// All of fd from offset 0 (pread, so a copy of the fd in another process keeps its offset);
// a pipe is read to EOF instead. More than max_bytes is an error.
core::Result<std::string> ReadWholeFd(int fd, size_t max_bytes);

// The bytes of a whole fd: mapped when it is a sealed memfd (BytesMemfd), so that the new
// image's largest input is neither copied nor faulted in twice; read (ReadWholeFd) otherwise,
// a pipe from Ruby Einhorn or a memfd from an image before the seals. Move-only.
class FdBytes {
 public:
  static core::Result<FdBytes> Of(int fd, size_t max_bytes);
  FdBytes(FdBytes&& other) noexcept;
  FdBytes& operator=(FdBytes&& other) noexcept;
  FdBytes(const FdBytes&) = delete;
  FdBytes& operator=(const FdBytes&) = delete;
  ~FdBytes();

  std::string_view view() const { return map_ ? std::string_view(map_, size_) : read_; }
  bool mapped() const { return map_ != nullptr; }
  // Unmaps or frees the bytes (the state, once decoded, for the master's whole life).
  void Release();

 private:
  FdBytes() = default;
  std::string read_;
  const char* map_ = nullptr;
  size_t size_ = 0;
};

// FD_CLOEXEC on or off.
core::Status SetCloexec(int fd, bool on);

// execve; returns only on failure, with the error ("execve PATH: ...").
core::Status ExecImage(const std::string& path, const std::vector<std::string>& argv,
                       const std::vector<std::string>& env);

// The binary this process runs as, for re-exec: argv[0] resolved like a shell would (so a
// symlink such as /srv/app/current/bin/einhorn-cpp is followed again at the next reload),
// else /proc/self/exe.
std::string SelfPath(const std::string& argv0, const std::string& path_env);

// `path` (symlinks followed) is the file this process runs, /proc/self/exe: same device and
// inode. False when either cannot be read.
bool RunsAs(const std::string& path);

// Blocks the given signals (the returned mask is the previous one); RestoreSignalMask undoes.
struct SignalMask {
  unsigned char bytes[128];
};
SignalMask BlockSignals(const std::vector<int>& signals);
void RestoreSignalMask(const SignalMask& mask);

}  // namespace einhorn::sys
