// core/zygote: the zygotes' lifecycle decisions with a fake clock, and the protocol's messages
// (ZYGOTE-PROTOCOL v1) against hostile bytes.
#include "core/zygote.h"

#include <doctest/doctest.h>

#include "core/pool_status.h"
#include "core/supervisor.h"
#include "fake_effects.h"

namespace einhorn::core {
namespace {

Time At(double s) { return Seconds(s); }

using K = ZygoteAction::Kind;

ZygoteFacts Facts(int generation, std::set<int> live = {}, bool stopping = false) {
  ZygoteFacts f;
  f.generation = generation;
  f.live_generations = std::move(live);
  f.stopping = stopping;
  return f;
}

ZygotePolicy Policy() {
  ZygotePolicy p;
  p.load_timeout = Seconds(10);
  p.close_grace = Seconds(5);
  p.backoff_base = Seconds(1);
  p.backoff_cap = Seconds(4);
  return p;
}

// Generation 1's zygote, pid 100: started at 0, ready at 0.1.
void StartReady(ZygoteBook& b) {
  b.Decide(Facts(1), At(0));
  b.Started(100, 1, std::nullopt, At(0));
  b.Ready(100, At(0.1));
}

TEST_CASE("zygote: the current generation gets a zygote, which loads, gets ready and forks") {
  ZygoteBook b(Policy());
  auto a = b.Decide(Facts(1), At(0));
  REQUIRE(a.size() == 1);
  CHECK(a[0].kind == K::kStart);
  CHECK(a[0].generation == 1);
  CHECK_FALSE(a[0].gates);
  b.Started(100, 1, std::nullopt, At(0));
  CHECK(b.Decide(Facts(1), At(0.1)).empty());  // one zygote, loading
  CHECK(b.ReadyFor(1) == nullptr);
  CHECK(b.LiveFor(1) != nullptr);
  CHECK(b.NextDeadline() == At(10));  // its load timeout
  CHECK_FALSE(b.Ready(100, At(1)).has_value());
  REQUIRE(b.ReadyFor(1) != nullptr);
  CHECK(b.ReadyFor(1)->pid == 100);
  CHECK(b.zygotes()[0].state == ZygoteState::kReady);
  CHECK_FALSE(b.Ready(100, At(2)).has_value());  // a second ready changes nothing
  CHECK_FALSE(b.NextDeadline().has_value());
  b.CountSpawn(100);
  CHECK(b.zygotes()[0].spawns == 1);
}

TEST_CASE("zygote: one that dies is respawned after the crash-loop backoff, which grows and resets") {
  ZygoteBook b(Policy());
  b.Decide(Facts(1), At(0));
  b.Started(100, 1, std::nullopt, At(0));
  b.Ready(100, At(0.5));
  ZygoteEnd e = b.Ended(100, "signal 9", 1, At(3));
  CHECK(e.known);
  CHECK(e.respawn_at == At(4));
  CHECK(e.line.find("died: exited with signal 9; its workers keep running") != std::string::npos);
  CHECK(e.event.kind == EventKind::kZygote);
  CHECK_FALSE(e.failed_upgrade);
  CHECK(b.Decide(Facts(1, {1}), At(3.5)).empty());  // waiting for the backoff
  CHECK(b.NextDeadline() == At(4));
  auto a = b.Decide(Facts(1, {1}), At(4));
  REQUIRE(a.size() == 1);
  CHECK(a[0].kind == K::kStart);
  b.Started(101, 1, std::nullopt, At(4));
  // It fails to load: the next delay is 1.5 s, then 2.25, then capped at 4.
  e = b.Ended(101, "exit 1", 1, At(5));
  CHECK(e.line.find("failed to load") != std::string::npos);
  CHECK(e.respawn_at == At(6.5));
  b.Decide(Facts(1), At(6.5));
  b.Started(102, 1, std::nullopt, At(6.5));
  CHECK(b.Ended(102, "exit 1", 1, At(7)).respawn_at == At(9.25));
  b.Decide(Facts(1), At(9.25));
  b.Started(103, 1, std::nullopt, At(9.25));
  CHECK(b.Ended(103, "exit 1", 1, At(10)).respawn_at == At(13.375));
  b.Decide(Facts(1), At(13.375));
  b.Started(104, 1, std::nullopt, At(13.375));
  CHECK(b.Ended(104, "exit 1", 1, At(14)).respawn_at == At(18));  // the cap
  b.Decide(Facts(1), At(18));
  b.Started(105, 1, std::nullopt, At(18));
  b.Ready(105, At(18.5));  // ready resets the streak
  CHECK(b.Ended(105, "exit 0", 1, At(20)).respawn_at == At(21));
}

TEST_CASE("zygote: one that is not ready within the load timeout is killed, and its end says why") {
  ZygoteBook b(Policy());
  b.Decide(Facts(1), At(0));
  b.Started(100, 1, std::nullopt, At(0));
  CHECK(b.Decide(Facts(1), At(9.9)).empty());
  auto a = b.Decide(Facts(1), At(10));
  REQUIRE(a.size() == 1);
  CHECK(a[0].kind == K::kKill);
  CHECK(a[0].pid == 100);
  CHECK(b.Decide(Facts(1), At(11)).empty());  // killed once
  const ZygoteEnd e = b.Ended(100, "signal 9", 1, At(11));
  CHECK(e.line.find("not ready within the load timeout of 10") != std::string::npos);
  CHECK(e.line.find("(exited with signal 9)") != std::string::npos);
}

TEST_CASE("zygote: an upgrade waits for its zygote, and starts once it is ready") {
  ZygoteBook b(Policy());
  StartReady(b);
  CHECK_FALSE(b.RequestUpgrade(UpgradeStrategy::kFleet, 2, At(1)).has_value());
  CHECK(b.UpgradePending());
  auto a = b.Decide(Facts(1, {1}), At(1));
  REQUIRE(a.size() == 1);
  CHECK(a[0].kind == K::kStart);
  CHECK(a[0].generation == 2);
  CHECK(a[0].gates == UpgradeStrategy::kFleet);
  b.Started(200, 2, a[0].gates, At(1));
  CHECK(b.UpgradePending());
  CHECK(b.ReadyFor(2) == nullptr);
  // Not closed although no worker of generation 2 exists: it gates the upgrade.
  CHECK(b.Decide(Facts(1, {1}), At(2)).empty());
  CHECK(b.Ready(200, At(3)) == UpgradeStrategy::kFleet);
  CHECK_FALSE(b.UpgradePending());
  REQUIRE(b.ReadyFor(2) != nullptr);
  // The upgrade began: generation 2 is current; the old zygote stays while generation 1 has
  // workers, and is closed once it has none.
  CHECK(b.Decide(Facts(2, {1, 2}), At(4)).empty());
  a = b.Decide(Facts(2, {2}), At(5));
  REQUIRE(a.size() == 1);
  CHECK(a[0].kind == K::kClose);
  CHECK(a[0].pid == 100);
  CHECK(a[0].reason == "generation 1 has no worker left");
  CHECK(b.ReadyFor(1) == nullptr);
  // It exits: quietly, no respawn.
  const ZygoteEnd e = b.Ended(100, "exit 0", 2, At(5.2));
  CHECK(e.line.find("after it was closed") != std::string::npos);
  CHECK(e.level == LogLevel::kInfo);
  CHECK_FALSE(e.respawn_at);
}

TEST_CASE("zygote: a closed one that lingers is killed after the grace") {
  ZygoteBook b(Policy());
  StartReady(b);
  b.RequestUpgrade(UpgradeStrategy::kSmooth, 2, At(1));
  b.Decide(Facts(1), At(1));
  b.Started(200, 2, UpgradeStrategy::kSmooth, At(1));
  b.Ready(200, At(1.5));
  auto a = b.Decide(Facts(2), At(2));
  REQUIRE(a.size() == 1);
  CHECK(a[0].kind == K::kClose);
  CHECK(b.NextDeadline() == At(7));
  a = b.Decide(Facts(2), At(7));
  REQUIRE(a.size() == 1);
  CHECK(a[0].kind == K::kKill);
  CHECK(a[0].pid == 100);
}

TEST_CASE("zygote: a gating zygote that fails to load fails the upgrade, and is not respawned") {
  for (const char* how : {"error", "exit", "timeout"}) {
    INFO(how);
    ZygoteBook b(Policy());
    StartReady(b);
    b.RequestUpgrade(UpgradeStrategy::kSmooth, 2, At(1));
    b.Decide(Facts(1, {1}), At(1));
    b.Started(200, 2, UpgradeStrategy::kSmooth, At(1));
    Time end_at = At(2);
    if (std::string(how) == "error") b.Fault(200, "it failed to load: \"boom\"", At(1.5));
    if (std::string(how) == "timeout") {
      const auto a = b.Decide(Facts(1, {1}), At(11));
      REQUIRE(a.size() == 1);
      CHECK(a[0].kind == K::kKill);
      end_at = At(11);
    }
    const ZygoteEnd e = b.Ended(200, "exit 1", 1, end_at);
    CHECK(e.failed_upgrade == UpgradeStrategy::kSmooth);
    CHECK(e.why.find("the new zygote (pid 200) failed to load") != std::string::npos);
    if (std::string(how) == "error") CHECK(e.why.find("boom") != std::string::npos);
    if (std::string(how) == "timeout") CHECK(e.why.find("load timeout") != std::string::npos);
    CHECK_FALSE(e.respawn_at);
    CHECK_FALSE(b.UpgradePending());
    CHECK(b.Decide(Facts(1, {1}), end_at).empty());  // the old one serves on
    CHECK(b.ReadyFor(1) != nullptr);
  }
}

TEST_CASE("zygote: a start that fails is a failed upgrade, or a backoff for the current one") {
  ZygoteBook b(Policy());
  ZygoteEnd e = b.StartFailed(1, std::nullopt, "execve /nope: No such file", 1, At(0));
  CHECK(e.respawn_at == At(1));
  CHECK(e.line.find("could not be started: execve /nope") != std::string::npos);
  CHECK(b.Decide(Facts(1), At(0.5)).empty());
  e = b.StartFailed(2, UpgradeStrategy::kSmooth, "out of fds", 1, At(2));
  CHECK(e.failed_upgrade == UpgradeStrategy::kSmooth);
  CHECK(e.why.find("out of fds") != std::string::npos);
}

TEST_CASE("zygote: a newer upgrade supersedes the zygote loading for an earlier one") {
  ZygoteBook b(Policy());
  StartReady(b);
  b.RequestUpgrade(UpgradeStrategy::kSmooth, 2, At(1));
  b.Decide(Facts(1, {1}), At(1));
  b.Started(200, 2, UpgradeStrategy::kSmooth, At(1));
  CHECK(b.RequestUpgrade(UpgradeStrategy::kFleet, 2, At(2)) == 200);
  auto a = b.Decide(Facts(1, {1}), At(2));
  REQUIRE(a.size() == 1);
  CHECK(a[0].gates == UpgradeStrategy::kFleet);
  b.Started(201, 2, UpgradeStrategy::kFleet, At(2));
  // The superseded one's end fails nothing.
  const ZygoteEnd e = b.Ended(200, "signal 9", 1, At(2.1));
  CHECK_FALSE(e.failed_upgrade);
  CHECK_FALSE(e.respawn_at);
  CHECK(b.Ready(201, At(3)) == UpgradeStrategy::kFleet);
}

TEST_CASE("zygote: stopping closes every zygote and starts none") {
  ZygoteBook b(Policy());
  StartReady(b);
  b.RequestUpgrade(UpgradeStrategy::kSmooth, 2, At(1));
  b.Decide(Facts(1, {1}), At(1));
  b.Started(200, 2, UpgradeStrategy::kSmooth, At(1));
  const auto a = b.Decide(Facts(1, {1}, true), At(2));
  REQUIRE(a.size() == 2);
  CHECK(a[0].kind == K::kClose);
  CHECK(a[1].kind == K::kClose);
  CHECK_FALSE(b.UpgradePending());
  // A zygote that dies while stopping is not respawned.
  CHECK_FALSE(b.Ended(100, "exit 0", 1, At(2.5)).respawn_at);
  CHECK(b.Decide(Facts(1, {}, true), At(3)).empty());
}

TEST_CASE("zygote: the snapshot checks refuse what Restore could not use") {
  ZygoteBookSnapshot s;
  s.zygotes.push_back({});
  s.zygotes[0].pid = 0;
  CHECK(CheckZygotes(s).message() == "zygotes[0].pid: 0 is not a pid");
  s.zygotes[0].pid = 5;
  s.zygotes.push_back(s.zygotes[0]);
  CHECK(CheckZygotes(s).message() == "zygotes[1].pid: 5 appears twice");
  s.zygotes[1].pid = 6;
  s.zygotes[0].gates = UpgradeStrategy::kSmooth;
  s.zygotes[1].gates = UpgradeStrategy::kSmooth;
  CHECK(CheckZygotes(s).message() == "zygotes: more than one gates an upgrade");
  s.zygotes[1].gates.reset();
  CHECK(CheckZygotes(s).ok());
}

// --- messages -----------------------------------------------------------------------------

TEST_CASE("zygote messages: the four kinds, unknown keys skipped") {
  auto m = ParseZygoteMessage(R"({"ready": true})");
  REQUIRE(m.ok());
  CHECK(m.value().kind == ZygoteMessage::Kind::kReady);
  m = ParseZygoteMessage(R"( {"ready" : true, "library": {"name": "x", "v": [1, 2.5e3, null, false]}} )");
  REQUIRE(m.ok());
  CHECK(m.value().kind == ZygoteMessage::Kind::kReady);
  m = ParseZygoteMessage(R"({"error": "cannot load \"app\" \u00e9\ud83d\ude00"})");
  REQUIRE(m.ok());
  CHECK(m.value().kind == ZygoteMessage::Kind::kError);
  CHECK(m.value().error == "cannot load \"app\" \xc3\xa9\xf0\x9f\x98\x80");
  m = ParseZygoteMessage(R"({"spawned": 3, "pid": 4242})");
  REQUIRE(m.ok());
  CHECK(m.value().kind == ZygoteMessage::Kind::kSpawned);
  CHECK(m.value().id == 3);
  CHECK(m.value().pid == 4242);
  m = ParseZygoteMessage(R"({"failed": 4, "error": "EAGAIN"})");
  REQUIRE(m.ok());
  CHECK(m.value().kind == ZygoteMessage::Kind::kFailed);
  CHECK(m.value().id == 4);
  CHECK(m.value().error == "EAGAIN");
}

TEST_CASE("zygote messages: anything else is one clear line") {
  const std::pair<std::string, std::string> bad[] = {
      {"", "not a JSON object"},
      {"not json", "not a JSON object"},
      {"[1]", "not a JSON object"},
      {"{", "not a JSON object"},
      {R"({"ready": true} x)", "bytes after the JSON object"},
      {R"({"ready": true}{"ready": true})", "bytes after the JSON object"},
      {R"({"ready": 1})", "'ready' has a value of the wrong type"},
      {R"({"ready": false})", "'ready' must be true"},
      {R"({"spawned": "1", "pid": 2})", "'spawned' has a value of the wrong type"},
      {R"({"spawned": 1.5, "pid": 2})", "'spawned' has a value of the wrong type"},
      {R"({"spawned": 1, "pid": 2e3})", "'pid' has a value of the wrong type"},
      {R"({"spawned": 1, "pid": 99999999999999999999})", "'pid' has a value of the wrong type"},
      {R"({"spawned": 0, "pid": 2})", "'spawned' must be a positive request id"},
      {R"({"spawned": -3, "pid": 2})", "'spawned' must be a positive request id"},
      {R"({"spawned": 1})", "'spawned' without 'pid'"},
      {R"({"error": 5})", "'error' has a value of the wrong type"},
      {R"({"pid": 5})", "no known key (ready, error, spawned, failed)"},
      {R"({})", "no known key (ready, error, spawned, failed)"},
      {R"({"x": "\q"})", "not valid JSON"},
      {"{\"error\": \"a\x01\"}", "'error' has a value of the wrong type"},
      {std::string(40, '[') , "not a JSON object"},
      {"{\"x\": " + std::string(100, '[') + std::string(100, ']') + "}", "not valid JSON"},
      {"{\"x\": \"" + std::string(70000, 'a') + "\"}", "a message of 70009 bytes (at most 65536)"},
  };
  for (const auto& [text, why] : bad) {
    INFO(text.substr(0, 80));
    const auto m = ParseZygoteMessage(text);
    REQUIRE_FALSE(m.ok());
    CHECK(m.error() == why);
  }
  // A long error text is cut.
  const auto m = ParseZygoteMessage("{\"error\": \"" + std::string(5000, 'e') + "\"}");
  REQUIRE(m.ok());
  CHECK(m.value().error.size() == kMaxZygoteErrorText + 3);
}

TEST_CASE("zygote messages: the spawn request is JSON with the whole environment") {
  const std::string r = EncodeSpawnRequest(
      7, {"A=1", "EMPTY=", "Q=say \"hi\"\n", "NOEQUALS", "EQ=a=b"}, {"LISTEN_PID"});
  CHECK(r ==
        R"({"spawn": 7, "env": {"A": "1", "EMPTY": "", "Q": "say \"hi\"\n", "EQ": "a=b"}, )"
        R"("self_pid_vars": ["LISTEN_PID"]})");
  CHECK(EncodeSpawnRequest(1, {}, {}) == R"({"spawn": 1, "env": {}, "self_pid_vars": []})");
  // -k: the parent-death signal, by number.
  CHECK(EncodeSpawnRequest(2, {}, {}, 12) ==
        R"({"spawn": 2, "env": {}, "self_pid_vars": [], "pdeath_signal": 12})");
  // -g: where the fds after stdio go.
  CHECK(EncodeSpawnRequest(3, {}, {}, std::nullopt, {4, 5}) ==
        R"({"spawn": 3, "env": {}, "self_pid_vars": [], "fds": [4, 5]})");
}

