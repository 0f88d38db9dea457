// The example HTTP worker under the master on every kind of bind, and a graceful drain.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <set>

#include "harness.h"

namespace einhorn::test {
namespace {

bool HasIpv6Loopback() {
  const int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

TEST_CASE("requests on IPv4 are answered by the pool's workers") {
  MasterRun m({"-n", "3", "-m", "0", "-b", "127.0.0.1:0,r"}, {EXAMPLE_HTTP_BIN});
  REQUIRE(m.WaitForLog("spawned worker"));
  const auto port = m.Port();
  REQUIRE(port.has_value());
  std::string body;
  REQUIRE(PollUntil([&] { return !(body = HttpGet("127.0.0.1", *port, 2s)).empty(); }, 10s));
  CHECK(IsChild(m.pid(), AnsweringPid(body)));
  for (int i = 0; i < 20; ++i) CHECK(IsChild(m.pid(), AnsweringPid(HttpGet("127.0.0.1", *port, 2s))));
}

TEST_CASE("IPv6 and UNIX listeners are passed down at fds 3 and 4 in -b order") {
  if (!HasIpv6Loopback()) {
    MESSAGE("skipped: no IPv6 loopback on this machine");
    return;
  }
  TempDir sockets;
  const std::string path = sockets.File("app.sock");
  MasterRun m({"-n", "1", "-m", "0", "-b", "[::1]:0", "-b", "unix:" + path},
              {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(m.WaitForWorkers(1));
  const auto port = m.Port();
  REQUIRE(port.has_value());
  const Report r = m.LiveWorkers().begin()->second;
  CHECK(r.at("EINHORN_FD_COUNT") == "2");
  CHECK(r.at("LISTEN_FDS") == "2");
  CHECK(r.at("sockname_3") == "[::1]:" + std::to_string(*port));
  CHECK(r.at("sockname_4") == "unix:" + path);
  CHECK(r.at("EINHORN_FD_FAMILY_0") == "AF_INET6");
  CHECK(r.at("EINHORN_FD_FAMILY_1") == "AF_UNIX");
  CHECK(r.at("fds") == "0 1 2 3 4");
}

TEST_CASE("the example worker serves on IPv6 and on a UNIX path, which is removed at exit") {
  TempDir sockets;
  const std::string path = sockets.File("web.sock");
  {
    MasterRun m({"-n", "2", "-m", "0", "-b", "unix:" + path}, {EXAMPLE_HTTP_BIN});
    std::string body;
    REQUIRE(PollUntil([&] { return !(body = HttpGetUnix(path, 2s)).empty(); }, 10s));
    CHECK(IsChild(m.pid(), AnsweringPid(body)));
    REQUIRE(m.process().Signal(SIGTERM));
    REQUIRE(m.process().WaitExit(10s).has_value());
    CHECK_FALSE(FileExists(path));
  }
  if (HasIpv6Loopback()) {
    MasterRun m({"-n", "1", "-m", "0", "-b", "[::1]:0,r"}, {EXAMPLE_HTTP_BIN});
    REQUIRE(m.WaitForLog("listening on [::1]"));
    const int port = *m.Port();
    std::string body;
    REQUIRE(PollUntil([&] { return !(body = HttpGet("::1", port, 2s)).empty(); }, 10s));
    CHECK(IsChild(m.pid(), AnsweringPid(body)));
  }
}

TEST_CASE("a stale UNIX socket file is replaced") {
  TempDir sockets;
  const std::string path = sockets.File("stale.sock");
  {
    // A master killed with SIGKILL leaves its socket file behind.
    MasterRun m({"-n", "1", "-m", "0", "-b", "unix:" + path}, {TEST_WORKER_BIN});
    REQUIRE(PollUntil([&] { return FileExists(path); }, 10s));
    m.process().Kill();
  }
  REQUIRE(FileExists(path));
  MasterRun m({"-n", "1", "-m", "0", "-b", "unix:" + path}, {EXAMPLE_HTTP_BIN});
  std::string body;
  REQUIRE(PollUntil([&] { return !(body = HttpGetUnix(path, 2s)).empty(); }, 10s));
  CHECK(IsChild(m.pid(), AnsweringPid(body)));
}

TEST_CASE("draining lets an in-flight request finish") {
  MasterRun m({"-n", "1", "-m", "0", "-b", "127.0.0.1:0"}, {EXAMPLE_HTTP_BIN, "--delay-ms", "700"});
  // The worker announces itself on stderr (the master's log) once it is ready to accept.
  REQUIRE(m.WaitForLog("serving on fd"));
  const int port = *m.Port();
  const auto children = ChildrenOf(m.pid());
  REQUIRE(children.size() == 1);
  const pid_t worker = children[0];
  const size_t idle_fds = OpenFds(worker);
  REQUIRE(idle_fds >= 4);
  auto response =
      std::async(std::launch::async, [port] { return HttpGetRaw("127.0.0.1", port, 10s); });
  // The accepted connection is one more fd in the worker: the request is now in flight.
  REQUIRE(PollUntil([&] { return OpenFds(worker) > idle_fds; }, 10s));
  REQUIRE(m.process().Signal(SIGINT));
  const std::string raw = response.get();
  CHECK(raw.rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(raw.find("hello from worker " + std::to_string(worker)) != std::string::npos);
  const auto status = m.process().WaitExit(10s);
  REQUIRE(status.has_value());
  CHECK(status->code == 0);
  CHECK(m.LogHas("exited with exit 0"));
}

}  // namespace
}  // namespace einhorn::test
