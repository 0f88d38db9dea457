// A small HTTP load generator for upgrade.sh (wrk is not assumed). Built by the script with
// plain g++ (libc and the standard library only).
//
//   upgrade_load header
//   upgrade_load run PORT CLIENTS SECONDS LABEL
//
// CLIENTS threads each send `GET / HTTP/1.0` to 127.0.0.1:PORT, one request per connection,
// back to back, each with a 2 s deadline for the whole exchange (connect, send, the response
// up to the server's close). SECONDS > 0 runs that long; SECONDS = 0 runs until SIGTERM or
// SIGINT. Requests in flight at the end are finished and counted. Then it prints one row:
//
//   ok        a 200 whose body has "hello from worker"
//   conn_err  connect() failed (refused, no port, ...)
//   reset     ECONNRESET/EPIPE or another error while sending or reading
//   timeout   no complete response within 2 s
//   bad       a response that is not a 200 with the body above, or none (closed at once)
//   p50/p99/max latency of the ok requests, from socket() to the server's close
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kDeadline = std::chrono::seconds(2);

enum Outcome { kOk, kConnErr, kReset, kTimeout, kBad, kOutcomes };

struct Counts {
  long n[kOutcomes] = {};
  std::vector<uint32_t> latency_us;  // of the ok requests
};

std::atomic<bool> stop{false};

// Waits for `events` on fd until `deadline`; false on timeout.
bool Wait(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    const int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return true;  // let the next syscall report the error
  }
}

Outcome OneRequest(const sockaddr_in& addr, const std::string& request) {
  const Clock::time_point deadline = Clock::now() + kDeadline;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return kConnErr;
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};

  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) return kConnErr;
    if (!Wait(fd, POLLOUT, deadline)) return kTimeout;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) return kConnErr;
  }

  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!Wait(fd, POLLOUT, deadline)) return kTimeout;
    } else {
      return kReset;
    }
  }

  std::string response;
  char buf[4096];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      response.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!Wait(fd, POLLIN, deadline)) return kTimeout;
    } else {
      return kReset;
    }
  }
  const bool ok = (response.rfind("HTTP/1.1 200 ", 0) == 0 || response.rfind("HTTP/1.0 200 ", 0) == 0) &&
                  response.find("\r\n\r\nhello from worker") != std::string::npos;
  return ok ? kOk : kBad;
}

void Client(int port, Counts* counts) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::string request = "GET / HTTP/1.0\r\nHost: bench\r\n\r\n";
  counts->latency_us.reserve(1 << 20);
  while (!stop.load(std::memory_order_relaxed)) {
    const Clock::time_point start = Clock::now();
    const Outcome o = OneRequest(addr, request);
    ++counts->n[o];
    if (o == kOk) {
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
      counts->latency_us.push_back(static_cast<uint32_t>(us.count()));
    }
  }
}

double Percentile(const std::vector<uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * (sorted.size() - 1) + 0.5));
  return sorted[i] / 1000.0;
}

void Header() {
  std::printf("%-24s %7s %9s %9s %8s %6s %7s %5s %8s %8s %8s %8s\n", "run", "secs", "requests",
              "ok", "conn_err", "reset", "timeout", "bad", "req/s", "p50_ms", "p99_ms",
              "max_ms");
}

int Run(int port, int clients, double seconds, const char* label) {
  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  std::vector<Counts> counts(static_cast<size_t>(clients));
  std::vector<std::thread> threads;
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < clients; ++i) threads.emplace_back(Client, port, &counts[static_cast<size_t>(i)]);
  if (seconds > 0) {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(seconds);
    ts.tv_nsec = static_cast<long>((seconds - static_cast<double>(ts.tv_sec)) * 1e9);
    while (sigtimedwait(&set, nullptr, &ts) < 0 && errno == EINTR) {
      const double left = seconds - std::chrono::duration<double>(Clock::now() - start).count();
      if (left <= 0) break;
      ts.tv_sec = static_cast<time_t>(left);
      ts.tv_nsec = static_cast<long>((left - static_cast<double>(ts.tv_sec)) * 1e9);
    }
  } else {
    int sig = 0;
    sigwait(&set, &sig);
  }
  stop = true;
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  for (std::thread& t : threads) t.join();

  Counts total;
  for (const Counts& c : counts) {
    for (int o = 0; o < kOutcomes; ++o) total.n[o] += c.n[o];
    total.latency_us.insert(total.latency_us.end(), c.latency_us.begin(), c.latency_us.end());
  }
  std::sort(total.latency_us.begin(), total.latency_us.end());
  long requests = 0;
  for (long n : total.n) requests += n;
  std::printf("%-24s %7.2f %9ld %9ld %8ld %6ld %7ld %5ld %8.0f %8.3f %8.3f %8.3f\n", label,
              elapsed, requests, total.n[kOk], total.n[kConnErr], total.n[kReset],
              total.n[kTimeout], total.n[kBad], static_cast<double>(requests) / elapsed,
              Percentile(total.latency_us, 0.50), Percentile(total.latency_us, 0.99),
              total.latency_us.empty() ? 0.0 : total.latency_us.back() / 1000.0);
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "header") == 0) {
    Header();
    return 0;
  }
  if (argc == 6 && std::strcmp(argv[1], "run") == 0) {
    const int port = std::atoi(argv[2]);
    const int clients = std::atoi(argv[3]);
    const double seconds = std::atof(argv[4]);
    if (port <= 0 || port > 65535 || clients < 1 || seconds < 0) {
      std::fprintf(stderr, "upgrade_load: bad PORT, CLIENTS or SECONDS\n");
      return 2;
    }
    return Run(port, clients, seconds, argv[5]);
  }
  std::fprintf(stderr,
               "usage: upgrade_load header\n"
               "       upgrade_load run PORT CLIENTS SECONDS LABEL   (SECONDS 0: until SIGTERM)\n");
  return 2;
}
