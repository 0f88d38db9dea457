// core/control.h: every verb of the command socket, driven through the real request parser
// (wire::ParseRequest) against a Supervisor with fake effects and a fake ControlHost. Reply
// texts are Einhorn's (EINHORN-CONTRACT.md section 3.4/3.5) except where einhorn-cpp documents
// its own behaviour (refusals while stopping, `error: true`, the worker:ack peer rules).
#include "core/control.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/pool_status.h"
#include "core/wire.h"
#include "fake_effects.h"

namespace einhorn::core {
namespace {

using test::FakeEffects;

Time At(double seconds) { return Seconds(seconds); }

struct FakeHost : ControlLog, ControlTelemetry, ControlFacts, ControlReload {
  int verbosity = 1;
  int set_calls = 0;
  std::vector<std::pair<LogLevel, std::string>> logs;

  int Verbosity() const override { return verbosity; }
  void SetVerbosity(int v) override {
    verbosity = v;
    ++set_calls;
  }
  void Log(LogLevel level, const std::string& message) override {
    logs.emplace_back(level, message);
  }

  // A re-exec that succeeds at once: the new image starts the upgrade, if any.
  UpgradeStart Reload(std::optional<UpgradeStrategy> then_upgrade, Time now) override {
    reloads.push_back(then_upgrade);
    if (!refuse_reload.empty()) return {false, refuse_reload};
    if (then_upgrade) return sup->Upgrade(*then_upgrade, now);
    return {true, "Reloading, as commanded"};
  }
  std::optional<std::int64_t> WallClockNs() const override { return wall_ns; }
  EinhornStateFacts EinhornFacts() const override {
    EinhornStateFacts f;
    f.wall_offset_ns = wall_ns.value_or(0);
    return f;
  }
  std::optional<std::int64_t> wall_ns;
  const MemoryWatch::Seen* WorkerMemory(Pid pid) const override {
    auto it = memory.find(pid);
    return it == memory.end() ? nullptr : &it->second;
  }
  std::map<Pid, MemoryWatch::Seen> memory;

  Supervisor* sup = nullptr;
  std::vector<std::optional<UpgradeStrategy>> reloads;
  std::string refuse_reload;

  // True if some line at `level` contains `needle`.
  bool Logged(LogLevel level, const std::string& needle) const {
    return std::any_of(logs.begin(), logs.end(), [&](const auto& l) {
      return l.first == level && l.second.find(needle) != std::string::npos;
    });
  }
};

constexpr Pid kMasterPid = 4242;

SupervisorConfig Config(int n, bool manual) {
  SupervisorConfig c;
  c.target = n;
  if (manual) c.ack_mode.kind = AckMode::Kind::kManual;
  c.jitter = 0;
  return c;
}

// A started pool: workers 100, 101, ... in slots 0, 1, ...
struct Pool {
  explicit Pool(int n, bool manual = true, SupervisorConfig config = {})
      : sup(Adjust(config, n, manual), fx),
        control(sup, ControlHost::Of(host),
                MasterInfo{kMasterPid, "web", "1.2.3", manual ? "manual" : "timer 1s"}) {
    host.sup = &sup;
    sup.Start(At(0));
  }
  static SupervisorConfig Adjust(SupervisorConfig c, int n, bool manual) {
    const SupervisorConfig base = Config(n, manual);
    c.target = base.target;
    c.ack_mode = base.ack_mode;
    c.jitter = 0;
    return c;
  }

  FakeEffects fx;
  FakeHost host;
  Supervisor sup;
  Control control;
};

// An operator's einhornctl/einhornsh session: not related to any worker.
Peer Operator() {
  Peer p;
  p.pid = 4000;
  p.uid = 1000;
  p.gid = 1000;
  p.lineage = {4000, 3999, 2};
  return p;
}

// A process whose lineage is `chain` (itself first).
Peer ProcessPeer(std::vector<Pid> chain) {
  Peer p;
  p.pid = chain.front();
  p.uid = 1000;
  p.gid = 1000;
  p.lineage = std::move(chain);
  return p;
}

// A worker's private -g channel.
Peer Channel(Pid worker) {
  Peer p;
  p.pid = worker;
  p.uid = 1000;
  p.bound_worker = worker;
  return p;
}

ControlOutcome Send(Pool& pool, std::string_view document, const Peer& peer = Operator(),
                    double now = 10) {
  return pool.control.Handle(wire::ParseRequest(document), peer, At(now));
}

// The one reply of a verb that keeps the connection open.
wire::Reply One(const ControlOutcome& out) {
  REQUIRE(out.replies.size() == 1);
  CHECK_FALSE(out.close);
  return out.replies[0];
}

wire::Reply Ask(Pool& pool, std::string_view document, const Peer& peer = Operator(),
                double now = 10) {
  INFO(std::string(document));
  return One(Send(pool, document, peer, now));
}

const char kHelpHeader[] =
    "You are speaking to the Einhorn command socket. You can run the following commands:\n\n";

std::vector<std::string> Lines(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    const size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) {
      out.emplace_back(text.substr(start));
      break;
    }
    out.emplace_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

// ------------------------------------------------------------------------------------------
// Framing of requests: unparsable, missing command, request_id echo.

TEST_CASE("control: an unparsable request gets Could not parse command without request_id") {
  Pool pool(1);
  for (std::string_view doc : {"not: valid: yaml: [", "[1, 2]", "", "just a string"}) {
    INFO(std::string(doc));
    const ControlOutcome out = Send(pool, doc);
    const wire::Reply r = One(out);
    CHECK(r.message == "Could not parse command");
    CHECK(r.error);
    CHECK_FALSE(r.request_id.has_value());
    CHECK_FALSE(r.wait);
  }
  // The reason goes to the debug log, with who sent it.
  CHECK(pool.host.Logged(LogLevel::kDebug, "control: unparsable request from uid 1000 pid 4000"));
  CHECK(pool.sup.target() == 1);
}

TEST_CASE("control: a mapping without command is answered and its id echoed") {
  Pool pool(1);
  const std::string kText = "No \"command\" parameter provided; not sure what you want me to do.";
  wire::Reply r = Ask(pool, R"({"id": 3, "user": "x"})");
  CHECK(r.message == kText);
  CHECK(r.error);
  REQUIRE(r.request_id.has_value());
  CHECK(r.request_id->kind == wire::Id::Kind::kInt);
  CHECK(r.request_id->text == "3");

  r = Ask(pool, "command: ~\nid: abc\n");  // a null command is no command, as in Ruby
  CHECK(r.message == kText);
  REQUIRE(r.request_id.has_value());
  CHECK(r.request_id->kind == wire::Id::Kind::kString);
  CHECK(r.request_id->text == "abc");

  r = Ask(pool, "{}");  // old-style: no id, no request_id
  CHECK(r.message == kText);
  CHECK_FALSE(r.request_id.has_value());
}

TEST_CASE("control: request ids are echoed with their type on every kind of reply") {
  Pool pool(2);
  wire::Reply r = Ask(pool, R"({"id": 7, "command": "inc"})");
  REQUIRE(r.request_id.has_value());
  CHECK(r.request_id->kind == wire::Id::Kind::kInt);
  CHECK(r.request_id->text == "7");

  r = Ask(pool, R"({"id": "seven", "command": "help"})");
  REQUIRE(r.request_id.has_value());
  CHECK(r.request_id->kind == wire::Id::Kind::kString);
  CHECK(r.request_id->text == "seven");

  r = Ask(pool, "{id: 1.5, command: bogus}");  // errors too
  REQUIRE(r.request_id.has_value());
  CHECK(r.request_id->kind == wire::Id::Kind::kFloat);
  CHECK(r.request_id->text == "1.5");
  CHECK(r.error);

  r = Ask(pool, "{id: false, command: help}");  // false is no id to Ruby
  CHECK_FALSE(r.request_id.has_value());
  r = Ask(pool, "{command: help}");
  CHECK_FALSE(r.request_id.has_value());
  CHECK_FALSE(r.wait);
}

// ------------------------------------------------------------------------------------------
// ehlo, help, unknown verbs

TEST_CASE("control: ehlo greets the user with the master pid and command name") {
  Pool pool(1);
  wire::Reply r = Ask(pool, R"({"command": "ehlo", "user": "tester"})");
  CHECK_FALSE(r.error);
  const std::vector<std::string> lines = Lines(r.message);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "Welcome, tester! You are speaking to Einhorn Master Process 4242 (web).");
  CHECK(lines[1].find("1.2.3") != std::string::npos);  // our version on the second line
  CHECK(r.message.back() == '\n');                     // two lines, trailing newline

