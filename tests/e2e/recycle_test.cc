// Recycling with real processes: a worker asks (worker:recycle on the command socket, RECYCLE=1
// on its NOTIFY_SOCKET), an operator asks (einhornctl recycle --all --wait); the replacement is
// ready before the old worker drains, so the ready count, sampled from outside as the upgrade
// tests do, never drops below N. A worker that exits while its recycle is queued is replaced
// once; pending recycles carry across a master reload.
#include <doctest/doctest.h>
#include <signal.h>

#include <set>
#include <string>

#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

// A worker that acks (worker:ack under -m manual, READY=1 under -m notify), asks to be
// recycled once the file DIR/recycle-<its pid> appears, and on SIGUSR2 exits 0 after
// DRAIN_SECONDS (default 0).
std::string WriteRecyclingWorker(const TempDir& d) {
  const std::string path = d.File("recycling_worker.py");
  WriteFile(path, R"PY(#!/usr/bin/env python3
import json, os, signal, socket, sys, time
flags, mode = sys.argv[1], sys.argv[2]
stop = False
def usr2(*_):
    global stop
    stop = True
signal.signal(signal.SIGUSR2, usr2)
pid = os.getpid()
def command(obj):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(os.environ["EINHORN_SOCK_PATH"])
        s.sendall((json.dumps(obj) + "\n").encode())
def notify(text):
    addr = os.environ["NOTIFY_SOCKET"]
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(text.encode(), addr)
if mode == "notify":
    notify("READY=1")
else:
    command({"command": "worker:ack", "pid": pid})
asked = False
while not stop:
    if not asked and os.path.exists(os.path.join(flags, "recycle-%d" % pid)):
        asked = True
        if mode == "notify":
            notify("RECYCLE=1")
        else:
            command({"command": "worker:recycle", "pid": pid})
    time.sleep(0.02)
time.sleep(float(os.environ.get("DRAIN_SECONDS", "0")))
sys.exit(0)
)PY",
            0755);
  return path;
}

Finished Ctl(const MasterRun& m, std::vector<std::string> args,
             std::chrono::milliseconds timeout = 60s) {
  args.insert(args.begin(), {EINHORNCTL_BIN, "-d", Sock(m)});
  return RunProgram(args, timeout);
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

int PendingRecycles(const core::PoolStatus& st, const std::string& state = "") {
  int n = 0;
  for (const auto& w : st.workers) {
    n += w.recycle && (state.empty() || w.recycle_state == state) ? 1 : 0;
  }
  return n;
}

// The worker asks, then the operator recycles them all: every worker replaced, never fewer
// than N ready.
void AskedThenAll(const std::string& mode) {
  TempDir flags;
  const std::string worker = WriteRecyclingWorker(flags);
  MasterRun m({"-n", "3", "-m", mode == "notify" ? "notify" : "manual"},
              {"python3", worker, flags.File(""), mode});
  REQUIRE_MESSAGE(PollUntil([&] { return PoolSettled(m, 3, 1); }, 20s), m.Log());
  ReadySampler sampler(m);

  const std::set<pid_t> first = Pids(m);
  const pid_t victim = *first.begin();
  WriteFile(flags.File("recycle-" + std::to_string(victim)), "");
  CHECK_MESSAGE(PollUntil(
                    [&] {
                      return Pids(m).count(victim) == 0 && PoolSettled(m, 3, 1) &&
                             m.LogHas("recycle of worker " + std::to_string(victim));
                    },
                    20s),
                m.Log());
  CHECK(m.LogHas("recycling worker " + std::to_string(victim) + " (index"));
  CHECK(m.LogHas("recycled (worker): its replacement is ready"));

  const std::set<pid_t> second = Pids(m);
  const Finished all = Ctl(m, {"recycle", "--all", "--wait"});
  CHECK_MESSAGE(all.status.code == 0, all.out << all.err);
  CHECK(all.out.find("Recycling 3 workers, at most 1 extra at once") != std::string::npos);
  REQUIRE(PollUntil([&] { return PoolSettled(m, 3, 1); }, 10s));
  for (pid_t p : Pids(m)) CHECK(second.count(p) == 0);
  sampler.Stop();
  CHECK(sampler.samples() > 20);
  CHECK(sampler.min_ready() == 3);
  const Finished metrics = Ctl(m, {"metrics"});
  CHECK(metrics.out.find("einhorn_worker_recycles_total{cause=\"worker\"} 1") != std::string::npos);
  CHECK(metrics.out.find("einhorn_worker_recycles_total{cause=\"operator\"} 3") !=
        std::string::npos);
  MESSAGE(mode << ": " << sampler.samples() << " status samples, never fewer than "
               << sampler.min_ready() << " ready");
}

TEST_CASE("recycle: worker:recycle and einhornctl recycle --all keep N ready") {
  AskedThenAll("socket");
}

TEST_CASE("recycle: RECYCLE=1 under -m notify keeps N ready") { AskedThenAll("notify"); }

TEST_CASE("recycle: worker:recycle for another worker, or from a stranger, is refused") {
  TempDir flags;
  const std::string worker = WriteRecyclingWorker(flags);
  MasterRun m({"-n", "2", "-m", "manual"}, {"python3", worker, flags.File(""), "socket"});
  REQUIRE_MESSAGE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 20s), m.Log());
  const pid_t victim = *Pids(m).begin();
  // The test process is no worker's descendant: a forged request names a worker's pid.
  const Finished forged =
      RunProgram({"python3", "-c",
                  "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
                  "s.sendall(b'{\"command\":\"worker:recycle\",\"pid\":" +
                      std::to_string(victim) + "}\\n'); s.recv(10)",
                  Sock(m)},
                 10s);
  CHECK(forged.status.code == 0);
  CHECK(m.WaitForLog("refused worker:recycle for " + std::to_string(victim)));
  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(PendingRecycles(*st) == 0);
  CHECK(Pids(m).count(victim) == 1);
  CHECK(Count(m.Log(), "spawned worker") == 2);
}

