// The supervisor's deadline index: when Tick next has something to do, without a walk of the
// pool at each turn of the shell's loop (issue 20: NextDeadline runs after every event, and
// Tick at every slice of spawns). Each worker is filed once, at its earliest deadline; each
// slot waiting for a respawn, at its respawn time. A filing may be early (a change that put a
// deadline later, or made it moot, need not refile it: Tick refiles each worker it finds due),
// never late: every change that can bring a deadline earlier refiles the worker.
#include <algorithm>

#include "core/supervisor.h"

namespace einhorn::core {

std::optional<Time> Supervisor::WorkerDue(const Worker& w) const {
  std::optional<Time> due;
  auto consider = [&due](Time t) {
    if (!due || t < *due) due = t;
  };
  const bool booting = w.state == WorkerState::kBooting;
  if (booting && config_.ack_mode.kind == AckMode::Kind::kTimer) {
    consider(After(w.spawned_at, Seconds(config_.ack_mode.timer_seconds)));
  }
  if (config_.worker_watchdog && w.state == WorkerState::kReady && w.watchdog_at) {
    consider(After(*w.watchdog_at, *config_.worker_watchdog));
  }
  if (!stopping_ && w.recycle_due && !w.recycle && w.slot >= 0 &&
      w.state == WorkerState::kReady) {
    consider(*w.recycle_due);
  }
  if (w.kill_at && !w.killed) consider(*w.kill_at);
  if (upgrade_ && config_.upgrade.ack_timeout && booting && w.generation == generation_) {
    consider(After(w.spawned_at, *config_.upgrade.ack_timeout));
  }
  return due;
}

void Supervisor::Unindex(Pid pid) {
  const auto it = due_at_.find(pid);
  if (it == due_at_.end()) return;
  worker_due_.erase({it->second, pid});
  due_at_.erase(it);
}

void Supervisor::Reindex(const Worker& w) {
  Unindex(w.pid);
  if (const std::optional<Time> due = WorkerDue(w)) {
    worker_due_.emplace(*due, w.pid);
    due_at_.emplace(w.pid, *due);
  }
}

void Supervisor::RebuildDeadlines() {
  worker_due_.clear();
  due_at_.clear();
  killed_ = 0;
  for (const auto& [pid, w] : workers_) {
    ++scan_steps_;
    Reindex(w);
    killed_ += w.killed ? 1 : 0;
  }
}

std::vector<Pid> Supervisor::DueWorkers(Time now) const {
  std::vector<Pid> due;
  for (auto it = worker_due_.begin(); it != worker_due_.end() && it->first <= now; ++it) {
    ++scan_steps_;
    due.push_back(it->second);
  }
  std::sort(due.begin(), due.end());
  return due;
}

bool Supervisor::DeadlinesMatch() const {
  if (worker_due_.size() != due_at_.size()) return false;
  size_t killed = 0;
  for (const auto& [pid, w] : workers_) {
    killed += w.killed ? 1 : 0;
    const std::optional<Time> exact = WorkerDue(w);
    const auto it = due_at_.find(pid);
    if (exact && (it == due_at_.end() || it->second > *exact)) return false;
    if (it != due_at_.end() && !worker_due_.contains({it->second, pid})) return false;
  }
  for (const auto& [pid, at] : due_at_) {
    if (!workers_.contains(pid)) return false;
  }
  if (killed != killed_) return false;
  // The respawn index mirrors the waiting slots exactly.
  if (respawn_due_.size() != waiting_slots_.size() || respawn_key_.size() != waiting_slots_.size()) {
    return false;
  }
  for (const int slot : waiting_slots_) {
    const auto it = respawn_key_.find(slot);
    const Slot& s = slots_[static_cast<size_t>(slot)];
    if (it == respawn_key_.end() || !s.respawn_at || it->second != *s.respawn_at ||
        !respawn_due_.contains({it->second, slot})) {
      return false;
    }
  }
  return true;
}

void Supervisor::Tick(Time now) {
  if (finished_) return;
  if (config_.ack_mode.kind == AckMode::Kind::kTimer) {
    const Duration ack_after = Seconds(config_.ack_mode.timer_seconds);
    for (const Pid pid : DueWorkers(now)) {
      Worker& w = workers_.at(pid);
      if (w.state == WorkerState::kBooting && now >= After(w.spawned_at, ack_after)) {
        BecomeReady(w, "after " + LogSeconds(now - w.spawned_at), now);
      }
    }
  }
  if (!stopping_) {
    // The slots whose respawn is due, lowest first (SpawnInto moves them out). After a
    // deferral, the other due slots wait for the next turn too.
    std::vector<int> due;
    for (auto it = respawn_due_.begin(); it != respawn_due_.end() && it->first <= now; ++it) {
      ++scan_steps_;
      due.push_back(it->second);
    }
    std::sort(due.begin(), due.end());
    for (const int i : due) {
      const Slot& slot = slots_[static_cast<size_t>(i)];
      if (!slot.pid && slot.respawn_at && now >= *slot.respawn_at && !SpawnInto(i, now)) break;
    }
  }
  if (config_.worker_watchdog) {
    for (const Pid pid : DueWorkers(now)) {
      Worker& w = workers_.at(pid);
      if (w.state != WorkerState::kReady || !w.watchdog_at ||
          now < After(*w.watchdog_at, *config_.worker_watchdog)) {
        continue;
      }
      WatchdogExpired(w, now);
    }
  }
  for (const Pid pid : DueWorkers(now)) {
    Worker& w = workers_.at(pid);
    if (w.kill_at && !w.killed && now >= *w.kill_at) KillLingering(w, now);
  }
  RemindDraining(now);
  CheckUpgradeDeadlines(now);
  MarkAgedWorkers(now);
  Reconcile(now);
  // What was due is done: file those workers at their next deadline (or none).
  for (const Pid pid : DueWorkers(now)) {
    if (const auto it = workers_.find(pid); it != workers_.end()) Reindex(it->second);
  }
}

std::optional<Time> Supervisor::NextDeadline() const {
  if (finished_) return std::nullopt;
  std::optional<Time> next;
  auto consider = [&next](Time t) {
    if (!next || t < *next) next = t;
  };
  if (!worker_due_.empty()) consider(worker_due_.begin()->first);
  if (!stopping_ && !respawn_due_.empty()) consider(respawn_due_.begin()->first);
  // For a worker not killed yet.
  if (stopping_ && drain_reminder_ && killed_ < workers_.size()) consider(*drain_reminder_);
  if (upgrade_ && config_.upgrade.upgrade_timeout) {
    consider(After(upgrade_->started_at, *config_.upgrade.upgrade_timeout));
  }
  return next;
}

}  // namespace einhorn::core
