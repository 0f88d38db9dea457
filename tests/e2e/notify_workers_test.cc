// -m notify: workers that are plain systemd-style services (here: shell scripts calling
// Debian's systemd-notify) become ready with READY=1 on the NOTIFY_SOCKET the master gives
// each of them, show their STATUS= in `status`, and say STOPPING=1 when they leave.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "control_client.h"
#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

const char* const kNotify = "/usr/bin/systemd-notify";

bool HaveNotify() { return access(kNotify, X_OK) == 0; }

// A service that knows nothing of Einhorn: STATUS while it warms up, READY=1 with a status,
// STOPPING=1 when it gets SIGUSR2. With DIR/silent it never says READY=1.
std::string WriteService(const TempDir& d) {
  const std::string path = d.File("service.sh");
  WriteFile(path,
            "#!/bin/sh\n"
            "trap '" + std::string(kNotify) + " STOPPING=1; exit 0' USR2\n" +
                kNotify + " --status='warming up'\n"
                "if [ ! -e '" + d.File("silent") + "' ]; then\n  " + kNotify +
                " --ready --status='serving'\nfi\n"
                "while :; do sleep 0.05; done\n",
            0755);
  return path;
}

std::string EnvOf(pid_t pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), {});
  const std::string key = name + "=";
  size_t at = 0;
  while (at < all.size()) {
    const size_t end = all.find('\0', at);
    const std::string entry = all.substr(at, end == std::string::npos ? end : end - at);
    if (entry.rfind(key, 0) == 0) return entry.substr(key.size());
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return "";
}

std::string Stopping(const core::WorkerStatus& w) {
  return "worker " + std::to_string(w.pid) + " (index " + std::to_string(w.index) +
         ", generation " + std::to_string(w.generation) + ") is stopping on its own (STOPPING=1)";
}

bool AllReadyWithStatus(const MasterRun& m, size_t n, const std::string& text) {
  const auto st = Status(m);
  if (!st || st->ready != static_cast<int>(n) || st->workers.size() != n) return false;
  for (const auto& w : st->workers) {
    if (w.notify_status != text) return false;
  }
  return true;
}

TEST_CASE("-m notify: READY=1 on the worker's own NOTIFY_SOCKET makes it ready, STATUS shows") {
  if (!HaveNotify()) {
    MESSAGE("skipped: no systemd-notify (Debian package systemd)");
    return;
  }
  TempDir d;
  MasterRun m({"-n", "2", "-m", "notify"}, {"/bin/sh", WriteService(d)});
  REQUIRE(PollUntil([&] { return AllReadyWithStatus(m, 2, "serving"); }, 15s));
  const auto st = Status(m);
  REQUIRE(st);
  CHECK(st->ack_mode == "notify");
  std::set<std::string> sockets;
  for (const auto& w : st->workers) {
    const std::string s = EnvOf(w.pid, "NOTIFY_SOCKET");
    CHECK(s.rfind("@einhorn-cpp/" + std::to_string(m.pid()) + "/", 0) == 0);
    sockets.insert(s);
  }
  CHECK(sockets.size() == 2);  // each worker its own
  CHECK(m.LogHas("is ready (acked after"));
}

TEST_CASE("-m notify: a READY=1 from a process that is not the worker is refused") {
  if (!HaveNotify()) {
    MESSAGE("skipped: no systemd-notify (Debian package systemd)");
    return;
  }
  TempDir d;
  WriteFile(d.File("silent"), "");
  MasterRun m({"-n", "1", "-m", "notify"}, {"/bin/sh", WriteService(d)});
  REQUIRE(PollUntil(
      [&] {
        const auto st = Status(m);
        return st && st->workers.size() == 1 && st->workers[0].notify_status == "warming up";
      },
      15s));
  const pid_t worker = Status(m)->workers[0].pid;
  const std::string address = EnvOf(worker, "NOTIFY_SOCKET");
  REQUIRE(address.rfind('@', 0) == 0);
  // The test process is no descendant of the worker.
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  address.copy(a.sun_path + 1, address.size() - 1, 1);
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
  const std::string msg = "READY=1\nSTATUS=spoofed";
  // Sent again every half second until the master says it ignored one: a loaded machine may
  // take its time, and every copy must be refused all the same.
  const std::string said = "ignoring a message from pid " + std::to_string(getpid());
  bool ignored = false;
  for (int i = 0; i < 30 && !ignored; ++i) {
    REQUIRE(sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&a), len) ==
            static_cast<ssize_t>(msg.size()));
    ignored = m.WaitForLog(said, 500ms);
  }
  close(fd);
  REQUIRE(ignored);
  const auto st = Status(m);
  REQUIRE(st);
  CHECK(st->ready == 0);
  CHECK(st->workers[0].notify_status == "warming up");
}

TEST_CASE("-m notify: STOPPING=1 marks a worker draining, and its slot is refilled when it exits") {
  if (!HaveNotify()) {
    MESSAGE("skipped: no systemd-notify (Debian package systemd)");
    return;
  }
  TempDir d;
  MasterRun m({"-n", "2", "-m", "notify"}, {"/bin/sh", WriteService(d)});
  REQUIRE(PollUntil([&] { return AllReadyWithStatus(m, 2, "serving"); }, 15s));
  const core::WorkerStatus w = Status(m)->workers[0];
  const pid_t leaving = w.pid;
  // The worker decides to leave on its own: the master sent it nothing.
  REQUIRE(kill(leaving, SIGUSR2) == 0);
  REQUIRE(m.WaitForLog(Stopping(w)));
  REQUIRE(PollUntil(
      [&] {
        const auto st = Status(m);
        if (!st || st->ready != 2) return false;
        for (const auto& live : st->workers) {
          if (live.pid == leaving) return false;
        }
        return true;
      },
      15s));
}

