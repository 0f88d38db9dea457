// Upgrades driven through the Supervisor (the rig in upgrade_rig.h): both strategies, the
// budgets, the canary, manual and timer acks, and completion. The abort paths are in
// supervisor_upgrade_rollback_test.cc, superseding upgrades and resizes in
// supervisor_upgrade_resize_test.cc, random sequences in supervisor_upgrade_random_test.cc.
#include <doctest/doctest.h>

#include <optional>
#include <vector>

#include "upgrade_rig.h"

namespace einhorn::core {
namespace {

using namespace upgrade_rig;  // the rig and its vocabulary

TEST_CASE("the serving invariant predicate") {
  CHECK(ServingHolds(3, 3, 3, false));
  CHECK_FALSE(ServingHolds(3, 2, 3, false));
  CHECK(ServingHolds(3, 2, 3, true));
  CHECK_FALSE(ServingHolds(2, 1, 3, false));  // below N already: may not drop further
  CHECK(ServingHolds(1, 1, 3, false));
  CHECK(ServingHolds(5, 3, 3, false));  // above N: may drain down to N
  CHECK_FALSE(ServingHolds(5, 2, 3, false));
  CHECK(ServingHolds(0, 0, 3, false));
}

// --- strategies, budgets, canary, acks -----------------------------------------------------

TEST_CASE("smooth upgrade with a 1s timer ack replaces one old worker per new ready worker") {
  Rig r(Cfg(3, 1.0));
  r.StartReady();
  const UpgradeStart st = r.Upgrade(kSmooth, 10);
  CHECK(st.started);
  CHECK(st.message == "Upgrading smoothly, as commanded");
  CHECK(r.s.generation() == 2);
  REQUIRE(r.s.upgrade().has_value());
  CHECK(r.s.upgrade()->from_generation == 1);
  CHECK(r.s.upgrade()->to_generation == 2);
  CHECK(r.s.upgrade()->strategy == kSmooth);
  REQUIRE(r.fx.spawns.size() == 4);
  CHECK(r.LastSpawn().generation == 2);
  CHECK(r.LastSpawn().slot == 0);
  CHECK(r.LastSpawn().index == 3);  // 0..2 are held by the old workers
  REQUIRE_FALSE(r.fx.notes.empty());
  CHECK(r.fx.notes.front().first == UpgradeNoteKind::kProgress);
  CHECK(r.fx.notes.front().second.find("Starting smooth upgrade from generation 1 to 2") == 0);
  CHECK(r.s.NextDeadline() == At(11));

  r.Tick(10.5);
  CHECK(r.fx.kills.empty());
  CHECK(r.fx.spawns.size() == 4);

  r.Tick(11);  // 103 is ready: 100 (the oldest) drains, 104 starts
  CHECK(r.s.workers().at(103).state == WorkerState::kReady);
  REQUIRE(r.fx.kills.size() == 1);
  CHECK(r.fx.kills[0].pid == 100);
  CHECK(r.fx.kills[0].signal == Signal::kUsr2);
  CHECK(r.s.workers().at(100).state == WorkerState::kDraining);
  REQUIRE(r.fx.spawns.size() == 5);
  CHECK(r.fx.spawns[4].slot == 1);
  CHECK(r.fx.spawns[4].generation == 2);
  bool progress = false;
  for (const auto& [kind, text] : r.fx.notes) {
    progress |= text == "Progress: 1/3 new ready, 1/3 old told to drain";
  }
  CHECK(progress);

  r.Tick(12);
  CHECK(r.fx.kills.size() == 2);
  CHECK(r.fx.kills[1].pid == 101);
  CHECK(r.fx.spawns.size() == 6);
  CHECK(r.s.upgrade().has_value());
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 0);

  r.Tick(13);  // the last new one is ready: the last old one drains and the upgrade is done
  CHECK(r.fx.kills.size() == 3);
  CHECK(r.fx.kills[2].pid == 102);
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 1);
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kFailed) == 0);
  CHECK(r.LastNote() == "Upgrade done");
  REQUIRE(r.s.last_upgrade().has_value());
  CHECK(r.s.last_upgrade()->ok);
  CHECK(r.s.last_upgrade()->generation == 2);
  CHECK(r.s.last_upgrade()->finished_at == At(13));
  CHECK(r.s.generation() == 2);
  CHECK(r.Of(2, WorkerState::kReady).size() == 3);

  // Old workers exit and are not replaced; nothing else happens.
  for (Pid p : {100, 101, 102}) r.Exit(p, 14, kExit0);
  r.Tick(100);
  CHECK(r.fx.spawns.size() == 6);
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 1);
  CHECK(r.s.workers().size() == 3);
}

