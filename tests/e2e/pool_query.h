// What the e2e tests ask a running master over its command socket, shared by the test files.
#pragma once

#include <atomic>
#include <climits>
#include <optional>
#include <thread>
#include <set>
#include <chrono>
#include <string>
#include <vector>

#include "core/pool_status.h"
#include "harness.h"

namespace einhorn::test {

// The master's command socket: MasterRun gives it a TMPDIR of its own, so the default path.
std::string Sock(const MasterRun& m);
// `status`, parsed; nullopt if the master cannot be reached or answers something else.
std::optional<core::PoolStatus> Status(const MasterRun& m);

// The live workers' pids, from `status` (empty if the master cannot be reached).
std::set<pid_t> Pids(const MasterRun& m);
// Exactly n workers alive, all ready and of `generation`.
bool PoolSettled(const MasterRun& m, int n, int generation);

// The address the metrics endpoint serves on, from the master's start-up line "metrics: serving
// GET /metrics on ADDR (...)"; empty if that line does not come within 10 s.
std::string MetricsAddress(const MasterRun& m);

// An `upgrade` (or `upgrade_fleet`) sent with an id and followed to its final message.
struct UpgradeRun {
  bool ended = false;  // a final message (no `wait`) arrived
  bool error = false;
  std::string last;
  std::vector<std::string> messages;
  std::chrono::milliseconds took{};
};
UpgradeRun RunUpgrade(const MasterRun& m, const std::string& verb = "upgrade",
                      std::chrono::milliseconds timeout = std::chrono::seconds(60));

// (Shared by the upgrade and recycle tests.)
// Samples the master's status every few milliseconds and keeps the fewest ready workers seen:
// the upgrade invariant, observed from outside.
class ReadySampler {
 public:
  explicit ReadySampler(const MasterRun& m)
      : thread_([this, &m] {
          while (!stop_) {
            if (const auto st = Status(m)) {
              min_ready_ = std::min(min_ready_.load(), st->ready);
              ++samples_;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
          }
        }) {}
  ~ReadySampler() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int min_ready() const { return min_ready_; }
  int samples() const { return samples_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> min_ready_{INT_MAX};
  std::atomic<int> samples_{0};
  std::thread thread_;
};

}  // namespace einhorn::test
