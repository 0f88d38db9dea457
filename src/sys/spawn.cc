#include "sys/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "sys/posix.h"

namespace einhorn::sys {
namespace {

// What the child was doing when it failed; the parent turns it into the error's prefix.
enum class Step : int {
  kSetpgid = 1,
  kPdeathsig,
  kNice,
  kDupHigh,
  kDupTarget,
  kClearCloexec,
  kCloseRange,
  kSigmask,
  kExecve,
};

const char* StepName(Step step) {
  switch (step) {
    case Step::kSetpgid:
      return "setpgid";
    case Step::kPdeathsig:
      return "prctl(PR_SET_PDEATHSIG)";
    case Step::kNice:
      return "setpriority";
    case Step::kDupHigh:
      return "fcntl(F_DUPFD_CLOEXEC)";
    case Step::kDupTarget:
      return "dup2";
    case Step::kClearCloexec:
      return "fcntl(F_SETFD)";
    case Step::kCloseRange:
      return "close_range";
    case Step::kSigmask:
      return "sigprocmask";
    case Step::kExecve:
      return "execve";
  }
  return "spawn";
}

// What the child failed at. The child writes it into the parent's memory (it shares it until
// exec); the status pipe of StartSpawn carries the same record, far below PIPE_BUF, so that
// write is atomic and the reader gets all of it or nothing. step 0: no failure.
struct ChildError {
  int step;
  int err;
};

// The functions the child runs between clone and exec are not instrumented by AddressSanitizer:
// they run on a stack the sanitizer does not know, where its bookkeeping (the unpoisoning
// before a noreturn call, redzones left behind by a frame that never returns) would misfire.
#define EINHORN_CHILD_CODE __attribute__((no_sanitize_address))

constexpr char kListenPidPrefix[] = "LISTEN_PID=";
constexpr char kWatchdogPidPrefix[] = "WATCHDOG_PID=";
// Prefix, up to 20 digits of a 64-bit pid, NUL.
constexpr size_t kListenPidSize = sizeof(kListenPidPrefix) + 20;

// Everything the child needs, computed before the clone so the child never allocates. The
// child shares the parent's memory until exec: the only memory it writes is what this struct
// points to for that purpose (error, scratch_fds, the digits of listen_pid and watchdog_pid),
// all of it owned by the one Launch call that waits for it.
struct ChildArgs {
  const char* path;
  char* const* argv;
  char* const* envp;
  char* listen_pid;  // kListenPidSize bytes, prefix already in place; nullptr when not wanted
  char* watchdog_pid;  // the same for WATCHDOG_PID
  const int* pass_fds;
  int* scratch_fds;  // one slot per pass_fd, for the phase-one copies
  int fd_count;
  ChildError* error;  // the failed step, read by the parent once the clone returns
  int pdeath_signal;  // 0: none
  pid_t expected_parent;
  bool set_nice;
  int nice;
  int stdout_fd;
  int stderr_fd;
};

[[noreturn]] EINHORN_CHILD_CODE void Fail(ChildError* error, Step step, int err) {
  error->err = err;
  error->step = static_cast<int>(step);
  _exit(127);
}

// Async-signal-safe decimal formatting of a non-negative pid into `out` (NUL-terminated).
EINHORN_CHILD_CODE void FormatPid(pid_t pid, char* out) {
  char digits[24];
  int n = 0;
  auto v = static_cast<unsigned long>(pid);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) *out++ = digits[--n];
  *out = '\0';
}

// Closes every fd from `first` on. close_range is one syscall; the loop is for kernels older
// than 5.9, bounded by the fd limit.
EINHORN_CHILD_CODE bool CloseFrom(unsigned first) {
  if (close_range(first, UINT_MAX, 0) == 0) return true;
  if (errno != ENOSYS) return false;
  struct rlimit nofile;
  rlim_t max_fd = 65535;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    max_fd = nofile.rlim_cur < static_cast<rlim_t>(INT_MAX) ? nofile.rlim_cur : INT_MAX;
  }
  for (rlim_t fd = first; fd < max_fd; ++fd) close(static_cast<int>(fd));
  return true;
}

