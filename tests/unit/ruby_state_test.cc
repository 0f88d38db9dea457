// core/ruby_state.h: Ruby Einhorn 1.1.1's state, captured from real runs
// (tests/fixtures/einhorn-1.1.1-state-*.yaml, by tests/fixtures/capture-einhorn-state.sh as
// --reexec-as), read into einhorn-cpp's settings and adopted workers.
#include "core/ruby_state.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace einhorn::core {
namespace {

std::string Fixture(const std::string& name) {
  std::ifstream in(std::string(FIXTURES_DIR) + "/" + name);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

RubyState Parse(const std::string& text) {
  auto st = ParseRubyState(text);
  REQUIRE_MESSAGE(st.ok(), st.error());
  return st.value();
}

std::string Joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

WallNanos Wall(const char* text) { return *ParseRubyTime(text); }

TEST_CASE("ruby state: Ruby times, in every shape Time#to_yaml writes") {
  CHECK(ParseRubyTime("1970-01-01 00:00:00.000000000 +00:00") == 0);
  CHECK(ParseRubyTime("1970-01-01 00:00:01 Z") == 1'000'000'000);
  CHECK(ParseRubyTime("2026-12-06 15:01:52.449207639 +00:00") == 1796569312449207639LL);
  CHECK(ParseRubyTime("2026-12-06 16:01:52.449207639 +01:00") == 1796569312449207639LL);
  CHECK(ParseRubyTime("2026-12-06 10:01:52.449207639 -05:00") == 1796569312449207639LL);
  CHECK(ParseRubyTime("2026-12-06T15:01:52.4492076391234Z") == 1796569312449207639LL);
  CHECK(ParseRubyTime("2000-02-29 00:00:00 +0000") == 951782400LL * 1'000'000'000);
  for (const char* bad : {"", "2026-12-06", "2026-13-06 00:00:00 +00:00",
                          "2026-12-06 15:01:52.449207639", "2026-12-06 15:01:52. +00:00",
                          "2026-12-06 15:01:52 +00:00 x", "yesterday", "2026-12-06 25:00:00 Z",
                          // Outside what 64-bit nanoseconds since 1970 hold (found by fuzzing).
                          "0014-12-06 15:01:52 +00:00", "2263-01-01 00:00:00 Z",
                          "9999-12-31 23:59:59.999999999 +00:00", "1969-12-31 23:59:59 Z"}) {
    INFO(bad);
    CHECK_FALSE(ParseRubyTime(bad).has_value());
  }
}

TEST_CASE("ruby state: timer ack, a subscribed upgrade client, ACK timers, -b with r") {
  const std::string text = Fixture("einhorn-1.1.1-state-timer.yaml");
  CHECK(LooksLikeRubyState(text));
  const RubyState s = Parse(text);
  CHECK_MESSAGE(s.problems.empty(), Joined(s.problems));
  CHECK(s.options.command ==
        std::vector<std::string>{"/work/wt/reload/build/test_worker", "--serve"});
  CHECK(s.options.number == 2);
  CHECK(s.options.backlog == 100);
  CHECK(s.options.seconds == 1);
  CHECK(s.options.ack_mode.kind == AckMode::Kind::kTimer);
  CHECK(s.options.ack_mode.timer_seconds == 3.0);
  REQUIRE(s.options.binds.size() == 1);
  CHECK(s.options.binds[0].host == "127.0.0.1");
  CHECK(s.options.binds[0].port == 0);
  CHECK(s.options.binds[0].reuseaddr);
  CHECK(s.bind_fds == std::vector<int>{7});
  CHECK(s.bound_ports.size() == 1);
  CHECK(s.options.socket_path == "/tmp/rcap/s1.sock");
  CHECK(s.options.reexec_as == std::vector<std::string>{"/tmp/rcap/wrap.sh"});
  CHECK(s.reloading_for_upgrade);
  CHECK(s.smooth_upgrade);
  CHECK_FALSE(s.upgrading);
  CHECK(s.generation == 1);
  REQUIRE(s.workers.size() == 2);
  CHECK(s.workers[0].index == 0);
  CHECK(s.workers[1].index == 1);
  CHECK_FALSE(s.workers[0].acked);
  CHECK(s.workers[0].signaled.empty());
  // The second worker's spinup time is the anchor that :last_spinup aliases.
  CHECK(s.workers[1].spinup_time == Wall("2026-12-06 15:02:03.385801417 +00:00"));
  CHECK(s.state_passers.size() == 1);
  CHECK(s.command_server_fd == 8);
  REQUIRE(s.connections.size() == 1);
  CHECK(s.connections[0].fd == 9);
  REQUIRE(s.connections[0].upgrade_id.has_value());
  CHECK(s.connections[0].upgrade_id->text == "u1");
  CHECK(s.connections[0].upgrade_id->kind == wire::Id::Kind::kString);
  CHECK(s.ack_timer_starts.size() == 2);
  CHECK(s.ack_timer_starts.at(s.workers[0].pid) == Wall("2026-12-06 15:02:03.385229279 +00:00"));
}

TEST_CASE("ruby state: manual ack in the middle of an upgrade, two binds, integer request id") {
  const RubyState s = Parse(Fixture("einhorn-1.1.1-state-manual-upgrading.yaml"));
  CHECK_MESSAGE(s.problems.empty(), Joined(s.problems));
  CHECK(s.options.ack_mode.kind == AckMode::Kind::kManual);
  CHECK(s.options.binds.size() == 2);
  CHECK_FALSE(s.options.binds[1].reuseaddr);
  CHECK(s.bind_fds == std::vector<int>{7, 9});
  CHECK(s.upgrading);
  CHECK(s.version == 1);
  CHECK(s.options.pidfile == "/tmp/rcap/p2.pid");
  REQUIRE(s.workers.size() == 2);
  CHECK(s.workers[0].version == 0);
  CHECK(s.workers[1].version == 1);
  REQUIRE(s.connections.size() == 2);
  CHECK(s.connections[0].upgrade_id->text == "first");
  CHECK(s.connections[1].upgrade_id->text == "2");
  CHECK(s.connections[1].upgrade_id->kind == wire::Id::Kind::kInt);
}

TEST_CASE("ruby state: signalled workers, a half-received request, -k -t -c --drop-env-var") {
  const RubyState s = Parse(Fixture("einhorn-1.1.1-state-signaled-reload.yaml"));
  CHECK_MESSAGE(s.problems.empty(), Joined(s.problems));
  CHECK_FALSE(s.reloading_for_upgrade);
  CHECK_FALSE(s.upgrading);
  CHECK(s.options.kill_children_on_exit);
  CHECK(s.options.signal_timeout == 10);
  CHECK(s.options.command_name == "myapp");
  CHECK(s.options.drop_env_vars == std::vector<std::string>{"FOO"});
  CHECK(s.options.number == 3);
  REQUIRE(s.workers.size() == 6);
  CHECK(s.workers[0].signaled == std::set<std::string>{"USR2"});
  CHECK(s.workers[0].last_signaled_at == Wall("2026-12-06 15:02:34.317607030 +00:00"));
  CHECK(s.workers[3].signaled.empty());
  CHECK_FALSE(s.workers[3].last_signaled_at.has_value());
  REQUIRE(s.connections.size() == 2);
  CHECK(s.connections[0].read_buffer == "{\"command\":\"st");
  CHECK_FALSE(s.connections[0].upgrade_id.has_value());
}

TEST_CASE("ruby state: -q, --nice, -g, -s 2, -l, --max-unacked, --max-upgrade-additional, n") {
  const RubyState s = Parse(Fixture("einhorn-1.1.1-state-flags.yaml"));
  CHECK_MESSAGE(s.problems.empty(), Joined(s.problems));
  CHECK(s.options.verbosity == 2);
  CHECK(s.options.nice.master == 0);
  CHECK(s.options.nice.worker == 1);
  CHECK(s.options.command_socket_as_fd);
  CHECK(s.options.seconds == 2.0);
  CHECK(s.options.backlog == 50);
  CHECK(s.options.max_unacked == 3);
  CHECK(s.options.max_upgrade_additional == 2);
  CHECK(s.options.ack_mode.timer_seconds == 0.5);
  REQUIRE(s.options.binds.size() == 1);
  CHECK(s.options.binds[0].nonblock);
}

TEST_CASE("ruby state: what is unexpected is named, one line each, and the rest still reads") {
  std::string text = Fixture("einhorn-1.1.1-state-signaled-reload.yaml");
  auto replace = [&](const std::string& from, const std::string& to) {
    const size_t at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
  };
  replace("  :preloaded: false", "  :preloaded: true\n  :brand_new: 1");
  replace("  :signal_timeout: 10", "  :signal_timeout: soon");
  replace("      :acked: true\n      :signaled: !ruby/object:Set\n        hash:\n          USR2",
          "      :acked: maybe\n      :signaled: !ruby/object:Set\n        hash:\n          USR2");
  replace("- :class: Einhorn::Event::CommandServer",
          "- :class: Einhorn::Event::Mystery\n  :fd: 4\n- :class: Einhorn::Event::CommandServer");
  const RubyState s = Parse(text);
  const std::string all = Joined(s.problems);
  CHECK(s.problems.size() == 5);
  CHECK(all.find(":state: unknown key ':brand_new'; ignored") != std::string::npos);
  CHECK(all.find(":preloaded: the workers were preloaded Ruby forks") != std::string::npos);
  CHECK(all.find(":signal_timeout: 'soon' is not a number; ignored") != std::string::npos);
  CHECK(all.find(":acked: 'maybe' is not true or false; ignored") != std::string::npos);
  CHECK(all.find("unknown descriptor class 'Einhorn::Event::Mystery'") != std::string::npos);
  CHECK_FALSE(s.options.signal_timeout.has_value());
  CHECK(s.workers.size() == 6);
  CHECK(s.command_server_fd == 8);
}

TEST_CASE("ruby state: a pid listed twice is adopted once (found by fuzzing)") {
  std::string text = Fixture("einhorn-1.1.1-state-timer.yaml");
  const std::string dup =
      "    11331:\n      :type: :worker\n      :version: 3\n      :acked: true\n";
  text.insert(text.find("    11368:"), dup);
  const RubyState s = Parse(text);
  REQUIRE(s.problems.size() == 1);
  CHECK(s.problems[0] == ":children: pid 11331 is listed twice; the second is ignored");
  REQUIRE(s.workers.size() == 2);
  CHECK(s.workers[0].version == 0);
  std::set<Pid> alive = {11331, 11335};
  CHECK(CheckSnapshot(PlanRubyTakeover(s, alive, Seconds(9), 0, 1).supervisor).ok());
}

TEST_CASE("ruby state: refused only without what einhorn-cpp cannot run without") {
  CHECK_FALSE(LooksLikeRubyState("format: \"einhorn-cpp-state\"\n"));
  CHECK_FALSE(ParseRubyState("").ok());
  CHECK_FALSE(ParseRubyState("- 1\n").ok());
  CHECK(ParseRubyState("---\n:state:\n  :children: {}\n").error() ==
        "Ruby Einhorn's state has no :cmd");
  CHECK(ParseRubyState("---\n:state: [\n").error().find("is not YAML einhorn-cpp can read") !=
        std::string::npos);
  CHECK(ParseRubyState("---\n:other: 1\n").error() == "Ruby Einhorn's state has no :state map");
  // Hostile shapes: deep nesting, a huge input, a self-referencing alias.
  CHECK_FALSE(ParseRubyState(std::string(100000, '[')).ok());
  CHECK_FALSE(ParseRubyState(std::string(size_t{65} << 20, ' ')).ok());
  const auto cyclic = ParseRubyState("---\n:state: &a\n  :children: *a\n  :cmd: [x]\n");
  if (cyclic.ok()) CHECK_FALSE(cyclic.value().problems.empty());
}

TEST_CASE("ruby state: the takeover adopts live workers, drops dead ones, drains the excess") {
  const RubyState s = Parse(Fixture("einhorn-1.1.1-state-signaled-reload.yaml"));
  // Workers 12370..12372 signalled (draining), 12409, 12467, 12491 serving; 12467 is dead.
  std::set<Pid> alive;
  for (const RubyWorker& w : s.workers) alive.insert(w.pid);
  alive.erase(12467);
  const WallNanos wall = Wall("2026-12-06 15:02:40.000000000 +00:00");
  const Time now = Seconds(1000);
  const RubyTakeover t = PlanRubyTakeover(s, alive, now, wall, 7);
  CHECK(CheckSnapshot(t.supervisor).ok());
  CHECK(t.supervisor.workers.size() == 5);
  CHECK(t.drain_now.empty());
  CHECK_FALSE(t.then_upgrade.has_value());
  REQUIRE(t.supervisor.slots.size() == 3);
  int draining = 0;
  for (const Worker& w : t.supervisor.workers) {
    CHECK(w.generation == 1);
    if (w.state == WorkerState::kDraining) {
      ++draining;
      CHECK(w.slot == -1);
      REQUIRE(w.signaled_at.has_value());
      REQUIRE(w.kill_at.has_value());
      CHECK(*w.kill_at == *w.signaled_at + Seconds(10));
    }
  }
  CHECK(draining == 3);
  // 12491 and 12409 keep slots; the dead worker's slot respawns now.
  int empty = 0;
  for (const Slot& slot : t.supervisor.slots) {
    if (!slot.pid) {
      ++empty;
      CHECK(slot.respawn_at == now);
    }
  }
  CHECK(empty == 1);
  REQUIRE(t.notes.size() == 1);
  CHECK(t.notes[0].find("worker 12467 (index 4) is gone") != std::string::npos);
  // Ruby's wall-clock times become monotonic ones: 12372 was signalled 3.66 s before `wall`.
  const auto w12372 = std::find_if(t.supervisor.workers.begin(), t.supervisor.workers.end(),
                                   [](const Worker& w) { return w.pid == 12372; });
  REQUIRE(w12372 != t.supervisor.workers.end());
  CHECK(*w12372->signaled_at == now - std::chrono::nanoseconds(3660785752));
}

TEST_CASE("ruby state: an upgrade asked for or under way is finished by einhorn-cpp") {
  const RubyState timer = Parse(Fixture("einhorn-1.1.1-state-timer.yaml"));
  std::set<Pid> alive;
  for (const RubyWorker& w : timer.workers) alive.insert(w.pid);
  const WallNanos wall = Wall("2026-12-06 15:02:04.385229279 +00:00");
  RubyTakeover t = PlanRubyTakeover(timer, alive, Seconds(50), wall, 1);
  CHECK(CheckSnapshot(t.supervisor).ok());
  CHECK(t.then_upgrade == UpgradeStrategy::kSmooth);
  // Not acked yet: booting since its ACK timer started, 1 s ago.
  for (const Worker& w : t.supervisor.workers) {
    CHECK(w.state == WorkerState::kBooting);
    CHECK(w.slot >= 0);
  }
  CHECK(t.supervisor.workers[0].spawned_at == Seconds(49));

  // Mid-upgrade, 2 workers of versions 0 and 1 for -n 1: the acked newer one keeps the slot,
  // the other is drained now.
  RubyState up = Parse(Fixture("einhorn-1.1.1-state-manual-upgrading.yaml"));
  up.options.number = 1;
  up.smooth_upgrade = false;
  up.reloading_for_upgrade = false;
  alive.clear();
  for (const RubyWorker& w : up.workers) alive.insert(w.pid);
  t = PlanRubyTakeover(up, alive, Seconds(50), wall, 1);
  CHECK(CheckSnapshot(t.supervisor).ok());
  CHECK(t.then_upgrade == UpgradeStrategy::kFleet);
  CHECK(t.drain_now == std::vector<Pid>{11334});
  CHECK(t.supervisor.slots[0].pid == 11396);
}

}  // namespace
}  // namespace einhorn::core