TEST_CASE("a 0s timer ack completes an upgrade within the call") {
  // Workers are ready at spawn, so no timer is left to wake the supervisor: the upgrade must
  // not wait for an event that never comes.
  UpgradeStrategy strategy = kSmooth;
  SUBCASE("smooth") {}
  SUBCASE("fleet") { strategy = kFleet; }
  CAPTURE(UpgradeStrategyName(strategy));
  Rig r(Cfg(3, 0.0));
  r.StartReady();
  r.Upgrade(strategy, 5);
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 1);
  CHECK(r.Of(2, WorkerState::kReady).size() == 3);
  for (Pid p : {100, 101, 102}) CHECK(r.Drained(p));
  CHECK_FALSE(r.s.NextDeadline().has_value());
}

TEST_CASE("smooth upgrade keeps at most max_unacked new workers unready") {
  auto c = Cfg(4, std::nullopt);
  c.upgrade.max_unacked = 2;
  c.upgrade.canary = false;
  Rig r(c);
  r.StartReady();
  r.Upgrade(kSmooth, 2);
  CHECK(r.Booting() == std::vector<Pid>{104, 105});
  r.Tick(50);  // manual acks: time alone changes nothing
  CHECK(r.Booting().size() == 2);
  CHECK(r.fx.kills.empty());

  CHECK(r.Ack(104, 51) == AckResult::kAcked);
  CHECK(r.fx.kills.size() == 1);
  CHECK(r.Drained(100));
  CHECK(r.Booting() == std::vector<Pid>{105, 106});
  CHECK(r.Ack(106, 52) == AckResult::kAcked);
  CHECK(r.Drained(101));
  CHECK(r.Booting() == std::vector<Pid>{105, 107});
  CHECK(r.Ack(105, 53) == AckResult::kAcked);  // every slot is filled: nothing more to start
  CHECK(r.Drained(102));
  CHECK(r.Booting() == std::vector<Pid>{107});
  CHECK(r.fx.spawns.size() == 8);
  CHECK(r.s.upgrade().has_value());
  CHECK(r.Ack(107, 54) == AckResult::kAcked);
  CHECK(r.Drained(103));
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 1);
}

TEST_CASE("max_upgrade_additional caps the workers alive, and 0 acts as 1") {
  int additional = 1;
  SUBCASE("1") {}
  SUBCASE("0") { additional = 0; }
  CAPTURE(additional);
  auto c = Cfg(3, std::nullopt);
  c.upgrade.max_unacked = 3;
  c.upgrade.canary = false;
  c.upgrade.max_additional = additional;
  Rig r(c);
  r.StartReady();
  r.Upgrade(kSmooth, 2);
  CHECK(r.Booting() == std::vector<Pid>{103});
  r.Ack(103, 3);
  CHECK(r.Drained(100));
  // 100 drains but is alive: still 4 workers, so nothing new yet.
  CHECK(r.fx.spawns.size() == 4);
  r.Exit(100, 4, kExit0);
  CHECK(r.Booting() == std::vector<Pid>{104});
  r.Ack(104, 5);
  CHECK(r.Drained(101));
  CHECK(r.fx.spawns.size() == 5);
  r.Exit(101, 6, kExit0);
  CHECK(r.Booting() == std::vector<Pid>{105});
  r.Ack(105, 7);
  CHECK(r.Drained(102));
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 1);
}

TEST_CASE("max_upgrade_additional 2 allows two beyond N") {
  auto c = Cfg(3, std::nullopt);
  c.upgrade.max_unacked = 3;
  c.upgrade.canary = false;
  c.upgrade.max_additional = 2;
  Rig r(c);
  r.StartReady();
  r.Upgrade(kSmooth, 2);
  CHECK(r.Booting() == std::vector<Pid>{103, 104});
}

TEST_CASE("the canary comes alone, then the budget opens") {
  auto c = Cfg(3, std::nullopt);
  c.upgrade.max_unacked = 3;
  SUBCASE("smooth") {
    Rig r(c);
    r.StartReady();
    r.Upgrade(kSmooth, 2);
    CHECK(r.Booting() == std::vector<Pid>{103});
    r.Ack(103, 3);
    CHECK(r.Booting() == std::vector<Pid>{104, 105});
    CHECK(r.Drained(100));
    CHECK_FALSE(r.Drained(101));
  }
  SUBCASE("smooth without canary") {
    c.upgrade.canary = false;
    Rig r(c);
    r.StartReady();
    r.Upgrade(kSmooth, 2);
    CHECK(r.Booting() == std::vector<Pid>{103, 104, 105});
  }
}