  // Without `user` the name is empty, as in Einhorn; without -c there are no parentheses.
  FakeEffects fx;
  FakeHost host;
  Supervisor sup(Config(1, false), fx);
  Control bare(sup, ControlHost::Of(host), MasterInfo{77, "", "9.9", "timer 1s"});
  const ControlOutcome out = bare.Handle(wire::ParseRequest("command: ehlo"), Operator(), At(0));
  REQUIRE(out.replies.size() == 1);
  CHECK(Lines(out.replies[0].message)[0] ==
        "Welcome, ! You are speaking to Einhorn Master Process 77.");
}

TEST_CASE("control: help lists the described verbs sorted in the Einhorn format") {
  const std::string help = Control::HelpText();
  REQUIRE(help.rfind(kHelpHeader, 0) == 0);
  REQUIRE(help.size() > sizeof kHelpHeader);
  CHECK(help.back() == '\n');
  CHECK(help.substr(help.size() - 2) != "\n\n");
  std::vector<std::string> names;
  for (const std::string& line : Lines(std::string_view(help).substr(sizeof kHelpHeader - 1))) {
    const size_t colon = line.find(": ");
    REQUIRE_MESSAGE(colon != std::string::npos, line);
    CHECK_MESSAGE(line.size() > colon + 2, line);  // a description follows
    names.push_back(line.substr(0, colon));
  }
  // Einhorn's thirteen (contract 3.5) plus our `status`, `events` and `metrics`; ehlo and
  // worker:* are not listed.
  const std::vector<std::string> expected = {
      "config", "dec",     "die",    "events",      "help",   "inc",
      "louder", "metrics", "quieter", "recycle", "reload", "set_workers", "signal",
      "state",  "status",  "upgrade", "upgrade_fleet"};
  CHECK(names == expected);

  Pool pool(1);
  const wire::Reply r = Ask(pool, "command: help");
  CHECK(r.message == help);
  CHECK_FALSE(r.error);
}

TEST_CASE("control: an unknown verb is refused with its quoted name and the verb list") {
  Pool pool(2);
  const wire::Reply r = Ask(pool, R"({"command": "bogus", "id": 1})");
  CHECK(r.error);
  REQUIRE(r.message.rfind("Unrecognized command: \"bogus\"\n\n", 0) == 0);
  // Every described verb is listed, one per line, and the text ends with one newline.
  const std::string help = Control::HelpText();
  const std::string listing = help.substr(sizeof kHelpHeader - 1);
  CHECK(r.message.size() >= listing.size());
  CHECK(r.message.substr(r.message.size() - listing.size()) == listing);
  // And nothing else: Einhorn puts no preamble between the name and the list.
  CHECK(r.message == "Unrecognized command: \"bogus\"\n\n" + listing);
  // Case matters: Einhorn has no INC.
  CHECK(Ask(pool, "command: INC").message.rfind("Unrecognized command: \"INC\"", 0) == 0);
  CHECK(pool.sup.target() == 2);
  CHECK(pool.fx.kills.empty());
}

// ------------------------------------------------------------------------------------------
// state / status

TEST_CASE("control: status reports the pool from the supervisor and the host") {
  Pool pool(3);
  pool.host.verbosity = 0;
  Supervisor& s = pool.sup;
  s.ChildExited(100, ExitStatus{false, 1}, At(0.5));  // slot 0 fails, respawns at 1.5
  s.Tick(At(1.5));                                    // 103 in slot 0
  REQUIRE(s.slots()[0].pid == 103);
  s.ChildExited(101, ExitStatus{true, 9}, At(1.6));  // slot 1 pending until 2.6
  REQUIRE(s.Ack(103, At(1.8)) == AckResult::kAcked);

  const PoolStatus st = pool.control.Status(At(2.1));
  CHECK(st.master_pid == kMasterPid);
  CHECK(st.version == "1.2.3");
  CHECK(st.command_name == "web");
  CHECK(st.ack_mode == "manual");
  CHECK(st.target == 3);
  CHECK(st.generation == 1);
  CHECK(st.verbosity == 0);
  CHECK_FALSE(st.stopping);
  CHECK(st.booting == 1);
  CHECK(st.ready == 1);
  CHECK(st.draining == 0);
  CHECK_FALSE(st.upgrade.has_value());
  CHECK_FALSE(st.last_upgrade.has_value());

  // By slot: 102 has a lower pid than 103 but sits in a higher slot.
  REQUIRE(st.workers.size() == 2);
  const WorkerStatus& a = st.workers[0];
  CHECK(a.pid == 103);
  CHECK(a.slot == 0);
  CHECK(a.index == 0);
  CHECK(a.generation == 1);
  CHECK(a.state == "ready");
  REQUIRE(a.time_to_ready.has_value());
  CHECK(*a.time_to_ready == doctest::Approx(0.3));
  CHECK(a.uptime == doctest::Approx(0.6));
  CHECK(a.restarts == 1);
  CHECK(a.last_exit == "exit 1");
  const WorkerStatus& b = st.workers[1];
  CHECK(b.pid == 102);
  CHECK(b.slot == 2);
  CHECK(b.index == 2);
  CHECK(b.state == "booting");
  CHECK_FALSE(b.time_to_ready.has_value());
  CHECK(b.uptime == doctest::Approx(2.1));
  CHECK(b.restarts == 0);
  CHECK_FALSE(b.last_exit.has_value());

  REQUIRE(st.pending.size() == 1);
  CHECK(st.pending[0].slot == 1);
  CHECK(st.pending[0].respawn_in == doctest::Approx(0.5));
  CHECK(st.pending[0].consecutive_failures == 1);
  CHECK(st.pending[0].restarts == 0);
  CHECK(st.pending[0].last_exit == "signal 9");

  // An overdue respawn (the shell has not ticked yet) is due now, never negative.
  const PoolStatus late = pool.control.Status(At(5));
  REQUIRE(late.pending.size() == 1);
  CHECK(late.pending[0].respawn_in == 0.0);
}

TEST_CASE("control: status replies with the status YAML") {
  Pool pool(2);
  pool.sup.Ack(101, At(1));
  const wire::Reply r = Ask(pool, "{command: status, id: 2}", Operator(), 4);
  CHECK_FALSE(r.error);
  CHECK(r.message == PoolStatusToYaml(pool.control.Status(At(4))));
  const Result<PoolStatus> back = PoolStatusFromYaml(r.message);
  REQUIRE_MESSAGE(back.ok(), back.error());
  CHECK(back.value().target == 2);
  CHECK(back.value().booting == 1);
  CHECK(back.value().ready == 1);
  CHECK(back.value().master_pid == kMasterPid);
  // Stopping shows.
  Ask(pool, R"({"command": "die", "args": []})");
  CHECK(pool.control.Status(At(11)).stopping);
  CHECK(pool.control.Status(At(11)).draining == 2);
}

TEST_CASE("control: status shows how long each draining worker has drained") {
  Pool pool(3);
  pool.sup.Ack(100, At(1));
  pool.sup.Ack(101, At(1));
  pool.sup.Ack(102, At(1));
  pool.sup.SetTarget(2, At(2));  // 102 drains from 2
  pool.sup.Stop(StopKind::kDrain, At(4));
  pool.sup.Stop(StopKind::kDrain, At(5));  // SIGTERM: the drain began at 4 all the same
  const PoolStatus st = pool.control.Status(At(6.5));
  REQUIRE(st.workers.size() == 3);
  for (const WorkerStatus& w : st.workers) {
    INFO(w.pid);
    REQUIRE(w.draining_for.has_value());
    CHECK(*w.draining_for == doctest::Approx(w.pid == 102 ? 4.5 : 2.5));
  }
  CHECK(pool.control.Status(At(9)).workers[0].draining_for == doctest::Approx(5));
  // In the reply too; the `state` verb (Einhorn's document) is unchanged by it.
  CHECK(PoolStatusToYaml(st).find("draining_for: 2.5}") != std::string::npos);
}

TEST_CASE("control: status and the metrics show each sampled worker's memory") {
  Pool pool(2);
  pool.host.memory[100] = MemoryWatch::Seen{52428800, 2, At(3)};
  const PoolStatus st = pool.control.Status(At(4.5));
  REQUIRE(st.workers.size() == 2);
  REQUIRE(st.workers[0].memory_bytes.has_value());
  CHECK(*st.workers[0].memory_bytes == 52428800);
  CHECK(*st.workers[0].memory_sampled_ago == doctest::Approx(1.5));
  CHECK_FALSE(st.workers[1].memory_bytes.has_value());
  CHECK(PoolStatusToYaml(st).find("memory_bytes: 52428800, memory_sampled_ago: 1.5}") !=
        std::string::npos);
  const std::string metrics = pool.control.MetricsText();
  CHECK(metrics.find("# TYPE einhorn_worker_memory_bytes gauge\n"
                     "einhorn_worker_memory_bytes{slot=\"0\"} 52428800\n") != std::string::npos);
  CHECK(metrics.find("slot=\"1\"") == std::string::npos);
}

TEST_CASE("control: a worker that is not draining has no draining_for") {
  Pool pool(1);
  const PoolStatus st = pool.control.Status(At(1));
  REQUIRE(st.workers.size() == 1);
  CHECK_FALSE(st.workers[0].draining_for.has_value());
}

// `state` answers as Einhorn: Ruby's YAML.dump({:state => State}) (einhorn_state_test.cc has
// the document itself); before this it answered with the status YAML.
TEST_CASE("control: state replies with Einhorn's state document, following inc") {
  Pool pool(2);
  pool.sup.Ack(101, At(1));
  wire::Reply r = Ask(pool, "{command: state, id: 2}", Operator(), 4);
  CHECK_FALSE(r.error);
  CHECK(r.message == pool.control.EinhornState());
  CHECK(r.message.rfind("---\n:state:\n  :children:\n    100:\n      :type: :worker\n", 0) == 0);
  CHECK(r.message.find("\n    101:\n      :type: :worker\n      :version: 0\n"
                       "      :acked: true\n") != std::string::npos);
  CHECK(r.message.find("  :config:\n    :number: 2\n") != std::string::npos);
  Ask(pool, "{command: inc}", Operator(), 5);
  pool.sup.Tick(At(5));  // the shell starts the new slot's worker
  r = Ask(pool, "{command: state}", Operator(), 6);
  CHECK(r.message.find("  :config:\n    :number: 3\n") != std::string::npos);
  CHECK(r.message.find("\n    102:\n      :type: :worker\n") != std::string::npos);
  // einhorn-cpp's own document is still `status`.
  CHECK(r.message.find("master_pid") == std::string::npos);
}

// ------------------------------------------------------------------------------------------
// inc / dec / set_workers

TEST_CASE("control: inc adds a worker at once and says so") {
  Pool pool(2);
  const wire::Reply r = Ask(pool, "command: inc");
  CHECK(r.message == "Incrementing number of workers from 2 -> 3");
  CHECK_FALSE(r.error);
  CHECK(pool.sup.target() == 3);
  // The reply does not wait for fork and exec: the next tick, due at once, starts the worker.
  CHECK(pool.fx.spawns.size() == 2);
  REQUIRE(pool.sup.NextDeadline().has_value());
  pool.sup.Tick(*pool.sup.NextDeadline());
  CHECK(pool.fx.spawns.size() == 3);
  CHECK(pool.host.Logged(LogLevel::kInfo,
                         "control: inc from uid 1000 pid 4000: Incrementing "
                         "number of workers from 2 -> 3"));
  // args are ignored by inc, as in Einhorn.
  CHECK(Ask(pool, R"({"command": "inc", "args": ["9"]})").message ==
        "Incrementing number of workers from 3 -> 4");
}

TEST_CASE("control: inc stops at the maximum") {
  FakeEffects fx;
  FakeHost host;
  Supervisor sup(Config(kMaxWorkers, false), fx);  // not started: only the target matters
  Control control(sup, ControlHost::Of(host), MasterInfo{1, "", "v", "timer 1s"});
  const wire::Reply r = control.Increment("SIGTTIN", At(0));
  CHECK(r.error);
  CHECK(r.message == "Can't increase the number of workers (already at the maximum of 10000)");
  CHECK(sup.target() == kMaxWorkers);
  CHECK(host.Logged(LogLevel::kWarn, "control: inc from SIGTTIN: Can't increase"));

  Supervisor below(Config(kMaxWorkers - 1, false), fx);
  Control c2(below, ControlHost::Of(host), MasterInfo{1, "", "v", "timer 1s"});
  CHECK(c2.Increment("SIGTTIN", At(0)).message ==
        "Incrementing number of workers from 9999 -> 10000");
  CHECK(below.target() == kMaxWorkers);
}

TEST_CASE("control: dec drains a worker and refuses to go below one") {
  Pool pool(2);
  wire::Reply r = Ask(pool, "command: dec");
  CHECK(r.message == "Decrementing number of workers from 2 -> 1");
  CHECK_FALSE(r.error);
  CHECK(pool.sup.target() == 1);
  REQUIRE(pool.fx.kills.size() == 1);
  CHECK(pool.fx.kills[0].pid == 101);
  CHECK(pool.fx.kills[0].signal == Signal::kUsr2);

  r = Ask(pool, "command: dec");
  CHECK(r.message ==
        "Can't decrease number of workers (already at 1).  Run kill 4242 if you really want to "
        "kill einhorn.");
  CHECK(r.error);
  CHECK(pool.sup.target() == 1);
  CHECK(pool.fx.kills.size() == 1);
  CHECK(pool.host.Logged(LogLevel::kWarn, "control: dec from uid 1000 pid 4000: Can't decrease"));
}

TEST_CASE("control: Increment and Decrement name their requester in the log") {
  Pool pool(2);
  CHECK(pool.control.Decrement("SIGTTOU", At(1)).message ==
        "Decrementing number of workers from 2 -> 1");
  CHECK(pool.host.Logged(LogLevel::kInfo, "control: dec from SIGTTOU: Decrementing"));
  CHECK(pool.control.Increment("SIGTTIN", At(2)).message ==
        "Incrementing number of workers from 1 -> 2");
  CHECK(pool.host.Logged(LogLevel::kInfo, "control: inc from SIGTTIN: Incrementing"));
}

TEST_CASE("control: resizing is refused while the master shuts down") {
  Pool pool(3);
  pool.sup.Stop(StopKind::kDrain, At(1));
  const size_t spawns = pool.fx.spawns.size();
  wire::Reply r = Ask(pool, "command: inc");
  CHECK(r.error);
  CHECK(r.message == "Can't increase the number of workers: einhorn-cpp is shutting down");
  r = Ask(pool, "command: dec");
  CHECK(r.error);
  CHECK(r.message == "Can't decrease the number of workers: einhorn-cpp is shutting down");
  r = Ask(pool, R"({"command": "set_workers", "args": ["5"]})");
  CHECK(r.error);
  CHECK(r.message == "Can't change the number of workers: einhorn-cpp is shutting down");
  // Even a no-op set_workers says so, rather than the empty success.
  r = Ask(pool, R"({"command": "set_workers", "args": ["3"]})");
  CHECK(r.error);
  CHECK(pool.sup.target() == 3);
  CHECK(pool.fx.spawns.size() == spawns);
}

TEST_CASE("control: set_workers grows and shrinks with the Einhorn texts") {
  Pool pool(2);
  wire::Reply r = Ask(pool, R"({"command": "set_workers", "args": ["4"]})");
  CHECK(r.message == "Altering worker count, 2 -> 4. Will spin up additional workers.");
  CHECK_FALSE(r.error);
  CHECK(pool.sup.target() == 4);
  // Started by the next tick, once the reply is on its way.
  CHECK(pool.fx.spawns.size() == 2);
  pool.sup.Tick(pool.sup.NextDeadline().value());
  CHECK(pool.fx.spawns.size() == 4);

  r = Ask(pool, "command: set_workers\nargs:\n- '1'\n");  // einhornsh's block sequence
  CHECK(r.message == "Altering worker count, 4 -> 1. Will gracefully terminate workers.");
  CHECK(pool.sup.target() == 1);
  CHECK(pool.fx.kills.size() == 3);

  // The same count: an empty message, nothing happens (Einhorn's Command.set_workers).
  r = Ask(pool, R"({"command": "set_workers", "args": ["1"], "id": 4})");
  CHECK(r.message.empty());
  CHECK_FALSE(r.error);
  CHECK(pool.fx.kills.size() == 3);
  CHECK(pool.fx.spawns.size() == 4);

  // Only the first argument counts.
  r = Ask(pool, R"({"command": "set_workers", "args": ["2", "junk"]})");
  CHECK(r.message == "Altering worker count, 1 -> 2. Will spin up additional workers.");
  CHECK(pool.host.Logged(LogLevel::kInfo, "control: set_workers from uid 1000 pid 4000: Altering"));
}

TEST_CASE("control: set_workers accepts 1 to the maximum and refuses other counts") {
  Pool pool(2);
  CHECK(Ask(pool, R"({"command": "set_workers", "args": ["1"]})").message ==
        "Altering worker count, 2 -> 1. Will gracefully terminate workers.");
  CHECK(Ask(pool, R"({"command": "set_workers", "args": ["10000"]})").message ==
        "Altering worker count, 1 -> 10000. Will spin up additional workers.");
  CHECK(pool.sup.target() == 10000);
  CHECK(Ask(pool, R"({"command": "set_workers", "args": ["0005"]})").message ==
        "Altering worker count, 10000 -> 5. Will gracefully terminate workers.");

  const auto invalid = [](const std::string& arg) {
    return "Invalid count: '" + arg + "'. Must be an integer in [1," + std::to_string(kMaxWorkers) +
           "].";
  };
  for (const char* bad : {"0", "10001", "abc", "", "-1", "1000000", "99999999999999999999"}) {
    INFO(std::string(bad));
    const wire::Reply r =
        Ask(pool, std::string(R"({"command": "set_workers", "args": [")") + bad + "\"]}");
    CHECK(r.error);
    CHECK(r.message == invalid(bad));
  }
  // An empty list: Ruby's nil.to_i is 0, shown as ''.
  const wire::Reply r = Ask(pool, R"({"command": "set_workers", "args": []})");
  CHECK(r.error);
  CHECK(r.message == invalid(""));
  CHECK(pool.sup.target() == 5);
  CHECK(pool.host.Logged(LogLevel::kWarn, "control: set_workers from uid 1000 pid 4000: Invalid"));
}

TEST_CASE("control: args are validated as in Einhorn for set_workers signal die and config") {
  Pool pool(2);
  for (const std::string v : {"set_workers", "signal", "die", "config"}) {
    INFO(v);
    wire::Reply r = Ask(pool, "{command: " + v + "}");
    CHECK(r.message == "No args provided");
    CHECK(r.error);
    r = Ask(pool, "{command: " + v + ", args: null}");
    CHECK(r.message == "No args provided");
    r = Ask(pool, "{command: " + v + ", args: \"5\"}");
    CHECK(r.message == "Args must be an array");
    CHECK(r.error);
    r = Ask(pool, "{command: " + v + ", args: {a: 1}}");
    CHECK(r.message == "Args must be an array");
    r = Ask(pool, "{command: " + v + ", args: [5]}");
    CHECK(r.message == "Argument is a Integer, not a string: 5");
    CHECK(r.error);
    r = Ask(pool, "{command: " + v + ", args: [\"TERM\", [1]]}");
    CHECK(r.message == "Argument is a Array, not a string: [1]");
  }
  // Nothing happened.
  CHECK(pool.sup.target() == 2);
  CHECK(pool.fx.kills.empty());
  CHECK_FALSE(pool.sup.Stopping());
}

// ------------------------------------------------------------------------------------------
// quieter / louder

TEST_CASE("control: quieter and louder move the verbosity within 0 to 2") {
  Pool pool(1);
  pool.host.verbosity = 1;
  CHECK(Ask(pool, "command: quieter").message == "Verbosity set to 2");
  CHECK(pool.host.verbosity == 2);
  CHECK(Ask(pool, "command: quieter").message == "Verbosity set to 2");
  CHECK(pool.host.verbosity == 2);
  CHECK(Ask(pool, "command: louder").message == "Verbosity set to 1");
  CHECK(Ask(pool, "command: louder").message == "Verbosity set to 0");
  const wire::Reply r = Ask(pool, "command: louder");
  CHECK(r.message == "Verbosity set to 0");
  CHECK_FALSE(r.error);
  CHECK(pool.host.verbosity == 0);
  CHECK(pool.host.set_calls == 5);
  CHECK(pool.host.Logged(LogLevel::kInfo,
                         "control: quieter from uid 1000 pid 4000: Verbosity set to 2"));
  CHECK(pool.host.Logged(LogLevel::kInfo,
                         "control: louder from uid 1000 pid 4000: Verbosity set to 0"));
}

// ------------------------------------------------------------------------------------------
// signal / die

TEST_CASE("control: signal sends each signal to every worker and replies empty") {
  auto c = SupervisorConfig{};
  c.signal_timeout = Seconds(1);
  Pool pool(2, true, c);
  wire::Reply r = Ask(pool, R"({"command": "signal", "args": ["USR1"], "id": 22})");
  CHECK(r.message.empty());
  CHECK_FALSE(r.error);
  REQUIRE(pool.fx.kills.size() == 2);
  CHECK(pool.fx.kills[0].pid == 100);
  CHECK(pool.fx.kills[1].pid == 101);
  CHECK(pool.fx.kills[0].signal == Signal::kUsr1);
  CHECK(pool.host.Logged(LogLevel::kInfo,
                         "control: signal from uid 1000 pid 4000: sent SIGUSR1 to 2 workers"));

  // Two signals: Einhorn joins two empty results with a newline. Names as in Ruby: any case,
  // with or without SIG.
  pool.fx.kills.clear();
  r = Ask(pool, R"({"command": "signal", "args": ["sighup", "Term"]})");
  CHECK(r.message == "\n");
  REQUIRE(pool.fx.kills.size() == 4);
  CHECK(pool.fx.kills[0].signal == Signal::kHup);
  CHECK(pool.fx.kills[1].signal == Signal::kHup);
  CHECK(pool.fx.kills[2].signal == Signal::kTerm);
  CHECK(pool.fx.kills[3].signal == Signal::kTerm);
  CHECK(pool.host.Logged(LogLevel::kInfo, "sent SIGHUP to 2 workers, SIGTERM to 2 workers"));

  // Three: two newlines.
  pool.fx.kills.clear();
  CHECK(Ask(pool, R"({"command": "signal", "args": ["INT", "INT", "INT"]})").message == "\n\n");
  CHECK(pool.fx.kills.size() == 6);

  // Not recorded: no escalation, the workers are not draining, no stop.
  pool.sup.Tick(At(50));
  for (const auto& k : pool.fx.kills) CHECK(k.signal != Signal::kKill);
  CHECK(pool.sup.workers().at(100).state == WorkerState::kBooting);
  CHECK_FALSE(pool.sup.Stopping());
}

TEST_CASE("control: signal with no signals sends nothing") {
  Pool pool(2);
  const wire::Reply r = Ask(pool, R"({"command": "signal", "args": []})");
  CHECK(r.message.empty());
  CHECK_FALSE(r.error);
  CHECK(pool.fx.kills.empty());
  CHECK(pool.host.Logged(LogLevel::kInfo, "control: signal from uid 1000 pid 4000: sent nothing"));
}

TEST_CASE("control: signal with an invalid name sends none of the signals") {
  Pool pool(2);
  const wire::Reply r = Ask(pool, R"({"command": "signal", "args": ["USR1", "BOGUS", "HUP"]})");
  CHECK(r.error);
  CHECK(r.message == "Invalid signal: \"BOGUS\"");
  CHECK(pool.fx.kills.empty());
  CHECK(
      pool.host.Logged(LogLevel::kWarn, "control: signal from uid 1000 pid 4000: Invalid signal"));
  // As Einhorn: the name is reported upcased, without SIG, and quoted as Ruby's inspect.
  CHECK(Ask(pool, R"({"command": "signal", "args": ["sigfoo"]})").message ==
        "Invalid signal: \"FOO\"");
  CHECK(Ask(pool, R"({"command": "die", "args": ["a\"b"]})").message ==
        "Invalid signal: \"A\\\"B\"");
  CHECK(pool.fx.kills.empty());
}

