#include "core/pool_status.h"

#include <doctest/doctest.h>

#include <string>

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
  CHECK(x.booting == y.booting);
  CHECK(x.ready == y.ready);
  CHECK(x.draining == y.draining);
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
  }
  REQUIRE(x.pending.size() == y.pending.size());
  for (size_t i = 0; i < x.pending.size(); ++i) {
    CHECK(x.pending[i].slot == y.pending[i].slot);
    CHECK(x.pending[i].respawn_in == y.pending[i].respawn_in);
    CHECK(x.pending[i].consecutive_failures == y.pending[i].consecutive_failures);
    CHECK(x.pending[i].restarts == y.pending[i].restarts);
    CHECK(x.pending[i].last_exit == y.pending[i].last_exit);
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
  const Result<PoolStatus> back = PoolStatusFromYaml(yaml);
  REQUIRE_MESSAGE(back.ok(), back.error());
  CheckSame(back.value(), s);
  CHECK_FALSE(back.value().workers[0].time_to_ready.has_value());

  s.workers.clear();
  const Result<PoolStatus> empty = PoolStatusFromYaml(PoolStatusToYaml(s));
  REQUIRE_MESSAGE(empty.ok(), empty.error());
  CHECK(empty.value().workers.empty());
  CHECK(empty.value().pending.empty());
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
  // One line per worker row.
  CHECK(yaml.find("- {slot: 0, index: 0, pid: 101,") != std::string::npos);
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
}

TEST_CASE("pool status: deep nesting is refused, not a stack overflow") {
  const std::string deep = "master_pid: " + std::string(100000, '[') + "\n";
  CHECK_FALSE(PoolStatusFromYaml(deep).ok());
}

}  // namespace
}  // namespace einhorn::core
