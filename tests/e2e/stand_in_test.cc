// The reload's stand-in (sys/stand_in.h) against the real binary: a --reexec-as script holds
// the exec window open (no image of the master runs while it waits), so that what the
// command socket does in it can be seen. The stand-in's `status` is the old image's: reloads
// 0 and reloading true; the new image's says reloads 1.
#include <doctest/doctest.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <string>
#include <thread>

#include "control_client.h"
#include "core/pool_status.h"
#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

using namespace std::chrono_literals;

// Runs the real binary; the exec itself (not the check) first waits while $DIR/hold exists,
// after creating $DIR/in-window. `check_filter` goes between the check and its output.
std::string HoldingScript(const TempDir& d, const std::string& check_filter = "") {
  std::string check = "exec '" EINHORN_BIN "' \"$@\"\n";
  if (!check_filter.empty()) {
    check = "out=$('" EINHORN_BIN "' \"$@\" 2>&1); rc=$?\n"
            "printf '%s\\n' \"$out\" | " + check_filter + "\nexit $rc\n";
  }
  return WriteShellScript(d, "einhorn-next.sh",
                          "case \" $* \" in *' --upgrade-check '*)\n" + check +
                              ";;\nesac\n"
                              ": > \"$DIR/in-window\"\n"
                              "while [ -e \"$DIR/hold\" ]; do sleep 0.01; done\n"
                              "exec '" EINHORN_BIN "' \"$@\"\n");
}

void AskReload(const MasterRun& m) {
  ControlClient c(Sock(m));
  REQUIRE(c.connected());
  const auto r = c.Ask("{\"id\": 7, \"command\": \"reload\"}\n");
  REQUIRE(r.has_value());
  CHECK(r->message == "Reloading, as commanded");
}

bool ReloadsReach(const MasterRun& m) {
  return PollUntil(
      [&] {
        const auto st = Status(m);
        return st && st->reloads == 1;
      },
      20s);
}

// Every child of the master is a worker (no stand-in left behind).
bool OnlyWorkers(const MasterRun& m) {
  const std::set<pid_t> workers = Pids(m);
  for (const pid_t child : ChildrenOf(m.pid())) {
    if (workers.count(child) == 0) return false;
  }
  return true;
}

TEST_CASE("stand-in: during the exec, status is answered, and other requests wait for the new image") {
  TempDir d;
  WriteFile(d.File("hold"), "");
  MasterRun m({"-n", "2", "-m", "0", "--reexec-as", HoldingScript(d)}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  const std::set<pid_t> old = Pids(m);
  AskReload(m);
  REQUIRE(PollUntil([&] { return FileExists(d.File("in-window")); }, 20s));

  // A fresh connection: the stand-in answers with the old image's pool.
  const auto during = Status(m);
  REQUIRE(during.has_value());
  CHECK(during->reloads == 0);
  CHECK(during->reloading);
  CHECK(during->master_pid == m.pid());
  CHECK(during->ready == 2);

  // A connection that goes on after its status: the rest is the new image's.
  ControlClient kept(Sock(m));
  REQUIRE(kept.connected());
  const auto first = kept.Ask("{\"id\": 1, \"command\": \"status\"}\n");
  REQUIRE(first.has_value());
  CHECK(first->message.find("reloads: 0\n") != std::string::npos);
  REQUIRE(kept.Send("{\"id\": 2, \"command\": \"inc\"}\n"));
  // Other verbs, and half a line: handed over, unanswered while no image runs.
  ControlClient inc(Sock(m));
  REQUIRE(inc.connected());
  REQUIRE(inc.Send("{\"id\": 3, \"command\": \"inc\"}\n"));
  ControlClient half(Sock(m));
  REQUIRE(half.connected());
  REQUIRE(half.Send("{\"id\": 4, \"com"));
  CHECK_FALSE(kept.ReadReply(300ms).has_value());
  CHECK_FALSE(inc.ReadReply(10ms).has_value());
  CHECK(PoolSettled(m, 2, 1));  // still the stand-in's answer: nothing was applied

  std::remove(d.File("hold").c_str());
  const auto second = kept.ReadReply(20s);
  REQUIRE(second.has_value());
  CHECK(second->message == "Incrementing number of workers from 2 -> 3");
  const auto third = inc.ReadReply(20s);
  REQUIRE(third.has_value());
  CHECK(third->message == "Incrementing number of workers from 3 -> 4");
  REQUIRE(half.Send("mand\": \"status\"}\n"));
  const auto fourth = half.ReadReply(20s);
  REQUIRE(fourth.has_value());
  CHECK(fourth->message.find("reloads: 1\n") != std::string::npos);

  REQUIRE(PollUntil([&] { return PoolSettled(m, 4, 1); }, 10s));
  for (const pid_t p : old) CHECK(Pids(m).count(p) == 1);
  CHECK(PollUntil([&] { return OnlyWorkers(m); }, 10s));
  CHECK(m.LogHas("reloaded: "));
}

TEST_CASE("stand-in: another user is not answered but refused by the new image, and 100 clients are") {
  if (getuid() != 0) {
    MESSAGE("skipped: needs root to act as another user");
    return;
  }
  TempDir d;
  WriteFile(d.File("hold"), "");
  MasterRun m({"-n", "1", "-m", "0", "--reexec-as", HoldingScript(d)}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 1, 1); }, 10s));
  // Past the file mode, so that the credential check is what refuses.
  chmod(m.dir().path().c_str(), 0755);
  chmod(Sock(m).c_str(), 0666);
  AskReload(m);
  REQUIRE(PollUntil([&] { return FileExists(d.File("in-window")); }, 20s));

  for (int i = 0; i < 100; ++i) {
    const auto st = Status(m);
    REQUIRE(st.has_value());
    CHECK(st->reloading);
    CHECK(st->reloads == 0);
  }

  int asked[2];
  REQUIRE(pipe(asked) == 0);
  const std::string sock = Sock(m);
  int code = -1;
  std::thread nobody([&] {
    code = AsNobody([&] {
      close(asked[0]);
      ControlClient c(sock);
      if (!c.connected()) return 10;
      if (!c.Send("{\"id\": 1, \"command\": \"status\"}\n")) return 11;
      if (c.ReadReply(300ms)) return 12;  // the stand-in answered it
      if (write(asked[1], "x", 1) != 1) return 13;
      const auto r = c.ReadReply(20s);
      if (!r) return 14;
      return r->error && r->message.find("Permission denied") != std::string::npos ? 0 : 15;
    });
  });
  // Both ends stay open here until the child has written (or 20 s): it forks on the thread.
  pollfd p{asked[0], POLLIN, 0};
  char x;
  const bool waited = poll(&p, 1, 20000) == 1 && read(asked[0], &x, 1) == 1;
  std::remove(d.File("hold").c_str());
  nobody.join();
  close(asked[0]);
  close(asked[1]);
  CHECK(waited);
  CHECK(code == 0);
  CHECK(m.WaitForLog("command socket: refused uid 65534"));
  CHECK(ReloadsReach(m));
}

