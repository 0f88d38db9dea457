#include "sys/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

// The record the child writes to the error pipe. Its size is far below PIPE_BUF, so the write
// is atomic and the parent reads all of it or nothing.
struct ChildError {
  int step;
  int err;
};

constexpr char kListenPidPrefix[] = "LISTEN_PID=";
constexpr char kWatchdogPidPrefix[] = "WATCHDOG_PID=";
// Prefix, up to 20 digits of a 64-bit pid, NUL.
constexpr size_t kListenPidSize = sizeof(kListenPidPrefix) + 20;

// Everything the child needs, computed before fork so the child never allocates.
struct ChildArgs {
  const char* path;
  char* const* argv;
  char* const* envp;
  char* listen_pid;  // kListenPidSize bytes, prefix already in place; nullptr when not wanted
  char* watchdog_pid;  // the same for WATCHDOG_PID
  const int* pass_fds;
  int* scratch_fds;  // one slot per pass_fd, for the phase-one copies
  int fd_count;
  int err_read;
  int err_write;
  int pdeath_signal;  // 0: none
  pid_t expected_parent;
  bool set_nice;
  int nice;
  int max_fd;  // close loop bound when close_range is missing
  int stdout_fd;
  int stderr_fd;
};

[[noreturn]] void Fail(int err_fd, Step step, int err) {
  const ChildError record{static_cast<int>(step), err};
  while (write(err_fd, &record, sizeof(record)) < 0 && errno == EINTR) {
  }
  _exit(127);
}

// Async-signal-safe decimal formatting of a non-negative pid into `out` (NUL-terminated).
void FormatPid(pid_t pid, char* out) {
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

// Closes [first, last] except `keep`. close_range is one syscall; the loop is for kernels
// older than 5.9, bounded by the fd limit read before fork.
bool CloseRangeExcept(unsigned first, unsigned last, int keep, int max_fd) {
  auto close_span = [max_fd](unsigned lo, unsigned hi) {
    if (lo > hi) return true;
    if (close_range(lo, hi, 0) == 0) return true;
    if (errno != ENOSYS) return false;
    const unsigned bound = hi < static_cast<unsigned>(max_fd) ? hi : static_cast<unsigned>(max_fd);
    for (unsigned fd = lo; fd <= bound; ++fd) close(static_cast<int>(fd));
    return true;
  };
  const auto k = static_cast<unsigned>(keep);
  if (k < first || k > last) return close_span(first, last);
  return close_span(first, k - 1) && (k == UINT_MAX || close_span(k + 1, last));
}

// The child between fork and exec: one straight line of async-signal-safe calls. Signals are
// all blocked on entry (the parent blocked them around fork), so no handler inherited from the
// master can run here.
[[noreturn]] void ChildMain(const ChildArgs& a) {
  // The read end belongs to the parent; closing it now also frees its number.
  close(a.err_read);

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
  if (setpgid(0, 0) != 0) Fail(a.err_write, Step::kSetpgid, errno);

  if (a.pdeath_signal != 0) {
    if (prctl(PR_SET_PDEATHSIG, a.pdeath_signal) != 0) Fail(a.err_write, Step::kPdeathsig, errno);
    // The parent may have died before prctl took effect; then no signal will ever come.
    if (getppid() != a.expected_parent) _exit(1);
  }

  if (a.set_nice && setpriority(PRIO_PROCESS, 0, a.nice) != 0) {
    Fail(a.err_write, Step::kNice, errno);
  }

  // dup2 onto another number clears CLOEXEC. stderr first when its source is fd 1 (a master
  // started with fd 1 closed gets 1 from pipe2), so that placing stdout does not overwrite it.
  const bool stderr_first = a.stderr_fd == 1;
  const int outputs[2][2] = {{stderr_first ? a.stderr_fd : a.stdout_fd, stderr_first ? 2 : 1},
                             {stderr_first ? a.stdout_fd : a.stderr_fd, stderr_first ? 1 : 2}};
  for (const auto& [from, target] : outputs) {
    if (from < 0 || from == target) continue;
    while (dup2(from, target) < 0) {
      if (errno != EINTR && errno != EBUSY) Fail(a.err_write, Step::kDupTarget, errno);
    }
  }

  // Phase one: copy every fd above the target range, so that placing fd i at 3+i can never
  // overwrite a source that a later slot still needs (e.g. pass_fds = {4, 3}).
  const int first_free = 3 + a.fd_count;
  for (int i = 0; i < a.fd_count; ++i) {
    a.scratch_fds[i] = fcntl(a.pass_fds[i], F_DUPFD_CLOEXEC, first_free);
    if (a.scratch_fds[i] < 0) Fail(a.err_write, Step::kDupHigh, errno);
  }
  // Phase two: place them. dup2 onto a different number yields a descriptor without
  // FD_CLOEXEC, but clear it explicitly anyway: it is the whole point of passing the fd.
  for (int i = 0; i < a.fd_count; ++i) {
    const int target = 3 + i;
    while (dup2(a.scratch_fds[i], target) < 0) {
      if (errno != EINTR && errno != EBUSY) Fail(a.err_write, Step::kDupTarget, errno);
    }
    if (fcntl(target, F_SETFD, 0) != 0) Fail(a.err_write, Step::kClearCloexec, errno);
  }
  // Everything else goes: the scratch copies and whatever the master holds, except the error
  // pipe, which is CLOEXEC and closes on a successful exec.
  if (!CloseRangeExcept(static_cast<unsigned>(first_free), UINT_MAX, a.err_write, a.max_fd)) {
    Fail(a.err_write, Step::kCloseRange, errno);
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
  if (sigprocmask(SIG_SETMASK, &empty, nullptr) != 0) Fail(a.err_write, Step::kSigmask, errno);

  execve(a.path, a.argv, a.envp);
  Fail(a.err_write, Step::kExecve, errno);
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

// The highest fd the child closes up to.
int MaxFd() {
  struct rlimit nofile;
  int max_fd = 65535;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    max_fd = static_cast<int>(nofile.rlim_cur < static_cast<rlim_t>(INT_MAX) ? nofile.rlim_cur
                                                                             : INT_MAX);
  }
  return max_fd;
}

// The CLOEXEC pipe the child reports its failure on, both ends above the passed fds.
core::Result<std::array<int, 2>> StatusPipe(int fd_count) {
  using R = core::Result<std::array<int, 2>>;
  std::array<int, 2> pipe_fds{};
  if (pipe2(pipe_fds.data(), O_CLOEXEC) != 0) return R::Error(PosixError("pipe2", errno));
  // The child's write end must survive phase two, so it may not sit where a passed fd goes.
  for (int& fd : pipe_fds) {
    if (fd < 3 + fd_count) {
      const int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3 + fd_count);
      if (moved < 0) {
        const int err = errno;
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        return R::Error(PosixError("fcntl(F_DUPFD_CLOEXEC)", err));
      }
      close(fd);
      fd = moved;
    }
  }
  return pipe_fds;
}

// fork with every signal blocked, so that no master handler runs in the child before the
// reset; the child never returns. Sets *fork_errno when fork fails.
pid_t ForkChild(const ChildArgs& args, int* fork_errno) {
  sigset_t all;
  sigset_t saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  const pid_t pid = fork();
  if (pid == 0) ChildMain(args);
  *fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  return pid;
}

}  // namespace

