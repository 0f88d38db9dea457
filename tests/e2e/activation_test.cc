// Socket activation in, with the real systemd-socket-activate (Debian's systemd package): it
// binds, waits for the first connection, then execs the master with LISTEN_FDS, LISTEN_PID
// and LISTEN_FDNAMES. The master must serve on those sockets instead of binding again.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>

#include "harness.h"

namespace einhorn::test {
namespace {

const char* const kActivate = "/usr/bin/systemd-socket-activate";

bool HaveActivate() { return access(kActivate, X_OK) == 0; }

ino_t Inode(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

std::vector<std::string> Launcher(const std::string& listen, const std::string& name) {
  return {kActivate, "-l", listen, "--fdname=" + name, "-E", "TMPDIR={dir}", "-E", "PATH"};
}

// A free loopback port (bound, read, released: the activator binds it right after).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

TEST_CASE("socket activation: a -b UNIX path is served on the service manager's socket") {
  if (!HaveActivate()) {
    MESSAGE("skipped: no systemd-socket-activate (Debian package systemd)");
    return;
  }
  TempDir s;
  const std::string path = s.File("web.sock");
  MasterRun m({"-n", "2", "-m", "0", "-b", "unix:" + path}, {EXAMPLE_HTTP_BIN}, {},
              Launcher(path, "web"));
  REQUIRE(PollUntil([&] { return FileExists(path); }, 10s));
  const ino_t inode = Inode(path);
  // The first connection makes the activator exec the master; it waits in the backlog.
  std::string body;
  REQUIRE(PollUntil([&] { return !(body = HttpGetUnix(path, 5s)).empty(); }, 15s));
  CHECK(IsChild(m.pid(), AnsweringPid(body)));
  CHECK(m.LogHas("for -b unix:" + path + " (the service manager's fd 3, web)"));
  for (int i = 0; i < 10; ++i) CHECK(IsChild(m.pid(), AnsweringPid(HttpGetUnix(path, 5s))));
  CHECK(Inode(path) == inode);  // never re-bound
  REQUIRE(m.process().Signal(SIGTERM));
  REQUIRE(m.process().WaitExit(10s).has_value());
  // The path is the service manager's: the master leaves it.
  CHECK(FileExists(path));
}

TEST_CASE("socket activation: a -b TCP address is matched, another -b is bound as usual") {
  if (!HaveActivate()) {
    MESSAGE("skipped: no systemd-socket-activate (Debian package systemd)");
    return;
  }
  const int port = FreePort();
  const std::string addr = "127.0.0.1:" + std::to_string(port);
  MasterRun m({"-n", "1", "-m", "0", "-b", "127.0.0.1:0", "-b", addr + ",r"},
              {TEST_WORKER_BIN, "--report", "{reports}"}, {}, Launcher(addr, "http"));
  // Trigger the exec with a connection (test_worker does not serve it), once the activator
  // listens.
  int conn = -1;
  REQUIRE(PollUntil(
      [&] {
        conn = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<uint16_t>(port));
        if (connect(conn, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return true;
        close(conn);
        return false;
      },
      10s));
  REQUIRE(m.WaitForWorkers(1, 15s));
  close(conn);
  const Report r = m.LiveWorkers().begin()->second;
  CHECK(r.at("LISTEN_FDS") == "2");
  CHECK(r.at("EINHORN_FD_COUNT") == "2");
  CHECK(r.at("sockname_4") == addr);  // -b order kept: the activated one is the second
  CHECK(r.at("sockname_3") != addr);
  CHECK(m.LogHas("for -b " + addr + ",r (the service manager's fd 3, http)"));
}

TEST_CASE("socket activation: with no -b, the sockets are passed on under their names") {
  if (!HaveActivate()) {
    MESSAGE("skipped: no systemd-socket-activate (Debian package systemd)");
    return;
  }
  TempDir s;
  const std::string path = s.File("api.sock");
  MasterRun m({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN, "--report", "{reports}"}, {},
              Launcher(path, "api"));
  REQUIRE(PollUntil([&] { return FileExists(path); }, 10s));
  // The file appears at bind, before listen: retry until the activator accepts connections.
  int fd = -1;
  REQUIRE(PollUntil(
      [&] {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        path.copy(a.sun_path, path.size());
        if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return true;
        close(fd);
        return false;
      },
      10s));
  REQUIRE(m.WaitForWorkers(1, 15s));
  close(fd);
  const Report r = m.LiveWorkers().begin()->second;
  CHECK(r.at("LISTEN_FDS") == "1");
  CHECK(r.at("LISTEN_FDNAMES") == "api");
  CHECK(r.at("EINHORN_FD_COUNT") == "1");
  CHECK(r.at("EINHORN_FD_0") == "3");
  CHECK(r.at("sockname_3") == "unix:" + path);
  CHECK(m.LogHas("the service manager's fd 3 (api)"));
}

}  // namespace
}  // namespace einhorn::test