// The child between clone and exec: one straight line of async-signal-safe calls, on a stack
// of its own, in the parent's memory (the parent is suspended until the exec or the _exit).
// Signals are all blocked on entry (the parent blocked them around the clone), so no handler
// inherited from the master can run here. Its signal dispositions are its own copy (no
// CLONE_SIGHAND), so resetting them does not touch the parent's.
[[noreturn]] EINHORN_CHILD_CODE void ChildMain(const ChildArgs& a) {
  // Dispositions set to a handler are reset by exec anyway, but SIG_IGN survives exec (a master
  // ignoring SIGPIPE would hand that to every worker), so reset all of them.
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sigaction(sig, &dfl, nullptr);  // EINVAL for libc-reserved signals is expected
  }

  // Own process group: signals aimed at the master's group (a terminal's ^C) do not hit
  // workers directly, and the master can signal a worker's whole subtree.
  if (setpgid(0, 0) != 0) Fail(a.error, Step::kSetpgid, errno);

  if (a.pdeath_signal != 0) {
    if (prctl(PR_SET_PDEATHSIG, a.pdeath_signal) != 0) Fail(a.error, Step::kPdeathsig, errno);
    // The parent may have died before prctl took effect; then no signal will ever come.
    if (getppid() != a.expected_parent) _exit(1);
  }

  if (a.set_nice && setpriority(PRIO_PROCESS, 0, a.nice) != 0) {
    Fail(a.error, Step::kNice, errno);
  }

  // dup2 onto another number clears CLOEXEC. stderr first when its source is fd 1 (a master
  // started with fd 1 closed gets 1 from pipe2), so that placing stdout does not overwrite it.
  const bool stderr_first = a.stderr_fd == 1;
  const int outputs[2][2] = {{stderr_first ? a.stderr_fd : a.stdout_fd, stderr_first ? 2 : 1},
                             {stderr_first ? a.stdout_fd : a.stderr_fd, stderr_first ? 1 : 2}};
  for (const auto& [from, target] : outputs) {
    if (from < 0 || from == target) continue;
    while (dup2(from, target) < 0) {
      if (errno != EINTR && errno != EBUSY) Fail(a.error, Step::kDupTarget, errno);
    }
  }

  // Phase one: copy every fd above the target range, so that placing fd i at 3+i can never
  // overwrite a source that a later slot still needs (e.g. pass_fds = {4, 3}).
  const int first_free = 3 + a.fd_count;
  for (int i = 0; i < a.fd_count; ++i) {
    a.scratch_fds[i] = fcntl(a.pass_fds[i], F_DUPFD_CLOEXEC, first_free);
    if (a.scratch_fds[i] < 0) Fail(a.error, Step::kDupHigh, errno);
  }
  // Phase two: place them. dup2 onto a different number yields a descriptor without
  // FD_CLOEXEC, but clear it explicitly anyway: it is the whole point of passing the fd.
  for (int i = 0; i < a.fd_count; ++i) {
    const int target = 3 + i;
    while (dup2(a.scratch_fds[i], target) < 0) {
      if (errno != EINTR && errno != EBUSY) Fail(a.error, Step::kDupTarget, errno);
    }
    if (fcntl(target, F_SETFD, 0) != 0) Fail(a.error, Step::kClearCloexec, errno);
  }
  // Everything else goes: the scratch copies and whatever the master holds.
  if (!CloseFrom(static_cast<unsigned>(first_free))) {
    Fail(a.error, Step::kCloseRange, errno);
  }

  if (a.listen_pid != nullptr) {
    FormatPid(getpid(), a.listen_pid + sizeof(kListenPidPrefix) - 1);
  }
  if (a.watchdog_pid != nullptr) {
    FormatPid(getpid(), a.watchdog_pid + sizeof(kWatchdogPidPrefix) - 1);
  }

  // Unblock last: a signal pending now (SIGTERM from a quick shutdown, the pdeath signal) is
  // delivered with its default action, which is what it would do to the worker anyway.
  sigset_t empty;
  sigemptyset(&empty);
  if (sigprocmask(SIG_SETMASK, &empty, nullptr) != 0) Fail(a.error, Step::kSigmask, errno);

  execve(a.path, a.argv, a.envp);
  Fail(a.error, Step::kExecve, errno);
}

