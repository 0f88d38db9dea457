// sys/peer.h: SO_PEERCRED, process lineage from /proc, the -g socket pair, user and group
// names. Real processes: forked children that only make syscalls and _exit(), always killed and
// reaped by a ChildGuard.
#include "sys/peer.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "proc.h"
#include "sys_test_util.h"

namespace einhorn {
namespace {

using namespace std::chrono_literals;
using test::ChildGuard;
using test::TempDir;

// Reads one pid a child reports on `fd`, waiting up to 10 s.
pid_t ReadPid(int fd) {
  pollfd p{fd, POLLIN, 0};
  REQUIRE(poll(&p, 1, 10000) == 1);
  pid_t pid = -1;
  REQUIRE(read(fd, &pid, sizeof pid) == static_cast<ssize_t>(sizeof pid));
  return pid;
}

// In a child: blocks until every write end of the hold pipe is closed.
void HoldUntilEof(int hold_read) {
  char c;
  while (read(hold_read, &c, 1) < 0 && errno == EINTR) {
  }
}

bool ExitedZero(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

// Makes this process a child subreaper until destroyed, then restores what it was.
class Subreaper {
 public:
  Subreaper() {
    REQUIRE(prctl(PR_GET_CHILD_SUBREAPER, &was_) == 0);
    REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  }
  ~Subreaper() {
    if (was_ == 0) prctl(PR_SET_CHILD_SUBREAPER, 0);
  }
  Subreaper(const Subreaper&) = delete;
  Subreaper& operator=(const Subreaper&) = delete;

 private:
  int was_ = 0;
};

int Listen(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(path.size() < sizeof addr.sun_path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(listen(fd, 4) == 0);
  return fd;
}

// ------------------------------------------------------------------------------------------
// GetPeerCred

TEST_CASE("peer: GetPeerCred on an accepted connection names the connecting child") {
  TempDir dir;
  const std::string path = dir.File("s.sock");
  const int listener = Listen(path);
  int hold[2];
  REQUIRE(pipe2(hold, O_CLOEXEC) == 0);

  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    close(hold[1]);
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) _exit(2);
    HoldUntilEof(hold[0]);
    _exit(0);
  }
  close(hold[0]);
  ChildGuard guard(child);

  pollfd p{listener, POLLIN, 0};
  REQUIRE(poll(&p, 1, 10000) == 1);
  const int conn = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  REQUIRE(conn >= 0);
  const core::Result<sys::PeerCred> cred = sys::GetPeerCred(conn);
  REQUIRE_MESSAGE(cred.ok(), cred.error());
  CHECK(cred.value().pid == child);
  CHECK(cred.value().pid != getpid());
  CHECK(cred.value().uid == getuid());
  CHECK(cred.value().gid == getgid());

  close(hold[1]);
  std::optional<int> status = guard.Wait(10s);
  REQUIRE(status.has_value());
  CHECK(ExitedZero(*status));
  // The credentials are those of connect time: still readable once the peer is gone.
  const core::Result<sys::PeerCred> after = sys::GetPeerCred(conn);
  REQUIRE(after.ok());
  CHECK(after.value().pid == child);
  close(conn);
  close(listener);
}

TEST_CASE("peer: a socketpair carries the credentials of its creator on both ends") {
  const core::Result<std::pair<int, int>> pair = sys::StreamSocketPair();
  REQUIRE_MESSAGE(pair.ok(), pair.error());
  const auto [master_end, worker_end] = pair.value();
  int report[2];
  REQUIRE(pipe2(report, O_CLOEXEC) == 0);

  // A child holding the worker end: the master still sees the creator (us), which is why a -g
  // channel is bound to its worker explicitly instead of trusting SO_PEERCRED.
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    close(report[0]);
    close(master_end);
    const core::Result<sys::PeerCred> c = sys::GetPeerCred(worker_end);
    const pid_t seen = c.ok() ? c.value().pid : -1;
    if (write(report[1], &seen, sizeof seen) != static_cast<ssize_t>(sizeof seen)) _exit(2);
    _exit(0);
  }
  close(report[1]);
  ChildGuard guard(child);
  const pid_t child_saw = ReadPid(report[0]);
  close(report[0]);
  std::optional<int> status = guard.Wait(10s);
  REQUIRE(status.has_value());
  CHECK(ExitedZero(*status));
  CHECK(child_saw == getpid());

