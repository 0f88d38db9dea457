#include "core/pool_status.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace einhorn::core {
namespace {

PoolStatus Full() {
  PoolStatus s;
  s.master_pid = 1234;
  s.version = "0.1.0";
  s.command_name = "yes";  // must stay a string, not become a bool
  s.target = 4;
  s.generation = 3;
  s.ack_mode = "timer 1s";
  s.verbosity = 2;
  s.stopping = true;
  s.reloads = 2;
  s.reload_failures = 3;
  s.reloading = true;
  s.watchdog_timeouts = 4;
  s.last_reload_error = "the upgrade check of /usr/bin/einhorn-cpp failed (exit 1)";
  s.booting = 1;
  s.ready = 2;
  s.draining = 1;
  WorkerStatus a;
  a.slot = 0;
  a.index = 0;
  a.pid = 101;
  a.generation = 3;
  a.state = "ready";
  a.time_to_ready = 1.001;
  a.uptime = 35.2;
  a.restarts = 0;
  a.last_exit = "exit 1";
  a.notify_status = "serving 3 req/s";
  a.pinged_ago = 2.5;
  a.pinged_request_id = "req-\"1\"";
  WorkerStatus b;
  b.slot = 1;
  b.index = 5;
  b.pid = 102;
  b.generation = 2;
  b.state = "draining";
  b.time_to_ready = 0.25;
  b.uptime = 7200.5;
  b.restarts = 7;
  WorkerStatus c;
  c.slot = 3;
  c.index = 3;
  c.pid = 103;
  c.generation = 3;
  c.state = "booting";
  c.uptime = 0.1;
  s.workers = {a, b, c};
  PendingSlot p;
  p.slot = 2;
  p.respawn_in = 3.4;
  p.consecutive_failures = 3;
  p.restarts = 5;
  p.last_exit = "signal 9";
  s.pending = {p};
  UpgradeStatus u;
  u.strategy = "fleet";
  u.from_generation = 2;
  u.to_generation = 3;
  u.elapsed = 12.5;
  u.failures = 1;
  u.new_ready = 2;
  u.old_remaining = 1;
  s.upgrade = u;
  LastUpgradeStatus l;
  l.ok = false;
  l.generation = 2;
  l.reason = "3 new workers failed: exit 1";
  l.ago = 600.25;
  s.last_upgrade = l;
  return s;
}

void CheckSame(const PoolStatus& x, const PoolStatus& y) {
  CHECK(x.master_pid == y.master_pid);
  CHECK(x.version == y.version);
  CHECK(x.command_name == y.command_name);
  CHECK(x.target == y.target);
  CHECK(x.generation == y.generation);
  CHECK(x.ack_mode == y.ack_mode);
  CHECK(x.verbosity == y.verbosity);
  CHECK(x.stopping == y.stopping);
  CHECK(x.reloads == y.reloads);
  CHECK(x.reload_failures == y.reload_failures);
  CHECK(x.reloading == y.reloading);
  CHECK(x.booting == y.booting);
  CHECK(x.ready == y.ready);
  CHECK(x.draining == y.draining);
  REQUIRE(x.upgrade.has_value() == y.upgrade.has_value());
  if (x.upgrade) {
    CHECK(x.upgrade->strategy == y.upgrade->strategy);
    CHECK(x.upgrade->from_generation == y.upgrade->from_generation);
    CHECK(x.upgrade->to_generation == y.upgrade->to_generation);
    CHECK(x.upgrade->elapsed == y.upgrade->elapsed);
    CHECK(x.upgrade->failures == y.upgrade->failures);
    CHECK(x.upgrade->new_ready == y.upgrade->new_ready);
    CHECK(x.upgrade->old_remaining == y.upgrade->old_remaining);
  }
  REQUIRE(x.last_upgrade.has_value() == y.last_upgrade.has_value());
  if (x.last_upgrade) {
    CHECK(x.last_upgrade->ok == y.last_upgrade->ok);
    CHECK(x.last_upgrade->generation == y.last_upgrade->generation);
    CHECK(x.last_upgrade->reason == y.last_upgrade->reason);
    CHECK(x.last_upgrade->ago == y.last_upgrade->ago);
  }
  REQUIRE(x.workers.size() == y.workers.size());
  for (size_t i = 0; i < x.workers.size(); ++i) {
    const WorkerStatus& a = x.workers[i];
    const WorkerStatus& b = y.workers[i];
    CHECK(a.slot == b.slot);
    CHECK(a.index == b.index);
    CHECK(a.pid == b.pid);
    CHECK(a.generation == b.generation);
    CHECK(a.state == b.state);
    CHECK(a.time_to_ready == b.time_to_ready);
    CHECK(a.uptime == b.uptime);
    CHECK(a.restarts == b.restarts);
    CHECK(a.last_exit == b.last_exit);
    CHECK(a.pinged_ago == b.pinged_ago);
    CHECK(a.pinged_request_id == b.pinged_request_id);
    CHECK(a.draining_for == b.draining_for);
    CHECK(a.memory_bytes == b.memory_bytes);
    CHECK(a.memory_sampled_ago == b.memory_sampled_ago);
  }
  REQUIRE(x.pending.size() == y.pending.size());
  for (size_t i = 0; i < x.pending.size(); ++i) {
    CHECK(x.pending[i].slot == y.pending[i].slot);
    CHECK(x.pending[i].respawn_in == y.pending[i].respawn_in);
    CHECK(x.pending[i].consecutive_failures == y.pending[i].consecutive_failures);
    CHECK(x.pending[i].restarts == y.pending[i].restarts);
    CHECK(x.pending[i].last_exit == y.pending[i].last_exit);
  }
  REQUIRE(x.listeners.size() == y.listeners.size());
  for (size_t i = 0; i < x.listeners.size(); ++i) {
    CHECK(x.listeners[i].name == y.listeners[i].name);
    CHECK(x.listeners[i].accept_queue == y.listeners[i].accept_queue);
    CHECK(x.listeners[i].backlog == y.listeners[i].backlog);
  }
}

TEST_CASE("pool status: round trip with every optional field set") {
  const PoolStatus s = Full();
  const std::string yaml = PoolStatusToYaml(s);
  const Result<PoolStatus> back = PoolStatusFromYaml(yaml);
  REQUIRE_MESSAGE(back.ok(), back.error());
  CheckSame(back.value(), s);
}

TEST_CASE("pool status: round trip without optional fields, empty lists") {
  PoolStatus s;
  s.master_pid = 9;
  s.target = 1;
  WorkerStatus w;
  w.pid = 10;
  w.state = "booting";
  s.workers = {w};
  const std::string yaml = PoolStatusToYaml(s);
  CHECK(yaml.find("time_to_ready: ~") != std::string::npos);
  CHECK(yaml.find("last_exit: ~") != std::string::npos);
  CHECK(yaml.find("\nupgrade: ~\nlast_upgrade: ~\n") != std::string::npos);
  const Result<PoolStatus> back = PoolStatusFromYaml(yaml);
  REQUIRE_MESSAGE(back.ok(), back.error());
  CheckSame(back.value(), s);
  CHECK_FALSE(back.value().workers[0].time_to_ready.has_value());
  CHECK_FALSE(back.value().upgrade.has_value());
  CHECK_FALSE(back.value().last_upgrade.has_value());

  s.workers.clear();
  const Result<PoolStatus> empty = PoolStatusFromYaml(PoolStatusToYaml(s));
  REQUIRE_MESSAGE(empty.ok(), empty.error());
  CHECK(empty.value().workers.empty());
  CHECK(empty.value().pending.empty());

  // Only the outcome of the last upgrade, a successful one.
  s.last_upgrade = LastUpgradeStatus{.ok = true, .generation = 4, .reason = "", .ago = 0};
  const std::string done = PoolStatusToYaml(s);
  CHECK(done.find("\nlast_upgrade: {ok: true, generation: 4, reason: \"\", ago: 0.0}\n") !=
        std::string::npos);
  const Result<PoolStatus> last = PoolStatusFromYaml(done);
  REQUIRE_MESSAGE(last.ok(), last.error());
  CheckSame(last.value(), s);
}

TEST_CASE("pool status: the YAML is readable and typed as documented") {
  const std::string yaml = PoolStatusToYaml(Full());
  CHECK(yaml.find("master_pid: 1234\n") != std::string::npos);
  CHECK(yaml.find("command_name: \"yes\"\n") != std::string::npos);
  CHECK(yaml.find("ack_mode: \"timer 1s\"\n") != std::string::npos);
  CHECK(yaml.find("stopping: true\n") != std::string::npos);
  CHECK(yaml.find("counts: {booting: 1, ready: 2, draining: 1}") != std::string::npos);
  CHECK(yaml.find("time_to_ready: 1.001,") != std::string::npos);  // not 1.0009999999999999
  CHECK(yaml.find("uptime: 35.2,") != std::string::npos);
  CHECK(yaml.find("last_exit: \"signal 9\"") != std::string::npos);
  // A worker that pinged; the others' rows have no such keys.
  CHECK(yaml.find("notify_status: \"serving 3 req/s\", pinged_ago: 2.5, "
                  "pinged_request_id: \"req-\\\"1\\\"\"}\n") != std::string::npos);
  // One line per worker row.
  CHECK(yaml.find("- {slot: 0, index: 0, pid: 101,") != std::string::npos);
  CHECK(yaml.find("  - {slot: 1, index: 5, pid: 102, generation: 2, state: \"draining\", "
                  "time_to_ready: 0.25, uptime: 7200.5, restarts: 7, last_exit: ~, notify_status: ~}\n") !=
        std::string::npos);
  CHECK(yaml.find("\nupgrade: {strategy: \"fleet\", from_generation: 2, to_generation: 3, "
                  "elapsed: 12.5, failures: 1, new_ready: 2, old_remaining: 1}\n") !=
        std::string::npos);
  CHECK(yaml.find("\nlast_upgrade: {ok: false, generation: 2, "
                  "reason: \"3 new workers failed: exit 1\", ago: 600.25}\n") != std::string::npos);
  CHECK(yaml.find("pending:\n  - {slot: 2, respawn_in: 3.4,") != std::string::npos);
  CHECK(yaml.back() == '\n');
}

TEST_CASE("pool status: a sampled worker's row ends with its memory, read back") {
  PoolStatus s = Full();
  s.workers[0].memory_bytes = 1LL << 40;
  s.workers[0].memory_sampled_ago = 0.25;
  const std::string yaml = PoolStatusToYaml(s);
  CHECK(yaml.find("memory_bytes: 1099511627776, memory_sampled_ago: 0.25}\n") !=
        std::string::npos);
  CHECK(yaml.find("memory_bytes") == yaml.rfind("memory_bytes"));
  const Result<PoolStatus> back = PoolStatusFromYaml(yaml);
  REQUIRE_MESSAGE(back.ok(), back.error());
  CheckSame(back.value(), s);
  CHECK_FALSE(back.value().workers[1].memory_bytes.has_value());
}

TEST_CASE("pool status: a draining worker's row ends with how long it has drained") {
  PoolStatus s = Full();
  s.workers[1].draining_for = 12.5;  // 102, draining
  const std::string yaml = PoolStatusToYaml(s);
  CHECK(yaml.find("  - {slot: 1, index: 5, pid: 102, generation: 2, state: \"draining\", "
                  "time_to_ready: 0.25, uptime: 7200.5, restarts: 7, last_exit: ~, "
                  "notify_status: ~, draining_for: 12.5}\n") != std::string::npos);
  // Only there: the other rows are as before.
  CHECK(yaml.find("draining_for") == yaml.rfind("draining_for"));
  const Result<PoolStatus> back = PoolStatusFromYaml(yaml);
  REQUIRE_MESSAGE(back.ok(), back.error());
  CheckSame(back.value(), s);
  CHECK(back.value().workers[1].draining_for == 12.5);
  CHECK_FALSE(back.value().workers[0].draining_for.has_value());
  // A reply of an older master has no such key: none.
  CHECK(PoolStatusFromYaml(PoolStatusToYaml(Full())).value().workers[1].draining_for ==
        std::nullopt);
  s.workers[1].draining_for = -1;
  CHECK(PoolStatusFromYaml(PoolStatusToYaml(s)).ok());
  const Result<PoolStatus> bad = PoolStatusFromYaml(
      "master_pid: 5\ntarget: 1\ncounts: {booting: 0, ready: 0, draining: 1}\n"
      "workers: [{slot: 0, pid: 1, state: \"draining\", draining_for: \"x\"}]\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error() == "status: workers[0].draining_for: expected a number");
}

TEST_CASE("pool status: the whole document, byte for byte") {
  PoolStatus s;
  s.master_pid = 7;
  s.version = "0.1.0";
  s.target = 1;
  s.ack_mode = "manual";
  s.ready = 1;
  WorkerStatus w;
  w.pid = 8;
  w.state = "ready";
  w.time_to_ready = 2;
  w.uptime = 3.25;
  s.workers = {w};
  CHECK(PoolStatusToYaml(s) ==
        "master_pid: 7\n"
        "version: \"0.1.0\"\n"
        "command_name: \"\"\n"
        "target: 1\n"
        "generation: 1\n"
        "ack_mode: \"manual\"\n"
        "verbosity: 1\n"
        "stopping: false\n"
        "reloads: 0\n"
        "last_reload_error: ~\n"
        "reload_failures: 0\n"
        "reloading: false\n"
        "watchdog_timeouts: 0\n"
        "counts: {booting: 0, ready: 1, draining: 0}\n"
        "upgrade: ~\n"
        "last_upgrade: ~\n"
        "workers:\n"
        "  - {slot: 0, index: 0, pid: 8, generation: 1, state: \"ready\", time_to_ready: 2.0, "
        "uptime: 3.25, restarts: 0, last_exit: ~, notify_status: ~}\n"
        "pending: []\n"
        "listeners: []\n");
  s.listeners = {{"127.0.0.1:8080", 3, 100}, {"udp \"x\"", std::nullopt, std::nullopt}};
  const std::string yaml = PoolStatusToYaml(s);
  CHECK(yaml.substr(yaml.find("listeners:")) ==
        "listeners:\n"
        "  - {name: \"127.0.0.1:8080\", accept_queue: 3, backlog: 100}\n"
        "  - {name: \"udp \\\"x\\\"\", accept_queue: ~, backlog: ~}\n");
  const Result<PoolStatus> back = PoolStatusFromYaml(yaml);
  REQUIRE(back.ok());
  CheckSame(back.value(), s);
}

TEST_CASE("pool status: a reply without listeners (an older master) reads as none") {
  PoolStatus s;
  s.master_pid = 7;
  std::string yaml = PoolStatusToYaml(s);
  yaml.erase(yaml.find("listeners: []\n"));
  const Result<PoolStatus> back = PoolStatusFromYaml(yaml);
  REQUIRE_MESSAGE(back.ok(), back.error());
  CHECK(back.value().listeners.empty());
  const Result<PoolStatus> bad = PoolStatusFromYaml(
      yaml + "listeners:\n  - {name: \"a\", accept_queue: \"x\"}\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error() == "status: listeners[0].accept_queue: expected an integer");
}

TEST_CASE("pool status: missing optional keys take their defaults") {
  const Result<PoolStatus> r = PoolStatusFromYaml(
      "master_pid: 5\ntarget: 2\ncounts: {booting: 0, ready: 2, draining: 0}\n"
      "workers:\n  - {slot: 0, pid: 6, state: ready}\n  - {slot: 1, pid: 7, state: ready}\n");
  REQUIRE_MESSAGE(r.ok(), r.error());
  CHECK(r.value().generation == 1);
  CHECK(r.value().verbosity == 1);
  CHECK(r.value().version.empty());
  REQUIRE(r.value().workers.size() == 2);
  CHECK(r.value().workers[1].pid == 7);
  CHECK_FALSE(r.value().workers[1].last_exit.has_value());
  CHECK(r.value().pending.empty());
  CHECK_FALSE(r.value().upgrade.has_value());
  CHECK_FALSE(r.value().last_upgrade.has_value());

  const Result<PoolStatus> u = PoolStatusFromYaml(
      "master_pid: 5\ntarget: 2\ncounts: {booting: 0, ready: 2, draining: 0}\n"
      "upgrade: {strategy: smooth, to_generation: 4, extra: [1]}\n"
      "last_upgrade: {ok: true, generation: 3}\n");
  REQUIRE_MESSAGE(u.ok(), u.error());
  REQUIRE(u.value().upgrade.has_value());
  CHECK(u.value().upgrade->strategy == "smooth");
  CHECK(u.value().upgrade->to_generation == 4);
  CHECK(u.value().upgrade->from_generation == 1);
  CHECK(u.value().upgrade->elapsed == 0);
  CHECK(u.value().upgrade->old_remaining == 0);
  REQUIRE(u.value().last_upgrade.has_value());
  CHECK(u.value().last_upgrade->ok);
  CHECK(u.value().last_upgrade->generation == 3);
  CHECK(u.value().last_upgrade->reason.empty());
}

TEST_CASE("pool status: garbage is an error naming the key, never a crash") {
  const char* const kBad[] = {
      "",
      "~",
      "just a string",
      "[1, 2, 3]",
      "{unclosed: [",
      "master_pid: 1\n",  // no target
      "master_pid: x\ntarget: 1\ncounts: {booting: 0, ready: 0, draining: 0}\n",
      "master_pid: 1\ntarget: 1\n",  // no counts
      "master_pid: 1\ntarget: 1\ncounts: [1]\n",
      "master_pid: 1\ntarget: 1\ncounts: {booting: 0, ready: 0}\n",
      "master_pid: 1\ntarget: 1\ncounts: {booting: 0, ready: 0, draining: 0}\nworkers: 3\n",
      "master_pid: 1\ntarget: 1\ncounts: {booting: 0, ready: 0, draining: 0}\nworkers: [7]\n",
      "master_pid: 1\ntarget: 1\ncounts: {booting: 0, ready: 0, draining: 0}\n"
      "workers: [{slot: 0, pid: [1], state: ready}]\n",
      "master_pid: 99999999999999999999\ntarget: 1\ncounts: {booting: 0, ready: 0, draining: 0}\n",
      "master_pid: 1\ntarget: 1\nstopping: maybe\ncounts: {booting: 0, ready: 0, draining: 0}\n",
      "a: &x [1, *x]\n",
      "master_pid: 1\n---\ntarget: 2\n",
      "\t\t- : : :\n",
  };
  for (const char* text : kBad) {
    CAPTURE(text);
    const Result<PoolStatus> r = PoolStatusFromYaml(text);
    CHECK_FALSE(r.ok());
    if (!r.ok()) CHECK(r.error().rfind("status: ", 0) == 0);
  }
  const Result<PoolStatus> r = PoolStatusFromYaml(
      "master_pid: 1\ntarget: 1\ncounts: {booting: 0, ready: 0, draining: 0}\n"
      "workers: [{slot: 0, pid: 2, state: ready}, {slot: 1, pid: oops, state: ready}]\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "status: workers[1].pid: expected an integer");

  const std::string head =
      "master_pid: 1\ntarget: 1\ncounts: {booting: 0, ready: 0, draining: 0}\n";
  const std::pair<const char*, const char*> kSections[] = {
      {"upgrade: 3\n", "status: upgrade: expected a mapping"},
      {"upgrade: [1]\n", "status: upgrade: expected a mapping"},
      {"upgrade: {strategy: smooth}\n", "status: upgrade.to_generation: missing"},
      {"upgrade: {to_generation: 2}\n", "status: upgrade.strategy: missing"},
      {"upgrade: {strategy: fleet, to_generation: 2, elapsed: soon}\n",
       "status: upgrade.elapsed: expected a number"},
      {"last_upgrade: {generation: 2}\n", "status: last_upgrade.ok: missing"},
      {"last_upgrade: {ok: maybe, generation: 2}\n",
       "status: last_upgrade.ok: expected true or false"},
      {"last_upgrade: {ok: true, generation: 2, reason: [x]}\n",
       "status: last_upgrade.reason: expected a string"},
  };
  for (const auto& [section, error] : kSections) {
    CAPTURE(section);
    const Result<PoolStatus> bad = PoolStatusFromYaml(head + section);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error() == error);
  }
}

TEST_CASE("pool status: deep nesting is refused, not a stack overflow") {
  const std::string deep = "master_pid: " + std::string(100000, '[') + "\n";
  CHECK_FALSE(PoolStatusFromYaml(deep).ok());
}

// --- strings and numbers ----------------------------------------------------------------------

// The command_name line of a status with that name, without the key, the quotes and the '\n'.
std::string QuotedName(const std::string& name) {
  PoolStatus s;
  s.command_name = name;
  const std::string yaml = PoolStatusToYaml(s);
  const std::string key = "\ncommand_name: \"";
  const std::size_t from = yaml.find(key) + key.size();
  const std::size_t to = yaml.find("\"\n", from);
  return yaml.substr(from, to - from);
}

std::string ReadBackName(const std::string& name) {
  PoolStatus s;
  s.command_name = name;
  const Result<PoolStatus> back = PoolStatusFromYaml(PoolStatusToYaml(s));
  REQUIRE_MESSAGE(back.ok(), back.error());
  return back.value().command_name;
}

TEST_CASE("pool status: strings are double-quoted with JSON escapes, on one line") {
  const std::pair<std::string, std::string> kCases[] = {
      {"", ""},
      {"yes", "yes"},
      {"~", "~"},
      {"123", "123"},
      {"a: b, {c}: [d] # e &f *g !h |i >j %k @l `m", "a: b, {c}: [d] # e &f *g !h |i >j %k @l `m"},
      {"say \"hi\"", "say \\\"hi\\\""},
      {"C:\\dir\\", "C:\\\\dir\\\\"},
      {"a\nb\r\nc\td", "a\\nb\\r\\nc\\td"},
      {std::string("nul\0end", 7), "nul\\u0000end"},
      {"\x01\x1b\x1f\x7f", "\\u0001\\u001B\\u001F\\u007F"},
      {"  padded  ", "  padded  "},
      {"\\x41\\u0041", "\\\\x41\\\\u0041"},
      // Valid UTF-8 goes through as is...
      {"caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 \xC2\xA0",
       "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 \xC2\xA0"},
      // ...but for what YAML 1.1 readers take as line breaks or refuse: C1 controls (NEL among
      // them), the line and paragraph separators, the BOM and the non-characters.
      {"\xC2\x80\xC2\x85\xC2\x9F", "\\u0080\\u0085\\u009F"},
      {"\xE2\x80\xA8\xE2\x80\xA9\xEF\xBB\xBF\xEF\xBF\xBE\xEF\xBF\xBF",
       "\\u2028\\u2029\\uFEFF\\uFFFE\\uFFFF"},
      {"\xEF\xBF\xBD", "\xEF\xBF\xBD"},  // U+FFFD itself is fine
  };
  for (const auto& [name, quoted] : kCases) {
    CAPTURE(name);
    CHECK(QuotedName(name) == quoted);
    CHECK(ReadBackName(name) == name);
  }
}

// What a YAML reader returns for a string we wrote: the string itself when it is valid UTF-8,
// else every byte that is not part of a valid sequence read as Latin-1 (the \xXX escape means
// U+00XX). Written differently from the emitter on purpose: bytes against the Unicode table of
// well-formed sequences.
std::string ReadAs(std::string_view s) {
  std::string out;
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = [&](std::size_t k) {
      return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u;
    };
    const auto in = [](unsigned x, unsigned lo, unsigned hi) { return x >= lo && x <= hi; };
    std::size_t len = 0;
    if (b(0) < 0x80) {
      len = 1;
    } else if (in(b(0), 0xC2, 0xDF) && in(b(1), 0x80, 0xBF)) {
      len = 2;
    } else if ((b(0) == 0xE0 && in(b(1), 0xA0, 0xBF)) ||
               ((in(b(0), 0xE1, 0xEC) || in(b(0), 0xEE, 0xEF)) && in(b(1), 0x80, 0xBF)) ||
               (b(0) == 0xED && in(b(1), 0x80, 0x9F))) {
      len = in(b(2), 0x80, 0xBF) ? 3 : 0;
    } else if ((b(0) == 0xF0 && in(b(1), 0x90, 0xBF)) ||
               (in(b(0), 0xF1, 0xF3) && in(b(1), 0x80, 0xBF)) ||
               (b(0) == 0xF4 && in(b(1), 0x80, 0x8F))) {
      len = in(b(2), 0x80, 0xBF) && in(b(3), 0x80, 0xBF) ? 4 : 0;
    }
    if (len == 0) {  // U+0080..U+00FF in UTF-8
      out += static_cast<char>(0xC0 | (b(0) >> 6));
      out += static_cast<char>(0x80 | (b(0) & 0x3F));
      len = 1;
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
  return out;
}

TEST_CASE("pool status: bytes that are not UTF-8 are written as \\xXX and read back as Latin-1") {
  const std::pair<std::string, std::string> kCases[] = {
      {"\xFF", "\\xFF"},
      {"caf\xE9", "caf\\xE9"},                       // Latin-1 in, Latin-1 shown
      {"\x80\xBF", "\\x80\\xBF"},                    // lone continuation bytes
      {"\xC0\xAF\xC1\xBF", "\\xC0\\xAF\\xC1\\xBF"},  // overlong '/' and DEL
      {"\xE0\x80\xAF", "\\xE0\\x80\\xAF"},           // overlong, 3 bytes
      {"\xED\xA0\x80", "\\xED\\xA0\\x80"},           // a UTF-16 surrogate
      {"\xF4\x90\x80\x80", "\\xF4\\x90\\x80\\x80"},  // beyond U+10FFFF
      {"\xF5\xF8\xFE", "\\xF5\\xF8\\xFE"},
      {"\xE2\x82", "\\xE2\\x82"},         // truncated at the end
      {"\xE2\x82x", "\\xE2\\x82x"},       // cut short by ASCII
      {"\xC3\xC3\xA9", "\\xC3\xC3\xA9"},  // a bad lead, then a good sequence
  };
  for (const auto& [name, quoted] : kCases) {
    CAPTURE(name);
    CHECK(QuotedName(name) == quoted);
    CHECK(ReadBackName(name) == ReadAs(name));
  }
  CHECK(ReadBackName("caf\xE9") == "caf\xC3\xA9");
}

TEST_CASE("pool status: times are rounded to the millisecond and always read as floats") {
  const auto uptime = [](double seconds) {
    PoolStatus s;
    WorkerStatus w;
    w.state = "ready";
    w.uptime = seconds;
    s.workers = {w};
    const std::string yaml = PoolStatusToYaml(s);
    const std::size_t from = yaml.find("uptime: ") + 8;
    return yaml.substr(from, yaml.find(',', from) - from);
  };
  CHECK(uptime(1.0009999) == "1.001");
  CHECK(uptime(1.0004) == "1.0");
  CHECK(uptime(0) == "0.0");
  CHECK(uptime(-0.0) == "0.0");
  CHECK(uptime(-0.0001) == "0.0");
  CHECK(uptime(-2.5) == "-2.5");
  CHECK(uptime(7200) == "7200.0");
  CHECK(uptime(0.001) == "0.001");
  CHECK(uptime(86400.123456) == "86400.123");
  CHECK(uptime(123456789.987) == "123456789.987");
  CHECK(uptime(1e20) == "100000000000000000000.0");  // exact, not rounded through 1e23
  CHECK(uptime(std::numeric_limits<double>::infinity()) == ".inf");
  CHECK(uptime(-std::numeric_limits<double>::infinity()) == "-.inf");
  CHECK(uptime(std::nan("")) == ".nan");

  for (double v : {std::numeric_limits<double>::infinity(), std::nan(""), 1e300, -1e-300}) {
    CAPTURE(v);
    PoolStatus s;
    s.upgrade = UpgradeStatus{};
    s.upgrade->elapsed = v;
    const Result<PoolStatus> back = PoolStatusFromYaml(PoolStatusToYaml(s));
    REQUIRE_MESSAGE(back.ok(), back.error());
    REQUIRE(back.value().upgrade.has_value());
    const double got = back.value().upgrade->elapsed;
    if (std::isnan(v)) {
      CHECK(std::isnan(got));
    } else {
      CHECK(got == (std::fabs(v) < 1 ? 0.0 : v));
    }
  }
}

// --- random statuses ----------------------------------------------------------------------------

class Gen {
 public:
  explicit Gen(std::uint64_t seed) : rng_(seed) {}

  std::uint64_t Below(std::uint64_t n) { return rng_() % n; }
  bool Coin() { return Below(2) == 0; }

  int Int() {
    switch (Below(4)) {
      case 0:
        return static_cast<int>(Below(5));
      case 1:
        return Coin() ? INT_MAX : INT_MIN;
      default:
        return static_cast<int>(static_cast<std::uint32_t>(rng_()));
    }
  }

  // Times as the master makes them: whole milliseconds, up to years, now and then negative
  // (a clock step) or huge.
  double Seconds() {
    switch (Below(6)) {
      case 0:
        return 0;
      case 1:
        return static_cast<double>(Below(1000)) / 1000;
      case 2:
        return -static_cast<double>(Below(100000)) / 1000;
      case 3:
        return 1e15 * static_cast<double>(1 + Below(1000));
      default:
        return static_cast<double>(Below(100'000'000'000ULL)) / 1000;
    }
  }

  // Bits of YAML and JSON syntax, escapes written out, line breaks of every kind, valid and
  // invalid UTF-8, and plain random bytes.
  std::string Hostile() {
    static const char* const kPieces[] = {
        "yes",
        "no",
        "~",
        "null",
        "123",
        "0x1F",
        "1e3",
        ".inf",
        "-",
        "- ",
        ": ",
        "? ",
        "#",
        " #",
        "&a",
        "*a",
        "!!str",
        "{",
        "}",
        "[",
        "]",
        ",",
        "'",
        "\"",
        "\\",
        "\\\"",
        "\\x41",
        "\\u00e9",
        "\n",
        "\r\n",
        "\r",
        "\t",
        " ",
        "  ",
        "---",
        "...",
        "%YAML",
        "|",
        ">",
        "\xC2\x85",
        "\xE2\x80\xA8",
        "\xE2\x80\xA9",
        "\xEF\xBB\xBF",
        "\xEF\xBF\xBE",
        "\xC3\xA9",
        "\xE6\x97\xA5",
        "\xF0\x9F\x98\x80",
        "\xC0\xAF",
        "\xED\xA0\x80",
        "\xF4\x90\x80\x80",
        "\xE2\x82",
        "\xFF",
        "\x7F",
        "\x1B[31m",
    };
    std::string s;
    const std::uint64_t n = Below(12);
    for (std::uint64_t i = 0; i < n; ++i) {
      switch (Below(3)) {
        case 0:
          s += static_cast<char>(Below(256));
          break;
        case 1:
          s += static_cast<char>('a' + Below(26));
          break;
        default:
          s += kPieces[Below(std::size(kPieces))];
          break;
      }
    }
    return s;
  }

  std::optional<std::string> MaybeHostile() {
    if (Coin()) return std::nullopt;
    return Hostile();
  }

  PoolStatus Status() {
    PoolStatus s;
    s.master_pid = Int();
    s.version = Hostile();
    s.command_name = Hostile();
    s.target = Int();
    s.generation = Int();
    s.ack_mode = Hostile();
    s.verbosity = Int();
    s.stopping = Coin();
    s.reloads = Int();
    s.last_reload_error = MaybeHostile();
    s.reload_failures = Int();
    s.reloading = Coin();
    s.watchdog_timeouts = Int();
    s.booting = Int();
    s.ready = Int();
    s.draining = Int();
    if (Coin()) {
      s.upgrade = UpgradeStatus{Hostile(), Int(), Int(), Seconds(), Int(), Int(), Int()};
    }
    if (Coin()) s.last_upgrade = LastUpgradeStatus{Coin(), Int(), Hostile(), Seconds()};
    for (std::uint64_t i = Below(6); i > 0; --i) {
      WorkerStatus w;
      w.slot = Int();
      w.index = Int();
      w.pid = Int();
      w.generation = Int();
      w.state = Hostile();
      if (Coin()) w.time_to_ready = Seconds();
      w.uptime = Seconds();
      w.restarts = Int();
      w.last_exit = MaybeHostile();
      w.notify_status = MaybeHostile();
      s.workers.push_back(w);
    }
    for (std::uint64_t i = Below(3); i > 0; --i) {
      s.pending.push_back(PendingSlot{Int(), Seconds(), Int(), Int(), MaybeHostile()});
    }
    for (std::uint64_t i = Below(3); i > 0; --i) {
      ListenerStatus l;
      l.name = Hostile();
      if (Coin()) l.accept_queue = Int();
      if (Coin()) l.backlog = Int();
      s.listeners.push_back(l);
    }
    return s;
  }

 private:
  std::mt19937_64 rng_;
};

// What the document must read back as: the strings as ReadAs says (the times are already whole
// milliseconds).
PoolStatus Expected(PoolStatus s) {
  const auto fix = [](std::string& str) { str = ReadAs(str); };
  const auto fix_opt = [&](std::optional<std::string>& str) {
    if (str) fix(*str);
  };
  fix(s.version);
  fix(s.command_name);
  fix(s.ack_mode);
  if (s.upgrade) fix(s.upgrade->strategy);
  if (s.last_upgrade) fix(s.last_upgrade->reason);
  for (WorkerStatus& w : s.workers) {
    fix(w.state);
    fix_opt(w.last_exit);
  }
  for (PendingSlot& p : s.pending) fix_opt(p.last_exit);
  for (ListenerStatus& l : s.listeners) fix(l.name);
  return s;
}

// What strict YAML 1.1 readers (libyaml, hence Psych) need: well-formed UTF-8 made of
// printable characters only (c-printable, without the ones they take as line breaks), with
// '\n' ending each line and nowhere else.
bool Printable(const std::string& yaml, std::string* why) {
  const std::string as_read = ReadAs(yaml);
  if (as_read != yaml) return *why = "not UTF-8", false;
  for (std::size_t i = 0; i < yaml.size(); ++i) {
    const auto c = static_cast<unsigned char>(yaml[i]);
    if ((c < 0x20 && c != '\n') || c == 0x7F) return *why = "a raw C0 control or DEL", false;
    const std::string_view rest(yaml.data() + i, yaml.size() - i);
    for (std::string_view bad : {"\xC2\x80", "\xC2\x85", "\xC2\x9F", "\xE2\x80\xA8", "\xE2\x80\xA9",
                                 "\xEF\xBB\xBF", "\xEF\xBF\xBE", "\xEF\xBF\xBF"}) {
      if (rest.substr(0, bad.size()) == bad)
        return *why = "a raw break, BOM or non-character", false;
    }
    if (c == 0xC2 && i + 1 < yaml.size() && static_cast<unsigned char>(yaml[i + 1]) < 0xA0) {
      return *why = "a raw C1 control", false;
    }
  }
  return true;
}

TEST_CASE("pool status: random statuses with hostile strings read back as written") {
  for (std::uint64_t seed = 1; seed <= 400; ++seed) {
    CAPTURE(seed);
    Gen gen(seed);
    const PoolStatus s = gen.Status();
    const std::string yaml = PoolStatusToYaml(s);
    std::string why;
    CHECK_MESSAGE(Printable(yaml, &why), why);
    // One line per top-level key and per row.
    const auto lines = static_cast<std::size_t>(std::count(yaml.begin(), yaml.end(), '\n'));
    CHECK(lines == 19 + s.workers.size() + s.pending.size() + s.listeners.size());
    const Result<PoolStatus> back = PoolStatusFromYaml(yaml);
    REQUIRE_MESSAGE(back.ok(), (back.error() + "\n" + yaml));
    CheckSame(back.value(), Expected(s));
  }
}

TEST_CASE("pool status: a valid UTF-8 string reads back byte for byte") {
  Gen gen(99);
  for (int i = 0; i < 300; ++i) {
    const std::string name = ReadAs(gen.Hostile());  // valid UTF-8, anything else goes
    CAPTURE(name);
    CHECK(ReadBackName(name) == name);
  }
}

// --- the fast reader ----------------------------------------------------------------------------
// PoolStatusFromYaml reads the master's own documents with a one-pass parser (yaml-cpp took
// ~1.5 s for 5000 workers); it must read them exactly as yaml-cpp does, and leave every other
// document to yaml-cpp.

TEST_CASE("pool status: the fast reader takes every document the master writes, as yaml-cpp") {
  for (std::uint64_t seed = 1; seed <= 400; ++seed) {
    CAPTURE(seed);
    Gen gen(seed);
    const std::string yaml = PoolStatusToYaml(gen.Status());
    const std::optional<PoolStatus> fast = PoolStatusFromYamlFast(yaml);
    REQUIRE_MESSAGE(fast.has_value(), yaml);
    const Result<PoolStatus> slow = PoolStatusFromYamlSlow(yaml);
    REQUIRE_MESSAGE(slow.ok(), slow.error());
    CheckSame(*fast, slow.value());
    CHECK(fast->workers.size() == slow.value().workers.size());
  }
  const std::string full = PoolStatusToYaml(Full());
  REQUIRE(PoolStatusFromYamlFast(full).has_value());
  CheckSame(*PoolStatusFromYamlFast(full), PoolStatusFromYamlSlow(full).value());
}

TEST_CASE("pool status: documents the fast reader is not sure of go to yaml-cpp, same result") {
  const std::string head =
      "master_pid: 1\ntarget: 1\ncounts: {booting: 0, ready: 0, draining: 0}\n";
  const std::string kTexts[] = {
      "",
      "~",
      "[1, 2, 3]",
      "master_pid: 1\n",
      head + "workers:\n  - {slot: 0, pid: 6, state: ready}\n",  // a plain string
      head + "verbosity: 010\n",                                   // octal to yaml-cpp
      head + "verbosity: 0x10\n",
      head + "stopping: yes\n",
      head + "stopping: \"true\"\n",
      head + "verbosity: \"3\"\n",
      head + "# a comment\n",
      head + "version: \"a\\u00e9\\x41\\ud83d\"\n",  // a lone surrogate
      head + "version: \"\\0\"\n",                   // an escape the writer never writes
      head + "workers:\n    - {slot: 0, pid: 6, state: \"ready\"}\n",
      head + "workers:\n  - {slot: 0, pid: 6, state: \"ready\", extra: [1]}\n",
      head + "workers:\n  - {slot: 0 , pid: 6, state: \"ready\"}\n",
      head + "workers:\n  - {slot: 0, pid: 99999999999, state: \"ready\"}\n",
      head + "upgrade: {strategy: \"smooth\", to_generation: 2, elapsed: 1e3}\n",
      head + "upgrade: {strategy: \"smooth\", to_generation: 2, elapsed: 1.}\n",
      head + "master_pid: 2\n",  // a duplicate key: the first one counts, for both
      "master_pid: -0\ntarget: 1\ncounts: {booting: 0, ready: 0, draining: 0}\n",
      "master_pid: 1\r\ntarget: 1\ncounts: {booting: 0, ready: 0, draining: 0}\n",
  };
  for (const std::string& text : kTexts) {
    CAPTURE(text);
    const std::optional<PoolStatus> fast = PoolStatusFromYamlFast(text);
    const Result<PoolStatus> slow = PoolStatusFromYamlSlow(text);
    const Result<PoolStatus> both = PoolStatusFromYaml(text);
    REQUIRE(both.ok() == slow.ok());
    if (!slow.ok()) {
      CHECK_FALSE(fast.has_value());
      CHECK(both.error() == slow.error());
      continue;
    }
    if (fast) CheckSame(*fast, slow.value());
    CheckSame(both.value(), slow.value());
  }
}

TEST_CASE("pool status: the fast reader reads 5000 workers, the master's layout") {
  PoolStatus s;
  s.master_pid = 9;
  s.target = 5000;
  for (int i = 0; i < 5000; ++i) {
    WorkerStatus w;
    w.slot = i;
    w.index = i;
    w.pid = 100000 + i;
    w.state = "ready";
    w.time_to_ready = 0.001 * i;
    w.uptime = 3600.25 + i * 0.137;
    if (i % 5 == 0) w.last_exit = "signal 9";
    s.workers.push_back(w);
  }
  const std::string yaml = PoolStatusToYaml(s);
  const std::optional<PoolStatus> fast = PoolStatusFromYamlFast(yaml);
  REQUIRE(fast.has_value());
  REQUIRE(fast->workers.size() == 5000);
  CHECK(fast->workers[4999].pid == 104999);
  CHECK(fast->workers[4999].last_exit == std::nullopt);
  CHECK(fast->workers[4995].last_exit == "signal 9");
  // Times are rounded to the millisecond on the wire.
  CHECK(fast->workers[1234].uptime == std::round((3600.25 + 1234 * 0.137) * 1000) / 1000);
}

}  // namespace
}  // namespace einhorn::core