TEST_CASE("recycle: a worker that exits while its recycle is queued is replaced once") {
  TempDir flags;
  const std::string worker = WriteRecyclingWorker(flags);
  // Old workers linger 3 s after their drain signal: the first recycle holds the one extra
  // worker's room, so the second one stays queued.
  MasterRun m({"-n", "2", "-m", "manual"}, {"python3", worker, flags.File(""), "socket"},
              {"DRAIN_SECONDS=3"});
  REQUIRE_MESSAGE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 20s), m.Log());
  const Finished all = Ctl(m, {"recycle", "--all"});
  REQUIRE_MESSAGE(all.status.code == 0, all.out << all.err);
  pid_t queued = 0;
  REQUIRE(PollUntil(
      [&] {
        const auto st = Status(m);
        if (!st) return false;
        for (const auto& w : st->workers) {
          if (w.recycle_state == "queued") queued = w.pid;
        }
        return queued != 0;
      },
      10s));
  REQUIRE(kill(queued, SIGKILL) == 0);
  CHECK_MESSAGE(PollUntil(
                    [&] {
                      const auto st = Status(m);
                      return st && PoolSettled(m, 2, 1) && PendingRecycles(*st) == 0;
                    },
                    20s),
                m.Log());
  // 2 at start, the first one's replacement, and one refill of the killed one's slot.
  CHECK(Count(m.Log(), "spawned worker") == 4);
  CHECK(Count(m.Log(), "(operator, before it started)") == 1);
  CHECK(Count(m.Log(), "recycle of worker") == 2);
}

TEST_CASE("recycle: pending recycles carry across a master reload") {
  TempDir flags;
  const std::string worker = WriteRecyclingWorker(flags);
  MasterRun m({"-n", "3", "-m", "manual"}, {"python3", worker, flags.File(""), "socket"},
              {"DRAIN_SECONDS=2"});
  REQUIRE_MESSAGE(PollUntil([&] { return PoolSettled(m, 3, 1); }, 20s), m.Log());
  ReadySampler sampler(m);
  const std::set<pid_t> first = Pids(m);
  const Finished all = Ctl(m, {"recycle", "--all"});
  REQUIRE_MESSAGE(all.status.code == 0, all.out << all.err);
  REQUIRE(PollUntil(
      [&] {
        const auto st = Status(m);
        return st && PendingRecycles(*st, "queued") == 2;
      },
      10s));
  const Finished reload = Ctl(m, {"reload"});
  CHECK_MESSAGE(reload.status.code == 0, reload.out << reload.err);
  const auto after = Status(m);
  REQUIRE(after.has_value());
  CHECK(after->reloads == 1);
  CHECK(PendingRecycles(*after) >= 1);
  CHECK_MESSAGE(PollUntil(
                    [&] {
                      const auto st = Status(m);
                      if (!st || !PoolSettled(m, 3, 1) || PendingRecycles(*st) != 0) return false;
                      for (pid_t p : Pids(m)) {
                        if (first.count(p) != 0) return false;
                      }
                      return true;
                    },
                    40s),
                m.Log());
  sampler.Stop();
  CHECK(sampler.min_ready() == 3);
  CHECK(Count(m.Log(), "spawned worker") == 6);
  const Finished metrics = Ctl(m, {"metrics"});
  CHECK(metrics.out.find("einhorn_worker_recycles_total{cause=\"operator\"} 3") !=
        std::string::npos);
}

}  // namespace
}  // namespace einhorn::test