  const core::Result<sys::PeerCred> cred = sys::GetPeerCred(master_end);
  REQUIRE_MESSAGE(cred.ok(), cred.error());
  CHECK(cred.value().pid == getpid());
  CHECK(cred.value().uid == getuid());
  CHECK(cred.value().gid == getgid());
  close(master_end);
  close(worker_end);
}

TEST_CASE("peer: GetPeerCred fails on what is not a UNIX socket") {
  int fds[2];
  REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
  const core::Result<sys::PeerCred> on_pipe = sys::GetPeerCred(fds[0]);
  CHECK_FALSE(on_pipe.ok());
  if (!on_pipe.ok()) CHECK(on_pipe.error().rfind("SO_PEERCRED: ", 0) == 0);
  close(fds[0]);
  close(fds[1]);
  // A closed descriptor.
  const core::Result<sys::PeerCred> closed = sys::GetPeerCred(fds[0]);
  CHECK_FALSE(closed.ok());
  if (!closed.ok()) CHECK(closed.error() == std::string("SO_PEERCRED: ") + std::strerror(EBADF));
}

// ------------------------------------------------------------------------------------------
// StreamSocketPair

TEST_CASE("peer: StreamSocketPair is a connected AF_UNIX stream pair with CLOEXEC on both ends") {
  const core::Result<std::pair<int, int>> pair = sys::StreamSocketPair();
  REQUIRE_MESSAGE(pair.ok(), pair.error());
  const auto [a, b] = pair.value();
  CHECK(a >= 0);
  CHECK(b >= 0);
  CHECK(a != b);
  for (int fd : {a, b}) {
    INFO(fd);
    CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    int type = 0, domain = 0;
    socklen_t len = sizeof type;
    REQUIRE(getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0);
    CHECK(type == SOCK_STREAM);
    len = sizeof domain;
    REQUIRE(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0);
    CHECK(domain == AF_UNIX);
  }
  // Connected, both ways, bytes in order.
  REQUIRE(write(a, "ping\n", 5) == 5);
  char buf[16] = {};
  REQUIRE(read(b, buf, sizeof buf) == 5);
  CHECK(std::string(buf, 5) == "ping\n");
  REQUIRE(write(b, "pong", 4) == 4);
  REQUIRE(read(a, buf, sizeof buf) == 4);
  CHECK(std::string(buf, 4) == "pong");
  // Closing one end is EOF on the other.
  close(b);
  CHECK(read(a, buf, sizeof buf) == 0);
  close(a);
}

TEST_CASE("peer: the worker end of a StreamSocketPair does not survive exec") {
  const core::Result<std::pair<int, int>> pair = sys::StreamSocketPair();
  REQUIRE(pair.ok());
  const auto [master_end, worker_end] = pair.value();
  // A copy without CLOEXEC shows that the check below would see an inherited descriptor.
  const int inherited = fcntl(worker_end, F_DUPFD, 10);
  REQUIRE(inherited >= 0);
  const std::string script = "[ -e /proc/self/fd/" + std::to_string(inherited) +
                             " ] || exit 3; [ -e /proc/self/fd/" + std::to_string(worker_end) +
                             " ] && exit 4; [ -e /proc/self/fd/" + std::to_string(master_end) +
                             " ] && exit 5; exit 0";
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  ChildGuard guard(child);
  std::optional<int> status = guard.Wait(10s);
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  close(inherited);
  close(master_end);
  close(worker_end);
}

// ------------------------------------------------------------------------------------------
// Lineage

TEST_CASE("peer: Lineage of ourselves starts with us and our parent and stops before pid 1") {
  const std::vector<pid_t> chain = sys::Lineage(getpid());
  REQUIRE(chain.size() >= 1);
  CHECK(chain[0] == getpid());
  if (getppid() > 1) {
    REQUIRE(chain.size() >= 2);
    CHECK(chain[1] == getppid());
  }
  CHECK(std::find(chain.begin(), chain.end(), 1) == chain.end());
  CHECK(std::find(chain.begin(), chain.end(), 0) == chain.end());
  CHECK(sys::Lineage(1).empty());
  CHECK(sys::Lineage(0).empty());
  CHECK(sys::Lineage(-5).empty());
}

TEST_CASE("peer: Lineage of a grandchild lists the grandchild then the child then us") {
  int report[2];
  int hold[2];
  REQUIRE(pipe2(report, O_CLOEXEC) == 0);
  REQUIRE(pipe2(hold, O_CLOEXEC) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    setpgid(0, 0);  // the guard kills the whole group
    close(report[0]);
    close(hold[1]);
    const pid_t grandchild = fork();
    if (grandchild < 0) _exit(2);
    if (grandchild == 0) {
      const pid_t me = getpid();
      if (write(report[1], &me, sizeof me) != static_cast<ssize_t>(sizeof me)) _exit(2);
      HoldUntilEof(hold[0]);
      _exit(0);
    }
    close(report[1]);
    HoldUntilEof(hold[0]);
    int status = 0;
    while (waitpid(grandchild, &status, 0) < 0 && errno == EINTR) {
    }
    _exit(ExitedZero(status) ? 0 : 3);
  }
  close(report[1]);
  close(hold[0]);
  ChildGuard guard(child);
  const pid_t grandchild = ReadPid(report[0]);
  close(report[0]);
  REQUIRE(grandchild > 0);

  const std::vector<pid_t> chain = sys::Lineage(grandchild);
  const std::vector<pid_t> mine = sys::Lineage(getpid());
  REQUIRE(chain.size() == mine.size() + 2);
  CHECK(chain[0] == grandchild);
  CHECK(chain[1] == child);
  CHECK(std::equal(mine.begin(), mine.end(), chain.begin() + 2));  // then us and our ancestors

  close(hold[1]);
  std::optional<int> status = guard.Wait(10s);
  REQUIRE(status.has_value());
  CHECK(ExitedZero(*status));
}

TEST_CASE("peer: Lineage reads the parent after a command name with spaces and parentheses") {
  int ready[2];
  int hold[2];
  REQUIRE(pipe2(ready, O_CLOEXEC) == 0);
  REQUIRE(pipe2(hold, O_CLOEXEC) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    close(ready[0]);
    close(hold[1]);
    // Read up to the first ')' this would look like state 'S', parent 1.
    if (prctl(PR_SET_NAME, "x) S 1 (y", 0, 0, 0) != 0) _exit(2);
    const pid_t me = getpid();
    if (write(ready[1], &me, sizeof me) != static_cast<ssize_t>(sizeof me)) _exit(2);
    HoldUntilEof(hold[0]);
    _exit(0);
  }
  close(ready[1]);
  close(hold[0]);
  ChildGuard guard(child);
  REQUIRE(ReadPid(ready[0]) == child);
  close(ready[0]);
  REQUIRE(test::ReadFile("/proc/" + std::to_string(child) + "/comm") == "x) S 1 (y\n");

  const std::vector<pid_t> chain = sys::Lineage(child);
  REQUIRE(chain.size() >= 2);
  CHECK(chain[0] == child);
  CHECK(chain[1] == getpid());
  CHECK(chain.size() == sys::Lineage(getpid()).size() + 1);

  close(hold[1]);
  std::optional<int> status = guard.Wait(10s);
  REQUIRE(status.has_value());
  CHECK(ExitedZero(*status));
}

TEST_CASE(
    "peer: Lineage of a zombie still reaches its parent and of a reaped pid is the pid alone") {
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) _exit(0);
  ChildGuard guard(child);
  // Not reaped yet: a zombie keeps its /proc entry and its parent.
  REQUIRE(test::PollUntil([&] { return test::ProcessState(child) == 'Z'; }, 10s));
  const std::vector<pid_t> zombie = sys::Lineage(child);
  REQUIRE(zombie.size() >= 2);
  CHECK(zombie[0] == child);
  CHECK(zombie[1] == getpid());

