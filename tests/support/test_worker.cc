// test_worker: a worker with switchable behaviour for the process-level tests (tests/sys,
// tests/e2e). It reports what it inherited from the master and which signals it received, in
// files the tests read; see Usage() for the flags.
//
// Report file DIR/<pid>.env, written once at start via DIR/<pid>.env.tmp + rename, so a test
// that sees it sees all of it. One `key=value` per line:
//   pid, ppid, pgid                  getpid(), getppid(), getpgrp()
//   EINHORN_*, LISTEN_*              every such environment variable, verbatim
//   NOTIFY_SOCKET                    only if set
//   fds                              open fds at start, ascending, space-separated
//   sockname_<fd>, nonblock_<fd>     for fds 3..3+LISTEN_FDS-1 and every EINHORN_FD_<n>:
//                                    127.0.0.1:PORT | [::1]:PORT | unix:/path | unix:@abstract |
//                                    unix: (unnamed) | error:<strerror>; nonblock 0|1|error
//   nice                             getpriority(PRIO_PROCESS, 0)
//   sigign, sigblk                   SigIgn / SigBlk from /proc/self/status (16 hex digits)
//   grandchild                       with --spawn-grandchild: its pid
// Signals file DIR/<pid>.signals: one line per USR1, USR2, TERM, INT, QUIT, HUP, CONT, WINCH,
// URG, ALRM or PWR received, in order of handling, e.g. "USR2". Appended before the worker acts
// on the signal; only USR2, TERM, INT and QUIT make it stop.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr struct {
  int number;
  const char* name;
} kSignals[] = {{SIGUSR1, "USR1"}, {SIGUSR2, "USR2"}, {SIGTERM, "TERM"}, {SIGINT, "INT"},
                {SIGQUIT, "QUIT"}, {SIGHUP, "HUP"},   {SIGCONT, "CONT"}, {SIGWINCH, "WINCH"},
                {SIGURG, "URG"},   {SIGALRM, "ALRM"}, {SIGPWR, "PWR"}};

const char* SignalName(int sig) {
  for (const auto& s : kSignals) {
    if (s.number == sig) return s.name;
  }
  return "?";
}

std::optional<int> SignalNumber(std::string name) {
  if (name.rfind("SIG", 0) == 0) name.erase(0, 3);
  for (const auto& s : kSignals) {
    if (name == s.name) return s.number;
  }
  return std::nullopt;
}

int wake_pipe[2] = {-1, -1};

// Only hands the signal number to the main loop; all work happens there.
void OnSignal(int sig) {
  const int saved_errno = errno;
  const unsigned char byte = static_cast<unsigned char>(sig);
  [[maybe_unused]] ssize_t n = write(wake_pipe[1], &byte, 1);
  errno = saved_errno;
}

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(stderr,
               "test_worker: %s\n"
               "usage: test_worker [--report DIR] [--exit CODE] [--exit-after-ms N]\n"
               "                   [--ignore SIG]... [--drain-ms N] [--serve] "
               "[--spawn-grandchild]\n"
               "                   [--ack ruby|go|json|json-compact|node] [--ack-pid N]\n"
               "                   [--ack-fd] [--ack-from-child]\n",
               error.c_str());
  std::exit(2);
}

long ParseLong(const char* text, const char* flag) {
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < 0) {
    Usage(std::string("bad value for ") + flag + ": '" + text + "'");
  }
  return value;
}

