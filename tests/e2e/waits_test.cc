// einhornctl's waits with the real binaries (issue 17, items 1 and 4): `reload` waits for its
// outcome and exits 0 or 1 with the whole reason; `set --wait` and `upgrade --wait` return only
// once the workers told to drain have exited; `wait ready|drained|upgraded`; one deadline
// option, --wait-timeout, checked alike everywhere.
#include <doctest/doctest.h>
#include <unistd.h>

#include <set>
#include <string>

#include "core/pool_status.h"
#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

Finished Ctl(const MasterRun& m, std::vector<std::string> args) {
  args.insert(args.begin(), {EINHORNCTL_BIN, "-d", Sock(m)});
  return RunProgram(std::move(args), 60s);
}

bool Has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

std::string WriteScript(const TempDir& d, const std::string& name, const std::string& body) {
  const std::string path = d.File(name);
  WriteFile(path, "#!/bin/sh\n" + body, 0755);
  return path;
}

bool AnyAlive(const std::set<pid_t>& pids) {
  for (const pid_t p : pids) {
    if (ProcessAlive(p)) return true;
  }
  return false;
}

TEST_CASE("einhornctl reload waits: exit 0 once the new image runs with the same workers") {
  MasterRun m({"-n", "2", "-m", "0"}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  const std::set<pid_t> workers = Pids(m);

  const Finished r = Ctl(m, {"reload"});
  INFO("out: ", r.out, "\nerr: ", r.err);
  CHECK(r.status.code == 0);
  CHECK(r.out.rfind("Reloading, as commanded\n", 0) == 0);
  CHECK(Has(r.out, "Reloaded: einhorn-cpp "));
  CHECK(Has(r.out, "(pid " + std::to_string(m.pid()) + ", reload #1); it kept 2 of the 2 workers"));
  CHECK(r.err.empty());
  // No polling: when reload returns, the new image is there.
  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->reloads == 1);
  CHECK_FALSE(st->reloading);
  CHECK(Pids(m) == workers);

  // --no-wait: Einhorn's reply alone, as before.
  const Finished n = Ctl(m, {"reload", "--no-wait"});
  CHECK(n.status.code == 0);
  CHECK(n.out == "Reloading, as commanded\n");
  CHECK(PollUntil([&] { return Status(m) && Status(m)->reloads == 2; }, 20s));
}

TEST_CASE("einhornctl reload exits 1 with the whole reason when the new binary fails its check") {
  TempDir d;
  // Longer than the ~400 characters the status line used to keep.
  const std::string reason =
      "einhorn-cpp 9.9.9 cannot take over: " + std::string(700, 'x') + " END";
  const std::string stub =
      WriteScript(d, "einhorn-next.sh", "echo 'checking' ; echo '" + reason + "' >&2; exit 1\n");
  MasterRun m({"-n", "2", "-m", "0", "--reexec-as", stub}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  const std::set<pid_t> workers = Pids(m);

  const Finished r = Ctl(m, {"reload"});
  INFO("out: ", r.out, "\nerr: ", r.err);
  CHECK(r.status.code == 1);
  CHECK(r.out.rfind("Reloading, as commanded\n", 0) == 0);
  CHECK(Has(r.err, "Reload failed, the master keeps running as it was: the upgrade check of " +
                       stub + " failed (exit 1): " + reason + "\n"));
  // The same failure a second time is a new outcome, not the old one.
  const Finished again = Ctl(m, {"reload"});
  CHECK(again.status.code == 1);
  CHECK(Has(again.err, reason));
  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->reloads == 0);
  CHECK(st->reload_failures == 2);
  CHECK(Pids(m) == workers);

  // A stub that exits 0 without reading the state is refused too (reload_check_test.cc).
  const std::string liar = WriteScript(d, "liar.sh", "exit 0\n");
  MasterRun l({"-n", "1", "-m", "0", "--reexec-as", liar}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(l, 1, 1); }, 10s));
  const Finished lied = Ctl(l, {"reload"});
  CHECK(lied.status.code == 1);
  CHECK(Has(lied.err, "did not show it read the state"));

  // --no-wait keeps the old answer: exit 0, whatever happens next.
  const Finished blind = Ctl(m, {"reload", "--no-wait"});
  CHECK(blind.status.code == 0);
  CHECK(blind.out == "Reloading, as commanded\n");
}

