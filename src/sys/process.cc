#include "sys/process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace einhorn::sys {

int ToPlatformSignal(core::Signal s) {
  switch (s) {
    case core::Signal::kHup:
      return SIGHUP;
    case core::Signal::kInt:
      return SIGINT;
    case core::Signal::kQuit:
      return SIGQUIT;
    case core::Signal::kKill:
      return SIGKILL;
    case core::Signal::kUsr1:
      return SIGUSR1;
    case core::Signal::kUsr2:
      return SIGUSR2;
    case core::Signal::kTerm:
      return SIGTERM;
    case core::Signal::kTtin:
      return SIGTTIN;
    case core::Signal::kTtou:
      return SIGTTOU;
    case core::Signal::kAbrt:
      return SIGABRT;
  }
  return 0;
}

std::optional<core::Signal> FromPlatformSignal(int signo) {
  switch (signo) {
    case SIGHUP:
      return core::Signal::kHup;
    case SIGINT:
      return core::Signal::kInt;
    case SIGQUIT:
      return core::Signal::kQuit;
    case SIGKILL:
      return core::Signal::kKill;
    case SIGUSR1:
      return core::Signal::kUsr1;
    case SIGUSR2:
      return core::Signal::kUsr2;
    case SIGTERM:
      return core::Signal::kTerm;
    case SIGTTIN:
      return core::Signal::kTtin;
    case SIGTTOU:
      return core::Signal::kTtou;
    case SIGABRT:
      return core::Signal::kAbrt;
    default:
      return std::nullopt;
  }
}

int SendSignal(pid_t pid, core::Signal s) {
  // pid <= 0 would address a process group or every process we may signal: never what a
  // caller holding a worker pid means.
  if (pid <= 0) return ESRCH;
  return kill(pid, ToPlatformSignal(s)) == 0 ? 0 : errno;
}

std::vector<Reaped> ReapAll() {
  std::vector<Reaped> out;
  while (true) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) break;  // 0: children remain but none has exited; ECHILD: none at all
    Reaped r;
    r.pid = pid;
    if (WIFSIGNALED(status)) {
      r.status.signaled = true;
      r.status.code = WTERMSIG(status);
    } else if (WIFEXITED(status)) {
      r.status.code = WEXITSTATUS(status);
    } else {
      continue;  // stopped/continued are not reported without WUNTRACED/WCONTINUED
    }
    out.push_back(r);
  }
  return out;
}

std::optional<Reaped> ReapOne(pid_t pid) {
  if (pid <= 0) return std::nullopt;  // never a process group or "any child"
  int status = 0;
  pid_t got = 0;
  do {
    got = waitpid(pid, &status, WNOHANG);
  } while (got < 0 && errno == EINTR);
  if (got == 0) return std::nullopt;  // our child, still running
  Reaped r;
  r.pid = pid;
  if (got < 0) {  // ECHILD: not our child, or its status already went to someone else
    r.status = core::ExitStatus::Unknown();
  } else if (WIFSIGNALED(status)) {
    r.status.signaled = true;
    r.status.code = WTERMSIG(status);
  } else if (WIFEXITED(status)) {
    r.status.code = WEXITSTATUS(status);
  } else {
    return std::nullopt;
  }
  return r;
}

void CloexecFrom3() {
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  // Kernels before 5.11: walk our open fds. Collect first, since the directory stream holds an
  // fd of its own.
  std::vector<int> fds;
  if (DIR* dir = opendir("/proc/self/fd")) {
    const int own = dirfd(dir);
    while (dirent* e = readdir(dir)) {
      char* end = nullptr;
      const long fd = std::strtol(e->d_name, &end, 10);
      if (end == e->d_name || *end != '\0' || fd < 3 || fd == own) continue;
      fds.push_back(static_cast<int>(fd));
    }
    closedir(dir);
  } else {
    struct rlimit rl;
    const int max_fd = (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
                        rl.rlim_cur < 1048576)
                           ? static_cast<int>(rl.rlim_cur)
                           : 65536;
    for (int fd = 3; fd < max_fd; ++fd) fds.push_back(fd);
  }
  for (int fd : fds) {
    const int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && (flags & FD_CLOEXEC) == 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
}

void ResetSignalMask() {
  sigset_t empty;
  sigemptyset(&empty);
  pthread_sigmask(SIG_SETMASK, &empty, nullptr);
}

core::Status BecomeSubreaper() {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    return core::Status::Error(std::string("prctl(PR_SET_CHILD_SUBREAPER): ") +
                               std::strerror(errno));
  }
  return core::Status::Ok();
}

core::Status SetNice(int niceness) {
  if (setpriority(PRIO_PROCESS, 0, niceness) != 0) {
    return core::Status::Error("setpriority " + std::to_string(niceness) + ": " +
                               std::strerror(errno));
  }
  return core::Status::Ok();
}

std::string DescribeExit(const core::ExitStatus& s) {
  if (s.unknown()) return s.ToString();
  if (!s.signaled) return "exit " + std::to_string(s.code);
  std::string out = "signal " + std::to_string(s.code);
  if (const char* abbrev = sigabbrev_np(s.code)) out += std::string(" (SIG") + abbrev + ")";
  return out;
}

}  // namespace einhorn::sys
