// Real sockets for sys::OpenListener / CloseListener. Ports are always 0 (parallel ctest).
#include "sys/listeners.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/holders.h"
#include "proc.h"

namespace einhorn {
namespace {

using core::BindSpec;
using test::TempDir;

BindSpec Inet(const std::string& host, int port = 0) {
  BindSpec spec;
  spec.family = BindSpec::Family::kInet;
  spec.host = host;
  spec.port = port;
  spec.text = host + ":" + std::to_string(port);
  return spec;
}

BindSpec Unix(const std::string& path) {
  BindSpec spec;
  spec.family = BindSpec::Family::kUnix;
  spec.path = path;
  spec.text = "unix:" + path;
  return spec;
}

int PortOf(const sys::Listener& l) { return std::stoi(l.bound.substr(l.bound.rfind(':') + 1)); }

int SockOpt(int fd, int level, int option) {
  int value = -1;
  socklen_t len = sizeof(value);
  REQUIRE(getsockopt(fd, level, option, &value, &len) == 0);
  return value;
}

sockaddr_un UnixAddr(const std::string& path) {
  sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

// Returns 0 on an accepted connection, else errno.
int ConnectUnix(const std::string& path, bool nonblock = false) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr = UnixAddr(path);
  const int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const int err = rc == 0 ? 0 : errno;
  close(fd);
  return err;
}

// A UNIX socket file with nobody listening behind it, as a crashed master leaves.
void MakeStaleSocket(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr = UnixAddr(path);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  close(fd);
}

TEST_CASE("listener: IPv4 port 0 is resolved, socket is CLOEXEC, blocking and accepting") {
  core::Result<sys::Listener> r = sys::OpenListener(Inet("127.0.0.1"), 16);
  REQUIRE_MESSAGE(r.ok(), r.error());
  sys::Listener l = r.value();
  CHECK(l.bound.rfind("127.0.0.1:", 0) == 0);
  const int port = PortOf(l);
  CHECK(port > 0);
  CHECK((fcntl(l.fd, F_GETFD) & FD_CLOEXEC) != 0);
  CHECK((fcntl(l.fd, F_GETFL) & O_NONBLOCK) == 0);
  CHECK(SockOpt(l.fd, SOL_SOCKET, SO_ACCEPTCONN) == 1);
  CHECK(SockOpt(l.fd, SOL_SOCKET, SO_REUSEADDR) == 0);
  CHECK(SockOpt(l.fd, SOL_SOCKET, SO_REUSEPORT) == 0);

  // A client can connect to the reported port.
  const int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(port));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(connect(c, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) == 0);
  close(c);
  sys::CloseListener(l);
  CHECK(l.fd == -1);
}

TEST_CASE("listener: flags r, n and reuseport are applied") {
  BindSpec spec = Inet("127.0.0.1");
  spec.reuseaddr = true;
  spec.nonblock = true;
  spec.reuseport = true;
  core::Result<sys::Listener> r = sys::OpenListener(spec, 16);
  REQUIRE_MESSAGE(r.ok(), r.error());
  sys::Listener l = r.value();
  CHECK((fcntl(l.fd, F_GETFL) & O_NONBLOCK) != 0);
  CHECK(SockOpt(l.fd, SOL_SOCKET, SO_REUSEADDR) == 1);
  CHECK(SockOpt(l.fd, SOL_SOCKET, SO_REUSEPORT) == 1);

  // reuseport on both sides lets a second socket share the port.
  BindSpec same = spec;
  same.port = PortOf(l);
  core::Result<sys::Listener> twin = sys::OpenListener(same, 16);
  REQUIRE_MESSAGE(twin.ok(), twin.error());
  CHECK(twin.value().bound == l.bound);
  sys::Listener t = twin.value();
  sys::CloseListener(t);
  sys::CloseListener(l);
}

TEST_CASE("listener: a port in use is an error naming the address and errno") {
  core::Result<sys::Listener> first = sys::OpenListener(Inet("127.0.0.1"), 16);
  REQUIRE(first.ok());
  sys::Listener l = first.value();
  const int port = PortOf(l);
  BindSpec again = Inet("127.0.0.1", port);
  again.reuseaddr = true;  // SO_REUSEADDR does not allow two listeners on Linux
  core::Result<sys::Listener> second = sys::OpenListener(again, 16);
  REQUIRE_FALSE(second.ok());
  // ... and its holder, here this very process (issue 17.5).
  CHECK(second.error() == "bind 127.0.0.1:" + std::to_string(port) +
                              ": Address already in use, held by pid " + std::to_string(getpid()) +
                              " (" + core::CommandLineText(test::ReadFile("/proc/self/cmdline")) +
                              "); stop it, or choose another port");
  sys::CloseListener(l);
}

TEST_CASE("listener: '*' is the IPv4 wildcard") {
  core::Result<sys::Listener> r = sys::OpenListener(Inet("*"), 16);
  REQUIRE_MESSAGE(r.ok(), r.error());
  sys::Listener l = r.value();
  CHECK(l.bound.rfind("0.0.0.0:", 0) == 0);
  CHECK(PortOf(l) > 0);
  sys::CloseListener(l);
}

TEST_CASE("listener: IPv6 loopback") {
  BindSpec spec;
  spec.family = BindSpec::Family::kInet6;
  spec.host = "::1";
  spec.text = "[::1]:0";
  core::Result<sys::Listener> r = sys::OpenListener(spec, 16);
  if (!r.ok()) {
    MESSAGE("skipping: no IPv6 loopback here (" << r.error() << ")");
    return;
  }
  sys::Listener l = r.value();
  CHECK(l.bound.rfind("[::1]:", 0) == 0);
  CHECK(PortOf(l) > 0);
  CHECK(SockOpt(l.fd, IPPROTO_IPV6, IPV6_V6ONLY) == 1);
  sys::CloseListener(l);
}

TEST_CASE("listener: a host that does not resolve for the family is an error") {
  // An IPv6 literal for an IPv4 spec fails inside getaddrinfo without any DNS traffic.
  core::Result<sys::Listener> r = sys::OpenListener(Inet("::1"), 16);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "resolve ::1:0: Address family for hostname not supported");
}

