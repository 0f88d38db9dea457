// einhornctl against the real master: every verb, checked through an independent raw client
// and the workers' own reports, not through einhornctl's view of things.
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>

#include "control_client.h"
#include "core/pool_status.h"
#include "harness.h"
#include "pool_query.h"
#include "proc_pty.h"

namespace einhorn::test {
namespace {

bool PoolIs(const MasterRun& m, int target, int ready) {
  const auto st = Status(m);
  return st && st->target == target && st->ready == ready && st->booting == 0 &&
         st->draining == 0;
}

Finished Ctl(const MasterRun& m, std::vector<std::string> args) {
  args.insert(args.begin(), {EINHORNCTL_BIN, "-d", Sock(m)});
  return RunProgram(std::move(args), 20s);
}

bool Has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST_CASE("einhornctl resizes a real pool: status, inc, dec, set --wait, --json") {
  MasterRun m({"-n", "2", "-m", "0"}, {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(m.WaitForWorkers(2));
  REQUIRE(PollUntil([&] { return PoolIs(m, 2, 2); }, 10s));

  auto status = Ctl(m, {"status"});
  CHECK(status.status.code == 0);
  CHECK(Has(status.out, "ready 2/2"));
  for (const auto& [pid, report] : m.LiveWorkers()) CHECK(Has(status.out, std::to_string(pid)));

  auto inc = Ctl(m, {"inc"});
  CHECK(inc.status.code == 0);
  CHECK(Has(inc.out, "Incrementing number of workers from 2 -> 3"));
  CHECK(PollUntil([&] { return PoolIs(m, 3, 3); }, 10s));

  auto dec = Ctl(m, {"dec", "2"});
  CHECK(dec.status.code == 0);
  CHECK(Has(dec.out, "Decrementing number of workers from 3 -> 2"));
  CHECK(Has(dec.out, "Decrementing number of workers from 2 -> 1"));
  CHECK(PollUntil([&] { return PoolIs(m, 1, 1); }, 10s));

  // --wait returns only once the pool is there: no polling needed afterwards.
  auto set = Ctl(m, {"set", "4", "--wait"});
  CHECK(set.status.code == 0);
  CHECK(PoolIs(m, 4, 4));
  // Ready (-m 0) can come before a new worker has written its report.
  CHECK(PollUntil([&] { return m.LiveWorkers().size() == 4; }, 10s));

  auto json = Ctl(m, {"--json", "status"});
  CHECK(json.status.code == 0);
  CHECK(json.out.rfind("{", 0) == 0);
  CHECK(Has(json.out, "\"target\": 4"));

  // Out of bounds: the master refuses and the pool is untouched.
  auto bad = Ctl(m, {"set", "0"});
  CHECK(bad.status.code == 1);
  CHECK(PoolIs(m, 4, 4));
  CHECK(Ctl(m, {"set"}).status.code == 2);
}

TEST_CASE("einhornctl signal, log levels, ehlo, help, state and die") {
  MasterRun m({"-n", "2", "-m", "0"}, {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(m.WaitForWorkers(2));
  const auto workers = m.LiveWorkers();

  auto usr1 = Ctl(m, {"signal", "USR1"});
  CHECK(usr1.status.code == 0);
  // Einhorn's reply to `signal` is empty; einhornctl says what was done (issue 17.5).
  CHECK(Has(usr1.out, "Sent SIGUSR1 to the 2 workers (pids "));
  CHECK(Has(usr1.out, "; the master itself was not signalled"));
  for (const auto& [pid, report] : workers) {
    CHECK(Has(usr1.out, std::to_string(pid)));
    const pid_t p = pid;
    CHECK(PollUntil([&] { return m.SignalsOf(p) == std::vector<std::string>{"USR1"}; }, 10s));
  }
  auto bogus = Ctl(m, {"signal", "BOGUS"});
  CHECK(bogus.status.code == 1);
  CHECK(Has(bogus.err + bogus.out, "Invalid signal"));

  CHECK(Has(Ctl(m, {"quieter"}).out, "Verbosity set to 2"));
  CHECK(Has(Ctl(m, {"louder"}).out, "Verbosity set to 1"));
  // log-level answers in its own names, not quieter/louder's "Verbosity set to 0".
  CHECK(Ctl(m, {"log-level", "debug"}).out == "Log level set to debug (verbosity 0, was info)\n");
  CHECK(Ctl(m, {"log-level", "debug"}).out == "Log level already debug (verbosity 0)\n");
  // Debug lines appear in the master's log from now on.
  CHECK(Ctl(m, {"signal", "HUP"}).status.code == 0);
  CHECK(m.WaitForLog("debug: sent SIGHUP to"));

  auto ehlo = Ctl(m, {"ehlo"});
  CHECK(ehlo.status.code == 0);
  CHECK(Has(ehlo.out, "Einhorn Master Process " + std::to_string(m.pid())));
  CHECK(Has(Ctl(m, {"help"}).out, "set_workers"));
  // `state` is Einhorn's document (Ruby YAML), no longer the status one.
  CHECK(Has(Ctl(m, {"state"}).out, "  :config:\n    :number: 2\n"));

  auto die = Ctl(m, {"die"});
  CHECK(die.status.code == 0);
  CHECK(Has(die.out, "Einhorn is going down!"));
  const auto exit = m.process().WaitExit(20s);
  REQUIRE(exit.has_value());
  CHECK(exit->code == 0);
  CHECK_FALSE(FileExists(Sock(m)));
  // And with no master there, einhornctl says so with exit code 3.
  CHECK(Ctl(m, {"status"}).status.code == 3);
}

// As the unprivileged user nobody, through setpriv: a socket it may not use is told apart from
// a socket that is not there or that nobody listens on.
TEST_CASE("einhornctl tells no master from permission denied") {
  if (geteuid() != 0) {
    MESSAGE("skipped: needs root to run einhornctl as nobody (setpriv)");
    return;
  }
  MasterRun m({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolIs(m, 1, 1); }, 10s));
  // nobody may list and search the directory, not use the socket (0600, root's).
  REQUIRE(chmod(m.dir().path().c_str(), 0755) == 0);
  auto as_nobody = [&](const std::string& path) {
    return RunProgram({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                       EINHORNCTL_BIN, "-d", path, "status"},
                      20s);
  };
  const Finished denied = as_nobody(Sock(m));
  CHECK(denied.status.code == 3);
  CHECK(denied.err == "einhornctl: permission denied on " + Sock(m) +
                          " (socket owned by uid 0, mode 0600; you are uid 65534: run einhornctl "
                          "as uid 0 or root, or start the master with --control-allow-uid "
                          "65534)\n");
  const Finished missing = as_nobody(m.dir().File("other.sock"));
  CHECK(missing.status.code == 3);
  CHECK(Has(missing.err, "einhornctl: no master at " + m.dir().File("other.sock") +
                             " (no such socket; sockets beside it: einhorn.sock"));
  // A socket file left by a master that is gone.
  const std::string stale = m.dir().File("einhorn-gone.sock");
  {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", stale.c_str());
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    close(fd);
    REQUIRE(chmod(stale.c_str(), 0666) == 0);
  }
  const Finished gone = as_nobody(stale);
  CHECK(gone.status.code == 3);
  CHECK(Has(gone.err, "einhornctl: no master at " + stale +
                          " (a socket file is there but nothing listens"));
  // Another user's socket is never suggested: anyone can make one look like a master's.
  {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", m.dir().File("einhorn-trap.sock").c_str());
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    close(fd);
    REQUIRE(lchown(m.dir().File("einhorn-trap.sock").c_str(), 12345, 12345) == 0);
  }
  const Finished listed = as_nobody(m.dir().File("other.sock"));
  CHECK(Has(listed.err, "sockets beside it: einhorn-gone.sock (-c gone), einhorn.sock)"));
  CHECK_FALSE(Has(listed.err, "trap"));
  // A directory on the way that nobody may not search.
  REQUIRE(chmod(m.dir().path().c_str(), 0700) == 0);
  const Finished hidden = as_nobody(Sock(m));
  CHECK(hidden.status.code == 3);
  CHECK(Has(hidden.err, "permission denied on " + Sock(m) +
                            " (a directory on its path is not searchable by uid 65534)"));
  // And root, who may, still gets through.
  CHECK(Ctl(m, {"status"}).status.code == 0);
}

TEST_CASE("a shell-script worker acks itself with einhornctl ack") {
  const std::string script = std::string(EINHORNCTL_BIN) + " ack && exec sleep 1000";
  MasterRun m({"-n", "2", "-m", "manual"}, {"/bin/sh", "-c", script});
  CHECK(PollUntil([&] { return PoolIs(m, 2, 2); }, 10s));
  CHECK(m.WaitForLog("is ready (acked after"));
}

TEST_CASE("with -g einhornctl ack uses EINHORN_SOCK_FD") {
  // The worker cannot reach the socket path at all: only its -g channel can ack it.
  const std::string script =
      "EINHORN_SOCK_PATH=/nonexistent " + std::string(EINHORNCTL_BIN) + " ack && exec sleep 1000";
  MasterRun m({"-n", "2", "-m", "manual", "-g"}, {"/bin/sh", "-c", script});
  CHECK(PollUntil([&] { return PoolIs(m, 2, 2); }, 10s));
}

TEST_CASE("einhornctl upgrade --wait exits 0 when done and 1 with the reason when rolled back") {
  TempDir d;
  const std::string script = d.File("worker.sh");
  WriteFile(script,
            "#!/bin/sh\n[ -e '" + d.File("broken") + "' ] && exit 3\nexec sleep 1000\n", 0755);
  MasterRun m({"-n", "2", "-m", "0.2"}, {"/bin/sh", script});
  REQUIRE(PollUntil([&] { return PoolIs(m, 2, 2); }, 10s));

  auto good = Ctl(m, {"upgrade", "--wait"});
  CHECK(good.status.code == 0);
  CHECK(Has(good.out, "Upgrading smoothly, as commanded"));
  CHECK(Has(good.out, "Upgrade done"));
  CHECK(Status(m)->generation == 2);

  WriteFile(d.File("broken"), "");
  auto bad = Ctl(m, {"upgrade", "--fleet", "--wait"});
  CHECK(bad.status.code == 1);
  CHECK(Has(bad.err, "Upgrade to generation 3 failed: 3 new workers failed"));
  CHECK(Has(bad.err, "Rolled back: generation 2 keeps serving (2 ready)"));
  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->generation == 2);
  REQUIRE(st->last_upgrade.has_value());
  CHECK_FALSE(st->last_upgrade->ok);

  // Without --wait it returns as soon as the upgrade has begun.
  std::remove(d.File("broken").c_str());
  auto started = Ctl(m, {"upgrade"});
  CHECK(started.status.code == 0);
  CHECK(Has(started.out, "Upgrading smoothly, as commanded"));
  CHECK_FALSE(Has(started.out, "Upgrade done"));
  CHECK(PollUntil([&] {
    const auto s = Status(m);
    return s && s->generation == 4 && s->last_upgrade && s->last_upgrade->ok;
  }, 20s));
}

TEST_CASE("einhornctl's shell on a terminal drives a real pool like the CLI") {
  MasterRun m({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(PollUntil([&] { return PoolIs(m, 1, 1); }, 10s));
  const std::string state = m.dir().File("state");
  Pty p({EINHORNCTL_BIN, "-d", Sock(m)},
        {"XDG_STATE_HOME=" + state, "TERM=xterm", "USER=tester", "EDITRC=/dev/null"});
  REQUIRE_MESSAGE(p.WaitFor("Welcome, tester!"), p.out());
  REQUIRE(p.WaitFor("einhorn> "));
  p.Type("set 2 --wait\r");  // the CLI's command and flag, in the shell
  REQUIRE_MESSAGE(p.WaitFor("ready 2/2, booting 0"), p.out());
  CHECK(PoolIs(m, 2, 2));
  REQUIRE(p.WaitFor("einhorn> "));
  p.Type(std::string("\x1b[A") + std::string(8, '\x7f') + "3\r");  // up arrow, edited: set 3
  REQUIRE_MESSAGE(p.WaitFor("Altering worker count, 2 -> 3"), p.out());
  CHECK(PollUntil([&] { return PoolIs(m, 3, 3); }, 10s));
  REQUIRE(p.WaitFor("einhorn> "));
  p.Type("set_workers 1\r");  // einhornsh's verb, sent as it is
  REQUIRE_MESSAGE(p.WaitFor("3 -> 1"), p.out());
  CHECK(PollUntil([&] { return PoolIs(m, 1, 1); }, 10s));
  REQUIRE(p.WaitFor("einhorn> "));
  p.Type("exit\r");
  CHECK(p.WaitExit() == 0);
  CHECK(ReadFile(state + "/einhorn-cpp/history") == "set 2 --wait\nset 3\nset_workers 1\nexit\n");
}

}  // namespace
}  // namespace einhorn::test