std::string ChildErrorText(const ChildError& record, const std::string& path) {
  const auto step = static_cast<Step>(record.step);
  std::string message = StepName(step);
  if (step == Step::kExecve) message += " " + path;
  return PosixError(message, record.err);
}

}  // namespace

namespace {

// The child's argv and environment as exec wants them, with room for the values only the child
// knows (LISTEN_PID, WATCHDOG_PID). All allocation happens here, before fork; the pointers stay
// valid when the struct moves (a vector's move keeps its buffer).
struct ChildStrings {
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::vector<char> listen_pid;
  std::vector<char> watchdog_pid;
};

ChildStrings PrepareStrings(const SpawnPlan& plan) {
  ChildStrings c;
  c.argv.reserve(plan.argv.size() + 1);
  for (const std::string& s : plan.argv) c.argv.push_back(const_cast<char*>(s.c_str()));
  c.argv.push_back(nullptr);

  c.envp.reserve(plan.env.size() + 3);
  for (const std::string& s : plan.env) c.envp.push_back(const_cast<char*>(s.c_str()));
  if (plan.set_listen_pid) {
    c.listen_pid.assign(kListenPidSize, '\0');
    memcpy(c.listen_pid.data(), kListenPidPrefix, sizeof(kListenPidPrefix) - 1);
    c.envp.push_back(c.listen_pid.data());
  }
  if (plan.set_watchdog_pid) {
    c.watchdog_pid.assign(sizeof(kWatchdogPidPrefix) + 20, '\0');
    memcpy(c.watchdog_pid.data(), kWatchdogPidPrefix, sizeof(kWatchdogPidPrefix) - 1);
    c.envp.push_back(c.watchdog_pid.data());
  }
  c.envp.push_back(nullptr);
  return c;
}

// The child's stack. The clone shares our memory, so the child needs a stack of its own; the
// parent is suspended until the child has exec'd or exited (CLONE_VFORK), so one stack per
// thread serves every spawn of that thread. Mapped on first use, with a guard page below it;
// only the pages the child touches (a few) ever become resident.
class ChildStack {
 public:
  ChildStack() = default;
  ChildStack(const ChildStack&) = delete;
  ChildStack& operator=(const ChildStack&) = delete;
  ~ChildStack() {
    if (base_ != nullptr) munmap(base_, kSize + kGuard);
  }
  // The stack's top (it grows down), or nullptr with errno set.
  void* Top() {
    if (base_ == nullptr) {
      void* p = mmap(nullptr, kSize + kGuard, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
      if (p == MAP_FAILED) return nullptr;
      if (mprotect(p, kGuard, PROT_NONE) != 0) {
        const int err = errno;
        munmap(p, kSize + kGuard);
        errno = err;
        return nullptr;
      }
      base_ = p;
    }
    return static_cast<char*>(base_) + kGuard + kSize;
  }

 private:
  // Far more than ChildMain needs (a few hundred bytes, a few KiB under AddressSanitizer).
  static constexpr size_t kSize = 256 * 1024;
  static constexpr size_t kGuard = 4096;
  void* base_ = nullptr;
};

EINHORN_CHILD_CODE int ChildEntry(void* arg) { ChildMain(*static_cast<const ChildArgs*>(arg)); }

// clone(CLONE_VM | CLONE_VFORK), as glibc's posix_spawn and CPython's vfork path do: no copy
// of the master's page tables, and no copy-on-write faults in the master afterwards, which a
// fork pays for in proportion to the master's size. Returns when the child has exec'd or
// exited. Every signal is blocked around it, so that no master handler runs in the child
// before the reset. Sets *clone_errno when the clone fails.
pid_t CloneChild(const ChildArgs& args, int* clone_errno) {
  static thread_local ChildStack stack;
  void* top = stack.Top();
  if (top == nullptr) {
    *clone_errno = errno;
    return -1;
  }
  sigset_t all;
  sigset_t saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  const pid_t pid =
      clone(&ChildEntry, top, CLONE_VM | CLONE_VFORK | SIGCHLD, const_cast<ChildArgs*>(&args));
  *clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  return pid;
}

std::string PlanProblem(const SpawnPlan& plan) {
  if (plan.path.empty() || plan.argv.empty()) return "spawn: empty command";
  for (int fd : plan.pass_fds) {
    if (fd < 0) return "spawn: invalid fd " + std::to_string(fd) + " in pass_fds";
  }
  return "";
}

// Starts the child of a checked plan; returns its pid once it has exec'd (error->step == 0) or
// failed (the step and errno in *error), or -1 with *clone_errno when there is no child.
pid_t LaunchChild(const SpawnPlan& plan, ChildError* error, int* clone_errno) {
  ChildStrings strings = PrepareStrings(plan);
  std::vector<int> scratch(plan.pass_fds.size(), -1);
  *error = ChildError{0, 0};
  const ChildArgs args{
      .path = plan.path.c_str(),
      .argv = strings.argv.data(),
      .envp = strings.envp.data(),
      .listen_pid = plan.set_listen_pid ? strings.listen_pid.data() : nullptr,
      .watchdog_pid = plan.set_watchdog_pid ? strings.watchdog_pid.data() : nullptr,
      .pass_fds = plan.pass_fds.data(),
      .scratch_fds = scratch.data(),
      .fd_count = static_cast<int>(plan.pass_fds.size()),
      .error = error,
      .pdeath_signal = plan.pdeath_signal.value_or(0),
      .expected_parent = plan.expected_parent != 0 ? plan.expected_parent : getpid(),
      .set_nice = plan.nice.has_value(),
      .nice = plan.nice.value_or(0),
      .stdout_fd = plan.stdout_fd,
      .stderr_fd = plan.stderr_fd,
  };
  return CloneChild(args, clone_errno);
}

}  // namespace

core::Result<Launched> Launch(const SpawnPlan& plan) {
  using R = core::Result<Launched>;
  if (std::string problem = PlanProblem(plan); !problem.empty()) return R::Error(problem);
  ChildError error{};
  int clone_errno = 0;
  const pid_t pid = LaunchChild(plan, &error, &clone_errno);
  if (pid < 0) return R::Error(PosixError("clone", clone_errno));
  Launched launched;
  launched.pid = pid;
  if (error.step != 0) launched.exec_error = ChildErrorText(error, plan.path);
  return launched;
}

core::Result<StartedChild> StartSpawn(const SpawnPlan& plan) {
  using R = core::Result<StartedChild>;
  if (std::string problem = PlanProblem(plan); !problem.empty()) return R::Error(problem);
  // The pipe first: once the child exists, its outcome must have somewhere to go.
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return R::Error(PosixError("pipe2", errno));
  ChildError error{};
  int clone_errno = 0;
  const pid_t pid = LaunchChild(plan, &error, &clone_errno);
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return R::Error(PosixError("clone", clone_errno));
  }
  // The outcome is known already; the pipe carries it as it did when the child wrote it.
  if (error.step != 0) {
    while (write(fds[1], &error, sizeof(error)) < 0 && errno == EINTR) {
    }
  }
  close(fds[1]);
  return StartedChild{pid, fds[0]};
}