TEST_CASE(
    "fleet upgrade starts the whole generation after the canary and drains the old one when all "
    "are ready") {
  auto c = Cfg(3, std::nullopt);
  c.upgrade.max_unacked = 1;  // smooth budgets do not apply to a fleet upgrade
  c.upgrade.max_additional = 0;
  Rig r(c);
  r.StartReady();
  const UpgradeStart st = r.Upgrade(kFleet, 2);
  CHECK(st.started);
  CHECK(st.message == "Upgrading fleet, as commanded");
  CHECK(r.fx.notes.front().second.find("Starting fleet upgrade") == 0);
  CHECK(r.Booting() == std::vector<Pid>{103});
  r.Ack(103, 3);
  CHECK(r.Booting() == std::vector<Pid>{104, 105});
  CHECK(r.fx.kills.empty());
  r.Ack(104, 4);
  CHECK(r.fx.kills.empty());
  CHECK(r.s.upgrade().has_value());
  r.Ack(105, 5);
  CHECK(r.fx.kills.size() == 3);
  for (Pid p : {100, 101, 102}) CHECK(r.Drained(p));
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 1);
  CHECK(r.s.last_upgrade()->ok);
}

TEST_CASE("fleet upgrade without canary starts every new worker at once") {
  auto c = Cfg(4, 1.0);
  c.upgrade.canary = false;
  Rig r(c);
  r.StartReady();
  r.Upgrade(kFleet, 5);
  CHECK(r.Booting() == std::vector<Pid>{104, 105, 106, 107});
  CHECK(r.fx.kills.empty());
  r.Tick(6);
  CHECK(r.fx.kills.size() == 4);
  CHECK_FALSE(r.s.upgrade().has_value());
}

TEST_CASE("a dead canary is respawned with backoff and no other new worker starts meanwhile") {
  auto c = Cfg(3, std::nullopt);
  c.upgrade.max_unacked = 2;
  c.upgrade.max_failures = 5;
  SUBCASE("canary") {}
  SUBCASE("no canary, max_unacked 1") {
    c.upgrade.canary = false;
    c.upgrade.max_unacked = 1;
  }
  Rig r(c);
  r.StartReady();
  r.Upgrade(kSmooth, 2);
  REQUIRE(r.Booting() == std::vector<Pid>{103});
  r.Exit(103, 2.5);
  CHECK(r.fx.spawns.size() == 3 + 1);  // the slot waits for its backoff
  CHECK(r.Booting().empty());
  CHECK(r.s.NextDeadline() == At(3.5));
  r.Tick(3.5);
  REQUIRE(r.fx.spawns.size() == 5);
  CHECK(r.LastSpawn().slot == 0);
  CHECK(r.LastSpawn().generation == 2);
  CHECK(r.Booting().size() == 1);
  CHECK(r.s.upgrade()->failures == 1);
}

TEST_CASE("manual acks drive an upgrade and time alone does not") {
  Rig r(Cfg(2, std::nullopt));
  r.StartReady();
  r.Upgrade(kSmooth, 2);
  CHECK_FALSE(r.s.NextDeadline().has_value());
  r.Tick(1000);
  CHECK(r.s.upgrade().has_value());
  CHECK(r.fx.kills.empty());
  CHECK(r.Ack(100, 1001) == AckResult::kAlreadyAcked);
  CHECK(r.Ack(102, 1001) == AckResult::kAcked);
  CHECK(r.Drained(100));
  CHECK(r.Ack(103, 1002) == AckResult::kAcked);
  CHECK_FALSE(r.s.upgrade().has_value());
  CHECK(r.Ack(101, 1003) == AckResult::kDraining);
}

TEST_CASE("consecutive upgrades count generations up and each ends with one Upgrade done") {
  Rig r(Cfg(1, 1.0));
  r.StartReady();
  r.Upgrade(kSmooth, 5);
  r.Tick(6);
  CHECK(r.s.generation() == 2);
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 1);
  r.Upgrade(kFleet, 7);
  CHECK(r.s.upgrade()->from_generation == 2);
  CHECK(r.LastSpawn().generation == 3);
  r.Tick(8);
  CHECK(r.s.generation() == 3);
  CHECK(r.s.last_upgrade()->generation == 3);
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kDone) == 2);
  CHECK(r.fx.NotesOf(UpgradeNoteKind::kFailed) == 0);
  CHECK(r.Of(3, WorkerState::kReady).size() == 1);
  CHECK(r.Drained(100));
  CHECK(r.Drained(101));
}

TEST_CASE("an upgrade is refused while the master stops") {
  Rig r(Cfg(1, 1.0));
  r.StartReady();
  r.Stop(StopKind::kDrain, 2);
  const UpgradeStart st = r.Upgrade(kSmooth, 3);
  CHECK_FALSE(st.started);
  CHECK(st.message.find("shutting down") != std::string::npos);
  CHECK(r.fx.spawns.size() == 1);
  CHECK(r.fx.notes.empty());
}

}  // namespace
}  // namespace einhorn::core