TEST_CASE("control: signal and die take every signal of Ruby's Signal.list") {
  auto c = SupervisorConfig{};
  c.signal_timeout = Seconds(1);
  Pool pool(2, true, c);
  // As Einhorn 1.1.1 answers them: '' for one, "\n" for two, any case, SIG or not.
  wire::Reply r = Ask(pool, R"({"command": "signal", "args": ["CONT"]})");
  CHECK_FALSE(r.error);
  CHECK(r.message.empty());
  r = Ask(pool, R"({"command": "signal", "args": ["winch", "SIGurg"]})");
  CHECK_FALSE(r.error);
  CHECK(r.message == "\n");
  REQUIRE(pool.fx.kills.size() == 6);
  CHECK(pool.fx.kills[0].signal == Signal::kCont);
  CHECK(pool.fx.kills[1].signal == Signal::kCont);
  CHECK(pool.fx.kills[2].signal == Signal::kWinch);
  CHECK(pool.fx.kills[4].signal == Signal::kUrg);
  CHECK(pool.fx.kills[5].pid == 101);
  CHECK(pool.host.Logged(LogLevel::kInfo, "sent SIGWINCH to 2 workers, SIGURG to 2 workers"));
  // Not recorded: no escalation.
  pool.sup.Tick(At(50));
  CHECK(pool.fx.kills.size() == 6);
  CHECK(pool.sup.workers().at(100).state == WorkerState::kBooting);
  // Numbers, EXIT (which Einhorn lets through and then fails on) and real-time signals are
  // refused, and nothing is sent.
  CHECK(Ask(pool, R"({"command": "signal", "args": ["9"]})").message == "Invalid signal: \"9\"");
  CHECK(Ask(pool, R"({"command": "signal", "args": ["HUP", "sigexit"]})").message ==
        "Invalid signal: \"EXIT\"");
  CHECK(Ask(pool, R"({"command": "signal", "args": ["RTMIN"]})").message ==
        "Invalid signal: \"RTMIN\"");
  CHECK(Ask(pool, R"({"command": "die", "args": ["EXIT"]})").message ==
        "Invalid signal: \"EXIT\"");
  CHECK(Ask(pool, R"({"command": "signal", "args": ["sigfoo\n"]})").message ==
        "Invalid signal: \"FOO\"");
  CHECK(pool.fx.kills.size() == 6);
  CHECK_FALSE(pool.sup.Stopping());
  // die with one of them: sent and recorded, so -t escalates.
  r = Ask(pool, R"({"command": "die", "args": ["Pwr"]})", Operator(), 60);
  CHECK(r.message == "Einhorn is going down! ");
  REQUIRE(pool.fx.kills.size() == 8);
  CHECK(pool.fx.kills[7].signal == Signal::kPwr);
  CHECK(pool.sup.Stopping());
  CHECK(pool.sup.workers().at(100).signals_sent == std::vector<Signal>{Signal::kPwr});
  pool.sup.Tick(At(62));
  REQUIRE(pool.fx.kills.size() == 10);
  CHECK(pool.fx.kills[9].signal == Signal::kKill);
}

