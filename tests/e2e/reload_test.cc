// Master self-upgrade (`reload`, and the reload that starts every upgrade) with the real
// binaries: the pid, the workers, the listening sockets, the command socket and its open
// connections and -g channels all survive the re-exec; a failed pre-flight
// check leaves everything as it was and says why.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <set>

#include "control_client.h"
#include "core/pool_status.h"
#include "harness.h"
#include "load.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

using Clock = std::chrono::steady_clock;

const std::vector<std::string> kQuiet = {"EINHORN_EXAMPLE_QUIET=1"};

// Sends `reload` on a connection of its own and checks the immediate answer.
void AskReload(const MasterRun& m) {
  ControlClient c(Sock(m));
  REQUIRE(c.connected());
  const auto r = c.Ask("{\"id\": 7, \"command\": \"reload\"}\n");
  REQUIRE(r.has_value());
  CHECK_FALSE(r->error);
  CHECK(r->message == "Reloading, as commanded");
  CHECK_FALSE(r->wait);
}

int Reloads(const MasterRun& m) {
  const auto st = Status(m);
  return st ? st->reloads : -1;
}

bool ReloadsReach(const MasterRun& m, int k, std::chrono::milliseconds timeout = 20s) {
  return PollUntil([&] { return Reloads(m) == k; }, timeout);
}

// A reload that failed: the master says why in `status`.
std::optional<std::string> LastReloadError(const MasterRun& m) {
  const auto st = Status(m);
  return st ? st->last_reload_error : std::nullopt;
}

bool Has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// readlink of every fd of `pid`: "socket:[1234]", "/path", "anon_inode:[eventpoll]", ...
std::multiset<std::string> FdTargets(pid_t pid) {
  std::multiset<std::string> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  for (int fd = 0; fd < 1024; ++fd) {
    char buf[256];
    const std::string path = dir + "/" + std::to_string(fd);
    const ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
    if (n > 0) out.insert(std::string(buf, static_cast<size_t>(n)));
  }
  return out;
}