  std::optional<int> status = guard.Wait(10s);
  REQUIRE(status.has_value());
  // Gone: only the pid itself (what SO_PEERCRED said), no ancestors.
  if (test::ProcessState(child) == '\0') CHECK(sys::Lineage(child) == std::vector<pid_t>{child});
}

TEST_CASE("peer: Lineage of an orphan no longer includes its dead parent") {
  // As a subreaper for the duration, the orphan is re-parented to us (not to pid 1).
  Subreaper subreaper;
  int report[2];
  int hold[2];
  REQUIRE(pipe2(report, O_CLOEXEC) == 0);
  REQUIRE(pipe2(hold, O_CLOEXEC) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    close(report[0]);
    close(hold[1]);
    const pid_t grandchild = fork();
    if (grandchild < 0) _exit(2);
    if (grandchild == 0) {
      const pid_t me = getpid();
      if (write(report[1], &me, sizeof me) != static_cast<ssize_t>(sizeof me)) _exit(2);
      HoldUntilEof(hold[0]);
      _exit(0);
    }
    _exit(0);  // orphans the grandchild
  }
  close(report[1]);
  close(hold[0]);
  ChildGuard guard(child);
  const pid_t grandchild = ReadPid(report[0]);
  close(report[0]);
  REQUIRE(grandchild > 0);
  ChildGuard grandchild_guard(grandchild);
  std::optional<int> status = guard.Wait(10s);
  REQUIRE(status.has_value());
  CHECK(ExitedZero(*status));
  REQUIRE(test::PollUntil(
      [&] {
        const std::vector<std::string> f = test::ProcStatFields(grandchild);
        return f.size() > 1 && f[1] == std::to_string(getpid());
      },
      10s));

  const std::vector<pid_t> chain = sys::Lineage(grandchild);
  REQUIRE(chain.size() >= 2);
  CHECK(chain[0] == grandchild);
  CHECK(chain[1] == getpid());
  CHECK(std::find(chain.begin(), chain.end(), child) == chain.end());

  close(hold[1]);
  std::optional<int> gstatus = grandchild_guard.Wait(10s);
  REQUIRE(gstatus.has_value());
  CHECK(ExitedZero(*gstatus));
}

