// Cost of the `status` reply in the master: PoolStatusToYaml for a pool of N workers (and, for
// comparison, PoolStatusFromYaml, which only einhornctl runs). Plain g++, no CMake:
//
//   g++ -O2 -DNDEBUG -std=c++20 -Isrc -o /tmp/pool_status_bench   (one line)
//       tests/bench/pool_status_bench.cc src/core/pool_status.cc src/core/text.cc -lyaml-cpp
//   /tmp/pool_status_bench [N...]            (default: 100 1000)
//
// Rows: workers, what, runs, min, p50, max per call, and the size of the document.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/pool_status.h"

namespace {

using einhorn::core::PoolStatus;

PoolStatus Pool(int n) {
  PoolStatus s;
  s.master_pid = 4242;
  s.version = "0.1.0";
  s.command_name = "web";
  s.target = n;
  s.generation = 3;
  s.ack_mode = "timer 1s";
  s.ready = n;
  for (int i = 0; i < n; ++i) {
    einhorn::core::WorkerStatus w;
    w.slot = i;
    w.index = i;
    w.pid = 100000 + i;
    w.generation = 3;
    w.state = "ready";
    w.time_to_ready = 1.0 + i % 7 * 0.001;
    w.uptime = 3600.25 + i * 0.137;
    w.restarts = i % 3;
    if (i % 5 == 0) w.last_exit = "signal 9";
    s.workers.push_back(w);
  }
  return s;
}

template <typename F>
void Time(int n, const char* what, std::size_t bytes, F f) {
  // Enough runs for ~0.3 s, at least 20.
  std::vector<double> us;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  while (us.size() < 20 || std::chrono::steady_clock::now() < deadline) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const auto t1 = std::chrono::steady_clock::now();
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(us.begin(), us.end());
  std::printf("%7d  %-12s %6zu  %9.1f  %9.1f  %9.1f  %8zu\n", n, what, us.size(), us.front(),
              us[us.size() / 2], us.back(), bytes);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> counts;
  for (int i = 1; i < argc; ++i) counts.push_back(std::atoi(argv[i]));
  if (counts.empty()) counts = {100, 1000};
  std::printf("%7s  %-12s %6s  %9s  %9s  %9s  %8s\n", "workers", "what", "runs", "min us", "p50 us",
              "max us", "bytes");
  for (int n : counts) {
    const PoolStatus s = Pool(n);
    const std::string yaml = einhorn::core::PoolStatusToYaml(s);
    std::size_t sink = 0;
    Time(n, "to_yaml", yaml.size(), [&] { sink += einhorn::core::PoolStatusToYaml(s).size(); });
    Time(n, "from_yaml", yaml.size(),
         [&] { sink += einhorn::core::PoolStatusFromYaml(yaml).ok() ? 1 : 0; });
    if (sink == 0) std::puts("");  // keeps the calls from being optimized away
  }
  return 0;
}
