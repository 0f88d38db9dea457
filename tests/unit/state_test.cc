// The state carried across a master re-exec (core/state.h): a rich state round-trips to an
// equal one, strings of any bytes come back exactly, and everything that is not a state this
// binary wrote (another version or format, missing, unknown or ill-typed keys, a broken
// structure, truncation, random bytes) is refused with a message naming the key, never a crash.
#include "core/state.h"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "core/state_format.h"
#include "fake_effects.h"

namespace einhorn::core {
namespace {

using test::FakeEffects;
using namespace std::string_literals;

Time At(double seconds) { return Seconds(seconds); }

const ExitStatus kExit1{false, 1};
const ExitStatus kKilled{true, 9};

// Every byte value, and the texts YAML and our framing care about.
std::vector<std::string> HostileStrings() {
  std::string all_bytes;
  for (int c = 0; c < 256; ++c) all_bytes += static_cast<char>(c);
  return {
      "",
      " leading and trailing spaces ",
      "quote \" backslash \\ end\\",
      std::string("embedded\0nul", 12),
      "new\nline\r\n",
      "tab\there",
      "%0A%25 percent",
      "---",
      "...",
      "*alias &anchor !tag !!binary \"QQ==\"",
      "key: value, {flow}, [seq], # comment",
      "null",
      "true",
      "010",
      "\xc3\xa9t\xc3\xa9 \xe2\x9c\x93",  // valid UTF-8
      "\xff\xfe\x80 invalid UTF-8 \xc3",
      "\xef\xbb\xbf"
      "BOM",
      all_bytes,
      std::string(3000, 'x') + "\x01",
  };
}

Options RichOptions() {
  Options o;
  o.number = 3;
  BindSpec inet;
  inet.text = "127.0.0.1:0,r,n";
  inet.host = "127.0.0.1";
  inet.reuseaddr = true;
  inet.nonblock = true;
  BindSpec unix_spec;
  unix_spec.text = "unix:/run/a \xff.sock,reuseport";
  unix_spec.family = BindSpec::Family::kUnix;
  unix_spec.host = "\"odd\"";
  unix_spec.port = 65535;
  unix_spec.path = "/run/a \xff.sock";
  unix_spec.reuseport = true;
  o.binds = {inet, unix_spec};
  o.command_name = "app \"quoted\" \\ back";
  o.socket_path = "/tmp/einhorn-\xe9.sock";
  o.pidfile = "/run/p\nid";
  o.lockfile = std::string("/run/l\0ck", 9);
  o.kill_children_on_exit = true;
  o.subreaper = true;
  o.worker_watchdog = 86400.5;  // set, and too long to fire in RichSnapshot's story
  o.backlog = 17;
  o.ack_mode.kind = AckMode::Kind::kManual;
  o.ack_mode.timer_seconds = 2.5;
  o.verbosity = 0;
  o.seconds = 0.1;
  o.signal_timeout = 1.0 / 3;
  o.drop_env_vars = {"SECRET", "\xff"};
  o.nice.master = 5;
  o.nice.worker = -3;
  o.nice.renice_cmd = "renice -n";
  o.command_socket_as_fd = true;
  o.control_allow_uids = {"alice", "1001"};
  o.control_allow_gids = {"wheel"};
  o.command = HostileStrings();
  o.command.front() = "/bin/app";
  o.reexec_as = {"env", "A=b c", "", "/usr/local/bin/einhorn-cpp \xff"};
  o.worker_output = WorkerOutput::kPrefix;
  o.worker_log_dir = "/var/log/app \xff";
  o.max_unacked = 2;
  o.max_upgrade_additional = 0;
  o.ack_timeout = 30;
  o.upgrade_timeout = 120.5;
  o.upgrade_max_failures = 5;
  o.canary = false;
  o.drain_signal = Signal::kTerm;
  o.max_worker_memory = MemoryLimit{50.0 * 1024 * 1024, 80.0 * 1024 * 1024};
  o.memory_interval = 0.25;
  o.memory_measure = MemoryMeasure::kPss;
  return o;
}

// A supervisor in the middle of its second upgrade (fleet, the first one timed out and was
// rolled back), with workers in every state: ready old ones, one draining that was SIGKILLed
// and is not reaped yet, a ready, a booting (pinged) and a dead new one whose slot waits for
// its respawn.
SupervisorSnapshot RichSnapshot(const Options& o) {
  FakeEffects fx;
  Supervisor s(ConfigFromOptions(o, 42), fx);
  s.Start(At(0));  // 100 101 102
  s.Ack(100, At(1));
  s.Ack(101, At(1));
  s.ChildExited(102, kExit1, At(1.5));  // slot 2 backs off
  s.Tick(At(2));                        // 103
  s.Ack(103, At(2));
  s.SetTarget(4, At(4));
  s.Tick(At(4));                                // 104
  s.SetTarget(3, At(4));                        // 104 drains
  s.Tick(At(5));                                // and is killed after -t
  s.Upgrade(UpgradeStrategy::kSmooth, At(10));  // no room while 104 lingers
  s.Tick(At(131));                              // the upgrade timeout rolls it back
  s.Upgrade(UpgradeStrategy::kFleet, At(140));  // 105 106 107
  s.Ack(105, At(141));
  s.ChildExited(106, kExit1, At(142));
  s.Ping(107, At(143), wire::Id{wire::Id::Kind::kString, "req \"7\""}, 1700000000123456789);
  s.WorkerStatusText(107, "warming up\tcaches");
  return s.Snapshot();
}

MasterState RichState() {
  MasterState m;
  m.written_by = "0.1.0 \xff";
  m.options = RichOptions();
  m.command_path = "/usr/local/bin/app \xc3\xa9";
  m.self_path = "/usr/local/bin/einhorn-cpp \"\xff\"";
  m.supervisor = RichSnapshot(m.options);
  m.verbosity = 2;
  MasterState::Listener first;
  first.spec = m.options.binds[0];
  first.fd = 3;
  first.bound = "127.0.0.1:41234";
  MasterState::Listener second;
  second.spec = m.options.binds[1];
  second.fd = 0;  // a master started with stdin closed
  second.bound = "unix:/run/a \xff.sock";
  second.owns_path = true;
  second.path_dev = 0xFFFFFFFFFFFFFFFFull;
  second.path_ino = 1234567890123ull;
  m.listeners = {first, second};
  m.control.spec.family = BindSpec::Family::kUnix;
  m.control.spec.path = m.options.socket_path;
  m.control.spec.text = "unix:" + m.options.socket_path;
  m.control.fd = 7;
  m.control.bound = m.control.spec.text;
  m.control.owns_path = true;
  m.control.path_dev = 2049;
  m.control.path_ino = 77;
  // Two -g channels (one with half an ack in it) and two command-socket connections that
  // follow an upgrade, one from a peer whose credentials were unknown.
  MasterState::Client channel;
  channel.fd = 9;
  channel.peer = Peer{105, 0, 0, {105, 1}, 105};
  MasterState::Client acking;
  acking.fd = 11;
  acking.peer = Peer{107, 1000, 1000, {107}, 107};
  acking.pending_input = "{\"command\":\"worker:a";
  MasterState::Client watcher;
  watcher.fd = 12;
  watcher.peer = Peer{4242, 1001, 1002, {4242, 4000, 1}, std::nullopt};
  watcher.pending_input = "%0A\xff\0\r"s;
  watcher.upgrade_id = wire::Id{wire::Id::Kind::kInt, "7"};
  MasterState::Client unknown;
  unknown.fd = 2;
  unknown.upgrade_id = wire::Id{wire::Id::Kind::kString, "id \"x\"\n\xff"};
  m.clients = {channel, acking, watcher, unknown};
  m.notify_sockets = {{105, 14}, {107, 15}};
  m.worker_pipes = {{{105, 0, 2, OutputStream::kStdout}, 30, "half a line \xff\r", false},
                    {{105, 0, 2, OutputStream::kStderr}, 31, "", true}};
  m.lock_fd = 5;
  m.startup_env = HostileStrings();
  m.startup_env.push_back("PATH=/usr/bin:/bin");
  m.then_upgrades = {UpgradeStrategy::kSmooth, UpgradeStrategy::kFleet};
  m.reloads = 3;
  Zygote loaded;
  loaded.pid = 120;
  loaded.generation = 2;
  loaded.state = ZygoteState::kReady;
  loaded.started_at = std::chrono::nanoseconds(1'000'000'001);
  loaded.ready_at = std::chrono::nanoseconds(2'000'000'002);
  loaded.spawns = 4;
  Zygote gating;
  gating.pid = 121;
  gating.generation = 3;
  gating.started_at = std::chrono::nanoseconds(3'000'000'003);
  gating.closed_at = std::chrono::nanoseconds(4'000'000'004);
  gating.gates = UpgradeStrategy::kFleet;
  gating.fault = "protocol error: \xff\n";
  m.zygotes = {{loaded, 60, 5}, {gating, 61, 1}};
  m.zygote_failures = 2;
  m.zygote_respawn_at = std::chrono::nanoseconds(5'000'000'005);
  m.stand_in_fd = 70;
  return m;
}

// The same, with short strings: for the tests that decode it many times.
MasterState SmallRichState() {
  MasterState m = RichState();
  m.options.command = {"/bin/app", "x\xff", ""};
  m.startup_env = {"A=1", "B=\n"};
  return m;
}

std::string Refusal(std::string_view text) {
  const Result<MasterState> r = DecodeState(text);
  REQUIRE_FALSE(r.ok());
  CHECK_FALSE(r.error().empty());
  return r.error();
}

// `text` with its one occurrence of `from` replaced.
std::string Edit(std::string text, std::string_view from, std::string_view to) {
  const size_t at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, from);
  REQUIRE_MESSAGE(text.find(from, at + 1) == std::string::npos, from);
  return text.replace(at, from.size(), to);
}

TEST_CASE("the rich test state sets every field") {
  const MasterState m = RichState();
  const MasterState d;
  const Options& o = m.options;
  const Options& od = d.options;
  CHECK(o.number != od.number);
  CHECK(o.binds != od.binds);
  CHECK(o.command_name != od.command_name);
  CHECK(o.socket_path != od.socket_path);
  CHECK(o.pidfile != od.pidfile);
  CHECK(o.lockfile != od.lockfile);
  CHECK(o.kill_children_on_exit != od.kill_children_on_exit);
  CHECK(o.backlog != od.backlog);
  CHECK(o.ack_mode.kind != od.ack_mode.kind);
  CHECK(o.ack_mode.timer_seconds != od.ack_mode.timer_seconds);
  CHECK(o.verbosity != od.verbosity);
  CHECK(o.seconds != od.seconds);
  CHECK(o.signal_timeout != od.signal_timeout);
  CHECK(o.drop_env_vars != od.drop_env_vars);
  CHECK(o.nice.master != od.nice.master);
  CHECK(o.nice.worker != od.nice.worker);
  CHECK(o.nice.renice_cmd != od.nice.renice_cmd);
  CHECK(o.command_socket_as_fd != od.command_socket_as_fd);
  CHECK(o.control_allow_uids != od.control_allow_uids);
  CHECK(o.control_allow_gids != od.control_allow_gids);
  CHECK(o.command != od.command);
  CHECK(o.max_unacked != od.max_unacked);
  CHECK(o.max_upgrade_additional != od.max_upgrade_additional);
  CHECK(o.ack_timeout != od.ack_timeout);
  CHECK(o.upgrade_timeout != od.upgrade_timeout);
  CHECK(o.upgrade_max_failures != od.upgrade_max_failures);
  CHECK(o.canary != od.canary);
  CHECK(o.drain_signal != od.drain_signal);
  CHECK(o.reexec_as != od.reexec_as);
  CHECK(o.worker_output != od.worker_output);
  CHECK(o.worker_log_dir != od.worker_log_dir);
  CHECK(o.max_worker_memory.soft != od.max_worker_memory.soft);
  CHECK(o.max_worker_memory.hard != od.max_worker_memory.hard);
  CHECK(o.memory_interval != od.memory_interval);
  CHECK(o.memory_measure != od.memory_measure);
  CHECK(m.worker_pipes != d.worker_pipes);
  for (const BindSpec& b : o.binds) CHECK(b != BindSpec{});

  CHECK(m.self_path != d.self_path);
  CHECK(m.then_upgrades != d.then_upgrades);
  CHECK(m.reloads != d.reloads);
  const MasterState::Client dk;
  bool bound = false, unbound = false, half_line = false, subscribed = false, peer_set = false;
  for (const MasterState::Client& k : m.clients) {
    CHECK(k.fd != dk.fd);
    bound |= k.peer.bound_worker.has_value();
    unbound |= !k.peer.bound_worker;
    half_line |= !k.pending_input.empty();
    subscribed |= k.upgrade_id.has_value();
    peer_set |= k.peer.pid != 0 && k.peer.uid != -1 && k.peer.gid != -1 && !k.peer.lineage.empty();
  }
  CHECK((bound && unbound && half_line && subscribed && peer_set));

  const SupervisorSnapshot& s = m.supervisor;
  const SupervisorConfig dc;
  CHECK(s.config.target != dc.target);
  CHECK(s.config.ack_mode != dc.ack_mode);
  CHECK(s.config.backoff_base != dc.backoff_base);
  CHECK(s.config.signal_timeout != dc.signal_timeout);
  CHECK(s.config.drain_signal != dc.drain_signal);
  CHECK(s.config.kill_children_on_exit != dc.kill_children_on_exit);
  CHECK(s.config.jitter_seed != dc.jitter_seed);
  CHECK(s.config.upgrade.max_unacked != dc.upgrade.max_unacked);
  CHECK(s.config.upgrade.max_additional != dc.upgrade.max_additional);
  CHECK(s.config.upgrade.canary != dc.upgrade.canary);
  CHECK(s.config.upgrade.ack_timeout != dc.upgrade.ack_timeout);
  CHECK(s.config.upgrade.upgrade_timeout != dc.upgrade.upgrade_timeout);
  CHECK(s.config.upgrade.max_failures != dc.upgrade.max_failures);
  CHECK(s.rng != std::mt19937_64(42));  // used, not just seeded
  CHECK(s.generation == 3);
  CHECK(s.next_generation == 4);

  bool states[3] = {false, false, false};
  bool ready_at = false, signaled = false, kill_at = false, killed = false, pinged = false;
  bool detached = false, nonzero_index = false, status = false;
  for (const Worker& w : s.workers) {
    states[static_cast<int>(w.state)] = true;
    ready_at |= w.ready_at.has_value();
    signaled |= w.signaled_at.has_value();
    kill_at |= w.kill_at.has_value();
    killed |= w.killed;
    pinged |= w.pinged_at.has_value() && w.pinged_wall_ns.has_value() &&
              w.pinged_request_id.has_value();
    signaled &= w.signaled_at.has_value() == !w.signals_sent.empty();
    status |= !w.notify_status.empty();
    detached |= w.slot == -1;
    nonzero_index |= w.index > 0;
  }
  CHECK(states[0]);
  CHECK(states[1]);
  CHECK(states[2]);
  CHECK((ready_at && signaled && kill_at && killed && pinged && detached && nonzero_index));
  CHECK(status);

  bool pending = false, restarted = false, failing = false, exited = false, empty = false;
  for (const Slot& slot : s.slots) {
    pending |= slot.respawn_at.has_value();
    restarted |= slot.restarts > 0;
    failing |= slot.consecutive_failures > 0;
    exited |= slot.last_exit.has_value();
    empty |= !slot.pid;
  }
  CHECK((pending && failing && exited && empty));
  (void)restarted;  // slots are new at each upgrade; the round trip below sets it by hand

  REQUIRE(s.upgrade);
  CHECK(s.upgrade->strategy == UpgradeStrategy::kFleet);
  CHECK(s.upgrade->failures == 1);
  CHECK_FALSE(s.upgrade->last_failure.empty());
  REQUIRE(s.last_upgrade);
  CHECK_FALSE(s.last_upgrade->ok);
  CHECK_FALSE(s.last_upgrade->reason.empty());
  CHECK(CheckSnapshot(s).ok());
}

// One schema per struct drives both EncodeState and DecodeState (state.cc): a member added to a
// struct but not to its schema would be neither written nor read. Together with the round trip
// below (the rich state sets every field), this proves a field in the schema is carried.
TEST_CASE("the state's schema names every member of every carried struct") {
  const std::vector<StateSchemaCoverage> all = StateSchemaCoverages();
  CHECK(all.size() == 23);
  for (const StateSchemaCoverage& c : all) {
    INFO(c.type);
    CHECK(c.members > 0);
    CHECK(c.visited == c.members);
  }
}

TEST_CASE("a rich state round-trips to an equal state") {
  MasterState m = RichState();
  // What the scripted supervisor cannot reach in the same instant as an upgrade.
  m.supervisor.slots[0].restarts = 2;
  m.supervisor.slots[0].starts = 3;
  m.supervisor.stopping = StopKind::kTerminate;
  m.supervisor.finished = true;
  m.supervisor.exit_code = 3;
  m.supervisor.config.jitter = 0.125;
  m.supervisor.config.backoff_cap = Seconds(45);
  m.supervisor.config.rollback_kill_after = Seconds(7);
  m.supervisor.upgrade->reported_ready = 0;
  m.supervisor.upgrade->last_failure += "\n\xff";
  m.supervisor.last_upgrade->reason += "\0\n"s;
  REQUIRE(CheckSnapshot(m.supervisor).ok());

  const std::string text = EncodeState(m);
  const Result<MasterState> back = DecodeState(text);
  REQUIRE_MESSAGE(back.ok(), back.error());
  CHECK(back.value().options == m.options);
  CHECK(back.value().supervisor.config == m.supervisor.config);
  CHECK(back.value().supervisor.workers == m.supervisor.workers);
  CHECK(back.value().supervisor.slots == m.supervisor.slots);
  CHECK(back.value().supervisor.rng == m.supervisor.rng);
  CHECK(back.value().supervisor == m.supervisor);
  CHECK(back.value().listeners == m.listeners);
  CHECK(back.value().startup_env == m.startup_env);
  CHECK(back.value().clients == m.clients);
  CHECK(back.value() == m);
  // One encoding per value.
  CHECK(EncodeState(back.value()) == text);
  // Only printable ASCII and newlines, whatever the strings held.
  for (char c : text) CHECK_MESSAGE(((c >= 0x20 && c <= 0x7E) || c == '\n'), static_cast<int>(c));
}

TEST_CASE("the format is readable YAML with the version first") {
  const std::string text = EncodeState(RichState());
  CHECK(text.rfind("format: \"einhorn-cpp-state\"\nversion: 1\n", 0) == 0);
  CHECK(text.find("\nend: true\n") == text.size() - 11);
  CHECK(text.find("  command_name: \"app \\\"quoted\\\" \\\\ back\"\n") != std::string::npos);
  CHECK(text.find("  seconds: 0.1\n") != std::string::npos);
  CHECK(text.find("  drain_signal: SIGTERM\n") != std::string::npos);
  CHECK(text.find("- {pid: 100, slot: -1, index: 0, generation: 1, spawned_at: 0, ready_at: "
                  "1000000000, state: ready,") != std::string::npos);
  CHECK(text.find("  pidfile: !!binary \"L3J1bi9wCmlk\"\n") != std::string::npos);
}

TEST_CASE("every string field keeps any bytes") {
  std::vector<std::string> strings = HostileStrings();
  strings.push_back(std::string(200'000, '\xff'));
  strings.push_back(std::string(200'000, 'y'));
  for (const std::string& hostile : strings) {
    MasterState m = RichState();
    m.options.command = {"/bin/app", hostile};
    m.options.command_name = hostile;
    m.options.pidfile = hostile;
    m.options.nice.renice_cmd = hostile;
    m.options.binds[0].host = hostile;
    m.command_path = hostile;
    m.written_by = hostile;
    m.listeners[1].bound = hostile;
    m.startup_env = {hostile, hostile + "=" + hostile};
    m.options.reexec_as = {"/bin/e", hostile};
    m.self_path = "/" + hostile;
    m.clients[1].pending_input = hostile;
    m.clients[2].upgrade_id->text = hostile;
    m.supervisor.upgrade->last_failure = hostile;
    m.supervisor.last_upgrade->reason = hostile;
    const Result<MasterState> back = DecodeState(EncodeState(m));
    REQUIRE_MESSAGE(back.ok(), back.error());
    CHECK(back.value() == m);
  }
}

TEST_CASE("doubles and extreme integers round-trip exactly") {
  MasterState m = RichState();
  for (double v :
       {0.1, 1.0 / 3, 1e-300, 5e-324, 123456.123456789, 123456789.123456789, 1e300, 0.0}) {
    // Duration settings hold at most kMaxSettingSeconds (a larger one is refused, issue 14.4);
    // the manual-ack options keep an unused timer value of any size, which carries the rest.
    const bool setting = v <= kMaxSettingSeconds;
    m.options.seconds = v > 0 && setting ? v : 1;
    m.options.upgrade_timeout = setting ? v : 0;
    m.options.signal_timeout = setting ? v : 0;
    REQUIRE(m.options.ack_mode.kind == AckMode::Kind::kManual);
    m.options.ack_mode.timer_seconds = v;
    m.supervisor.config.jitter = v <= 1 ? v : 0.5;
    const Result<MasterState> back = DecodeState(EncodeState(m));
    REQUIRE_MESSAGE(back.ok(), back.error());
    CHECK(back.value() == m);
  }
  m.supervisor.config.jitter_seed = 0xFFFFFFFFFFFFFFFFull;
  m.supervisor.exit_code = -2147483647 - 1;
  m.supervisor.last_upgrade->generation = 2147483647;
  m.listeners[0].path_ino = 0;
  const Result<MasterState> back = DecodeState(EncodeState(m));
  REQUIRE_MESSAGE(back.ok(), back.error());
  CHECK(back.value() == m);
}

TEST_CASE("the clients are readable records") {
  const std::string text = EncodeState(RichState());
  CHECK(text.find("\nclients:\n  - {fd: 9, peer: {pid: 105, uid: 0, gid: 0, lineage: [105, 1], "
                  "bound_worker: 105}, pending_input: \"\", upgrade_id: null}\n") !=
        std::string::npos);
  CHECK(text.find("  - {fd: 12, peer: {pid: 4242, uid: 1001, gid: 1002, lineage: [4242, 4000, 1], "
                  "bound_worker: null}, pending_input: !!binary \"JTBB/wAN\", upgrade_id: {kind: "
                  "int, text: \"7\"}}\n") != std::string::npos);
  CHECK(text.find("  - {fd: 2, peer: {pid: 0, uid: -1, gid: -1, lineage: [], bound_worker: "
                  "null},") != std::string::npos);
  CHECK(text.find("\nself_path: ") != std::string::npos);
  // The rich state has worker pipes.
  CHECK(text.find("\nthen_upgrades: [smooth, fleet]\nreloads: 3\nworker_pipes:\n  - {tag: {pid: 105, "
                  "slot: 0, generation: 2, stream: stdout}, fd: 30, pending: !!binary "
                  "\"aGFsZiBhIGxpbmUg/w0=\", dropping: false}\n  - {tag: {pid: 105, slot: 0, "
                  "generation: 2, stream: stderr}, fd: 31, pending: \"\", dropping: true}\nzygotes:\n"
                  "  - {zygote: {pid: 120, generation: 2, state: ready, started_at: 1000000001, "
                  "ready_at: 2000000002, closed_at: null, spawns: 4, gates: null, fault: \"\"}, "
                  "fd: 60, next_id: 5}\n") != std::string::npos);
  // --preload's zygotes, the last optional keys before end.
  CHECK(text.find("\nzygote_failures: 2\nzygote_respawn_at: 5000000005\nstand_in_fd: 70\n"
                  "end: true\n") != std::string::npos);
  MasterState m = RichState();
  m.then_upgrades.clear();
  m.clients.clear();
  m.options.reexec_as.clear();
  const std::string plain = EncodeState(m);
  CHECK(plain.find("\nclients: []\n") != std::string::npos);
  CHECK(plain.find("\nthen_upgrades: []\n") != std::string::npos);
  CHECK(plain.find("\n  reexec_as: []\n") != std::string::npos);
  const Result<MasterState> back = DecodeState(plain);
  REQUIRE_MESSAGE(back.ok(), back.error());
  CHECK(back.value() == m);
  for (wire::Id::Kind kind : {wire::Id::Kind::kInt, wire::Id::Kind::kFloat, wire::Id::Kind::kBool,
                              wire::Id::Kind::kString}) {
    MasterState k = RichState();
    k.clients[2].upgrade_id->kind = kind;
    const Result<MasterState> r = DecodeState(EncodeState(k));
    REQUIRE_MESSAGE(r.ok(), r.error());
    CHECK(r.value() == k);
  }
  m.then_upgrades = {UpgradeStrategy::kFleet};
  CHECK(DecodeState(EncodeState(m)).value().then_upgrades ==
        std::vector<UpgradeStrategy>{UpgradeStrategy::kFleet});
}

TEST_CASE("ill-formed clients, paths and counters are refused by their path") {
  const std::string text = EncodeState(RichState());
  CHECK(Refusal(Edit(text, "peer: {pid: 4242,", "peer: {pid: -1,")) ==
        "clients[2].peer.pid: -1 is out of range (0..2147483647)");
  CHECK(Refusal(Edit(text, "uid: 1001, gid: 1002", "uid: -2, gid: 1002")) ==
        "clients[2].peer.uid: -2 is out of range (-1..2147483647)");
  CHECK(Refusal(Edit(text, "lineage: [4242, 4000, 1]", "lineage: [4242, 0, 1]")) ==
        "clients[2].peer.lineage[1]: 0 is out of range (1..2147483647)");
  CHECK(Refusal(Edit(text, "lineage: [4242, 4000, 1]", "lineage: 4242")) ==
        "clients[2].peer.lineage: expected a list");
  CHECK(Refusal(Edit(text, "bound_worker: 105}", "bound_worker: 0}")) ==
        "clients[0].peer.bound_worker: 0 is out of range (1..2147483647)");
  CHECK(Refusal(Edit(text, "{kind: int, text: \"7\"}", "{kind: integer, text: \"7\"}")) ==
        "clients[2].upgrade_id.kind: expected one of int, float, bool, string");
  CHECK(Refusal(Edit(text, "{kind: int, text: \"7\"}", "{kind: int, text: 7}")) ==
        "clients[2].upgrade_id.text: expected a string (double-quoted, or !!binary)");
  CHECK(Refusal(Edit(text, "{kind: int, text: \"7\"}", "{kind: int}")) ==
        "clients[2].upgrade_id.text: missing");
  CHECK(Refusal(Edit(text, "pending_input: \"\", upgrade_id: null}",
                     "pending_input: \"\", upgrade_id: null, ssl: false}")) ==
        "clients[0].ssl: unknown key");
  CHECK(Refusal(Edit(text, "\nthen_upgrades: [smooth, fleet]\n",
                     "\nthen_upgrades: [smooth, rolling]\n")) ==
        "then_upgrades[1]: expected one of smooth, fleet");
  CHECK(Refusal(Edit(text, "\nthen_upgrades: [smooth, fleet]\n", "\nthen_upgrades: smooth\n")) ==
        "then_upgrades: expected a list");
  CHECK(Refusal(Edit(text, "\nreloads: 3\n", "\nreloads: -1\n")) ==
        "reloads: -1 is out of range (0..2147483647)");
  CHECK(Refusal(Edit(text, "\nreloads: 3\n", "\n")) == "reloads: missing");
  CHECK(Refusal(Edit(text, "\nclients:\n", "\nworker_channels: []\nclients:\n")) ==
        "worker_channels: unknown key");
  {
    MasterState m = RichState();
    m.self_path = "bin/einhorn-cpp";
    CHECK(Refusal(EncodeState(m)) == "self_path: not an absolute path");
    m.self_path.clear();  // none: reload execs options.reexec_as or nothing
    CHECK(DecodeState(EncodeState(m)).ok());
  }
  {
    MasterState m = RichState();
    m.options.reexec_as = {"", "x"};
    CHECK(Refusal(EncodeState(m)) ==
          "options: --reexec-as: the program to exec is an empty string");
  }
}

TEST_CASE("a pool with no live worker and no upgrade round-trips") {
  MasterState m;
  m.options.command = {"w"};
  m.supervisor.slots.resize(1);  // its worker died, the respawn is due
  m.supervisor.slots[0].respawn_at = At(3);
  const Result<MasterState> back = DecodeState(EncodeState(m));
  REQUIRE_MESSAGE(back.ok(), back.error());
  CHECK(back.value() == m);
  CHECK(EncodeState(m).find("workers: []") != std::string::npos);
}

TEST_CASE("a newer version is refused with both versions named") {
  MasterState m = RichState();
  m.format_version = 2;
  CHECK(Refusal(EncodeState(m)) == "state version 2 is newer than this binary understands (1)");
  m.format_version = 0;
  CHECK(Refusal(EncodeState(m)) == "version: 0 is not a state version");
  // Even when the rest is something this binary cannot read.
  CHECK(Refusal("format: \"einhorn-cpp-state\"\nversion: 7\nsomething: [new]\n") ==
        "state version 7 is newer than this binary understands (1)");
}

TEST_CASE("another format is refused") {
  const std::string text = EncodeState(RichState());
  CHECK(Refusal(Edit(text, "format: \"einhorn-cpp-state\"", "format: \"tableflip\"")) ==
        "not an einhorn-cpp state (format: tableflip)");
  CHECK(Refusal(Edit(text, "format: \"einhorn-cpp-state\"\n", "")) ==
        "not an einhorn-cpp state (no format key)");
  CHECK(Refusal("[1, 2]") == "not an einhorn-cpp state (not a YAML mapping)");
  CHECK(Refusal("just text") == "not an einhorn-cpp state (not a YAML mapping)");
  CHECK(Refusal("") == "the state is empty");
  CHECK(Refusal("# only a comment\n") == "the state holds no YAML document");
  CHECK(Refusal("format: \"einhorn-cpp-state\"\nversion: \"1\"\n") ==
        "version: expected an integer");
}

TEST_CASE("missing, unknown and duplicate keys are refused by their path") {
  const std::string text = EncodeState(RichState());
  CHECK(Refusal(Edit(text, "  backlog: 17\n", "")) == "options.backlog: missing");
  CHECK(Refusal(Edit(text, "  backlog: 17\n", "  backlog: 17\n  backlogs: 1\n")) ==
        "options.backlogs: unknown key");
  CHECK(Refusal(Edit(text, "  backlog: 17\n", "  backlog: 17\n  backlog: 17\n")) ==
        "options.backlog: appears twice");
  CHECK(Refusal(Edit(text, ", killed: true,", ",")) == "supervisor.workers[3].killed: missing");
  CHECK(Refusal(Edit(text, "lock_fd: 5\n", "lock_fd: 5\nextra: {}\n")) == "extra: unknown key");
  CHECK(Refusal(Edit(text, "\nend: true\n", "\n")) ==
        "the state is truncated (it does not end with end: true)");
  CHECK(Refusal(Edit(text, "\nend: true\n", "\nend: false\n")) == "end: expected true");
}

TEST_CASE("ill-typed values are refused by their path") {
  const std::string text = EncodeState(RichState());
  CHECK(Refusal(Edit(text, "  backlog: 17\n", "  backlog: \"17\"\n")) ==
        "options.backlog: expected an integer");
  CHECK(Refusal(Edit(text, "  backlog: 17\n", "  backlog: 017\n")) ==
        "options.backlog: expected an integer");
  CHECK(Refusal(Edit(text, "  backlog: 17\n", "  backlog: 0x11\n")) ==
        "options.backlog: expected an integer");
  CHECK(Refusal(Edit(text, "  backlog: 17\n", "  backlog: 99999999999\n")) ==
        "options.backlog: 99999999999 is out of range (-2147483648..2147483647)");
  CHECK(Refusal(Edit(text, "  backlog: 17\n", "  backlog: [17]\n")) ==
        "options.backlog: expected an integer");
  CHECK(Refusal(Edit(text, "  backlog: 17\n", "  backlog:\n")) ==
        "options.backlog: expected an integer");
  CHECK(Refusal(Edit(text, ", killed: true,", ", killed: 1,")) ==
        "supervisor.workers[3].killed: expected true or false");
  CHECK(Refusal(Edit(text, "  seconds: 0.1\n", "  seconds: .nan\n")) ==
        "options.seconds: expected a finite number");
  CHECK(Refusal(Edit(text, "  seconds: 0.1\n", "  seconds: 1e999\n")) ==
        "options.seconds: expected a finite number");
  CHECK(Refusal(Edit(text, "\n  drain_signal: SIGTERM\n", "\n  drain_signal: TERM\n")) ==
        "options.drain_signal: expected one of SIGHUP, SIGINT, SIGQUIT, SIGKILL, SIGUSR1, "
        "SIGUSR2, SIGTERM, SIGTTIN, SIGTTOU, SIGABRT, SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV, "
        "SIGPIPE, SIGALRM, SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGURG, SIGXCPU, SIGXFSZ, "
        "SIGVTALRM, SIGPROF, SIGWINCH, SIGIO, SIGPWR, SIGSYS");
  CHECK(Refusal(Edit(text, "renice_cmd: \"renice -n\"", "renice_cmd: renice")) ==
        "options.nice.renice_cmd: expected a string (double-quoted, or !!binary)");
  CHECK(Refusal(Edit(text, "  pidfile: !!binary \"L3J1bi9wCmlk\"",
                     "  pidfile: !!binary \"L3J1bi9wCml=\"")) ==
        "options.pidfile: not valid base64");
  CHECK(Refusal(Edit(text, "  pidfile: !!binary \"L3J1bi9wCmlk\"",
                     "  pidfile: !!binary \"L3J1b\"")) == "options.pidfile: not valid base64");
  CHECK(Refusal(Edit(text, "  pidfile: !!binary \"L3J1bi9wCmlk\"", "  pidfile: !local \"x\"")) ==
        "not a state written by einhorn-cpp: it has the tag !local");
  CHECK(Refusal(Edit(text, "  binds:\n", "  binds: {}\n  old_binds:\n")) ==
        "options.binds: expected a list");
}

TEST_CASE("a state that breaks the supervisor's structure is refused") {
  {
    MasterState m = RichState();
    m.supervisor.slots[1].pid = 4242;
    CHECK(Refusal(EncodeState(m)) == "supervisor.slots[1].pid: 4242 is not a worker of this slot");
  }
  {
    MasterState m = RichState();
    m.supervisor.workers[0].slot = 7;
    CHECK(Refusal(EncodeState(m)) == "supervisor.workers[0].slot: 7 is out of range (-1..2)");
  }
  {
    MasterState m = RichState();
    std::swap(m.supervisor.workers[0], m.supervisor.workers[1]);
    CHECK(Refusal(EncodeState(m)) ==
          "supervisor.workers[1].pid: 100 is out of order (ascending, each once)");
  }
  {
    MasterState m = RichState();
    m.supervisor.workers[2].spawned_at = Time(-1);
    CHECK(Refusal(EncodeState(m)) ==
          "supervisor.workers[2].spawned_at: -1 ns is out of range (0..2305843009213693952)");
  }
  {
    MasterState m = RichState();
    m.supervisor.generation = 4;
    CHECK(Refusal(EncodeState(m)) == "supervisor.generation: 4 is out of range (1..3)");
  }
  {
    MasterState m = RichState();
    m.supervisor.slots.pop_back();
    CHECK(Refusal(EncodeState(m)).find("supervisor.") == 0);
  }
  {
    const std::string text = EncodeState(RichState());
    const size_t at = text.find("  rng: \"") + 8;
    std::string broken = text;
    broken.insert(at, "-");
    CHECK(Refusal(broken) == "supervisor.rng: not a std::mt19937_64 state");
  }
}

TEST_CASE("fds must be distinct and options valid") {
  {
    MasterState m = RichState();
    m.lock_fd = 3;
    CHECK(Refusal(EncodeState(m)) == "lock_fd: fd 3 is also listeners[0].fd");
  }
  {
    MasterState m = RichState();
    m.clients[1].fd = 9;
    CHECK(Refusal(EncodeState(m)) == "clients[1].fd: fd 9 is also clients[0].fd");
  }
  {
    MasterState m = RichState();
    m.clients[3].fd = 7;
    CHECK(Refusal(EncodeState(m)) == "clients[3].fd: fd 7 is also control.fd");
  }
  {
    MasterState m = RichState();
    m.stand_in_fd = 9;
    CHECK(Refusal(EncodeState(m)) == "stand_in_fd: fd 9 is also clients[0].fd");
  }
  CHECK(Refusal(Edit(EncodeState(RichState()), "stand_in_fd: 70", "stand_in_fd: -2")) ==
        "stand_in_fd: -2 is not an fd");
  {
    // None: not written, and read back as none.
    MasterState m = RichState();
    m.stand_in_fd = -1;
    const std::string text = EncodeState(m);
    CHECK(text.find("stand_in_fd") == std::string::npos);
    const Result<MasterState> back = DecodeState(text);
    REQUIRE(back.ok());
    CHECK(back.value().stand_in_fd == -1);
  }
  {
    MasterState m = RichState();
    m.lock_fd = 12;
    CHECK(Refusal(EncodeState(m)) == "lock_fd: fd 12 is also clients[2].fd");
  }
  {
    MasterState m = RichState();
    m.clients[0].fd = -1;
    CHECK(Refusal(EncodeState(m)) == "clients[0].fd: -1 is not an fd");
  }
  {
    MasterState m = RichState();
    m.notify_sockets[1].fd = 9;
    CHECK(Refusal(EncodeState(m)) == "notify_sockets[1].fd: fd 9 is also clients[0].fd");
  }
  {
    MasterState m = RichState();
    m.notify_sockets[1].worker = 105;
    CHECK(Refusal(EncodeState(m)) ==
          "notify_sockets[1].worker: worker 105 has another notify socket");
  }
  {
    MasterState m = RichState();
    m.notify_sockets[0].worker = 0;
    CHECK(Refusal(EncodeState(m)) == "notify_sockets[0].worker: 0 is not a pid");
  }
  {
    MasterState m = RichState();
    m.clients[1].peer.bound_worker = 105;
    CHECK(Refusal(EncodeState(m)) ==
          "clients[1].peer.bound_worker: worker 105 has another channel");
  }
  {
    MasterState m = RichState();
    m.listeners[0].fd = -1;
    CHECK(Refusal(EncodeState(m)) == "listeners[0].fd: -1 is not an fd");
  }
  {
    MasterState m = RichState();
    m.lock_fd = -1;
    m.control.fd = -1;
    CHECK(DecodeState(EncodeState(m)).ok());  // none is fine for these two
  }
  {
    MasterState m = RichState();
    m.options.number = 0;
    CHECK(Refusal(EncodeState(m)) == "options: -n/--number must be at least 1 (got 0)");
  }
}

TEST_CASE("hostile YAML is refused before it is built") {
  CHECK(Refusal("a: &x [1]\nb: *x\n") == "not a state written by einhorn-cpp: it has an anchor");
  CHECK(Refusal("a: *x\n").find("not") == 0);
  CHECK(Refusal("a: 1\n---\nb: 2\n") == "more than one YAML document");
  CHECK(Refusal(std::string(100'000, '[') + std::string(100'000, ']')).find("not") == 0);
  StateLimits small;
  small.max_nodes = 1000;
  small.max_bytes = 5000;
  small.max_depth = 4;
  std::string many = "a: [";
  for (int i = 0; i < 999; ++i) many += "1,";
  many += "1]\n";  // 1002 nodes, 2004 bytes
  CHECK(DecodeState(many, small).error() ==
        "not a state written by einhorn-cpp: it has more than 1000 nodes");
  CHECK(DecodeState(std::string(5001, ' '), small).error() ==
        "the state is 5001 bytes, more than the limit of 5000");
  CHECK(DecodeState("a: [[[[1]]]]", small).error() ==
        "not a state written by einhorn-cpp: it has nesting deeper than 4");
  CHECK(DecodeState("a: [[[1]]]", small).error() == "not an einhorn-cpp state (no format key)");
  CHECK(Refusal("format: \"einhorn-cpp-state\"\t\n") ==
        "not a state written by einhorn-cpp: byte 0x09 at offset 27");
  CHECK(Refusal("format: \"\xc3\xa9\"\n") ==
        "not a state written by einhorn-cpp: byte 0xC3 at offset 9");
  CHECK(Refusal(std::string(kMaxStateBytes + 1, ' ')) ==
        "the state is 67108865 bytes, more than the limit of 67108864");
  CHECK(Refusal("{a: [1, {b: \"x").find("not valid YAML") == 0);
}

TEST_CASE("a byte EncodeState never writes is refused at its offset, wherever it is") {
  const std::string text = EncodeState(SmallRichState());
  REQUIRE(text.size() > 300);
  // Either side of each 64-byte block CheckBytes scans at once, and the tail after the last.
  for (const size_t at : {size_t{0}, size_t{63}, size_t{64}, size_t{65}, size_t{127}, size_t{128},
                          text.size() / 64 * 64 - 1, text.size() / 64 * 64, text.size() - 2}) {
    for (const char bad : {'\t', '\r', '\x7f', '\x80', '\xff', '\0'}) {
      std::string mutated = text;
      mutated[at] = bad;
      char want[96];
      std::snprintf(want, sizeof want, "not a state written by einhorn-cpp: byte 0x%02X at offset %zu",
                    static_cast<unsigned>(static_cast<unsigned char>(bad)), at);
      INFO("offset " << at);
      CHECK(Refusal(mutated) == want);
    }
  }
  // The first of two is named.
  std::string two = text;
  two[200] = '\x01';
  two[100] = '\x02';
  CHECK(Refusal(two) == "not a state written by einhorn-cpp: byte 0x02 at offset 100");
}

TEST_CASE("a truncated state is refused at every length") {
  const std::string text = EncodeState(SmallRichState());
  REQUIRE(DecodeState(text).ok());
  REQUIRE(DecodeState(text.substr(0, text.size() - 1)).ok());  // only the final newline
  size_t refused = 0;
  for (size_t len = 0; len + 1 < text.size(); ++len) {
    // Every line boundary and the bytes around it, and every 11th byte in between.
    const bool near_newline = text[len] == '\n' || (len > 0 && text[len - 1] == '\n') ||
                              (len + 1 < text.size() && text[len + 1] == '\n');
    if (!near_newline && len % 11 != 0) continue;
    const Result<MasterState> r = DecodeState(std::string_view(text).substr(0, len));
    CHECK_MESSAGE(!r.ok(), "accepted a prefix of ", len, " bytes of ", text.size());
    ++refused;
  }
  CHECK(refused > text.size() / 11);
}

// A piece of 1 to 64 bytes at a random place, removed or repeated.
void CutOrRepeatPiece(std::mt19937& rng, std::string* input) {
  const size_t at = rng() % input->size();
  const size_t len = 1 + rng() % 64;
  if (rng() % 2 == 0) {
    input->erase(at, len);
  } else {
    input->insert(at, input->substr(at, len));
  }
}

TEST_CASE("random bytes and mutated states never crash the decoder") {
  const std::string valid = EncodeState(SmallRichState());
  std::mt19937 rng(12345);
  auto byte = [&rng] { return static_cast<char>(rng() & 0xFF); };
  int accepted = 0;
  for (int round = 0; round < 1200; ++round) {
    std::string input;
    switch (round % 3) {
      case 0: {  // random bytes, often printable (to get past the byte check)
        const size_t len = rng() % 400;
        for (size_t i = 0; i < len; ++i) {
          input += rng() % 4 == 0 ? byte() : " \n:-[]{},\"!&*#ab01"[rng() % 18];
        }
        break;
      }
      case 1: {  // a valid state with a few bytes changed
        input = valid;
        for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n; ++k) {
          input[rng() % input.size()] = " \n:-[]{},\"01x"[rng() % 13];
        }
        break;
      }
      default:  // a valid state with a piece removed or repeated
        input = valid;
        CutOrRepeatPiece(rng, &input);
    }
    const Result<MasterState> r = DecodeState(input);
    if (!r.ok()) {
      CHECK_FALSE(r.error().empty());
      continue;
    }
    ++accepted;
    // Whatever is accepted is a state: it encodes and decodes to itself.
    const std::string again = EncodeState(r.value());
    const Result<MasterState> back = DecodeState(again);
    REQUIRE_MESSAGE(back.ok(), back.error());
    CHECK(back.value() == r.value());
    CHECK(CheckSnapshot(r.value().supervisor).ok());
  }
  CHECK(accepted > 0);  // some mutations only change a value
}

// A valid state with a few bytes changed (even rounds), or a piece cut or repeated (odd ones).
std::string Mutated(const std::string& valid, int round, std::mt19937& rng) {
  constexpr std::string_view kAlphabet = " \n:-[]{},\"\\!01xn~#&*'|>.+";
  std::string input = valid;
  if (round % 2 == 0) {
    for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n; ++k) {
      input[rng() % input.size()] = kAlphabet[rng() % kAlphabet.size()];
    }
  } else {
    CutOrRepeatPiece(rng, &input);
  }
  return input;
}

// The one-pass reader of EncodeState's layout (state_format::ParseOurs) is what a reload
// reads the state with (yaml-cpp took 0.1 s for 1000 workers, the whole of the master's silence
// during an upgrade: issue 20). Whatever it accepts, it must read as yaml-cpp does.
std::optional<text::Node> YamlCppTree(const std::string& bytes, const StateLimits& limits = {}) {
  try {
    return state_format::ParseWithYamlCpp(bytes, limits);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The states both readers are checked on: the rich ones, the empty one, and every hostile
// string in fields written quoted, as !!binary, or inside a worker's flow record.
std::vector<MasterState> StatesToRead() {
  std::vector<MasterState> states = {RichState(), SmallRichState(), MasterState{}};
  for (const std::string& hostile : HostileStrings()) {
    MasterState m = SmallRichState();
    m.command_path = hostile;
    m.startup_env.push_back(hostile);
    m.supervisor.workers.front().notify_status = hostile;
    states.push_back(m);
  }
  return states;
}

TEST_CASE("state: every state EncodeState writes is read in one pass, to yaml-cpp's tree") {
  for (const MasterState& m : StatesToRead()) {
    const std::string bytes = EncodeState(m);
    const std::optional<text::Node> ours = state_format::ParseOurs(bytes, StateLimits{});
    REQUIRE_MESSAGE(ours.has_value(), bytes.substr(0, 200));
    const std::optional<text::Node> theirs = YamlCppTree(bytes);
    REQUIRE(theirs.has_value());
    CHECK(*ours == *theirs);
  }
}

TEST_CASE("state: the one-pass reader reads mutated states as yaml-cpp does, or leaves them to it") {
  const std::string valid = EncodeState(SmallRichState());
  std::mt19937 rng(4242);
  int taken = 0, left = 0;
  for (int round = 0; round < 3000; ++round) {
    const std::string input = Mutated(valid, round, rng);
    const std::optional<text::Node> ours = state_format::ParseOurs(input, StateLimits{});
    if (!ours) {
      ++left;
      continue;
    }
    ++taken;
    const std::optional<text::Node> theirs = YamlCppTree(input);
    REQUIRE_MESSAGE(theirs.has_value(), input);
    CHECK_MESSAGE(*ours == *theirs, input);
  }
  CHECK(taken > 0);
  CHECK(left > 0);
}

TEST_CASE("state: past the node or depth limit the one-pass reader leaves the refusal to yaml-cpp") {
  const std::string bytes = EncodeState(SmallRichState());
  StateLimits few;
  few.max_nodes = 50;
  CHECK_FALSE(state_format::ParseOurs(bytes, few).has_value());
  StateLimits shallow;
  shallow.max_depth = 2;
  CHECK_FALSE(state_format::ParseOurs(bytes, shallow).has_value());
  const Result<MasterState> r = DecodeState(bytes, few);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "not a state written by einhorn-cpp: it has more than 50 nodes");
}

// The canonical reader (core/state_stream.h) is what a reload reads the state with: straight
// into the structs, without the tree (10 ms of the new image's 17 ms of silence at 1000
// workers: issue 20). It must read every state EncodeState writes, and whatever it accepts it
// must read as the general reader does.
void CheckReadersAgree(const std::string& bytes, const StateLimits& limits = {}) {
  const std::optional<MasterState> canonical = ReadStateCanonical(bytes, limits);
  REQUIRE_MESSAGE(canonical.has_value(), bytes.substr(0, 300));
  const Result<MasterState> general = ReadStateGeneral(bytes, limits);
  REQUIRE_MESSAGE(general.ok(), general.error());
  CHECK(*canonical == general.value());
}

TEST_CASE("state: the canonical reader reads every state EncodeState writes, as the general one") {
  for (const MasterState& m : StatesToRead()) {
    const std::string bytes = EncodeState(m);
    CheckReadersAgree(bytes);
    CHECK(*ReadStateCanonical(bytes) == m);
  }
}

TEST_CASE("state: the canonical reader reads mutated states as the general one, or declines") {
  const std::string valid = EncodeState(RichState());
  std::mt19937 rng(777);
  int taken = 0, left = 0;
  for (int round = 0; round < 3000; ++round) {
    const std::string input = Mutated(valid, round, rng);
    const std::optional<MasterState> canonical = ReadStateCanonical(input);
    if (!canonical) {
      ++left;
      continue;
    }
    ++taken;
    const Result<MasterState> general = ReadStateGeneral(input);
    REQUIRE_MESSAGE(general.ok(), input);
    CHECK_MESSAGE(*canonical == general.value(), input);
  }
  CHECK(taken > 0);  // a changed digit, a piece of a quoted string
  CHECK(left > 0);
}

TEST_CASE("state: the canonical reader declines other layouts, and the general one decides") {
  const MasterState original = SmallRichState();
  const std::string valid = EncodeState(original);
  auto edited = [&](std::string_view from, std::string_view to) {
    std::string text = valid;
    const size_t at = text.find(from);
    REQUIRE_MESSAGE(at != std::string::npos, from);
    return text.replace(at, from.size(), to);
  };
  // Another order, other spacing: the same state.
  const size_t verbosity = valid.find("\nverbosity: ") + 1;
  const size_t line_end = valid.find('\n', verbosity) + 1;
  std::string reordered = valid;
  reordered.erase(verbosity, line_end - verbosity);
  reordered.insert(reordered.find("options:\n"), valid.substr(verbosity, line_end - verbosity));
  for (const std::string& text : {reordered, edited("{pid: ", "{pid:  ")}) {
    CHECK_FALSE(ReadStateCanonical(text).has_value());
    const Result<MasterState> r = DecodeState(text);
    REQUIRE_MESSAGE(r.ok(), r.error());
    CHECK(r.value() == original);
  }
  // An unknown key, a value its codec refuses: refused, with the general reader's messages.
  const std::string unknown = edited("\nverbosity: ", "\nzz: 0\nverbosity: ");
  CHECK_FALSE(ReadStateCanonical(unknown).has_value());
  CHECK(DecodeState(unknown).error() == "zz: unknown key");
  const std::string misspelt = edited("state: ready", "state: reddy");
  CHECK_FALSE(ReadStateCanonical(misspelt).has_value());
  CHECK(DecodeState(misspelt).error().find(".state: expected one of booting, ready, draining") !=
        std::string::npos);
  // Past the node or depth limit: declined, and refused by the general reader.
  StateLimits few;
  few.max_nodes = 50;
  CHECK_FALSE(ReadStateCanonical(valid, few).has_value());
  CHECK_FALSE(DecodeState(valid, few).ok());
  StateLimits shallow;
  shallow.max_depth = 2;
  CHECK_FALSE(ReadStateCanonical(valid, shallow).has_value());
  CHECK_FALSE(DecodeState(valid, shallow).ok());
}

TEST_CASE("a large pool in a fleet upgrade fits the limits") {
  // 10,000 workers upgrading: twice as many processes, each slot holding a new one.
  MasterState m;
  m.options.command = {"w"};
  m.options.number = 10000;
  SupervisorSnapshot& s = m.supervisor;
  s.config.target = 10000;
  s.generation = 2;
  s.next_generation = 3;
  s.upgrade.emplace();
  s.upgrade->from_generation = 1;
  s.upgrade->to_generation = 2;
  s.slots.resize(10000);
  for (int i = 0; i < 20000; ++i) {
    Worker w;
    w.pid = 100000 + i;
    w.index = i;
    w.generation = i < 10000 ? 1 : 2;
    w.slot = i < 10000 ? -1 : i - 10000;
    w.spawned_at = At(1000 + i);
    w.state = i < 10000 ? WorkerState::kReady : WorkerState::kBooting;
    if (i < 10000) w.ready_at = At(1001 + i);
    if (w.slot >= 0) {
      s.slots[static_cast<size_t>(w.slot)].pid = w.pid;
      s.slots[static_cast<size_t>(w.slot)].starts = 1;
      s.slots[static_cast<size_t>(w.slot)].last_exit = kKilled;
    }
    s.workers.push_back(w);
  }
  for (int i = 0; i < 200; ++i) m.startup_env.push_back("VAR" + std::to_string(i) + "=value");
  const std::string text = EncodeState(m);
  CHECK(text.size() < 8u << 20);
  CHECK(state_format::ParseOurs(text, StateLimits{}).has_value());
  CheckReadersAgree(text);
  const Result<MasterState> back = DecodeState(text);
  REQUIRE_MESSAGE(back.ok(), back.error());
  CHECK(back.value() == m);
}

}  // namespace
}  // namespace einhorn::core

namespace einhorn::core {
namespace {

TEST_CASE("state: the config file's path and the first command line travel, when there are any") {
  MasterState m = SmallRichState();
  m.config_path = "/etc/einhorn-cpp/app.yaml";
  m.argv = {"einhorn-cpp", "--config", "app.yaml", "-n", "3", "--", "w"};
  const std::string text = EncodeState(m);
  auto d = DecodeState(text);
  REQUIRE(d.ok());
  CHECK(d.value() == m);
  CHECK(Refusal(Edit(text, "config_path: \"/etc", "config_path: \"etc")) ==
        "config_path: not an absolute path");
  // Written without --config, or by a binary from before --config: neither key.
  const std::string plain = EncodeState(SmallRichState());
  CHECK(plain.find("config_path") == std::string::npos);
  CHECK(plain.find("\nargv:") == std::string::npos);
  REQUIRE(DecodeState(plain).ok());
  CHECK(DecodeState(plain).value().config_path.empty());
}

TEST_CASE("state: a worker's ping and the signals it was sent travel, and older states lack them") {
  const MasterState m = RichState();
  const std::string text = EncodeState(m);
  CHECK(text.find("pinged_request_id: {kind: string, text: \"req \\\"7\\\"\"}") !=
        std::string::npos);
  CHECK(text.find("pinged_wall_ns: 1700000000123456789") != std::string::npos);
  CHECK(text.find("signals_sent: [SIGTERM]") != std::string::npos);
  auto d = DecodeState(text);
  REQUIRE(d.ok());
  CHECK(d.value() == m);

  // An image from before these fields wrote none of the three keys: it still decodes, with no
  // request_id, no wall clock and no signal known.
  std::string old = text;
  for (const char* key : {", pinged_wall_ns: ", ", pinged_request_id: ", ", signals_sent: "}) {
    for (size_t at = old.find(key); at != std::string::npos; at = old.find(key)) {
      // The value ends at the next ", <key>:" of the record.
      const size_t end = old.find(", ", old.find(": ", at + 2) + 2);
      size_t stop = end;
      // A flow value ({...} or [...]) may hold ", " itself.
      const char open = old[at + std::string(key).size()];
      if (open == '{' || open == '[') stop = old.find(open == '{' ? '}' : ']', at) + 1;
      old.erase(at, stop - at);
    }
  }
  CHECK(old.find("pinged_wall_ns") == std::string::npos);
  CHECK(old.find("signals_sent") == std::string::npos);
  auto o = DecodeState(old);
  REQUIRE_MESSAGE(o.ok(), o.error());
  for (const Worker& w : o.value().supervisor.workers) {
    CHECK_FALSE(w.pinged_wall_ns.has_value());
    CHECK_FALSE(w.pinged_request_id.has_value());
    CHECK(w.signals_sent.empty());
  }
  CHECK(Refusal(Edit(text, "signals_sent: [SIGTERM]", "signals_sent: [SIGFOO]"))
            .find("signals_sent[0]: expected one of") != std::string::npos);
}

TEST_CASE("state: the stop ladder's rung, the reminder and drain starts travel, and older states lack them") {
  MasterState m = RichState();
  bool draining = false;
  for (const Worker& w : m.supervisor.workers) {
    if (w.state != WorkerState::kDraining) continue;
    draining = true;
    CHECK(w.draining_since.has_value());  // set by the supervisor that drained it
  }
  REQUIRE(draining);
  m.supervisor.stop_step = StopStep::kTerm;
  m.supervisor.drain_reminder = Seconds(1234);
  m.supervisor.stopping = StopKind::kDrain;
  const std::string text = EncodeState(m);
  CHECK(text.find("\n  stop_step: term\n") != std::string::npos);
  CHECK(text.find("\n  drain_reminder: 1234000000000\n") != std::string::npos);
  CHECK(text.find(", draining_since: ") != std::string::npos);
  auto d = DecodeState(text);
  REQUIRE_MESSAGE(d.ok(), d.error());
  CHECK(d.value() == m);
  CHECK(Refusal(Edit(text, "stop_step: term", "stop_step: gentle")).find("stop_step") !=
        std::string::npos);

  // Unset, they are not written: an older binary reads the state of a pool that is not
  // stopping and has nothing draining.
  const std::string plain = EncodeState(RichState());
  CHECK(plain.find("stop_step") == std::string::npos);
  CHECK(plain.find("drain_reminder") == std::string::npos);

  // An image from before draining_since: a draining worker drains since its signal.
  std::string old = plain;
  for (size_t at = old.find(", draining_since: "); at != std::string::npos;
       at = old.find(", draining_since: ")) {
    old.erase(at, old.find('}', at) - at);
  }
  REQUIRE(old.find("draining_since") == std::string::npos);
  auto o = DecodeState(old);
  REQUIRE_MESSAGE(o.ok(), o.error());
  for (const Worker& w : o.value().supervisor.workers) {
    if (w.state == WorkerState::kDraining) {
      CHECK(w.draining_since == w.signaled_at);
    } else {
      CHECK_FALSE(w.draining_since.has_value());
    }
  }
}

TEST_CASE("state: every signal a die may have recorded travels (die CONT, die WINCH...)") {
  MasterState m = RichState();
  Worker* signalled = nullptr;
  for (Worker& w : m.supervisor.workers) {
    if (!w.signals_sent.empty()) signalled = &w;
  }
  REQUIRE(signalled != nullptr);
  signalled->signals_sent.clear();
  for (const auto& [sig, name] : kSignalNames) signalled->signals_sent.push_back(sig);
  const std::string text = EncodeState(m);
  CHECK(text.find("SIGCONT, SIGSTOP, SIGTSTP, SIGURG") != std::string::npos);
  auto d = DecodeState(text);
  REQUIRE_MESSAGE(d.ok(), d.error());
  CHECK(d.value() == m);
}

TEST_CASE("state: worker_output and worker_log_dir travel, written only when set") {
  MasterState m = SmallRichState();
  m.options.worker_output.reset();
  m.options.worker_log_dir.clear();
  m.worker_pipes.clear();
  const std::string plain = EncodeState(m);
  CHECK(plain.find("worker_pipes") == std::string::npos);
  REQUIRE(DecodeState(plain).ok());
  CHECK(plain.find("worker_output") == std::string::npos);
  CHECK(plain.find("worker_log_dir") == std::string::npos);
  m.options.worker_output = WorkerOutput::kJson;
  m.options.worker_log_dir = "/var/log/app";
  m.worker_pipes = {{{99, 3, 1, OutputStream::kStderr}, 40, "x", false}};
  const std::string text = EncodeState(m);
  auto d = DecodeState(text);
  REQUIRE_MESSAGE(d.ok(), d.error());
  CHECK(d.value() == m);
  // The pipes are carried fds like any other: each once, and a worker's pid.
  m.worker_pipes[0].fd = 14;
  CHECK(Refusal(EncodeState(m)) == "worker_pipes[0].fd: fd 14 is also notify_sockets[0].fd");
  CHECK(Refusal(Edit(text, "{pid: 99,", "{pid: 0,")).find("worker_pipes[0].tag.pid") !=
        std::string::npos);
}

}  // namespace
}  // namespace einhorn::core