TEST_CASE("control: die drains every worker with the drain signal and stops") {
  auto c = SupervisorConfig{};
  c.signal_timeout = Seconds(2);
  Pool pool(2, true, c);
  const wire::Reply r = Ask(pool, R"({"command": "die", "args": [], "id": 1})", Operator(), 5);
  CHECK(r.message == "Einhorn is going down! ");  // the trailing space is Einhorn's
  CHECK_FALSE(r.error);
  CHECK(pool.sup.Stopping());
  REQUIRE(pool.fx.kills.size() == 2);
  CHECK(pool.fx.kills[0].signal == Signal::kUsr2);
  CHECK(pool.sup.workers().at(100).state == WorkerState::kDraining);
  // Recorded, unlike `signal`: -t escalates.
  pool.sup.Tick(At(7));
  REQUIRE(pool.fx.kills.size() == 4);
  CHECK(pool.fx.kills[2].signal == Signal::kKill);
  // No respawns, and the master finishes once the workers are gone.
  pool.sup.ChildExited(100, ExitStatus{true, 9}, At(7.1));
  pool.sup.ChildExited(101, ExitStatus{true, 9}, At(7.1));
  CHECK(pool.fx.spawns.size() == 2);
  CHECK(pool.sup.Finished());
  CHECK(pool.sup.ExitCode() == 0);
  CHECK(pool.host.Logged(LogLevel::kInfo,
                         "control: die from uid 1000 pid 4000: Einhorn is going down!"));
}