TEST_CASE("peer: Lineage stops after 64 processes however deep the chain") {
  constexpr int kDepth = 70;  // processes below us
  int report[2];
  int hold[2];
  REQUIRE(pipe2(report, O_CLOEXEC) == 0);
  REQUIRE(pipe2(hold, O_CLOEXEC) == 0);
  const pid_t top = fork();
  REQUIRE(top >= 0);
  if (top == 0) {
    setpgid(0, 0);  // the whole chain in one group, for the guard
    close(report[0]);
    close(hold[1]);
    // Each level forks the next; the deepest reports its pid. Every level waits for the hold
    // pipe to close, then reaps its child.
    pid_t below = -1;
    for (int level = 1; level < kDepth; ++level) {
      below = fork();
      if (below < 0) _exit(2);
      if (below > 0) break;
      below = -1;
    }
    if (below < 0) {
      const pid_t me = getpid();
      if (write(report[1], &me, sizeof me) != static_cast<ssize_t>(sizeof me)) _exit(2);
    }
    close(report[1]);
    HoldUntilEof(hold[0]);
    int status = 0;
    if (below > 0) {
      while (waitpid(below, &status, 0) < 0 && errno == EINTR) {
      }
      _exit(ExitedZero(status) ? 0 : 3);
    }
    _exit(0);
  }
  close(report[1]);
  close(hold[0]);
  ChildGuard guard(top);
  const pid_t deepest = ReadPid(report[0]);
  close(report[0]);
  REQUIRE(deepest > 0);

  const std::vector<pid_t> chain = sys::Lineage(deepest);
  CHECK(chain.size() == 64);
  CHECK(chain[0] == deepest);
  // Each entry is the parent of the one before it, and the chain never reaches the top child
  // (70 levels down) nor us.
  for (size_t i = 1; i < chain.size(); ++i) {
    const std::vector<std::string> f = test::ProcStatFields(chain[i - 1]);
    REQUIRE(f.size() > 1);
    CHECK(f[1] == std::to_string(chain[i]));
  }
  CHECK(std::find(chain.begin(), chain.end(), top) == chain.end());
  CHECK(std::find(chain.begin(), chain.end(), getpid()) == chain.end());

  close(hold[1]);
  std::optional<int> status = guard.Wait(30s);
  REQUIRE(status.has_value());
  CHECK(ExitedZero(*status));
}

