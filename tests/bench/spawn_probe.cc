// Two probes for the spawn benchmark (tests/bench/scenarios/spawn.sh). Built by the scripts
// with plain g++ (libc and the standard library only).
//
//   spawn_probe floor N exec|ack [fork|vfork|posix_spawn] WORKER [ARGS...]
//     The physical limit: N bare fork+execs of WORKER from one process, with nothing else going
//     on. Each child gets what an einhorn-cpp worker gets for the fd and the ack (a listening
//     TCP socket on 127.0.0.1 as fd 3 with EINHORN_FD_0=3 and EINHORN_FD_COUNT=1, and
//     EINHORN_SOCK_PATH naming a UNIX socket this probe listens on), PR_SET_PDEATHSIG, and an
//     exec-status pipe as the master uses. `exec`: done once every child has exec'd (each
//     status pipe reads EOF). `ack`: done once N `worker:ack` lines have arrived on the socket.
//     Prints "DONE LAST_FORK" as CLOCK_REALTIME seconds: when it was done, and when the last
//     fork returned. Then it SIGKILLs and reaps its children.
//     With a method named, that method starts the children and a third figure follows: the
//     probe's own CPU seconds (utime + stime) from its first spawn to DONE. `fork` is the
//     above; `vfork` is vfork() (the parent waits until the child exec'd, so the outcome is
//     known without a pipe); `posix_spawn` is glibc's (clone(CLONE_VM|CLONE_VFORK) inside),
//     with fd 3 placed by a file action and no PR_SET_PDEATHSIG (posix_spawn has none).
//
//   spawn_probe wait-log LOG N PATTERN PID STALL_S
//     Follows LOG (as it grows) until N lines contain PATTERN, then prints CLOCK_REALTIME
//     seconds. Gives up (exit 1, printing "- SEEN") if PID dies or no new such line arrives
//     for STALL_S seconds. Polls every 0.5 ms.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "spawn_probe: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

double RealNow() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

int ListenTcp() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) Die("bind tcp");
  if (listen(fd, 100) != 0) Die("listen tcp");
  // Out of the way of fd 3, which the children's dup2 targets: dup2 onto itself would leave
  // CLOEXEC set.
  const int high = fcntl(fd, F_DUPFD_CLOEXEC, 100);
  if (high < 0) Die("fcntl(F_DUPFD_CLOEXEC)");
  close(fd);
  return high;
}

int ListenUnix(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) Die("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) Die("ack socket path too long");
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) Die("bind " + path);
  if (listen(fd, SOMAXCONN) != 0) Die("listen unix");
  return fd;
}

