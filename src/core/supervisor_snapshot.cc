// Snapshot and Restore for a master re-exec, and the checks a decoded snapshot must pass
// before Restore may trust it. Snapshot must carry every data member of Supervisor (all but
// fx_): a member added there needs a field in SupervisorSnapshot, a line in each function
// below and one in core/state.cc, or a re-exec silently resets it.
#include <limits>
#include <map>
#include <string>
#include <utility>

#include "core/supervisor.h"

namespace einhorn::core {
namespace {

// Times are CLOCK_MONOTONIC nanoseconds (about the uptime) and stay far below this; durations
// are settings, at most kMaxSetting. Every sum the supervisor forms (a time plus a duration, plus
// a backoff of up to 1.2 times the cap) then stays inside int64, and After() saturates anyway.
constexpr std::int64_t kMaxNanos = std::int64_t{1} << 61;
// Counters the supervisor increments; far beyond any real value, far from INT_MAX.
constexpr int kMaxCounter = 1 << 30;
constexpr int kMaxTarget = 1'000'000;

class Checker {
 public:
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  void Fail(const std::string& what) {
    if (error_.empty()) error_ = what;
  }
  void Nanos(const std::string& name, Duration d) {
    if (d.count() < 0 || d.count() > kMaxNanos) {
      Fail(name + ": " + std::to_string(d.count()) + " ns is out of range (0.." +
           std::to_string(kMaxNanos) + ")");
    }
  }
  void Nanos(const std::string& name, const std::optional<Duration>& d) {
    if (d) Nanos(name, *d);
  }
  // A duration setting: within the range the options allow (kMaxSetting, core/types.h).
  void Setting(const std::string& name, Duration d) {
    if (d.count() < 0 || d > kMaxSetting) {
      Fail(name + ": " + std::to_string(d.count()) + " ns is out of range (0.." +
           std::to_string(kMaxSetting.count()) + ")");
    }
  }
  void Setting(const std::string& name, const std::optional<Duration>& d) {
    if (d) Setting(name, *d);
  }
  void Range(const std::string& name, long long v, long long lo, long long hi) {
    if (v < lo || v > hi) {
      Fail(name + ": " + std::to_string(v) + " is out of range (" + std::to_string(lo) + ".." +
           std::to_string(hi) + ")");
    }
  }
  void SecondsIn(const std::string& name, double v, double hi) {
    // Written so that NaN fails too.
    if (!(v >= 0 && v <= hi)) Fail(name + ": " + std::to_string(v) + " is out of range");
  }