TEST_CASE("einhornctl reload exits 1 when the config changes a restart-only key") {
  TempDir cfg;
  const std::string file = cfg.File("app.yaml");
  const std::string good =
      "command: [" + std::string(TEST_WORKER_BIN) + "]\nnumber: 2\nack_mode: 0.1\n";
  WriteFile(file, good);
  MasterRun m({"--config", file}, {});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 20s));

  WriteFile(file, good + "bind: 127.0.0.1:0\n");
  const Finished r = Ctl(m, {"reload"});
  INFO("out: ", r.out, "\nerr: ", r.err);
  CHECK(r.status.code == 1);
  CHECK(Has(r.err, "only a restart of the master can change: bind ([] -> [127.0.0.1:0])"));
  CHECK(Status(m)->reloads == 0);

  // A live key goes through.
  WriteFile(file, good + "seconds: 2\n");
  const Finished ok = Ctl(m, {"reload"});
  CHECK_MESSAGE(ok.status.code == 0, ok.err);
  CHECK(Status(m)->reloads == 1);
}

TEST_CASE(
    "set --wait returns only once the workers told to drain have exited, within the deadline") {
  // Workers that keep running 1.5 s after USR2.
  MasterRun m({"-n", "3", "-m", "0"}, {TEST_WORKER_BIN, "--drain-ms", "1500"});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 3, 1); }, 10s));
  const std::set<pid_t> before = Pids(m);

  const Finished r = Ctl(m, {"set", "1", "--wait"});
  INFO("out: ", r.out, "\nerr: ", r.err);
  CHECK(r.status.code == 0);
  CHECK(Has(r.out, "ready 1/1, booting 0, told to drain: 0 running, 2 exited"));
  // Returned: the two culled workers are gone (before, they were still draining).
  const std::set<pid_t> now = Pids(m);
  CHECK(now.size() == 1);
  std::set<pid_t> culled;
  for (const pid_t p : before) {
    if (!now.contains(p)) culled.insert(p);
  }
  CHECK(culled.size() == 2);
  CHECK_FALSE(AnyAlive(culled));
  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->draining == 0);
}

TEST_CASE("set --wait and wait drained honour the deadline with a worker that ignores USR2") {
  MasterRun m({"-n", "2", "-m", "0"}, {TEST_WORKER_BIN, "--ignore", "USR2"});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));

  const Finished r = Ctl(m, {"set", "1", "--wait", "--wait-timeout", "1"});
  INFO("out: ", r.out, "\nerr: ", r.err);
  CHECK(r.status.code == 4);
  CHECK(Has(r.err, "timed out after 1s: ready 1/1, booting 0, told to drain: 1 running"));
  // The old spelling still works.
  const Finished old = Ctl(m, {"set", "1", "--wait", "--timeout", "0.5"});
  CHECK(old.status.code == 4);

  const Finished w = Ctl(m, {"wait", "drained", "--wait-timeout", "0.5"});
  CHECK(w.status.code == 4);
  CHECK(Has(w.err, "not drained within 0.5s (--wait-timeout): 1 told to drain, not exited yet"));
  const Finished ready = Ctl(m, {"wait", "ready"});
  CHECK(ready.status.code == 0);
  CHECK(ready.out == "ready: ready 1/1\n");
}

