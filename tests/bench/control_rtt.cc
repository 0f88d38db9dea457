// Round-trip latency of the command socket, as a client sees it. Built by control.sh with
// plain g++ (libc and the standard library only), so it speaks the wire format by hand: a
// request is a one-line JSON document, a reply is one line ending in '\n' (its escaping never
// produces a raw '\n', so the first newline ends the reply).
//
//   control_rtt wait SOCK N                    until status shows N ready and none booting
//   control_rtt rtt SOCK POOL VERB COUNT keep|fresh
//   control_rtt incdec SOCK POOL COUNT keep    COUNT incs, then COUNT decs
//   control_rtt exec POOL LABEL COUNT ARGV...  wall time of running ARGV (fork+exec+wait)
//
// Rows: pool, what, connection, samples, min, p50, p99, max, and the size of the last reply.
// With CONTROL_RTT_RAW=1 in the environment the times are plain microseconds.
#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "control_rtt: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

int Connect(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) Die("socket path too long");
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) Die("connect " + path);
  return fd;
}

// One request and its reply line on an open connection. `pending` keeps bytes that arrived
// after the newline (there should be none: we never pipeline).
std::string Call(int fd, const std::string& verb, int id, std::string& pending) {
  const std::string line = "{\"id\":" + std::to_string(id) + ",\"command\":\"" + verb + "\"}\n";
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    Die("send");
  }
  char buf[64 * 1024];
  size_t scanned = 0;
  for (;;) {
    const size_t nl = pending.find('\n', scanned);
    if (nl != std::string::npos) {
      std::string reply = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      return reply;
    }
    scanned = pending.size();
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) Die("read (the master closed the connection?)");
    pending.append(buf, static_cast<size_t>(n));
  }
}

// A reply that reports a failure carries `error: true`; a benchmark of refusals is worthless.
void CheckOk(const std::string& reply, const std::string& verb) {
  if (reply.find("error: true") != std::string::npos) {
    std::fprintf(stderr, "control_rtt: %s refused: %.300s\n", verb.c_str(), reply.c_str());
    std::exit(1);
  }
}

struct Samples {
  std::vector<double> us;
  size_t reply_bytes = 0;
};

// Nearest-rank percentile.
double Pct(const std::vector<double>& sorted, double p) {
  const size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(sorted.size()) + 0.999999);
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

std::string Fmt(double us) {
  char buf[32];
  // CONTROL_RTT_RAW=1: plain microseconds, for scripts (tests/bench/scenarios/control.sh).
  if (std::getenv("CONTROL_RTT_RAW") != nullptr) {
    std::snprintf(buf, sizeof buf, "%.1f", us);
  } else if (us < 10'000) {
    std::snprintf(buf, sizeof buf, "%.0f us", us);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f ms", us / 1000);
  }
  return buf;
}

void Print(const std::string& pool, const std::string& what, const std::string& conn,
           Samples s) {
  std::sort(s.us.begin(), s.us.end());
  const std::string bytes = s.reply_bytes ? std::to_string(s.reply_bytes) : "-";
  std::printf("%-6s %-17s %-7s %7zu %10s %10s %10s %10s %9s\n", pool.c_str(), what.c_str(),
              conn.c_str(), s.us.size(), Fmt(s.us.front()).c_str(), Fmt(Pct(s.us, 50)).c_str(),
              Fmt(Pct(s.us, 99)).c_str(), Fmt(s.us.back()).c_str(), bytes.c_str());
  std::fflush(stdout);
}

double Since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

// `keep`: one connection for every request, as einhornsh does; otherwise a connection per
// request, as einhornctl does (so accept, SO_PEERCRED and the /proc lineage walk are included).
Samples Measure(const std::string& sock, const std::string& verb, int count, bool keep,
                int& id) {
  Samples s;
  s.us.reserve(count);
  std::string pending;
  const int shared = keep ? Connect(sock) : -1;
  for (int i = 0; i < count; ++i) {
    const Clock::time_point t0 = Clock::now();
    const int fd = keep ? shared : Connect(sock);
    const std::string reply = Call(fd, verb, ++id, pending);
    if (!keep) ::close(fd);
    s.us.push_back(Since(t0));
    CheckOk(reply, verb);
    s.reply_bytes = reply.size() + 1;
  }
  if (keep) ::close(shared);
  return s;
}

int Wait(const std::string& sock, int n) {
  const std::string want = "ready: " + std::to_string(n) + ",";
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(300);
  int id = 0;
  while (Clock::now() < deadline) {
    std::string pending;
    const int fd = Connect(sock);
    const std::string reply = Call(fd, "status", ++id, pending);
    ::close(fd);
    if (reply.find("booting: 0,") != std::string::npos && reply.find(want) != std::string::npos) {
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fprintf(stderr, "control_rtt: %d workers not ready within 300 s\n", n);
  return 1;
}

Samples Exec(int count, char** argv) {
  Samples s;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  for (int i = 0; i < count; ++i) {
    const Clock::time_point t0 = Clock::now();
    pid_t pid;
    if (posix_spawn(&pid, argv[0], &fa, nullptr, argv, environ) != 0) Die("spawn");
    int st = 0;
    if (::waitpid(pid, &st, 0) < 0) Die("waitpid");
    s.us.push_back(Since(t0));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      std::fprintf(stderr, "control_rtt: %s failed (status %d)\n", argv[0], st);
      std::exit(1);
    }
  }
  posix_spawn_file_actions_destroy(&fa);
  return s;
}

int Usage() {
  std::fprintf(stderr,
               "usage: control_rtt wait SOCK N\n"
               "       control_rtt rtt SOCK POOL VERB COUNT keep|fresh\n"
               "       control_rtt incdec SOCK POOL COUNT keep|fresh\n"
               "       control_rtt exec POOL LABEL COUNT ARGV...\n"
               "       control_rtt header\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  int id = 0;
  if (a.size() == 1 && a[0] == "header") {
    std::printf("%-6s %-17s %-7s %7s %10s %10s %10s %10s %9s\n", "pool", "what", "conn",
                "samples", "min", "p50", "p99", "max", "reply B");
  } else if (a.size() == 3 && a[0] == "wait") {
    return Wait(a[1], std::atoi(a[2].c_str()));
  } else if (a.size() == 6 && a[0] == "rtt") {
    const bool keep = a[5] == "keep";
    // Warm-up: page faults, allocator growth and the first /proc reads in the master.
    Measure(a[1], a[3], 20, keep, id);
    Print(a[2], a[3], a[5], Measure(a[1], a[3], std::atoi(a[4].c_str()), keep, id));
  } else if (a.size() == 5 && a[0] == "incdec") {
    // All incs first, then all decs: the pool grows by COUNT and comes back to its size, and
    // each row measures one verb against a pool that is changing only by that verb.
    const int count = std::atoi(a[3].c_str());
    const bool keep = a[4] == "keep";
    Print(a[2], "inc", a[4], Measure(a[1], "inc", count, keep, id));
    Print(a[2], "dec", a[4], Measure(a[1], "dec", count, keep, id));
  } else if (a.size() >= 5 && a[0] == "exec") {
    Exec(3, argv + 5);  // warm-up: the page cache and the dynamic loader
    Print(a[1], a[2], "exec", Exec(std::atoi(a[3].c_str()), argv + 5));
  } else {
    return Usage();
  }
  return 0;
}
