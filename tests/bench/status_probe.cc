// Is the master always answering? A probe asks `status` every 10 ms (a connection per request,
// as einhornctl) while the master works, and prints its series; and the round trip of the
// resize commands. Built by tests/bench/always_answering.sh with plain g++ (libc and the
// standard library only), speaking the wire format by hand as control_rtt.cc does.
//
//   status_probe cold SOCK N           probe until N ready and none booting (start it as soon
//                                      as the socket exists: the master forks N from cold)
//   status_probe set SOCK M            send `set_workers M`, probe until M ready, none booting
//   status_probe upgrade SOCK N        send `upgrade`, probe until its final reply, then until
//                                      N ready and none booting or draining. The upgrade is
//                                      sent at a random point (0-10 ms) of the probe's first
//                                      period: sent with the first probe, the master's exec
//                                      fell at the same point of the probe's cycle in every
//                                      run (its upgrade check takes a steady 9 ms), so the
//                                      runs measured one phase instead of a sample of them.
//   status_probe beside IDLE BUSY N LABEL [upgrade]
//                                      the baseline: probe the master at IDLE, which has nothing
//                                      to do, while the one at BUSY works (spawns from cold, or
//                                      with `upgrade`, is sent `upgrade`), until BUSY has N ready
//                                      and none booting or draining (asked every 10th probe).
//                                      What the machine's load alone does to the probe.
//   status_probe resize SOCK N COUNT   at N workers: COUNT `inc`, COUNT `dec`, COUNT
//                                      `set_workers` (N+1, N, ...), 20 ms apart (so that each
//                                      measures its own reply, not the previous one's fork):
//                                      each verb's round trip
//
// A phase prints one line: answers, the probe's latency p50/p99/max, the worst gap between two
// answers, the phase's length, and the round trip of the command that started it. Times in ms.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "status_probe: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

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

void Send(int fd, const std::string& verb, const std::vector<std::string>& args, int id) {
  std::string line = "{\"id\":" + std::to_string(id) + ",\"command\":\"" + verb + "\"";
  if (!args.empty()) {
    line += ",\"args\":[";
    for (size_t i = 0; i < args.size(); ++i) line += (i ? ",\"" : "\"") + args[i] + "\"";
    line += "]";
  }
  line += "}\n";
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    Die("send");
  }
}

// The next reply line (the escaping never produces a raw '\n').
std::string ReadLine(int fd, std::string& pending) {
  char buf[64 * 1024];
  for (;;) {
    const size_t nl = pending.find('\n');
    if (nl != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      return line;
    }
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) Die("read (the master closed the connection?)");
    pending.append(buf, static_cast<size_t>(n));
  }
}

// One request on a fresh connection: the reply and its round trip.
std::string Ask(const std::string& sock, const std::string& verb,
                const std::vector<std::string>& args, double* ms) {
  static int id = 0;
  const Clock::time_point t0 = Clock::now();
  const int fd = Connect(sock);
  std::string pending;
  Send(fd, verb, args, ++id);
  std::string reply = ReadLine(fd, pending);
  ::close(fd);
  if (ms) *ms = Ms(Clock::now() - t0);
  if (reply.find("error: true") != std::string::npos) {
    std::fprintf(stderr, "status_probe: %s refused: %.300s\n", verb.c_str(), reply.c_str());
    std::exit(1);
  }
  return reply;
}

double Pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size()) + 0.999999);
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

bool Settled(const std::string& status, int n, bool no_draining) {
  return status.find("ready: " + std::to_string(n) + ",") != std::string::npos &&
         status.find("booting: 0,") != std::string::npos &&
         (!no_draining || status.find("draining: 0") != std::string::npos);
}

// The probe: `status` every 10 ms until done() says so (checked on each answer).
struct Series {
  std::vector<double> latency;
  double worst_gap = 0;
  double length = 0;
};

template <typename Done>
Series Probe(const std::string& sock, Done done) {
  Series s;
  const Clock::time_point start = Clock::now();
  Clock::time_point last = start;
  for (;;) {
    const Clock::time_point t0 = Clock::now();
    double ms = 0;
    const std::string reply = Ask(sock, "status", {}, &ms);
    const Clock::time_point t1 = Clock::now();
    s.latency.push_back(ms);
    s.worst_gap = std::max(s.worst_gap, Ms(t1 - last));
    last = t1;
    if (done(reply)) break;
    const Clock::time_point next = t0 + std::chrono::milliseconds(10);
    if (next > Clock::now()) std::this_thread::sleep_until(next);
  }
  s.length = Ms(Clock::now() - start) / 1000;
  return s;
}

// `sent_at_ms`: when the command went out after the probe's first question (upgrades).
void PrintSeries(const std::string& label, const Series& s, double command_ms,
                 double sent_at_ms = -1) {
  std::printf(
      "%-10s answers %5zu  latency p50 %7.2f  p99 %7.2f  max %8.2f  worst gap %8.2f ms  "
      "phase %6.2f s  command reply %7.2f ms",
      label.c_str(), s.latency.size(), Pct(s.latency, 50), Pct(s.latency, 99),
      s.latency.empty() ? 0 : *std::max_element(s.latency.begin(), s.latency.end()), s.worst_gap,
      s.length, command_ms);
  if (sent_at_ms >= 0) std::printf("  sent at +%.1f ms", sent_at_ms);
  std::printf("\n");
  std::fflush(stdout);
}

