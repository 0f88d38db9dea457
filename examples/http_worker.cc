// einhorn-example-http: a tiny HTTP worker showing how to run under einhorn-cpp.
//
//   einhorn-cpp -n 4 -b 127.0.0.1:8080,r -- einhorn-example-http [--delay-ms N]
//   einhorn-cpp -n 4 -b 127.0.0.1:8080,r -m manual -- einhorn-example-http --ack
//   curl 127.0.0.1:8080   ->   hello from worker 4242 (slot 0)
//
// What a worker needs to do, and what this one shows:
//  * Take the listening socket the master opened: its fd number is in EINHORN_FD_0. Under plain
//    systemd socket activation (or another supervisor using that convention) the socket is fd 3,
//    announced by LISTEN_FDS and meant for us only if LISTEN_PID is our own pid.
//  * Share that socket with the other workers: all of them accept on it, and the kernel hands
//    each connection to one of them.
//  * With --ack (for `-m manual`): say "ready" once able to serve, the way Einhorn's worker
//    libraries do: connect to EINHORN_SOCK_PATH, write one worker:ack line, close.
//  * Drain on SIGUSR2 (einhorn's "please stop"; also SIGTERM and SIGINT): stop accepting, finish
//    the requests already accepted, exit 0. The master starts replacements meanwhile, so no
//    request is dropped during an upgrade.
//
// POSIX only, no dependencies. Every request on any path gets the same answer; request bodies
// are not read, and each connection serves one request (Connection: close).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kMaxRequestBytes = 64 * 1024;
// Bounds how long a silent client can hold a connection, and so how long a drain can take.
constexpr milliseconds kReadTimeout{10000};

// The signal handler's only job: wake the poll loop. Everything else happens in the loop.
int wake_pipe[2] = {-1, -1};

void OnStopSignal(int) {
  const int saved_errno = errno;
  const char byte = 1;
  // If the pipe is full a wake-up is already pending, which is all we need.
  [[maybe_unused]] ssize_t n = write(wake_pipe[1], &byte, 1);
  errno = saved_errno;
}

bool SetNonBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

bool ParseInt(const char* text, long* out) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  *out = std::strtol(text, &end, 10);
  return errno == 0 && *end == '\0';
}

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "einhorn-example-http: %s\n", message.c_str());
  std::exit(2);
}

// Finds the inherited listening socket: einhorn's variable first, then systemd's convention.
int ListeningFd() {
  long fd = -1;
  if (const char* einhorn_fd = std::getenv("EINHORN_FD_0")) {
    if (!ParseInt(einhorn_fd, &fd) || fd < 0) Die("EINHORN_FD_0 is not an fd number");
  } else {
    long count = 0;
    long listen_pid = 0;
    if (!ParseInt(std::getenv("LISTEN_FDS"), &count) || count < 1 ||
        !ParseInt(std::getenv("LISTEN_PID"), &listen_pid) || listen_pid != getpid()) {
      Die("no listening socket: run me under einhorn-cpp with -b (EINHORN_FD_0) "
          "or with systemd socket activation (LISTEN_FDS, LISTEN_PID)");
    }
    fd = 3;  // SD_LISTEN_FDS_START
  }
  int accepting = 0;
  socklen_t len = sizeof(accepting);
  if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 ||
      !accepting) {
    Die("fd " + std::to_string(fd) + " is not a listening socket");
  }
  return static_cast<int>(fd);
}

// One line of JSON, which is also YAML; a pid needs no escaping.
void Ack() {
  const char* path = std::getenv("EINHORN_SOCK_PATH");
  if (path == nullptr || *path == '\0') Die("--ack: EINHORN_SOCK_PATH is not set (run under einhorn)");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (std::strlen(path) >= sizeof addr.sun_path) Die("--ack: EINHORN_SOCK_PATH is too long");
  std::strcpy(addr.sun_path, path);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    Die(std::string("--ack: cannot connect to ") + path + ": " + std::strerror(errno));
  }
  const std::string line =
      "{\"command\":\"worker:ack\",\"pid\":" + std::to_string(getpid()) + "}\n";
  if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    Die(std::string("--ack: write: ") + std::strerror(errno));
  }
  close(fd);
}

struct Connection {
  enum class Phase { kReading, kDelaying, kWriting };
  int fd;
  Phase phase = Phase::kReading;
  std::string request;
  size_t sent = 0;
  Clock::time_point deadline;  // kReading: give up; kDelaying: start writing
};

}  // namespace

