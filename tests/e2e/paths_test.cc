// The files the master keeps by path (pidfile, lockfile, command socket), attacked by another
// local user (nobody) the way issue 14 found: symlinks, FIFOs and foreign files at the default
// names in a sticky world-writable TMPDIR, and a command socket swapped for a symlink before a
// reload. The master runs as root; what it must never do is write, create, chmod or remove a
// file through a link it did not create, and every refusal is one line that says why. Also
// Einhorn's lockfile (held only while the socket is created, so masters with different -d
// share the default lockfile).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

#include "control_client.h"
#include "core/pool_status.h"
#include "harness.h"

namespace einhorn::test {
namespace {

constexpr uid_t kNobody = 65534;


bool Has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

size_t Lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

struct stat Lstat(const std::string& path) {
  struct stat st {};
  REQUIRE(lstat(path.c_str(), &st) == 0);
  return st;
}

// A scratch tree nobody can walk: base (0755) holds `shared` (1777, like /tmp) and `secret`
// (0700, root's), where the targets of the attacks live: root-owned 0600 temp files, never a
// real system file.
class Tree {
 public:
  Tree() {
    REQUIRE(chmod(base_.path().c_str(), 0755) == 0);
    REQUIRE(mkdir(shared().c_str(), 0777) == 0);
    REQUIRE(chmod(shared().c_str(), 01777) == 0);
    REQUIRE(mkdir(secret().c_str(), 0700) == 0);
  }
  std::string shared() const { return base_.File("shared"); }
  std::string secret() const { return base_.File("secret"); }
  std::string File(const std::string& name) const { return base_.File(name); }
  std::string Target(const std::string& name) const {
    const std::string path = secret() + "/" + name;
    WriteFile(path, "root's secret\n", 0600);
    return path;
  }