TEST_CASE("listener: UNIX socket is created, accepts, and is unlinked on close") {
  TempDir dir;
  const std::string path = dir.File("a.sock");
  core::Result<sys::Listener> r = sys::OpenListener(Unix(path), 16);
  REQUIRE_MESSAGE(r.ok(), r.error());
  sys::Listener l = r.value();
  CHECK(l.bound == "unix:" + path);
  CHECK((fcntl(l.fd, F_GETFD) & FD_CLOEXEC) != 0);
  CHECK((fcntl(l.fd, F_GETFL) & O_NONBLOCK) == 0);
  struct stat st;
  REQUIRE(lstat(path.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK(ConnectUnix(path) == 0);
  sys::CloseListener(l);
  CHECK_FALSE(test::FileExists(path));
  sys::CloseListener(l);  // idempotent
}

TEST_CASE("listener: UNIX close leaves a file that is no longer ours") {
  TempDir dir;
  const std::string path = dir.File("a.sock");
  core::Result<sys::Listener> r = sys::OpenListener(Unix(path), 16);
  REQUIRE(r.ok());
  sys::Listener l = r.value();
  // Someone replaced the path meanwhile (another master after ours was declared dead).
  REQUIRE(unlink(path.c_str()) == 0);
  test::WriteFile(path, "theirs");
  sys::CloseListener(l);
  CHECK(test::ReadFile(path) == "theirs");
}

TEST_CASE("listener: a stale UNIX socket is replaced") {
  TempDir dir;
  const std::string path = dir.File("stale.sock");
  MakeStaleSocket(path);
  CHECK(ConnectUnix(path) == ECONNREFUSED);
  core::Result<sys::Listener> r = sys::OpenListener(Unix(path), 16);
  REQUIRE_MESSAGE(r.ok(), r.error());
  sys::Listener l = r.value();
  CHECK(ConnectUnix(path) == 0);
  sys::CloseListener(l);
}

TEST_CASE("listener: a live UNIX socket is refused and left alone") {
  TempDir dir;
  const std::string path = dir.File("live.sock");
  core::Result<sys::Listener> first = sys::OpenListener(Unix(path), 16);
  REQUIRE(first.ok());
  sys::Listener l = first.value();
  core::Result<sys::Listener> second = sys::OpenListener(Unix(path), 16);
  REQUIRE_FALSE(second.ok());
  // Named: the listener's pid (SO_PEERCRED of the probe), this process (issue 17.5).
  CHECK(second.error() == "unix:" + path + " is in use, held by pid " + std::to_string(getpid()) +
                              " (" + core::CommandLineText(test::ReadFile("/proc/self/cmdline")) +
                              "); stop it, or choose another path");
  CHECK(ConnectUnix(path) == 0);  // still served by the first
  sys::CloseListener(l);
}

TEST_CASE("listener: a live UNIX socket with a full backlog is still refused, not hung on") {
  TempDir dir;
  const std::string path = dir.File("full.sock");
  core::Result<sys::Listener> first = sys::OpenListener(Unix(path), 0);
  REQUIRE(first.ok());
  sys::Listener l = first.value();
  std::vector<int> clients;
  for (int i = 0; i < 8; ++i) {  // fill the queue; nobody accepts
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr = UnixAddr(path);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd);
      break;
    }
    clients.push_back(fd);
  }
  core::Result<sys::Listener> second = sys::OpenListener(Unix(path), 16);
  REQUIRE_FALSE(second.ok());
  CHECK(second.error() ==
        "unix:" + path + " is in use, held by another process; stop it, or choose another path");
  for (int fd : clients) close(fd);
  sys::CloseListener(l);
}

