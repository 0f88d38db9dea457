// The upgrade half of the supervisor: starting a new generation, advancing it within its
// budgets, finishing it, and rolling it back. The arithmetic of each step is PlanStep
// (upgrade.cc); this file counts the pool and carries the step out.
#include <algorithm>
#include <stdexcept>
#include <tuple>

#include "core/supervisor.h"
#include "core/supervisor_text.h"

namespace einhorn::core {

UpgradeStart Supervisor::Upgrade(UpgradeStrategy strategy, Time now) {
  if (finished_ || stopping_) return {false, "The master is shutting down; not upgrading"};
  const std::string name = UpgradeStrategyName(strategy);
  int from = generation_;
  Event start = EventAt(EventKind::kUpgradeStart, now);
  start.to = next_generation_;
  start.detail = name;
  if (upgrade_) {
    const PoolCounts c = Count();
    from = upgrade_->from_generation;
    start.from = from;
    start.detail += ", superseding the upgrade to generation " + std::to_string(generation_);
    Announce(LogLevel::kInfo,
             "Currently upgrading (" + std::to_string(c.attached_ready) + " / " +
                 std::to_string(config_.target) + " ready; starting over with generation " +
                 std::to_string(next_generation_) + ")...",
             start);
  } else {
    start.from = from;
    upgrade_.emplace();  // so that Announce streams this first line too
    Announce(LogLevel::kInfo,
             "Starting " + name + " upgrade from generation " + std::to_string(generation_) +
                 " to " + std::to_string(next_generation_) + "...",
             start);
  }
  // The workers in the slots become the old generation: detached, serving until replaced.
  for (const Slot& slot : slots_) {
    if (!slot.pid) continue;
    Worker& w = workers_.at(*slot.pid);
    Untally(w);
    w.slot = -1;
    Tally(w);
  }
  const int serving = attached_ready_ + static_cast<int>(detached_ready_.size());
  slots_.assign(static_cast<size_t>(config_.target), Slot{});
  RebuildSlotSets();
  generation_ = next_generation_++;
  UpgradeProgress& u = upgrade_.emplace();
  u.strategy = strategy;
  u.from_generation = from;
  u.to_generation = generation_;
  u.started_at = now;
  u.old_at_start = serving;
  Reconcile(now);
  return {true, strategy == UpgradeStrategy::kSmooth ? "Upgrading smoothly, as commanded"
                                                     : "Upgrading fleet, as commanded"};
}

void Supervisor::UpgradeFailedEarly(UpgradeStrategy strategy, const std::string& reason,
                                    Time now) {
  const int failed = next_generation_++;
  Event rolled = EventAt(EventKind::kUpgradeRollback, now);
  rolled.from = generation_;
  rolled.to = failed;
  rolled.seconds = 0;
  rolled.detail = reason;
  last_upgrade_ = UpgradeResult{false, failed, reason, now};
  int serving = 0;
  for (const auto& [pid, w] : workers_) serving += w.state == WorkerState::kReady ? 1 : 0;
  const std::string text = std::string("Upgrade (") + UpgradeStrategyName(strategy) +
                           ") to generation " + std::to_string(failed) + " failed: " + reason +
                           ". Rolled back: generation " + std::to_string(generation_) +
                           " keeps serving (" + std::to_string(serving) + " ready)";
  fx_.LogEvent(LogLevel::kError, "upgrade: " + text, rolled);
  fx_.UpgradeNote(UpgradeNoteKind::kFailed, text);
}

PoolCounts Supervisor::Count() const {
  PoolCounts c;
  c.target = config_.target;
  const int waiting = static_cast<int>(waiting_slots_.size());
  c.alive = static_cast<int>(workers_.size()) + waiting;
  c.attached_ready = attached_ready_;
  // A slot waiting for its respawn holds an unready worker to be (see Recount).
  c.attached_booting = attached_booting_ + waiting;
  c.detached_ready = static_cast<int>(detached_ready_.size());
  c.detached_booting = static_cast<int>(detached_booting_.size());
  c.empty_slots = static_cast<int>(empty_slots_.size());
#ifndef NDEBUG
  if (!TalliesMatch()) {
    throw std::logic_error("supervisor: the pool's tallies drifted from a recount");
  }
#endif
  return c;
}

bool Supervisor::TalliesMatch() const {
  const std::uint64_t steps = scan_steps_;  // the check is not the work it checks
  const PoolCounts r = Recount();
  scan_steps_ = steps;
  const int waiting = static_cast<int>(waiting_slots_.size());
  size_t empty = 0, pending = 0;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].pid) continue;
    const bool in_empty = empty_slots_.contains(static_cast<int>(i));
    const bool in_waiting = waiting_slots_.contains(static_cast<int>(i));
    if (slots_[i].respawn_at ? (!in_waiting || in_empty) : (!in_empty || in_waiting)) return false;
    ++(slots_[i].respawn_at ? pending : empty);
  }
  int new_ready = 0;  // during an upgrade, the slots hold only the new generation
  for (const auto& [pid, w] : workers_) {
    new_ready += w.state == WorkerState::kReady && w.generation == generation_ ? 1 : 0;
  }
  if (upgrade_ && new_ready != attached_ready_) return false;
  return empty == empty_slots_.size() && pending == waiting_slots_.size() &&
         r.alive == static_cast<int>(workers_.size()) + waiting &&
         r.attached_ready == attached_ready_ && r.attached_booting == attached_booting_ + waiting &&
         r.detached_ready == static_cast<int>(detached_ready_.size()) &&
         r.detached_booting == static_cast<int>(detached_booting_.size()) &&
         r.empty_slots == static_cast<int>(empty_slots_.size()) &&
         indexes_.held() == workers_.size() && DeadlinesMatch();
}

