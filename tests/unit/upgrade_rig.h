// The upgrade test rig: a Supervisor driven with a fake clock and FakeEffects, checking after
// every single call the serving invariant and the bookkeeping an upgrade must keep. Shared by
// the supervisor_upgrade*_test.cc files.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/supervisor.h"
#include "fake_effects.h"

namespace einhorn::core::upgrade_rig {

using test::FakeEffects;

inline constexpr auto kSmooth = UpgradeStrategy::kSmooth;
inline constexpr auto kFleet = UpgradeStrategy::kFleet;
inline const ExitStatus kExit0{false, 0};
inline const ExitStatus kExit1{false, 1};
inline const ExitStatus kKilled{true, 9};

inline Time At(double seconds) { return Seconds(seconds); }

// The invariant: after any call, the ready workers that are not draining number at least
// min(N, what they were just before), unless a ready worker exited on its own in that call.
inline bool ServingHolds(int before, int after, int target, bool ready_worker_exited) {
  return ready_worker_exited || after >= std::min(target, before);
}

// ack: the timer delay in seconds, or nullopt for manual acks.
inline SupervisorConfig Cfg(int n, std::optional<double> ack) {
  SupervisorConfig c;
  c.target = n;
  if (ack) {
    c.ack_mode.timer_seconds = *ack;
  } else {
    c.ack_mode.kind = AckMode::Kind::kManual;
  }
  c.backoff_base = Seconds(1);
  c.backoff_cap = Seconds(30);
  c.jitter = 0;
  c.upgrade.max_unacked = 1;
  c.upgrade.canary = true;
  c.upgrade.max_failures = 3;
  return c;
}

// Drives a Supervisor and checks, after every single call, the serving invariant and the
// bookkeeping an upgrade must keep (slots, notes, generations, budgets).
class Rig {
 public:
  explicit Rig(SupervisorConfig c) : s(c, fx) {}
  Rig(const Rig&) = delete;  // the Supervisor holds a reference to fx
  Rig& operator=(const Rig&) = delete;

  // Starts n ready workers of generation 1 (pids 100..), started at 0 and ready at 1.
  void StartReady() {
    Start(0);
    if (s.config().ack_mode.kind == AckMode::Kind::kManual) {
      for (int i = 0; i < s.target(); ++i) Ack(100 + i, 1);
    } else {
      Tick(std::max(1.0, s.config().ack_mode.timer_seconds));
    }
    REQUIRE(Serving() == s.target());
  }

  FakeEffects fx;
  Supervisor s;
  bool report = true;          // CHECK each violation; otherwise only collect them
  bool strict_shrink = false;  // hold shrinks to the serving invariant too
  std::vector<std::string> violations;
  double now = 0;

  void Start(double t) {
    Call("Start", t, {}, [&] { s.Start(At(t)); });
  }
  void Tick(double t) {
    Call("Tick", t, {}, [&] { s.Tick(At(t)); });
  }
  AckResult Ack(Pid pid, double t) {
    AckResult r{};
    Call("Ack " + std::to_string(pid), t, {}, [&] { r = s.Ack(pid, At(t)); });
    return r;
  }
  void Exit(Pid pid, double t, ExitStatus status = kExit1) {
    auto it = s.workers().find(pid);
    const bool ready = it != s.workers().end() && it->second.state == WorkerState::kReady;
    // A ready worker that stayed up is replaced in its slot at once, whatever the budgets.
    replaced_slot_ = ready ? it->second.slot : -1;
    Call("Exit " + std::to_string(pid) + (ready ? " (ready)" : ""), t, {.ready_exit = ready},
         [&] { s.ChildExited(pid, status, At(t)); });
  }
  UpgradeStart Upgrade(UpgradeStrategy strategy, double t) {
    UpgradeStart r;
    Call(std::string("Upgrade ") + UpgradeStrategyName(strategy), t, {.upgrade = true}, [&] {
      r = s.Upgrade(strategy, At(t));
      upgrade_started_ = r.started;
    });
    return r;
  }
  void SetTarget(int n, double t) {
    Call("SetTarget " + std::to_string(n), t, {.resize = true}, [&] { s.SetTarget(n, At(t)); });
  }
  void Stop(StopKind kind, double t) {
    Call("Stop", t, {}, [&] { s.Stop(kind, At(t)); });
  }
  // A recycle (supervisor_recycle.cc) is held to every check above; only the hard memory
  // limit may drain a ready worker before its replacement is ready.
  RecycleResult Recycle(Pid pid, RecycleCause cause, double t) {
    RecycleResult r{};
    Call("Recycle " + std::to_string(pid), t, {.hard_recycle = cause == RecycleCause::kMemoryHard},
         [&] { r = s.Recycle(pid, cause, At(t)); });
    return r;
  }
  int RecycleAll(double t) {
    int n = 0;
    Call("RecycleAll", t, {}, [&] { n = s.RecycleAll(RecycleCause::kOperator, At(t)); });
    return n;
  }
  void Die(Signal signal, double t) {
    Call("Die", t, {}, [&] { s.Die(signal, At(t)); });
  }