TEST_CASE("control: die takes its signal from the first argument") {
  Pool pool(2);
  const wire::Reply r = Ask(pool, R"({"command": "die", "args": ["sigterm"]})");
  CHECK(r.message == "Einhorn is going down! ");
  REQUIRE(pool.fx.kills.size() == 2);
  CHECK(pool.fx.kills[0].signal == Signal::kTerm);
  CHECK(pool.fx.kills[1].signal == Signal::kTerm);
  CHECK(pool.sup.Stopping());
  // A second die is answered the same and re-sends.
  CHECK(Ask(pool, R"({"command": "die", "args": ["INT"]})").message == "Einhorn is going down! ");
  CHECK(pool.fx.kills.size() == 4);
  CHECK(pool.fx.kills[2].signal == Signal::kInt);
}

TEST_CASE("control: die defaults to the configured drain signal") {
  auto c = SupervisorConfig{};
  c.drain_signal = Signal::kQuit;
  Pool pool(1, true, c);
  Ask(pool, R"({"command": "die", "args": []})");
  REQUIRE(pool.fx.kills.size() == 1);
  CHECK(pool.fx.kills[0].signal == Signal::kQuit);
}

TEST_CASE("control: die with an invalid signal does nothing") {
  Pool pool(2);
  const wire::Reply r = Ask(pool, R"({"command": "die", "args": ["NOPE"]})");
  CHECK(r.error);
  CHECK(r.message == "Invalid signal: \"NOPE\"");
  CHECK(pool.fx.kills.empty());
  CHECK_FALSE(pool.sup.Stopping());
  CHECK(pool.host.Logged(LogLevel::kWarn, "control: die from uid 1000 pid 4000: Invalid signal"));
}

// ------------------------------------------------------------------------------------------
// config and reload: not supported. upgrade and upgrade_fleet

TEST_CASE("control: config is refused once its args are valid") {
  Pool pool(2);
  const wire::Reply r = Ask(pool, R"({"command": "config", "args": ["number: 4"]})");
  CHECK(r.error);
  CHECK(r.message.rfind("config is not supported by einhorn-cpp", 0) == 0);
  CHECK(r.message.find("set_workers") != std::string::npos);
  CHECK(pool.sup.target() == 2);
  CHECK(Ask(pool, R"({"command": "config", "args": []})").error);
}

TEST_CASE("control: reload asks the host to re-exec and replies at once, finally") {
  Pool pool(2);
  const ControlOutcome out = Send(pool, "{command: reload, id: 9}");
  const wire::Reply r = One(out);
  CHECK_FALSE(r.error);
  CHECK_FALSE(r.wait);  // final: nothing is streamed after it, as Einhorn
  CHECK(r.message == "Reloading, as commanded");
  REQUIRE(r.request_id.has_value());
  CHECK(r.request_id->text == "9");
  CHECK_FALSE(out.subscribe_upgrade.has_value());
  REQUIRE(pool.host.reloads.size() == 1);
  CHECK_FALSE(pool.host.reloads[0].has_value());  // no worker upgrade after it
  CHECK(pool.fx.kills.empty());
  CHECK(pool.sup.generation() == 1);
  CHECK(pool.host.Logged(LogLevel::kInfo, "control: reload from uid 1000 pid 4000: Reloading"));
}

TEST_CASE("control: a refused reload is an error reply and logged as a warning") {
  Pool pool(2);
  pool.host.refuse_reload = "Not reloading: the master is shutting down";
  const wire::Reply r = Ask(pool, "{command: reload, id: 3}");
  CHECK(r.error);
  CHECK_FALSE(r.wait);
  CHECK(r.message == "Not reloading: the master is shutting down");
  CHECK(pool.host.Logged(LogLevel::kWarn, "control: reload from uid 1000 pid 4000: Not reloading"));
  CHECK(pool.host.reloads.size() == 1);
}

