// sys/sock_stats.h against real sockets: connections nobody accepts fill the accept queue, and
// the figures say so; UDP has no queue; the master's own figures come from /proc.
#include "sys/sock_stats.h"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/bind_spec.h"
#include "proc.h"
#include "sys/listeners.h"

namespace einhorn {
namespace {

// Connects `n` clients without anyone accepting them; they wait in the accept queue.
std::vector<int> Pending(const sys::Listener& l, int n) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  REQUIRE(getsockname(l.fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    const int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
    fds.push_back(fd);
  }
  return fds;
}

TEST_CASE("sock stats: a TCP listener's accept queue and backlog") {
  auto spec = core::ParseBindSpec("127.0.0.1:0");
  REQUIRE(spec.ok());
  auto l = sys::OpenListener(spec.value(), 7);
  REQUIRE(l.ok());
  auto empty = sys::ReadAcceptQueue(l.value().fd);
  REQUIRE(empty);
  CHECK(empty->length == 0);
  CHECK(empty->backlog == 7);
  const std::vector<int> clients = Pending(l.value(), 3);
  auto queued = sys::ReadAcceptQueue(l.value().fd);
  REQUIRE(queued);
  CHECK(queued->length == 3);
  CHECK(queued->backlog == 7);
  for (int fd : clients) close(fd);
  sys::Listener listener = l.value();
  sys::CloseListener(listener);
}

TEST_CASE("sock stats: a UNIX stream listener's queue through sock_diag") {
  test::TempDir dir;
  auto spec = core::ParseBindSpec("unix:" + dir.File("s.sock"));
  REQUIRE(spec.ok());
  auto l = sys::OpenListener(spec.value(), 5);
  REQUIRE(l.ok());
  const std::vector<int> clients = Pending(l.value(), 2);
  auto queued = sys::ReadAcceptQueue(l.value().fd);
  // The kernel answers only with unix_diag (CONFIG_UNIX_DIAG); this host must have it for the
  // figure to be tested at all, so its absence fails here rather than passing unnoticed.
  REQUIRE_MESSAGE(queued, "no UNIX_DIAG_RQLEN for the socket (is unix_diag loaded?)");
  CHECK(queued->length == 2);
  CHECK(queued->backlog == 5);
  for (int fd : clients) close(fd);
  sys::Listener listener = l.value();
  sys::CloseListener(listener);
}

TEST_CASE("sock stats: no queue for UDP, a connected socket or a file") {
  auto spec = core::ParseBindSpec("127.0.0.1:0");
  REQUIRE(spec.ok());
  const int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(udp >= 0);
  CHECK_FALSE(sys::ReadAcceptQueue(udp));
  close(udp);
  auto l = sys::OpenListener(spec.value(), 4);
  REQUIRE(l.ok());
  const std::vector<int> clients = Pending(l.value(), 1);
  CHECK_FALSE(sys::ReadAcceptQueue(clients[0]));  // not listening
  close(clients[0]);
  CHECK_FALSE(sys::ReadAcceptQueue(STDIN_FILENO));
  CHECK_FALSE(sys::ReadAcceptQueue(-1));
  sys::Listener listener = l.value();
  sys::CloseListener(listener);
}

TEST_CASE("sock stats: the process's resident memory, open fds and the host's listen drops") {
  const auto rss = sys::ResidentMemoryBytes();
  REQUIRE(rss);
  CHECK(*rss > 100'000);
  const auto before = sys::OpenFds();
  REQUIRE(before);
  const int fd = dup(STDERR_FILENO);
  REQUIRE(fd >= 0);
  CHECK(sys::OpenFds() == *before + 1);
  close(fd);
  CHECK(sys::OpenFds() == *before);
  CHECK(sys::ReadHostListenStats().has_value());
}

}  // namespace
}  // namespace einhorn
