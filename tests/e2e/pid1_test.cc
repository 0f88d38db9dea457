// The master as a container's entrypoint (PID 1 of a new PID namespace, with util-linux's
// unshare) and as a subreaper: orphans left by the workers' subtrees are reaped, the workers'
// own exits are still counted as theirs, and a SIGTERM from outside stops it cleanly.
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>


#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

// /proc/PID/stat's state letter and ppid; ' ' when the process is gone.
std::pair<char, pid_t> StateOf(pid_t pid) {
  const std::vector<std::string> f = ProcStatFields(pid);
  if (f.size() < 2) return {' ', 0};
  return {f[0][0], static_cast<pid_t>(std::stol(f[1]))};
}

// A worker that leaves an orphan: a child shell starts `sleep 1` in the background and exits
// at once, so the sleep loses its parent while the worker itself keeps running.
std::string WriteOrphanMaker(const TempDir& d) {
  const std::string path = d.File("worker.sh");
  WriteFile(path,
            "#!/bin/sh\n"
            "/bin/sh -c 'sleep 1 & echo $! > " + d.File("orphan") + ".tmp; mv " +
                d.File("orphan") + ".tmp " + d.File("orphan") + "'\n"
                "exec sleep 1000\n",
            0755);
  return path;
}

bool NoZombieChild(pid_t parent) {
  for (pid_t c : ChildrenOf(parent)) {
    if (StateOf(c).first == 'Z') return false;
  }
  return true;
}

TEST_CASE("--subreaper: the workers' orphans are adopted and reaped, worker exits stay theirs") {
  TempDir d;
  MasterRun m({"-n", "1", "-m", "0", "--subreaper"}, {"/bin/sh", WriteOrphanMaker(d)});
  REQUIRE(PollUntil([&] { return FileExists(d.File("orphan")); }, 10s));
  const pid_t orphan = std::stoi(ReadFile(d.File("orphan")));
  // Re-parented to the master, not to init, once the shell that started it has exited.
  CHECK(PollUntil([&] { return StateOf(orphan).second == m.pid(); }, 5s));
  // It exits after a second: the master reaps it (no zombie left), without taking it for a
  // worker.
  REQUIRE(PollUntil([&] { return StateOf(orphan).first == ' '; }, 10s));
  const auto st = Status(m);
  REQUIRE(st);
  REQUIRE(st->workers.size() == 1);
  CHECK(st->workers[0].restarts == 0);
  CHECK_FALSE(st->workers[0].last_exit.has_value());
  // A worker's own death is still its own.
  REQUIRE(kill(st->workers[0].pid, SIGKILL) == 0);
  REQUIRE(PollUntil(
      [&] {
        const auto now = Status(m);
        return now && now->workers.size() == 1 && now->workers[0].last_exit == "signal 9";
      },
      10s));
  CHECK(m.LogHas("subreaper: orphans of the workers' subtrees are reaped here"));
}

TEST_CASE("as PID 1 of a new PID namespace: orphans are reaped and SIGTERM stops it cleanly") {
  if (std::system("unshare --pid --fork --mount-proc true >/dev/null 2>&1") != 0) {
    MESSAGE("skipped: cannot create a PID namespace here (unshare needs CAP_SYS_ADMIN)");
    return;
  }
  TempDir d;
  MasterRun m({"-n", "2", "-m", "0"}, {"/bin/sh", WriteOrphanMaker(d)}, {},
              {"unshare", "--pid", "--fork", "--mount-proc"});
  // unshare forks the namespace's PID 1, which execs the master.
  pid_t master = 0;
  REQUIRE(PollUntil(
      [&] {
        const auto children = ChildrenOf(m.pid());
        if (children.size() != 1) return false;
        master = children[0];
        return Status(m).has_value();
      },
      10s));
  const auto st = Status(m);
  REQUIRE(st);
  CHECK(st->master_pid == 1);
  CHECK(m.LogHas("running as PID 1"));
  // Each worker left an orphan; inside the namespace it goes to PID 1, the master.
  REQUIRE(PollUntil([&] { return ChildrenOf(master).size() >= 3; }, 10s));
  // A second later the orphans have exited and been reaped: only the two workers remain.
  REQUIRE(PollUntil([&] { return ChildrenOf(master).size() == 2 && NoZombieChild(master); },
                    10s));
  REQUIRE(kill(master, SIGTERM) == 0);
  const auto exit = m.process().WaitExit(15s);
  REQUIRE(exit.has_value());
  CHECK_FALSE(exit->signaled);
  CHECK(exit->code == 0);
  CHECK(m.LogHas("exiting with status 0"));
}

}  // namespace
}  // namespace einhorn::test
