#include "core/supervisor.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "core/recycle_spec.h"
#include "core/supervisor_text.h"

namespace einhorn::core {

std::string Describe(const Worker& w) {
  return "worker " + std::to_string(w.pid) + " (index " + std::to_string(w.index) +
         ", generation " + std::to_string(w.generation) + ")";
}

Event WorkerEvent(EventKind kind, const Worker& w, Time now) {
  Event e = EventAt(kind, now);
  e.slot = w.slot;
  e.pid = w.pid;
  e.generation = w.generation;
  return e;
}

const char* WorkerStateName(WorkerState s) {
  switch (s) {
    case WorkerState::kBooting:
      return "booting";
    case WorkerState::kReady:
      return "ready";
    case WorkerState::kDraining:
      return "draining";
  }
  return "?";
}

SupervisorConfig ConfigFromOptions(const Options& o, std::uint64_t jitter_seed) {
  SupervisorConfig c;
  c.target = o.number;
  c.ack_mode = o.ack_mode;
  c.backoff_base = Seconds(o.seconds);
  c.backoff_cap = std::max(Seconds(30), c.backoff_base);
  if (o.signal_timeout) c.signal_timeout = Seconds(*o.signal_timeout);
  c.drain_signal = o.drain_signal;
  c.kill_children_on_exit = o.kill_children_on_exit;
  // Without --max-unacked: Einhorn's default (the CPU count) as a floor, scaled with the pool
  // (UpgradePolicy). An explicit value is used as is, as Einhorn does.
  c.upgrade.max_unacked =
      o.max_unacked.value_or(std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
  c.upgrade.scale_unacked = !o.max_unacked.has_value();
  c.upgrade.max_additional = o.max_upgrade_additional;
  c.upgrade.canary = o.canary;
  if (o.ack_timeout > 0) c.upgrade.ack_timeout = Seconds(o.ack_timeout);
  if (o.upgrade_timeout > 0) c.upgrade.upgrade_timeout = Seconds(o.upgrade_timeout);
  c.upgrade.max_failures = o.upgrade_max_failures;
  c.jitter_seed = jitter_seed;
  if (o.worker_watchdog) c.worker_watchdog = Seconds(*o.worker_watchdog);
  if (!o.max_worker_lifetime.empty()) {
    // Checked by FindProblem before; an unparsable one (never) is no limit.
    const Result<LifetimeSpec> spec = ParseLifetimeSpec(o.max_worker_lifetime);
    if (spec.ok()) {
      c.max_worker_lifetime = Seconds(spec.value().seconds);
      c.lifetime_jitter = spec.value().jitter_pct / 100;
    }
  }
  return c;
}

Supervisor::Supervisor(SupervisorConfig config, Effects& effects)
    : config_(config), fx_(effects), rng_(config.jitter_seed) {}

void Supervisor::Start(Time now) {
  slots_.resize(static_cast<size_t>(config_.target));
  RebuildSlotSets();
  fx_.Log(LogLevel::kInfo, "launching " + std::to_string(config_.target) + " worker" +
                               (config_.target == 1 ? "" : "s"));
  SpawnRange(0, config_.target, now);
}

void Supervisor::SpawnRange(int from, int to, Time now) {
  for (int i = from; i < to; ++i) {
    if (SpawnInto(i, now)) continue;
    for (int j = i + 1; j < to; ++j) {
      slots_[static_cast<size_t>(j)].respawn_at = now;
      SlotChanged(j);
    }
    return;
  }
}

bool Supervisor::SpawnInto(int slot_index, Time now) {
  Slot& slot = slots_[static_cast<size_t>(slot_index)];
  slot.respawn_at.reset();
  SlotChanged(slot_index);
  const int index = FreeIndex();
  const SpawnOutcome outcome = fx_.Spawn(SpawnRequest{slot_index, index, generation_});
  if (outcome.deferred) {
    slot.respawn_at = now;  // pending, due at once: the shell asks again on its next turn
    SlotChanged(slot_index);
    return false;
  }
  if (!outcome.ok()) {
    SpawnFailed(slot_index, outcome.error, now);
    return true;
  }
  if (slot.starts++ > 0) ++slot.restarts;
  Worker w;
  w.pid = outcome.pid;
  w.slot = slot_index;
  w.index = index;
  w.generation = generation_;
  w.spawned_at = now;
  DrawLifetime(w);
  slot.pid = w.pid;
  SlotChanged(slot_index);
  Announce(LogLevel::kInfo, "spawned " + Describe(w), WorkerEvent(EventKind::kSpawn, w, now));
  if (const auto old = workers_.find(w.pid); old != workers_.end()) {  // a pid the kernel reused
    Untally(old->second);
    indexes_.Release(old->second.index);
    killed_ -= old->second.killed ? 1 : 0;
  }
  auto [it, inserted] = workers_.insert_or_assign(w.pid, w);
  (void)inserted;
  indexes_.Hold(index);
  Tally(it->second);
  Reindex(it->second);
  if (config_.ack_mode.kind == AckMode::Kind::kTimer && config_.ack_mode.timer_seconds <= 0) {
    BecomeReady(it->second, "(timer ack of 0s)", now);
  }
  return true;
}

// Exec failed (or fork, or the notify socket): a failure of the slot, as a death before ready.
void Supervisor::SpawnFailed(int slot_index, const std::string& error, Time now) {
  Event e = EventAt(EventKind::kSpawnFailed, now);
  e.slot = slot_index;
  e.generation = generation_;
  e.detail = error;
  Announce(LogLevel::kError,
           "slot " + std::to_string(slot_index) + ": could not start the worker: " + error, e);
  if (upgrade_) NewWorkerFailed("worker could not be started: " + error);
  ++slots_[static_cast<size_t>(slot_index)].consecutive_failures;
  ScheduleRespawn(slot_index, now);
}

// The one way a worker becomes ready, whatever said so (a timer ack of 0 at fork, the timer, a
// worker:ack or READY=1): the watchdog's clock starts here too, or a worker ready at fork
// (-m 0) would never be watched.
void Supervisor::BecomeReady(Worker& w, const std::string& how, Time now) {
  Untally(w);
  w.state = WorkerState::kReady;
  Tally(w);
  w.ready_at = now;
  w.watchdog_at = now;
  Reindex(w);
  Event e = WorkerEvent(EventKind::kReady, w, now);
  e.seconds = ToSeconds(now - w.spawned_at);
  Announce(LogLevel::kInfo, Describe(w) + " is ready " + how, e);
}

Duration Supervisor::BackoffFor(int failures) {
  const double base = ToSeconds(config_.backoff_base);
  const double cap = ToSeconds(config_.backoff_cap);
  // pow overflows to inf for huge streaks; min() then picks the cap.
  double delay = std::min(cap, base * std::pow(1.5, std::max(0, failures - 1)));
  if (config_.jitter > 0) {
    std::uniform_real_distribution<double> factor(1 - config_.jitter, 1 + config_.jitter);
    delay *= factor(rng_);
  }
  return Seconds(delay);
}

void Supervisor::ScheduleRespawn(int slot_index, Time now) {
  Slot& slot = slots_[static_cast<size_t>(slot_index)];
  const Duration delay = BackoffFor(slot.consecutive_failures);
  slot.respawn_at = After(now, delay);
  SlotChanged(slot_index);
  Event e = EventAt(EventKind::kRespawnDelay, now);
  e.slot = slot_index;
  e.seconds = ToSeconds(delay);
  e.detail = std::to_string(slot.consecutive_failures) + " consecutive failure" +
             (slot.consecutive_failures == 1 ? "" : "s");
  Announce(LogLevel::kInfo,
           "slot " + std::to_string(slot_index) + ": respawning in " + LogSeconds(delay) +
               " after " + e.detail,
           e);
}

void Supervisor::ChildExited(Pid pid, const ExitStatus& status, Time now) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) {
    fx_.Log(LogLevel::kDebug, "reaped process " + std::to_string(pid) +
                                  " that is not a worker (" + status.ToString() + ")");
    return;
  }
  const Worker w = it->second;
  Untally(w);
  indexes_.Release(w.index);
  Unindex(pid);
  killed_ -= w.killed ? 1 : 0;
  workers_.erase(it);
  const Duration uptime = now - w.spawned_at;
  // A new worker that dies before it is ready, or soon after (within -s), is a failure of the
  // new generation: one that acks and then crashes would otherwise replace the old one.
  const bool new_worker_failed =
      upgrade_ && !stopping_ && w.generation == generation_ &&
      w.state != WorkerState::kDraining && !(w.ready_at && uptime >= config_.backoff_base);
  AnnounceExit(w, status, uptime, now);
  RecycleEnded(w, now);
  RefillSlot(w, status, uptime, now);
  if (new_worker_failed) {
    NewWorkerFailed(Describe(w) + " exited with " + status.ToString() +
                    (w.ready_at ? " within " + LogSeconds(config_.backoff_base) + " of being ready"
                                : " before it was ready"));
  }
  Reconcile(now);
  CheckFinished();
}