TEST_CASE("control: upgrade and upgrade_fleet re-exec the master first, with the strategy") {
  Pool pool(2);
  One(Send(pool, "{command: upgrade, id: 1}"));
  One(Send(pool, "command: upgrade_fleet"));
  REQUIRE(pool.host.reloads.size() == 2);
  CHECK(pool.host.reloads[0] == UpgradeStrategy::kSmooth);
  CHECK(pool.host.reloads[1] == UpgradeStrategy::kFleet);
}

TEST_CASE("control: upgrade with an id gets the first Einhorn reply with wait and a subscription") {
  Pool pool(2);
  const ControlOutcome out = Send(pool, "{command: upgrade, id: 9}");
  const wire::Reply r = One(out);
  CHECK(r.message == "Upgrading smoothly, as commanded");
  CHECK_FALSE(r.error);
  CHECK(r.wait);  // more messages follow on this connection
  REQUIRE(r.request_id.has_value());
  CHECK(r.request_id->text == "9");
  REQUIRE(out.subscribe_upgrade.has_value());
  CHECK(out.subscribe_upgrade->kind == wire::Id::Kind::kInt);
  CHECK(out.subscribe_upgrade->text == "9");
  // The supervisor started it: a new generation.
  CHECK(pool.sup.upgrade().has_value());
  CHECK(pool.sup.generation() == 2);
  CHECK(pool.host.Logged(
      LogLevel::kInfo,
      "control: upgrade from uid 1000 pid 4000: Upgrading smoothly, as commanded"));
}

TEST_CASE("control: upgrade_fleet without an id gets one reply and no subscription") {
  for (std::string_view doc : {
           std::string_view("command: upgrade_fleet"),
           std::string_view("request_id: 1\ncommand: upgrade_fleet\n"),  // go-einhorn: no id
       }) {
    INFO(std::string(doc));
    Pool pool(2);
    const ControlOutcome out = Send(pool, doc);
    const wire::Reply r = One(out);
    CHECK(r.message == "Upgrading fleet, as commanded");
    CHECK_FALSE(r.error);
    CHECK_FALSE(r.wait);
    CHECK_FALSE(r.request_id.has_value());
    CHECK_FALSE(out.subscribe_upgrade.has_value());
    CHECK(pool.sup.upgrade().has_value());
  }
}

TEST_CASE("control: an upgrade refused by the supervisor is a final error without subscription") {
  Pool pool(2);
  pool.sup.Stop(StopKind::kDrain, At(1));
  const ControlOutcome out = Send(pool, "{command: upgrade, id: 4}");
  const wire::Reply r = One(out);
  CHECK(r.error);
  CHECK_FALSE(r.wait);
  CHECK(r.message.find("Upgrading") == std::string::npos);
  CHECK_FALSE(r.message.empty());
  REQUIRE(r.request_id.has_value());
  CHECK(r.request_id->text == "4");
  CHECK_FALSE(out.subscribe_upgrade.has_value());
  CHECK_FALSE(pool.sup.upgrade().has_value());
  CHECK(pool.sup.generation() == 1);
  CHECK(pool.host.Logged(LogLevel::kWarn, "control: upgrade from uid 1000 pid 4000: "));
}

// ------------------------------------------------------------------------------------------
// worker:ack

// Sends an ack and checks the wire behaviour every ack shares: no reply, connection closed.
void Ack(Pool& pool, std::string_view document, const Peer& peer, double now = 3) {
  INFO(std::string(document));
  const ControlOutcome out = Send(pool, document, peer, now);
  CHECK(out.replies.empty());
  CHECK(out.close);
}

WorkerState StateOf(const Pool& pool, Pid pid) { return pool.sup.workers().at(pid).state; }

TEST_CASE("control: worker:ack from the worker itself makes it ready without a reply") {
  Pool pool(2);
  Ack(pool, R"({"command": "worker:ack", "pid": 100})", ProcessPeer({100, kMasterPid, 1000}), 3);
  CHECK(StateOf(pool, 100) == WorkerState::kReady);
  CHECK(pool.sup.workers().at(100).ready_at == At(3));
  CHECK(StateOf(pool, 101) == WorkerState::kBooting);
  // Every client's bytes: Ruby (---), go-einhorn (no ---), with an id (still no reply).
  Ack(pool, "---\ncommand: worker:ack\npid: 101\nid: 5\n", ProcessPeer({101, kMasterPid}));
  CHECK(StateOf(pool, 101) == WorkerState::kReady);
}

TEST_CASE("control: worker:ack from a descendant of the worker counts") {
  Pool pool(2);
  // A shell wrapper (the worker, 101) ran the real server 5001, which forked 5002 to ack.
  Ack(pool, "command: worker:ack\npid: 101\n", ProcessPeer({5002, 5001, 101, kMasterPid}));
  CHECK(StateOf(pool, 101) == WorkerState::kReady);
  CHECK(StateOf(pool, 100) == WorkerState::kBooting);
}

TEST_CASE("control: worker:ack for a worker the peer does not descend from is refused") {
  Pool pool(2);
  // The operator, another worker, a worker's sibling process: none may ack 100.
  for (const Peer& peer :
       {Operator(), ProcessPeer({101, kMasterPid}), ProcessPeer({6000, kMasterPid}), Peer{}}) {
    Ack(pool, R"({"command": "worker:ack", "pid": 100})", peer);
    CHECK(StateOf(pool, 100) == WorkerState::kBooting);
  }
  // The lineage decides, not the peer pid alone.
  Peer odd = ProcessPeer({6000, kMasterPid});
  odd.pid = 100;
  Ack(pool, R"({"command": "worker:ack", "pid": 100})", odd);
  CHECK(StateOf(pool, 100) == WorkerState::kBooting);
  CHECK(pool.host.Logged(LogLevel::kWarn,
                         "control: refused worker:ack for 100 from pid 4000: only the worker "
                         "itself or its descendants may ack it"));
  // The master itself is an ancestor, not a descendant.
  Ack(pool, R"({"command": "worker:ack", "pid": 100})", ProcessPeer({kMasterPid, 1000}));
  CHECK(StateOf(pool, 100) == WorkerState::kBooting);
}

// worker:recycle is authenticated as worker:ack: a worker may only recycle itself (or be
// recycled by its descendants, or on its own -g channel); no reply, the connection closes.
TEST_CASE("control: worker:recycle only from the worker itself") {
  Pool pool(2);
  Ack(pool, R"({"command": "worker:ack", "pid": 100})", ProcessPeer({100, kMasterPid}), 1);
  Ack(pool, R"({"command": "worker:ack", "pid": 101})", ProcessPeer({101, kMasterPid}), 1);
  // Forged: the operator, another worker, a stranger pretending by pid.
  Peer odd = ProcessPeer({6000, kMasterPid});
  odd.pid = 100;
  for (const Peer& peer : {Operator(), ProcessPeer({101, kMasterPid}), odd, Peer{}}) {
    const ControlOutcome out =
        Send(pool, R"({"command": "worker:recycle", "pid": 100})", peer, 2);
    CHECK(out.replies.empty());
    CHECK(out.close);
    CHECK_FALSE(pool.sup.workers().at(100).recycle.has_value());
  }
  CHECK(pool.host.Logged(LogLevel::kWarn,
                         "control: refused worker:recycle for 100 from pid 4000: only the "
                         "worker itself or its descendants may recycle it"));
  CHECK(pool.fx.spawns.size() == 2);
  const ControlOutcome out = Send(pool, R"({"command": "worker:recycle", "pid": 100})",
                                  ProcessPeer({5001, 100, kMasterPid}), 3);
  CHECK(out.replies.empty());
  CHECK(out.close);
  CHECK(pool.sup.workers().at(100).recycle == RecycleCause::kWorker);
  CHECK(pool.sup.workers().at(100).slot == -1);
  CHECK(pool.fx.spawns.size() == 3);
  // On its -g channel, the pid may be left out; another worker's pid there is refused.
  Send(pool, R"({"command": "worker:recycle", "pid": 100})", Channel(101), 4);
  CHECK_FALSE(pool.sup.workers().at(101).recycle.has_value());
  Send(pool, R"({"command": "worker:recycle"})", Channel(101), 4);
  CHECK(pool.sup.workers().at(101).recycle == RecycleCause::kWorker);  // queued behind 100
}

