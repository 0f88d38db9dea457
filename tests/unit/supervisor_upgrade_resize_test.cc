// Upgrades driven through the Supervisor (the rig in upgrade_rig.h) while something else
// changes: a second upgrade superseding the first, and the pool growing or shrinking.
#include <doctest/doctest.h>

#include <optional>
#include <vector>

#include "upgrade_rig.h"

namespace einhorn::core {
namespace {

using namespace upgrade_rig;  // the rig and its vocabulary

// --- superseding upgrades and resizes -------------------------------------------------------

TEST_CASE("a second upgrade supersedes the first") {
  auto c = Cfg(3, std::nullopt);
  c.upgrade.max_unacked = 2;
  c.upgrade.canary = false;
  Rig r(c);
  r.StartReady();
  r.Upgrade(kSmooth, 2);
  REQUIRE(r.Booting() == std::vector<Pid>{103, 104});
  r.Ack(103, 3);
  CHECK(r.Drained(100));
  REQUIRE(r.Booting() == std::vector<Pid>{104, 105});

  const UpgradeStart st = r.Upgrade(kSmooth, 4);
  CHECK(st.started);
  CHECK(r.fx.Logged("Currently upgrading (1 / 3 ready; starting over with generation 3)"));
  CHECK(r.s.generation() == 3);
  CHECK(r.s.upgrade()->from_generation == 1);
  CHECK(r.s.upgrade()->to_generation == 3);
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 0);
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kFailed) == 0);
  // The ready generation-2 worker keeps serving as an old one; the unready ones drain.
  CHECK_FALSE(r.Drained(103));
  CHECK(r.s.workers().at(103).slot == -1);
  CHECK(r.Drained(104));
  CHECK(r.Drained(105));
  CHECK(r.Of(3, WorkerState::kBooting) == std::vector<Pid>{106, 107});
  CHECK(r.Serving() == 3);

  r.Ack(106, 5);  // the oldest generation drains first
  CHECK(r.Drained(101));
  CHECK_FALSE(r.Drained(103));
  r.Ack(107, 6);
  CHECK(r.Drained(102));
  CHECK_FALSE(r.Drained(103));
  REQUIRE(r.Of(3, WorkerState::kBooting) == std::vector<Pid>{108});
  r.Ack(108, 7);
  CHECK(r.Drained(103));
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 1);
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kFailed) == 0);
  CHECK(r.s.last_upgrade()->generation == 3);
  CHECK(r.Of(3, WorkerState::kReady).size() == 3);
}

TEST_CASE("a superseding upgrade that fails rolls back to the generation before both") {
  auto c = Cfg(2, std::nullopt);
  c.upgrade.ack_timeout = Seconds(5);
  Rig r(c);
  r.StartReady();
  r.Upgrade(kSmooth, 2);
  r.Upgrade(kFleet, 3);
  CHECK(r.Drained(102));
  r.Tick(8);
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.s.generation() == 1);
  CHECK(r.s.last_upgrade()->generation == 3);
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kFailed) == 1);
  CHECK(r.Serving() == 2);
}

TEST_CASE(
    "superseded unready workers are killed if they linger, so max_upgrade_additional cannot "
    "stall") {
  // Without -t a drained worker is never killed; a superseded unready one that ignores the
  // drain signal would hold the max_upgrade_additional room forever, with no deadline left.
  auto c = Cfg(1, std::nullopt);
  c.upgrade.max_additional = 0;
  c.rollback_kill_after = Seconds(4);
  Rig r(c);
  r.StartReady();
  r.Upgrade(kSmooth, 1);
  REQUIRE(r.Booting() == std::vector<Pid>{101});
  r.Upgrade(kSmooth, 2);
  CHECK(r.Drained(101));
  CHECK(r.fx.spawns.size() == 2);  // 100 and the draining 101 fill the room
  REQUIRE(r.s.NextDeadline().has_value());
  CHECK(*r.s.NextDeadline() == At(6));
  r.Tick(6);
  CHECK(r.Killed(101));
  CHECK_FALSE(r.Killed(100));
  r.Exit(101, 6.1, kKilled);
  REQUIRE(r.fx.spawns.size() == 3);
  CHECK(r.LastSpawn().generation == 3);
  r.Ack(102, 7);
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 1);
}

TEST_CASE("a smooth upgrade over a stuck fleet upgrade keeps the healthy old workers") {
  // Einhorn drained every healthy old worker here, counting the unacked ones as capacity.
  auto c = Cfg(3, std::nullopt);
  c.upgrade.canary = false;
  c.upgrade.max_unacked = 2;
  Rig r(c);
  r.StartReady();
  r.Upgrade(kFleet, 2);
  REQUIRE(r.Booting() == std::vector<Pid>{103, 104, 105});
  r.Upgrade(kSmooth, 3);
  for (Pid p : {100, 101, 102}) CHECK_FALSE(r.Drained(p));
  for (Pid p : {103, 104, 105}) CHECK(r.Drained(p));
  CHECK(r.Serving() == 3);
  CHECK(r.Of(3, WorkerState::kBooting) == std::vector<Pid>{106, 107});
}

TEST_CASE("growing the pool during an upgrade fills the new slots within the budgets") {
  Rig r(Cfg(2, std::nullopt));
  r.StartReady();
  r.Upgrade(kSmooth, 2);
  REQUIRE(r.Booting() == std::vector<Pid>{102});
  r.SetTarget(4, 3);
  CHECK(r.s.slots().size() == 4);
  CHECK(r.Booting() == std::vector<Pid>{102});  // canary still booting
  r.Ack(102, 4);
  CHECK(r.fx.kills.empty());  // 2 old + 1 new < 4
  CHECK(r.Booting() == std::vector<Pid>{103});
  r.Ack(103, 5);
  CHECK(r.fx.kills.empty());
  r.Ack(104, 6);
  CHECK(r.Drained(100));
  r.Ack(105, 7);
  CHECK(r.Drained(101));
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.Of(2, WorkerState::kReady).size() == 4);
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 1);
}

TEST_CASE("shrinking the pool during an upgrade") {
  auto c = Cfg(4, std::nullopt);
  c.upgrade.max_unacked = 2;
  c.upgrade.canary = false;
  Rig r(c);
  r.StartReady();
  r.Upgrade(kSmooth, 2);
  REQUIRE(r.Booting() == std::vector<Pid>{104, 105});
  r.Ack(104, 3);
  CHECK(r.Drained(100));
  REQUIRE(r.Booting() == std::vector<Pid>{105, 106});
  r.SetTarget(2, 4);
  // The new worker of the removed slot goes; two old ones go, as 2 stay ready.
  CHECK(r.Drained(106));
  CHECK(r.Serving() == 2);
  CHECK(r.s.upgrade().has_value());
  r.Ack(105, 5);
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 1);
  CHECK(r.Of(2, WorkerState::kReady) == std::vector<Pid>{104, 105});
  CHECK(r.Of(1, WorkerState::kReady).empty());
}

TEST_CASE("shrinking keeps ready workers rather than booting ones") {
  // Known bug, in SetTarget (supervisor.cc): a shrink drains the workers of the highest slots,
  // ready or not, so a ready worker goes while a booting one stays and nobody serves.
  Rig r(Cfg(3, std::nullopt));
  r.strict_shrink = true;
  r.Start(0);
  r.Ack(102, 1);  // slot 2 is ready, slots 0 and 1 still boot
  r.SetTarget(1, 2);
  CHECK(r.Serving() == 1);
}

}  // namespace
}  // namespace einhorn::core
