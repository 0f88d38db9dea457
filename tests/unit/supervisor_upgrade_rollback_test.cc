// Upgrades that fail, driven through the Supervisor (the rig in upgrade_rig.h): every abort path
// (deaths before ready, spawn errors, ack and upgrade deadlines, a stop) and the rollback.
#include <doctest/doctest.h>

#include <optional>
#include <vector>

#include "upgrade_rig.h"

namespace einhorn::core {
namespace {

using namespace upgrade_rig;  // the rig and its vocabulary

// --- abort paths and rollback -----------------------------------------------------------------

TEST_CASE("new workers dying before ready max_failures times roll the upgrade back") {
  Rig r(Cfg(2, std::nullopt));
  r.StartReady();
  r.Upgrade(kSmooth, 2);
  REQUIRE(r.Booting() == std::vector<Pid>{102});
  r.Exit(102, 2.5);
  CHECK(r.s.upgrade()->failures == 1);
  r.Tick(3.5);
  REQUIRE(r.Booting() == std::vector<Pid>{103});
  r.Exit(103, 4, kKilled);
  CHECK(r.s.upgrade()->failures == 2);
  r.Tick(5.5);  // 1.5s backoff
  REQUIRE(r.Booting() == std::vector<Pid>{104});
  r.Exit(104, 6);
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kFailed) == 1);
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 0);
  CHECK(r.fx.notes.back().first == UpgradeNoteKind::kFailed);
  CHECK(r.LastNote().find("3 new workers failed (last: ") != std::string::npos);
  REQUIRE(r.s.last_upgrade().has_value());
  CHECK_FALSE(r.s.last_upgrade()->ok);
  CHECK(r.s.last_upgrade()->generation == 2);
  CHECK(r.s.last_upgrade()->reason.find("3 new workers failed") == 0);
  CHECK(r.s.generation() == 1);
  // The old generation never stopped serving and fills the pool again.
  CHECK(r.fx.kills.empty());
  CHECK(r.s.slots()[0].pid == 100);
  CHECK(r.s.slots()[1].pid == 101);
  CHECK(r.Serving() == 2);
  r.Tick(100);
  CHECK(r.fx.spawns.size() == 5);
  CHECK_FALSE(r.s.NextDeadline().has_value());
}

TEST_CASE("a new worker that dies within -s of its ack is a failure too") {
  Rig r(Cfg(2, std::nullopt));
  r.StartReady();
  r.Upgrade(kSmooth, 2);
  REQUIRE(r.Booting() == std::vector<Pid>{102});
  r.Ack(102, 2.2);
  // Ready, and it let one old worker drain; then it crashes 0.5s later, within -s (1s).
  r.Exit(102, 2.7);
  REQUIRE(r.s.upgrade().has_value());
  CHECK(r.s.upgrade()->failures == 1);
  CHECK(r.s.upgrade()->last_failure.find("within 1.000s of being ready") != std::string::npos);
  // One that stays up longer than -s is not: its slot is simply refilled.
  r.Tick(2.7);
  const std::vector<Pid> booting = r.Booting();
  REQUIRE(booting.size() == 1);
  r.Ack(booting[0], 3);
  r.Exit(booting[0], 4.5);
  CHECK(r.s.upgrade()->failures == 1);
}

TEST_CASE("spawn errors count as failures and roll the upgrade back") {
  auto c = Cfg(2, std::nullopt);
  c.upgrade.max_failures = 2;
  Rig r(c);
  r.StartReady();
  r.fx.fail_with = "exec: No such file or directory";
  r.Upgrade(kSmooth, 2);
  CHECK(r.s.upgrade()->failures == 1);
  CHECK(r.s.NextDeadline() == At(3));
  r.Tick(3);
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kFailed) == 1);
  CHECK(r.LastNote().find("could not be started: exec: No such file or directory") !=
        std::string::npos);
  CHECK(r.s.generation() == 1);
  CHECK(r.Serving() == 2);
  CHECK(r.fx.kills.empty());
  // The old slots are full: nothing more is tried.
  const size_t attempts = r.fx.spawns.size();
  r.Tick(100);
  CHECK(r.fx.spawns.size() == attempts);
}

TEST_CASE("spawn errors stop the upgrade in the call that reaches max_failures") {
  auto c = Cfg(4, std::nullopt);
  c.upgrade.canary = false;
  c.upgrade.max_failures = 2;
  Rig r(c);
  r.StartReady();
  r.fx.fail_with = "fork: Resource temporarily unavailable";
  r.Upgrade(kFleet, 2);
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kFailed) == 1);
  CHECK(r.fx.spawns.size() == 4 + 2);  // two attempts, not one per slot
  CHECK(r.s.last_upgrade()->reason.find("2 new workers failed") == 0);
}