TEST_CASE("upgrade --wait says told to drain and exited, and returns once the old ones exited") {
  MasterRun m({"-n", "2", "-m", "0.1"}, {TEST_WORKER_BIN, "--drain-ms", "1000"});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  const std::set<pid_t> old = Pids(m);

  const Finished r = Ctl(m, {"upgrade", "--wait"});
  INFO("out: ", r.out, "\nerr: ", r.err);
  CHECK(r.status.code == 0);
  CHECK(Has(r.out, "Progress: 2/2 new ready, 2/2 old told to drain\n"));
  CHECK_FALSE(Has(r.out, "old drained"));
  CHECK(Has(r.out, "Upgrade done\n"));
  CHECK(Has(r.out, "old workers told to drain, not exited yet: "));
  CHECK(r.out.ends_with("Every old worker has exited\n"));
  CHECK_FALSE(AnyAlive(old));
  CHECK(PoolSettled(m, 2, 2));
}

TEST_CASE("wait ready, drained and upgraded against a real master") {
  MasterRun m({"-n", "2", "-m", "0.2"}, {TEST_WORKER_BIN, "--drain-ms", "500"});
  // The socket exists once the master answers; the workers are still booting.
  REQUIRE(PollUntil([&] { return Status(m).has_value(); }, 10s));
  const Finished ready = Ctl(m, {"wait", "ready", "--wait-timeout", "20"});
  CHECK_MESSAGE(ready.status.code == 0, ready.err);
  CHECK(PoolSettled(m, 2, 1));

  // Straight after `upgrade` (the master is still checking its binary): not upgraded yet.
  const Finished up = Ctl(m, {"upgrade"});
  REQUIRE(up.status.code == 0);
  const Finished upgraded = Ctl(m, {"wait", "upgraded", "--wait-timeout", "30"});
  INFO("out: ", upgraded.out, "\nerr: ", upgraded.err);
  CHECK(upgraded.status.code == 0);
  CHECK(Has(upgraded.out, "upgraded: generation 2: ready 2/2"));
  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->generation == 2);
  CHECK(st->draining == 0);
  for (const core::WorkerStatus& w : st->workers) CHECK(w.generation == 2);
  CHECK(Ctl(m, {"wait", "drained"}).status.code == 0);

  // Not a condition: usage.
  const Finished none = Ctl(m, {"wait", "nothing"});
  CHECK(none.status.code == 2);
}

TEST_CASE("wait upgraded exits 1 when the upgrade's reload failed") {
  TempDir d;
  const std::string stub = WriteScript(d, "einhorn-next.sh", "echo 'no way' >&2; exit 1\n");
  MasterRun m({"-n", "1", "-m", "0", "--reexec-as", stub}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 1, 1); }, 10s));
  REQUIRE(Ctl(m, {"upgrade"}).status.code == 0);
  const Finished w = Ctl(m, {"wait", "upgraded", "--wait-timeout", "20"});
  CHECK(w.status.code == 1);
  CHECK(Has(w.err, "the last master reload failed: the upgrade check of " + stub +
                       " failed (exit 1): no way"));
}

TEST_CASE("every wait's deadline refuses nonsense and takes 0 as no limit") {
  MasterRun m({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 1, 1); }, 10s));
  for (const std::string bad : {"-1", "nan", "inf", "1e10", "-0.5", "soon"}) {
    INFO(bad);
    for (const std::vector<std::string>& args :
         std::vector<std::vector<std::string>>{{"reload", "--wait-timeout", bad},
                                               {"wait", "ready", "--wait-timeout", bad},
                                               {"wait", "drained", "--timeout", bad},
                                               {"set", "1", "--wait", "--wait-timeout", bad},
                                               {"upgrade", "--wait", "--wait-timeout", bad}}) {
      const Finished r = Ctl(m, args);
      CHECK(r.status.code == 2);
      CHECK(Has(r.err, "seconds"));
    }
  }
  // Nothing was sent: still the first image, one worker.
  CHECK(Status(m)->reloads == 0);
  CHECK(PoolSettled(m, 1, 1));
  // 0: no limit.
  CHECK(Ctl(m, {"wait", "ready", "--wait-timeout", "0"}).status.code == 0);
  CHECK(Ctl(m, {"set", "1", "--wait", "--wait-timeout", "0"}).status.code == 0);
  CHECK(Ctl(m, {"reload", "--wait-timeout", "0"}).status.code == 0);
}

}  // namespace
}  // namespace einhorn::test