int main(int argc, char** argv) {
  milliseconds delay{0};
  bool ack = false;
  for (int i = 1; i < argc; ++i) {
    long ms = 0;
    if (std::strcmp(argv[i], "--delay-ms") == 0 && i + 1 < argc && ParseInt(argv[i + 1], &ms) &&
        ms >= 0) {
      delay = milliseconds(ms);
      ++i;
    } else if (std::strcmp(argv[i], "--ack") == 0) {
      ack = true;
    } else {
      Die(std::string("unknown argument '") + argv[i] +
          "'\nusage: einhorn-example-http [--delay-ms N] [--ack]");
    }
  }

  const int listen_fd = ListeningFd();
  // The socket may arrive blocking. O_NONBLOCK lives on the shared open file, so this changes
  // it for the sibling workers too; that is harmless as long as they all poll before accepting.
  // Without it, a worker woken for a connection a sibling already took would block in accept().
  if (!SetNonBlocking(listen_fd)) Die(std::string("fcntl: ") + std::strerror(errno));

  if (pipe(wake_pipe) != 0) Die(std::string("pipe: ") + std::strerror(errno));
  for (int fd : wake_pipe) {
    SetNonBlocking(fd);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  for (int sig : {SIGUSR2, SIGTERM, SIGINT}) sigaction(sig, &action, nullptr);
  // A client that hangs up early must cost us a connection, not the process.
  signal(SIGPIPE, SIG_IGN);

  const char* slot = std::getenv("EINHORN_CHILD_INDEX");
  const std::string body = "hello from worker " + std::to_string(getpid()) + " (slot " +
                           (slot != nullptr ? slot : "-") + ")\n";
  const std::string response =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;

  if (ack) Ack();

  const char* quiet = std::getenv("EINHORN_EXAMPLE_QUIET");
  if (quiet == nullptr || std::strcmp(quiet, "1") != 0) {
    std::fprintf(stderr, "worker %d serving on fd %d\n", static_cast<int>(getpid()), listen_fd);
  }

  bool accepting = true;
  Clock::time_point resume_accept{};  // after EMFILE, pause instead of spinning on poll
  std::list<Connection> connections;
  std::vector<pollfd> fds;
  std::vector<Connection*> polled;  // polled[i] owns fds[i + 2]

  while (accepting || !connections.empty()) {
    // Build the poll set and the nearest deadline: reply timers and read timeouts.
    Clock::time_point now = Clock::now();
    Clock::time_point wake_at = Clock::time_point::max();
    const bool listen_now = accepting && now >= resume_accept;
    if (accepting && !listen_now) wake_at = resume_accept;
    fds.assign({{wake_pipe[0], POLLIN, 0}, {listen_now ? listen_fd : -1, POLLIN, 0}});
    polled.clear();
    for (Connection& c : connections) {
      if (c.phase != Connection::Phase::kWriting) wake_at = std::min(wake_at, c.deadline);
      if (c.phase == Connection::Phase::kDelaying) continue;
      const short events = c.phase == Connection::Phase::kReading ? POLLIN : POLLOUT;
      fds.push_back({c.fd, events, 0});
      polled.push_back(&c);
    }
    int timeout_ms = -1;
    if (wake_at != Clock::time_point::max()) {
      // Round up so that we never wake a millisecond early and spin.
      auto wait = std::chrono::ceil<milliseconds>(wake_at - now);
      timeout_ms = static_cast<int>(std::max<milliseconds::rep>(0, wait.count()));
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) {
      Die(std::string("poll: ") + std::strerror(errno));
    }

    if (fds[0].revents & POLLIN) {
      char drain[64];
      while (read(wake_pipe[0], drain, sizeof(drain)) > 0) {
      }
      // Stop accepting. The master still holds the socket, so connections waiting in the
      // backlog go to the other workers, old or new.
      if (accepting) close(listen_fd);
      accepting = false;
    }

    now = Clock::now();
    if (accepting && (fds[1].revents & POLLIN)) {
      // Several workers wake for one connection; the losers get EAGAIN and go back to poll.
      for (;;) {
        const int fd = accept(listen_fd, nullptr, nullptr);
        if (fd < 0) {
          if (errno == EMFILE || errno == ENFILE) resume_accept = now + milliseconds(100);
          break;  // EAGAIN, or a client that gave up (ECONNABORTED): try again after poll
        }
        SetNonBlocking(fd);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        connections.push_back({fd, Connection::Phase::kReading, {}, 0, now + kReadTimeout});
      }
    }

    for (size_t i = 0; i < polled.size(); ++i) {
      Connection& c = *polled[i];
      if (fds[i + 2].revents == 0) continue;
      if (c.phase == Connection::Phase::kReading) {
        char buf[4096];
        const ssize_t n = read(c.fd, buf, sizeof(buf));
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0 || c.request.size() + n > kMaxRequestBytes) {
          c.deadline = now;  // closed, broken or oversized: dropped below
          continue;
        }
        c.request.append(buf, n);
        if (c.request.find("\r\n\r\n") != std::string::npos) {
          c.phase = delay.count() > 0 ? Connection::Phase::kDelaying : Connection::Phase::kWriting;
          c.deadline = now + delay;
        }
      } else {
        const ssize_t n = send(c.fd, response.data() + c.sent, response.size() - c.sent, 0);
        if (n > 0) c.sent += n;
        if (n < 0 && errno != EAGAIN && errno != EINTR) c.sent = response.size();  // peer gone
      }
    }

    // Advance timers and retire finished connections.
    for (auto it = connections.begin(); it != connections.end();) {
      Connection& c = *it;
      if (c.phase == Connection::Phase::kDelaying && now >= c.deadline) {
        c.phase = Connection::Phase::kWriting;
      }
      const bool timed_out = c.phase == Connection::Phase::kReading && now >= c.deadline;
      const bool done = c.phase == Connection::Phase::kWriting && c.sent == response.size();
      if (timed_out || done) {
        close(c.fd);
        it = connections.erase(it);
      } else {
        ++it;
      }
    }
  }
  return 0;
}