std::string FdTarget(pid_t pid, int fd) {
  char buf[256];
  const std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  const ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

// The environment a process was started with, "NAME=value" entries.
std::set<std::string> EnvironOf(pid_t pid) {
  const std::string raw = ReadFile("/proc/" + std::to_string(pid) + "/environ");
  std::set<std::string> out;
  size_t begin = 0;
  while (begin < raw.size()) {
    size_t end = raw.find('\0', begin);
    if (end == std::string::npos) end = raw.size();
    out.insert(raw.substr(begin, end - begin));
    begin = end + 1;
  }
  return out;
}

ino_t Inode(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// An executable /bin/sh script in `d`; $DIR in `body` is d's path.
Finished Ctl(const MasterRun& m, std::vector<std::string> args) {
  args.insert(args.begin(), {EINHORNCTL_BIN, "-d", Sock(m)});
  return RunProgram(std::move(args), 60s);
}

TEST_CASE("three reloads under load keep the pid, the workers and every socket") {
  MasterRun m({"-n", "4", "-m", "manual", "-b", "127.0.0.1:0"}, {EXAMPLE_HTTP_BIN, "--ack"},
              kQuiet);
  REQUIRE(PollUntil([&] { return PoolSettled(m, 4, 1); }, 10s));
  const std::set<pid_t> workers = Pids(m);
  REQUIRE(workers.size() == 4);
  // The listener as the workers got it (fd 3), and the same open file in the master.
  const std::string listener = FdTarget(*workers.begin(), 3);
  REQUIRE(listener.rfind("socket:[", 0) == 0);
  REQUIRE(FdTargets(m.pid()).count(listener) == 1);
  const ino_t sock_ino = Inode(Sock(m));
  REQUIRE(sock_ino != 0);

  const auto port = m.Port();
  REQUIRE(port.has_value());
  Load load(*port, 2, 2s);
  REQUIRE(PollUntil([&] { return load.ok() > 50; }, 10s));

  for (int k = 1; k <= 3; ++k) {
    INFO("reload ", k);
    AskReload(m);
    REQUIRE(ReloadsReach(m, k));
    const long before = load.ok();
    CHECK(PollUntil([&] { return load.ok() > before + 20; }, 10s));
  }
  load.Stop();
  MESSAGE(load.Summary());
  CHECK(load.failed() == 0);
  CHECK(load.ok() > 100);

  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->master_pid == m.pid());
  CHECK(st->reloads == 3);
  CHECK_FALSE(st->last_reload_error.has_value());
  CHECK(st->generation == 1);
  CHECK(PoolSettled(m, 4, 1));
  CHECK(Pids(m) == workers);
  CHECK(FdTargets(m.pid()).count(listener) == 1);
  CHECK(Inode(Sock(m)) == sock_ino);
  CHECK(m.process().running());
  CHECK(m.LogHas("(reload #3)"));
}

TEST_CASE("a command connection, and a half-sent line, stay open across a reload") {
  MasterRun m({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 1, 1); }, 10s));

  ControlClient kept(Sock(m));
  REQUIRE(kept.connected());
  const auto hello = kept.Ask("{\"id\": 1, \"command\": \"ehlo\"}\n");
  REQUIRE(hello.has_value());
  CHECK_FALSE(hello->error);
  // State set through the connection travels with the master.
  const auto louder = kept.Ask("{\"id\": 3, \"command\": \"louder\"}\n");
  REQUIRE(louder.has_value());
  CHECK_FALSE(louder->error);
  const auto inc = kept.Ask("{\"id\": 4, \"command\": \"inc\"}\n");
  REQUIRE(inc.has_value());
  CHECK_FALSE(inc->error);
  const auto set = Status(m);
  REQUIRE(set.has_value());
  const int verbosity = set->verbosity;
  CHECK(verbosity == 0);

  ControlClient half(Sock(m));
  REQUIRE(half.connected());
  REQUIRE(half.Send("{\"command\": \"sta"));
  // A round trip on another connection, so the old image has most likely read the half line
  // (if not, the kernel keeps it for the new one: the reply must come either way).
  REQUIRE(Status(m).has_value());

  AskReload(m);
  REQUIRE(ReloadsReach(m, 1));

  const auto again = kept.Ask("{\"id\": 2, \"command\": \"status\"}\n");
  REQUIRE(again.has_value());
  CHECK_FALSE(again->error);
  auto st = core::PoolStatusFromYaml(again->message);
  REQUIRE_MESSAGE(st.ok(), again->message);
  CHECK(st.value().reloads == 1);
  CHECK(st.value().master_pid == m.pid());
  CHECK(st.value().verbosity == verbosity);
  CHECK(st.value().target == 2);

  REQUIRE(half.Send("tus\"}\n"));
  const auto rest = half.ReadReply(10s);
  REQUIRE(rest.has_value());
  CHECK_FALSE(rest->error);
  st = core::PoolStatusFromYaml(rest->message);
  REQUIRE_MESSAGE(st.ok(), rest->message);
  CHECK(st.value().reloads == 1);
}

