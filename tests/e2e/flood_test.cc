// Floods from users who may not talk to the master (issue 14, items 5, 6 and 8): a refused peer
// connecting 20,000 times, 10,000 forged datagrams on a worker's NOTIFY_SOCKET. The log stays
// a handful of lines, the audit record of changes survives in the event ring, a forged READY=1
// or WATCHDOG=1 counts for nothing, and a refused einhornctl says why every time.
#include <doctest/doctest.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "control_client.h"
#include "core/events.h"
#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

constexpr uid_t kNobody = 65534;

// Runs `body` in a child process, as nobody when `as_nobody`; returns its exit code.
int InChild(bool as_nobody, const std::function<int()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (as_nobody && (setgroups(0, nullptr) != 0 || setgid(kNobody) != 0 ||
                      setuid(kNobody) != 0)) {
      _exit(99);
    }
    _exit(body());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 98;
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = 0; (at = text.find(needle, at)) != std::string::npos; at += needle.size()) ++n;
  return n;
}

std::string EnvOf(pid_t pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), {});
  std::istringstream entries(all);
  for (std::string entry; std::getline(entries, entry, '\0');) {
    if (entry.rfind(name + "=", 0) == 0) return entry.substr(name.size() + 1);
  }
  return "";
}

// Sends `count` datagrams to the abstract address "@name" (NOTIFY_SOCKET's spelling); returns
// how many went out.
int SendDatagrams(const std::string& address, const std::string& msg, int count) {
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  address.copy(a.sun_path + 1, address.size() - 1, 1);
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
  int sent = 0;
  for (int i = 0; i < count; ++i) {
    // Blocking: when the master's queue is full the sender waits, so every one arrives.
    if (sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&a), len) ==
        static_cast<ssize_t>(msg.size())) {
      ++sent;
    }
  }
  close(fd);
  return sent;
}

std::optional<core::EventsReply> Events(const MasterRun& m) {
  ControlClient c(Sock(m));
  const auto r = c.Ask("{\"id\": 1, \"command\": \"events\"}\n", 10s);
  if (!r || r->error) return std::nullopt;
  auto parsed = core::EventsReplyFromYaml(r->message);
  if (!parsed.ok()) return std::nullopt;
  return parsed.value();
}

TEST_CASE("flood: 20,000 refused connections write a few lines and keep root's audit events") {
  if (getuid() != 0) {
    MESSAGE("skipped: needs root to act as another user");
    return;
  }
  // The socket is 0666 (another uid is allowed), but nobody is not that uid.
  MasterRun m({"-n", "1", "-m", "0", "--control-allow-uid", "1"}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return Status(m) && Status(m)->ready == 1; }, 10s));
  chmod(m.dir().path().c_str(), 0755);
  {
    ControlClient root(Sock(m));
    const auto r = root.Ask("{\"id\": 1, \"command\": \"inc\"}\n");
    REQUIRE(r);
    CHECK_FALSE(r->error);
  }
  REQUIRE(PollUntil([&] { return Status(m) && Status(m)->ready == 2; }, 10s));
  constexpr int kFlood = 20000;
  const std::string path = Sock(m);
  const int code = InChild(true, [&] {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    path.copy(a.sun_path, path.size());
    for (int i = 0; i < kFlood; ++i) {
      const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) return 2;
      if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 3;
      close(fd);
    }
    return 0;
  });
  REQUIRE(code == 0);
  // Every one was refused (the counter), and the log has the 1st, 10th, 100th... only.
  REQUIRE(PollUntil(
      [&] {
        const auto st = Status(m);
        return st.has_value() && m.LogHas("refused uid 65534") &&
               Count(m.Log(), "command socket: refused uid 65534") >= 5;
      },
      30s));
  const size_t lines = Count(m.Log(), "command socket: refused");
  MESSAGE(kFlood << " refused connections gave " << lines << " log lines");
  CHECK(lines <= 8);
  // Root's change is still in the ring, before the refusals, in sequence order.
  const auto events = Events(m);
  REQUIRE(events);
  bool inc = false, resize = false;
  size_t refusals = 0;
  for (size_t i = 0; i < events->events.size(); ++i) {
    const core::Event& e = events->events[i];
    if (i > 0) CHECK(e.seq > events->events[i - 1].seq);
    inc = inc || (e.kind == core::EventKind::kControl && e.detail == "inc");
    resize = resize || e.kind == core::EventKind::kResize;
    refusals += e.kind == core::EventKind::kControlRefused ? 1 : 0;
  }
  CHECK(inc);
  CHECK(resize);
  CHECK(refusals > 0);
  CHECK(events->events.size() <= core::EventRing::kDefaultCapacity);
  // einhornctl events shows them too, and says that refusals were left out.
  const Finished shown = RunProgram({EINHORNCTL_BIN, "-d", Sock(m), "events"}, 20s);
  CHECK(shown.status.code == 0);
  CHECK(shown.out.find("control") != std::string::npos);
  CHECK(shown.out.find(" inc by uid 0") != std::string::npos);
  // Once the flood has stopped for 10 s, one line sums it up.
  CHECK(m.WaitForLog("peers without permission in all over", 30s));
  const std::string log = m.Log();
  const size_t at = log.find("command socket: refused 20000 peers without permission in all");
  CHECK(at != std::string::npos);
  CHECK(m.process().running());
}