TEST_CASE("supervisor: an upgrade that fails before it begins uses up its generation and tells the subscribers") {
  test::FakeEffects fx;
  SupervisorConfig c;
  c.target = 2;
  c.ack_mode.timer_seconds = 1;
  Supervisor s(c, fx);
  s.Start(At(0));
  const int next = s.next_generation();
  CHECK(next == 2);
  s.UpgradeFailedEarly(UpgradeStrategy::kSmooth, "the new zygote (pid 9) failed to load: exit 1",
                       At(5));
  CHECK(s.generation() == 1);
  CHECK(s.next_generation() == 3);
  REQUIRE(s.last_upgrade().has_value());
  CHECK_FALSE(s.last_upgrade()->ok);
  CHECK(s.last_upgrade()->generation == 2);
  CHECK_FALSE(s.upgrade().has_value());
  REQUIRE_FALSE(fx.notes.empty());
  CHECK(fx.notes.back().first == UpgradeNoteKind::kFailed);
  CHECK(fx.notes.back().second.find("failed to load: exit 1. Rolled back: generation 1 keeps "
                                    "serving") != std::string::npos);
  CHECK(s.workers().size() == 2);  // nothing was drained
}

}  // namespace
}  // namespace einhorn::core

namespace einhorn::core {
namespace {

TEST_CASE("zygote: status carries the zygotes, and only when there are some") {
  PoolStatus st;
  st.master_pid = 10;
  const std::string plain = PoolStatusToYaml(st);
  CHECK(plain.find("zygotes") == std::string::npos);
  st.zygotes.push_back({77, 3, "loading", 0, 1.5});
  st.zygotes.push_back({78, 2, "ready", 12, 30});
  const std::string yaml = PoolStatusToYaml(st);
  const auto back = PoolStatusFromYaml(yaml);
  REQUIRE(back.ok());
  REQUIRE(back.value().zygotes.size() == 2);
  CHECK(back.value().zygotes[0].pid == 77);
  CHECK(back.value().zygotes[0].state == "loading");
  CHECK(back.value().zygotes[1].spawns == 12);
  CHECK(back.value().zygotes[1].age == 30);
}

}  // namespace
}  // namespace einhorn::core