TEST_CASE("einhornctl upgrade --wait reloads the master first and streams to the end") {
  MasterRun m({"-n", "2", "-m", "0.1", "-b", "127.0.0.1:0"},
              {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  REQUIRE(m.WaitForWorkers(2));
  const std::set<pid_t> old = Pids(m);
  const Report before = m.LiveWorkers().begin()->second;

  const Finished up = Ctl(m, {"upgrade", "--wait"});
  INFO("out: ", up.out, "\nerr: ", up.err);
  CHECK(up.status.code == 0);
  CHECK(Has(up.out, "Upgrading smoothly, as commanded"));
  CHECK(Has(up.out, "Upgrade done"));

  CHECK(PollUntil([&] { return PoolSettled(m, 2, 2); }, 10s));
  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->master_pid == m.pid());
  CHECK(st->reloads == 1);
  CHECK_FALSE(st->last_reload_error.has_value());
  for (pid_t p : Pids(m)) CHECK(old.count(p) == 0);
  // The new image hands its workers the same listener, the same way.
  REQUIRE(m.WaitForWorkers(2));
  for (const auto& [pid, r] : m.LiveWorkers()) {
    INFO("worker ", pid);
    CHECK(old.count(pid) == 0);
    CHECK(r.at("ppid") == std::to_string(m.pid()));
    CHECK(r.at("sockname_3") == before.at("sockname_3"));
    CHECK(r.at("LISTEN_FDS") == "1");
    CHECK(r.at("fds") == before.at("fds"));
    CHECK(r.at("EINHORN_SOCK_PATH") == before.at("EINHORN_SOCK_PATH"));
    CHECK(r.at("EINHORN_MASTER_PID") == std::to_string(m.pid()));
  }
}

TEST_CASE("upgrades asked for during one reload all run in the new image, and all hear the end") {
  MasterRun m({"-n", "2", "-m", "0.1"}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  ControlClient first(Sock(m));
  ControlClient second(Sock(m));
  REQUIRE(first.Send("{\"id\": 1, \"command\": \"upgrade\"}\n"));
  REQUIRE(second.Send("{\"id\": 2, \"command\": \"upgrade_fleet\"}\n"));
  for (ControlClient* c : {&first, &second}) {
    std::optional<core::wire::Reply> r;
    std::vector<std::string> messages;
    while ((r = c->ReadReply(30s)) && r->wait) messages.push_back(r->message);
    REQUIRE(r.has_value());
    INFO("messages: ", messages.size());
    CHECK_FALSE(r->error);
    CHECK(r->message == "Upgrade done");
  }
  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->reloads == 1);
  CHECK(st->master_pid == m.pid());
  CHECK(PollUntil([&] { return PoolSettled(m, 2, 3); }, 10s));
}

TEST_CASE("an upgrade under way and its subscriber survive a reload") {
  TempDir d;
  const std::string worker = WriteShellScript(d, "worker.sh",
                                         "while [ -e \"$DIR/hold\" ]; do sleep 0.02; done\n"
                                         "exec '" TEST_WORKER_BIN "' --ack json\n");
  MasterRun m({"-n", "2", "-m", "manual"}, {"/bin/sh", worker});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  const std::set<pid_t> old = Pids(m);

  // The new generation cannot ack yet: the upgrade stays under way.
  WriteFile(d.File("hold"), "");
  ControlClient sub(Sock(m));
  REQUIRE(sub.Send("{\"id\": 5, \"command\": \"upgrade\"}\n"));
  const auto started = sub.ReadReply(10s);
  REQUIRE(started.has_value());
  CHECK(started->wait);
  REQUIRE(PollUntil(
      [&] {
        const auto st = Status(m);
        return st && st->reloads == 1 && st->upgrade.has_value() && st->booting > 0;
      },
      20s));

  AskReload(m);
  REQUIRE(ReloadsReach(m, 2));
  auto st = Status(m);
  REQUIRE(st.has_value());
  REQUIRE(st->upgrade.has_value());
  CHECK(st->upgrade->to_generation == 2);
  for (pid_t p : old) CHECK(ProcessAlive(p));

  std::remove(d.File("hold").c_str());
  std::optional<core::wire::Reply> r;
  while ((r = sub.ReadReply(30s)) && r->wait) {
  }
  REQUIRE(r.has_value());
  CHECK_FALSE(r->error);
  CHECK(r->message == "Upgrade done");
  REQUIRE(r->request_id.has_value());
  CHECK(PollUntil([&] { return PoolSettled(m, 2, 2); }, 10s));
  for (pid_t p : Pids(m)) CHECK(old.count(p) == 0);
  CHECK(Reloads(m) == 2);
}

// A stand-in for a new einhorn-cpp binary: it refuses the state while `fail` exists, as a
// binary that cannot read it would, and otherwise is the real one.
std::string WriteReexecScript(const TempDir& d) {
  return WriteShellScript(d, "einhorn-next.sh",
                     "if [ -e \"$DIR/fail\" ]; then\n"
                     "  echo 'einhorn-cpp 9.0.0 cannot take over' >&2\n"
                     "  echo 'state: version 9 is newer than 1' >&2\n"
                     "  exit 1\n"
                     "fi\n"
                     "exec '" EINHORN_BIN "' \"$@\"\n");
}

TEST_CASE("a reload whose upgrade check fails leaves the master and its workers as they were") {
  TempDir d;
  WriteFile(d.File("fail"), "");
  MasterRun m({"-n", "2", "-m", "0.1", "--reexec-as", WriteReexecScript(d)}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  const std::set<pid_t> old = Pids(m);

  AskReload(m);
  REQUIRE(PollUntil([&] { return LastReloadError(m).has_value(); }, 20s));
  const std::string why = *LastReloadError(m);
  CHECK(Has(why, "upgrade check"));
  CHECK(Has(why, "version 9 is newer"));
  CHECK(m.WaitForLog("Reload failed, the master keeps running as it was"));
  auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->master_pid == m.pid());
  CHECK(st->reloads == 0);
  CHECK(Pids(m) == old);

  // An upgrade reloads first: its subscriber hears that nothing changed.
  const UpgradeRun u = RunUpgrade(m);
  CHECK(u.ended);
  CHECK(u.error);
  CHECK(u.messages.front() == "Upgrading smoothly, as commanded");
  CHECK(u.last.rfind("Upgrade failed: the master could not reload first, so nothing changed: ",
                     0) == 0);
  CHECK(Has(u.last, "version 9 is newer"));
  st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->generation == 1);
  CHECK_FALSE(st->upgrade.has_value());
  CHECK(st->reloads == 0);
  CHECK(PoolSettled(m, 2, 1));
  CHECK(Pids(m) == old);

  // Fixed: the next reload goes through and clears the error.
  std::remove(d.File("fail").c_str());
  AskReload(m);
  REQUIRE(ReloadsReach(m, 1));
  st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->master_pid == m.pid());
  CHECK_FALSE(st->last_reload_error.has_value());
  CHECK(Pids(m) == old);
}