TEST_CASE("flood: forged READY=1 from another process and another uid is dropped, the log bounded") {
  if (getuid() != 0) {
    MESSAGE("skipped: needs root to act as another user");
    return;
  }
  // A worker that never says READY=1.
  MasterRun m({"-n", "1", "-m", "notify"}, {"/bin/sh", "-c", "exec sleep 1000"});
  REQUIRE(PollUntil([&] { return Status(m) && Status(m)->workers.size() == 1; }, 10s));
  const pid_t worker = Status(m)->workers[0].pid;
  std::string address;
  REQUIRE(PollUntil([&] { return !(address = EnvOf(worker, "NOTIFY_SOCKET")).empty(); }, 5s));
  REQUIRE(address.rfind('@', 0) == 0);
  // Another process of the same uid, then nobody: 10,000 datagrams between them.
  CHECK(InChild(false, [&] { return SendDatagrams(address, "READY=1", 5000) == 5000 ? 0 : 1; }) ==
        0);
  CHECK(InChild(true, [&] {
          return SendDatagrams(address, "READY=1\nWATCHDOG=1\nSTATUS=spoofed", 5000) == 5000 ? 0
                                                                                             : 1;
        }) == 0);
  REQUIRE(m.WaitForLog("ignoring a message from pid"));
  const bool nobody_logged = m.WaitForLog("uid 65534, which is not that worker");
  if (!nobody_logged) MESSAGE("the master's log:\n" << m.Log());  // it failed once under load
  CHECK(nobody_logged);
  // The master has read them all once a probe from the same sender is answered by a line of
  // the next run, or simply: status answers and nothing was acked.
  const auto st = Status(m);
  REQUIRE(st);
  CHECK(st->ready == 0);
  CHECK(st->workers[0].notify_status.value_or("") != "spoofed");
  const size_t lines = Count(m.Log(), "NOTIFY_SOCKET");
  MESSAGE("10000 forged datagrams gave " << lines << " log lines");
  CHECK(lines >= 1);
  CHECK(lines <= 12);
  // Every one was read and dropped: the run's sum counts them all, in one more line.
  const bool summed = m.WaitForLog("NOTIFY_SOCKET: ignored 10000 messages in all", 30s);
  if (!summed && nobody_logged) MESSAGE("the master's log:\n" << m.Log());
  CHECK(summed);
  CHECK(Count(m.Log(), "NOTIFY_SOCKET") <= 12);
  CHECK(Status(m)->ready == 0);
}

TEST_CASE("flood: a forged WATCHDOG=1 from nobody does not keep a hung worker alive") {
  if (getuid() != 0) {
    MESSAGE("skipped: needs root to act as another user");
    return;
  }
  if (access("/usr/bin/systemd-notify", X_OK) != 0) {
    MESSAGE("skipped: no systemd-notify (Debian package systemd)");
    return;
  }
  TempDir d;
  const std::string script = d.File("hung.sh");
  WriteFile(script, "#!/bin/sh\n/usr/bin/systemd-notify --ready\nexec sleep 1000\n", 0755);
  MasterRun m({"-n", "1", "-m", "notify", "--worker-watchdog", "2", "-t", "1"},
              {"/bin/sh", script});
  REQUIRE(PollUntil([&] { return Status(m) && Status(m)->ready == 1; }, 15s));
  const pid_t worker = Status(m)->workers[0].pid;
  const std::string address = EnvOf(worker, "NOTIFY_SOCKET");
  REQUIRE(address.rfind('@', 0) == 0);
  // WATCHDOG=1 from nobody every 10 ms until the master aborts the worker anyway.
  const pid_t feeder = fork();
  if (feeder == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(kNobody) != 0 || setuid(kNobody) != 0) _exit(99);
    for (int i = 0; i < 3000; ++i) {
      SendDatagrams(address, "WATCHDOG=1", 1);
      usleep(10'000);
    }
    _exit(0);
  }
  const bool aborted =
      PollUntil([&] { return Status(m) && Status(m)->watchdog_timeouts >= 1; }, 15s);
  kill(feeder, SIGKILL);
  waitpid(feeder, nullptr, 0);
  CHECK(aborted);
  CHECK(m.LogHas("uid 65534, which is not that worker"));
  CHECK(Count(m.Log(), "ignoring a message from pid") <= 8);
}

