#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

extern char** environ;

namespace einhorn::test {

std::optional<std::string> LookUpInPath(const std::string& name) {
  const char* path_env = std::getenv("PATH");
  std::stringstream dirs(path_env != nullptr ? path_env : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return std::nullopt;
}

namespace {

using Clock = std::chrono::steady_clock;

std::runtime_error SysError(const std::string& what, int err) {
  return std::runtime_error(what + ": " + std::strerror(err));
}

std::string EnvName(const std::string& entry) { return entry.substr(0, entry.find('=')); }

std::string FindInPath(const std::string& word) {
  if (word.find('/') != std::string::npos) return word;
  if (auto found = LookUpInPath(word)) return *found;
  throw std::runtime_error("test: cannot find " + word + " in PATH");
}

constexpr char kListenPidPrefix[] = "LISTEN_PID=";

struct ChildSetup {
  const char* path;
  char* const* argv;
  char* const* envp;
  char* listen_pid;
  const char* stdin_path;
  const char* stdout_path;
  const char* stderr_path;
  bool stderr_is_stdout;
  const char* cwd;
  const int* pass_fds;
  int* scratch;
  int fd_count;
  int err_read;
  int err_write;
};

[[noreturn]] void ChildFail(int fd, int err) {
  while (write(fd, &err, sizeof(err)) < 0 && errno == EINTR) {
  }
  _exit(127);
}

void RedirectTo(const char* path, int flags, int target, int err_fd) {
  const int fd = open(path, flags | O_CLOEXEC, 0644);
  if (fd < 0) ChildFail(err_fd, errno);
  if (dup2(fd, target) < 0) ChildFail(err_fd, errno);
  close(fd);
}

// Between fork and exec: async-signal-safe calls only.
[[noreturn]] void ChildMain(const ChildSetup& c) {
  close(c.err_read);
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
  }
  if (setpgid(0, 0) != 0) ChildFail(c.err_write, errno);
  if (c.cwd != nullptr && chdir(c.cwd) != 0) ChildFail(c.err_write, errno);
  if (c.stdin_path != nullptr) RedirectTo(c.stdin_path, O_RDONLY, 0, c.err_write);
  const int out_flags = O_WRONLY | O_CREAT | O_TRUNC | O_APPEND;
  if (c.stdout_path != nullptr) RedirectTo(c.stdout_path, out_flags, 1, c.err_write);
  if (c.stderr_is_stdout) {
    if (dup2(1, 2) < 0) ChildFail(c.err_write, errno);
  } else if (c.stderr_path != nullptr) {
    RedirectTo(c.stderr_path, out_flags, 2, c.err_write);
  }
  const int first_free = 3 + c.fd_count;
  for (int i = 0; i < c.fd_count; ++i) {
    c.scratch[i] = fcntl(c.pass_fds[i], F_DUPFD_CLOEXEC, first_free);
    if (c.scratch[i] < 0) ChildFail(c.err_write, errno);
  }
  for (int i = 0; i < c.fd_count; ++i) {
    if (dup2(c.scratch[i], 3 + i) < 0) ChildFail(c.err_write, errno);
    if (fcntl(3 + i, F_SETFD, 0) != 0) ChildFail(c.err_write, errno);
  }
  // CLOEXEC rather than close, so the error pipe stays usable until exec.
  if (close_range(static_cast<unsigned>(first_free), ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = first_free; fd < 65536; ++fd) {
      if (fd != c.err_write) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
  }
  if (c.listen_pid != nullptr) {
    char digits[24];
    int n = 0;
    auto v = static_cast<unsigned long>(getpid());
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    char* out = c.listen_pid + sizeof(kListenPidPrefix) - 1;
    while (n > 0) *out++ = digits[--n];
    *out = '\0';
  }
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);
  execve(c.path, c.argv, c.envp);
  ChildFail(c.err_write, errno);
}

core::ExitStatus FromWaitStatus(int status) {
  core::ExitStatus s;
  if (WIFSIGNALED(status)) {
    s.signaled = true;
    s.code = WTERMSIG(status);
  } else {
    s.code = WEXITSTATUS(status);
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// TempDir

TempDir::TempDir() {
  std::string tmpl = "/tmp/einhorn-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw SysError("mkdtemp", errno);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::File(const std::string& name) const { return path_ + "/" + name; }

// ---------------------------------------------------------------------------------------------
// Process

Process Process::Start(std::vector<std::string> argv) {
  Options options;
  options.argv = std::move(argv);
  return Start(std::move(options));
}

Process Process::Start(Options o) {
  if (o.argv.empty()) throw std::runtime_error("test: Process::Start with empty argv");
  const std::string path = FindInPath(o.argv[0]);

  std::vector<std::string> env;
  if (o.env) {
    env = *o.env;
  } else {
    for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  }
  std::vector<std::string> drop = o.unset_env;
  for (const std::string& e : o.extra_env) drop.push_back(EnvName(e));
  if (o.set_listen_pid) drop.push_back("LISTEN_PID");
  std::erase_if(env, [&](const std::string& e) {
    return std::find(drop.begin(), drop.end(), EnvName(e)) != drop.end();
  });
  env.insert(env.end(), o.extra_env.begin(), o.extra_env.end());

  std::vector<char*> argv_ptrs;
  for (const std::string& a : o.argv) argv_ptrs.push_back(const_cast<char*>(a.c_str()));
  argv_ptrs.push_back(nullptr);
  std::vector<char> listen_pid(sizeof(kListenPidPrefix) + 24, '\0');
  memcpy(listen_pid.data(), kListenPidPrefix, sizeof(kListenPidPrefix) - 1);
  std::vector<char*> env_ptrs;
  for (const std::string& e : env) env_ptrs.push_back(const_cast<char*>(e.c_str()));
  if (o.set_listen_pid) env_ptrs.push_back(listen_pid.data());
  env_ptrs.push_back(nullptr);
  std::vector<int> scratch(o.pass_fds.size(), -1);
  const int fd_count = static_cast<int>(o.pass_fds.size());

  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) throw SysError("pipe2", errno);
  for (int& fd : pipe_fds) {
    if (fd < 3 + fd_count) {
      const int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3 + fd_count);
      if (moved < 0) throw SysError("fcntl", errno);
      close(fd);
      fd = moved;
    }
  }

  auto opt = [](const std::string& s) { return s.empty() ? nullptr : s.c_str(); };
  const ChildSetup setup{
      .path = path.c_str(),
      .argv = argv_ptrs.data(),
      .envp = env_ptrs.data(),
      .listen_pid = o.set_listen_pid ? listen_pid.data() : nullptr,
      .stdin_path = opt(o.stdin_path),
      .stdout_path = opt(o.stdout_path),
      .stderr_path = opt(o.stderr_path),
      .stderr_is_stdout = !o.stderr_path.empty() && o.stderr_path == o.stdout_path,
      .cwd = opt(o.cwd),
      .pass_fds = o.pass_fds.data(),
      .scratch = scratch.data(),
      .fd_count = fd_count,
      .err_read = pipe_fds[0],
      .err_write = pipe_fds[1],
  };

  sigset_t all;
  sigset_t saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  const pid_t pid = fork();
  if (pid == 0) ChildMain(setup);
  const int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  close(pipe_fds[1]);
  if (pid < 0) {
    close(pipe_fds[0]);
    throw SysError("fork", fork_errno);
  }
  // Also from the parent, so a test that signals the group right away cannot race the child's
  // own setpgid. EACCES once the child has exec'd is fine: it did it itself.
  setpgid(pid, pid);

  int child_errno = 0;
  ssize_t n;
  do {
    n = read(pipe_fds[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  close(pipe_fds[0]);
  if (n != 0) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    throw std::runtime_error("test: cannot start " + path + ": " +
                             (n > 0 ? std::strerror(child_errno) : "lost the child's status"));
  }
  return Process(pid);
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), status_(std::exchange(other.status_, std::nullopt)) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    Kill();
    pid_ = std::exchange(other.pid_, -1);
    status_ = std::exchange(other.status_, std::nullopt);
  }
  return *this;
}

Process::~Process() { Kill(); }

std::optional<core::ExitStatus> Process::WaitExit(std::chrono::milliseconds timeout) {
  if (status_ || pid_ <= 0) return status_;
  const auto deadline = Clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      status_ = FromWaitStatus(status);
      return status_;
    }
    if (r < 0 && errno != EINTR) {
      // Not our child any more (someone else reaped it): report it as gone.
      status_ = core::ExitStatus{};
      return status_;
    }
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

bool Process::Signal(int sig) { return running() && kill(pid_, sig) == 0; }

bool Process::SignalGroup(int sig) { return running() && kill(-pid_, sig) == 0; }

void Process::Kill() {
  if (!running()) return;
  // As a subreaper for the duration, the orphans of what we kill are re-parented to this test
  // process instead of init, so they can be reaped here and leave no zombies behind (a
  // container's init often does not reap).
  int was_subreaper = 0;
  prctl(PR_GET_CHILD_SUBREAPER, &was_subreaper);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  // Freeze the tree first, so that a master cannot spawn a worker we would not see.
  kill(pid_, SIGSTOP);
  PollUntil(
      [this] {
        const char s = ProcessState(pid_);
        return s == 'T' || s == 'Z' || s == '\0';
      },
      std::chrono::milliseconds(500), std::chrono::milliseconds(1));
  const std::vector<pid_t> descendants = DescendantsOf(pid_);
  for (pid_t d : descendants) {
    if (getpgid(d) == d) kill(-d, SIGKILL);
    kill(d, SIGKILL);
  }
  kill(-pid_, SIGKILL);
  kill(pid_, SIGKILL);
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  status_ = r == pid_ ? FromWaitStatus(status) : core::ExitStatus{};
  // Each descendant is now our child (or already gone: ECHILD).
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (pid_t d : descendants) {
    while (true) {
      const pid_t w = waitpid(d, nullptr, WNOHANG);
      if (w == d || (w < 0 && errno != EINTR) || Clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  if (was_subreaper == 0) prctl(PR_SET_CHILD_SUBREAPER, 0);
}

// ---------------------------------------------------------------------------------------------
// Polling, files, /proc

bool PollUntil(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
               std::chrono::milliseconds step) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(step);
  }
  return cond();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string WriteShellScript(const TempDir& d, const std::string& name, const std::string& body) {
  const std::string path = d.File(name);
  WriteFile(path, "#!/bin/sh\nDIR='" + d.path() + "'\n" + body, 0755);
  return path;
}

void WriteFile(const std::string& path, const std::string& contents, mode_t mode) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw SysError("open " + path, errno);
  size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      throw SysError("write " + path, err);
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
}

bool FileExists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::vector<std::string> ProcStatFields(pid_t pid) {
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  // comm may contain spaces and parentheses: the fields start after the last ')'.
  const size_t close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return {};
  std::istringstream in(stat.substr(close_paren + 1));
  std::vector<std::string> fields;
  std::string f;
  while (in >> f) fields.push_back(f);
  return fields;
}

size_t OpenFds(pid_t pid) {
  size_t n = 0;
  DIR* d = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (d == nullptr) return 0;
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

char ProcessState(pid_t pid) {
  const std::vector<std::string> fields = ProcStatFields(pid);
  return fields.empty() || fields[0].empty() ? '\0' : fields[0][0];
}

std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> out;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return out;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long candidate = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0') continue;
    const std::vector<std::string> fields = ProcStatFields(static_cast<pid_t>(candidate));
    if (fields.size() > 1 && fields[1] == std::to_string(pid)) {
      out.push_back(static_cast<pid_t>(candidate));
    }
  }
  closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<pid_t> DescendantsOf(pid_t pid) {
  std::vector<pid_t> out;
  std::vector<pid_t> frontier{pid};
  while (!frontier.empty()) {
    std::vector<pid_t> next;
    for (pid_t p : frontier) {
      for (pid_t c : ChildrenOf(p)) {
        if (std::find(out.begin(), out.end(), c) == out.end()) {
          out.push_back(c);
          next.push_back(c);
        }
      }
    }
    frontier = std::move(next);
  }
  return out;
}

bool ProcessAlive(pid_t pid) {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno != EPERM) return false;
  const char state = ProcessState(pid);
  return state != '\0' && state != 'Z' && state != 'X';
}

// ---------------------------------------------------------------------------------------------
// HTTP

namespace {

// Sends the request and reads to EOF on a connected socket, within `deadline`.
std::string Exchange(int fd, Clock::time_point deadline) {
  auto set_timeouts = [&]() {
    const auto left =
        std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    timeval tv;
    tv.tv_sec = static_cast<time_t>(left.count() / 1000000);
    tv.tv_usec = static_cast<suseconds_t>(left.count() % 1000000);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return true;
  };
  static constexpr char kRequest[] = "GET / HTTP/1.0\r\n\r\n";
  size_t sent = 0;
  while (sent < sizeof(kRequest) - 1) {
    if (!set_timeouts()) return "";
    const ssize_t n = send(fd, kRequest + sent, sizeof(kRequest) - 1 - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "";
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buf[4096];
  while (true) {
    if (!set_timeouts()) return "";
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return "";  // includes the SO_RCVTIMEO timeout (EAGAIN)
    if (n == 0) return response;
    response.append(buf, static_cast<size_t>(n));
  }
}

std::string Body(const std::string& raw) {
  size_t at = raw.find("\r\n\r\n");
  if (at != std::string::npos) return raw.substr(at + 4);
  at = raw.find("\n\n");
  if (at != std::string::npos) return raw.substr(at + 2);
  return raw;
}

}  // namespace

std::string HttpGetRaw(const std::string& host, int port, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return "";
  std::string out;
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    const auto left =
        std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
    timeval tv;
    tv.tv_sec = static_cast<time_t>(std::max<long long>(left.count(), 1) / 1000000);
    tv.tv_usec = static_cast<suseconds_t>(std::max<long long>(left.count(), 1) % 1000000);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));  // bounds connect() too
    int rc;
    do {
      rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    } while (rc != 0 && errno == EINTR);
    if (rc == 0) out = Exchange(fd, deadline);
    close(fd);
    if (rc == 0) break;
  }
  freeaddrinfo(found);
  return out;
}

std::string HttpGet(const std::string& host, int port, std::chrono::milliseconds timeout) {
  return Body(HttpGetRaw(host, port, timeout));
}

std::string HttpGetUnixRaw(const std::string& path, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return "";
  memcpy(addr.sun_path, path.data(), path.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  // A full backlog makes a UNIX connect() wait; SO_SNDTIMEO bounds that wait.
  const auto left = std::chrono::duration_cast<std::chrono::microseconds>(timeout);
  timeval tv;
  tv.tv_sec = static_cast<time_t>(std::max<long long>(left.count(), 1) / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(std::max<long long>(left.count(), 1) % 1000000);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int rc;
  do {
    rc = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  } while (rc != 0 && errno == EINTR);
  std::string out = rc == 0 ? Exchange(fd, deadline) : "";
  close(fd);
  return out;
}

std::string HttpGetUnix(const std::string& path, std::chrono::milliseconds timeout) {
  return Body(HttpGetUnixRaw(path, timeout));
}

}  // namespace einhorn::test