// Counts complete lines on the ack connections; returns when `want` have arrived.
void CollectAcks(int listen_fd, int want) {
  struct Conn {
    int fd;
    std::string buf;
  };
  std::vector<Conn> conns;
  int acks = 0;
  std::vector<pollfd> fds;
  while (acks < want) {
    fds.assign({{listen_fd, POLLIN, 0}});
    for (const Conn& c : conns) fds.push_back({c.fd, POLLIN, 0});
    if (poll(fds.data(), fds.size(), 60'000) <= 0) Die("no ack within 60 s (or poll)");
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      Conn& c = conns[i - 1];
      char buf[512];
      const ssize_t n = read(c.fd, buf, sizeof buf);
      if (n > 0) {
        c.buf.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (c.buf.find("worker:ack") != std::string::npos) ++acks;
      close(c.fd);
      c.fd = -1;
    }
    std::erase_if(conns, [](const Conn& c) { return c.fd < 0; });
    if (fds[0].revents & POLLIN) {
      for (;;) {
        const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;
        conns.push_back({fd, {}});
      }
    }
  }
  for (const Conn& c : conns) close(c.fd);
}

enum class Method { kFork, kVfork, kPosixSpawn };

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// vfork in a function of its own, so that no local of the caller's loop lives across it.
[[gnu::noinline]] pid_t VforkExec(pid_t parent, int tcp, char** argv, char** envp) {
  // The child shares our memory until it execs; exec_errno is its only write.
  volatile int exec_errno = 0;
  const pid_t pid = vfork();
  if (pid < 0) Die("vfork");
  if (pid == 0) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(126);
    if (dup2(tcp, 3) < 0) _exit(126);
    execve(argv[0], argv, envp);
    exec_errno = errno;
    _exit(127);
  }
  if (exec_errno != 0) {
    errno = exec_errno;
    Die(std::string("execve ") + argv[0]);
  }
  return pid;
}

int Floor(int n, bool ack, Method method, bool print_cpu, char** argv) {
  // One status pipe per child, plus the ack connections: more than a default soft limit of
  // 1024 allows at N = 1000.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  char dir_template[] = "/tmp/spawn-floor-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) Die("mkdtemp");
  const std::string sock_path = std::string(dir_template) + "/ack.sock";
  const int tcp = ListenTcp();
  const int unix_fd = ListenUnix(sock_path);

  // The environment, computed before the first fork as the master does.
  std::vector<std::string> env_store = {"EINHORN_FD_0=3", "EINHORN_FD_COUNT=1",
                                        "EINHORN_SOCK_PATH=" + sock_path};
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "EINHORN_FD_", 11) != 0 && std::strncmp(*e, "EINHORN_SOCK_", 13) != 0) {
      env_store.emplace_back(*e);
    }
  }
  std::vector<char*> envp;
  for (std::string& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);

  const pid_t parent = getpid();
  std::vector<pid_t> pids;
  std::vector<int> status_fds;
  pids.reserve(static_cast<size_t>(n));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, tcp, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  const double cpu0 = CpuSeconds();
  for (int i = 0; i < n; ++i) {
    if (method == Method::kPosixSpawn) {
      pid_t pid = -1;
      const int err = posix_spawn(&pid, argv[0], &actions, &attr, argv, envp.data());
      if (err != 0) {
        errno = err;
        Die(std::string("posix_spawn ") + argv[0]);
      }
      pids.push_back(pid);
      continue;
    }
    if (method == Method::kVfork) {
      pids.push_back(VforkExec(parent, tcp, argv, envp.data()));
      continue;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) Die("pipe2");
    const pid_t pid = fork();
    if (pid < 0) Die("fork");
    if (pid == 0) {
      // No allocation here: the child runs straight to execve.
      if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(126);
      if (dup2(tcp, 3) < 0) _exit(126);  // dup2 leaves the copy without CLOEXEC
      execve(argv[0], argv, envp.data());
      const int err = errno;
      [[maybe_unused]] ssize_t w = write(p[1], &err, sizeof err);
      _exit(127);
    }
    close(p[1]);
    pids.push_back(pid);
    status_fds.push_back(p[0]);
  }
  const double last_fork = RealNow();

  if (ack) {
    CollectAcks(unix_fd, n);
    for (int fd : status_fds) close(fd);
  } else {
    // EOF on a status pipe: its child exec'd. Data on it: the exec failed.
    std::vector<pollfd> fds;
    for (int fd : status_fds) fds.push_back({fd, POLLIN, 0});
    size_t open = fds.size();
    while (open > 0) {
      if (poll(fds.data(), fds.size(), 60'000) <= 0) Die("no exec within 60 s (or poll)");
      for (pollfd& f : fds) {
        if (f.fd < 0 || f.revents == 0) continue;
        int err = 0;
        if (read(f.fd, &err, sizeof err) > 0) {
          errno = err;
          Die(std::string("execve ") + argv[0]);
        }
        close(f.fd);
        f.fd = -1;
        --open;
      }
    }
  }
  const double done = RealNow();
  const double cpu = CpuSeconds() - cpu0;
  if (print_cpu) {
    std::printf("%.6f %.6f %.6f\n", done, last_fork, cpu);
  } else {
    std::printf("%.6f %.6f\n", done, last_fork);
  }
  std::fflush(stdout);

  for (pid_t pid : pids) kill(pid, SIGKILL);
  for (pid_t pid : pids) waitpid(pid, nullptr, 0);
  unlink(sock_path.c_str());
  rmdir(dir_template);
  return 0;
}

int WaitLog(const char* log, int n, const std::string& pattern, pid_t pid, double stall_s) {
  double deadline = RealNow() + stall_s;
  int fd = -1;
  std::string pending;
  int seen = 0;
  char buf[64 * 1024];
  for (;;) {
    if (fd < 0) fd = open(log, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      for (ssize_t got; (got = read(fd, buf, sizeof buf)) > 0;) {
        pending.append(buf, static_cast<size_t>(got));
        size_t start = 0;
        for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
          if (std::string_view(pending).substr(start, nl - start).find(pattern) !=
              std::string_view::npos) {
            ++seen;
            deadline = RealNow() + stall_s;
          }
        }
        pending.erase(0, start);
      }
    }
    if (seen >= n) {
      std::printf("%.6f\n", RealNow());
      return 0;
    }
    if (kill(pid, 0) != 0) {
      std::fprintf(stderr, "spawn_probe: process %d is gone after %d of %d lines\n", pid, seen, n);
      std::printf("- %d\n", seen);
      return 1;
    }
    if (RealNow() > deadline) {
      std::fprintf(stderr, "spawn_probe: %d of %d lines, none new for %.0f s\n", seen, n, stall_s);
      std::printf("- %d\n", seen);
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

int Usage() {
  std::fprintf(stderr,
               "usage: spawn_probe floor N exec|ack [fork|vfork|posix_spawn] WORKER [ARGS...]\n"
               "       spawn_probe wait-log LOG N PATTERN PID STALL_S\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 5 && std::strcmp(argv[1], "floor") == 0) {
    const int n = std::atoi(argv[2]);
    const std::string mode = argv[3];
    if (n < 1 || (mode != "exec" && mode != "ack")) return Usage();
    const std::string word = argv[4];
    Method method = Method::kFork;
    const bool named = word == "fork" || word == "vfork" || word == "posix_spawn";
    if (word == "vfork") method = Method::kVfork;
    if (word == "posix_spawn") method = Method::kPosixSpawn;
    if (named && argc < 6) return Usage();
    return Floor(n, mode == "ack", method, named, argv + (named ? 5 : 4));
  }
  if (argc == 7 && std::strcmp(argv[1], "wait-log") == 0) {
    const int n = std::atoi(argv[3]);
    const pid_t pid = static_cast<pid_t>(std::atoi(argv[5]));
    const double stall = std::atof(argv[6]);
    if (n < 1 || pid <= 0 || stall <= 0) return Usage();
    return WaitLog(argv[2], n, argv[4], pid, stall);
  }
  return Usage();
}