TEST_CASE("listener: UNIX backlog is honoured") {
  // For UNIX stream sockets the kernel queues backlog + 1 connections, then refuses
  // non-blocking connects with EAGAIN: a deterministic way to see the backlog.
  TempDir dir;
  for (int backlog : {1, 4}) {
    const std::string path = dir.File("b" + std::to_string(backlog) + ".sock");
    core::Result<sys::Listener> r = sys::OpenListener(Unix(path), backlog);
    REQUIRE(r.ok());
    sys::Listener l = r.value();
    std::vector<int> clients;
    int err = 0;
    while (clients.size() < 64) {
      const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      sockaddr_un addr = UnixAddr(path);
      if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        err = errno;
        close(fd);
        break;
      }
      clients.push_back(fd);
    }
    CHECK(err == EAGAIN);
    CHECK(clients.size() >= static_cast<size_t>(backlog));
    CHECK(clients.size() <= static_cast<size_t>(backlog) + 1);
    for (int fd : clients) close(fd);
    sys::CloseListener(l);
  }
}

TEST_CASE("listener: UNIX nonblock flag") {
  TempDir dir;
  BindSpec spec = Unix(dir.File("n.sock"));
  spec.nonblock = true;
  core::Result<sys::Listener> r = sys::OpenListener(spec, 16);
  REQUIRE(r.ok());
  sys::Listener l = r.value();
  CHECK((fcntl(l.fd, F_GETFL) & O_NONBLOCK) != 0);
  sys::CloseListener(l);
}

TEST_CASE("listener: UNIX path errors") {
  TempDir dir;
  SUBCASE("too long for sun_path: refused, not truncated") {
    const std::string path = dir.path() + "/" + std::string(120, 'x');
    core::Result<sys::Listener> r = sys::OpenListener(Unix(path), 16);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().find("longer than the 107") != std::string::npos);
    CHECK(r.error().rfind("unix:" + path + ": path is ", 0) == 0);
    CHECK_FALSE(test::FileExists(path.substr(0, 107)));
  }
  SUBCASE("exactly 107 bytes is fine") {
    std::string path = dir.path() + "/";
    path += std::string(107 - path.size(), 's');
    REQUIRE(path.size() == 107);
    core::Result<sys::Listener> r = sys::OpenListener(Unix(path), 16);
    REQUIRE_MESSAGE(r.ok(), r.error());
    sys::Listener l = r.value();
    CHECK(ConnectUnix(path) == 0);
    sys::CloseListener(l);
  }
  SUBCASE("a regular file is never replaced") {
    const std::string path = dir.File("file");
    test::WriteFile(path, "precious");
    core::Result<sys::Listener> r = sys::OpenListener(Unix(path), 16);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "unix:" + path + " exists and is not a socket; refusing to replace it");
    CHECK(test::ReadFile(path) == "precious");
  }
  SUBCASE("missing directory") {
    const std::string path = dir.File("no/such/dir.sock");
    core::Result<sys::Listener> r = sys::OpenListener(Unix(path), 16);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "bind unix:" + path + ": No such file or directory");
  }
}

}  // namespace
}  // namespace einhorn