TEST_CASE("control: recycle PID and recycle all, and their refusals") {
  Pool pool(2);
  for (Pid p : {100, 101}) {
    Ack(pool, "command: worker:ack\npid: " + std::to_string(p) + "\n",
        ProcessPeer({p, kMasterPid}), 1);
  }
  auto reply = [&pool](std::string_view doc) {
    const ControlOutcome out = Send(pool, doc, Operator(), 2);
    REQUIRE(out.replies.size() == 1);
    return out.replies[0];
  };
  wire::Reply r = reply(R"({"command": "recycle", "args": ["999"]})");
  CHECK(r.error);
  CHECK(r.message == "No worker with pid 999");
  for (std::string_view bad : {R"({"command": "recycle"})", R"({"command": "recycle", "args": []})",
                               R"({"command": "recycle", "args": ["-1"]})",
                               R"({"command": "recycle", "args": ["1e9"]})",
                               R"({"command": "recycle", "args": ["ALL"]})",
                               R"({"command": "recycle", "args": ["100", "101"]})"}) {
    r = reply(bad);
    CHECK_MESSAGE(r.error, bad);
    CHECK_MESSAGE(r.message.find("\n") == std::string::npos, bad);
  }
  r = reply(R"({"command": "recycle", "args": ["100"]})");
  CHECK_FALSE(r.error);
  CHECK(r.message == "Recycling worker 100: its replacement is starting");
  r = reply(R"({"command": "recycle", "args": ["100"]})");
  CHECK_FALSE(r.error);
  CHECK(r.message == "A recycle of worker 100 is pending already");
  r = reply(R"({"command": "recycle", "args": ["all"]})");
  CHECK_FALSE(r.error);
  CHECK(r.message == "Recycling 1 worker, at most 1 extra at once");
  CHECK(pool.host.Logged(LogLevel::kInfo, "control: recycle from uid 1000 pid 4000"));
  // status shows them, and metrics count the started one.
  const PoolStatus st = pool.control.Status(At(3));
  int pending = 0;
  for (const WorkerStatus& w : st.workers) {
    if (w.recycle) {
      ++pending;
      CHECK(*w.recycle == "operator");
      CHECK((w.recycle_state == "queued" || w.recycle_state == "replacing"));
    }
  }
  CHECK(pending == 2);
  CHECK(pool.control.MetricsText().find("einhorn_worker_recycles_total{cause=\"operator\"} 1") !=
        std::string::npos);
}

TEST_CASE("control: worker:ack needs an integer pid outside a -g channel") {
  Pool pool(1);
  const Peer self = ProcessPeer({100, kMasterPid});
  for (std::string_view doc : {
           R"({"command": "worker:ack"})",
           R"({"command": "worker:ack", "pid": "100"})",  // a string is not found, as Einhorn
           R"({"command": "worker:ack", "pid": 100.0})",
           R"({"command": "worker:ack", "pid": null})",
       }) {
    Ack(pool, doc, self);
    CHECK(StateOf(pool, 100) == WorkerState::kBooting);
  }
  CHECK(pool.host.Logged(
      LogLevel::kWarn, "control: refused worker:ack from pid 100: no integer pid in the request"));
}

TEST_CASE("control: worker:ack with a pid out of range is refused") {
  Pool pool(1);
  // 4294967396 is 2^32 + 100: it must not be taken for worker 100.
  const Peer self = ProcessPeer({100, kMasterPid});
  for (std::string_view doc : {
           R"({"command": "worker:ack", "pid": 0})",
           R"({"command": "worker:ack", "pid": -100})",
           R"({"command": "worker:ack", "pid": 2147483648})",
           R"({"command": "worker:ack", "pid": 4294967396})",
       }) {
    Ack(pool, doc, self);
    CHECK(StateOf(pool, 100) == WorkerState::kBooting);
  }
  CHECK(pool.host.Logged(LogLevel::kWarn, "control: refused worker:ack from pid 100: bad pid"));
  // Also on a -g channel. (Later: the four refusals above are one run of a rate-limited line,
  // whose 2nd to 4th are summed up when the next run begins.)
  Ack(pool, R"({"command": "worker:ack", "pid": 4294967396})", Channel(100), 100);
  CHECK(StateOf(pool, 100) == WorkerState::kBooting);
  CHECK(pool.host.Logged(LogLevel::kWarn,
                         "control: refused worker:ack from the -g channel of worker 100: bad pid"));
  CHECK(pool.host.Logged(LogLevel::kWarn,
                         "control: refused 4 worker:ack requests in all in the run before, 3 of "
                         "them not logged"));
}

TEST_CASE("control: a flood of refused worker:acks logs a few lines, not one each") {
  Pool pool(1);
  const Peer stranger = ProcessPeer({777, 1});
  const size_t before = pool.host.logs.size();
  for (int i = 0; i < 10000; ++i) {
    Send(pool, R"({"command": "worker:ack", "pid": 100})", stranger, 3 + i * 0.0001);
  }
  CHECK(StateOf(pool, 100) == WorkerState::kBooting);
  CHECK(pool.host.logs.size() - before == 5);  // the 1st, 10th, 100th, 1000th and 10000th
  CHECK(pool.host.Logged(LogLevel::kWarn, "(10000 refused in this run;"));
}

// A worker asking again and again while its recycle is pending is a line per run, not per ask.
TEST_CASE("control: a flood of worker:recycle from the worker itself logs a few lines") {
  Pool pool(2);
  const Peer self = ProcessPeer({100, kMasterPid});
  Ack(pool, R"({"command": "worker:ack", "pid": 100})", self, 1);
  Ack(pool, R"({"command": "worker:ack", "pid": 101})", ProcessPeer({101, kMasterPid}), 1);
  Send(pool, R"({"command": "worker:recycle", "pid": 100})", self, 2);
  REQUIRE(pool.sup.workers().at(100).recycle == RecycleCause::kWorker);
  const size_t spawns = pool.fx.spawns.size();
  const size_t before = pool.host.logs.size();
  for (int i = 0; i < 10000; ++i) {
    Send(pool, R"({"command": "worker:recycle", "pid": 100})", self, 3 + i * 0.0001);
  }
  CHECK(pool.fx.spawns.size() == spawns);
  CHECK(pool.host.logs.size() - before == 5);  // the 1st, 10th, 100th, 1000th and 10000th
  CHECK(pool.host.Logged(LogLevel::kInfo,
                         "control: worker:recycle: A recycle of worker 100 is pending already"));
}

TEST_CASE("control: on a -g channel worker:ack counts for the bound worker only") {
  Pool pool(3);
  // Without a pid: the channel's worker.
  Ack(pool, "command: worker:ack", Channel(100));
  CHECK(StateOf(pool, 100) == WorkerState::kReady);
  // With its own pid.
  Ack(pool, R"({"command": "worker:ack", "pid": 101})", Channel(101));
  CHECK(StateOf(pool, 101) == WorkerState::kReady);
  // Another worker's pid: refused, whatever the lineage says.
  Peer channel = Channel(101);
  channel.lineage = {102, 101, kMasterPid};
  Ack(pool, R"({"command": "worker:ack", "pid": 102})", channel);
  CHECK(StateOf(pool, 102) == WorkerState::kBooting);
  CHECK(pool.host.Logged(LogLevel::kWarn,
                         "control: refused worker:ack for 102 from the -g channel of worker 101"));
  // A pid that is there but not an integer is not "left out".
  Ack(pool, R"({"command": "worker:ack", "pid": "abc"})", Channel(102));
  CHECK(StateOf(pool, 102) == WorkerState::kBooting);
}

TEST_CASE("control: worker:ack failures are logged only") {
  SUBCASE("unknown pid") {
    Pool pool(1);
    Ack(pool, R"({"command": "worker:ack", "pid": 555})", ProcessPeer({555, 554}));
    CHECK(pool.host.Logged(LogLevel::kWarn,
                           "control: could not find a worker with pid 555; ignoring its ack"));
  }
  SUBCASE("already acked") {
    Pool pool(1);
    const Peer self = ProcessPeer({100, kMasterPid});
    Ack(pool, R"({"command": "worker:ack", "pid": 100})", self, 2);
    Ack(pool, R"({"command": "worker:ack", "pid": 100})", self, 4);
    CHECK(pool.sup.workers().at(100).ready_at == At(2));
    CHECK(pool.host.Logged(LogLevel::kInfo, "control: worker 100 already acked; ignoring new ack"));
  }
  SUBCASE("timer mode") {
    Pool pool(1, false);
    Ack(pool, R"({"command": "worker:ack", "pid": 100})", ProcessPeer({100, kMasterPid}), 0.5);
    CHECK(StateOf(pool, 100) == WorkerState::kBooting);
    CHECK(pool.host.Logged(LogLevel::kInfo,
                           "control: received a manual ack for 100, but the ack mode is timer "
                           "1s; ignoring it"));
  }
  SUBCASE("draining") {
    Pool pool(2);
    pool.sup.SetTarget(1, At(1));  // 101 drains
    Ack(pool, R"({"command": "worker:ack", "pid": 101})", ProcessPeer({101, kMasterPid}));
    CHECK(StateOf(pool, 101) == WorkerState::kDraining);
    CHECK(
        pool.host.Logged(LogLevel::kInfo, "control: worker 101 acked while draining; ignoring it"));
  }
}