void Supervisor::Tally(const Worker& w) {
  if (w.state == WorkerState::kDraining) return;
  const bool ready = w.state == WorkerState::kReady;
  if (w.slot >= 0) {
    ++(ready ? attached_ready_ : attached_booting_);
  } else if (ready) {
    detached_ready_.emplace(w.generation, w.spawned_at, w.pid);
  } else {
    detached_booting_.insert(w.pid);
  }
}

void Supervisor::Untally(const Worker& w) {
  if (w.state == WorkerState::kDraining) return;
  const bool ready = w.state == WorkerState::kReady;
  if (w.slot >= 0) {
    --(ready ? attached_ready_ : attached_booting_);
  } else if (ready) {
    detached_ready_.erase({w.generation, w.spawned_at, w.pid});
  } else {
    detached_booting_.erase(w.pid);
  }
}

void Supervisor::SlotChanged(int slot) {
  empty_slots_.erase(slot);
  waiting_slots_.erase(slot);
  if (const auto it = respawn_key_.find(slot); it != respawn_key_.end()) {
    respawn_due_.erase({it->second, slot});
    respawn_key_.erase(it);
  }
  const Slot& s = slots_[static_cast<size_t>(slot)];
  if (s.pid) return;
  (s.respawn_at ? waiting_slots_ : empty_slots_).insert(slot);
  if (s.respawn_at) {
    respawn_due_.emplace(*s.respawn_at, slot);
    respawn_key_.emplace(slot, *s.respawn_at);
  }
}

void Supervisor::RebuildSlotSets() {
  empty_slots_.clear();
  waiting_slots_.clear();
  respawn_due_.clear();
  respawn_key_.clear();
  for (size_t i = 0; i < slots_.size(); ++i) {
    ++scan_steps_;
    SlotChanged(static_cast<int>(i));
  }
}

void Supervisor::RebuildTallies() {
  attached_ready_ = attached_booting_ = 0;
  detached_ready_.clear();
  detached_booting_.clear();
  indexes_ = IndexPool{};
  for (const auto& [pid, w] : workers_) {
    Tally(w);
    indexes_.Hold(w.index);
  }
}

PoolCounts Supervisor::Recount() const {
  PoolCounts c;
  c.target = config_.target;
  c.alive = static_cast<int>(workers_.size());
  for (const auto& [pid, w] : workers_) {
    ++scan_steps_;
    if (w.state == WorkerState::kDraining) continue;
    const bool ready = w.state == WorkerState::kReady;
    if (w.slot >= 0) {
      ++(ready ? c.attached_ready : c.attached_booting);
    } else {
      ++(ready ? c.detached_ready : c.detached_booting);
    }
  }
  for (const Slot& slot : slots_) {
    ++scan_steps_;
    if (slot.pid) continue;
    if (!slot.respawn_at) {
      ++c.empty_slots;
    } else {
      // A slot waiting for its respawn holds an unready worker to be: it counts against the
      // canary, max_unacked and max_additional, or each new worker dying before ready would
      // let another one start at once in another slot, past the budgets and the backoff.
      ++c.attached_booting;
      ++c.alive;
    }
  }
  return c;
}

