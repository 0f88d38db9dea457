// The reload's pre-flight check with the real binary: only a new image that read the state it
// was given may be exec'd (a stub that exits 0 is refused, the master keeps running), and a
// check that hangs is killed with everything it started.
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <set>

#include "control_client.h"
#include "core/pool_status.h"
#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

bool Has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

void AskReload(const MasterRun& m) {
  ControlClient c(Sock(m));
  REQUIRE(c.connected());
  const auto r = c.Ask("{\"id\": 7, \"command\": \"reload\"}\n");
  REQUIRE(r.has_value());
  CHECK(r->message == "Reloading, as commanded");
}

std::optional<std::string> LastReloadError(const MasterRun& m) {
  const auto st = Status(m);
  return st ? st->last_reload_error : std::nullopt;
}

// A master that exec'd a stub (the defect) leaves its workers to init: kill them at the end.
struct KillAtExit {
  std::set<pid_t> pids;
  ~KillAtExit() {
    for (pid_t p : pids) {
      if (ProcessAlive(p)) kill(p, SIGKILL);
    }
  }
};

// The master is still there, as it was: same pid, no reload, the same workers, its children.
void CheckUntouched(MasterRun& m, const std::set<pid_t>& workers) {
  CHECK(m.process().running());
  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->master_pid == m.pid());
  CHECK(st->reloads == 0);
  CHECK(Pids(m) == workers);
  for (pid_t w : workers) CHECK(IsChild(m.pid(), w));
}

TEST_CASE("a --reexec-as stub that exits 0 is not exec'd: the master keeps running and says why") {
  TempDir d;
  // Variants of a binary that is not einhorn-cpp: says nothing; reads the state but prints
  // something else; prints a digest of other bytes.
  const std::vector<std::string> bodies = {
      "exit 0\n",
      "cat <&3 >/dev/null; echo 'all good'; exit 0\n",
      "echo 'einhorn-cpp upgrade check: state digest 0123456789abcdef'; exit 0\n",
  };
  for (const std::string& body : bodies) {
    INFO(body);
    const std::string stub = WriteShellScript(d, "stub.sh", body);
    MasterRun m({"-n", "2", "-m", "0", "--reexec-as", stub}, {TEST_WORKER_BIN});
    REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
    const std::set<pid_t> old = Pids(m);
    KillAtExit cleanup{old};

    AskReload(m);
    REQUIRE(PollUntil([&] { return LastReloadError(m).has_value(); }, 20s));
    const std::string why = *LastReloadError(m);
    CHECK(Has(why, "upgrade check of " + stub + " exited 0 but did not show it read the state"));
    CHECK(m.WaitForLog("Reload failed, the master keeps running as it was"));
    CheckUntouched(m, old);

    // An upgrade's subscriber hears that nothing changed, and the pool stays as it was.
    const UpgradeRun u = RunUpgrade(m);
    CHECK(u.ended);
    CHECK(u.error);
    CHECK(Has(u.last, "Upgrade failed: the master could not reload first, so nothing changed"));
    CHECK(Has(u.last, "did not show it read the state"));
    CheckUntouched(m, old);
    CHECK(PoolSettled(m, 2, 1));
  }
}

TEST_CASE("the binary at the master's own path replaced by a stub that exits 0 is not exec'd") {
  // The master runs from a copy in the test directory (its self_path); the copy is then
  // replaced, as a botched deploy would.
  MasterRun m({"-n", "2", "-m", "0"}, {TEST_WORKER_BIN}, {},
              {"/bin/sh", "-c",
               "D='{dir}'; cp \"$0\" \"$D/einhorn-cpp\" && exec \"$D/einhorn-cpp\" \"$@\""});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  const std::set<pid_t> old = Pids(m);
  KillAtExit cleanup{old};
  const std::string self = m.dir().File("einhorn-cpp");
  WriteFile(self + ".new", "#!/bin/sh\nexit 0\n", 0755);
  REQUIRE(std::rename((self + ".new").c_str(), self.c_str()) == 0);

  AskReload(m);
  REQUIRE(PollUntil([&] { return LastReloadError(m).has_value(); }, 20s));
  CHECK(Has(*LastReloadError(m), "did not show it read the state"));
  CheckUntouched(m, old);
  // The master still stops cleanly: nothing of it was lost.
  REQUIRE(m.process().Signal(SIGTERM));
  const auto status = m.process().WaitExit(10s);
  REQUIRE(status.has_value());
  CHECK(status->code == 0);
  for (pid_t w : old) CHECK(PollUntil([&] { return !ProcessAlive(w); }, 5s));
}

