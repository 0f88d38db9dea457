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
#include <iterator>
#include <utility>

#include "sys/posix.h"

namespace einhorn::sys {

namespace {

// Each core::Signal with the platform's number for it (the numbers differ between Linux
// architectures, the names do not).
constexpr std::pair<core::Signal, int> kPlatformSignals[] = {
    {core::Signal::kHup, SIGHUP},       {core::Signal::kInt, SIGINT},
    {core::Signal::kQuit, SIGQUIT},     {core::Signal::kKill, SIGKILL},
    {core::Signal::kUsr1, SIGUSR1},     {core::Signal::kUsr2, SIGUSR2},
    {core::Signal::kTerm, SIGTERM},     {core::Signal::kTtin, SIGTTIN},
    {core::Signal::kTtou, SIGTTOU},     {core::Signal::kAbrt, SIGABRT},
    {core::Signal::kIll, SIGILL},       {core::Signal::kTrap, SIGTRAP},
    {core::Signal::kBus, SIGBUS},       {core::Signal::kFpe, SIGFPE},
    {core::Signal::kSegv, SIGSEGV},     {core::Signal::kPipe, SIGPIPE},
    {core::Signal::kAlrm, SIGALRM},     {core::Signal::kChld, SIGCHLD},
    {core::Signal::kCont, SIGCONT},     {core::Signal::kStop, SIGSTOP},
    {core::Signal::kTstp, SIGTSTP},     {core::Signal::kUrg, SIGURG},
    {core::Signal::kXcpu, SIGXCPU},     {core::Signal::kXfsz, SIGXFSZ},
    {core::Signal::kVtalrm, SIGVTALRM}, {core::Signal::kProf, SIGPROF},
    {core::Signal::kWinch, SIGWINCH},   {core::Signal::kIo, SIGIO},
    {core::Signal::kPwr, SIGPWR},       {core::Signal::kSys, SIGSYS},
};
static_assert(std::size(kPlatformSignals) == core::kSignalNames.size(),
              "every core::Signal needs its platform number");

}  // namespace

int ToPlatformSignal(core::Signal s) {
  for (const auto& [sig, signo] : kPlatformSignals) {
    if (sig == s) return signo;
  }
  return 0;
}

std::optional<core::Signal> FromPlatformSignal(int signo) {
  for (const auto& [sig, number] : kPlatformSignals) {
    if (number == signo) return sig;
  }
  return std::nullopt;
}

int SendSignal(pid_t pid, core::Signal s) {
  // pid <= 0 would address a process group or every process we may signal: never what a
  // caller holding a worker pid means.
  if (pid <= 0) return ESRCH;
  return kill(pid, ToPlatformSignal(s)) == 0 ? 0 : errno;
}

int SignalGroup(pid_t pgid, core::Signal s) {
  // Same guard: -0 is our own group, -1 every process we may signal.
  if (pgid <= 1) return ESRCH;
  return kill(-pgid, ToPlatformSignal(s)) == 0 ? 0 : errno;
}

namespace {

// A waitpid status of a child that ended; false for stopped/continued, which are not reported
// without WUNTRACED/WCONTINUED.
bool Ended(int status, core::ExitStatus* out) {
  if (WIFSIGNALED(status)) {
    *out = core::ExitStatus{true, WTERMSIG(status)};
    return true;
  }
  if (WIFEXITED(status)) {
    *out = core::ExitStatus{false, WEXITSTATUS(status)};
    return true;
  }
  return false;
}

}  // namespace

std::vector<Reaped> ReapAll() { return ReapSome(static_cast<size_t>(-1)); }

std::vector<Reaped> ReapSome(size_t max) {
  std::vector<Reaped> out;
  while (out.size() < max) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) break;  // 0: children remain but none has exited; ECHILD: none at all
    Reaped r;
    r.pid = pid;
    if (Ended(status, &r.status)) out.push_back(r);
  }
  return out;
}

ChildProbe ProbeChild(pid_t pid) {
  ChildProbe probe;
  if (pid <= 0) {  // -1 or 0 would ask about other children
    probe.kind = ChildProbe::Kind::kNotOurs;
    return probe;
  }
  while (true) {
    int status = 0;
    const pid_t got = waitpid(pid, &status, WNOHANG);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      probe.kind = ChildProbe::Kind::kNotOurs;  // ECHILD
    } else if (got == 0 || !Ended(status, &probe.status)) {
      probe.kind = ChildProbe::Kind::kAlive;
    } else {
      probe.kind = ChildProbe::Kind::kExited;
    }
    return probe;
  }
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
    return core::Status::Error(PosixError("prctl(PR_SET_CHILD_SUBREAPER)", errno));
  }
  return core::Status::Ok();
}

core::Status SetNice(int niceness) {
  if (setpriority(PRIO_PROCESS, 0, niceness) != 0) {
    return core::Status::Error(PosixError("setpriority " + std::to_string(niceness), errno));
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