core::Result<StartedChild> StartSpawn(const SpawnPlan& plan) {
  using R = core::Result<StartedChild>;
  if (plan.path.empty() || plan.argv.empty()) return R::Error("spawn: empty command");
  for (int fd : plan.pass_fds) {
    if (fd < 0) return R::Error("spawn: invalid fd " + std::to_string(fd) + " in pass_fds");
  }
  ChildStrings strings = PrepareStrings(plan);
  std::vector<int> scratch(plan.pass_fds.size(), -1);
  const int fd_count = static_cast<int>(plan.pass_fds.size());
  const core::Result<std::array<int, 2>> pipe_fds = StatusPipe(fd_count);
  if (!pipe_fds.ok()) return R::Error(pipe_fds.error());

  const ChildArgs args{
      .path = plan.path.c_str(),
      .argv = strings.argv.data(),
      .envp = strings.envp.data(),
      .listen_pid = plan.set_listen_pid ? strings.listen_pid.data() : nullptr,
      .watchdog_pid = plan.set_watchdog_pid ? strings.watchdog_pid.data() : nullptr,
      .pass_fds = plan.pass_fds.data(),
      .scratch_fds = scratch.data(),
      .fd_count = fd_count,
      .err_read = pipe_fds.value()[0],
      .err_write = pipe_fds.value()[1],
      .pdeath_signal = plan.pdeath_signal.value_or(0),
      .expected_parent = plan.expected_parent != 0 ? plan.expected_parent : getpid(),
      .set_nice = plan.nice.has_value(),
      .nice = plan.nice.value_or(0),
      .max_fd = MaxFd(),
      .stdout_fd = plan.stdout_fd,
      .stderr_fd = plan.stderr_fd,
  };

  int fork_errno = 0;
  const pid_t pid = ForkChild(args, &fork_errno);
  close(pipe_fds.value()[1]);
  if (pid < 0) {
    close(pipe_fds.value()[0]);
    return R::Error(PosixError("fork", fork_errno));
  }
  return StartedChild{pid, pipe_fds.value()[0]};
}

core::Result<pid_t> Spawn(const SpawnPlan& plan) {
  using R = core::Result<pid_t>;
  auto started = StartSpawn(plan);
  if (!started.ok()) return R::Error(started.error());
  const pid_t pid = started.value().pid;
  const int status_fd = started.value().status_fd;

  ChildError record{};
  ssize_t n;
  do {
    n = read(status_fd, &record, sizeof(record));
  } while (n < 0 && errno == EINTR);
  const int read_errno = errno;
  close(status_fd);
  if (n == 0) return pid;  // EOF: the CLOEXEC write end closed on a successful exec

  // The child failed and is exiting: reap it here so the SIGCHLD reaper never reports a worker
  // that was never started.
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof(record))) {
    return R::Error("spawn " + plan.path + ": lost the child's status (" +
                    (n < 0 ? ErrnoText(read_errno) : std::string("short read")) + ")");
  }
  return R::Error(ChildErrorText(record, plan.path));
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
