// ctl/waits.h: what each wait decides from one status, without a master.
#include "ctl/waits.h"

#include <doctest/doctest.h>

#include "fake_master.h"

namespace einhorn::ctl {
namespace {

using core::PoolStatus;
using core::WorkerStatus;
using K = WaitVerdict::Kind;

WorkerStatus Worker(core::Pid pid, const std::string& state, int generation = 1) {
  WorkerStatus w;
  w.pid = pid;
  w.state = state;
  w.generation = generation;
  return w;
}

TEST_CASE("waits: condition names") {
  CHECK(WaitConditionFromName("ready") == WaitCondition::kReady);
  CHECK(WaitConditionFromName("drained") == WaitCondition::kDrained);
  CHECK(WaitConditionFromName("upgraded") == WaitCondition::kUpgraded);
  CHECK_FALSE(WaitConditionFromName("up").has_value());
  CHECK_FALSE(WaitConditionFromName("").has_value());
  CHECK_FALSE(WaitConditionFromName("Ready").has_value());
}

TEST_CASE("waits: ready") {
  PoolStatus s = test::MakeStatus(3, 3, 0);
  CHECK(CheckWait(WaitCondition::kReady, s).kind == K::kReached);
  CHECK(CheckWait(WaitCondition::kReady, s).text == "ready 3/3");
  // Workers told to drain do not matter to ready.
  s.draining = 2;
  CHECK(CheckWait(WaitCondition::kReady, s).kind == K::kReached);
  // Booting, too few, a reload or an upgrade under way: not yet.
  CHECK(CheckWait(WaitCondition::kReady, test::MakeStatus(3, 2, 1)).kind == K::kWaiting);
  CHECK(CheckWait(WaitCondition::kReady, test::MakeStatus(3, 2, 0)).kind == K::kWaiting);
  PoolStatus reloading = test::MakeStatus(3, 3, 0);
  reloading.reloading = true;
  CHECK(CheckWait(WaitCondition::kReady, reloading).kind == K::kWaiting);
  PoolStatus upgrading = test::MakeStatus(3, 3, 0);
  upgrading.upgrade = core::UpgradeStatus{"smooth", 1, 2, 1.0, 0, 0, 3};
  CHECK(CheckWait(WaitCondition::kReady, upgrading).kind == K::kWaiting);
  // A stopping master will never be ready again.
  PoolStatus stopping = test::MakeStatus(3, 3, 0);
  stopping.stopping = true;
  CHECK(CheckWait(WaitCondition::kReady, stopping).kind == K::kNever);
}

TEST_CASE("waits: drained") {
  PoolStatus s = test::MakeStatus(2, 2, 0);
  CHECK(CheckWait(WaitCondition::kDrained, s).kind == K::kReached);
  s.draining = 2;
  s.workers.push_back(Worker(9001, "draining"));
  s.workers.push_back(Worker(9000, "draining"));
  const WaitVerdict v = CheckWait(WaitCondition::kDrained, s);
  CHECK(v.kind == K::kWaiting);
  CHECK(v.text == "2 told to drain, not exited yet (pids 9000 9001)");
}

TEST_CASE("waits: upgraded") {
  PoolStatus s = test::MakeStatus(2, 2, 0);
  s.generation = 2;
  for (WorkerStatus& w : s.workers) w.generation = 2;
  CHECK(CheckWait(WaitCondition::kUpgraded, s).kind == K::kReached);
  CHECK(CheckWait(WaitCondition::kUpgraded, s).text == "generation 2: ready 2/2");

  // An old worker told to drain still runs: not yet.
  PoolStatus old = s;
  old.draining = 1;
  old.workers.push_back(Worker(4000, "draining", 1));
  CHECK(OldWorkers(old) == std::set<core::Pid>{4000});
  const WaitVerdict v = CheckWait(WaitCondition::kUpgraded, old);
  CHECK(v.kind == K::kWaiting);
  CHECK(v.text == "1 workers of older generations still running (pids 4000)");

  // A reload (the first step of every upgrade) or the upgrade itself under way: not yet,
  // even when an earlier upgrade's outcome is there.
  PoolStatus reloading = s;
  reloading.reloading = true;
  reloading.last_upgrade = core::LastUpgradeStatus{true, 2, "", 60};
  CHECK(CheckWait(WaitCondition::kUpgraded, reloading).kind == K::kWaiting);
  PoolStatus running = s;
  running.upgrade = core::UpgradeStatus{"smooth", 2, 3, 1.0, 0, 1, 2};
  CHECK(CheckWait(WaitCondition::kUpgraded, running).kind == K::kWaiting);

  // Never: rolled back, or the master's reload failed.
  PoolStatus rolled = s;
  rolled.last_upgrade = core::LastUpgradeStatus{false, 3, "3 new workers failed", 1};
  CHECK(CheckWait(WaitCondition::kUpgraded, rolled).kind == K::kNever);
  PoolStatus refused = s;
  refused.last_reload_error = "the upgrade check of /x failed (exit 1)";
  const WaitVerdict r = CheckWait(WaitCondition::kUpgraded, refused);
  CHECK(r.kind == K::kNever);
  CHECK(r.text == "the last master reload failed: the upgrade check of /x failed (exit 1)");
}

TEST_CASE("waits: a reload's outcome from two statuses") {
  const PoolStatus before = test::MakeStatus(2, 2, 0);
  PoolStatus now = before;
  CHECK(JudgeReload(before, now).kind == ReloadVerdict::Kind::kRunning);
  now.reloading = true;
  CHECK(JudgeReload(before, now).text == "checking the new master binary");

  PoolStatus done = before;
  done.reloads = 1;
  done.workers.pop_back();  // one worker exited meanwhile
  const ReloadVerdict d = JudgeReload(before, done);
  CHECK(d.kind == ReloadVerdict::Kind::kDone);
  CHECK(d.text ==
        "Reloaded: einhorn-cpp 0.1.0 is the master now (pid 4242, reload #1); it kept 1 of the "
        "2 workers");

  // The same reason as the last failure is still a new failure: the counter says so.
  PoolStatus failed_before = before;
  failed_before.reload_failures = 1;
  failed_before.last_reload_error = "same";
  PoolStatus failed = failed_before;
  CHECK(JudgeReload(failed_before, failed).kind == ReloadVerdict::Kind::kRunning);
  failed.reload_failures = 2;
  const ReloadVerdict f = JudgeReload(failed_before, failed);
  CHECK(f.kind == ReloadVerdict::Kind::kFailed);
  CHECK(f.text == "Reload failed, the master keeps running as it was: same");

  // An older master without reload_failures: a new reason is a new failure.
  PoolStatus old_master = before;
  old_master.last_reload_error = "new reason";
  CHECK(JudgeReload(before, old_master).kind == ReloadVerdict::Kind::kFailed);

  // Success wins over a failure counted before it (reloads went up).
  PoolStatus both = before;
  both.reloads = 1;
  both.reload_failures = 3;
  CHECK(JudgeReload(before, both).kind == ReloadVerdict::Kind::kDone);

  // Another master: another pid, or fewer reloads than before.
  PoolStatus other = before;
  other.master_pid = 1;
  CHECK(JudgeReload(before, other).kind == ReloadVerdict::Kind::kOtherMaster);
  PoolStatus reloaded_before = before;
  reloaded_before.reloads = 5;
  CHECK(JudgeReload(reloaded_before, before).kind == ReloadVerdict::Kind::kOtherMaster);
}

TEST_CASE("waits: the drain tracker counts told to drain and exited") {
  DrainTracker t;
  PoolStatus s = test::MakeStatus(1, 1, 0);
  t.Update(s);
  CHECK(t.Text() == "told to drain: 0 running, 0 exited");
  s.workers.push_back(Worker(7001, "draining"));
  s.workers.push_back(Worker(7002, "draining"));
  t.Update(s);
  CHECK(t.running() == 2);
  CHECK(t.exited() == 0);
  CHECK(t.Text(true) == "told to drain: 2 running, 0 exited (running: 7001 7002)");
  s.workers.pop_back();
  t.Update(s);
  CHECK(t.Text(true) == "told to drain: 1 running, 1 exited (running: 7001)");
  s.workers.pop_back();
  t.Update(s);
  CHECK(t.Text(true) == "told to drain: 0 running, 2 exited");
  // A pid seen again (reused) is not counted twice as exited.
  t.Update(s);
  CHECK(t.exited() == 2);
}

}  // namespace
}  // namespace einhorn::ctl
