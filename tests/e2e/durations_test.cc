// Durations with the real binary (issue 14.4): a value past the documented cap (1e6 s), NaN or
// infinity is refused with one line and exit 2, from the flags and from a config file; values
// at the cap run, respawn with a positive delay, survive a reload (their state is carried and
// read back) and stop on SIGTERM.
#include <doctest/doctest.h>
#include <signal.h>

#include "control_client.h"
#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

size_t Lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST_CASE("durations past the cap, NaN or infinite are refused: exit 2, one line") {
  for (const char* flag :
       {"-t", "-s", "-m", "--ack-timeout", "--upgrade-timeout", "--worker-watchdog",
        "--memory-interval"}) {
    for (const char* value : {"1e10", "1e300", "inf", "-inf", "nan", "1000001"}) {
      INFO(flag, " ", value);
      const Finished f = RunToExit({flag, value, TEST_WORKER_BIN});
      CHECK_FALSE(f.status.signaled);
      CHECK(f.status.code == 2);
      CHECK(Lines(f.err) == 1);
      CHECK(f.err.rfind("einhorn-cpp: ", 0) == 0);
    }
  }
  const Finished t = RunToExit({"-t", "1e10", TEST_WORKER_BIN});
  CHECK(t.err ==
        "einhorn-cpp: -t/--signal-timeout must be a number of seconds from 0 to 1000000 (got "
        "10000000000)\n");

  TempDir d;
  const std::string file = d.File("app.yaml");
  WriteFile(file, "command: [" TEST_WORKER_BIN "]\nack_timeout: 1e10\n");
  const Finished c = RunToExit({"--config", file});
  CHECK(c.status.code == 2);
  CHECK(Lines(c.err) == 1);
  CHECK(c.err.find("app.yaml:2: ack_timeout: --ack-timeout must be a number of seconds") !=
        std::string::npos);
}

TEST_CASE("--max-worker-lifetime: invalid or huge values are refused: exit 2, one line") {
  for (const char* value : {"1e10", "inf", "nan", "0", "-5", "1000001", "60,jitter=91",
                            "60,jitter=nan", "60,jitter=-1", "60,bogus=1", "1h"}) {
    INFO(value);
    const Finished f = RunToExit({"--max-worker-lifetime", value, TEST_WORKER_BIN});
    CHECK_FALSE(f.status.signaled);
    CHECK(f.status.code == 2);
    CHECK(Lines(f.err) == 1);
    CHECK(f.err.rfind("einhorn-cpp: --max-worker-lifetime must be SECS[,jitter=PCT]", 0) == 0);
  }
  TempDir d;
  const std::string file = d.File("app.yaml");
  WriteFile(file, "command: [" TEST_WORKER_BIN "]\nmax_worker_lifetime: \"inf,jitter=5\"\n");
  const Finished c = RunToExit({"--config", file});
  CHECK(c.status.code == 2);
  CHECK(Lines(c.err) == 1);
  CHECK(c.err.find("max_worker_lifetime") != std::string::npos);
  // Valid ones are taken, from the file too.
  WriteFile(file, "command: [" TEST_WORKER_BIN "]\nmax_worker_lifetime: \"3600,jitter=5%\"\n");
  const Finished ok = RunToExit({"--check-config", file});
  CHECK_MESSAGE(ok.status.code == 0, ok.err);
  CHECK(ok.out.find("max_worker_lifetime: 3600,jitter=5%") != std::string::npos);
}

TEST_CASE("durations at the cap work: a positive respawn delay, a reload, a clean SIGTERM") {
  MasterRun m({"-n", "2", "-m", "0.1", "-s", "1000000", "-t", "1000000", "--ack-timeout", "1000000",
               "--upgrade-timeout", "1000000", "--worker-watchdog", "1000000"},
              {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  REQUIRE(m.WaitForWorkers(2));
  // Dies within -s of its start: a failure, respawned after about -s (jitter 0.8..1.2).
  const pid_t victim = *Pids(m).begin();
  REQUIRE(kill(victim, SIGKILL) == 0);
  REQUIRE(m.WaitForLog("respawning in "));
  const std::string log = m.Log();
  const size_t at = log.find("respawning in ");
  CHECK(log.compare(at, 15, "respawning in -") != 0);
  const double delay = std::stod(log.substr(at + 14));
  CHECK(delay >= 800000);
  CHECK(delay <= 1200000);
  const auto pending = Status(m);
  REQUIRE(pending.has_value());
  REQUIRE(pending->pending.size() == 1);
  CHECK(pending->pending[0].respawn_in > 700000);

  // The state carries the durations; the new image reads them back (before the cap, `-t 1e10`
  // made every later reload fail with "signal_timeout: ... ns is out of range").
  {
    ControlClient c(Sock(m));
    REQUIRE(c.connected());
    const auto r = c.Ask("{\"command\": \"reload\"}\n");
    REQUIRE(r.has_value());
    CHECK_FALSE(r->error);
  }
  REQUIRE(PollUntil([&] { return Status(m) && Status(m)->reloads == 1; }, 20s));
  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK_FALSE(st->last_reload_error.has_value());
  CHECK(st->ready == 1);
  CHECK(st->pending.size() == 1);

  REQUIRE(m.process().Signal(SIGTERM));
  const auto status = m.process().WaitExit(10s);
  REQUIRE(status.has_value());
  CHECK_FALSE(status->signaled);
  CHECK(status->code == 0);
}

}  // namespace
}  // namespace einhorn::test
