// The syscalls of a master re-exec: the state travels in a memfd, the fds that must survive
// lose FD_CLOEXEC, and execve replaces the image under the same pid.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace einhorn::sys {

// An anonymous file (memfd) holding `bytes`, CLOEXEC, named `name` in /proc/PID/fd.
core::Result<int> BytesMemfd(const char* name, std::string_view bytes);

// All of fd from offset 0 (pread, so a copy of the fd in another process keeps its offset);
// a pipe is read to EOF instead. More than max_bytes is an error.
core::Result<std::string> ReadWholeFd(int fd, size_t max_bytes);

// FD_CLOEXEC on or off.
core::Status SetCloexec(int fd, bool on);

// execve; returns only on failure, with the error ("execve PATH: ...").
core::Status ExecImage(const std::string& path, const std::vector<std::string>& argv,
                       const std::vector<std::string>& env);

// The binary this process runs as, for re-exec: argv[0] resolved like a shell would (so a
// symlink such as /srv/app/current/bin/einhorn-cpp is followed again at the next reload),
// else /proc/self/exe.
std::string SelfPath(const std::string& argv0, const std::string& path_env);

// Blocks the given signals (the returned mask is the previous one); RestoreSignalMask undoes.
struct SignalMask {
  unsigned char bytes[128];
};
SignalMask BlockSignals(const std::vector<int>& signals);
void RestoreSignalMask(const SignalMask& mask);

}  // namespace einhorn::sys