core::Result<pid_t> Spawn(const SpawnPlan& plan) {
  using R = core::Result<pid_t>;
  auto launched = Launch(plan);
  if (!launched.ok()) return R::Error(launched.error());
  const pid_t pid = launched.value().pid;
  if (launched.value().exec_error.empty()) return pid;
  // The child failed and is exiting: reap it here so the SIGCHLD reaper never reports a worker
  // that was never started.
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return R::Error(launched.value().exec_error);
}

ExecOutcome ReadExecOutcome(int status_fd, const std::string& path) {
  ChildError record{};
  ssize_t n;
  do {
    n = read(status_fd, &record, sizeof(record));
  } while (n < 0 && errno == EINTR);
  if (n == 0) return {ExecState::kExeced, ""};
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return {ExecState::kPending, ""};
  if (n != static_cast<ssize_t>(sizeof(record))) {
    return {ExecState::kFailed, "spawn " + path + ": lost the child's status (" +
                                    (n < 0 ? ErrnoText(errno) : std::string("short read")) + ")"};
  }
  return {ExecState::kFailed, ChildErrorText(record, path)};
}

namespace {

using PathResult = core::Result<std::string>;

PathResult MakeAbsolute(const std::string& p) {
  if (p[0] == '/') return p;
  char buf[PATH_MAX];
  if (getcwd(buf, sizeof(buf)) == nullptr) return PathResult::Error(PosixError("getcwd", errno));
  std::string rel = p;
  while (rel.rfind("./", 0) == 0) rel.erase(0, 2);
  std::string cwd = buf;
  if (cwd.back() != '/') cwd += '/';
  return cwd + rel;
}

enum class FileCheck { kOk, kMissing, kDirectory, kNotRegular, kNotExecutable };

FileCheck CheckProgram(const std::string& p, int* err, mode_t* mode) {
  struct stat st;
  if (stat(p.c_str(), &st) != 0) {
    *err = errno;
    return FileCheck::kMissing;
  }
  *mode = st.st_mode & 07777;
  if (S_ISDIR(st.st_mode)) return FileCheck::kDirectory;
  if (!S_ISREG(st.st_mode)) return FileCheck::kNotRegular;
  if (access(p.c_str(), X_OK) != 0) return FileCheck::kNotExecutable;
  return FileCheck::kOk;
}

std::string ModeText(mode_t m) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return std::string(buf);
}

