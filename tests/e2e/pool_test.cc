// The pool: N workers, each announced its sockets, replaced in its slot when it dies, and
// backed off when it crash-loops.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>

#include <set>

#include "harness.h"

namespace einhorn::test {
namespace {

TEST_CASE("N workers run as direct children, one per slot, with Einhorn's environment") {
  MasterRun m({"-n", "3", "-m", "0.1", "-b", "127.0.0.1:0,r"},
              {TEST_WORKER_BIN, "--report", "{reports}"},
              {"NOTIFY_SOCKET=/run/systemd/notify", "LISTEN_FDS=7", "EINHORN_FD_0=9"});
  REQUIRE(m.WaitForWorkers(3));
  const auto port = m.Port();
  REQUIRE(port.has_value());
  std::set<std::string> indexes;
  for (const auto& [pid, r] : m.LiveWorkers()) {
    CHECK(r.at("ppid") == std::to_string(m.pid()));
    CHECK(r.at("EINHORN_MASTER_PID") == std::to_string(m.pid()));
    CHECK(r.at("EINHORN_FD_COUNT") == "1");
    CHECK(r.at("EINHORN_FD_0") == "3");
    CHECK(r.at("LISTEN_FDS") == "1");
    CHECK(r.at("LISTEN_PID") == std::to_string(pid));
    CHECK(r.at("LISTEN_FDNAMES") == "127.0.0.1_0");
    CHECK(r.at("EINHORN_SOCK_PATH") == m.dir().File("einhorn.sock"));
    CHECK(r.count("NOTIFY_SOCKET") == 0);
    CHECK(r.at("sockname_3") == "127.0.0.1:" + std::to_string(*port));
    CHECK(r.at("nonblock_3") == "0");
    CHECK(r.at("pgid") == std::to_string(pid));  // its own process group
    CHECK(r.at("fds") == "0 1 2 3");              // nothing else leaked
    CHECK(r.at("sigblk") == "0000000000000000");
    CHECK(r.at("sigign") == "0000000000000000");
    indexes.insert(r.at("EINHORN_CHILD_INDEX"));
  }
  CHECK(indexes == std::set<std::string>{"0", "1", "2"});
  CHECK(m.WaitForLog("is ready"));
}

TEST_CASE("a worker killed with SIGKILL is replaced in the same slot") {
  MasterRun m({"-n", "2", "-m", "0.1"}, {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(m.WaitForWorkers(2));
  const auto before = m.LiveWorkers();
  const auto& [victim, report] = *before.begin();
  const std::string slot = report.at("EINHORN_CHILD_INDEX");
  REQUIRE(kill(victim, SIGKILL) == 0);
  REQUIRE(PollUntil(
      [&] {
        const auto now = m.LiveWorkers();
        return now.size() == 2 && now.count(victim) == 0;
      },
      10s));
  const auto after = m.LiveWorkers();
  bool replaced_in_slot = false;
  for (const auto& [pid, r] : after) {
    if (before.count(pid) == 0) replaced_in_slot = r.at("EINHORN_CHILD_INDEX") == slot;
  }
  CHECK(replaced_in_slot);
  CHECK(m.LogHas("exited with signal 9"));
  CHECK(m.process().running());
}

TEST_CASE("an instantly-exiting worker is respawned at a bounded, growing interval") {
  MasterRun m({"-n", "1", "-s", "0.1"}, {TEST_WORKER_BIN, "--report", "{reports}", "--exit", "3"});
  // Backoff 0.1, 0.15, 0.225, 0.34, 0.51, 0.76, 1.14 s (+-20%): about 7 starts in 3 s.
  // Without backoff it would be thousands.
  REQUIRE(m.WaitForLog("3 consecutive failures"));
  const auto start = std::chrono::steady_clock::now();
  PollUntil([] { return false; }, 3s, 100ms);  // observe the loop for a while
  const auto elapsed = std::chrono::steady_clock::now() - start;
  const size_t spawned = m.Reports().size();
  CHECK(spawned >= 4);
  CHECK(spawned <= 15);
  CHECK(elapsed >= 3s);
  CHECK(m.process().running());  // the master never gives up
  CHECK(m.LogHas("exited with exit 3"));
  CHECK(m.LogHas("before it was ready"));
}

TEST_CASE("worker niceness and -k's parent-death signal") {
  MasterRun m({"-n", "1", "-m", "0", "-k", "--nice", "0:7"},
              {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(m.WaitForWorkers(1));
  const auto [pid, r] = *m.LiveWorkers().begin();
  CHECK(r.at("nice") == "7");
  // kill -9 of the master: the kernel sends the worker SIGUSR2 (PR_SET_PDEATHSIG).
  REQUIRE(m.process().Signal(SIGKILL));
  CHECK(PollUntil([&, p = pid] { return !ProcessAlive(p); }, 10s));
  CHECK(m.SignalsOf(pid) == std::vector<std::string>{"USR2"});
}

TEST_CASE("signals that stop an ordinary process do not stop the master") {
  MasterRun m({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(m.WaitForWorkers(1));
  for (int sig : {SIGHUP, SIGUSR1}) m.process().Signal(sig);
  CHECK(m.WaitForLog("got SIGUSR1: no log files to reopen"));  // USR1 reopens --worker-log-dir files
  CHECK(m.WaitForLog("got SIGHUP: smooth upgrade"));
  CHECK(ProcessState(m.pid()) != 'T');
  CHECK(m.process().running());
  // HUP replaced the worker with a new generation.
  CHECK(PollUntil([&] { return m.LiveWorkers().size() == 1; }, 10s));
}

}  // namespace
}  // namespace einhorn::test

namespace einhorn::test {
namespace {

TEST_CASE("a worker that can no longer be executed is logged with the reason and backed off") {
  TempDir d;
  const std::string script = d.File("work.sh");
  WriteFile(script, "#!/bin/sh\nexec sleep 1000\n", 0755);
  MasterRun m({"-n", "1", "-m", "0"}, {script});
  REQUIRE(m.WaitForLog("is ready"));
  // -m 0 is ready at fork: wait until the script has really been executed (it is sleep now),
  // or the chmod below could already fail this first exec.
  std::vector<pid_t> children;
  REQUIRE(PollUntil(
      [&] {
        children = ChildrenOf(m.pid());
        return children.size() == 1 &&
               ReadFile("/proc/" + std::to_string(children[0]) + "/comm") == "sleep\n";
      },
      10s));
  // A broken deploy: the file loses its execute bits (root too needs one to exec it).
  REQUIRE(chmod(script.c_str(), 0644) == 0);
  REQUIRE(kill(children[0], SIGKILL) == 0);
  CHECK(m.WaitForLog("could not be started: execve " + script + ": Permission denied"));
  CHECK(m.WaitForLog("exited with exit 127"));
  CHECK(m.WaitForLog("respawning in"));
  CHECK(m.process().running());
}

}  // namespace
}  // namespace einhorn::test
