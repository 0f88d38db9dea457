// Rolling upgrades with real workers under real load: no request may fail, a bad generation is
// rolled back while the old one keeps serving, and the client always hears how it ended.
#include <doctest/doctest.h>
#include <signal.h>

#include <atomic>
#include <climits>
#include <set>
#include <thread>

#include "control_client.h"
#include "core/pool_status.h"
#include "harness.h"
#include "pool_query.h"
#include "load.h"

namespace einhorn::test {
namespace {

using Clock = std::chrono::steady_clock;

// A worker whose next generation the test controls with flag files, as a deploy would by
// changing the code on disk: "crash" exits at once, "hang" never acks.
std::string WriteDeployableWorker(const TempDir& d) {
  const std::string path = d.File("worker.sh");
  WriteFile(path,
            "#!/bin/sh\n"
            "[ -e '" + d.File("crash") + "' ] && exit 3\n"
            "[ -e '" + d.File("hang") + "' ] && exec sleep 1000\n"
            "[ -e '" + d.File("slow") + "' ] && sleep 0.5\n"
            "exec '" EXAMPLE_HTTP_BIN "' --ack\n",
            0755);
  return path;
}

const std::vector<std::string> kQuiet = {"EINHORN_EXAMPLE_QUIET=1"};

TEST_CASE("three upgrades in a row under load lose no request") {
  MasterRun m({"-n", "4", "-m", "manual", "-b", "127.0.0.1:0", "-t", "10"},
              {EXAMPLE_HTTP_BIN, "--ack"}, kQuiet);
  REQUIRE(PollUntil([&] { return PoolSettled(m, 4, 1); }, 10s));
  const auto port = m.Port();
  REQUIRE(port.has_value());
  Load load(*port, 4, 2s);
  REQUIRE(PollUntil([&] { return load.ok() > 50; }, 10s));
  ReadySampler sampler(m);

  for (int k = 1; k <= 3; ++k) {
    INFO("upgrade ", k);
    const UpgradeRun u = RunUpgrade(m);
    CHECK(u.ended);
    CHECK_FALSE(u.error);
    CHECK(u.last == "Upgrade done");
    CHECK(u.messages.front() == "Upgrading smoothly, as commanded");
    const long before = load.ok();
    CHECK(PollUntil([&] { return load.ok() > before + 20; }, 10s));
  }
  CHECK(PollUntil([&] { return PoolSettled(m, 4, 4); }, 10s));
  sampler.Stop();
  CHECK(sampler.samples() > 20);
  CHECK(sampler.min_ready() == 4);
  load.Stop();
  MESSAGE(load.Summary());
  CHECK(load.failed() == 0);
  CHECK(load.ok() > 100);
}

TEST_CASE("an upgrade to a worker that exits at once is rolled back and the old one keeps serving") {
  TempDir d;
  MasterRun m({"-n", "3", "-m", "manual", "-b", "127.0.0.1:0", "-t", "5"},
              {"/bin/sh", WriteDeployableWorker(d)}, kQuiet);
  REQUIRE(PollUntil([&] { return PoolSettled(m, 3, 1); }, 10s));
  const std::set<pid_t> old = Pids(m);
  Load load(*m.Port(), 4, 2s);
  REQUIRE(PollUntil([&] { return load.ok() > 50; }, 10s));
  ReadySampler sampler(m);

  WriteFile(d.File("crash"), "");
  const UpgradeRun bad = RunUpgrade(m);
  CHECK(bad.ended);
  CHECK(bad.error);
  CHECK(bad.last.find("Upgrade to generation 2 failed: 3 new workers failed") == 0);
  CHECK(bad.last.find("generation 1 keeps serving (3 ready)") != std::string::npos);
  CHECK(PoolSettled(m, 3, 1));
  CHECK(Pids(m) == old);
  const long before = load.ok();
  CHECK(PollUntil([&] { return load.ok() > before + 50; }, 10s));

  // The fixed code goes out as a new generation; 2 is never reused.
  std::remove(d.File("crash").c_str());
  const UpgradeRun good = RunUpgrade(m);
  CHECK(good.last == "Upgrade done");
  CHECK(PollUntil([&] { return PoolSettled(m, 3, 3); }, 10s));
  sampler.Stop();
  CHECK(sampler.min_ready() == 3);
  load.Stop();
  MESSAGE(load.Summary());
  CHECK(load.failed() == 0);
}

TEST_CASE("an upgrade to a worker that never acks is rolled back at the ack timeout") {
  TempDir d;
  MasterRun m({"-n", "3", "-m", "manual", "-b", "127.0.0.1:0", "--ack-timeout", "1.5"},
              {"/bin/sh", WriteDeployableWorker(d)}, kQuiet);
  REQUIRE(PollUntil([&] { return PoolSettled(m, 3, 1); }, 10s));
  const std::set<pid_t> old = Pids(m);
  Load load(*m.Port(), 4, 2s);
  REQUIRE(PollUntil([&] { return load.ok() > 50; }, 10s));
  ReadySampler sampler(m);

  WriteFile(d.File("hang"), "");
  const UpgradeRun u = RunUpgrade(m, "upgrade_fleet");
  CHECK(u.messages.front() == "Upgrading fleet, as commanded");
  CHECK(u.ended);
  CHECK(u.error);
  CHECK(u.last.find("was not ready within the ack timeout of 1.500s") != std::string::npos);
  CHECK(u.took >= 1400ms);
  CHECK(u.took < 10s);
  // The hung new worker is stopped; the old ones were never touched.
  CHECK(PollUntil([&] { return PoolSettled(m, 3, 1); }, 10s));
  CHECK(Pids(m) == old);
  sampler.Stop();
  CHECK(sampler.min_ready() == 3);
  load.Stop();
  MESSAGE(load.Summary());
  CHECK(load.failed() == 0);
}

TEST_CASE("a worker that ignores the drain signal is killed after -t during an upgrade") {
  MasterRun m({"-n", "2", "-m", "0.2", "-t", "1"},
              {TEST_WORKER_BIN, "--report", "{reports}", "--ignore", "USR2"});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  const std::set<pid_t> old = Pids(m);
  const UpgradeRun u = RunUpgrade(m);
  CHECK(u.last == "Upgrade done");
  for (pid_t p : old) {
    CHECK(PollUntil([&] { return !ProcessAlive(p); }, 10s));
    CHECK(m.SignalsOf(p) == std::vector<std::string>{"USR2"});
  }
  CHECK(m.WaitForLog("after it was signalled; sending SIGKILL"));
  CHECK(PollUntil([&] { return PoolSettled(m, 2, 2); }, 10s));
}

TEST_CASE("a second upgrade supersedes the first and both clients hear the end") {
  TempDir d;
  WriteFile(d.File("slow"), "");
  MasterRun m({"-n", "3", "-m", "manual", "-b", "127.0.0.1:0"},
              {"/bin/sh", WriteDeployableWorker(d)}, kQuiet);
  REQUIRE(PollUntil([&] { return PoolSettled(m, 3, 1); }, 10s));

  ControlClient first(Sock(m));
  REQUIRE(first.Send("{\"id\": 1, \"command\": \"upgrade\"}\n"));
  auto started = first.ReadReply(10s);
  REQUIRE(started);
  CHECK(started->wait);
  const UpgradeRun second = RunUpgrade(m);
  CHECK(second.last == "Upgrade done");
  bool superseded = false;
  for (const auto& msg : second.messages) superseded |= msg.rfind("Currently upgrading", 0) == 0;
  CHECK(superseded);
  // The first client keeps receiving until the upgrade that superseded its own is done.
  std::optional<core::wire::Reply> r;
  while ((r = first.ReadReply(30s)) && r->wait) {
  }
  REQUIRE(r);
  CHECK(r->message == "Upgrade done");
  CHECK(PollUntil([&] { return PoolSettled(m, 3, 3); }, 10s));
}

TEST_CASE("SIGHUP upgrades smoothly and an old-style client gets one reply") {
  MasterRun m({"-n", "2", "-m", "0.1"}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  REQUIRE(m.process().Signal(SIGHUP));
  CHECK(PollUntil([&] { return PoolSettled(m, 2, 2); }, 10s));

  // No id (go-einhorn sends `request_id`, which Einhorn does not read): no stream.
  ControlClient c(Sock(m));
  auto r = c.Ask("request_id: 1%0Acommand: upgrade%0A\n");
  REQUIRE(r);
  CHECK(r->message == "Upgrading smoothly, as commanded");
  CHECK_FALSE(r->wait);
  CHECK_FALSE(r->request_id.has_value());
  CHECK(PollUntil([&] { return PoolSettled(m, 2, 3); }, 10s));
  CHECK_FALSE(c.ReadReply(200ms).has_value());
}

TEST_CASE("a fleet upgrade starts the whole new generation before draining any old worker") {
  MasterRun m({"-n", "3", "-m", "0.3"}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 3, 1); }, 10s));
  const UpgradeRun u = RunUpgrade(m, "upgrade_fleet");
  CHECK(u.last == "Upgrade done");
  int spawned = 0;
  int spawned_before_first_drain = -1;
  for (const auto& msg : u.messages) {
    if (msg.rfind("spawned worker", 0) == 0) ++spawned;
    if (msg.rfind("draining worker", 0) == 0 && spawned_before_first_drain < 0) {
      spawned_before_first_drain = spawned;
    }
  }
  CHECK(spawned == 3);
  CHECK(spawned_before_first_drain == 3);
  CHECK(PollUntil([&] { return PoolSettled(m, 3, 2); }, 10s));
}

}  // namespace
}  // namespace einhorn::test