void Supervisor::AnnounceExit(const Worker& w, const ExitStatus& status, Duration uptime,
                              Time now) {
  Event exited = WorkerEvent(EventKind::kExit, w, now);
  exited.exit = status;
  exited.during_drain = w.state == WorkerState::kDraining;
  exited.seconds = ToSeconds(uptime);
  Announce(w.state == WorkerState::kDraining || !(status.signaled || status.code != 0)
               ? LogLevel::kInfo
               : LogLevel::kWarn,
           Describe(w) + " exited with " + status.ToString() + " after " + LogSeconds(uptime) +
               (w.ready_at ? "" : ", before it was ready"),
           exited);
}

void Supervisor::RefillSlot(const Worker& w, const ExitStatus& status, Duration uptime,
                            Time now) {
  if (w.slot < 0 || w.slot >= static_cast<int>(slots_.size())) return;
  Slot& slot = slots_[static_cast<size_t>(w.slot)];
  if (slot.pid != w.pid) return;
  slot.pid.reset();
  SlotChanged(w.slot);
  slot.last_exit = status;
  if (stopping_) return;
  // A worker that never became ready, or that died within the backoff base of its start, is
  // part of a crash loop; one that stayed up ends the streak.
  const bool stable = w.ready_at.has_value() && uptime >= config_.backoff_base;
  if (stable) {
    slot.consecutive_failures = 0;
    SpawnInto(w.slot, now);
  } else {
    ++slot.consecutive_failures;
    ScheduleRespawn(w.slot, now);
  }
}

