// sys/stand_in.h: a real forked stand-in on a real listening socket, real clients; each test
// reads what the stand-in handed over on its channel, as the new image would.
#include "sys/stand_in.h"

#include <doctest/doctest.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sys_test_util.h"

namespace einhorn {
namespace {

using namespace std::chrono_literals;
using test::ChildGuard;

struct Listening {
  std::string dir;
  std::string path;
  sys::UniqueFd fd;
  ~Listening() {
    unlink(path.c_str());
    rmdir(dir.c_str());
  }
};

void Listen(Listening& l) {
  char dir[] = "/tmp/stand-in-test-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  l.dir = dir;
  l.path = l.dir + "/s.sock";
  l.fd.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, l.path.c_str());
  REQUIRE(bind(l.fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(l.fd.get(), 64) == 0);
}

sys::UniqueFd Connect(const std::string& path) {
  sys::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  REQUIRE(connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

// Up to the first '\n' (or EOF), within 5 s.
std::string ReadLine(int fd) {
  std::string out;
  char c;
  while (out.find('\n') == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) break;
    if (read(fd, &c, 1) != 1) break;
    out += c;
  }
  return out;
}

// The next handed-over connection, waiting up to 5 s.
std::optional<sys::HandedConnection> NextHanded(int channel) {
  for (int i = 0; i < 2500; ++i) {
    sys::HandedConnection h;
    const sys::HandOverRead r = sys::ReceiveHanded(channel, &h);
    if (r == sys::HandOverRead::kConnection) return h;
    if (r == sys::HandOverRead::kEnd) return std::nullopt;
    sys::WaitForHanded(channel, 2ms);
  }
  return std::nullopt;
}

bool ChannelEnds(int channel) {
  sys::HandedConnection h;
  for (int i = 0; i < 2500; ++i) {
    const sys::HandOverRead r = sys::ReceiveHanded(channel, &h);
    if (r == sys::HandOverRead::kEnd) return true;
    if (r == sys::HandOverRead::kConnection) return false;
    sys::WaitForHanded(channel, 2ms);
  }
  return false;
}

size_t OpenFds() {
  size_t n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n;
}

char StateOf(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) return '\0';
  char buf[512] = {};
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const char* close_paren = std::strrchr(buf, ')');
  return (n > 0 && close_paren != nullptr && close_paren[1] == ' ') ? close_paren[2] : '\0';
}

// One message as the test writes it: `data`, and `fds` as SCM_RIGHTS (none: no control part).
void SendRaw(int channel, const std::string& data, const std::vector<int>& fds) {
  iovec iov{const_cast<char*>(data.data()), data.size()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  REQUIRE(sendmsg(channel, &msg, 0) == static_cast<ssize_t>(data.size()));
}

// Answers "ping" (the whole line) with "pong\n"; declines anything else.
std::optional<std::string> Pong(int, std::string_view bytes) {
  if (bytes == "ping\n") return std::string("pong\n");
  return std::nullopt;
}

TEST_CASE("stand-in: answers what it may, hands over the rest with what it read, in order") {
  Listening l;
  Listen(l);
  auto started = sys::StartStandIn(l.fd.get(), Pong);
  REQUIRE(started.ok());
  ChildGuard guard(started.value().pid);
  const int channel = started.value().channel.get();

  // Answered, then handed over with nothing pending: the client may go on on it.
  sys::UniqueFd a = Connect(l.path);
  REQUIRE(write(a.get(), "ping\n", 5) == 5);
  CHECK(ReadLine(a.get()) == "pong\n");
  auto ha = NextHanded(channel);
  REQUIRE(ha.has_value());
  CHECK(ha->bytes.empty());
  REQUIRE(write(ha->fd.get(), "same connection\n", 16) == 16);
  CHECK(ReadLine(a.get()) == "same connection\n");

  // Another request: handed over as read.
  sys::UniqueFd b = Connect(l.path);
  REQUIRE(write(b.get(), "inc\n", 4) == 4);
  auto hb = NextHanded(channel);
  REQUIRE(hb.has_value());
  CHECK(hb->bytes == "inc\n");

  // Two requests in one write: not answered, both handed over (their replies keep order).
  sys::UniqueFd c = Connect(l.path);
  REQUIRE(write(c.get(), "ping\nping\n", 10) == 10);
  auto hc = NextHanded(channel);
  REQUIRE(hc.has_value());
  CHECK(hc->bytes == "ping\nping\n");

  // Half a line: handed over after the read wait, the rest comes on the connection itself.
  sys::UniqueFd d = Connect(l.path);
  REQUIRE(write(d.get(), "pi", 2) == 2);
  auto hd = NextHanded(channel);
  REQUIRE(hd.has_value());
  CHECK(hd->bytes == "pi");
  REQUIRE(write(d.get(), "ng\n", 3) == 3);
  char rest[3];
  REQUIRE(read(hd->fd.get(), rest, 3) == 3);
  CHECK(std::string(rest, 3) == "ng\n");

  // Silent, and gone at once: handed over all the same (the new image sees the EOF).
  { sys::UniqueFd e = Connect(l.path); }
  auto he = NextHanded(channel);
  REQUIRE(he.has_value());
  CHECK(he->bytes.empty());

  // More than max_read without a line.
  sys::UniqueFd f = Connect(l.path);
  const std::string big(10000, 'x');
  REQUIRE(write(f.get(), big.data(), big.size()) == static_cast<ssize_t>(big.size()));
  auto hf = NextHanded(channel);
  REQUIRE(hf.has_value());
  CHECK(hf->bytes == std::string(4096, 'x'));

  // Stopped: it exits, and the channel ends.
  sys::StopStandIn(channel);
  CHECK(ChannelEnds(channel));
  const auto status = guard.Wait(5000ms);
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  // Once stopped, connections wait in the backlog for the next image.
  sys::UniqueFd g = Connect(l.path);
  REQUIRE(write(g.get(), "ping\n", 5) == 5);
  pollfd p{g.get(), POLLIN, 0};
  CHECK(poll(&p, 1, 50) == 0);
  sys::UniqueFd queued(accept4(l.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  CHECK(queued.valid());
}

TEST_CASE("stand-in: gives up by itself when the new image never speaks") {
  Listening l;
  Listen(l);
  sys::StandInLimits limits;
  limits.give_up = 50ms;
  auto started = sys::StartStandIn(l.fd.get(), Pong, limits);
  REQUIRE(started.ok());
  ChildGuard guard(started.value().pid);
  CHECK(ChannelEnds(started.value().channel.get()));
  CHECK(guard.Wait(5000ms).has_value());
}

TEST_CASE("stand-in: a reader that does not take its reply is dropped after write_wait") {
  Listening l;
  Listen(l);
  sys::StandInLimits limits;
  limits.write_wait = 50ms;
  const std::string huge(8 << 20, 'y');
  auto started = sys::StartStandIn(
      l.fd.get(),
      [&](int, std::string_view bytes) {
        return bytes == "ping\n" ? std::optional<std::string>(huge) : std::nullopt;
      },
      limits);
  REQUIRE(started.ok());
  ChildGuard guard(started.value().pid);
  const int channel = started.value().channel.get();
  sys::UniqueFd slow = Connect(l.path);
  REQUIRE(write(slow.get(), "ping\n", 5) == 5);
  // Not handed over (its reply is cut), and the stand-in goes on with the next one.
  sys::UniqueFd next = Connect(l.path);
  REQUIRE(write(next.get(), "inc\n", 4) == 4);
  auto h = NextHanded(channel);
  REQUIRE(h.has_value());
  CHECK(h->bytes == "inc\n");
  sys::StopStandIn(channel);
  CHECK(ChannelEnds(channel));
}

TEST_CASE("stand-in: the channel's reader drops malformed messages and closes their fds") {
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  sys::UniqueFd ours(sv[0]), theirs(sv[1]);
  REQUIRE(fcntl(ours.get(), F_SETFL, O_NONBLOCK) == 0);
  const size_t before = OpenFds();
  {
    sys::UniqueFd pipe_r, pipe_w;
    int p[2];
    REQUIRE(pipe2(p, O_CLOEXEC) == 0);
    pipe_r.reset(p[0]);
    pipe_w.reset(p[1]);
    SendRaw(theirs.get(), "Cbytes", {});                        // no fd
    SendRaw(theirs.get(), "Cx", {pipe_r.get(), pipe_w.get()});  // two
    SendRaw(theirs.get(), "Zx", {pipe_r.get()});                // another tag
    SendRaw(theirs.get(), "Cx", {pipe_r.get()});                // well-formed
    REQUIRE(sys::SendHanded(theirs.get(), pipe_w.get(), "last"));
  }
  sys::HandedConnection h;
  REQUIRE(sys::ReceiveHanded(ours.get(), &h) == sys::HandOverRead::kConnection);
  CHECK(h.bytes == "x");
  h = {};
  REQUIRE(sys::ReceiveHanded(ours.get(), &h) == sys::HandOverRead::kConnection);
  CHECK(h.bytes == "last");
  h = {};
  CHECK(sys::ReceiveHanded(ours.get(), &h) == sys::HandOverRead::kNone);
  // Every fd that arrived is closed, kept or dropped.
  CHECK(OpenFds() == before);
  theirs.reset();
  CHECK(sys::ReceiveHanded(ours.get(), &h) == sys::HandOverRead::kEnd);
}

TEST_CASE("stand-in: the new image takes only an AF_UNIX SOCK_SEQPACKET socket as its channel") {
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  sys::UniqueFd a(sv[0]), b(sv[1]);
  CHECK(sys::IsHandOverChannel(a.get()));
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  sys::UniqueFd c(sv[0]), d(sv[1]);
  CHECK_FALSE(sys::IsHandOverChannel(c.get()));
  int p[2];
  REQUIRE(pipe2(p, O_CLOEXEC) == 0);
  sys::UniqueFd r(p[0]), w(p[1]);
  CHECK_FALSE(sys::IsHandOverChannel(r.get()));
  CHECK_FALSE(sys::IsHandOverChannel(-1));
  CHECK_FALSE(sys::IsHandOverChannel(9999));
}

TEST_CASE("stand-in: it dies with the process that started it") {
  Listening l;
  Listen(l);
  int report[2];
  REQUIRE(pipe2(report, O_CLOEXEC) == 0);
  const pid_t middle = fork();
  REQUIRE(middle >= 0);
  if (middle == 0) {
    auto started = sys::StartStandIn(l.fd.get(), Pong);
    const pid_t pid = started.ok() ? started.value().pid : -1;
    (void)!write(report[1], &pid, sizeof pid);
    _exit(0);
  }
  ChildGuard middle_guard(middle);
  close(report[1]);
  pid_t stand_in = -1;
  REQUIRE(read(report[0], &stand_in, sizeof stand_in) == sizeof stand_in);
  close(report[0]);
  REQUIRE(stand_in > 0);
  REQUIRE(middle_guard.Wait(5000ms).has_value());
  // Not our child: gone, or a zombie that init has yet to reap.
  bool gone = false;
  for (int i = 0; i < 2500 && !gone; ++i) {
    gone = kill(stand_in, 0) != 0 || StateOf(stand_in) == 'Z';
    if (!gone) usleep(2000);
  }
  CHECK(gone);
}

}  // namespace
}  // namespace einhorn
