#include "sys/reexec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "sys/posix.h"
#include "sys/spawn.h"

namespace einhorn::sys {
namespace {

static_assert(sizeof(sigset_t) <= sizeof(SignalMask::bytes));

}  // namespace

core::Result<int> BytesMemfd(const char* name, std::string_view bytes) {
  using R = core::Result<int>;
  const int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return R::Error(PosixError("memfd_create", errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close(fd);
      return R::Error(PosixError("writing the memfd", err));
    }
    done += static_cast<size_t>(n);
  }
  return fd;
}

core::Result<std::string> ReadWholeFd(int fd, size_t max_bytes) {
  using R = core::Result<std::string>;
  std::string out;
  char buf[64 * 1024];
  bool seekable = true;
  while (true) {
    ssize_t n = seekable ? pread(fd, buf, sizeof buf, static_cast<off_t>(out.size()))
                         : read(fd, buf, sizeof buf);
    if (n < 0 && errno == ESPIPE && seekable) {
      seekable = false;
      continue;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return R::Error(PosixError("reading fd " + std::to_string(fd), errno));
    }
    if (n == 0) return out;
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      return R::Error("fd " + std::to_string(fd) + " holds more than " +
                      std::to_string(max_bytes) + " bytes");
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

core::Status SetCloexec(int fd, bool on) {
  const int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC)) != 0) {
    return core::Status::Error(PosixError("fcntl(F_SETFD) on fd " + std::to_string(fd), errno));
  }
  return core::Status::Ok();
}

core::Status ExecImage(const std::string& path, const std::vector<std::string>& argv,
                       const std::vector<std::string>& env) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  execve(path.c_str(), args.data(), envp.data());
  return core::Status::Error(PosixError("execve " + path, errno));
}

std::string SelfPath(const std::string& argv0, const std::string& path_env) {
  if (!argv0.empty()) {
    auto resolved = ResolveCommand(argv0, path_env);
    if (resolved.ok()) return resolved.value();
  }
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return argv0;
  return std::string(buf, static_cast<size_t>(n));
}

SignalMask BlockSignals(const std::vector<int>& signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  sigset_t old;
  sigprocmask(SIG_BLOCK, &set, &old);
  SignalMask mask{};
  std::memcpy(mask.bytes, &old, sizeof old);
  return mask;
}

void RestoreSignalMask(const SignalMask& mask) {
  sigset_t old;
  std::memcpy(&old, mask.bytes, sizeof old);
  sigprocmask(SIG_SETMASK, &old, nullptr);
}

}  // namespace einhorn::sys