TEST_CASE("a real einhorn-cpp passes the check by digest and the reload goes through") {
  TempDir d;
  // The check's output ends up in the master's log only on failure; here it must pass.
  const std::string wrapper = WriteShellScript(d, "next.sh", "exec '" EINHORN_BIN "' \"$@\"\n");
  MasterRun m({"-n", "1", "-m", "0", "--reexec-as", wrapper}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 1, 1); }, 10s));
  const std::set<pid_t> old = Pids(m);
  AskReload(m);
  REQUIRE(PollUntil(
      [&] {
        const auto st = Status(m);
        return st && st->reloads == 1;
      },
      20s));
  CHECK(Pids(m) == old);
  CHECK_FALSE(LastReloadError(m).has_value());
}

TEST_CASE("einhorn-cpp --upgrade-check without a state exits 0 at once (Ruby Einhorn's check)") {
  const Finished f = RunToExit({"--upgrade-check"}, 10s);
  CHECK_FALSE(f.status.signaled);
  CHECK(f.status.code == 0);
  const Finished g = RunToExit({"--upgrade-check", "--", "/bin/true"}, 10s);
  CHECK(g.status.code == 0);
}

TEST_CASE("a hung upgrade check is killed with its whole process group at the limit") {
  TempDir d;
  // The check forks a sleeper, records its pid and waits for it: hung in a child.
  const std::string hang = WriteShellScript(d, "hang.sh",
                                       "if [ \"$1\" = --upgrade-check ]; then\n"
                                       "  sleep 1000 &\n"
                                       "  echo $! > \"$DIR/sleeper\"\n"
                                       "  echo $$ > \"$DIR/check\"\n"
                                       "  wait\n"
                                       "fi\n"
                                       "exec '" EINHORN_BIN "' \"$@\"\n");
  MasterRun m({"-n", "1", "-m", "0", "--reexec-as", hang}, {TEST_WORKER_BIN},
              {"EINHORN_CPP_TEST_CHECK_TIMEOUT_MS=1500"});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 1, 1); }, 10s));
  const std::set<pid_t> old = Pids(m);
  AskReload(m);
  REQUIRE(
      PollUntil([&] { return FileExists(d.File("sleeper")) && FileExists(d.File("check")); }, 10s));
  pid_t sleeper = 0;
  pid_t check = 0;
  // An orphaned sleeper (the defect) must not outlive the test, whatever fails.
  struct Reap {
    pid_t* pid;
    ~Reap() {
      if (*pid > 0 && ProcessAlive(*pid)) kill(*pid, SIGKILL);
    }
  } reap_sleeper{&sleeper};
  REQUIRE(PollUntil(
      [&] {
        sleeper = static_cast<pid_t>(std::atol(ReadFile(d.File("sleeper")).c_str()));
        check = static_cast<pid_t>(std::atol(ReadFile(d.File("check")).c_str()));
        return sleeper > 0 && check > 0;
      },
      5s));
  REQUIRE(PollUntil([&] { return LastReloadError(m).has_value(); }, 20s));
  CHECK(Has(*LastReloadError(m), "did not finish within 1.5 s"));
  const bool check_gone = PollUntil([&] { return !ProcessAlive(check); }, 5s);
  const bool sleeper_gone = PollUntil([&] { return !ProcessAlive(sleeper); }, 5s);
  CHECK(check_gone);
  CHECK(sleeper_gone);
  // Nothing else of its group either.
  CHECK(PollUntil(
      [&] {
        for (pid_t p : {check, sleeper}) {
          if (ProcessAlive(p)) return false;
        }
        return kill(-check, 0) != 0;
      },
      5s));
  CheckUntouched(m, old);
}

}  // namespace
}  // namespace einhorn::test