void Supervisor::Reconcile(Time now) {
  if (finished_ || stopping_) return;
  // A spawn can make a worker ready at once (-m 0), which lets the next ones start: repeat
  // until a round starts nothing. Each round fills an empty slot, so this ends.
  for (;;) {
    if (upgrade_ && upgrade_->failures >= config_.upgrade.max_failures) {
      RollBack(std::to_string(upgrade_->failures) +
                   " new workers failed (last: " +
                   upgrade_->last_failure + ")",
               now);
    }
    std::optional<UpgradeStrategy> upgrading;
    if (upgrade_) upgrading = upgrade_->strategy;
    UpgradeStep step = PlanStep(upgrading, config_.upgrade, Count());
    int spawned = 0;
    bool deferred = false;
    // The empty slots, lowest first; SpawnInto fills each or files it as waiting.
    while (spawned < step.spawn && !empty_slots_.empty()) {
      ++scan_steps_;
      // Spawn errors count as failures: stop at the one that aborts the upgrade.
      if (upgrade_ && upgrade_->failures >= config_.upgrade.max_failures) break;
      if (!SpawnInto(*empty_slots_.begin(), now)) {
        deferred = true;  // pending now: the rest of the step waits for the next Tick
        break;
      }
      ++spawned;
    }
    if (deferred) {
      step = PlanStep(upgrading, config_.upgrade, Count());
    } else if (spawned > 0) {
      continue;
    }
    StartQueuedRecycles(now);
    // A recycle started just now may have a replacement ready at once (-m 0): count again.
    DrainDetached(upgrade_ ? step : PlanStep(std::nullopt, config_.upgrade, Count()), now);
    if (upgrade_) {
      ReportProgress(Count(), now);
      if (step.done) {
        FinishUpgrade(now);
        continue;  // once more without the upgrade: the recycles it held may start
      }
    }
    return;
  }
}

void Supervisor::DrainDetached(const UpgradeStep& step, Time now) {
  // Booting ones by pid, then the ready ones, oldest generation first, then oldest worker
  // first: the order of the sets. Copied first: a drain takes the worker out of its set.
  if (step.drain_booting) {
    const std::vector<Pid> booting(detached_booting_.begin(), detached_booting_.end());
    for (const Pid pid : booting) {
      ++scan_steps_;
      Worker& w = workers_.at(pid);
      DrainWorker(w, "not ready and no longer in the pool", now);
      // It serves nobody: killed if it lingers (after -t, or as a rolled-back one), or one that
      // ignores the signal would hold the max_upgrade_additional room of the next upgrade.
      if (!w.kill_at) w.kill_at = After(now, config_.rollback_kill_after);
      Reindex(w);
    }
  }
  std::vector<Pid> ready;
  for (auto it = detached_ready_.begin();
       it != detached_ready_.end() && static_cast<int>(ready.size()) < step.drain_ready; ++it) {
    ++scan_steps_;
    ready.push_back(std::get<2>(*it));
  }
  for (const Pid pid : ready) {
    Worker& w = workers_.at(pid);
    DrainWorker(w,
                w.recycle ? std::string("recycled (") + RecycleCauseName(*w.recycle) +
                                "): its replacement is ready"
                          : std::string("replaced by a ready worker"),
                now);
  }
}

void Supervisor::ReportProgress(const PoolCounts& c, Time now) {
  UpgradeProgress& u = *upgrade_;
  const int ready = std::min(c.attached_ready, c.target);
  const int drained = std::max(0, u.old_at_start - c.detached_ready);
  if (ready == u.reported_ready && drained == u.reported_drained) return;
  u.reported_ready = ready;
  u.reported_drained = drained;
  Event e = EventAt(EventKind::kUpgradeProgress, now);
  e.generation = u.to_generation;
  e.detail = std::to_string(ready) + "/" + std::to_string(c.target) + " new ready, " +
             std::to_string(drained) + "/" + std::to_string(u.old_at_start) + " old told to drain";
  Announce(LogLevel::kInfo, "Progress: " + e.detail, e);
}

void Supervisor::CheckUpgradeDeadlines(Time now) {
  if (!upgrade_ || stopping_ || finished_) return;
  // Every new worker is ready (a timer ack in this very tick): Reconcile finishes the upgrade.
  // A deadline never rolls back a complete upgrade.
  if (Count().attached_ready >= config_.target) return;
  const UpgradePolicy& p = config_.upgrade;
  if (p.upgrade_timeout && now >= After(upgrade_->started_at, *p.upgrade_timeout)) {
    RollBack("not done within the upgrade timeout of " + LogSeconds(*p.upgrade_timeout), now);
    return;
  }
  if (!p.ack_timeout) return;
  for (const Pid pid : DueWorkers(now)) {
    const Worker& w = workers_.at(pid);
    if (w.generation == generation_ && w.state == WorkerState::kBooting &&
        now >= After(w.spawned_at, *p.ack_timeout)) {
      RollBack(
          Describe(w) + " was not ready within the ack timeout of " + LogSeconds(*p.ack_timeout),
          now);
      return;
    }
  }
}