  int Serving() const {
    int n = 0;
    for (const auto& [pid, w] : s.workers()) n += w.state == WorkerState::kReady ? 1 : 0;
    return n;
  }
  // Live workers of a generation in a state, by pid.
  std::vector<Pid> Of(int generation, WorkerState state) const {
    std::vector<Pid> out;
    for (const auto& [pid, w] : s.workers()) {
      if (w.generation == generation && w.state == state) out.push_back(pid);
    }
    return out;
  }
  std::vector<Pid> Booting() const {
    std::vector<Pid> out;
    for (const auto& [pid, w] : s.workers()) {
      if (w.state == WorkerState::kBooting) out.push_back(pid);
    }
    return out;
  }
  int AttachedBooting() const {
    int n = 0;
    for (const auto& [pid, w] : s.workers()) {
      n += w.slot >= 0 && w.state == WorkerState::kBooting ? 1 : 0;
    }
    return n;
  }
  int SignalsTo(Pid pid, Signal signal) const {
    int n = 0;
    for (const auto& k : fx.kills) n += k.pid == pid && k.signal == signal ? 1 : 0;
    return n;
  }
  bool Drained(Pid pid) const { return SignalsTo(pid, s.config().drain_signal) > 0; }
  bool Killed(Pid pid) const { return SignalsTo(pid, Signal::kKill) > 0; }
  const SpawnRequest& LastSpawn() const { return fx.spawns.back(); }
  Pid LastPid() const { return fx.next_pid - 1; }
  std::string LastNote() const { return fx.notes.empty() ? "" : fx.notes.back().second; }

 private:
  bool upgrade_started_ = false;
  int replaced_slot_ = -1;

  void Violation(const std::string& what, const std::string& call) {
    const std::string text = call + " at " + std::to_string(now) + "s: " + what;
    violations.push_back(text);
    if (report) FAIL_CHECK(text);
  }

  // What a call may do, which some checks allow for.
  struct CallKind {
    bool ready_exit = false;  // a ready worker exits on its own: serving may drop
    bool resize = false;      // SetTarget: the removed slots' workers drain, ready or not
    bool upgrade = false;     // Upgrade: starts or supersedes an upgrade, draining as it likes
    bool hard_recycle = false;  // Recycle past the hard memory limit: drains at once
  };