void Supervisor::SendStop(Worker& w, Signal sig, Time now) {
  if (!w.signaled_at) w.signaled_at = now;
  if (std::find(w.signals_sent.begin(), w.signals_sent.end(), sig) == w.signals_sent.end()) {
    w.signals_sent.push_back(sig);
  }
  if (!w.kill_at && config_.signal_timeout) w.kill_at = After(now, *config_.signal_timeout);
  if (!w.draining_since) w.draining_since = now;
  Untally(w);
  w.state = WorkerState::kDraining;
  Reindex(w);
  fx_.Kill(w.pid, sig);
}

int Supervisor::FreeIndex() const { return indexes_.Lowest(); }

void Supervisor::SetTarget(int n, Time now) {
  if (n < 1 || finished_ || stopping_) return;
  const int old = config_.target;
  config_.target = n;
  if (n > old) {
    const int had = std::min(old, static_cast<int>(slots_.size()));  // fewer before Start
    slots_.resize(static_cast<size_t>(n));
    // Due now, started by the next Tick: the shell answers the client first, so a resize
    // never waits for fork and exec. During an upgrade, the upgrade's budgets fill them.
    if (!upgrade_) {
      for (int i = old; i < n; ++i) slots_[static_cast<size_t>(i)].respawn_at = now;
    }
    for (int i = had; i < n; ++i) SlotChanged(i);
    Reconcile(now);
    return;
  }
  // Give up the slots that serve least first: empty ones (a respawn pending), then those whose
  // worker is not ready yet, then ready ones from the highest slot down (as Einhorn: unacked
  // first). The slots kept are renumbered in their order. Found from the slot sets and the
  // tallies, not by sorting every slot: a `dec` at n workers is O(log n) when the highest slot
  // goes (issue 20), and the renumbering moves only the slots above the lowest one given up.
  const size_t give_up = static_cast<size_t>(old - n);
  const int have = std::min(old, static_cast<int>(slots_.size()));  // fewer before Start
  std::vector<int> chosen;  // in the order they are given up
  chosen.reserve(give_up);
  // Serving nobody: the empty and the waiting slots, highest first.
  auto empty = empty_slots_.rbegin();
  auto waiting = waiting_slots_.rbegin();
  while (chosen.size() < give_up &&
         (empty != empty_slots_.rend() || waiting != waiting_slots_.rend())) {
    ++scan_steps_;
    if (waiting == waiting_slots_.rend() ||
        (empty != empty_slots_.rend() && *empty > *waiting)) {
      chosen.push_back(*empty++);
    } else {
      chosen.push_back(*waiting++);
    }
  }
  // Then a worker that is not ready (booting, or stopping on its own), highest first; the
  // tallies say how many there are, so the walk down stops once it has seen them all.
  const int attached = static_cast<int>(slots_.size() - empty_slots_.size() - waiting_slots_.size());
  int unready = attached - attached_ready_;
  auto worker_in = [this](int i) -> const Worker* {
    const Slot& slot = slots_[static_cast<size_t>(i)];
    return slot.pid ? &workers_.at(*slot.pid) : nullptr;
  };
  for (int i = have - 1; i >= 0 && unready > 0 && chosen.size() < give_up; --i) {
    ++scan_steps_;
    const Worker* w = worker_in(i);
    if (w == nullptr || w->state == WorkerState::kReady) continue;
    --unready;
    chosen.push_back(i);
  }
  // Then ready ones, highest first (the slots above were all chosen or are not ready).
  for (int i = have - 1; i >= 0 && chosen.size() < give_up; --i) {
    ++scan_steps_;
    const Worker* w = worker_in(i);
    if (w == nullptr || w->state != WorkerState::kReady) continue;
    chosen.push_back(i);
  }
  for (const int i : chosen) {
    const Slot& slot = slots_[static_cast<size_t>(i)];
    if (!slot.pid) continue;
    Worker& w = workers_.at(*slot.pid);
    DrainWorker(w, "the pool shrinks to " + std::to_string(n), now);  // its event has slot i
    w.slot = -1;  // draining: no tally to move
  }
  // Renumber: the slots below the lowest one given up keep their numbers.
  std::sort(chosen.begin(), chosen.end());
  const int lowest = chosen.empty() ? have : std::min(have, chosen.front());
  size_t next_chosen = 0;
  int to = lowest;
  for (int from = lowest; from < have; ++from) {
    ++scan_steps_;
    if (next_chosen < chosen.size() && chosen[next_chosen] == from) {
      ++next_chosen;
      continue;
    }
    Slot& slot = slots_[static_cast<size_t>(from)];
    if (slot.pid) workers_.at(*slot.pid).slot = to;
    if (to != from) slots_[static_cast<size_t>(to)] = std::move(slot);
    ++to;
  }
  slots_.resize(static_cast<size_t>(n));
  empty_slots_.erase(empty_slots_.lower_bound(lowest), empty_slots_.end());
  waiting_slots_.erase(waiting_slots_.lower_bound(lowest), waiting_slots_.end());
  for (auto it = respawn_key_.lower_bound(lowest); it != respawn_key_.end();) {
    respawn_due_.erase({it->second, it->first});
    it = respawn_key_.erase(it);
  }
  for (int i = lowest; i < static_cast<int>(slots_.size()); ++i) {
    ++scan_steps_;
    SlotChanged(i);
  }
  Reconcile(now);
}