// ------------------------------------------------------------------------------------------
// ResolveUser / ResolveGroup

TEST_CASE("peer: ResolveUser takes names from the passwd database and numbers as they are") {
  const passwd* nobody = getpwnam("nobody");
  REQUIRE(nobody != nullptr);
  const uid_t nobody_uid = nobody->pw_uid;
  const core::Result<uid_t> r = sys::ResolveUser("nobody");
  REQUIRE_MESSAGE(r.ok(), r.error());
  CHECK(r.value() == nobody_uid);
  CHECK(r.value() != 0);

  const core::Result<uid_t> root = sys::ResolveUser("root");
  REQUIRE(root.ok());
  CHECK(root.value() == 0);

  // Numbers need no passwd entry.
  for (const auto& [text, uid] : std::vector<std::pair<std::string, uid_t>>{
           {"0", 0}, {"1234", 1234}, {"54321", 54321}, {"007", 7}, {"4000000000", 4000000000U}}) {
    INFO(text);
    const core::Result<uid_t> n = sys::ResolveUser(text);
    REQUIRE_MESSAGE(n.ok(), n.error());
    CHECK(n.value() == uid);
  }
}

TEST_CASE("peer: ResolveUser refuses unknown names and what is neither a name nor a number") {
  const core::Result<uid_t> r = sys::ResolveUser("no-such-user-einhorn-test");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "unknown user 'no-such-user-einhorn-test'");
  for (const char* bad : {"", "-1", "+5", " 5", "5 ", "12345678901"}) {
    INFO(bad);
    CHECK_FALSE(sys::ResolveUser(bad).ok());
  }
  // Numbers that would wrap around, and (uid_t)-1, which means "no id" to the kernel.
  for (const char* big : {"9999999999", "4294967295", "4294967296"}) {
    INFO(big);
    CHECK_FALSE(sys::ResolveUser(big).ok());
    CHECK_FALSE(sys::ResolveGroup(big).ok());
  }
  CHECK(sys::ResolveUser("4294967294").value() == 4294967294U);
}

TEST_CASE("peer: ResolveGroup takes names from the group database and numbers as they are") {
  const group* root = getgrgid(0);
  REQUIRE(root != nullptr);
  const std::string root_name = root->gr_name;
  const core::Result<gid_t> r = sys::ResolveGroup(root_name);
  REQUIRE_MESSAGE(r.ok(), r.error());
  CHECK(r.value() == 0);

  const group* nogroup = getgrnam("nogroup");
  if (nogroup != nullptr) {
    const gid_t gid = nogroup->gr_gid;
    const core::Result<gid_t> n = sys::ResolveGroup("nogroup");
    REQUIRE(n.ok());
    CHECK(n.value() == gid);
    CHECK(n.value() != 0);
  }
  const core::Result<gid_t> num = sys::ResolveGroup("4321");
  REQUIRE(num.ok());
  CHECK(num.value() == 4321);

  const core::Result<gid_t> bad = sys::ResolveGroup("no-such-group-einhorn-test");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error() == "unknown group 'no-such-group-einhorn-test'");
  CHECK_FALSE(sys::ResolveGroup("").ok());
  CHECK_FALSE(sys::ResolveGroup("-1").ok());
}

}  // namespace
}  // namespace einhorn
