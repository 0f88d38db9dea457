// Supervisor::Snapshot and Restore: a supervisor rebuilt from its snapshot, carried through
// EncodeState/DecodeState as across a master re-exec, makes exactly the decisions the original
// would have made. Two supervisors get the same scripted events; one is rebuilt from its own
// snapshot every few events; their effects and snapshots must agree after every event.
#include <doctest/doctest.h>

#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/state.h"
#include "core/supervisor.h"
#include "fake_effects.h"

namespace einhorn::core {
namespace {

using test::FakeEffects;

Time At(double seconds) { return Seconds(seconds); }

// Everything the supervisor asked of its effects, as text.
std::vector<std::string> Record(const FakeEffects& fx) {
  std::vector<std::string> out;
  for (const SpawnRequest& r : fx.spawns) {
    out.push_back("spawn slot " + std::to_string(r.slot) + " index " + std::to_string(r.index) +
                  " generation " + std::to_string(r.generation));
  }
  for (const auto& k : fx.kills) {
    out.push_back("kill " + std::to_string(k.pid) + " " + SignalName(k.signal));
  }
  for (const auto& [level, text] : fx.logs) {
    out.push_back("log " + std::to_string(static_cast<int>(level)) + " " + text);
  }
  for (const auto& [kind, text] : fx.notes) {
    out.push_back("note " + std::to_string(static_cast<int>(kind)) + " " + text);
  }
  return out;
}

// The state a master would carry: the snapshot inside a full MasterState, through the codec.
SupervisorSnapshot ThroughState(const SupervisorSnapshot& snapshot) {
  MasterState m;
  m.options.command = {"worker"};
  m.supervisor = snapshot;
  const std::string text = EncodeState(m);
  const Result<MasterState> back = DecodeState(text);
  REQUIRE_MESSAGE(back.ok(), back.error());
  REQUIRE(back.value().supervisor == snapshot);
  return back.value().supervisor;
}

class Twins {
 public:
  explicit Twins(const SupervisorConfig& config)
      : original_(std::make_unique<Supervisor>(config, fx_original_)),
        restored_(std::make_unique<Supervisor>(config, fx_restored_)) {}

  Supervisor& original() { return *original_; }

  // The restored twin is rebuilt from its own snapshot, as a re-exec would.
  void Reexec() {
    const SupervisorSnapshot snapshot = restored_->Snapshot();
    REQUIRE(CheckSnapshot(snapshot).ok());
    restored_ =
        std::make_unique<Supervisor>(Supervisor::Restore(ThroughState(snapshot), fx_restored_));
    CHECK(restored_->Snapshot() == snapshot);
    ++reexecs_;
  }

  // Applies `event` to both and checks that they agree on everything.
  template <typename F>
  void Both(const std::string& what, F event) {
    INFO("event ", step_, ": ", what);
    const auto a = event(*original_);
    const auto b = event(*restored_);
    CHECK(a == b);
    const std::vector<std::string> effects = Record(fx_original_);
    CHECK(effects == Record(fx_restored_));
    effects_ += effects.size();
    for (FakeEffects* fx : {&fx_original_, &fx_restored_}) {
      fx->spawns.clear();
      fx->kills.clear();
      fx->logs.clear();
      fx->notes.clear();
    }
    CHECK(original_->Snapshot() == restored_->Snapshot());
    CHECK(original_->NextDeadline() == restored_->NextDeadline());
    CHECK(original_->Finished() == restored_->Finished());
    CHECK(original_->ExitCode() == restored_->ExitCode());
    ++step_;
  }

  void FailSpawns(bool fail) {
    fx_original_.fail_with = fail ? "exec failed: ENOENT" : "";
    fx_restored_.fail_with = fx_original_.fail_with;
  }
  int reexecs() const { return reexecs_; }
  size_t effects() const { return effects_; }

