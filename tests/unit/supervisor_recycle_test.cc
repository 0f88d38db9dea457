// Recycling (supervisor_recycle.cc) through the upgrade rig, which checks after every call
// that the ready workers never drop below N and that slots stay consistent: the replacement
// first, the drain once it is ready, pacing, the crash-loop rule, hard memory, exits while a
// recycle is pending, the age limit with its jitter, and reloads.
#include <doctest/doctest.h>

#include <optional>
#include <vector>

#include "upgrade_rig.h"

namespace einhorn::core {
namespace {

using namespace upgrade_rig;

constexpr auto kOperator = RecycleCause::kOperator;
constexpr auto kWorkerAsked = RecycleCause::kWorker;
constexpr auto kHard = RecycleCause::kMemoryHard;

TEST_CASE("recycle: names and results") {
  for (size_t i = 0; i < kRecycleCauses; ++i) {
    const auto c = static_cast<RecycleCause>(i);
    CHECK(ParseRecycleCause(RecycleCauseName(c)) == c);
  }
  CHECK(std::string(RecycleCauseName(RecycleCause::kMemoryHard)) == "memory_hard");
  CHECK_FALSE(ParseRecycleCause("bogus").has_value());
  CHECK(RecycleResultText(RecycleResult::kUnknownPid, 7) == "No worker with pid 7");
}

TEST_CASE("recycle: the replacement starts first, the old worker drains once it is ready") {
  Rig r(Cfg(2, std::nullopt));
  r.StartReady();
  CHECK(r.Recycle(100, kWorkerAsked, 10) == RecycleResult::kStarted);
  REQUIRE(r.fx.spawns.size() == 3);
  CHECK(r.LastSpawn().slot == 0);
  CHECK(r.LastSpawn().generation == 1);
  CHECK(r.LastSpawn().index == 2);  // 0 and 1 are held
  CHECK(r.s.workers().at(100).slot == -1);
  CHECK(r.s.workers().at(100).state == WorkerState::kReady);  // still serving
  CHECK(r.s.slots()[0].pid == 102);
  CHECK(r.fx.kills.empty());
  REQUIRE(r.fx.EventsOf(EventKind::kRecycle).size() == 1);
  CHECK(r.fx.EventsOf(EventKind::kRecycle)[0].detail == "worker");
  CHECK(r.fx.EventsOf(EventKind::kRecycle)[0].slot == 0);
  CHECK(r.s.recycles()[static_cast<size_t>(kWorkerAsked)] == 1);
  // Asking again changes nothing.
  CHECK(r.Recycle(100, kOperator, 10.5) == RecycleResult::kAlreadyPending);
  CHECK(r.fx.spawns.size() == 3);

  CHECK(r.Ack(102, 11) == AckResult::kAcked);
  REQUIRE(r.fx.kills.size() == 1);
  CHECK(r.fx.kills[0].pid == 100);
  CHECK(r.fx.kills[0].signal == Signal::kUsr2);
  CHECK(r.fx.Logged("recycled (worker): its replacement is ready"));
  CHECK(r.Recycle(100, kOperator, 11.5) == RecycleResult::kDraining);
  r.Exit(100, 12, kExit0);
  CHECK(r.fx.spawns.size() == 3);  // handled once: its slot is 102's
  REQUIRE(r.fx.EventsOf(EventKind::kRecycleDone).size() == 1);
  CHECK(r.fx.EventsOf(EventKind::kRecycleDone)[0].detail == "worker");
  CHECK(r.fx.EventsOf(EventKind::kRecycleDone)[0].seconds.value_or(0) == doctest::Approx(2));
  CHECK(r.s.slots()[0].restarts == 1);
}

TEST_CASE("recycle: refusals") {
  Rig r(Cfg(2, std::nullopt));
  r.Start(0);
  CHECK(r.Recycle(999, kOperator, 0.5) == RecycleResult::kUnknownPid);
  CHECK(r.Recycle(100, kOperator, 0.5) == RecycleResult::kNotReady);
  CHECK(r.s.workers().at(100).recycle == std::nullopt);
  r.Ack(100, 1);
  r.Ack(101, 1);
  r.Stop(StopKind::kDrain, 2);
  CHECK(r.Recycle(100, kOperator, 3) == RecycleResult::kStopping);
  CHECK(r.s.RecycleAll(kOperator, At(3)) == 0);
}

TEST_CASE("recycle --all is paced: one extra worker at once by default, oldest request first") {
  Rig r(Cfg(3, std::nullopt));
  r.StartReady();
  CHECK(r.s.RecycleAdditional() == 1);
  CHECK(r.RecycleAll(10) == 3);
  REQUIRE(r.fx.spawns.size() == 4);  // one replacement only
  CHECK(r.s.slots()[0].pid == 103);
  CHECK(r.s.workers().at(101).recycle == kOperator);
  CHECK(r.s.workers().at(101).slot == 1);  // queued
  CHECK(r.RecycleAll(10.1) == 0);          // nothing new to queue
  r.Ack(103, 11);                          // 100 drains, but is still alive: no room yet
  CHECK(r.Drained(100));
  CHECK(r.fx.spawns.size() == 4);
  r.Exit(100, 12, kExit0);  // room: 101 goes next
  REQUIRE(r.fx.spawns.size() == 5);
  CHECK(r.LastSpawn().slot == 1);
  r.Ack(104, 13);
  r.Exit(101, 14, kExit0);
  r.Ack(105, 15);
  r.Exit(102, 16, kExit0);
  CHECK(r.s.workers().size() == 3);
  for (const auto& [pid, w] : r.s.workers()) CHECK_FALSE(w.recycle.has_value());
  CHECK(r.s.recycles()[static_cast<size_t>(kOperator)] == 3);
  CHECK(r.fx.EventsOf(EventKind::kRecycleDone).size() == 3);
}

TEST_CASE("recycle: --max-upgrade-additional sets the pace") {
  SupervisorConfig c = Cfg(4, std::nullopt);
  c.upgrade.max_additional = 2;
  Rig r(c);
  r.StartReady();
  CHECK(r.RecycleAll(10) == 4);
  CHECK(r.fx.spawns.size() == 6);
  SupervisorConfig zero = Cfg(1, std::nullopt);
  zero.upgrade.max_additional = 0;
  FakeEffects fx;
  CHECK(Supervisor(zero, fx).RecycleAdditional() == 1);
}

TEST_CASE("recycle: with -m 0 the replacement is ready at once and the old one drains at once") {
  Rig r(Cfg(2, 0.0));
  r.Start(0);
  CHECK(r.Recycle(101, kOperator, 5) == RecycleResult::kStarted);
  CHECK(r.Drained(101));
  CHECK(r.s.workers().at(102).state == WorkerState::kReady);
}

TEST_CASE(
    "recycle: a replacement that dies before ready is retried with backoff, the old one "
    "serves on") {
  Rig r(Cfg(1, std::nullopt));
  r.StartReady();
  r.Recycle(100, kWorkerAsked, 10);
  r.Exit(101, 10.5);  // died booting
  CHECK_FALSE(r.Drained(100));
  CHECK(r.s.workers().at(100).state == WorkerState::kReady);
  CHECK(r.s.slots()[0].consecutive_failures == 1);
  REQUIRE(r.s.slots()[0].respawn_at.has_value());
  CHECK(*r.s.slots()[0].respawn_at == At(11.5));
  r.Tick(11.5);
  REQUIRE(r.fx.spawns.size() == 3);
  r.Exit(102, 12);
  CHECK(*r.s.slots()[0].respawn_at == At(13.5));  // 1.5x
  r.Tick(13.5);
  r.Ack(103, 14);
  CHECK(r.Drained(100));
}

TEST_CASE("recycle: a worker recycled within -s of its start is a failure of its slot") {
  SupervisorConfig c = Cfg(1, 0.0);
  c.backoff_base = Seconds(5);
  Rig r(c);
  r.Start(0);
  r.Recycle(100, kWorkerAsked, 10);  // old enough: at once, the streak ends
  CHECK(r.s.slots()[0].consecutive_failures == 0);
  CHECK(r.s.slots()[0].pid == 101);
  r.Exit(100, 10.2, kExit0);
  CHECK(r.Recycle(101, kWorkerAsked, 12) == RecycleResult::kStarted);  // 2 s old
  CHECK(r.s.slots()[0].consecutive_failures == 1);
  CHECK_FALSE(r.s.slots()[0].pid.has_value());
  CHECK(r.s.slots()[0].respawn_at == At(17));
  CHECK_FALSE(r.Drained(101));  // it serves while the slot waits
  r.Tick(17);
  CHECK(r.Drained(101));  // 102 ready at fork
  r.Exit(101, 17.1, kExit0);
  r.Recycle(102, kWorkerAsked, 18);
  CHECK(r.s.slots()[0].consecutive_failures == 2);
  CHECK(r.s.slots()[0].respawn_at == At(25.5));
}

TEST_CASE("recycle: a worker that exits while its recycle is pending is handled once") {
  SUBCASE("queued") {
    Rig r(Cfg(2, std::nullopt));
    r.StartReady();
    r.RecycleAll(10);  // 100 started, 101 queued
    r.Exit(101, 10.5, kExit0);
    // Its slot is refilled as after any exit, once; its recycle is gone with it.
    REQUIRE(r.fx.spawns.size() == 4);
    CHECK(r.LastSpawn().slot == 1);
    REQUIRE(r.fx.EventsOf(EventKind::kRecycleDone).size() == 1);
    CHECK(r.fx.EventsOf(EventKind::kRecycleDone)[0].detail == "operator, before it started");
    r.Ack(102, 11);
    r.Ack(103, 11);
    CHECK(r.Drained(100));
    r.Exit(100, 12, kExit0);
    CHECK(r.fx.spawns.size() == 4);
  }
  SUBCASE("under way") {
    Rig r(Cfg(2, std::nullopt));
    r.StartReady();
    r.Recycle(100, kWorkerAsked, 10);
    r.Exit(100, 10.5, kExit1);       // dies before its replacement is ready
    CHECK(r.fx.spawns.size() == 3);  // its replacement is the one
    CHECK(r.fx.EventsOf(EventKind::kRecycleDone).size() == 1);
    r.Ack(102, 11);
    CHECK(r.fx.kills.empty());
  }
}

TEST_CASE("recycle: past the hard memory limit, drained at once and replaced at once") {
  Rig r(Cfg(2, std::nullopt));
  r.StartReady();
  CHECK(r.Recycle(100, RecycleCause::kMemory, 10) == RecycleResult::kStarted);
  r.Recycle(101, RecycleCause::kMemory, 10);  // queued behind 100
  CHECK(r.Recycle(101, kHard, 11) == RecycleResult::kStarted);
  CHECK(r.Drained(101));
  REQUIRE(r.fx.spawns.size() == 4);  // whatever the pacing
  CHECK(r.LastSpawn().slot == 1);
  CHECK(r.s.workers().at(101).recycle == kHard);
  // The detached one under way is hastened too.
  CHECK(r.Recycle(100, kHard, 12) == RecycleResult::kStarted);
  CHECK(r.Drained(100));
  CHECK(r.s.recycles()[static_cast<size_t>(kHard)] == 2);
  // A booting worker is taken too.
  CHECK(r.Recycle(103, kHard, 13) == RecycleResult::kStarted);
  CHECK(r.Drained(103));
}

TEST_CASE("recycle: queued behind a running upgrade") {
  Rig r(Cfg(2, std::nullopt));
  r.StartReady();
  r.Upgrade(kSmooth, 10);
  // 100 and 101 are detached: the upgrade replaces them.
  CHECK(r.Recycle(100, kOperator, 10.5) == RecycleResult::kAlreadyPending);
  r.Ack(102, 11);
  r.Ack(103, 12);
  REQUIRE_FALSE(r.s.upgrade().has_value());
  r.Exit(100, 12.5, kExit0);
  r.Exit(101, 12.5, kExit0);
  // A new one asks during the next upgrade... (its slot is the new generation's)
  r.Upgrade(kSmooth, 20);
  CHECK(r.Recycle(104, kOperator, 20.1) == RecycleResult::kNotReady);
  r.Ack(104, 21);
  CHECK(r.Recycle(104, kOperator, 21.5) == RecycleResult::kQueued);
  r.Ack(105, 22);
  REQUIRE_FALSE(r.s.upgrade().has_value());
  CHECK(r.s.workers().at(104).slot == 0);  // the old generation still drains: no room
  r.Exit(102, 22.5, kExit0);
  r.Exit(103, 22.5, kExit0);
  // ... and is recycled once the upgrade is done and there is room.
  CHECK(r.s.workers().at(104).slot == -1);
  CHECK(r.s.recycles()[static_cast<size_t>(kOperator)] == 1);
}

TEST_CASE("recycle: an upgrade that starts while a recycle is under way takes it over") {
  Rig r(Cfg(2, std::nullopt));
  r.StartReady();
  r.Recycle(100, kOperator, 10);
  r.Upgrade(kSmooth, 10.5);
  r.Ack(103, 11);
  r.Ack(104, 12);
  REQUIRE_FALSE(r.s.upgrade().has_value());
  for (Pid p : {100, 101, 102}) CHECK(r.Drained(p));
}

TEST_CASE("recycle: --max-worker-lifetime with jitter spreads a pool's recycles") {
  SupervisorConfig c = Cfg(20, 0.0);
  c.max_worker_lifetime = Seconds(100);
  c.lifetime_jitter = 0.1;
  c.upgrade.max_additional = 20;
  Rig r(c);
  r.Start(0);
  std::vector<Time> due;
  for (const auto& [pid, w] : r.s.workers()) {
    REQUIRE(w.recycle_due.has_value());
    CHECK(*w.recycle_due >= At(90));
    CHECK(*w.recycle_due <= At(100));
    due.push_back(*w.recycle_due);
  }
  std::sort(due.begin(), due.end());
  CHECK(due.front() < due.back());  // not all at once
  CHECK(r.s.NextDeadline() == due.front());
  r.Tick(ToSeconds(due.front()));
  CHECK(r.fx.EventsOf(EventKind::kRecycle).size() == 1);
  CHECK(r.fx.EventsOf(EventKind::kRecycle)[0].detail == "age");
  r.Tick(100);
  CHECK(r.fx.EventsOf(EventKind::kRecycle).size() == 20);
  // Their replacements got their own lifetimes.
  CHECK(r.s.workers().size() == 40);
}

TEST_CASE("recycle: a lifetime without jitter is exact") {
  SupervisorConfig c = Cfg(1, std::nullopt);
  c.max_worker_lifetime = Seconds(50);
  c.lifetime_jitter = 0;
  Rig r(c);
  r.StartReady();
  CHECK(r.s.workers().at(100).recycle_due == At(50));
  r.Tick(49.9);
  CHECK(r.fx.spawns.size() == 1);
  r.Tick(50);
  CHECK(r.fx.spawns.size() == 2);
  CHECK(r.s.workers().at(100).recycle == RecycleCause::kAge);
}

TEST_CASE("recycle: pending and running recycles survive a reload") {
  Rig r(Cfg(3, std::nullopt));
  r.StartReady();
  r.RecycleAll(10);
  r.Recycle(101, kWorkerAsked, 10.5);  // already pending: keeps its first cause
  SupervisorSnapshot snap = r.s.Snapshot();
  REQUIRE(CheckSnapshot(snap).ok());
  CHECK(snap.recycles.size() == kRecycleCauses);
  FakeEffects fx;
  Supervisor s = Supervisor::Restore(snap, fx);
  CHECK(s.Snapshot() == snap);
  CHECK(s.workers().at(101).recycle == kOperator);
  CHECK(s.workers().at(100).slot == -1);
  CHECK(s.recycles()[static_cast<size_t>(kOperator)] == 1);
  // It carries on where the old one stopped.
  s.Ack(103, At(11));
  REQUIRE(fx.kills.size() == 1);
  CHECK(fx.kills[0].pid == 100);
  s.ChildExited(100, kExit0, At(12));
  REQUIRE(fx.spawns.size() == 1);
  CHECK(fx.spawns[0].slot == 1);

  SupervisorSnapshot bad = snap;
  bad.recycles.push_back(0);
  CHECK_FALSE(CheckSnapshot(bad).ok());
  bad = snap;
  bad.recycles[0] = -1;
  CHECK_FALSE(CheckSnapshot(bad).ok());
  // An older image carried no counters: all 0.
  bad = snap;
  bad.recycles.clear();
  CHECK(Supervisor::Restore(bad, fx).recycles()[static_cast<size_t>(kOperator)] == 0);
}

}  // namespace
}  // namespace einhorn::core