TEST_CASE("stand-in: none when the new binary's check does not offer to take one") {
  TempDir d;
  WriteFile(d.File("hold"), "");
  MasterRun m({"-n", "1", "-m", "0", "--reexec-as",
               HoldingScript(d, "grep -v 'takes a stand-in'")},
              {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 1, 1); }, 10s));
  AskReload(m);
  REQUIRE(PollUntil([&] { return FileExists(d.File("in-window")); }, 20s));
  // As before the stand-in: the request waits in the kernel for the new image.
  ControlClient c(Sock(m));
  REQUIRE(c.connected());
  REQUIRE(c.Send("{\"id\": 1, \"command\": \"status\"}\n"));
  CHECK_FALSE(c.ReadReply(300ms).has_value());
  std::remove(d.File("hold").c_str());
  const auto r = c.ReadReply(20s);
  REQUIRE(r.has_value());
  CHECK(r->message.find("reloads: 1\n") != std::string::npos);
  CHECK(OnlyWorkers(m));
}

TEST_CASE("stand-in: an exec that fails after the check leaves the old image serving, and no stand-in") {
  TempDir d;
  // The check passes, then replaces the script with one whose interpreter does not exist:
  // the path still looks runnable, and execve fails (ENOENT).
  const std::string script = WriteShellScript(
      d, "einhorn-next.sh",
      "case \" $* \" in *' --upgrade-check '*)\n"
      "  '" EINHORN_BIN "' \"$@\"; rc=$?\n"
      "  printf '#!/nonexistent/sh\\n' > \"$DIR/next.tmp\"; chmod 755 \"$DIR/next.tmp\"\n"
      "  mv \"$DIR/next.tmp\" \"$DIR/einhorn-next.sh\"; exit $rc;;\n"
      "esac\n"
      "exec '" EINHORN_BIN "' \"$@\"\n");
  MasterRun m({"-n", "2", "-m", "0", "--reexec-as", script}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  const std::set<pid_t> old = Pids(m);
  AskReload(m);
  REQUIRE(PollUntil(
      [&] {
        const auto st = Status(m);
        return st && st->last_reload_error.has_value();
      },
      20s));
  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->reloads == 0);
  INFO(*st->last_reload_error);
  CHECK(st->last_reload_error->find("execve") != std::string::npos);
  CHECK(Pids(m) == old);
  CHECK(PollUntil([&] { return OnlyWorkers(m); }, 10s));
  // And it still takes commands.
  ControlClient c(Sock(m));
  const auto r = c.Ask("{\"id\": 1, \"command\": \"inc\"}\n");
  REQUIRE(r.has_value());
  CHECK(r->message == "Incrementing number of workers from 2 -> 3");
}

}  // namespace
}  // namespace einhorn::test
