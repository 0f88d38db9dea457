// The lifecycle events the supervisor and the control commands emit (core/events.h), checked
// against what the fake clock and fake effects did: each decision leaves one event with the
// slot, pid, generation and cause the log line tells.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/control.h"
#include "core/supervisor.h"
#include "core/telemetry.h"
#include "fake_effects.h"

namespace einhorn::core {
namespace {

using test::FakeEffects;

Time At(double seconds) { return Seconds(seconds); }

SupervisorConfig Cfg(int n, bool manual) {
  SupervisorConfig c;
  c.target = n;
  if (manual) c.ack_mode.kind = AckMode::Kind::kManual;
  c.backoff_base = Seconds(1);
  c.jitter = 0;
  c.upgrade.max_unacked = 1;
  c.upgrade.ack_timeout = Seconds(10);
  c.signal_timeout = Seconds(5);
  return c;
}

TEST_CASE("supervisor events: spawn, ready, exit and respawn delay") {
  FakeEffects fx;
  Supervisor s(Cfg(2, true), fx);
  s.Start(At(0));  // 100, 101
  const auto spawns = fx.EventsOf(EventKind::kSpawn);
  REQUIRE(spawns.size() == 2);
  CHECK(spawns[0].pid == 100);
  CHECK(spawns[0].slot == 0);
  CHECK(spawns[0].generation == 1);
  CHECK(spawns[1].slot == 1);
  CHECK(spawns[1].mono == At(0));

  REQUIRE(s.Ack(100, At(0.25)) == AckResult::kAcked);
  const auto ready = fx.EventsOf(EventKind::kReady);
  REQUIRE(ready.size() == 1);
  CHECK(ready[0].pid == 100);
  CHECK(ready[0].seconds == doctest::Approx(0.25));

  // 101 dies before it is ready: a failure, so its slot backs off.
  s.ChildExited(101, ExitStatus{true, 9}, At(0.5));
  const auto exits = fx.EventsOf(EventKind::kExit);
  REQUIRE(exits.size() == 1);
  CHECK(exits[0].pid == 101);
  CHECK(exits[0].slot == 1);
  CHECK(exits[0].exit == ExitStatus{true, 9});
  CHECK_FALSE(exits[0].during_drain);
  CHECK(exits[0].seconds == doctest::Approx(0.5));
  const auto delays = fx.EventsOf(EventKind::kRespawnDelay);
  REQUIRE(delays.size() == 1);
  CHECK(delays[0].slot == 1);
  CHECK(delays[0].seconds == doctest::Approx(1.0));
  CHECK(delays[0].detail == "1 consecutive failure");
  s.Tick(At(1.5));
  CHECK(fx.EventsOf(EventKind::kSpawn).size() == 3);

  // Each event's line is the log line.
  CHECK(fx.logs.size() >= fx.events.size());
}

TEST_CASE("supervisor events: a drained worker's exit says so, a late one is killed") {
  FakeEffects fx;
  Supervisor s(Cfg(2, true), fx);
  s.Start(At(0));
  s.Ack(100, At(0.1));
  s.Ack(101, At(0.1));
  s.SetTarget(1, At(1));  // 101 drains
  const auto drains = fx.EventsOf(EventKind::kDrain);
  REQUIRE(drains.size() == 1);
  CHECK(drains[0].pid == 101);
  CHECK(drains[0].slot == 1);  // the slot it held
  CHECK(drains[0].detail == "the pool shrinks to 1");
  s.Tick(At(6));  // -t 5: SIGKILL
  const auto kills = fx.EventsOf(EventKind::kKill);
  REQUIRE(kills.size() == 1);
  CHECK(kills[0].pid == 101);
  s.ChildExited(101, ExitStatus{true, 9}, At(6.1));
  const auto exits = fx.EventsOf(EventKind::kExit);
  REQUIRE(exits.size() == 1);
  CHECK(exits[0].during_drain);
  CHECK(exits[0].slot == -1);
}

TEST_CASE("supervisor events: an upgrade starts, progresses and ends with its duration") {
  FakeEffects fx;
  Supervisor s(Cfg(1, true), fx);
  s.Start(At(0));
  s.Ack(100, At(0.1));
  s.Upgrade(UpgradeStrategy::kSmooth, At(10));  // 101
  const auto starts = fx.EventsOf(EventKind::kUpgradeStart);
  REQUIRE(starts.size() == 1);
  CHECK(starts[0].from == 1);
  CHECK(starts[0].to == 2);
  CHECK(starts[0].detail == "smooth");
  s.Ack(101, At(12.5));
  const auto done = fx.EventsOf(EventKind::kUpgradeDone);
  REQUIRE(done.size() == 1);
  CHECK(done[0].from == 1);
  CHECK(done[0].to == 2);
  CHECK(done[0].seconds == doctest::Approx(2.5));
  CHECK_FALSE(fx.EventsOf(EventKind::kUpgradeProgress).empty());
  CHECK(fx.EventsOf(EventKind::kUpgradeProgress).back().generation == 2);
  CHECK(fx.EventsOf(EventKind::kUpgradeRollback).empty());
  // The old worker is drained, replaced by a ready one.
  const auto drains = fx.EventsOf(EventKind::kDrain);
  REQUIRE(drains.size() == 1);
  CHECK(drains[0].pid == 100);
}

TEST_CASE("supervisor events: a failing upgrade rolls back with its reason") {
  FakeEffects fx;
  SupervisorConfig c = Cfg(1, true);
  c.upgrade.max_failures = 2;
  Supervisor s(c, fx);
  s.Start(At(0));
  s.Ack(100, At(0.1));
  s.Upgrade(UpgradeStrategy::kSmooth, At(10));  // 101
  s.ChildExited(101, ExitStatus{false, 1}, At(11));
  s.Tick(At(12));  // 102 after the backoff
  s.ChildExited(102, ExitStatus{false, 1}, At(12.5));
  const auto rolled = fx.EventsOf(EventKind::kUpgradeRollback);
  REQUIRE(rolled.size() == 1);
  CHECK(rolled[0].from == 1);
  CHECK(rolled[0].to == 2);
  CHECK(rolled[0].seconds == doctest::Approx(2.5));
  CHECK(rolled[0].detail.find("2 new workers failed") == 0);
  CHECK(fx.EventsOf(EventKind::kUpgradeDone).empty());
}

TEST_CASE("supervisor events: a spawn that fails and a stop") {
  FakeEffects fx;
  fx.fail_with = "fork: Resource temporarily unavailable";
  Supervisor s(Cfg(1, true), fx);
  s.Start(At(0));
  const auto failed = fx.EventsOf(EventKind::kSpawnFailed);
  REQUIRE(failed.size() == 1);
  CHECK(failed[0].slot == 0);
  CHECK(failed[0].detail == fx.fail_with);
  CHECK(fx.EventsOf(EventKind::kRespawnDelay).size() == 1);
  s.Stop(StopKind::kTerminate, At(1));
  const auto stops = fx.EventsOf(EventKind::kStop);
  REQUIRE(stops.size() == 1);
  CHECK(stops[0].detail == "terminate");
}

// A host that keeps what the master would: telemetry, audit lines.
struct RecordingHost : ControlLog, ControlTelemetry, ControlFacts, ControlReload {
  Telemetry telemetry_kept;
  std::vector<std::string> audits;
  std::vector<ListenerStats> listeners = {{"127.0.0.1:8080", 2, 128}};
  int Verbosity() const override { return 1; }
  void SetVerbosity(int) override {}
  void Log(LogLevel, const std::string&) override {}
  UpgradeStart Reload(std::optional<UpgradeStrategy>, Time) override {
    return {true, "Reloading, as commanded"};
  }
  void LogEventAlways(LogLevel, const std::string& message, const Event& event) override {
    audits.push_back(message);
    telemetry_kept.Record(event);
  }
  void RecordEvent(const Event& event) override { telemetry_kept.Record(event); }
  void CountCommand(const std::string& verb) override { telemetry_kept.CountCommand(verb); }
  const Telemetry* Kept() const override { return &telemetry_kept; }
  std::vector<ListenerStats> Listeners() const override { return listeners; }
  void AddProcessFacts(MetricsInput* in) const override { in->open_fds = 9; }
};

struct Pool {
  FakeEffects fx;
  RecordingHost host;
  Supervisor sup{Cfg(2, true), fx};
  Control control{sup, ControlHost::Of(host), MasterInfo{4242, "web", "1.2.3", "manual"}};
  Pool() { sup.Start(At(0)); }
  wire::Reply Ask(const std::string& request, const Peer& peer = Peer{77, 1000, 1000, {77}, {}}) {
    const ControlOutcome out = control.Handle(wire::ParseRequest(request), peer, At(1));
    REQUIRE(out.replies.size() == 1);
    return out.replies[0];
  }
};

TEST_CASE("control events: resizes and commands carry who asked") {
  Pool pool;
  pool.Ask("{\"command\": \"inc\", \"id\": 1}");
  pool.Ask("{\"command\": \"set_workers\", \"args\": [\"5\"]}");
  pool.Ask("{\"command\": \"dec\"}");
  pool.Ask("{\"command\": \"status\"}");
  pool.Ask("{\"command\": \"set_workers\", \"args\": [\"0\"]}");  // refused
  const std::vector<Event> events = pool.host.telemetry_kept.ring().Since(0);
  std::vector<std::string> seen;
  for (const Event& e : events) seen.push_back(std::string(EventKindName(e.kind)) + " " + e.detail);
  // The resize is recorded as it happens, the command's audit once it has its reply.
  CHECK(seen == std::vector<std::string>{"resize ", "control inc", "resize ",
                                         "control set_workers", "resize ", "control dec",
                                         "control set_workers refused: Invalid count: '0'. Must "
                                         "be an integer in [1,10000]."});
  CHECK(events[0].from == 2);
  CHECK(events[0].to == 3);
  CHECK(events[0].by == "uid 1000 pid 77");
  CHECK(events[1].by == "uid 1000 pid 77");
  CHECK(events[2].to == 5);
  CHECK(events[4].to == 4);
  const Counters& c = pool.host.telemetry_kept.counters();
  CHECK(c.commands.at("set_workers") == 2);
  CHECK(c.commands.at("status") == 1);  // counted, not kept in the ring
}

TEST_CASE("control events: the events verb answers what came after a sequence number") {
  Pool pool;
  pool.Ask("{\"command\": \"inc\"}");
  const wire::Reply all = pool.Ask("{\"command\": \"events\"}");
  REQUIRE_FALSE(all.error);
  const Result<EventsReply> parsed = EventsReplyFromYaml(all.message);
  REQUIRE_MESSAGE(parsed.ok(), parsed.error());
  CHECK(parsed.value().last_seq == 2);
  CHECK(parsed.value().events.size() == 2);
  const wire::Reply after = pool.Ask("{\"command\": \"events\", \"args\": [\"1\"]}");
  const Result<EventsReply> tail = EventsReplyFromYaml(after.message);
  REQUIRE(tail.ok());
  REQUIRE(tail.value().events.size() == 1);
  CHECK(tail.value().events[0].kind == EventKind::kControl);
  CHECK(tail.value().events[0].detail == "inc");
  const wire::Reply none = pool.Ask("{\"command\": \"events\", \"args\": [\"2\"]}");
  CHECK(EventsReplyFromYaml(none.message).value().events.empty());
  const wire::Reply bad = pool.Ask("{\"command\": \"events\", \"args\": [\"-1\"]}");
  CHECK(bad.error);
  CHECK(bad.message.rfind("Invalid sequence number: \"-1\"", 0) == 0);
  CHECK(pool.Ask("{\"command\": \"events\", \"args\": \"1\"}").error);
  // The queries are not in the ring (a follower polls without filling it).
  CHECK(pool.host.telemetry_kept.ring().last_seq() == 2);
  CHECK(pool.host.telemetry_kept.counters().commands.at("events") == 5);
}

TEST_CASE("control events: metrics and status show the pool and the listeners") {
  Pool pool;
  pool.sup.Ack(100, At(0.5));
  const wire::Reply m = pool.Ask("{\"command\": \"metrics\"}");
  REQUIRE_FALSE(m.error);
  CHECK(m.message.find("einhorn_workers{state=\"ready\",generation=\"1\"} 1\n") !=
        std::string::npos);
  CHECK(m.message.find("einhorn_workers{state=\"booting\",generation=\"1\"} 1\n") !=
        std::string::npos);
  CHECK(m.message.find("einhorn_workers{state=\"draining\",generation=\"1\"} 0\n") !=
        std::string::npos);
  CHECK(m.message.find("einhorn_target_workers 2\n") != std::string::npos);
  CHECK(m.message.find("process_open_fds 9\n") != std::string::npos);
  CHECK(m.message.find("einhorn_listener_accept_queue{listener=\"127.0.0.1:8080\"} 2\n") !=
        std::string::npos);
  CHECK(m.message.find("einhorn_control_commands_total{command=\"metrics\"} 1\n") !=
        std::string::npos);
  const PoolStatus st = pool.control.Status(At(1));
  REQUIRE(st.listeners.size() == 1);
  CHECK(st.listeners[0].name == "127.0.0.1:8080");
  CHECK(st.listeners[0].accept_queue == 2);
  CHECK(st.listeners[0].backlog == 128);
}

TEST_CASE("control events: refused peers and unparsable lines are counted") {
  Pool pool;
  pool.control.Refused(Peer{55, 1001, 1001, {55}, {}}, "permission", At(2));
  const ControlOutcome out =
      pool.control.Handle(wire::ParseRequest("{not yaml"), Peer{}, At(2));
  CHECK(out.replies.size() == 1);
  const Counters& c = pool.host.telemetry_kept.counters();
  CHECK(c.refused_peers[0] == 1);
  CHECK(c.commands.at("invalid") == 1);
  const Event refused = pool.host.telemetry_kept.ring().events().back();
  CHECK(refused.kind == EventKind::kControlRefused);
  CHECK(refused.by == "uid 1001 pid 55");
}

}  // namespace
}  // namespace einhorn::core
