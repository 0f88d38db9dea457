// ctl/render.h: durations, the status summary and table, JSON.
#include "ctl/render.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "fake_master.h"

namespace einhorn::ctl {
namespace {

TEST_CASE("render: human durations") {
  CHECK(HumanDuration(0) == "0s");
  CHECK(HumanDuration(-3) == "0s");
  CHECK(HumanDuration(35.9) == "35s");
  CHECK(HumanDuration(59.99) == "59s");
  CHECK(HumanDuration(60) == "1m00s");
  CHECK(HumanDuration(723) == "12m03s");
  CHECK(HumanDuration(3599) == "59m59s");
  CHECK(HumanDuration(3600) == "1h00m");
  CHECK(HumanDuration(7500) == "2h05m");
  CHECK(HumanDuration(86400 * 3 + 3600 * 4 + 5) == "3d04h");
  CHECK(FixedSeconds(1.0, 2) == "1.00s");
  CHECK(FixedSeconds(3.44, 1) == "3.4s");
  CHECK(ShortSeconds(60) == "60s");
  CHECK(ShortSeconds(0.5) == "0.5s");
}

TEST_CASE("render: events, one line each, a dash where a field is absent") {
  core::Event e;
  e.seq = 42;
  e.wall_ns = 1'714'564'803'250'000'000;
  e.kind = core::EventKind::kUpgradeRollback;
  e.from = 1;
  e.to = 2;
  e.seconds = 4;
  e.detail = "3 new workers failed\n(last: exit 1)";
  CHECK(RenderEventsHeader() ==
        "TIME                        SEQ  EVENT            SLOT  PID      GEN  DETAIL\n");
  CHECK(RenderEvent(e) ==
        "2024-05-01T12:00:03.250Z     42  upgrade_rollback    -  -          -  generation 2 "
        "rolled back to 1 after 4.000s: 3 new workers failed (last: exit 1)\n");
  core::Event spawn;
  spawn.seq = 7;
  spawn.kind = core::EventKind::kSpawn;
  spawn.slot = 3;
  spawn.pid = 123456;
  spawn.generation = 2;
  CHECK(RenderEvent(spawn) ==
        "1970-01-01T00:00:00.000Z      7  spawn               3  123456     2  -\n");
}

TEST_CASE("render: listeners' accept queues under the summary") {
  core::PoolStatus s = test::MakeStatus(2, 2, 0);
  CHECK(RenderListeners(s).empty());
  s.listeners = {{"127.0.0.1:8080", 3, 128}, {"unix:/run/a.sock", 16, 16}, {"udp", {}, {}}};
  CHECK(RenderListeners(s) ==
        "listener 127.0.0.1:8080: accept queue 3/128\n"
        "listener unix:/run/a.sock: accept queue 16/16 (full: connections are dropped)\n"
        "listener udp: no accept queue figures\n");
  CHECK(RenderStatusSummary(s).find("listener 127.0.0.1:8080: accept queue 3/128\n") !=
        std::string::npos);
  const nlohmann::json j = nlohmann::json::parse(RenderStatusJson(s));
  CHECK(j["listeners"][0]["name"] == "127.0.0.1:8080");
  CHECK(j["listeners"][0]["accept_queue"] == 3);
  CHECK(j["listeners"][2]["backlog"].is_null());
}

TEST_CASE("render: messages print with one newline, empty ones not at all") {
  CHECK(MessageText("") == "");
  CHECK(MessageText("a") == "a\n");
  CHECK(MessageText("a\nb\n") == "a\nb\n");
}

TEST_CASE("render: signal's confirmation names the signal and the workers it reached") {
  CHECK(SignalSentText("HUP", test::MakeStatus(2, 2, 0)) ==
        "Sent SIGHUP to the 2 workers (pids 5000, 5001); the master itself was not signalled");
  CHECK(SignalSentText("USR2", test::MakeStatus(1, 1, 0)) ==
        "Sent SIGUSR2 to the 1 worker (pid 5000); the master itself was not signalled");
  CHECK(SignalSentText("TERM", test::MakeStatus(0, 0, 0)) ==
        "No worker to send SIGTERM to; the master itself was not signalled");
  CHECK(SignalSentText("HUP", std::nullopt) ==
        "Sent SIGHUP to every worker; the master itself was not signalled");
  const std::string many = SignalSentText("HUP", test::MakeStatus(12, 12, 0));
  CHECK(many.find("the 12 workers (pids 5000, ") != std::string::npos);
  CHECK(many.find("5009, ...)") != std::string::npos);
  CHECK(many.find("5010") == std::string::npos);
}

TEST_CASE("render: log-level answers in the names it accepts") {
  CHECK(LogLevelText("Verbosity set to 0", 1) == "Log level set to debug (verbosity 0, was info)");
  CHECK(LogLevelText("Verbosity set to 2\n", 0) ==
        "Log level set to error (verbosity 2, was debug)");
  // Anything else (another master's words) is shown as it came.
  CHECK(LogLevelText("Verbosity set to 7", 1) == "Verbosity set to 7");
  CHECK(LogLevelText("Verbosity set to n", 1) == "Verbosity set to n");
  CHECK(LogLevelText("whatever", 1) == "whatever");
}

TEST_CASE("render: the status summary") {
  core::PoolStatus s = test::MakeStatus(4, 4, 0);
  s.master_pid = 1234;
  CHECK(RenderStatusSummary(s) ==
        "target 4 | generation 1 | ready 4/4 | booting 0 | draining 0 (master 1234, timer 1s)\n");
  s.command_name = "web";
  s.stopping = true;
  s.ready = 3;
  s.draining = 2;
  CHECK(RenderStatusSummary(s) ==
        "target 4 | generation 1 | ready 3/4 | booting 0 | draining 2 (master 1234 web, timer 1s, "
        "stopping)\n");
}

TEST_CASE("render: large counts are never cut (5000 workers, an upgrade, multi-digit all)") {
  // Issue 14: a 64-byte buffer cut these lines to "4 old rema0 failures" and "drainin".
  core::PoolStatus s = test::MakeStatus(5000, 0, 0);
  s.master_pid = 4194304;
  s.command_name = "a-long-command-name";
  s.ack_mode = "timer 12.5s";
  s.generation = 123456;
  s.ready = 4999;
  s.booting = 10001;
  s.draining = 20002;
  core::UpgradeStatus u;
  u.strategy = "smooth";
  u.from_generation = 123455;
  u.to_generation = 123456;
  u.new_ready = 4321;
  u.old_remaining = 4444;
  u.failures = 1234;
  u.elapsed = 90061;
  s.upgrade = u;
  CHECK(RenderStatusSummary(s) ==
        "target 5000 | generation 123456 | ready 4999/5000 | booting 10001 | draining 20002 "
        "(master 4194304 a-long-command-name, timer 12.5s)\n"
        "upgrading (smooth) generation 123455 -> 123456: 4321/5000 new ready, 4444 old "
        "remaining, 1234 failures, 1d01h\n");
  // The extremes of every field still come out whole.
  s.target = s.ready = s.booting = s.draining = s.generation = 2147483647;
  const std::string big = RenderStatusSummary(s);
  CHECK(big.rfind("target 2147483647 | generation 2147483647 | ready 2147483647/2147483647 | "
                  "booting 2147483647 | draining 2147483647 (master 4194304",
                  0) == 0);
  CHECK(HumanDuration(1e15) == "11574074074d01h");
  CHECK(FixedSeconds(123456789.125, 3) == "123456789.125s");
  CHECK(FixedSeconds(1e300, 1).size() > 300);
  // An event with a sequence number and pid wider than their columns widens the line.
  core::Event e;
  e.seq = 123456789012ULL;
  e.kind = core::EventKind::kSpawn;
  e.slot = 123456;
  e.pid = 2147483647;
  e.generation = 123456;
  CHECK(RenderEvent(e) ==
        "1970-01-01T00:00:00.000Z 123456789012  spawn            123456  2147483647 123456  -\n");
}

TEST_CASE("render: the status table, with pending slots after the live workers") {
  core::PoolStatus s;
  s.target = 3;
  core::WorkerStatus a;
  a.slot = 0;
  a.index = 0;
  a.pid = 101;
  a.state = "ready";
  a.time_to_ready = 1.0;
  a.uptime = 35.2;
  core::WorkerStatus b;
  b.slot = 1;
  b.index = 12;
  b.pid = 102345;
  b.generation = 2;
  b.state = "booting";
  b.uptime = 723;
  b.restarts = 4;
  b.last_exit = "signal 9";
  s.workers = {a, b};
  core::PendingSlot p;
  p.slot = 2;
  p.respawn_in = 3.44;
  p.consecutive_failures = 3;
  p.restarts = 5;
  p.last_exit = "exit 1";
  s.pending = {p};
  const std::string expected =
      "SLOT  INDEX  PID     GEN  STATE    READY-IN  UPTIME  RESTARTS  LAST-EXIT\n"
      "0     0      101     1    ready    1.00s     35s     0         -\n"
      "1     12     102345  2    booting  -         12m03s  4         signal 9\n"
      "2     -      -       -    respawning in 3.4s (3 failures), 5 restarts, last exit exit 1\n";
  CHECK(RenderStatusTable(s) == expected);
  CHECK(RenderStatus(s) == RenderStatusSummary(s) + expected);
}

TEST_CASE("render: the status table shows how long draining workers have drained") {
  core::PoolStatus s;
  s.target = 1;
  core::WorkerStatus a;
  a.pid = 101;
  a.state = "ready";
  a.time_to_ready = 1.0;
  a.uptime = 35.2;
  core::WorkerStatus b;
  b.slot = -1;
  b.index = 1;
  b.pid = 102;
  b.state = "draining";
  b.uptime = 723;
  b.draining_for = 75.5;
  s.workers = {a, b};
  CHECK(RenderStatusTable(s) ==
        "SLOT  INDEX  PID  GEN  STATE     READY-IN  UPTIME  RESTARTS  LAST-EXIT  DRAINING\n"
        "0     0      101  1    ready     1.00s     35s     0         -          -\n"
        "-1    1      102  1    draining  -         12m03s  0         -          1m15s\n");
  // Before STATUS, which stays last.
  s.workers[0].notify_status = "serving";
  const std::string table = RenderStatusTable(s);
  CHECK(table.find("LAST-EXIT  DRAINING  STATUS\n") != std::string::npos);
  CHECK(table.find("1m15s     -\n") != std::string::npos);
}

TEST_CASE("render: an empty pool is a header only") {
  core::PoolStatus s;
  CHECK(RenderStatusTable(s) ==
        "SLOT  INDEX  PID  GEN  STATE  READY-IN  UPTIME  RESTARTS  LAST-EXIT\n");
}

TEST_CASE("render: status JSON uses the YAML's names and null for missing optionals") {
  core::PoolStatus s = test::MakeStatus(2, 1, 1);
  REQUIRE(s.workers.size() == 2);
  s.workers[0].pinged_ago = 2.5;
  s.workers[0].pinged_request_id = "req-1";
  core::PendingSlot p;
  p.slot = 7;
  p.respawn_in = 1.5;
  s.pending = {p};
  const nlohmann::json j = nlohmann::json::parse(RenderStatusJson(s));
  CHECK(j["master_pid"] == 4242);
  CHECK(j["target"] == 2);
  CHECK(j["ack_mode"] == "timer 1s");
  CHECK(j["stopping"] == false);
  CHECK(j["counts"]["ready"] == 1);
  CHECK(j["counts"]["booting"] == 1);
  CHECK(j["counts"]["draining"] == 0);
  REQUIRE(j["workers"].size() == 2);
  CHECK(j["workers"][0]["pid"] == 5000);
  CHECK(j["workers"][0]["time_to_ready"] == 1.0);
  CHECK(j["workers"][1]["state"] == "booting");
  CHECK(j["workers"][1]["time_to_ready"].is_null());
  CHECK(j["workers"][1]["last_exit"].is_null());
  CHECK(j["workers"][0]["pinged_ago"] == 2.5);
  CHECK(j["workers"][0]["pinged_request_id"] == "req-1");
  CHECK(j["workers"][1]["pinged_ago"].is_null());
  CHECK(j["workers"][1]["pinged_request_id"].is_null());
  CHECK(j["workers"][0]["draining_for"].is_null());
  s.workers[1].draining_for = 3.25;
  CHECK(nlohmann::json::parse(RenderStatusJson(s))["workers"][1]["draining_for"] == 3.25);
  REQUIRE(j["pending"].size() == 1);
  CHECK(j["pending"][0]["slot"] == 7);
  CHECK(j["pending"][0]["respawn_in"] == 1.5);
  CHECK(j["pending"][0]["last_exit"].is_null());
}

TEST_CASE("render: a reload under way and the reload counters, in text and JSON") {
  core::PoolStatus s = test::MakeStatus(1, 1, 0);
  s.reloads = 2;
  s.reload_failures = 1;
  s.reloading = true;
  s.last_reload_error = "the upgrade check of /x failed (exit 1)";
  const std::string text = RenderStatus(s);
  CHECK(text.find("\nreloading the master: checking the new binary\n") != std::string::npos);
  CHECK(text.find("\nlast master reload failed: the upgrade check of /x failed (exit 1)\n") !=
        std::string::npos);
  const nlohmann::json j = nlohmann::json::parse(RenderStatusJson(s));
  CHECK(j["reloads"] == 2);
  CHECK(j["reload_failures"] == 1);
  CHECK(j["reloading"] == true);
  CHECK(j["last_reload_error"] == "the upgrade check of /x failed (exit 1)");
}

TEST_CASE("render: messages JSON survives bytes that are not UTF-8") {
  const nlohmann::json j =
      nlohmann::json::parse(RenderMessagesJson({"ok", std::string("bad \xff byte")}, true));
  CHECK(j["error"] == true);
  REQUIRE(j["messages"].size() == 2);
  CHECK(j["messages"][0] == "ok");
  CHECK(j["messages"][1].get<std::string>().find("bad ") == 0);
}

}  // namespace
}  // namespace einhorn::ctl
