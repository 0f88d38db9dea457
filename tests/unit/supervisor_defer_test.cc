// Deferred spawns (SpawnOutcome::Deferred): the shell says "not now, ask again soon" to cut a
// big batch of forks into slices between answers (issue 20). A deferred slot stays pending and
// due at once, is no failure, logs nothing, and still counts against the upgrade's budgets.
#include <doctest/doctest.h>

#include "core/supervisor.h"
#include "fake_effects.h"
#include "upgrade_rig.h"

namespace einhorn::core {
namespace {

using test::FakeEffects;
using upgrade_rig::Rig;

Time At(double seconds) { return Seconds(seconds); }

SupervisorConfig Config(int n, bool manual = false) {
  SupervisorConfig c;
  c.target = n;
  if (manual) c.ack_mode.kind = AckMode::Kind::kManual;
  c.jitter = 0;
  return c;
}

int Pending(const Supervisor& s) {
  int n = 0;
  for (const Slot& slot : s.slots()) n += !slot.pid && slot.respawn_at ? 1 : 0;
  return n;
}

TEST_CASE("a deferred start leaves every slot pending and due now, with no failure and no line") {
  FakeEffects fx;
  fx.budget = 0;
  Supervisor s(Config(5), fx);
  s.Start(At(0));
  CHECK(fx.spawns.empty());
  // Asked once: after a deferral the rest of the batch waits without asking.
  CHECK(fx.deferrals == 1);
  CHECK(Pending(s) == 5);
  for (const Slot& slot : s.slots()) {
    CHECK(slot.respawn_at == At(0));
    CHECK(slot.consecutive_failures == 0);
    CHECK(slot.starts == 0);
  }
  CHECK(s.NextDeadline() == At(0));
  CHECK(fx.events.empty());
  CHECK(fx.logs.size() == 1);  // "launching 5 workers" only
  CHECK_FALSE(fx.Logged("could not start"));
}

TEST_CASE("each tick spawns what the budget allows and leaves the rest due now") {
  FakeEffects fx;
  fx.budget = 2;
  Supervisor s(Config(5), fx);
  s.Start(At(0));
  CHECK(fx.spawns.size() == 2);
  CHECK(Pending(s) == 3);
  fx.budget = 2;
  s.Tick(At(0.001));
  CHECK(fx.spawns.size() == 4);
  CHECK(Pending(s) == 1);
  CHECK(s.NextDeadline() <= At(0.001));
  const int deferrals = fx.deferrals;
  fx.budget = 0;
  s.Tick(At(0.002));
  CHECK(fx.deferrals == deferrals + 1);  // one ask per tick, not one per pending slot
  fx.budget = -1;
  s.Tick(At(0.003));
  REQUIRE(fx.spawns.size() == 5);
  CHECK(Pending(s) == 0);
  // Slots in order, indexes the smallest free ones.
  for (int i = 0; i < 5; ++i) {
    CHECK(fx.spawns[static_cast<size_t>(i)].slot == i);
    CHECK(fx.spawns[static_cast<size_t>(i)].index == i);
  }
  CHECK(fx.EventsOf(EventKind::kSpawn).size() == 5);
  CHECK(fx.EventsOf(EventKind::kSpawnFailed).empty());
  CHECK(fx.EventsOf(EventKind::kRespawnDelay).empty());
  // Nothing left: the next deadline is no longer now (it is the timer acks').
  CHECK(s.NextDeadline() > At(0.003));
}

TEST_CASE("a deferred respawn keeps the slot's failure streak as it was") {
  FakeEffects fx;
  Supervisor s(Config(1), fx);
  s.Start(At(0));
  s.ChildExited(100, ExitStatus{false, 1}, At(0.1));  // a failure: respawn after the backoff
  REQUIRE(s.slots()[0].consecutive_failures == 1);
  const Time due = *s.slots()[0].respawn_at;
  const size_t logs = fx.logs.size();
  fx.budget = 0;
  s.Tick(due);
  CHECK(s.slots()[0].consecutive_failures == 1);
  CHECK(s.slots()[0].respawn_at == due);
  CHECK(fx.logs.size() == logs);
  CHECK(s.NextDeadline() == due);
  fx.budget = -1;
  s.Tick(due + std::chrono::milliseconds(1));
  CHECK(fx.spawns.size() == 2);
  CHECK(s.slots()[0].consecutive_failures == 1);  // reset only once the worker stays up
}

TEST_CASE("a replacement deferred in the turn of a child's exit is spawned by the next tick") {
  FakeEffects fx;
  Supervisor s(Config(2), fx);
  s.Start(At(0));
  s.Tick(At(2));  // ready (timer ack of 1 s)
  fx.budget = 0;
  s.ChildExited(100, ExitStatus{false, 0}, At(5));  // stable: replaced at once
  CHECK(fx.spawns.size() == 2);
  CHECK(s.slots()[0].respawn_at == At(5));
  CHECK(s.slots()[0].consecutive_failures == 0);
  CHECK(s.NextDeadline() == At(5));
  fx.budget = -1;
  s.Tick(At(5));
  REQUIRE(fx.spawns.size() == 3);
  CHECK(fx.spawns[2].slot == 0);
  CHECK(fx.spawns[2].index == 0);
}

TEST_CASE("shrinking gives up deferred slots first, and nothing is spawned for them later") {
  FakeEffects fx;
  Supervisor s(Config(2), fx);
  s.Start(At(0));
  s.SetTarget(6, At(1));
  fx.budget = 1;
  s.Tick(At(1));
  CHECK(fx.spawns.size() == 3);
  CHECK(Pending(s) == 3);
  s.SetTarget(3, At(1.5));
  CHECK(Pending(s) == 0);
  CHECK(fx.kills.empty());  // the three live workers stay
  fx.budget = -1;
  s.Tick(At(2));
  CHECK(fx.spawns.size() == 3);
  CHECK(s.workers().size() == 3);
}

TEST_CASE("a stop with deferred slots pending spawns nothing and finishes when the workers go") {
  FakeEffects fx;
  fx.budget = 1;
  Supervisor s(Config(4), fx);
  s.Start(At(0));
  REQUIRE(Pending(s) == 3);
  s.Stop(StopKind::kTerminate, At(0.5));
  fx.budget = -1;
  CHECK_FALSE(s.NextDeadline() == At(0));  // the pending slots no longer count
  s.Tick(At(1));
  CHECK(fx.spawns.size() == 1);
  s.ChildExited(100, ExitStatus{true, 15}, At(1.1));
  CHECK(s.Finished());
  CHECK(s.ExitCode() == 0);
}

TEST_CASE("a snapshot with deferred slots pending restores and spawns them on the next tick") {
  FakeEffects fx;
  fx.budget = 2;
  Supervisor s(Config(4), fx);
  s.Start(At(0));
  const SupervisorSnapshot snapshot = s.Snapshot();
  REQUIRE(CheckSnapshot(snapshot).ok());
  FakeEffects fx2;
  fx2.next_pid = fx.next_pid;
  Supervisor restored = Supervisor::Restore(snapshot, fx2);
  CHECK(fx2.spawns.empty());
  CHECK(Pending(restored) == 2);
  CHECK(restored.NextDeadline() == At(0));
  restored.Tick(At(0.1));
  REQUIRE(fx2.spawns.size() == 2);
  CHECK(fx2.spawns[0].slot == 2);
  CHECK(fx2.spawns[1].slot == 3);
  CHECK(fx2.spawns[0].index == 2);
  CHECK(restored.workers().size() == 4);
}

TEST_CASE("an upgrade answers without spawning when deferred, and its budgets count the pending") {
  auto c = upgrade_rig::Cfg(4, std::nullopt);  // manual acks
  c.upgrade.max_unacked = 2;
  c.upgrade.canary = true;
  Rig r(c);
  r.StartReady();
  const size_t before = r.fx.spawns.size();
  r.fx.budget = 0;
  const UpgradeStart start = r.Upgrade(upgrade_rig::kSmooth, 2);
  CHECK(start.started);
  CHECK(start.message == "Upgrading smoothly, as commanded");
  CHECK(r.fx.spawns.size() == before);
  CHECK(Pending(r.s) == 1);  // the canary, pending
  CHECK(r.s.NextDeadline() == At(2));
  // The canary goes first, alone, even with budget to spare.
  r.fx.budget = -1;
  r.Tick(2.001);
  CHECK(r.fx.spawns.size() == before + 1);
  CHECK(Pending(r.s) == 0);
  r.Tick(2.002);
  CHECK(r.fx.spawns.size() == before + 1);
  // Its ack lets two more start; in the ack's turn both are deferred, one asked for.
  r.fx.budget = 0;
  const int deferrals = r.fx.deferrals;
  CHECK(r.Ack(r.LastPid(), 3) == AckResult::kAcked);
  CHECK(r.fx.deferrals == deferrals + 1);
  CHECK(Pending(r.s) == 1);
  // The next tick: the pending one, then the step's second, never past max_unacked.
  r.fx.budget = -1;
  r.Tick(3.001);
  CHECK(r.fx.spawns.size() == before + 3);
  CHECK(r.AttachedBooting() == 2);
  CHECK(Pending(r.s) == 0);
  for (const Pid pid : r.Booting()) r.Ack(pid, 4);
  r.Tick(4.001);
  for (const Pid pid : r.Booting()) r.Ack(pid, 5);
  r.Tick(5.001);
  CHECK_FALSE(r.s.upgrade().has_value());
  REQUIRE(r.s.last_upgrade().has_value());
  CHECK(r.s.last_upgrade()->ok);
  CHECK(r.fx.EventsOf(EventKind::kSpawnFailed).empty());
}

TEST_CASE("pending deferred slots hold max_unacked at one at every turn of a long upgrade") {
  auto c = upgrade_rig::Cfg(6, std::nullopt);
  c.upgrade.max_unacked = 1;
  c.upgrade.canary = false;
  Rig r(c);
  r.StartReady();
  r.fx.budget = 0;
  r.Upgrade(upgrade_rig::kSmooth, 2);
  double t = 2;
  for (int round = 0; round < 20 && r.s.upgrade(); ++round) {
    t += 0.01;
    r.fx.budget = round % 3 == 0 ? 0 : 1;  // some turns defer everything
    r.Tick(t);
    CHECK(r.AttachedBooting() + Pending(r.s) <= 1);
    for (const Pid pid : r.Booting()) {
      if (r.s.workers().at(pid).generation == r.s.generation()) r.Ack(pid, t);
    }
    CHECK(r.AttachedBooting() + Pending(r.s) <= 1);
  }
  CHECK_FALSE(r.s.upgrade().has_value());
  REQUIRE(r.s.last_upgrade().has_value());
  CHECK(r.s.last_upgrade()->ok);
  CHECK(r.Serving() == 6);
}

TEST_CASE("a rollback's replacements are deferred like any spawn") {
  auto c = upgrade_rig::Cfg(2, std::nullopt);
  c.upgrade.max_failures = 1;
  c.upgrade.canary = true;
  Rig r(c);
  r.StartReady();
  r.Upgrade(upgrade_rig::kSmooth, 2);
  const Pid canary = r.LastPid();
  r.Exit(100, 2.5, upgrade_rig::kExit0);  // an old worker leaves: detached, not replaced
  r.fx.budget = 0;
  r.Exit(canary, 3);  // the canary fails: rolled back, slot 1 needs a replacement
  REQUIRE(r.s.last_upgrade().has_value());
  CHECK_FALSE(r.s.last_upgrade()->ok);
  CHECK(Pending(r.s) == 1);
  const size_t spawns = r.fx.spawns.size();
  r.fx.budget = -1;
  r.Tick(3.001);
  CHECK(r.fx.spawns.size() == spawns + 1);
  CHECK(r.fx.spawns.back().generation == 1);
  CHECK(Pending(r.s) == 0);
}

TEST_CASE("1000 slots deferred in one turn cost one ask, not one per slot") {
  FakeEffects fx;
  Supervisor s(Config(10), fx);
  s.Start(At(0));
  s.SetTarget(1000, At(1));  // due on the next tick: the command's turn asks for nothing
  CHECK(fx.deferrals == 0);
  CHECK(fx.spawns.size() == 10);
  fx.budget = 5;
  s.Tick(At(1.001));
  CHECK(fx.spawns.size() == 15);
  CHECK(fx.deferrals == 1);
  CHECK(Pending(s) == 985);
  fx.budget = 0;
  s.Upgrade(UpgradeStrategy::kSmooth, At(2));
  CHECK(fx.deferrals == 2);
}

}  // namespace
}  // namespace einhorn::core