 private:
  std::string error_;
};

void CheckConfig(const SupervisorConfig& c, Checker& k) {
  k.Range("config.target", c.target, 1, kMaxTarget);
  if (c.ack_mode.kind == AckMode::Kind::kTimer) {
    k.SecondsIn("config.ack_mode.timer_seconds", c.ack_mode.timer_seconds, kMaxSettingSeconds);
  }
  // Every duration in the same range as the options it comes from.
  k.Setting("config.backoff_base", c.backoff_base);
  k.Setting("config.backoff_cap", c.backoff_cap);
  k.Setting("config.signal_timeout", c.signal_timeout);
  k.Setting("config.worker_watchdog", c.worker_watchdog);
  k.Setting("config.max_worker_lifetime", c.max_worker_lifetime);
  k.SecondsIn("config.lifetime_jitter", c.lifetime_jitter, 1);
  k.SecondsIn("config.jitter", c.jitter, 1);
  k.Range("config.upgrade.max_unacked", c.upgrade.max_unacked, 1, kMaxCounter);
  if (c.upgrade.max_additional) {
    k.Range("config.upgrade.max_additional", *c.upgrade.max_additional, 0, kMaxCounter);
  }
  k.Setting("config.upgrade.ack_timeout", c.upgrade.ack_timeout);
  k.Setting("config.upgrade.upgrade_timeout", c.upgrade.upgrade_timeout);
  k.Range("config.upgrade.max_failures", c.upgrade.max_failures, 1, kMaxCounter);
  k.Setting("config.rollback_kill_after", c.rollback_kill_after);
}

}  // namespace

Status CheckSnapshot(const SupervisorSnapshot& s) {
  Checker k;
  CheckConfig(s.config, k);
  k.Range("next_generation", s.next_generation, 2, kMaxCounter);
  k.Range("generation", s.generation, 1, s.next_generation - 1);
  // From Start on there is one slot per target worker (a snapshot taken before Start has
  // none, and is not one to restore: SetTarget and Reconcile rely on the slots).
  if (k.ok() && s.slots.size() != static_cast<size_t>(s.config.target)) {
    k.Fail("slots: " + std::to_string(s.slots.size()) + " slots for a target of " +
           std::to_string(s.config.target));
  }

  std::map<Pid, int> slot_of;  // each worker's slot
  for (size_t i = 0; i < s.workers.size() && k.ok(); ++i) {
    const Worker& w = s.workers[i];
    const std::string at = "workers[" + std::to_string(i) + "].";
    k.Range(at + "pid", w.pid, 1, std::numeric_limits<Pid>::max());
    if (i > 0 && w.pid <= s.workers[i - 1].pid) {
      k.Fail(at + "pid: " + std::to_string(w.pid) + " is out of order (ascending, each once)");
    }
    slot_of.emplace(w.pid, w.slot);
    k.Range(at + "slot", w.slot, -1, static_cast<long long>(s.slots.size()) - 1);
    k.Range(at + "index", w.index, 0, kMaxCounter);
    k.Range(at + "generation", w.generation, 1, s.next_generation - 1);
    k.Nanos(at + "spawned_at", w.spawned_at);
    k.Nanos(at + "ready_at", w.ready_at);
    k.Nanos(at + "signaled_at", w.signaled_at);
    k.Nanos(at + "kill_at", w.kill_at);
    k.Nanos(at + "pinged_at", w.pinged_at);
    k.Nanos(at + "watchdog_at", w.watchdog_at);
    k.Nanos(at + "draining_since", w.draining_since);
    k.Nanos(at + "recycle_asked_at", w.recycle_asked_at);
    k.Nanos(at + "recycle_due", w.recycle_due);
    if (k.ok() && w.slot >= 0 && s.slots[static_cast<size_t>(w.slot)].pid != w.pid) {
      k.Fail(at + "slot: slot " + std::to_string(w.slot) + " does not hold worker " +
             std::to_string(w.pid));
    }
  }
  for (size_t i = 0; i < s.slots.size() && k.ok(); ++i) {
    const Slot& slot = s.slots[i];
    const std::string at = "slots[" + std::to_string(i) + "].";
    k.Range(at + "starts", slot.starts, 0, kMaxCounter);
    k.Range(at + "restarts", slot.restarts, 0, kMaxCounter);
    k.Range(at + "consecutive_failures", slot.consecutive_failures, 0, kMaxCounter);
    k.Nanos(at + "respawn_at", slot.respawn_at);
    if (!k.ok() || !slot.pid) continue;
    const auto it = slot_of.find(*slot.pid);
    if (it == slot_of.end() || it->second != static_cast<int>(i)) {
      k.Fail(at + "pid: " + std::to_string(*slot.pid) + " is not a worker of this slot");
    }
  }
  if (s.upgrade && k.ok()) {
    const UpgradeProgress& u = *s.upgrade;
    k.Range("upgrade.to_generation", u.to_generation, s.generation, s.generation);
    k.Range("upgrade.from_generation", u.from_generation, 1, s.generation - 1);
    k.Nanos("upgrade.started_at", u.started_at);
    k.Range("upgrade.failures", u.failures, 0, kMaxCounter);
    k.Range("upgrade.old_at_start", u.old_at_start, 0, kMaxCounter);
    k.Range("upgrade.reported_ready", u.reported_ready, -1, kMaxCounter);
    k.Range("upgrade.reported_drained", u.reported_drained, -1, kMaxCounter);
  }
  if (s.last_upgrade) k.Nanos("last_upgrade.finished_at", s.last_upgrade->finished_at);
  k.Nanos("drain_reminder", s.drain_reminder);
  k.Range("watchdog_timeouts", s.watchdog_timeouts, 0, kMaxCounter);
  if (s.recycles.size() > kRecycleCauses) {
    k.Fail("recycles: " + std::to_string(s.recycles.size()) + " counters for " +
           std::to_string(kRecycleCauses) + " causes");
  }
  for (size_t i = 0; i < s.recycles.size() && k.ok(); ++i) {
    k.Range("recycles[" + std::to_string(i) + "]", s.recycles[i], 0, kMaxCounter);
  }
  return k.ok() ? Status::Ok() : Status::Error(k.error());
}

SupervisorSnapshot Supervisor::Snapshot() const {
  SupervisorSnapshot s;
  s.config = config_;
  s.rng = rng_;
  s.workers.reserve(workers_.size());
  for (const auto& [pid, w] : workers_) s.workers.push_back(w);
  s.slots = slots_;
  s.generation = generation_;
  s.next_generation = next_generation_;
  s.upgrade = upgrade_;
  s.last_upgrade = last_upgrade_;
  s.stopping = stopping_;
  s.stop_step = stop_step_;
  s.drain_reminder = drain_reminder_;
  s.finished = finished_;
  s.exit_code = exit_code_;
  s.watchdog_timeouts = watchdog_timeouts_;
  s.recycles.assign(recycles_.begin(), recycles_.end());
  // Without trailing zeros: the one form DecodeState gives (older images carry fewer causes).
  while (!s.recycles.empty() && s.recycles.back() == 0) s.recycles.pop_back();
  return s;
}

Supervisor Supervisor::Restore(SupervisorSnapshot s, Effects& effects) {
  Supervisor sup(std::move(s.config), effects);
  sup.rng_ = s.rng;
  for (Worker& w : s.workers) {
    const Pid pid = w.pid;
    sup.workers_.insert_or_assign(pid, std::move(w));
  }
  sup.slots_ = std::move(s.slots);
  sup.generation_ = s.generation;
  sup.next_generation_ = s.next_generation;
  sup.upgrade_ = std::move(s.upgrade);
  sup.last_upgrade_ = std::move(s.last_upgrade);
  sup.stopping_ = s.stopping;
  sup.stop_step_ = s.stop_step;
  sup.drain_reminder_ = s.drain_reminder;
  sup.finished_ = s.finished;
  sup.exit_code_ = s.exit_code;
  sup.watchdog_timeouts_ = s.watchdog_timeouts;
  // An older image carried none: all 0.
  for (size_t i = 0; i < s.recycles.size() && i < kRecycleCauses; ++i) {
    sup.recycles_[i] = s.recycles[i];
  }
  sup.RebuildTallies();
  sup.RebuildSlotSets();
  sup.RebuildDeadlines();
  return sup;
}

}  // namespace einhorn::core