TEST_CASE(
    "a reload to a --reexec-as binary that does not exist fails, and the master keeps running") {
  const std::string missing = "/nonexistent-einhorn-dir/einhorn-cpp";
  MasterRun m({"-n", "1", "-m", "0", "--reexec-as", missing}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 1, 1); }, 10s));
  const std::set<pid_t> old = Pids(m);
  AskReload(m);
  REQUIRE(PollUntil([&] { return LastReloadError(m).has_value(); }, 20s));
  const std::string why = *LastReloadError(m);
  CHECK(Has(why, missing));
  CHECK(Has(why, "No such file or directory"));
  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->master_pid == m.pid());
  CHECK(st->reloads == 0);
  CHECK(Pids(m) == old);
  CHECK(m.process().running());
}

TEST_CASE("after a reload through --reexec-as 'env FOO=bar einhorn-cpp' new workers see FOO=bar") {
  MasterRun m({"-n", "2", "-m", "0", "--reexec-as", std::string("env FOO=bar ") + EINHORN_BIN},
              {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  const std::set<pid_t> old = Pids(m);
  for (pid_t p : old) CHECK(EnvironOf(p).count("FOO=bar") == 0);

  AskReload(m);
  REQUIRE(ReloadsReach(m, 1));
  CHECK_FALSE(LastReloadError(m).has_value());
  CHECK(EnvironOf(m.pid()).count("FOO=bar") == 1);

  const pid_t victim = *old.begin();
  REQUIRE(kill(victim, SIGKILL) == 0);
  std::set<pid_t> now;
  REQUIRE(PollUntil(
      [&] {
        now = Pids(m);
        return PoolSettled(m, 2, 1) && now.size() == 2 && now.count(victim) == 0;
      },
      10s));
  for (pid_t p : now) {
    INFO("worker ", p);
    // With -m 0 the new worker counts as ready at fork: its environment is readable once it
    // has exec'd, so wait for it (a worker without FOO=bar would never get it).
    const size_t want = old.count(p) ? 0u : 1u;
    CHECK(PollUntil([&] { return EnvironOf(p).count("FOO=bar") == want; }, 5s));
  }
}

// As Einhorn (-f): the lock is held only while the command socket is created, so neither image
// holds it, and a master with another socket may share the lockfile; the socket itself is
// still protected by the live-socket check.
TEST_CASE("after a reload the lockfile is free, the socket is still ours, and SIGTERM cleans up") {
  TempDir d;
  const std::string lock = d.File("held.lock");
  const std::string pidfile = d.File("master.pid");
  MasterRun m({"-n", "2", "-m", "0", "-f", lock, "-e", pidfile},
              {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  REQUIRE(m.WaitForWorkers(2));  // reported: their TERM handlers are in
  const std::set<pid_t> workers = Pids(m);
  const Finished ctl = Ctl(m, {"reload"});
  CHECK(ctl.status.code == 0);
  CHECK_MESSAGE(Has(ctl.out, "Reloading, as commanded"), ctl.out, ctl.err);
  REQUIRE(ReloadsReach(m, 1));

  // Only the lockfile is shared: a master on another socket starts.
  {
    MasterRun other({"-f", lock, "-e", d.File("other.pid"), "-d", d.File("other.sock"), "-n",
                     "1", "-m", "0"},
                    {TEST_WORKER_BIN});
    CHECK(PollUntil([&] { return FileExists(d.File("other.pid")); }, 10s));
    CHECK(other.process().running());
  }
  // One on the reloaded master's socket is refused by the live-socket check.
  const Finished second = RunToExit({"-f", lock, "-e", d.File("other.pid"), "-d", Sock(m), "-n",
                                     "1", "--", TEST_WORKER_BIN});
  CHECK(second.status.code == 1);
  // The refusal names the reloaded master, whose pid has not changed (issue 17.5).
  CHECK_MESSAGE(Has(second.err, "is in use, held by pid " + std::to_string(m.pid()) + " ("),
                second.err);
  CHECK(ReadFile(pidfile) == std::to_string(m.pid()));
  CHECK(m.process().running());

  REQUIRE(m.process().Signal(SIGTERM));
  const auto status = m.process().WaitExit(10s);
  REQUIRE(status.has_value());
  CHECK_FALSE(status->signaled);
  CHECK(status->code == 0);
  CHECK_FALSE(FileExists(Sock(m)));
  CHECK_FALSE(FileExists(pidfile));
  for (pid_t p : workers) {
    CHECK(PollUntil([&] { return !ProcessAlive(p); }, 5s));
    CHECK(m.SignalsOf(p) == std::vector<std::string>{"TERM"});
  }
  // And after it, a new master with the same lockfile starts as well.
  MasterRun next({"-n", "1", "-m", "0", "-f", lock, "-e", d.File("next.pid")}, {TEST_WORKER_BIN});
  CHECK(PollUntil([&] { return PoolSettled(next, 1, 1); }, 10s));
}

TEST_CASE("a worker that dies around the reload is reaped and replaced by the new image") {
  MasterRun m({"-n", "3", "-m", "0"}, {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 3, 1); }, 10s));
  const std::set<pid_t> old = Pids(m);
  auto it = old.begin();
  const pid_t before = *it++;
  const pid_t during = *it;

  REQUIRE(kill(before, SIGKILL) == 0);
  AskReload(m);
  // The old image logs (and flushes) this line just before execve: a child that dies now
  // sends a SIGCHLD that no handler sees; the new image must still notice it.
  REQUIRE(m.WaitForLog("reload: exec", 20s));
  REQUIRE(kill(during, SIGKILL) == 0);
  REQUIRE(ReloadsReach(m, 1));

  std::set<pid_t> now;
  CHECK(PollUntil(
      [&] {
        now = Pids(m);
        return PoolSettled(m, 3, 1) && now.count(before) == 0 && now.count(during) == 0;
      },
      10s));
  // Reaped, not left as zombies.
  CHECK(
      PollUntil([&] { return ProcessState(before) == '\0' && ProcessState(during) == '\0'; }, 10s));
  // The replacement wrote its report: the live children are exactly the pool.
  CHECK(m.WaitForWorkers(3));
}

// A --reexec-as shell that waits (here for `sleep`) reaps any child of the process, so a worker
// that dies while it runs is gone before the new image looks: waitpid says ECHILD, and no
// SIGCHLD will ever come. Einhorn drops such workers on restore (its integration test "cleans
// up if a child dies during the reexec"); before, einhorn-cpp kept it for ever, and a SIGTERM
// then waited for it without end.
TEST_CASE("a worker reaped by a --reexec-as shell between two images is dropped and replaced") {
  TempDir d;
  const std::string reexec = WriteShellScript(
      d, "reexec.sh",
      "if [ \"$1\" = --with-state-fd ]; then\n"
      "  touch \"$DIR/in-script\"\n"
      "  while [ ! -e \"$DIR/go-on\" ]; do sleep 0.05; done\n"
      "fi\n"
      "exec '" EINHORN_BIN "' \"$@\"\n");
  MasterRun m({"-n", "2", "-m", "0", "--reexec-as", reexec},
              {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  REQUIRE(m.WaitForWorkers(2));
  const pid_t victim = *Pids(m).begin();

  AskReload(m);
  REQUIRE(PollUntil([&] { return FileExists(d.File("in-script")); }, 20s));
  REQUIRE(kill(victim, SIGKILL) == 0);
  // The script's wait for `sleep` reaps it: no zombie left for the new image.
  REQUIRE(PollUntil([&] { return ProcessState(victim) == '\0'; }, 10s));
  WriteFile(d.File("go-on"), "");
  REQUIRE(ReloadsReach(m, 1));

  CHECK(PollUntil([&] { return PoolSettled(m, 2, 1) && Pids(m).count(victim) == 0; }, 10s));
  // And SIGTERM waits only for the workers that exist.
  REQUIRE(m.process().Signal(SIGTERM));
  const auto status = m.process().WaitExit(20s);
  REQUIRE(status.has_value());
  CHECK_FALSE(status->signaled);
  CHECK(status->code == 0);
}

// SIGTERM while the upgrade check runs, and just as the old image execs: the master stops
// either way, and cleans up as after any SIGTERM.
TEST_CASE("SIGTERM during a reload is not lost") {
  TempDir d;
  const std::string slow = WriteShellScript(d, "slow-einhorn.sh",
                                       "[ -e \"$DIR/slow\" ] && sleep 0.5\n"
                                       "exec '" EINHORN_BIN "' \"$@\"\n");
  for (const std::string when : {"reload: checking", "reload: exec"}) {
    INFO("SIGTERM at: ", when);
    // A slow check leaves time to signal while it runs.
    if (when == "reload: checking") WriteFile(d.File("slow"), "");
    if (when == "reload: exec") std::remove(d.File("slow").c_str());
    MasterRun m({"-n", "2", "-m", "0", "--reexec-as", slow},
                {TEST_WORKER_BIN, "--report", "{reports}"});
    REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
    // Reported: their signal handlers are in.
    REQUIRE(m.WaitForWorkers(2));
    const std::set<pid_t> workers = Pids(m);
    AskReload(m);
    REQUIRE(m.WaitForLog(when, 20s));
    REQUIRE(m.process().Signal(SIGTERM));
    const auto status = m.process().WaitExit(10s);
    REQUIRE(status.has_value());
    CHECK_FALSE(status->signaled);
    CHECK(status->code == 0);
    CHECK_FALSE(FileExists(Sock(m)));
    CHECK_FALSE(FileExists(m.dir().File("einhorn.pid")));
    for (pid_t p : workers) {
      CHECK(PollUntil([&] { return !ProcessAlive(p); }, 5s));
      CHECK(m.SignalsOf(p) == std::vector<std::string>{"TERM"});
    }
  }
}

// A -g worker that acks over its channel (EINHORN_SOCK_FD) once `go` exists.
std::string WriteChannelAckWorker(const TempDir& d) {
  return WriteShellScript(
      d, "worker.sh",
      "while [ ! -e \"$DIR/go\" ]; do sleep 0.02; done\n"
      "printf '{\"command\": \"worker:ack\", \"pid\": %s}\\n' $$ >&\"$EINHORN_SOCK_FD\"\n"
      "exec sleep 1000\n");
}

TEST_CASE("-g channels survive a reload, and the new image's channels work") {
  TempDir d;
  MasterRun m({"-n", "2", "-m", "manual", "-g"}, {"/bin/sh", WriteChannelAckWorker(d)});
  REQUIRE(PollUntil(
      [&] {
        const auto st = Status(m);
        return st && st->booting == 2;
      },
      10s));
  const std::set<pid_t> old = Pids(m);

  AskReload(m);
  REQUIRE(ReloadsReach(m, 1));
  // The workers ack only now, over the channels the old image created.
  WriteFile(d.File("go"), "");
  CHECK(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  CHECK(Pids(m) == old);

  // The upgrade reloads again; its new workers ack over channels of the newest image.
  const UpgradeRun u = RunUpgrade(m);
  CHECK(u.ended);
  CHECK_FALSE(u.error);
  CHECK(u.last == "Upgrade done");
  CHECK(PollUntil([&] { return PoolSettled(m, 2, 2); }, 10s));
  CHECK(Reloads(m) == 2);
  for (pid_t p : Pids(m)) CHECK(old.count(p) == 0);
}

}  // namespace
}  // namespace einhorn::test

namespace einhorn::test {
namespace {

// Issue 14.9: a --reexec-as wrapper that takes its time (here a shell running `sleep`) before
// it execs the new image. A worker that dies in that window is a child of the same pid, and
// the shell's wait reaps it: the new image never sees its exit. It must notice anyway (the
// pid is no longer its child), replace the worker, and not wait for it at exit.
TEST_CASE("a worker that dies while a slow --reexec-as wrapper runs is replaced, not a ghost") {
  TempDir d;
  // Slow only for the real exec, not for the pre-flight check (--upgrade-check).
  const std::string wrapper = WriteShellScript(d, "slow-exec.sh",
                                          "if [ \"$1\" = --with-state-fd ]; then\n"
                                          "  : > \"$DIR/execing\"\n"
                                          "  sleep 3\n"
                                          "fi\n"
                                          "exec '" EINHORN_BIN "' \"$@\"\n");
  MasterRun m({"-n", "3", "-m", "0", "--reexec-as", wrapper},
              {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 3, 1); }, 10s));
  REQUIRE(m.WaitForWorkers(3));
  const std::set<pid_t> old = Pids(m);
  const pid_t victim = *old.begin();

  AskReload(m);
  REQUIRE(PollUntil([&] { return FileExists(d.File("execing")); }, 20s));
  REQUIRE(kill(victim, SIGKILL) == 0);
  // The wrapper's shell reaps it while it waits for `sleep`.
  REQUIRE(PollUntil([&] { return ProcessState(victim) == '\0'; }, 10s));
  REQUIRE(ReloadsReach(m, 1));

  CHECK(PollUntil(
      [&] {
        const std::set<pid_t> now = Pids(m);
        return PoolSettled(m, 3, 1) && now.count(victim) == 0;
      },
      10s));
  CHECK(m.WaitForLog("worker " + std::to_string(victim) + " died during the reload"));
  CHECK(m.WaitForWorkers(3));
  // Said once for that pid.
  const std::string log = m.Log();
  const std::string line = "worker " + std::to_string(victim) + " died during the reload";
  CHECK(log.find(line) == log.rfind(line));

  // SIGTERM: the master waits only for workers that exist, and exits.
  const std::set<pid_t> workers = Pids(m);
  REQUIRE(m.process().Signal(SIGTERM));
  const auto status = m.process().WaitExit(10s);
  REQUIRE(status.has_value());
  CHECK_FALSE(status->signaled);
  CHECK(status->code == 0);
  for (pid_t p : workers) CHECK(PollUntil([&] { return !ProcessAlive(p); }, 5s));
}

}  // namespace
}  // namespace einhorn::test