TEST_CASE("flood: a refused einhornctl prints the master's reason and exits 1, every time") {
  if (getuid() != 0) {
    MESSAGE("skipped: needs root to act as another user");
    return;
  }
  if (access("/usr/bin/setpriv", X_OK) != 0) {
    MESSAGE("skipped: no setpriv (Debian package util-linux)");
    return;
  }
  MasterRun m({"-n", "1", "-m", "0", "--control-allow-uid", "1"}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return Status(m).has_value(); }, 10s));
  chmod(m.dir().path().c_str(), 0755);
  int right = 0;
  for (int i = 0; i < 20; ++i) {
    const Finished f = RunProgram({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                                   "--clear-groups", EINHORNCTL_BIN, "-d", Sock(m), "status"},
                                  20s);
    const bool ok = f.status.code == 1 &&
                    (f.out + f.err).find("Permission denied: uid 65534") != std::string::npos;
    if (!ok) MESSAGE("run " << i << ": exit " << f.status.code << ": " << f.out << f.err);
    right += ok ? 1 : 0;
  }
  CHECK(right == 20);
  // ack, which gets no reply when it is taken, shows the refusal too.
  const Finished ack = RunProgram({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                                   "--clear-groups", EINHORNCTL_BIN, "-d", Sock(m), "ack", "1"},
                                  20s);
  CHECK(ack.status.code == 1);
  CHECK((ack.out + ack.err).find("Permission denied") != std::string::npos);
}

TEST_CASE("flood: 500 allowed peers sending over-long lines write a few lines, and a sum") {
  MasterRun m({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN});
  REQUIRE(PollUntil([&] { return Status(m).has_value(); }, 10s));
  constexpr int kPeers = 500;
  const std::string path = Sock(m);
  const std::string line(core::wire::kMaxLineBytes + 1, 'x');
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  path.copy(a.sun_path, path.size());
  int sent = 0;
  for (int i = 0; i < kPeers; ++i) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        send(fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size())) {
      ++sent;
    }
    close(fd);
  }
  REQUIRE(sent > kPeers / 2);
  // The run ends 10 s after the last peer; its sum names how many were closed in all.
  REQUIRE(PollUntil([&] { return m.LogHas("misbehaving peers in all"); }, 30s));
  const size_t lines = Count(m.Log(), "bytes; closing it");
  MESSAGE(sent << " peers with over-long lines gave " << lines << " log lines");
  CHECK(lines >= 1);
  CHECK(lines <= 8);
  CHECK(Status(m).has_value());
}

// Every turn of the loop spends a slice on spawns, whatever else it did: a peer that connects
// at every turn slows a start (each connection costs the master, and the flooding thread takes
// a core), but cannot stop it. One thread, so that the tests ctest runs beside it keep a core.
TEST_CASE("flood: connections at every turn of the loop do not stop a start") {
  constexpr int kWorkers = 100;
  MasterRun m({"-n", std::to_string(kWorkers), "-m", "0"}, {"/bin/sleep", "1000"});
  REQUIRE(PollUntil([&] { return std::filesystem::exists(Sock(m)); }, 10s));
  const std::string path = Sock(m);
  std::atomic<bool> stop{false};
  std::atomic<int> connected{0};
  auto flood = [&] {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    path.copy(a.sun_path, path.size());
    while (!stop) {
      const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) ++connected;
      close(fd);
    }
  };
  std::thread flooder(flood);
  // Counted from /proc: the command socket's backlog is the flood's.
  const std::string children =
      "/proc/" + std::to_string(m.pid()) + "/task/" + std::to_string(m.pid()) + "/children";
  const bool started = PollUntil(
      [&] {
        std::istringstream in(ReadFile(children));
        int n = 0;
        for (pid_t pid = 0; in >> pid;) ++n;
        return n == kWorkers;
      },
      60s);
  const int during = connected.load();
  stop = true;
  flooder.join();
  MESSAGE(during << " connections while " << kWorkers << " workers started");
  CHECK(during > 1000);
  CHECK(started);
  REQUIRE(PollUntil([&] { return Status(m).has_value(); }, 10s));
}

}  // namespace
}  // namespace einhorn::test