void Supervisor::NewWorkerFailed(const std::string& what) {
  UpgradeProgress& u = *upgrade_;
  ++u.failures;
  u.last_failure = what;
  Announce(LogLevel::kWarn, "new " + what + " (failure " + std::to_string(u.failures) + " of " +
                                std::to_string(config_.upgrade.max_failures) + ")");
}

void Supervisor::FinishUpgrade(Time now) {
  Event done = EventAt(EventKind::kUpgradeDone, now);
  done.from = upgrade_->from_generation;
  done.to = generation_;
  done.seconds = ToSeconds(now - upgrade_->started_at);
  Announce(LogLevel::kInfo,
           "Upgraded successfully to generation " + std::to_string(generation_) + ".", done);
  last_upgrade_ = UpgradeResult{true, generation_, "", now};
  upgrade_.reset();
  fx_.Log(LogLevel::kInfo, "upgrade: Upgrade done");
  fx_.UpgradeNote(UpgradeNoteKind::kDone, "Upgrade done");
}

void Supervisor::RollBack(const std::string& reason, Time now) {
  const int failed = generation_;
  const int from = upgrade_->from_generation;
  Event rolled = EventAt(EventKind::kUpgradeRollback, now);
  rolled.from = from;
  rolled.to = failed;
  rolled.seconds = ToSeconds(now - upgrade_->started_at);
  rolled.detail = reason;
  upgrade_.reset();
  last_upgrade_ = UpgradeResult{false, failed, reason, now};
  generation_ = from;

  // Unready new workers serve nobody: they go now, and are killed if they linger. Ready ones
  // are detached and drain only as the old generation's slots are ready again.
  const Duration grace = config_.signal_timeout.value_or(config_.rollback_kill_after);
  for (auto& [pid, w] : workers_) {
    if (w.generation != failed || w.state == WorkerState::kDraining) continue;
    Untally(w);
    w.slot = -1;
    Tally(w);
    if (w.state == WorkerState::kReady) continue;
    SendStop(w, config_.drain_signal, now);
    if (!w.kill_at) w.kill_at = After(now, grace);
    Reindex(w);
  }
  slots_.assign(static_cast<size_t>(config_.target), Slot{});
  RebuildSlotSets();
  if (!stopping_) {
    std::vector<Worker*> old;
    for (auto& [pid, w] : workers_) {
      if (w.generation != failed && w.state != WorkerState::kDraining) old.push_back(&w);
    }
    std::sort(old.begin(), old.end(),
              [](const Worker* a, const Worker* b) { return a->index < b->index; });
    for (size_t i = 0; i < old.size() && i < slots_.size(); ++i) {
      Untally(*old[i]);
      old[i]->slot = static_cast<int>(i);
      Tally(*old[i]);
      slots_[i].pid = old[i]->pid;
      slots_[i].starts = 1;
    }
    RebuildSlotSets();
    RebuildDeadlines();  // back in a slot: an age recycle may be due again
    // Replacements run the command as it is now: a rollback cannot restore old files.
    SpawnRange(static_cast<int>(old.size()), static_cast<int>(slots_.size()), now);
  }
  int serving = 0;
  for (const auto& [pid, w] : workers_) serving += w.state == WorkerState::kReady ? 1 : 0;
  const std::string text = "Upgrade to generation " + std::to_string(failed) + " failed: " +
                           reason + ". Rolled back: generation " + std::to_string(from) +
                           " keeps serving (" + std::to_string(serving) + " ready)";
  fx_.LogEvent(LogLevel::kError, "upgrade: " + text, rolled);
  fx_.UpgradeNote(UpgradeNoteKind::kFailed, text);
}

void Supervisor::Announce(LogLevel level, const std::string& text) {
  fx_.Log(level, text);
  if (upgrade_) fx_.UpgradeNote(UpgradeNoteKind::kProgress, text);
}

void Supervisor::Announce(LogLevel level, const std::string& text, const Event& event) {
  fx_.LogEvent(level, text, event);
  if (upgrade_) fx_.UpgradeNote(UpgradeNoteKind::kProgress, text);
}

}  // namespace einhorn::core
