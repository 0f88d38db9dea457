#include "core/supervisor.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace einhorn::core {
namespace {

std::string Secs(Duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3fs", ToSeconds(d));
  return buf;
}

std::string Describe(const Worker& w) {
  return "worker " + std::to_string(w.pid) + " (index " + std::to_string(w.index) +
         ", generation " + std::to_string(w.generation) + ")";
}

}  // namespace

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
  c.kill_children_on_exit = o.kill_children_on_exit;
  c.jitter_seed = jitter_seed;
  return c;
}

Supervisor::Supervisor(SupervisorConfig config, Effects& effects)
    : config_(config), fx_(effects), rng_(config.jitter_seed) {}

void Supervisor::Start(Time now) {
  slots_.resize(static_cast<size_t>(config_.target));
  fx_.Log(LogLevel::kInfo, "launching " + std::to_string(config_.target) + " worker" +
                               (config_.target == 1 ? "" : "s"));
  for (int i = 0; i < config_.target; ++i) SpawnInto(i, now);
}

void Supervisor::SpawnInto(int slot_index, Time now) {
  Slot& slot = slots_[static_cast<size_t>(slot_index)];
  slot.respawn_at.reset();
  const int index = FreeIndex();
  const SpawnOutcome outcome = fx_.Spawn(SpawnRequest{slot_index, index, generation_});
  if (!outcome.ok()) {
    fx_.Log(LogLevel::kError, "slot " + std::to_string(slot_index) +
                                  ": could not start the worker: " + outcome.error);
    ++slot.consecutive_failures;
    ScheduleRespawn(slot_index, now);
    return;
  }
  if (slot.starts++ > 0) ++slot.restarts;
  Worker w;
  w.pid = outcome.pid;
  w.slot = slot_index;
  w.index = index;
  w.generation = generation_;
  w.spawned_at = now;
  slot.pid = w.pid;
  fx_.Log(LogLevel::kInfo, "spawned " + Describe(w));
  auto [it, inserted] = workers_.insert_or_assign(w.pid, w);
  (void)inserted;
  if (config_.ack_mode.kind == AckMode::Kind::kTimer && config_.ack_mode.timer_seconds <= 0) {
    it->second.state = WorkerState::kReady;
    it->second.ready_at = now;
    fx_.Log(LogLevel::kInfo, Describe(w) + " is ready (timer ack of 0s)");
  }
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
  slot.respawn_at = now + delay;
  fx_.Log(LogLevel::kInfo, "slot " + std::to_string(slot_index) + ": respawning in " +
                               Secs(delay) + " after " + std::to_string(slot.consecutive_failures) +
                               " consecutive failure" +
                               (slot.consecutive_failures == 1 ? "" : "s"));
}

void Supervisor::ChildExited(Pid pid, const ExitStatus& status, Time now) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) {
    fx_.Log(LogLevel::kDebug, "reaped process " + std::to_string(pid) +
                                  " that is not a worker (" + status.ToString() + ")");
    return;
  }
  const Worker w = it->second;
  workers_.erase(it);
  const Duration uptime = now - w.spawned_at;
  fx_.Log(w.state == WorkerState::kDraining || !(status.signaled || status.code != 0)
              ? LogLevel::kInfo
              : LogLevel::kWarn,
          Describe(w) + " exited with " + status.ToString() + " after " + Secs(uptime) +
              (w.ready_at ? "" : ", before it was ready"));

  if (w.slot >= 0 && w.slot < static_cast<int>(slots_.size())) {
    Slot& slot = slots_[static_cast<size_t>(w.slot)];
    if (slot.pid == pid) {
      slot.pid.reset();
      slot.last_exit = status;
      if (!stopping_) {
        // A worker that never became ready, or that died within the backoff base of its
        // start, is part of a crash loop; one that stayed up ends the streak.
        const bool stable = w.ready_at.has_value() && uptime >= config_.backoff_base;
        if (stable) {
          slot.consecutive_failures = 0;
          SpawnInto(w.slot, now);
        } else {
          ++slot.consecutive_failures;
          ScheduleRespawn(w.slot, now);
        }
      }
    }
  }
  CheckFinished();
}

void Supervisor::SendStop(Worker& w, Signal sig, Time now) {
  if (!w.signaled_at) w.signaled_at = now;
  w.state = WorkerState::kDraining;
  fx_.Kill(w.pid, sig);
}

void Supervisor::Stop(StopKind kind, Time now) {
  if (finished_) return;
  const bool again = stopping_.has_value();
  stopping_ = kind;
  for (Slot& slot : slots_) slot.respawn_at.reset();

  if (kind == StopKind::kQuit) {
    fx_.Log(LogLevel::kInfo, "quitting: sending SIGQUIT to " + std::to_string(workers_.size()) +
                                 " workers and exiting at once");
    for (auto& [pid, w] : workers_) fx_.Kill(pid, Signal::kQuit);
    if (config_.kill_children_on_exit) {
      for (auto& [pid, w] : workers_) fx_.Kill(pid, config_.drain_signal);
    }
    finished_ = true;
    exit_code_ = 1;
    return;
  }

  StopWith(kind == StopKind::kDrain ? config_.drain_signal : Signal::kTerm, again, now);
}