AckResult Supervisor::Ack(Pid pid, Time now) {
  if (config_.ack_mode.kind == AckMode::Kind::kTimer) return AckResult::kNotManual;
  auto it = workers_.find(pid);
  if (it == workers_.end()) return AckResult::kUnknownPid;
  Worker& w = it->second;
  if (w.state == WorkerState::kDraining) return AckResult::kDraining;
  if (w.ready_at) return AckResult::kAlreadyAcked;
  BecomeReady(w, "(acked after " + LogSeconds(now - w.spawned_at) + ")", now);
  Reconcile(now);
  return AckResult::kAcked;
}

void Supervisor::DrainWorker(Worker& w, const std::string& why, Time now) {
  Event e = WorkerEvent(EventKind::kDrain, w, now);
  e.detail = why;
  Announce(LogLevel::kInfo, "draining " + Describe(w) + ": " + why, e);
  SendStop(w, config_.drain_signal, now);
}

void Supervisor::WorkerStatusText(Pid pid, const std::string& text) {
  auto it = workers_.find(pid);
  if (it != workers_.end()) it->second.notify_status = text;
}

void Supervisor::WorkerWatchdog(Pid pid, Time now) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  it->second.watchdog_at = now;
  Reindex(it->second);
}

void Supervisor::WorkerStopping(Pid pid, Time now) {
  auto it = workers_.find(pid);
  if (it == workers_.end() || it->second.state == WorkerState::kDraining) return;
  Worker& w = it->second;
  Untally(w);
  w.state = WorkerState::kDraining;
  Reindex(w);
  if (!w.draining_since) w.draining_since = now;
  Event e = WorkerEvent(EventKind::kDrain, w, now);
  e.detail = "STOPPING=1";
  Announce(LogLevel::kInfo, Describe(w) + " is stopping on its own (STOPPING=1)", e);
  Reconcile(now);
}