TEST_CASE("a new worker not ready within the ack timeout rolls back and is killed after -t") {
  auto c = Cfg(2, std::nullopt);
  c.upgrade.ack_timeout = Seconds(5);
  c.signal_timeout = Seconds(2);
  Rig r(c);
  r.StartReady();
  r.Upgrade(kSmooth, 10);
  REQUIRE(r.Booting() == std::vector<Pid>{102});
  CHECK(r.s.NextDeadline() == At(15));
  r.Tick(14.9);
  CHECK(r.s.upgrade().has_value());
  r.Tick(15);
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kFailed) == 1);
  CHECK(r.LastNote().find("was not ready within the ack timeout of 5.000s") != std::string::npos);
  CHECK(r.s.generation() == 1);
  CHECK(r.Drained(102));
  CHECK(r.s.workers().at(102).state == WorkerState::kDraining);
  CHECK(r.s.workers().at(102).slot == -1);
  CHECK_FALSE(r.Drained(100));
  CHECK_FALSE(r.Drained(101));
  CHECK(r.s.NextDeadline() == At(17));
  r.Tick(16.9);
  CHECK_FALSE(r.Killed(102));
  r.Tick(17);
  CHECK(r.Killed(102));
  r.Exit(102, 17.1, kKilled);
  CHECK(r.fx.spawns.size() == 3);
  CHECK_FALSE(r.s.NextDeadline().has_value());
  // An ack arriving late for the rolled-back worker changes nothing.
  CHECK(r.s.workers().size() == 2);
}

TEST_CASE("without -t rolled-back workers are killed after rollback_kill_after") {
  auto c = Cfg(2, std::nullopt);
  c.upgrade.ack_timeout = Seconds(5);
  c.rollback_kill_after = Seconds(4);
  Rig r(c);
  r.StartReady();
  r.Upgrade(kSmooth, 10);
  r.Tick(15);
  REQUIRE(r.Drained(102));
  CHECK(r.s.NextDeadline() == At(19));
  r.Tick(18.9);
  CHECK_FALSE(r.Killed(102));
  r.Tick(19);
  CHECK(r.Killed(102));
}

TEST_CASE(
    "the upgrade timeout rolls back, keeps ready new workers until old replacements are ready") {
  auto c = Cfg(2, std::nullopt);
  c.upgrade.upgrade_timeout = Seconds(10);
  c.signal_timeout = Seconds(3);
  Rig r(c);
  r.StartReady();
  r.Upgrade(kSmooth, 1);
  r.Ack(102, 2);  // 100 drains, 103 starts
  REQUIRE(r.Drained(100));
  REQUIRE(r.Booting() == std::vector<Pid>{103});
  r.Exit(100, 2.5, kExit0);
  CHECK(r.s.NextDeadline() == At(11));
  r.Tick(10.9);
  CHECK(r.s.upgrade().has_value());
  r.Tick(11);
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.LastNote().find("not done within the upgrade timeout of 10.000s") != std::string::npos);
  CHECK(r.s.generation() == 1);
  // The unready new worker drains; the ready one keeps serving, detached.
  CHECK(r.Drained(103));
  CHECK_FALSE(r.Drained(102));
  CHECK(r.s.workers().at(102).state == WorkerState::kReady);
  CHECK(r.s.workers().at(102).slot == -1);
  // The old one left holds a slot; the missing old slot is topped up with generation 1.
  CHECK(r.s.workers().at(101).slot >= 0);
  REQUIRE(r.fx.spawns.size() == 5);
  CHECK(r.LastSpawn().generation == 1);
  const Pid replacement = r.LastPid();
  CHECK(r.Serving() == 2);
  r.Tick(14);  // 103 ignored the drain signal
  CHECK(r.Killed(103));
  CHECK_FALSE(r.Drained(102));
  r.Ack(replacement, 15);
  CHECK(r.Drained(102));
  CHECK(r.Serving() == 2);
  // No new-generation worker is left serving.
  CHECK(r.Of(2, WorkerState::kReady).empty());
  // A later upgrade works, with a fresh generation number.
  r.Exit(102, 16, kExit0);
  r.Exit(103, 16, kKilled);
  r.Upgrade(kSmooth, 20);
  CHECK(r.s.generation() == 3);
  CHECK(r.s.upgrade()->from_generation == 1);
  for (int i = 0; i < 20 && r.s.upgrade(); ++i) {
    for (Pid p : r.Booting()) r.Ack(p, 21 + i);
  }
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.s.last_upgrade()->ok);
  CHECK(r.s.last_upgrade()->generation == 3);
  CHECK(r.Of(3, WorkerState::kReady).size() == 2);
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kFailed) == 1);
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 1);
}