// ------------------------------------------------------------------------------------------
// worker:ping

TEST_CASE("control: worker:ping records the time without a reply") {
  Pool pool(2);
  pool.host.wall_ns = 1700000000123456789;
  const ControlOutcome out =
      Send(pool, R"({"command": "worker:ping", "pid": 101, "request_id": 3})",
           ProcessPeer({101, kMasterPid}), 6);
  CHECK(out.replies.empty());
  CHECK(out.close);
  const Worker& w = pool.sup.workers().at(101);
  CHECK(w.pinged_at == At(6));
  CHECK(w.pinged_wall_ns == 1700000000123456789);
  REQUIRE(w.pinged_request_id.has_value());
  CHECK(*w.pinged_request_id == wire::Id{wire::Id::Kind::kInt, "3"});
  CHECK_FALSE(pool.sup.workers().at(100).pinged_at.has_value());

  // On a -g channel the pid may be left out.
  const ControlOutcome g = Send(pool, "command: worker:ping", Channel(100), 7);
  CHECK(g.replies.empty());
  CHECK(g.close);
  CHECK(pool.sup.workers().at(100).pinged_at == At(7));
  CHECK_FALSE(pool.sup.workers().at(100).pinged_request_id.has_value());

  // state shows both, with the request_id's own type; status shows them too.
  const wire::Reply st = Ask(pool, "{command: state}", Operator(), 8);
  CHECK(st.message.find("      :pinged_at: 2023-11-14 22:13:20.123456789 +00:00\n"
                        "      :pinged_request_id: 3\n") != std::string::npos);
  const PoolStatus status = pool.control.Status(At(8.5));
  REQUIRE(status.workers.size() == 2);
  CHECK(status.workers[1].pid == 101);
  CHECK(status.workers[1].pinged_ago == doctest::Approx(2.5));
  CHECK(status.workers[1].pinged_request_id == "3");
  CHECK(status.workers[0].pinged_ago == doctest::Approx(1.5));
  CHECK_FALSE(status.workers[0].pinged_request_id.has_value());

  // A later ping replaces the request_id, as Einhorn, a string one included.
  Send(pool, R"({"command": "worker:ping", "pid": 101, "request_id": "req-2"})", Operator(), 9);
  CHECK(*pool.sup.workers().at(101).pinged_request_id ==
        wire::Id{wire::Id::Kind::kString, "req-2"});
}

TEST_CASE("control: worker:ping request_ids of every shape, and a long one is refused") {
  Pool pool(1);
  struct Case {
    std::string doc_id;  // as written in the request
    std::optional<wire::Id> stored;
    std::string in_state;  // the line state shows
  };
  const std::vector<Case> cases = {
      {"0", wire::Id{wire::Id::Kind::kInt, "0"}, ":pinged_request_id: 0\n"},
      {"-5", wire::Id{wire::Id::Kind::kInt, "-5"}, ":pinged_request_id: -5\n"},
      // Not a float without a '.', for Psych as for our parser.
      {"1e10", wire::Id{wire::Id::Kind::kString, "1e10"}, ":pinged_request_id: \"1e10\"\n"},
      {"1.5", wire::Id{wire::Id::Kind::kFloat, "1.5"}, ":pinged_request_id: 1.5\n"},
      {".inf", wire::Id{wire::Id::Kind::kFloat, ".inf"}, ":pinged_request_id: .inf\n"},
      {".nan", wire::Id{wire::Id::Kind::kFloat, ".nan"}, ":pinged_request_id: .nan\n"},
      {"true", wire::Id{wire::Id::Kind::kBool, "true"}, ":pinged_request_id: true\n"},
      {"null", std::nullopt, ":pinged_request_id:\n"},
      {"[1, 2]", std::nullopt, ":pinged_request_id:\n"},
      {"{a: 1}", std::nullopt, ":pinged_request_id:\n"},
      // (the line is unescaped before it is parsed: %25 stays as written here)
      {"\"a\\nb: %25\"", wire::Id{wire::Id::Kind::kString, "a\nb: %25"},
       ":pinged_request_id: \"a\\nb: %25\"\n"},
  };
  double t = 1;
  for (const Case& c : cases) {
    INFO(c.doc_id);
    t += 1;
    const ControlOutcome out = Send(
        pool, "{\"command\": \"worker:ping\", \"pid\": 100, \"request_id\": " + c.doc_id + "}",
        Operator(), t);
    CHECK(out.replies.empty());
    CHECK(out.close);
    CHECK(pool.sup.workers().at(100).pinged_at == At(t));
    CHECK(pool.sup.workers().at(100).pinged_request_id == c.stored);
    CHECK(pool.control.EinhornState().find(c.in_state) != std::string::npos);
  }
  // 1 KiB is kept; one byte more is refused, and the last ping stays as it was.
  Send(pool, R"({"command": "worker:ping", "pid": 100, "request_id": ")" +
                 std::string(kMaxPingRequestId, 'x') + "\"}",
       Operator(), 50);
  CHECK(pool.sup.workers().at(100).pinged_request_id->text.size() == kMaxPingRequestId);
  Send(pool, R"({"command": "worker:ping", "pid": 100, "request_id": ")" +
                 std::string(kMaxPingRequestId + 1, 'y') + "\"}",
       Operator(), 51);
  CHECK(pool.sup.workers().at(100).pinged_at == At(50));
  CHECK(pool.sup.workers().at(100).pinged_request_id->text == std::string(kMaxPingRequestId, 'x'));
  CHECK(pool.host.Logged(LogLevel::kDebug, "request_id is longer than 1024 bytes"));
}

TEST_CASE("control: worker:ping for no or an unknown pid is logged at debug") {
  Pool pool(1);
  for (std::string_view doc :
       {R"({"command": "worker:ping"})", R"({"command": "worker:ping", "pid": 999, "id": 1})",
        R"({"command": "worker:ping", "pid": "100"})"}) {
    INFO(std::string(doc));
    const ControlOutcome out = Send(pool, doc, Operator(), 6);
    CHECK(out.replies.empty());
    CHECK(out.close);
  }
  CHECK_FALSE(pool.sup.workers().at(100).pinged_at.has_value());
  CHECK(pool.host.Logged(LogLevel::kDebug, "control: worker:ping for an unknown pid"));
  // 2^32 + 100 must not wrap around to worker 100.
  Send(pool, R"({"command": "worker:ping", "pid": 4294967396})", Operator(), 7);
  CHECK_FALSE(pool.sup.workers().at(100).pinged_at.has_value());
}

// ------------------------------------------------------------------------------------------
// Replies of a connection that stays open, and audit lines

TEST_CASE(
    "control: only failures carry error and every verb but the worker ones keeps the connection") {
  Pool pool(2);
  struct Case {
    const char* doc;
    bool error;
  };
  const Case cases[] = {
      {"command: help", false},
      {"command: ehlo", false},
      {"command: status", false},
      {"command: quieter", false},
      {"command: louder", false},
      {"command: inc", false},
      {"command: dec", false},
      {R"({"command": "set_workers", "args": ["3"]})", false},
      {R"({"command": "signal", "args": ["USR1"]})", false},
      {"command: nope", true},
      {"command: reload", false},
      {R"({"command": "signal", "args": ["NOPE"]})", true},
  };
  for (const Case& c : cases) {
    INFO(std::string(c.doc));
    const wire::Reply r = Ask(pool, c.doc);
    CHECK(r.error == c.error);
    CHECK_FALSE(r.wait);
  }
}

}  // namespace
}  // namespace einhorn::core