void Supervisor::Die(Signal signal, Time now) {
  if (finished_) return;
  const bool again = stopping_.has_value();
  if (!stopping_) stopping_ = StopKind::kDrain;
  for (Slot& slot : slots_) slot.respawn_at.reset();
  StopWith(signal, again, now);
}

void Supervisor::StopWith(Signal sig, bool again, Time now) {
  fx_.Log(LogLevel::kInfo, std::string(again ? "re-sending " : "stopping: sending ") +
                               SignalName(sig) + " to " + std::to_string(workers_.size()) +
                               " worker" + (workers_.size() == 1 ? "" : "s"));
  for (auto& [pid, w] : workers_) SendStop(w, sig, now);
  CheckFinished();
}

int Supervisor::FreeIndex() const {
  std::vector<bool> used(workers_.size() + 1, false);
  for (const auto& [pid, w] : workers_) {
    if (w.index >= 0 && static_cast<size_t>(w.index) < used.size()) {
      used[static_cast<size_t>(w.index)] = true;
    }
  }
  return static_cast<int>(std::find(used.begin(), used.end(), false) - used.begin());
}

void Supervisor::SetTarget(int n, Time now) {
  if (n < 1 || finished_ || stopping_) return;
  const int old = config_.target;
  config_.target = n;
  if (n > old) {
    slots_.resize(static_cast<size_t>(n));
    for (int i = old; i < n; ++i) SpawnInto(i, now);
    return;
  }
  for (int i = n; i < old; ++i) {
    Slot& slot = slots_[static_cast<size_t>(i)];
    if (!slot.pid) continue;
    Worker& w = workers_.at(*slot.pid);
    w.slot = -1;
    fx_.Log(LogLevel::kInfo, "draining " + Describe(w) + ": the pool shrinks to " +
                                 std::to_string(n));
    SendStop(w, config_.drain_signal, now);
  }
  slots_.resize(static_cast<size_t>(n));
}

AckResult Supervisor::Ack(Pid pid, Time now) {
  if (config_.ack_mode.kind != AckMode::Kind::kManual) return AckResult::kNotManual;
  auto it = workers_.find(pid);
  if (it == workers_.end()) return AckResult::kUnknownPid;
  Worker& w = it->second;
  if (w.state == WorkerState::kDraining) return AckResult::kDraining;
  if (w.ready_at) return AckResult::kAlreadyAcked;
  w.state = WorkerState::kReady;
  w.ready_at = now;
  fx_.Log(LogLevel::kInfo, Describe(w) + " is ready (acked after " + Secs(now - w.spawned_at) + ")");
  return AckResult::kAcked;
}

bool Supervisor::Ping(Pid pid, Time now) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) return false;
  it->second.pinged_at = now;
  return true;
}

int Supervisor::SignalAll(Signal signal) {
  for (const auto& [pid, w] : workers_) fx_.Kill(pid, signal);
  return static_cast<int>(workers_.size());
}

void Supervisor::Tick(Time now) {
  if (finished_) return;
  if (config_.ack_mode.kind == AckMode::Kind::kTimer) {
    const Duration ack_after = Seconds(config_.ack_mode.timer_seconds);
    for (auto& [pid, w] : workers_) {
      if (w.state == WorkerState::kBooting && now >= w.spawned_at + ack_after) {
        w.state = WorkerState::kReady;
        w.ready_at = now;
        fx_.Log(LogLevel::kInfo, Describe(w) + " is ready after " + Secs(now - w.spawned_at));
      }
    }
  }
  if (!stopping_) {
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].respawn_at && now >= *slots_[i].respawn_at) {
        SpawnInto(static_cast<int>(i), now);
      }
    }
  }
  if (config_.signal_timeout) {
    for (auto& [pid, w] : workers_) {
      if (w.signaled_at && !w.killed && now >= *w.signaled_at + *config_.signal_timeout) {
        w.killed = true;
        fx_.Log(LogLevel::kWarn, Describe(w) + " is still alive " +
                                     Secs(*config_.signal_timeout) +
                                     " after it was signalled; sending SIGKILL");
        fx_.Kill(pid, Signal::kKill);
      }
    }
  }
}

std::optional<Time> Supervisor::NextDeadline() const {
  if (finished_) return std::nullopt;
  std::optional<Time> next;
  auto consider = [&next](Time t) {
    if (!next || t < *next) next = t;
  };
  if (config_.ack_mode.kind == AckMode::Kind::kTimer) {
    const Duration ack_after = Seconds(config_.ack_mode.timer_seconds);
    for (const auto& [pid, w] : workers_) {
      if (w.state == WorkerState::kBooting) consider(w.spawned_at + ack_after);
    }
  }
  if (!stopping_) {
    for (const Slot& slot : slots_) {
      if (slot.respawn_at) consider(*slot.respawn_at);
    }
  }
  if (config_.signal_timeout) {
    for (const auto& [pid, w] : workers_) {
      if (w.signaled_at && !w.killed) consider(*w.signaled_at + *config_.signal_timeout);
    }
  }
  return next;
}

void Supervisor::CheckFinished() {
  if (stopping_ && workers_.empty()) {
    finished_ = true;
    exit_code_ = 0;
  }
}

}  // namespace einhorn::core