// Why `word` (with a '/') could not be found.
std::string MissingText(const std::string& word, int err) {
  // A dangling symbolic link (current -> a release that was removed) says where it points.
  struct stat lst;
  if (err == ENOENT && lstat(word.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    char target[PATH_MAX];
    const ssize_t n = readlink(word.c_str(), target, sizeof target - 1);
    std::string to = n > 0 ? std::string(target, static_cast<size_t>(n)) : "?";
    if (to.size() > 200) to = to.substr(0, 200) + "...";
    for (char& c : to) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    return word + ": a symbolic link to " + to + ", which does not exist";
  }
  std::string where;
  if (word[0] != '/') {
    char buf[PATH_MAX];
    if (getcwd(buf, sizeof(buf)) != nullptr) {
      where = std::string(" (relative to ") + buf + ", the current directory)";
    }
  }
  return PosixError(word, err) + where;
}

// A command word with a '/': that file, or why not.
PathResult ResolvePath(const std::string& word) {
  int err = 0;
  mode_t mode = 0;
  switch (CheckProgram(word, &err, &mode)) {
    case FileCheck::kOk:
      return MakeAbsolute(word);
    case FileCheck::kMissing:
      return PathResult::Error(MissingText(word, err));
    case FileCheck::kDirectory:
      return PathResult::Error(word + ": is a directory, not a program");
    case FileCheck::kNotRegular:
      return PathResult::Error(word + ": not a regular file");
    case FileCheck::kNotExecutable:
      return PathResult::Error(word + ": not executable (mode " + ModeText(mode) + ")");
  }
  return PathResult::Error(word + ": cannot be executed");
}

// A bare command word: the first executable file of that name in the search path.
PathResult SearchPath(const std::string& word, const std::string& path_env) {
  std::string search = path_env;
  if (search.empty()) {
    // As execvp does when PATH is unset: the system's default search path.
    char buf[256];
    const size_t n = confstr(_CS_PATH, buf, sizeof(buf));
    search = (n > 0 && n <= sizeof(buf)) ? buf : "/bin:/usr/bin";
  }
  std::string not_executable;
  size_t start = 0;
  while (true) {
    const size_t colon = search.find(':', start);
    std::string dir = search.substr(start, colon == std::string::npos ? colon : colon - start);
    if (dir.empty()) dir = ".";  // POSIX: an empty entry is the current directory
    const std::string candidate = dir + "/" + word;
    int err = 0;
    mode_t mode = 0;
    const FileCheck c = CheckProgram(candidate, &err, &mode);
    if (c == FileCheck::kOk) return MakeAbsolute(candidate);
    if (c == FileCheck::kNotExecutable && not_executable.empty()) {
      not_executable = candidate + ": not executable (mode " + ModeText(mode) + ")";
    }
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (!not_executable.empty()) return PathResult::Error(not_executable);
  return PathResult::Error("could not find " + word + " in PATH (" + search + ")");
}

}  // namespace

core::Result<std::string> ResolveCommand(const std::string& word, const std::string& path_env) {
  if (word.empty()) return PathResult::Error("empty command");
  if (word.find('/') != std::string::npos) return ResolvePath(word);
  return SearchPath(word, path_env);
}

}  // namespace einhorn::sys