void PrintVerb(const std::string& label, const std::vector<double>& v) {
  std::printf("%-10s samples %5zu  round trip p50 %7.3f  p99 %7.3f  max %8.3f ms\n", label.c_str(),
              v.size(), Pct(v, 50), Pct(v, 99), *std::max_element(v.begin(), v.end()));
  std::fflush(stdout);
}

void WaitSettled(const std::string& sock, int n) {
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(600);
  while (Clock::now() < deadline) {
    if (Settled(Ask(sock, "status", {}, nullptr), n, true)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fprintf(stderr, "status_probe: the pool did not settle at %d\n", n);
  std::exit(1);
}

// A point of the probe's 10 ms period, uniformly.
double RandomPhaseMs() {
  std::random_device seed;
  std::mt19937 rng(seed());
  return std::uniform_real_distribution<double>(0.0, 10.0)(rng);
}

// Sends `upgrade` after `delay_ms` and reads its replies to the last; returns the first
// reply's round trip.
double Upgrade(const std::string& sock, double delay_ms = 0) {
  std::this_thread::sleep_for(std::chrono::microseconds(static_cast<long>(delay_ms * 1000)));
  const Clock::time_point t0 = Clock::now();
  const int fd = Connect(sock);
  std::string pending;
  Send(fd, "upgrade", {}, 1);
  std::string line = ReadLine(fd, pending);
  const double first = Ms(Clock::now() - t0);
  while (line.find("wait: true") != std::string::npos) line = ReadLine(fd, pending);
  ::close(fd);
  if (line.find("error: true") != std::string::npos) {
    std::fprintf(stderr, "status_probe: upgrade failed: %.300s\n", line.c_str());
    std::exit(1);
  }
  return first;
}

int Usage() {
  std::fprintf(stderr,
               "usage: status_probe cold SOCK N | set SOCK M | upgrade SOCK N | "
               "resize SOCK N COUNT | beside IDLE BUSY N LABEL [upgrade]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 3 && a[0] == "cold") {
    const int n = std::atoi(a[2].c_str());
    PrintSeries("cold", Probe(a[1], [n](const std::string& r) { return Settled(r, n, false); }),
                0);
  } else if (a.size() == 3 && a[0] == "set") {
    const int m = std::atoi(a[2].c_str());
    double command = 0;
    std::atomic<bool> sent{false};
    std::thread asker([&] {
      Ask(a[1], "set_workers", {a[2]}, &command);
      sent = true;
    });
    // Started with the command: the probe sees the master while it answers it.
    Series s = Probe(a[1], [&](const std::string& r) { return sent && Settled(r, m, false); });
    asker.join();
    PrintSeries("set " + a[2], s, command);
  } else if (a.size() == 3 && a[0] == "upgrade") {
    const int n = std::atoi(a[2].c_str());
    double first = 0;
    const double phase = RandomPhaseMs();
    std::atomic<bool> done{false};
    std::thread upgrader([&] {
      first = Upgrade(a[1], phase);
      done = true;
    });
    Series s = Probe(a[1], [&](const std::string& r) { return done && Settled(r, n, true); });
    upgrader.join();
    PrintSeries("upgrade", s, first, phase);
  } else if ((a.size() == 5 || (a.size() == 6 && a[5] == "upgrade")) && a[0] == "beside") {
    const int n = std::atoi(a[3].c_str());
    std::atomic<bool> done{a.size() == 5};
    const double phase = done ? -1 : RandomPhaseMs();
    std::thread upgrader;
    if (!done) {
      upgrader = std::thread([&] {
        Upgrade(a[2], phase);
        done = true;
      });
    }
    int asked = 0;
    // Every 10th answer, one question to the busy master: its own work barely changes.
    Series s = Probe(a[1], [&](const std::string&) {
      return done && ++asked % 10 == 0 && Settled(Ask(a[2], "status", {}, nullptr), n, true);
    });
    if (upgrader.joinable()) upgrader.join();
    PrintSeries(a[4], s, 0, phase);
  } else if (a.size() == 4 && a[0] == "resize") {
    const int n = std::atoi(a[2].c_str());
    const int count = std::atoi(a[3].c_str());
    std::vector<double> inc, dec, set;
    const auto pause = [] { std::this_thread::sleep_for(std::chrono::milliseconds(20)); };
    for (int i = 0; i < count; ++i) {
      double ms = 0;
      Ask(a[1], "inc", {}, &ms);
      inc.push_back(ms);
      pause();
    }
    for (int i = 0; i < count; ++i) {
      double ms = 0;
      Ask(a[1], "dec", {}, &ms);
      dec.push_back(ms);
      pause();
    }
    for (int i = 0; i < count; ++i) {
      double ms = 0;
      Ask(a[1], "set_workers", {std::to_string(i % 2 == 0 ? n + 1 : n)}, &ms);
      set.push_back(ms);
      pause();
    }
    if (count % 2 == 1) Ask(a[1], "set_workers", {std::to_string(n)}, nullptr);
    PrintVerb("inc", inc);
    PrintVerb("dec", dec);
    PrintVerb("set", set);
    WaitSettled(a[1], n);
  } else {
    return Usage();
  }
  return 0;
}
