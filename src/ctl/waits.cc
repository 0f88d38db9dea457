#include "ctl/waits.h"

#include <string>

namespace einhorn::ctl {
namespace {

using core::PoolStatus;

std::string Of(int n, int of) { return std::to_string(n) + "/" + std::to_string(of); }

std::string PidList(const std::set<core::Pid>& pids) {
  std::string out;
  for (const core::Pid p : pids) out += (out.empty() ? "" : " ") + std::to_string(p);
  return out;
}

// "ready 2/4, booting 1, draining 3": the counts a wait is about.
std::string Counts(const PoolStatus& s) {
  return "ready " + Of(s.ready, s.target) + ", booting " + std::to_string(s.booting) +
         ", draining " + std::to_string(s.draining);
}

}  // namespace

std::optional<WaitCondition> WaitConditionFromName(const std::string& name) {
  if (name == "ready") return WaitCondition::kReady;
  if (name == "drained") return WaitCondition::kDrained;
  if (name == "upgraded") return WaitCondition::kUpgraded;
  return std::nullopt;
}

WaitVerdict CheckWait(WaitCondition condition, const PoolStatus& s) {
  using K = WaitVerdict::Kind;
  switch (condition) {
    case WaitCondition::kReady: {
      if (s.stopping) return {K::kNever, "the master is shutting down: " + Counts(s)};
      if (s.reloading) return {K::kWaiting, "a master reload is under way; " + Counts(s)};
      if (s.upgrade) return {K::kWaiting, "an upgrade is under way; " + Counts(s)};
      if (s.booting == 0 && s.ready >= s.target) {
        return {K::kReached, "ready " + Of(s.ready, s.target)};
      }
      return {K::kWaiting, Counts(s)};
    }
    case WaitCondition::kDrained: {
      if (s.draining == 0) return {K::kReached, "no worker is draining"};
      std::set<core::Pid> pids;
      for (const core::WorkerStatus& w : s.workers) {
        if (w.state == "draining") pids.insert(w.pid);
      }
      return {K::kWaiting, std::to_string(s.draining) + " told to drain, not exited yet" +
                               (pids.empty() ? "" : " (pids " + PidList(pids) + ")")};
    }
    case WaitCondition::kUpgraded: {
      if (s.reloading) return {K::kWaiting, "a master reload is under way"};
      if (s.upgrade) {
        return {K::kWaiting, "upgrading to generation " + std::to_string(s.upgrade->to_generation) +
                                 ": " + std::to_string(s.upgrade->new_ready) + " new ready, " +
                                 std::to_string(s.upgrade->old_remaining) + " old alive"};
      }
      if (s.last_upgrade && !s.last_upgrade->ok) {
        return {K::kNever, "the last upgrade, to generation " +
                               std::to_string(s.last_upgrade->generation) +
                               ", rolled back: " + s.last_upgrade->reason};
      }
      if (s.last_reload_error) {
        return {K::kNever, "the last master reload failed: " + *s.last_reload_error};
      }
      const std::set<core::Pid> old = OldWorkers(s);
      if (!old.empty()) {
        return {K::kWaiting, std::to_string(old.size()) + " workers of older generations " +
                                 "still running (pids " + PidList(old) + ")"};
      }
      if (s.booting == 0 && s.draining == 0 && s.ready >= s.target) {
        return {K::kReached,
                "generation " + std::to_string(s.generation) + ": ready " + Of(s.ready, s.target)};
      }
      return {K::kWaiting, Counts(s)};
    }
  }
  return {K::kWaiting, ""};
}

ReloadVerdict JudgeReload(const PoolStatus& before, const PoolStatus& now) {
  using K = ReloadVerdict::Kind;
  if (now.master_pid != before.master_pid || now.reloads < before.reloads) {
    return {K::kOtherMaster, "another master answers now (pid " + std::to_string(now.master_pid) +
                                 ", was " + std::to_string(before.master_pid) +
                                 "): the reload's outcome is unknown"};
  }
  if (now.reloads > before.reloads) {
    // A set of the pids now, not a scan of them per worker before (O(n^2) at 5000 workers).
    std::set<core::Pid> alive;
    for (const core::WorkerStatus& w : now.workers) alive.insert(w.pid);
    int kept = 0;
    for (const core::WorkerStatus& b : before.workers) kept += alive.contains(b.pid) ? 1 : 0;
    return {K::kDone, "Reloaded: einhorn-cpp " + now.version + " is the master now (pid " +
                          std::to_string(now.master_pid) + ", reload #" +
                          std::to_string(now.reloads) + "); it kept " + std::to_string(kept) +
                          " of the " + std::to_string(before.workers.size()) + " workers"};
  }
  // A master older than reload_failures says only the reason: a new one is a new failure.
  const bool failed = now.reload_failures > before.reload_failures ||
                      (!now.reloading && now.last_reload_error &&
                       now.last_reload_error != before.last_reload_error);
  if (failed) {
    return {K::kFailed, "Reload failed, the master keeps running as it was: " +
                            now.last_reload_error.value_or("(no reason given)")};
  }
  return {K::kRunning, now.reloading ? "checking the new master binary" : "waiting"};
}

void DrainTracker::Update(const PoolStatus& s) {
  std::set<core::Pid> alive;
  std::set<core::Pid> draining;
  for (const core::WorkerStatus& w : s.workers) {
    alive.insert(w.pid);
    if (w.state == "draining") draining.insert(w.pid);
  }
  for (const core::Pid p : running_) {
    if (!alive.contains(p)) exited_.insert(p);
  }
  running_ = std::move(draining);
}

std::string DrainTracker::Text(bool pids) const {
  std::string out = "told to drain: " + std::to_string(running()) + " running, " +
                    std::to_string(exited()) + " exited";
  if (pids && !running_.empty()) out += " (running: " + PidList(running_) + ")";
  return out;
}

std::set<core::Pid> OldWorkers(const PoolStatus& s) {
  std::set<core::Pid> old;
  for (const core::WorkerStatus& w : s.workers) {
    if (w.generation < s.generation) old.insert(w.pid);
  }
  return old;
}

}  // namespace einhorn::ctl