TEST_CASE("a deadline does not roll back an upgrade whose new generation is ready") {
  // The timer fires late: the last new worker's ack time (6.0) is before the deadline (6.2),
  // but the tick that marks it ready comes at 6.5.
  auto c = Cfg(1, 1.0);
  c.upgrade.upgrade_timeout = Seconds(1.2);
  Rig r(c);
  r.StartReady();
  r.Upgrade(kSmooth, 5);
  r.Tick(6.5);
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kFailed) == 0);
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 1);
  CHECK(r.s.generation() == 2);
}

TEST_CASE("old workers dying during an upgrade are not respawned, and are topped up on rollback") {
  auto c = Cfg(3, std::nullopt);
  c.upgrade.ack_timeout = Seconds(30);
  Rig r(c);
  r.StartReady();
  r.Upgrade(kSmooth, 2);
  REQUIRE(r.Booting() == std::vector<Pid>{103});
  r.Exit(101, 3, kKilled);  // an old, ready worker dies
  CHECK(r.fx.spawns.size() == 4);
  CHECK(r.s.NextDeadline() == At(32));  // no respawn scheduled for it: only 103's ack timeout
  SUBCASE("the upgrade completes without it") {
    r.Ack(103, 4);  // 2 old + 1 new = 3: nothing to drain yet
    CHECK(r.fx.kills.empty());
    REQUIRE(r.Booting() == std::vector<Pid>{104});
    r.Ack(104, 5);
    CHECK(r.fx.kills.size() == 1);
    CHECK(r.Drained(100));
    r.Ack(105, 6);
    CHECK(r.Drained(102));
    CHECK_FALSE(r.s.upgrade().has_value());
    REQUIRE(r.fx.spawns.size() == 6);
    for (size_t i = 3; i < 6; ++i) CHECK(r.fx.spawns[i].generation == 2);
  }
  SUBCASE("a rollback tops the old generation back up to N") {
    r.Tick(32);  // ack timeout of 103
    CHECK_FALSE(r.s.upgrade().has_value());
    CHECK(r.s.generation() == 1);
    REQUIRE(r.fx.spawns.size() == 5);
    CHECK(r.LastSpawn().generation == 1);
    CHECK(r.s.workers().at(100).slot >= 0);
    CHECK(r.s.workers().at(102).slot >= 0);
    int filled = 0;
    for (const auto& slot : r.s.slots()) filled += slot.pid ? 1 : 0;
    CHECK(filled == 3);
    CHECK(r.Serving() == 2);
    r.Ack(r.LastPid(), 33);
    CHECK(r.Serving() == 3);
  }
}

TEST_CASE("stopping during an upgrade ends it with a failure note") {
  auto c = Cfg(2, std::nullopt);
  c.signal_timeout = Seconds(2);
  Rig r(c);
  r.StartReady();
  r.Upgrade(kSmooth, 2);
  r.Ack(102, 3);
  REQUIRE(r.Booting() == std::vector<Pid>{103});
  Signal expected = Signal::kUsr2;
  SUBCASE("drain") { r.Stop(StopKind::kDrain, 4); }
  SUBCASE("terminate") {
    r.Stop(StopKind::kTerminate, 4);
    expected = Signal::kTerm;
  }
  SUBCASE("die") {
    r.Die(Signal::kInt, 4);
    expected = Signal::kInt;
  }
  SUBCASE("quit") {
    r.Stop(StopKind::kQuit, 4);
    expected = Signal::kQuit;
  }
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kFailed) == 1);
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 0);
  CHECK(r.fx.notes.back().first == UpgradeNoteKind::kFailed);
  CHECK(r.LastNote().find("the master is stopping") != std::string::npos);
  CHECK_FALSE(r.s.last_upgrade()->ok);
  for (Pid p : {101, 102, 103}) CHECK(r.SignalsTo(p, expected) >= 1);
  const size_t spawns = r.fx.spawns.size();
  r.Tick(10);
  for (Pid p : {100, 101, 102, 103}) r.Exit(p, 11, kKilled);
  CHECK(r.fx.spawns.size() == spawns);
  CHECK(r.s.Finished());
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kFailed) == 1);
}

}  // namespace
}  // namespace einhorn::core
