// The master under a service manager: a datagram socket in the test stands in for systemd's
// NOTIFY_SOCKET and records what the master says (READY, RELOADING, STATUS, STOPPING,
// WATCHDOG) and from which pid (SCM_CREDENTIALS, as systemd checks NotifyAccess=main).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <thread>

#include "control_client.h"
#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

struct Notification {
  pid_t sender = 0;
  std::string text;
  std::chrono::steady_clock::time_point at;
};

// A fake systemd: a SOCK_DGRAM socket with SO_PASSCRED, read by a thread.
class FakeServiceManager {
 public:
  explicit FakeServiceManager(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof a.sun_path);
    path.copy(a.sun_path, path.size());
    // "@name": the abstract namespace, as NOTIFY_SOCKET writes it.
    socklen_t len = sizeof a;
    if (path[0] == '@') {
      a.sun_path[0] = '\0';
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
    }
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), len) == 0);
    const int one = 1;
    REQUIRE(setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) == 0);
    timeval tv{0, 100 * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    thread_ = std::thread([this] { Run(); });
  }
  ~FakeServiceManager() {
    stop_ = true;
    thread_.join();
    close(fd_);
    if (path_[0] != '@') unlink(path_.c_str());
  }
  std::string env() const { return "NOTIFY_SOCKET=" + path_; }

  std::vector<Notification> Got() const {
    std::lock_guard<std::mutex> lock(mu_);
    return got_;
  }
  // The first message at or after `from` with a line equal to `line`.
  std::optional<Notification> Find(const std::string& line, size_t from = 0) const {
    const auto all = Got();
    for (size_t i = from; i < all.size(); ++i) {
      if (HasLine(all[i].text, line)) return all[i];
    }
    return std::nullopt;
  }
  size_t Count(const std::string& line) const {
    size_t n = 0;
    for (const auto& m : Got()) n += HasLine(m.text, line) ? 1 : 0;
    return n;
  }
  static bool HasLine(const std::string& text, const std::string& line) {
    return ("\n" + text + "\n").find("\n" + line + "\n") != std::string::npos;
  }
  static std::string Field(const std::string& text, const std::string& key) {
    const std::string t = "\n" + text + "\n";
    const size_t at = t.find("\n" + key + "=");
    if (at == std::string::npos) return "";
    const size_t start = at + key.size() + 2;
    return t.substr(start, t.find('\n', start) - start);
  }

 private:
  void Run() {
    while (!stop_) {
      char buf[4096];
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
      iovec iov{buf, sizeof buf};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      const ssize_t n = recvmsg(fd_, &msg, 0);
      if (n <= 0) continue;
      Notification note;
      note.text.assign(buf, static_cast<size_t>(n));
      note.at = std::chrono::steady_clock::now();
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
          ucred cred;
          memcpy(&cred, CMSG_DATA(c), sizeof cred);
          note.sender = cred.pid;
        }
      }
      std::lock_guard<std::mutex> lock(mu_);
      got_.push_back(std::move(note));
    }
  }

  std::string path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<Notification> got_;
  std::thread thread_;
};