  // Runs f at time t (seconds), then checks everything. `what` names the call in violations.
  template <class F>
  void Call(const std::string& what, double t, CallKind call, F&& f) {
    if (t < now) Violation("the test moved the clock backwards", what);
    now = t;
    const std::map<Pid, Worker> before = s.workers();
    const int serving_before = Serving();
    const bool upgrading_before = s.upgrade().has_value();
    const bool stopping_before = s.Stopping();
    const size_t spawns_before = fx.spawns.size();
    const size_t kills_before = fx.kills.size();
    const size_t notes_before = fx.notes.size();
    const std::vector<Slot> slots_before = s.slots();
    const std::optional<UpgradeProgress> upgrade_before = s.upgrade();
    upgrade_started_ = false;

    f();

    const bool stopped = s.Stopping() || s.Finished();
    const bool upgrading = s.upgrade().has_value();
    const bool active = upgrading_before || upgrade_started_;

    if (stopping_before && fx.spawns.size() != spawns_before) {
      Violation("spawned while stopping", what);
    }

    // The serving invariant. A shrink drains the workers of the removed slots, ready or not
    // (SetTarget in supervisor.cc), so unless strict_shrink it is only held to the ready
    // workers it did not remove (see "shrinking keeps ready workers rather than booting ones" in
    // supervisor_upgrade_resize_test.cc).
    int removed_ready = 0;
    if (call.resize && !strict_shrink) {
      for (const auto& [pid, w] : before) {
        removed_ready += w.slot >= s.target() && w.state == WorkerState::kReady ? 1 : 0;
      }
    }
    if (!stopped &&
        !ServingHolds(serving_before - removed_ready, Serving(), s.target(),
                      call.ready_exit || call.hard_recycle)) {
      Violation("serving dropped from " + std::to_string(serving_before) + " to " +
                    std::to_string(Serving()) + " with N=" + std::to_string(s.target()),
                what);
    }

    // Notes: one final note when an upgrade that was on ends, and it is the call's last note;
    // none otherwise; nothing streamed when no upgrade was on.
    int finals = 0;
    for (size_t i = notes_before; i < fx.notes.size(); ++i) {
      if (fx.notes[i].first != UpgradeNoteKind::kProgress) ++finals;
    }
    const bool ended = active && !upgrading;
    if (finals != (ended ? 1 : 0)) {
      Violation(std::to_string(finals) + " final notes (upgrade " +
                    (ended ? "ended" : "did not end") + ")",
                what);
    }
    if (!active && fx.notes.size() != notes_before) Violation("notes without an upgrade", what);
    if (finals == 1) {
      const auto& [kind, text] = fx.notes.back();
      const auto& last = s.last_upgrade();
      if (kind == UpgradeNoteKind::kProgress) Violation("the final note is not last", what);
      if (!last) {
        Violation("no last_upgrade after a final note", what);
      } else if (kind == UpgradeNoteKind::kDone) {
        if (text != "Upgrade done") Violation("done note reads " + text, what);
        if (!last->ok || last->generation != s.generation()) {
          Violation("done but last_upgrade/generation disagree", what);
        }
      } else {
        if (last->ok || last->reason.empty()) Violation("failed without a reason", what);
        if (last->generation == s.generation()) {
          Violation("rolled back but generation() is still the failed one", what);
        }
      }
    }
    if (upgrading && s.generation() != s.upgrade()->to_generation) {
      Violation("generation() is not the upgrade's", what);
    }

    if (stopped) return;

    // Slots hold live, non-draining workers that know their slot, of the new generation during
    // an upgrade.
    for (size_t i = 0; i < s.slots().size(); ++i) {
      const auto& slot = s.slots()[i];
      if (!slot.pid) continue;
      auto it = s.workers().find(*slot.pid);
      if (it == s.workers().end()) {
        Violation("slot " + std::to_string(i) + " holds a dead pid", what);
      } else if (it->second.slot != static_cast<int>(i) ||
                 it->second.state == WorkerState::kDraining) {
        Violation("slot " + std::to_string(i) + " holds a detached or draining worker", what);
      } else if (upgrading && it->second.generation != s.generation()) {
        Violation("slot " + std::to_string(i) + " holds an old worker during an upgrade", what);
      }
    }
    for (const auto& [pid, w] : s.workers()) {
      if (w.slot >= static_cast<int>(s.slots().size()) ||
          (w.slot >= 0 && s.slots()[static_cast<size_t>(w.slot)].pid != pid)) {
        Violation("worker " + std::to_string(pid) + " claims a slot that is not its", what);
      }
    }

    // Ready workers are drained only as others become ready: one for one, outside upgrades and
    // within a smooth one (resizes and the calls that start, supersede or end an upgrade
    // aside), and not at all while a fleet upgrade is on.
    int drained_ready = 0;
    for (size_t i = kills_before; i < fx.kills.size(); ++i) {
      auto it = before.find(fx.kills[i].pid);
      if (fx.kills[i].signal == s.config().drain_signal && it != before.end() &&
          it->second.state == WorkerState::kReady) {
        ++drained_ready;
      }
    }
    int newly_ready = 0;
    for (const auto& [pid, w] : s.workers()) {
      auto it = before.find(pid);
      if (w.ready_at && (it == before.end() || !it->second.ready_at)) ++newly_ready;
    }
    const bool same_smooth = upgrade_before && s.upgrade() && upgrade_before->strategy == kSmooth &&
                             s.upgrade()->strategy == kSmooth &&
                             upgrade_before->to_generation == s.upgrade()->to_generation;
    const bool steady = (!upgrade_before && !s.upgrade()) || same_smooth;
    if (!call.resize && !call.upgrade && !call.hard_recycle && steady &&
        drained_ready > newly_ready) {
      Violation(std::to_string(drained_ready) + " ready workers drained for " +
                    std::to_string(newly_ready) + " newly ready",
                what);
    }
    if (!call.resize && upgrading && s.upgrade()->strategy == kFleet && drained_ready > 0) {
      Violation("a fleet upgrade drained a ready worker before it was done", what);
    }

    // Budgets, for the calls that started new-generation workers in slots that were not
    // waiting for a respawn. A slot waiting for a respawn holds an unready worker to be.
    int fresh = 0;
    for (size_t i = spawns_before; i < fx.spawns.size(); ++i) {
      const auto slot = static_cast<size_t>(fx.spawns[i].slot);
      if (fx.spawns[i].slot == replaced_slot_) {
        replaced_slot_ = -1;  // only the first spawn there is the replacement
        continue;
      }
      fresh +=
          call.upgrade || slot >= slots_before.size() || !slots_before[slot].respawn_at ? 1 : 0;
    }
    replaced_slot_ = -1;
    if (upgrading && fresh > 0) {
      const UpgradePolicy& p = s.config().upgrade;
      int attached_ready = 0;
      int pending = 0;
      for (const auto& [pid, w] : s.workers()) {
        attached_ready += w.slot >= 0 && w.state == WorkerState::kReady ? 1 : 0;
      }
      for (const auto& slot : s.slots()) pending += !slot.pid && slot.respawn_at ? 1 : 0;
      const int unready = AttachedBooting() + pending;
      if (p.canary && attached_ready == 0 && unready > 1) {
        Violation(std::to_string(unready) + " new workers before the canary is ready", what);
      }
      if (s.upgrade()->strategy == kSmooth) {
        if (unready > p.max_unacked) {
          Violation(std::to_string(unready) + " unready new workers, max_unacked " +
                        std::to_string(p.max_unacked),
                    what);
        }
        const int cap = s.target() + std::max(1, p.max_additional.value_or(0));
        const int alive = static_cast<int>(s.workers().size()) + pending;
        if (p.max_additional && alive > cap) {
          Violation(std::to_string(alive) + " workers alive or due, cap " + std::to_string(cap),
                    what);
        }
      }
    }
  }
};

}  // namespace einhorn::core::upgrade_rig