bool Supervisor::Ping(Pid pid, Time now, std::optional<wire::Id> request_id,
                      std::optional<std::int64_t> wall_ns) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) return false;
  it->second.pinged_at = now;
  // As Einhorn, each ping replaces the last one's request_id, even with none.
  it->second.pinged_request_id = std::move(request_id);
  it->second.pinged_wall_ns = wall_ns;
  return true;
}

int Supervisor::SignalAll(Signal signal) {
  for (const auto& [pid, w] : workers_) fx_.Kill(pid, signal);
  return static_cast<int>(workers_.size());
}

void Supervisor::WatchdogExpired(Worker& w, Time now) {
  ++watchdog_timeouts_;
  Event e = WorkerEvent(EventKind::kWatchdogTimeout, w, now);
  e.seconds = ToSeconds(now - *w.watchdog_at);
  Announce(LogLevel::kWarn,
           Describe(w) + " sent no WATCHDOG=1 for " + LogSeconds(now - *w.watchdog_at) +
               ": it is hung; sending SIGABRT",
           e);
  w.kill_at = After(now, config_.signal_timeout.value_or(config_.rollback_kill_after));
  SendStop(w, Signal::kAbrt, now);
}

void Supervisor::KillLingering(Worker& w, Time now) {
  w.killed = true;
  ++killed_;
  Reindex(w);
  const std::string alive = LogSeconds(now - w.signaled_at.value_or(now));
  Event e = WorkerEvent(EventKind::kKill, w, now);
  e.detail = "alive " + alive + " after its stop signal";
  Announce(LogLevel::kWarn,
           Describe(w) + " is still alive " + alive + " after it was signalled; sending SIGKILL",
           e);
  fx_.Kill(w.pid, Signal::kKill);
}

void Supervisor::CheckFinished() {
  if (stopping_ && workers_.empty()) {
    finished_ = true;
    exit_code_ = 0;
  }
}

}  // namespace einhorn::core
