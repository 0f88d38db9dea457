// Stopping the master: TERM, INT/USR2 (drain), QUIT, escalation to SIGKILL, the pidfile.
#include <doctest/doctest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

std::vector<pid_t> Pids(const std::map<pid_t, Report>& workers) {
  std::vector<pid_t> pids;
  for (const auto& [pid, r] : workers) pids.push_back(pid);
  return pids;
}

bool AllGone(const std::vector<pid_t>& pids) {
  for (pid_t p : pids) {
    if (ProcessAlive(p)) return false;
  }
  return true;
}

TEST_CASE("TERM sends SIGTERM to every worker, removes the pidfile and leaves nothing behind") {
  MasterRun m({"-n", "3", "-m", "0"}, {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(m.WaitForWorkers(3));
  const std::string pidfile = m.dir().File("einhorn.pid");
  CHECK(ReadFile(pidfile) == std::to_string(m.pid()));  // no trailing newline, as Einhorn
  const auto pids = Pids(m.LiveWorkers());
  REQUIRE(m.process().Signal(SIGTERM));
  const auto status = m.process().WaitExit(10s);
  REQUIRE(status.has_value());
  CHECK_FALSE(status->signaled);
  CHECK(status->code == 0);
  CHECK(AllGone(pids));
  for (pid_t p : pids) CHECK(m.SignalsOf(p) == std::vector<std::string>{"TERM"});
  CHECK_FALSE(FileExists(pidfile));
}

TEST_CASE("INT and USR2 drain the workers with SIGUSR2 and exit 0 once they are gone") {
  for (int sig : {SIGINT, SIGUSR2}) {
    MasterRun m({"-n", "2", "-m", "0"},
                {TEST_WORKER_BIN, "--report", "{reports}", "--drain-ms", "300"});
    REQUIRE(m.WaitForWorkers(2));
    const auto pids = Pids(m.LiveWorkers());
    REQUIRE(m.process().Signal(sig));
    // While the workers drain, nothing is respawned.
    REQUIRE(PollUntil([&] { return !m.SignalsOf(pids[0]).empty(); }, 5s));
    const auto status = m.process().WaitExit(10s);
    REQUIRE(status.has_value());
    CHECK(status->code == 0);
    CHECK(AllGone(pids));
    for (pid_t p : pids) CHECK(m.SignalsOf(p) == std::vector<std::string>{"USR2"});
    CHECK(m.Reports().size() == 2);
  }
}

TEST_CASE("a worker that ignores the drain signal is SIGKILLed after -t") {
  MasterRun m({"-n", "1", "-m", "0", "-t", "1"},
              {TEST_WORKER_BIN, "--report", "{reports}", "--ignore", "USR2"});
  REQUIRE(m.WaitForWorkers(1));
  const pid_t worker = m.LiveWorkers().begin()->first;
  REQUIRE(m.process().Signal(SIGINT));
  const auto status = m.process().WaitExit(10s);
  REQUIRE(status.has_value());
  CHECK(status->code == 0);
  CHECK_FALSE(ProcessAlive(worker));
  CHECK(m.SignalsOf(worker) == std::vector<std::string>{"USR2"});
  CHECK(m.LogHas("sending SIGKILL"));
  CHECK(m.LogHas("exited with signal 9"));
}

// The stop ladder (issue 17.3): Einhorn's first signal, then a repeated INT or TERM asks harder.
// A worker that ignores USR2 and TERM used to keep the master waiting forever without -t.
TEST_CASE("a second INT sends SIGTERM and a third SIGKILL to a worker that ignores both") {
  MasterRun m({"-n", "1", "-m", "0"},
              {TEST_WORKER_BIN, "--report", "{reports}", "--ignore", "USR2", "--ignore", "TERM"});
  REQUIRE(m.WaitForWorkers(1));
  const pid_t worker = m.LiveWorkers().begin()->first;
  using Sigs = std::vector<std::string>;

  REQUIRE(m.process().Signal(SIGINT));
  REQUIRE(PollUntil([&] { return m.SignalsOf(worker) == Sigs{"USR2"}; }, 10s));
  // The first INT is Einhorn's: the worker is asked to drain and may take its time.
  REQUIRE(m.WaitForLog("stopping: sending SIGUSR2 to 1 worker"));
  CHECK(ProcessAlive(worker));
  CHECK(m.process().running());

  REQUIRE(m.process().Signal(SIGINT));
  REQUIRE(PollUntil([&] { return m.SignalsOf(worker) == Sigs{"USR2", "TERM"}; }, 10s));
  CHECK(m.WaitForLog("escalating the stop: sending SIGTERM to 1 worker"));
  CHECK(ProcessAlive(worker));
  CHECK(m.process().running());

  REQUIRE(m.process().Signal(SIGINT));
  const auto status = m.process().WaitExit(10s);
  REQUIRE(status.has_value());
  CHECK_FALSE(status->signaled);
  CHECK(status->code == 0);
  CHECK_FALSE(ProcessAlive(worker));
  CHECK(m.LogHas("escalating the stop: sending SIGKILL to 1 worker"));
  CHECK(m.LogHas("exited with signal 9"));
  CHECK(m.SignalsOf(worker) == Sigs{"USR2", "TERM"});  // SIGKILL cannot be recorded
}

TEST_CASE("USR2 again only re-sends USR2, then a TERM sends SIGTERM and a second TERM SIGKILL") {
  MasterRun m({"-n", "1", "-m", "0"},
              {TEST_WORKER_BIN, "--report", "{reports}", "--ignore", "USR2", "--ignore", "TERM"});
  REQUIRE(m.WaitForWorkers(1));
  const pid_t worker = m.LiveWorkers().begin()->first;
  using Sigs = std::vector<std::string>;
  REQUIRE(m.process().Signal(SIGUSR2));
  REQUIRE(PollUntil([&] { return m.SignalsOf(worker) == Sigs{"USR2"}; }, 10s));
  REQUIRE(m.process().Signal(SIGUSR2));
  REQUIRE(PollUntil([&] { return m.SignalsOf(worker) == Sigs{"USR2", "USR2"}; }, 10s));
  CHECK(m.WaitForLog("re-sending SIGUSR2 to 1 worker"));
  CHECK(ProcessAlive(worker));
  REQUIRE(m.process().Signal(SIGTERM));
  REQUIRE(PollUntil([&] { return m.SignalsOf(worker) == Sigs{"USR2", "USR2", "TERM"}; }, 10s));
  CHECK(ProcessAlive(worker));
  REQUIRE(m.process().Signal(SIGTERM));
  const auto status = m.process().WaitExit(10s);
  REQUIRE(status.has_value());
  CHECK(status->code == 0);
  CHECK_FALSE(ProcessAlive(worker));
}

// While a stop waits, the operator is told for whom, and status shows for how long.
TEST_CASE("a stop that waits says so every few seconds, and status shows the drain growing") {
  MasterRun m({"-n", "2", "-m", "0"},
              {TEST_WORKER_BIN, "--report", "{reports}", "--ignore", "USR2"});
  REQUIRE(m.WaitForWorkers(2));
  const auto pids = Pids(m.LiveWorkers());
  REQUIRE(m.process().Signal(SIGINT));
  REQUIRE(PollUntil([&] { return m.SignalsOf(pids[1]) == std::vector<std::string>{"USR2"}; },
                    10s));

  // status --json: a draining_for for each worker, which grows.
  const auto drained = [&]() -> std::optional<std::vector<double>> {
    const Finished f = RunProgram({EINHORNCTL_BIN, "-d", Sock(m), "status", "--json"}, 10s);
    if (f.status.code != 0) return std::nullopt;
    const auto j = nlohmann::json::parse(f.out, nullptr, false);
    // value() and contains(): a reply without a key (an older master) must not abort here.
    if (j.is_discarded() || !j.is_object() || !j.value("stopping", false) ||
        !j.contains("workers") || !j["workers"].is_array()) {
      return std::nullopt;
    }
    std::vector<double> out;
    for (const auto& w : j["workers"]) {
      if (!w.is_object() || w.value("state", "") != "draining" || !w.contains("draining_for") ||
          !w["draining_for"].is_number()) {
        return std::nullopt;
      }
      out.push_back(w["draining_for"].get<double>());
    }
    if (out.size() != 2) return std::nullopt;
    return out;
  };
  std::optional<std::vector<double>> first;
  REQUIRE(PollUntil([&] { return (first = drained()).has_value(); }, 10s));
  CHECK((*first)[0] >= 0);
  std::optional<std::vector<double>> later;
  REQUIRE(PollUntil([&] { return (later = drained()) && (*later)[0] >= (*first)[0] + 1.0; },
                    10s));
  CHECK((*later)[1] >= (*first)[1] + 1.0);

  // The text table has the column too.
  const Finished text = RunProgram({EINHORNCTL_BIN, "-d", Sock(m), "status"}, 10s);
  CHECK(text.out.find("DRAINING") != std::string::npos);

  // The reminder, with both pids.
  const std::string reminder = "2 workers still draining (pids " + std::to_string(pids[0]) +
                               " and " + std::to_string(pids[1]) +
                               "); -t or a second Ctrl-C forces it";
  CHECK(m.WaitForLog(reminder, 15s));

  // A second Ctrl-C: SIGTERM, which this worker obeys.
  REQUIRE(m.process().Signal(SIGINT));
  const auto status = m.process().WaitExit(10s);
  REQUIRE(status.has_value());
  CHECK(status->code == 0);
  CHECK(AllGone(pids));
}

TEST_CASE("QUIT sends SIGQUIT and exits at once with 1") {
  MasterRun m({"-n", "2", "-m", "0"},
              {TEST_WORKER_BIN, "--report", "{reports}", "--ignore", "QUIT"});
  REQUIRE(m.WaitForWorkers(2));
  const auto pids = Pids(m.LiveWorkers());
  REQUIRE(m.process().Signal(SIGQUIT));
  const auto status = m.process().WaitExit(5s);
  REQUIRE(status.has_value());
  CHECK(status->code == 1);
  for (pid_t p : pids) {
    CHECK(PollUntil([&] { return m.SignalsOf(p) == std::vector<std::string>{"QUIT"}; }, 5s));
    CHECK(ProcessAlive(p));  // as Einhorn: survivors are orphaned, not waited for
    kill(p, SIGKILL);
  }
  CHECK_FALSE(FileExists(m.dir().File("einhorn.pid")));
}

// The lockfile is held only while a socket is created (Einhorn's -f): what refuses a second
// master on the same defaults is the live command socket.
TEST_CASE("a second master on the same default socket is refused, and the first keeps running") {
  MasterRun first({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(first.WaitForWorkers(1));
  const Finished second = RunToExit({"-n", "1", "--", TEST_WORKER_BIN},
                                    10s, {"TMPDIR=" + first.dir().path()});
  CHECK(second.status.code == 1);
  // It names the master that has the socket, and what to do (issue 17.5).
  CHECK(second.err.find("einhorn.sock is in use, held by pid " + std::to_string(first.pid()) +
                        " (" + std::string(EINHORN_BIN) + " -n 1 -m 0") != std::string::npos);
  CHECK(second.err.find("; stop it, or choose another path (this master's own: -c NAME or -d "
                        "PATH)\n") != std::string::npos);
  CHECK(first.process().running());
  CHECK(first.LiveWorkers().size() == 1);
  CHECK(ReadFile(first.dir().File("einhorn.pid")) == std::to_string(first.pid()));
}

}  // namespace
}  // namespace einhorn::test