 private:
  TempDir base_;
};

bool Root() {
  if (geteuid() == 0) return true;
  MESSAGE("skipped: needs root to act as another user (nobody)");
  return false;
}

// Runs the master with TMPDIR at `tmpdir` and its default paths; it must refuse to start.
// A master that starts anyway (the bug) is killed and reported as never exiting.
std::optional<Finished> Refused(const std::string& tmpdir, std::vector<std::string> flags = {}) {
  flags.insert(flags.end(), {"-n", "1", "-m", "0", "--", TEST_WORKER_BIN});
  try {
    return RunToExit(flags, 10s, {"TMPDIR=" + tmpdir});
  } catch (const std::exception& e) {
    MESSAGE(e.what());
    return std::nullopt;
  }
}

TEST_CASE("a symlink at the default lockfile in a sticky TMPDIR is refused, nothing is created") {
  if (!Root()) return;
  Tree t;
  const std::string target = t.secret() + "/newfile";  // issue 14: /etc/newfile
  REQUIRE(AsNobody([&] {
            return symlink(target.c_str(), (t.shared() + "/einhorn.lock").c_str()) == 0 ? 0 : 1;
          }) == 0);
  const auto f = Refused(t.shared());
  REQUIRE(f.has_value());
  CHECK(f->status.code == 1);
  CHECK(Lines(f->err) == 1);
  CHECK_MESSAGE(Has(f->err, "lockfile " + t.shared() + "/einhorn.lock is a symbolic link"),
                f->err);
  CHECK_FALSE(FileExists(target));
  CHECK(S_ISLNK(Lstat(t.shared() + "/einhorn.lock").st_mode));
  CHECK_FALSE(FileExists(t.shared() + "/einhorn.sock"));
}

// /dev/loop0 in the issue: a FIFO with a reader stands in for a device that takes writes.
TEST_CASE("a symlink at the default pidfile in a sticky TMPDIR is refused, nothing is written") {
  if (!Root()) return;
  Tree t;
  const std::string fifo = t.secret() + "/device";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  const int reader = open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  REQUIRE(reader >= 0);
  REQUIRE(AsNobody([&] {
            return symlink(fifo.c_str(), (t.shared() + "/einhorn.pid").c_str()) == 0 ? 0 : 1;
          }) == 0);
  const auto f = Refused(t.shared());
  char buf[32];
  const ssize_t n = read(reader, buf, sizeof buf);
  close(reader);
  REQUIRE(f.has_value());
  CHECK(f->status.code == 1);
  CHECK(Lines(f->err) == 1);
  CHECK_MESSAGE(Has(f->err, "pidfile " + t.shared() + "/einhorn.pid is a symbolic link"), f->err);
  CHECK(n <= 0);  // no pid went through the link
  CHECK(S_ISLNK(Lstat(t.shared() + "/einhorn.pid").st_mode));
  // Nothing of the master's is left behind either.
  CHECK_FALSE(FileExists(t.shared() + "/einhorn.sock"));
}

TEST_CASE("another user's FIFO at the default pidfile is refused at once, and never written") {
  if (!Root()) return;
  Tree t;
  const std::string fifo = t.shared() + "/einhorn.pid";
  REQUIRE(AsNobody([&] { return mkfifo(fifo.c_str(), 0666) == 0 ? 0 : 1; }) == 0);
  // The attacker keeps it open for reading, so a write would go through (and without a reader
  // a blocking open would hang the master).
  const int reader = open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  REQUIRE(reader >= 0);
  const auto f = Refused(t.shared());
  char buf[32];
  const ssize_t n = read(reader, buf, sizeof buf);
  close(reader);
  REQUIRE(f.has_value());
  CHECK(f->status.code == 1);
  CHECK(Lines(f->err) == 1);
  CHECK_MESSAGE(Has(f->err, "pidfile " + fifo + " is owned by uid 65534, not by root, in " +
                                t.shared() + ", which other users can write; refusing it"),
                f->err);
  CHECK(n <= 0);
}

TEST_CASE("another user's plain file at the default command socket is refused, and left alone") {
  if (!Root()) return;
  Tree t;
  const std::string sock = t.shared() + "/einhorn.sock";
  REQUIRE(AsNobody([&] {
            const int fd = open(sock.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
            if (fd < 0) return 1;
            const bool ok = write(fd, "theirs", 6) == 6;
            close(fd);
            return ok ? 0 : 2;
          }) == 0);
  const auto f = Refused(t.shared());
  REQUIRE(f.has_value());
  CHECK(f->status.code == 1);
  CHECK(Lines(f->err) == 1);
  CHECK_MESSAGE(Has(f->err, "command socket: unix:" + sock + " is owned by uid 65534"), f->err);
  CHECK(ReadFile(sock) == "theirs");
  CHECK(Lstat(sock).st_uid == kNobody);
}

TEST_CASE("another user's flocked lockfile is refused for what it is, not taken for a master") {
  if (!Root()) return;
  Tree t;
  const std::string lock = t.shared() + "/einhorn.lock";
  // nobody creates and locks it, then waits on a pipe until the test is done.
  int ready[2], done[2];
  REQUIRE(pipe2(ready, O_CLOEXEC) == 0);
  REQUIRE(pipe2(done, O_CLOEXEC) == 0);
  const pid_t holder = fork();
  REQUIRE(holder >= 0);
  if (holder == 0) {
    close(ready[0]);
    close(done[1]);  // so that the test closing its end is the EOF this child waits for
    if (setgroups(0, nullptr) != 0 || setresgid(kNobody, kNobody, kNobody) != 0 ||
        setresuid(kNobody, kNobody, kNobody) != 0) {
      _exit(99);
    }
    const int fd = open(lock.c_str(), O_RDWR | O_CREAT, 0644);
    const char ok = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 ? 'y' : 'n';
    if (write(ready[1], &ok, 1) != 1) _exit(1);
    char c;
    while (read(done[0], &c, 1) < 0 && errno == EINTR) {
    }
    _exit(0);
  }
  close(ready[1]);
  close(done[0]);
  char ok = 0;
  REQUIRE(read(ready[0], &ok, 1) == 1);
  CHECK(ok == 'y');
  const auto f = Refused(t.shared());
  close(done[1]);
  int status = 0;
  waitpid(holder, &status, 0);
  close(ready[0]);
  REQUIRE(f.has_value());
  CHECK(f->status.code == 1);
  CHECK(Lines(f->err) == 1);
  CHECK_MESSAGE(Has(f->err, "lockfile " + lock + " is owned by uid 65534, not by root"), f->err);
  CHECK_FALSE(FileExists(t.shared() + "/einhorn.sock"));
}

TEST_CASE("in a sticky TMPDIR the master's own files are used, and cleaned up") {
  if (!Root()) return;
  Tree t;
  // A stale socket and a pidfile left by an earlier master of ours (root's) are fine.
  Process::Options o;
  o.argv = {EINHORN_BIN, "-n", "1", "-m", "0", "--", TEST_WORKER_BIN};
  o.extra_env = {"TMPDIR=" + t.shared()};
  o.stdout_path = t.File("out");
  o.stderr_path = t.File("log");
  Process p = Process::Start(o);
  const std::string sock = t.shared() + "/einhorn.sock";
  REQUIRE(PollUntil([&] { return ControlClient(sock).connected(); }, 10s));
  // The socket answers before the pidfile is written (it is written after the binds).
  CHECK(PollUntil(
      [&] { return ReadFile(t.shared() + "/einhorn.pid") == std::to_string(p.pid()); }, 10s));
  CHECK((Lstat(sock).st_mode & 0777) == 0600);
  REQUIRE(p.Signal(SIGTERM));
  const auto st = p.WaitExit(10s);
  REQUIRE(st.has_value());
  CHECK(st->code == 0);
  CHECK_FALSE(FileExists(sock));
  CHECK_FALSE(FileExists(t.shared() + "/einhorn.pid"));
  CHECK(FileExists(t.shared() + "/einhorn.lock"));  // never deleted, as Einhorn
}

// A SIGTERM sent the moment the pidfile names the master (before its loop has installed its
// handlers) used to kill it with the default action, leaving the socket and the pidfile behind.
TEST_CASE("a SIGTERM as soon as the pidfile appears stops the master cleanly") {
  for (int round = 0; round < 10; ++round) {
    INFO("round " << round);
    TempDir tmp;
    const std::string dir = tmp.path();
    Process::Options o;
    o.argv = {EINHORN_BIN, "-n", "1", "-m", "0", "-d", dir + "/ctl.sock", "-e", dir + "/m.pid",
              "--", TEST_WORKER_BIN};
    o.stdout_path = dir + "/out";
    o.stderr_path = dir + "/log";
    Process p = Process::Start(o);
    const std::string pid = std::to_string(p.pid());
    REQUIRE(PollUntil([&] { return ReadFile(dir + "/m.pid") == pid; }, 10s,
                      std::chrono::milliseconds(1)));
    REQUIRE(p.Signal(SIGTERM));
    const auto st = p.WaitExit(10s);
    REQUIRE(st.has_value());
    CHECK_FALSE(st->signaled);
    CHECK(st->code == 0);
    CHECK_FALSE(FileExists(dir + "/ctl.sock"));
    CHECK_FALSE(FileExists(dir + "/m.pid"));
  }
}

std::optional<core::PoolStatus> StatusAt(const std::string& sock) {
  ControlClient c(sock);
  if (!c.connected()) return std::nullopt;
  auto reply = c.Ask("{\"id\": 1, \"command\": \"status\"}\n", 5s);
  if (!reply) return std::nullopt;
  auto status = core::PoolStatusFromYaml(reply->message);
  if (!status.ok()) return std::nullopt;
  return status.value();
}

bool ReloadsReach(const std::string& sock, int k) {
  return PollUntil(
      [&] {
        const auto st = StatusAt(sock);
        return st && st->reloads == k;
      },
      20s);
}

// Issue 14, item 1: a user allowed on the command socket, in a directory they can write,
// swaps the socket for a symlink to a root-owned 0600 file and asks for a reload. The old
// master chmod'ed the path in the new image: the file became 0666.
TEST_CASE("a command socket swapped for a symlink before a reload: the target's mode is kept") {
  if (!Root()) return;
  Tree t;
  const std::string dir = t.File("nobodys");
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  REQUIRE(chown(dir.c_str(), kNobody, kNobody) == 0);
  const std::string sock = dir + "/ctl.sock";
  const std::string moved = dir + "/moved.sock";
  const std::string target = t.Target("shadow");

  SUBCASE("by an allowed user, who then sends the reload") {
    MasterRun m({"-n", "1", "-m", "0", "-d", sock, "--control-allow-uid", "nobody"},
                {TEST_WORKER_BIN});
    REQUIRE(PollUntil([&] { return ControlClient(sock).connected(); }, 10s));
    CHECK((Lstat(sock).st_mode & 0777) == 0666);
    const int attack = AsNobody([&] {
      ControlClient c(sock);
      if (!c.connected()) return 10;
      if (rename(sock.c_str(), moved.c_str()) != 0) return 11;
      if (symlink(target.c_str(), sock.c_str()) != 0) return 12;
      auto r = c.Ask("{\"id\": 1, \"command\": \"reload\"}\n", 10s);
      if (!r) return 13;
      return r->message == "Reloading, as commanded" ? 0 : 14;
    });
    REQUIRE(attack == 0);
    REQUIRE(ReloadsReach(moved, 1));
    const struct stat st = Lstat(target);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(st.st_uid == 0);
    CHECK(ReadFile(target) == "root's secret\n");
    CHECK(m.WaitForLog(sock + " no longer names this master's socket"));
    // The socket itself still has the mode it was born with.
    CHECK((Lstat(moved).st_mode & 0777) == 0666);
  }
  SUBCASE("without allow lists, before a reload the administrator asks for") {
    REQUIRE(chmod(target.c_str(), 0644) == 0);  // the old master made it 0600 (a DoS)
    MasterRun m({"-n", "1", "-m", "0", "-d", sock}, {TEST_WORKER_BIN});
    REQUIRE(PollUntil([&] { return ControlClient(sock).connected(); }, 10s));
    ControlClient admin(sock);
    REQUIRE(admin.connected());
    REQUIRE(AsNobody([&] {
              if (rename(sock.c_str(), moved.c_str()) != 0) return 11;
              return symlink(target.c_str(), sock.c_str()) == 0 ? 0 : 12;
            }) == 0);
    const auto r = admin.Ask("{\"id\": 1, \"command\": \"reload\"}\n");
    REQUIRE(r.has_value());
    CHECK(r->message == "Reloading, as commanded");
    REQUIRE(ReloadsReach(moved, 1));
    CHECK((Lstat(target).st_mode & 0777) == 0644);
    CHECK((Lstat(moved).st_mode & 0777) == 0600);
  }
}

// The one case where a restored image changes the socket's mode: a reloaded config that
// allows other users now. It goes through the inode the first image created.
TEST_CASE("a reload that adds control_allow_uid opens the socket's mode, by inode") {
  TempDir d;
  const std::string config = d.File("einhorn.yaml");
  WriteFile(config, "number: 1\n");
  const std::string sock = d.File("ctl.sock");
  MasterRun m({"--config", config, "-m", "0", "-d", sock}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return ControlClient(sock).connected(); }, 10s));
  CHECK((Lstat(sock).st_mode & 0777) == 0600);
  WriteFile(config, "number: 1\ncontrol_allow_uid: [nobody]\n");
  {
    ControlClient c(sock);
    REQUIRE(c.connected());
    const auto r = c.Ask("{\"id\": 1, \"command\": \"reload\"}\n");
    REQUIRE(r.has_value());
    CHECK(r->message == "Reloading, as commanded");
  }
  REQUIRE(ReloadsReach(sock, 1));
  CHECK((Lstat(sock).st_mode & 0777) == 0666);
  CHECK(m.WaitForLog("command socket: mode 666 now that --control-allow-uid/gid are set"));
}

// Issue 15, item 3: Einhorn holds the default lockfile only while it creates the socket.
TEST_CASE("two masters with different -d in one TMPDIR both start, and one on a live socket does not") {
  MasterRun first({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(first.WaitForWorkers(1));
  const std::string tmp = first.dir().path();
  const std::string other = first.dir().File("other.sock");
  Process::Options o;
  o.argv = {EINHORN_BIN, "-d", other, "-e", first.dir().File("other.pid"), "-n", "1", "-m", "0",
            "--", TEST_WORKER_BIN};
  o.extra_env = {"TMPDIR=" + tmp};
  o.stdout_path = first.dir().File("second.out");
  o.stderr_path = first.dir().File("second.log");
  Process second = Process::Start(o);
  CHECK_MESSAGE(PollUntil([&] { return ControlClient(other).connected(); }, 10s),
                ReadFile(first.dir().File("second.log")));
  CHECK(second.running());
  CHECK(first.process().running());

  // A third on the first one's socket (same TMPDIR, same defaults) is refused by the
  // live-socket check, in one line, and both keep running.
  const Finished third = RunToExit({"-e", first.dir().File("third.pid"), "-n", "1", "--",
                                    TEST_WORKER_BIN},
                                   10s, {"TMPDIR=" + tmp});
  CHECK(third.status.code == 1);
  CHECK(Lines(third.err) == 1);
  // Naming the master that serves it, and what to do instead (issue 17.5).
  CHECK_MESSAGE(Has(third.err, "command socket: unix:" + tmp + "/einhorn.sock is in use, held "
                               "by pid " + std::to_string(first.pid()) + " ("),
                third.err);
  CHECK_MESSAGE(Has(third.err, "(this master's own: -c NAME or -d PATH)\n"), third.err);
  CHECK(first.process().running());
  CHECK(second.running());
  REQUIRE(second.Signal(SIGTERM));
  const auto st = second.WaitExit(10s);
  REQUIRE(st.has_value());
  CHECK(st->code == 0);
  CHECK_FALSE(FileExists(other));
  CHECK(ControlClient(first.dir().File("einhorn.sock")).connected());
}

}  // namespace
}  // namespace einhorn::test