struct Flags {
  std::string report_dir;
  std::optional<int> exit_code;
  std::optional<milliseconds> exit_after;
  std::set<int> ignored;
  milliseconds drain{0};
  bool serve = false;
  bool spawn_grandchild = false;
  std::string ack_shape;         // --ack: ruby, go, json, json-compact, node
  std::optional<long> ack_pid;   // --ack-pid: claim another pid (spoofing tests)
  bool ack_via_fd = false;       // --ack-fd: write on EINHORN_SOCK_FD (-g) instead of connecting
  bool ack_from_child = false;   // --ack-from-child: a forked child sends it (a descendant)
};

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) Usage(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--report") {
      flags.report_dir = value();
    } else if (arg == "--exit") {
      flags.exit_code = static_cast<int>(ParseLong(value(), "--exit"));
    } else if (arg == "--exit-after-ms") {
      flags.exit_after = milliseconds(ParseLong(value(), "--exit-after-ms"));
    } else if (arg == "--ignore") {
      const char* name = value();
      const std::optional<int> sig = SignalNumber(name);
      if (!sig) Usage(std::string("unknown signal '") + name + "'");
      flags.ignored.insert(*sig);
    } else if (arg == "--drain-ms") {
      flags.drain = milliseconds(ParseLong(value(), "--drain-ms"));
    } else if (arg == "--serve") {
      flags.serve = true;
    } else if (arg == "--spawn-grandchild") {
      flags.spawn_grandchild = true;
    } else if (arg == "--ack") {
      flags.ack_shape = value();
    } else if (arg == "--ack-pid") {
      flags.ack_pid = ParseLong(value(), "--ack-pid");
    } else if (arg == "--ack-fd") {
      flags.ack_via_fd = true;
    } else if (arg == "--ack-from-child") {
      flags.ack_from_child = true;
    } else {
      Usage("unknown argument '" + arg + "'");
    }
  }
  return flags;
}

std::vector<int> OpenFds() {
  std::vector<int> fds;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  const int own = dirfd(dir);
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd != own) fds.push_back(fd);
  }
  closedir(dir);
  std::sort(fds.begin(), fds.end());
  return fds;
}

std::string StatusField(const std::string& key) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(key + ":", 0) == 0) {
      const size_t start = line.find_first_not_of(" \t", key.size() + 1);
      return start == std::string::npos ? "" : line.substr(start);
    }
  }
  return "";
}

std::string SockName(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return std::string("error:") + std::strerror(errno);
  }
  char host[INET6_ADDRSTRLEN] = "";
  switch (addr.ss_family) {
    case AF_INET: {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
      inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
      return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
    }
    case AF_INET6: {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
      inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
      return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
    }
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&addr);
      if (len <= offsetof(sockaddr_un, sun_path)) return "unix:";
      const size_t path_len = len - offsetof(sockaddr_un, sun_path);
      if (un->sun_path[0] == '\0') return "unix:@" + std::string(un->sun_path + 1, path_len - 1);
      return "unix:" + std::string(un->sun_path, strnlen(un->sun_path, path_len));
    }
    default:
      return "family:" + std::to_string(addr.ss_family);
  }
}

// The fds the master announced, by either convention.
std::set<int> AnnouncedFds() {
  std::set<int> fds;
  if (const char* count = std::getenv("LISTEN_FDS")) {
    for (int i = 0; i < std::atoi(count); ++i) fds.insert(3 + i);
  }
  for (char** env = environ; *env != nullptr; ++env) {
    int n = 0;
    int fd = 0;
    if (std::sscanf(*env, "EINHORN_FD_%d=%d", &n, &fd) == 2) fds.insert(fd);
  }
  return fds;
}

std::string BuildReport(const std::vector<int>& fds_at_start, const std::string& sigign,
                        const std::string& sigblk, pid_t grandchild) {
  std::string out = "pid=" + std::to_string(getpid()) + "\nppid=" + std::to_string(getppid()) +
                    "\npgid=" + std::to_string(getpgrp()) + "\n";
  for (char** env = environ; *env != nullptr; ++env) {
    const std::string entry = *env;
    if (entry.rfind("EINHORN_", 0) == 0 || entry.rfind("LISTEN_", 0) == 0 ||
        entry.rfind("NOTIFY_SOCKET=", 0) == 0) {
      out += entry + "\n";
    }
  }
  out += "fds=";
  for (size_t i = 0; i < fds_at_start.size(); ++i) {
    out += (i == 0 ? "" : " ") + std::to_string(fds_at_start[i]);
  }
  out += "\n";
  for (int fd : AnnouncedFds()) {
    const int fl = fcntl(fd, F_GETFL);
    out += "sockname_" + std::to_string(fd) + "=" + SockName(fd) + "\n";
    out += "nonblock_" + std::to_string(fd) + "=" +
           (fl < 0              ? "error"
            : (fl & O_NONBLOCK) ? "1"
                                : "0") +
           "\n";
  }
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, 0);
  out += "nice=" + (errno != 0 ? std::string("error") : std::to_string(nice)) + "\n";
  out += "sigign=" + sigign + "\nsigblk=" + sigblk + "\n";
  if (grandchild > 0) out += "grandchild=" + std::to_string(grandchild) + "\n";
  return out;
}

bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += n;
  }
  return true;
}

void WriteReport(const std::string& dir, const std::string& report) {
  const std::string path = dir + "/" + std::to_string(getpid()) + ".env";
  const std::string tmp = path + ".tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || !WriteAll(fd, report) || close(fd) != 0 || rename(tmp.c_str(), path.c_str()) != 0) {
    std::fprintf(stderr, "test_worker: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
    std::exit(3);
  }
}

void RecordSignal(const std::string& dir, int sig) {
  if (dir.empty()) return;
  const std::string path = dir + "/" + std::to_string(getpid()) + ".signals";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  WriteAll(fd, std::string(SignalName(sig)) + "\n");
  close(fd);
}

// A process that only exists to be found (or not) later: it holds no fd of ours, so it keeps
// neither the listening sockets nor the test's output pipes open.
pid_t SpawnGrandchild() {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  const int null_fd = open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3; ++fd) dup2(null_fd, fd);
  for (int fd : OpenFds()) {
    if (fd > 2) close(fd);
  }
  for (;;) pause();
}

// Answers one HTTP request on the client fd, giving up on a client silent for 5 s.
void ServeOne(int client) {
  std::string request;
  char buf[4096];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 65536) {
    pollfd pfd{client, POLLIN, 0};
    const int ready = poll(&pfd, 1, 5000);
    if (ready < 0 && errno == EINTR) continue;  // the signal waits in the pipe meanwhile
    if (ready <= 0) break;
    const ssize_t n = read(client, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    request.append(buf, n);
  }
  if (request.find("\r\n\r\n") != std::string::npos) {
    const std::string body = "pid " + std::to_string(getpid()) + "\n";
    WriteAll(client,
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
             "Content-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body);
  }
  close(client);
}

// The bytes real clients send for an ack (EINHORN-CONTRACT.md section 3.3).
std::string AckBytes(const std::string& shape, long pid) {
  const std::string p = std::to_string(pid);
  if (shape == "ruby") return "---%0Acommand: worker:ack%0Apid: " + p + "%0A\n";
  if (shape == "go") return "command: worker:ack%0Apid: " + p + "%0A\n";
  if (shape == "json") return "{\"command\": \"worker:ack\", \"pid\": " + p + "}\n";
  if (shape == "json-compact") return "{\"command\":\"worker:ack\", \"pid\":" + p + "}\n";
  if (shape == "node") return "---%0Acommand:%20worker:ack%0Apid:%20" + p + "\n";
  Usage("unknown ack shape '" + shape + "'");
}

// Sends one ack as a worker library would: write the line, then close without reading.
// `worker` is the pid being acked: ours, or our parent's when a forked child sends it.
void SendAck(const Flags& flags, pid_t worker) {
  const std::string bytes = AckBytes(flags.ack_shape, flags.ack_pid.value_or(worker));
  if (flags.ack_via_fd) {
    const char* fd_text = std::getenv("EINHORN_SOCK_FD");
    if (fd_text == nullptr) Usage("--ack-fd needs EINHORN_SOCK_FD (-g)");
    const int fd = static_cast<int>(ParseLong(fd_text, "EINHORN_SOCK_FD"));
    WriteAll(fd, bytes);
    return;
  }
  const char* path = std::getenv("EINHORN_SOCK_PATH");
  if (path == nullptr) Usage("--ack needs EINHORN_SOCK_PATH");
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
  if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      WriteAll(fd, bytes)) {
    // Like einhornctl ack: stay until the master has read it and closed the connection.
    pollfd p{fd, POLLIN, 0};
    char byte;
    while (poll(&p, 1, 5000) > 0 && read(fd, &byte, 1) > 0) {
    }
  }
  if (fd >= 0) close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);

  // Snapshot what the master gave us before we open anything or touch a disposition.
  const std::vector<int> fds_at_start = OpenFds();
  const std::string sigign = StatusField("SigIgn");
  const std::string sigblk = StatusField("SigBlk");

  // Forked before our handlers exist, so it keeps default dispositions and dies of whatever
  // signal reaches its process group.
  const pid_t grandchild = flags.spawn_grandchild ? SpawnGrandchild() : 0;

  int listen_fd = -1;
  if (flags.serve) {
    const char* fd_text = std::getenv("EINHORN_FD_0");
    if (fd_text == nullptr) Usage("--serve needs EINHORN_FD_0");
    listen_fd = static_cast<int>(ParseLong(fd_text, "EINHORN_FD_0"));
    // A client that hangs up early must not kill the worker under test.
    signal(SIGPIPE, SIG_IGN);
  }

  // Handlers go in before the report exists: a test may signal us as soon as it sees the report.
  if (pipe(wake_pipe) != 0) return 3;
  for (int fd : wake_pipe) {
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, O_NONBLOCK);
  }
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  // No SA_RESTART: a signal must interrupt a blocking accept() in --serve.
  for (const auto& s : kSignals) sigaction(s.number, &action, nullptr);

  if (!flags.report_dir.empty()) {
    WriteReport(flags.report_dir, BuildReport(fds_at_start, sigign, sigblk, grandchild));
  }
  if (flags.exit_code) return *flags.exit_code;
  if (!flags.ack_shape.empty()) {
    if (flags.ack_from_child) {
      const pid_t child = fork();
      if (child == 0) {
        SendAck(flags, getppid());
        _exit(0);
      }
      if (child > 0) waitpid(child, nullptr, 0);
    } else {
      SendAck(flags, getpid());
    }
  }

  std::optional<Clock::time_point> exit_at;
  if (flags.exit_after) exit_at = Clock::now() + *flags.exit_after;
  bool stopping = false;
  for (;;) {
    const Clock::time_point now = Clock::now();
    if (exit_at && now >= *exit_at) return 0;
    int timeout_ms = -1;
    if (exit_at) {
      timeout_ms = static_cast<int>(std::chrono::ceil<milliseconds>(*exit_at - now).count());
    }
    // The listening socket is left blocking: O_NONBLOCK is shared with the other workers and
    // the tests check that flag. A sibling may win the race for a connection; a blocking
    // accept() then waits for the next one, or for a signal (EINTR).
    pollfd fds[2] = {{wake_pipe[0], POLLIN, 0}, {stopping ? -1 : listen_fd, POLLIN, 0}};
    if (poll(fds, 2, timeout_ms) < 0 && errno != EINTR) return 3;

    unsigned char sigs[64];
    const ssize_t n = (fds[0].revents & POLLIN) ? read(wake_pipe[0], sigs, sizeof(sigs)) : 0;
    for (ssize_t i = 0; i < n; ++i) {
      RecordSignal(flags.report_dir, sigs[i]);
      const bool stop_signal =
          sigs[i] == SIGUSR2 || sigs[i] == SIGTERM || sigs[i] == SIGINT || sigs[i] == SIGQUIT;
      if (stop_signal && !flags.ignored.contains(sigs[i]) && !stopping) {
        stopping = true;
        // Keep looping through the drain so that repeated signals are still recorded.
        const Clock::time_point drain_end = Clock::now() + flags.drain;
        if (!exit_at || drain_end < *exit_at) exit_at = drain_end;
      }
    }
    if (!stopping && (fds[1].revents & POLLIN)) {
      const int client = accept(listen_fd, nullptr, nullptr);
      if (client >= 0) ServeOne(client);
    }
  }
}