std::string Environ(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_CASE("systemd: READY=1 once the pool is ready, from the master's pid, never to workers") {
  TempDir d;
  FakeServiceManager sm(d.File("notify"));
  MasterRun m({"-n", "3", "-m", "0.2"}, {TEST_WORKER_BIN}, {sm.env()});
  REQUIRE(PollUntil([&] { return sm.Find("READY=1").has_value(); }, 10s));
  const Notification ready = *sm.Find("READY=1");
  CHECK(ready.sender == m.pid());
  CHECK(FakeServiceManager::Field(ready.text, "STATUS") == "3/3 ready, generation 1");
  // STATUS= came before, while the workers were booting. (Not necessarily the first one: the
  // master says its status before its first turn forks any worker, issue 20.)
  bool booting_before_ready = false;
  for (const Notification& n : sm.Got()) {
    if (FakeServiceManager::HasLine(n.text, "READY=1")) break;
    booting_before_ready = booting_before_ready ||
                           FakeServiceManager::Field(n.text, "STATUS").find("booting") !=
                               std::string::npos;
  }
  CHECK(booting_before_ready);
  CHECK(sm.Count("READY=1") == 1);
  // The service manager's socket is the master's alone.
  const auto st = Status(m);
  REQUIRE(st);
  REQUIRE(st->workers.size() == 3);
  for (const auto& w : st->workers) {
    CHECK(Environ(w.pid).find("NOTIFY_SOCKET=") == std::string::npos);
  }
}

TEST_CASE("systemd: an abstract NOTIFY_SOCKET (@name) is told as a path is") {
  FakeServiceManager sm("@einhorn-cpp-test/" + std::to_string(getpid()) + "/notify");
  MasterRun m({"-n", "2", "-m", "0"}, {TEST_WORKER_BIN}, {sm.env()});
  REQUIRE(PollUntil([&] { return sm.Find("READY=1").has_value(); }, 10s));
  CHECK(sm.Find("READY=1")->sender == m.pid());
}

TEST_CASE("systemd: a NOTIFY_SOCKET that leads nowhere or to no datagram socket stops nothing") {
  TempDir d;
  // A stream socket where a datagram one is expected, a FIFO, a plain file, a missing path, a
  // relative one, an abstract name nobody holds, and a path longer than sun_path.
  const int stream = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(stream >= 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const std::string stream_path = d.File("stream");
  stream_path.copy(a.sun_path, stream_path.size());
  REQUIRE(bind(stream, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(stream, 4) == 0);
  REQUIRE(mkfifo(d.File("fifo").c_str(), 0600) == 0);
  WriteFile(d.File("file"), "not a socket");
  for (const std::string& where :
       {stream_path, d.File("fifo"), d.File("file"), d.File("missing"), std::string("relative"),
        "@einhorn-cpp-test/nobody/" + std::to_string(getpid()), "/" + std::string(200, 'x')}) {
    INFO("NOTIFY_SOCKET=" << where);
    MasterRun m({"-n", "2", "-m", "0"}, {TEST_WORKER_BIN},
                {"NOTIFY_SOCKET=" + where, "WATCHDOG_USEC=20000"});
    REQUIRE(PollUntil([&] { return Status(m) && Status(m)->ready == 2; }, 10s));
    CHECK(Status(m)->workers.size() == 2);
  }
  close(stream);
}

TEST_CASE("systemd: an upgrade and a reload are RELOADING=1 then READY=1, a stop STOPPING=1") {
  TempDir d;
  FakeServiceManager sm(d.File("notify"));
  MasterRun m({"-n", "2", "-m", "0.1"}, {TEST_WORKER_BIN}, {sm.env()});
  REQUIRE(PollUntil([&] { return sm.Find("READY=1").has_value(); }, 10s));

  // upgrade: reload, then a new generation.
  size_t mark = sm.Got().size();
  ControlClient c(Sock(m));
  REQUIRE(c.Send("{\"id\": 1, \"command\": \"upgrade\"}\n"));
  std::optional<core::wire::Reply> r;
  while ((r = c.ReadReply(20s)) && r->wait) {
  }
  REQUIRE(r);
  CHECK(r->message == "Upgrade done");
  REQUIRE(PollUntil([&] { return sm.Find("READY=1", mark).has_value(); }, 10s));
  const auto reloading = sm.Find("RELOADING=1", mark);
  REQUIRE(reloading);
  const std::string usec = FakeServiceManager::Field(reloading->text, "MONOTONIC_USEC");
  CHECK_FALSE(usec.empty());
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  CHECK(std::stoll(usec) <= static_cast<long long>(now.tv_sec) * 1'000'000 + now.tv_nsec / 1000);
  const auto ready = sm.Find("READY=1", mark);
  CHECK(reloading->at <= ready->at);
  CHECK(ready->sender == m.pid());
  // The last old worker may still be draining.
  const std::string status = FakeServiceManager::Field(ready->text, "STATUS");
  CHECK(status.rfind("2/2 ready, ", 0) == 0);
  CHECK(status.find("generation 2") != std::string::npos);
  CHECK(status.find("upgrading") == std::string::npos);

  // reload alone.
  mark = sm.Got().size();
  REQUIRE(ControlClient(Sock(m)).Ask("{\"command\": \"reload\"}\n"));
  REQUIRE(PollUntil([&] { return sm.Find("READY=1", mark).has_value(); }, 10s));
  REQUIRE(sm.Find("RELOADING=1", mark));
  CHECK(sm.Find("READY=1", mark)->sender == m.pid());
  const auto st = Status(m);
  REQUIRE(st);
  CHECK(st->reloads == 2);

  mark = sm.Got().size();
  REQUIRE(m.process().Signal(SIGTERM));
  REQUIRE(PollUntil([&] { return sm.Find("STOPPING=1", mark).has_value(); }, 10s));
  CHECK(m.process().WaitExit(10s).has_value());
}

TEST_CASE("systemd: a failed upgrade check still ends the reload with READY=1 and says why") {
  TempDir d;
  FakeServiceManager sm(d.File("notify"));
  WriteFile(d.File("bad.sh"), "#!/bin/sh\necho nope >&2\nexit 1\n", 0755);
  MasterRun m({"-n", "1", "-m", "0", "--reexec-as", d.File("bad.sh")}, {TEST_WORKER_BIN},
              {sm.env()});
  REQUIRE(PollUntil([&] { return sm.Find("READY=1").has_value(); }, 10s));
  const size_t mark = sm.Got().size();
  REQUIRE(ControlClient(Sock(m)).Ask("{\"command\": \"reload\"}\n"));
  REQUIRE(PollUntil([&] { return sm.Find("READY=1", mark).has_value(); }, 10s));
  REQUIRE(sm.Find("RELOADING=1", mark));
  const std::string status = FakeServiceManager::Field(sm.Find("READY=1", mark)->text, "STATUS");
  CHECK(status.find("reload failed: the upgrade check of") != std::string::npos);
  CHECK(status.find("nope") != std::string::npos);
}

TEST_CASE("systemd: WATCHDOG=1 at half of WATCHDOG_USEC, also after a reload") {
  TempDir d;
  FakeServiceManager sm(d.File("notify"));
  MasterRun m({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN}, {sm.env(), "WATCHDOG_USEC=200000"});
  REQUIRE(PollUntil([&] { return sm.Count("WATCHDOG=1") >= 3; }, 5s));
  for (const auto& n : sm.Got()) {
    if (FakeServiceManager::HasLine(n.text, "WATCHDOG=1")) CHECK(n.sender == m.pid());
  }
  REQUIRE(ControlClient(Sock(m)).Ask("{\"command\": \"reload\"}\n"));
  REQUIRE(PollUntil([&] { return Status(m) && Status(m)->reloads == 1; }, 10s));
  const size_t before = sm.Count("WATCHDOG=1");
  CHECK(PollUntil([&] { return sm.Count("WATCHDOG=1") >= before + 3; }, 5s));
}

TEST_CASE("systemd: a watchdog meant for another pid (WATCHDOG_PID) is not fed") {
  TempDir d;
  FakeServiceManager sm(d.File("notify"));
  MasterRun m({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN},
              {sm.env(), "WATCHDOG_USEC=100000", "WATCHDOG_PID=1"});
  REQUIRE(PollUntil([&] { return sm.Find("READY=1").has_value(); }, 10s));
  // Eight periods at the rate it would use (every 50 ms) without one WATCHDOG=1.
  CHECK_FALSE(PollUntil([&] { return sm.Count("WATCHDOG=1") > 0; }, 400ms));
}

}  // namespace
}  // namespace einhorn::test