TEST_CASE("-m notify: upgrades wait for READY=1, and the sockets survive a reload") {
  if (!HaveNotify()) {
    MESSAGE("skipped: no systemd-notify (Debian package systemd)");
    return;
  }
  TempDir d;
  MasterRun m({"-n", "2", "-m", "notify"}, {"/bin/sh", WriteService(d)});
  REQUIRE(PollUntil([&] { return AllReadyWithStatus(m, 2, "serving"); }, 15s));
  ControlClient c(Sock(m));
  REQUIRE(c.Send("{\"id\": 1, \"command\": \"upgrade\"}\n"));
  std::optional<core::wire::Reply> r;
  while ((r = c.ReadReply(30s)) && r->wait) {
  }
  REQUIRE(r);
  CHECK(r->message == "Upgrade done");
  REQUIRE(PollUntil([&] { return AllReadyWithStatus(m, 2, "serving"); }, 15s));
  const auto st = Status(m);
  REQUIRE(st);
  CHECK(st->reloads == 1);
  for (const auto& w : st->workers) CHECK(w.generation == 2);
  // These workers got their sockets from the image before the last reload: STOPPING=1 on
  // one must still reach the master.
  REQUIRE(ControlClient(Sock(m)).Ask("{\"command\": \"reload\"}\n"));
  REQUIRE(PollUntil([&] { return Status(m) && Status(m)->reloads == 2; }, 10s));
  const core::WorkerStatus w = Status(m)->workers[1];
  REQUIRE(kill(w.pid, SIGUSR2) == 0);
  CHECK(m.WaitForLog(Stopping(w)));
}

TEST_CASE("--worker-watchdog: a worker that stops sending WATCHDOG=1 is aborted and replaced") {
  if (!HaveNotify()) {
    MESSAGE("skipped: no systemd-notify (Debian package systemd)");
    return;
  }
  TempDir d;
  const std::string script = d.File("watched.sh");
  WriteFile(script,
            "#!/bin/sh\n" + std::string(kNotify) + " --ready\n"
            "while :; do\n"
            "  [ -e '" + d.File("hang") + "' ] || " + kNotify + " WATCHDOG=1\n"
            "  sleep 0.1\n"
            "done\n",
            0755);
  MasterRun m({"-n", "1", "-m", "notify", "--worker-watchdog", "2", "-t", "1"},
              {"/bin/sh", script});
  REQUIRE(PollUntil([&] { return Status(m) && Status(m)->ready == 1; }, 15s));
  const pid_t first = Status(m)->workers[0].pid;
  CHECK(EnvOf(first, "WATCHDOG_USEC") == "2000000");
  CHECK(EnvOf(first, "WATCHDOG_PID") == std::to_string(first));
  // Fed every 0.1 s: more than a full interval goes by without an abort.
  CHECK_FALSE(PollUntil([&] { return m.LogHas("it is hung"); }, 2500ms));
  WriteFile(d.File("hang"), "");
  REQUIRE(PollUntil([&] { return Status(m) && Status(m)->watchdog_timeouts == 1; }, 10s));
  unlink(d.File("hang").c_str());
  CHECK(m.LogHas("sent no WATCHDOG=1 for"));
  REQUIRE(PollUntil(
      [&] {
        const auto st = Status(m);
        return st && st->ready == 1 && st->workers.size() == 1 && st->workers[0].pid != first;
      },
      15s));
  const auto st = Status(m);
  REQUIRE(st);
  CHECK(st->workers[0].last_exit == "signal 6");
  CHECK(st->watchdog_timeouts == 1);
}

}  // namespace
}  // namespace einhorn::test

namespace einhorn::test {
namespace {

// Issue 14.10: with -m 0 a worker is ready at fork, and the watchdog's clock must start then
// too; it never did, so a worker that never pings was never aborted.
TEST_CASE(
    "--worker-watchdog with -m 0: a worker ready at fork that never pings is aborted and "
    "respawned") {
  MasterRun m({"-n", "1", "-m", "0", "--worker-watchdog", "1", "-t", "1"},
              {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(PollUntil([&] { return Status(m) && Status(m)->ready == 1; }, 10s));
  const pid_t first = Status(m)->workers[0].pid;
  REQUIRE(PollUntil([&] { return Status(m) && Status(m)->watchdog_timeouts >= 1; }, 10s));
  CHECK(m.LogHas("sent no WATCHDOG=1 for"));
  // Replaced: a new worker, and the first one is gone (aborted, or killed after -t).
  REQUIRE(PollUntil(
      [&] {
        const auto st = Status(m);
        return st && !st->workers.empty() && st->workers[0].pid != first;
      },
      15s));
  CHECK(PollUntil([&] { return !ProcessAlive(first); }, 5s));
}

}  // namespace
}  // namespace einhorn::test