 private:
  FakeEffects fx_original_;
  FakeEffects fx_restored_;
  std::unique_ptr<Supervisor> original_;
  std::unique_ptr<Supervisor> restored_;
  int step_ = 0;
  int reexecs_ = 0;
  size_t effects_ = 0;
};

// A random but reproducible life: acks, pings, deaths of every kind, resizes, upgrades of
// both kinds, spawn failures, time passing to each deadline, and finally a stop.
void Drive(const SupervisorConfig& config, unsigned seed, int steps) {
  Twins twins(config);
  std::mt19937 pick(seed);
  Time now = At(0);
  auto chance = [&pick](int percent) { return static_cast<int>(pick() % 100) < percent; };
  auto some_worker = [&]() -> Pid {
    const auto& workers = twins.original().workers();
    if (workers.empty() || chance(5)) return 99999;  // not a worker
    auto it = workers.begin();
    std::advance(it, static_cast<long>(pick() % workers.size()));
    return it->first;
  };

  twins.Both("start", [&](Supervisor& s) {
    s.Start(now);
    return 0;
  });
  for (int i = 0; i < steps; ++i) {
    if (chance(12)) twins.Reexec();
    if (chance(3)) twins.FailSpawns(chance(50));
    const int kind = static_cast<int>(pick() % 100);
    if (kind < 30) {
      const std::optional<Time> next = twins.original().NextDeadline();
      now = next && *next > now ? *next : now + At(0.5);
      twins.Both("tick at the deadline", [&](Supervisor& s) {
        s.Tick(now);
        return 0;
      });
    } else if (kind < 40) {
      now += Seconds(static_cast<double>(pick() % 3000) / 1000);
      twins.Both("tick", [&](Supervisor& s) {
        s.Tick(now);
        return 0;
      });
    } else if (kind < 60) {
      const Pid pid = some_worker();
      const ExitStatus status = chance(40)   ? ExitStatus{false, 0}
                                : chance(50) ? ExitStatus{false, 1}
                                             : ExitStatus{true, 9};
      now += At(0.01);
      twins.Both("exit of " + std::to_string(pid), [&](Supervisor& s) {
        s.ChildExited(pid, status, now);
        return 0;
      });
    } else if (kind < 75) {
      const Pid pid = some_worker();
      twins.Both("ack of " + std::to_string(pid),
                 [&](Supervisor& s) { return static_cast<int>(s.Ack(pid, now)); });
    } else if (kind < 80) {
      const Pid pid = some_worker();
      twins.Both("ping of " + std::to_string(pid), [&](Supervisor& s) { return s.Ping(pid, now); });
    } else if (kind < 88) {
      const int n = 1 + static_cast<int>(pick() % 5);
      twins.Both("set target " + std::to_string(n), [&](Supervisor& s) {
        s.SetTarget(n, now);
        return 0;
      });
    } else if (kind < 96) {
      const UpgradeStrategy strategy =
          chance(50) ? UpgradeStrategy::kSmooth : UpgradeStrategy::kFleet;
      twins.Both("upgrade", [&](Supervisor& s) {
        const UpgradeStart start = s.Upgrade(strategy, now);
        return std::to_string(start.started) + start.message;
      });
    } else {
      twins.Both("signal all", [&](Supervisor& s) { return s.SignalAll(Signal::kUsr1); });
    }
  }
  twins.Reexec();
  const StopKind stop = chance(40)   ? StopKind::kDrain
                        : chance(70) ? StopKind::kTerminate
                                     : StopKind::kQuit;
  twins.Both("stop", [&](Supervisor& s) {
    s.Stop(stop, now);
    return 0;
  });
  for (int i = 0; i < 200 && !twins.original().Finished(); ++i) {
    if (chance(20)) twins.Reexec();
    if (chance(50)) {
      const std::optional<Time> next = twins.original().NextDeadline();
      now = next && *next > now ? *next : now + At(1);
      twins.Both("tick while stopping", [&](Supervisor& s) {
        s.Tick(now);
        return 0;
      });
    } else {
      const Pid pid = some_worker();
      twins.Both("exit while stopping", [&](Supervisor& s) {
        s.ChildExited(pid, ExitStatus{true, 15}, now);
        return 0;
      });
    }
  }
  CHECK(twins.original().Finished());
  CHECK(twins.reexecs() > steps / 20);
  CHECK(twins.effects() > static_cast<size_t>(steps));
}

SupervisorConfig TimerConfig() {
  SupervisorConfig c;
  c.target = 3;
  c.ack_mode.timer_seconds = 1;
  c.backoff_base = Seconds(1);
  c.backoff_cap = Seconds(8);
  c.signal_timeout = Seconds(2);
  c.jitter = 0.2;  // the generator's state matters
  c.jitter_seed = 7;
  c.upgrade.max_unacked = 2;
  c.upgrade.max_additional = 1;
  c.upgrade.ack_timeout = Seconds(10);
  c.upgrade.upgrade_timeout = Seconds(30);
  c.upgrade.max_failures = 3;
  return c;
}

TEST_CASE("a restored supervisor decides as the original with timer acks") {
  for (unsigned seed = 1; seed <= 6; ++seed) {
    INFO("seed ", seed);
    Drive(TimerConfig(), seed, 300);
  }
}

TEST_CASE("a restored supervisor decides as the original with manual acks") {
  SupervisorConfig c = TimerConfig();
  c.ack_mode.kind = AckMode::Kind::kManual;
  c.upgrade.canary = true;
  c.upgrade.max_additional.reset();
  c.upgrade.upgrade_timeout.reset();
  c.drain_signal = Signal::kTerm;
  c.kill_children_on_exit = true;
  for (unsigned seed = 11; seed <= 16; ++seed) {
    INFO("seed ", seed);
    Drive(c, seed, 300);
  }
}

TEST_CASE("restore carries the jitter generator mid-stream") {
  SupervisorConfig c = TimerConfig();
  c.target = 1;
  FakeEffects fx;
  Supervisor s(c, fx);
  s.Start(At(0));
  s.ChildExited(100, ExitStatus{false, 1}, At(0.1));  // draws from the generator
  const SupervisorSnapshot snapshot = s.Snapshot();
  CHECK(snapshot.rng != std::mt19937_64(c.jitter_seed));
  FakeEffects fx2;
  fx2.next_pid = fx.next_pid;
  Supervisor restored = Supervisor::Restore(snapshot, fx2);
  // The same next delay: the restored one does not start over from the seed.
  s.Tick(*s.NextDeadline());
  restored.Tick(*restored.NextDeadline());
  s.ChildExited(101, ExitStatus{false, 1}, At(5));
  restored.ChildExited(101, ExitStatus{false, 1}, At(5));
  CHECK(s.NextDeadline() == restored.NextDeadline());
  CHECK(fx.logs.back() == fx2.logs.back());
}

TEST_CASE("restore calls no effect") {
  FakeEffects fx;
  Supervisor s(TimerConfig(), fx);
  s.Start(At(0));
  s.Tick(At(1));
  s.Upgrade(UpgradeStrategy::kSmooth, At(2));
  FakeEffects fx2;
  const Supervisor restored = Supervisor::Restore(s.Snapshot(), fx2);
  CHECK(Record(fx2).empty());
  CHECK(restored.upgrade().has_value());
  CHECK(restored.workers().size() == s.workers().size());
  CHECK(restored.generation() == 2);
  CHECK(restored.target() == 3);
}

TEST_CASE("every snapshot a started supervisor takes passes its check") {
  FakeEffects fx;
  Supervisor s(TimerConfig(), fx);
  // Before Start there are no slots yet: nothing a master would carry across an exec.
  CHECK(CheckSnapshot(s.Snapshot()).message() == "slots: 0 slots for a target of 3");
  s.Start(At(0));
  CHECK(CheckSnapshot(s.Snapshot()).ok());
  s.SetTarget(5, At(0.5));
  s.Tick(At(1));
  s.Upgrade(UpgradeStrategy::kFleet, At(2));
  CHECK(CheckSnapshot(s.Snapshot()).ok());
  s.Stop(StopKind::kQuit, At(3));
  CHECK(CheckSnapshot(s.Snapshot()).ok());
}

}  // namespace
}  // namespace einhorn::core
