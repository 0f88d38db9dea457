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

TEST_CASE("render: messages print with one newline, empty ones not at all") {
  CHECK(MessageText("") == "");
  CHECK(MessageText("a") == "a\n");
  CHECK(MessageText("a\nb\n") == "a\nb\n");
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

TEST_CASE("render: an empty pool is a header only") {
  core::PoolStatus s;
  CHECK(RenderStatusTable(s) ==
        "SLOT  INDEX  PID  GEN  STATE  READY-IN  UPTIME  RESTARTS  LAST-EXIT\n");
}

TEST_CASE("render: status JSON uses the YAML's names and null for missing optionals") {
  core::PoolStatus s = test::MakeStatus(2, 1, 1);
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
  REQUIRE(j["pending"].size() == 1);
  CHECK(j["pending"][0]["slot"] == 7);
  CHECK(j["pending"][0]["respawn_in"] == 1.5);
  CHECK(j["pending"][0]["last_exit"].is_null());
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
