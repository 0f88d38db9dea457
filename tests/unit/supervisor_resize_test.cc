// Resizing, manual acks, child indexes, `signal` and `die`.
#include <doctest/doctest.h>

#include "core/supervisor.h"
#include "fake_effects.h"

namespace einhorn::core {
namespace {

using test::FakeEffects;

Time At(double seconds) { return Seconds(seconds); }

SupervisorConfig Config(int n, bool manual = false) {
  SupervisorConfig c;
  c.target = n;
  if (manual) c.ack_mode.kind = AckMode::Kind::kManual;
  c.jitter = 0;
  return c;
}

const ExitStatus kExit0{false, 0};

TEST_CASE("child indexes are the smallest free ones and are reused by replacements") {
  FakeEffects fx;
  Supervisor s(Config(3), fx);
  s.Start(At(0));
  CHECK(fx.spawns[0].index == 0);
  CHECK(fx.spawns[1].index == 1);
  CHECK(fx.spawns[2].index == 2);
  s.Tick(At(2));
  s.ChildExited(101, kExit0, At(5));
  REQUIRE(fx.spawns.size() == 4);
  CHECK(fx.spawns[3].slot == 1);
  CHECK(fx.spawns[3].index == 1);
  CHECK(s.workers().at(103).index == 1);
}

TEST_CASE("growing spawns the new slots on the next tick, due at once") {
  FakeEffects fx;
  Supervisor s(Config(2), fx);
  s.Start(At(0));
  s.SetTarget(4, At(1));
  CHECK(s.target() == 4);
  // The caller (a control client) is answered before fork and exec.
  CHECK(fx.spawns.size() == 2);
  CHECK(s.NextDeadline() == At(1));
  s.Tick(At(1));
  REQUIRE(fx.spawns.size() == 4);
  CHECK(fx.spawns[2].slot == 2);
  CHECK(fx.spawns[3].slot == 3);
  CHECK(s.slots().size() == 4);
}

TEST_CASE("shrinking drains the highest slots and does not replace them") {
  FakeEffects fx;
  auto c = Config(4);
  c.signal_timeout = Seconds(2);
  Supervisor s(c, fx);
  s.Start(At(0));
  s.SetTarget(2, At(1));
  CHECK(s.slots().size() == 2);
  REQUIRE(fx.kills.size() == 2);
  CHECK(fx.kills[0].pid == 103);  // highest slot first
  CHECK(fx.kills[1].pid == 102);
  CHECK(fx.kills[0].signal == Signal::kUsr2);
  CHECK(s.workers().at(102).state == WorkerState::kDraining);
  CHECK(s.workers().at(102).slot == -1);
  // They are escalated like any drained worker, and not replaced when they exit.
  s.Tick(At(3));
  CHECK(fx.kills.size() == 4);
  CHECK(fx.kills[2].signal == Signal::kKill);
  s.ChildExited(102, kExit0, At(3.1));
  s.ChildExited(103, kExit0, At(3.1));
  CHECK(fx.spawns.size() == 4);
  CHECK(s.workers().size() == 2);
  CHECK_FALSE(s.Finished());
}

TEST_CASE("shrinking cancels pending respawns of removed slots, and growing again uses free indexes") {
  FakeEffects fx;
  Supervisor s(Config(3, true), fx);  // manual acks: no ack deadline to confuse NextDeadline
  s.Start(At(0));
  s.ChildExited(102, ExitStatus{false, 1}, At(0.1));  // slot 2 waits for a respawn
  CHECK(s.NextDeadline() == At(1.1));
  s.SetTarget(1, At(0.2));                            // slot 1 drains, slot 2 is dropped
  CHECK(fx.kills.size() == 1);
  CHECK_FALSE(s.NextDeadline().has_value());
  s.Tick(At(100));
  CHECK(fx.spawns.size() == 3);
  s.SetTarget(3, At(101));  // 101 (index 1) is still draining
  s.Tick(At(101));
  REQUIRE(fx.spawns.size() == 5);
  CHECK(fx.spawns[3].index == 2);
  CHECK(fx.spawns[4].index == 3);
}

TEST_CASE("shrinking gives up pending and unready slots before ready ones, and renumbers") {
  FakeEffects fx;
  Supervisor s(Config(4, true), fx);
  s.Start(At(0));                                      // 100..103 in slots 0..3
  REQUIRE(s.Ack(101, At(1)) == AckResult::kAcked);
  REQUIRE(s.Ack(103, At(1)) == AckResult::kAcked);
  s.ChildExited(100, ExitStatus{false, 1}, At(1.5));  // slot 0 waits for a respawn
  s.SetTarget(2, At(2));  // slot 0 (empty) and slot 2 (102, unready) go
  REQUIRE(fx.kills.size() == 1);
  CHECK(fx.kills[0].pid == 102);
  REQUIRE(s.slots().size() == 2);
  CHECK(s.slots()[0].pid == 101);
  CHECK(s.slots()[1].pid == 103);
  CHECK(s.workers().at(101).slot == 0);
  CHECK(s.workers().at(103).slot == 1);
  CHECK_FALSE(s.NextDeadline().has_value());  // the pending respawn went with its slot
  s.SetTarget(1, At(3));  // both ready: the higher slot goes
  REQUIRE(fx.kills.size() == 2);
  CHECK(fx.kills[1].pid == 103);
}

TEST_CASE("resizing is refused while stopping") {
  FakeEffects fx;
  Supervisor s(Config(1), fx);
  s.Start(At(0));
  s.Stop(StopKind::kDrain, At(1));
  s.SetTarget(5, At(2));
  CHECK(fx.spawns.size() == 1);
}

TEST_CASE("manual acks") {
  FakeEffects fx;
  Supervisor s(Config(2, true), fx);
  s.Start(At(0));
  CHECK_FALSE(s.NextDeadline().has_value());  // no timer ack, no ack deadline
  s.Tick(At(100));
  CHECK(s.workers().at(100).state == WorkerState::kBooting);
  CHECK(s.Ack(100, At(3)) == AckResult::kAcked);
  CHECK(s.workers().at(100).state == WorkerState::kReady);
  CHECK(s.workers().at(100).ready_at == At(3));
  CHECK(s.Ack(100, At(4)) == AckResult::kAlreadyAcked);
  CHECK(s.Ack(999, At(4)) == AckResult::kUnknownPid);
  s.Stop(StopKind::kDrain, At(5));
  CHECK(s.Ack(101, At(6)) == AckResult::kDraining);
}

TEST_CASE("a manual-ack worker that dies before its ack is a failure") {
  FakeEffects fx;
  Supervisor s(Config(1, true), fx);
  s.Start(At(0));
  s.ChildExited(100, kExit0, At(50));
  CHECK(s.slots()[0].consecutive_failures == 1);
  s.Tick(At(51));
  REQUIRE(s.slots()[0].pid == 101);
  CHECK(s.Ack(101, At(52)) == AckResult::kAcked);
  s.ChildExited(101, kExit0, At(60));
  CHECK(s.slots()[0].consecutive_failures == 0);
}

TEST_CASE("acks are ignored in timer mode") {
  FakeEffects fx;
  Supervisor s(Config(1), fx);
  s.Start(At(0));
  CHECK(s.Ack(100, At(0.5)) == AckResult::kNotManual);
  CHECK(s.workers().at(100).state == WorkerState::kBooting);
}

TEST_CASE("ping records the time") {
  FakeEffects fx;
  Supervisor s(Config(1), fx);
  s.Start(At(0));
  CHECK(s.Ping(100, At(7)));
  CHECK(s.workers().at(100).pinged_at == At(7));
  CHECK_FALSE(s.Ping(5, At(7)));
}

TEST_CASE("signal goes to every worker without recording it") {
  FakeEffects fx;
  auto c = Config(2);
  c.signal_timeout = Seconds(1);
  Supervisor s(c, fx);
  s.Start(At(0));
  CHECK(s.SignalAll(Signal::kUsr1) == 2);
  CHECK(fx.kills.size() == 2);
  CHECK(fx.kills[1].signal == Signal::kUsr1);
  CHECK_FALSE(s.workers().at(100).signaled_at.has_value());
  CHECK(s.workers().at(100).state == WorkerState::kBooting);
}

TEST_CASE("die stops with the given signal, escalates and finishes with 0") {
  FakeEffects fx;
  auto c = Config(2);
  c.signal_timeout = Seconds(1);
  Supervisor s(c, fx);
  s.Start(At(0));
  s.Die(Signal::kTerm, At(1));
  REQUIRE(fx.kills.size() == 2);
  CHECK(fx.kills[0].signal == Signal::kTerm);
  CHECK(s.Stopping());
  s.Tick(At(2));
  CHECK(fx.kills.size() == 4);
  s.ChildExited(100, kExit0, At(2.1));
  s.ChildExited(101, kExit0, At(2.1));
  CHECK(s.Finished());
  CHECK(s.ExitCode() == 0);
}

}  // namespace
}  // namespace einhorn::core
