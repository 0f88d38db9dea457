// Fault injection on the master's file descriptors: EMFILE while it accepts on the command
// socket and while it spawns, a flood of command connections and a slow-loris client. The
// master must answer what it cannot serve, never spin, and give back every fd.
//
// Under ASan+UBSan, UBSan checks a dynamic type it has not seen yet by probing memory through a
// pipe(2); out of fds that probe fails and it reports a false "invalid vptr" (with "<memory
// cannot be printed>"). The master therefore answers a status before its fds run out, so that
// the types on the paths exercised here are already in UBSan's cache.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>

#include "control_client.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

using Clock = std::chrono::steady_clock;
const std::string kStatus = "{\"id\": 1, \"command\": \"status\"}\n";

double CpuSeconds(pid_t pid) {
  const std::vector<std::string> f = ProcStatFields(pid);
  REQUIRE(f.size() > 12);  // [11] utime, [12] stime, in clock ticks
  return static_cast<double>(std::stol(f[11]) + std::stol(f[12])) /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The share of one core `pid` used over `window`.
double CpuShare(pid_t pid, std::chrono::milliseconds window) {
  const double before = CpuSeconds(pid);
  const auto start = Clock::now();
  PollUntil([] { return false; }, window, 100ms);  // observe
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  return (CpuSeconds(pid) - before) / elapsed;
}

// The fd count once the master has finished closing what its last clients left.
size_t SettledFds(pid_t pid) {
  size_t last = OpenFds(pid);
  for (int i = 0; i < 50; ++i) {
    PollUntil([] { return false; }, 100ms);
    const size_t now = OpenFds(pid);
    if (now == last) return now;
    last = now;
  }
  return last;
}

// Lowers (or restores) the soft RLIMIT_NOFILE of a running process, as `prlimit --pid` does.
void SetSoftFdLimit(pid_t pid, rlim_t soft) {
  rlimit now{};
  REQUIRE(prlimit(pid, RLIMIT_NOFILE, nullptr, &now) == 0);
  const rlimit want{soft, now.rlim_max};
  REQUIRE(prlimit(pid, RLIMIT_NOFILE, &want, nullptr) == 0);
}

bool RefusedFor(const std::optional<core::wire::Reply>& r, const std::string& reason) {
  return r && r->error && r->message.find(reason) != std::string::npos;
}
const std::string kOutOfFds = "out of file descriptors";
const std::string kTooMany = "Too many connections";
// ServerLimits::max_connections, as the man page documents it.
constexpr size_t kMaxConnections = 256;

std::string LineWith(const std::string& log, const std::string& needle) {
  const size_t at = log.find(needle);
  if (at == std::string::npos) return "";
  const size_t begin = log.rfind('\n', at) + 1;  // npos + 1 == 0
  return log.substr(begin, log.find('\n', at) - begin);
}

TEST_CASE("out of fds the master refuses with the reason, backs spawns off, does not spin, and "
          "recovers") {
  // -g: each spawn opens an fd in the master (the worker's command channel). A plain worker's
  // spawn opens none (sys::Launch needs no status pipe), and would start even now.
  MasterRun m({"-n", "2", "-m", "0", "-s", "0.1", "-g"},
              {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(m.WaitForWorkers(2));
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 10s));
  rlimit original{};
  REQUIRE(prlimit(m.pid(), RLIMIT_NOFILE, nullptr, &original) == 0);
  const size_t baseline = SettledFds(m.pid());

  // Room for a few connections: each one the master keeps takes an fd, until accept4 fails.
  SetSoftFdLimit(m.pid(), baseline + 3);
  std::vector<std::unique_ptr<ControlClient>> held;
  std::optional<core::wire::Reply> refusal;
  for (int i = 0; i < 64 && !refusal; ++i) {
    auto c = std::make_unique<ControlClient>(Sock(m));
    REQUIRE(c->connected());  // the kernel's backlog takes it either way
    auto r = c->Ask(kStatus);
    REQUIRE(r.has_value());
    if (RefusedFor(r, kOutOfFds)) {
      refusal = r;
    } else {
      REQUIRE_FALSE(r->error);
      held.push_back(std::move(c));
    }
  }
  REQUIRE(refusal.has_value());
  CHECK(refusal->message ==
        "The master is out of file descriptors (Too many open files); try again later");
  CHECK_FALSE(held.empty());
  CHECK(m.WaitForLog("out of file descriptors (Too many open files)"));

  // A spawn that needs an fd: it fails with the reason and is retried with backoff.
  auto inc = held[0]->Ask("{\"id\": 2, \"command\": \"inc\"}\n");
  REQUIRE(inc.has_value());
  CHECK(inc->message == "Incrementing number of workers from 2 -> 3");
  REQUIRE(m.WaitForLog("could not start the worker: "));
  CHECK(LineWith(m.Log(), "could not start the worker: ").find("Too many open files") !=
        std::string::npos);
  CHECK(m.WaitForLog("respawning in"));
  const double busy = CpuShare(m.pid(), 2s);
  MESSAGE("master CPU out of fds, spawns failing: " << busy * 100 << "% of a core");
  CHECK(busy < 0.5);
  CHECK(held.back()->Ask(kStatus, 5s).has_value());  // still serving its clients

  // Not even the reserve fd can be had back (as under ENFILE): the next peer waits in the
  // backlog, and the master looks again every 100 ms rather than at once, forever.
  SetSoftFdLimit(m.pid(), 3);
  ControlClient waiting(Sock(m));
  REQUIRE(waiting.connected());
  waiting.Send(kStatus);
  CHECK(m.WaitForLog("even to turn a peer away: peers wait in the backlog; accepting again "
                     "every 100 ms (1 in a row)"));
  const double paused = CpuShare(m.pid(), 2s);
  MESSAGE("master CPU with a peer it cannot accept: " << paused * 100 << "% of a core");
  CHECK(paused < 0.5);
  CHECK_FALSE(waiting.ReadReply(100ms).has_value());
  CHECK(m.process().running());

  // The limit back: the waiting peer gets its answer (still a refusal: the fds are all used).
  SetSoftFdLimit(m.pid(), baseline + 3);
  CHECK(RefusedFor(waiting.ReadReply(5s), kOutOfFds));

  // The pressure ends: status answers again, the worker that could not start does, and every
  // fd the episode took is given back.
  held.clear();
  SetSoftFdLimit(m.pid(), original.rlim_cur);
  std::optional<core::PoolStatus> st;
  CHECK(PollUntil([&] { return (st = Status(m)).has_value(); }, 5s));
  CHECK(m.WaitForLog("command socket: accepting connections again after refusing"));
  CHECK(PollUntil([&] { return PoolSettled(m, 3, 1); }, 20s));
  // Besides the third worker's -g channel.
  CHECK(PollUntil([&] { return OpenFds(m.pid()) == baseline + 1; }, 10s));
  CHECK(m.process().running());
}

// A worker without binds or per-worker extras is started without any fd in the master: the
// spawn knows the exec's outcome when clone returns, so there is no status pipe to open.
TEST_CASE("out of fds the master still starts a plain worker (a spawn opens no fd)") {
  MasterRun m({"-n", "1", "-m", "0", "-s", "0.1"}, {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(m.WaitForWorkers(1));
  REQUIRE(PollUntil([&] { return PoolSettled(m, 1, 1); }, 10s));
  rlimit original{};
  REQUIRE(prlimit(m.pid(), RLIMIT_NOFILE, nullptr, &original) == 0);
  const size_t baseline = SettledFds(m.pid());
  // Every fd below the limit taken, by connections the master keeps (as above); the worker
  // itself gets the same limit with only 0-2 open, room enough to load and run.
  SetSoftFdLimit(m.pid(), baseline + 3);
  std::vector<std::unique_ptr<ControlClient>> held;
  bool refused = false;
  for (int i = 0; i < 64 && !refused; ++i) {
    auto c = std::make_unique<ControlClient>(Sock(m));
    REQUIRE(c->connected());
    auto r = c->Ask(kStatus);
    REQUIRE(r.has_value());
    refused = RefusedFor(r, kOutOfFds);
    if (!refused) held.push_back(std::move(c));
  }
  REQUIRE(refused);

  REQUIRE(kill(m.pid(), SIGTTIN) == 0);  // inc, without a connection
  CHECK(PollUntil([&] { return ChildrenOf(m.pid()).size() == 2; }, 10s));
  CHECK(m.WaitForLog("(index 1, generation 1) is ready"));
  CHECK(m.Log().find("could not start the worker") == std::string::npos);
  CHECK(m.Log().find("could not be started") == std::string::npos);

  held.clear();
  SetSoftFdLimit(m.pid(), original.rlim_cur);
  CHECK(PollUntil([&] { return PoolSettled(m, 2, 1); }, 20s));
}

// Raises this process's soft fd limit to the hard one; returns the new soft limit.
rlim_t RaiseOwnFdLimit() {
  rlimit r{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &r) == 0);
  r.rlim_cur = r.rlim_max;
  REQUIRE(setrlimit(RLIMIT_NOFILE, &r) == 0);
  return r.rlim_cur;
}

TEST_CASE("a flood of 10000 command connections and a slow-loris client leave the master "
          "responsive, and leak no fd") {
  const rlim_t limit = RaiseOwnFdLimit();
  const size_t flood = std::min<size_t>(10000, limit > 300 ? limit - 200 : 100);
  MasterRun m({"-n", "1", "-m", "0"}, {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(m.WaitForWorkers(1));
  REQUIRE(PollUntil([&] { return Status(m).has_value(); }, 10s));
  const size_t baseline = SettledFds(m.pid());

  // Three peers before the flood: one that stays idle (as an einhornctl shell, or a client
  // waiting for an upgrade's end, legitimately does), one that asks status during the flood,
  // and a slow loris.
  ControlClient idle(Sock(m)), regular(Sock(m)), loris(Sock(m));
  REQUIRE((idle.connected() && regular.connected() && loris.connected()));
  REQUIRE(regular.Ask(kStatus).has_value());

  std::atomic<bool> flooding{true};
  std::atomic<long> slowest_ms{0}, answered{0}, unanswered{0};
  std::thread asker([&] {
    while (flooding) {
      const auto t = Clock::now();
      auto r = regular.Ask(kStatus, 10s);
      const long ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
      ++(r && !r->error ? answered : unanswered);
      slowest_ms = std::max<long>(slowest_ms, ms);
      PollUntil([] { return false; }, 50ms);
    }
  });
  const auto flood_start = Clock::now();
  std::vector<std::unique_ptr<ControlClient>> clients;
  clients.reserve(flood);
  for (size_t i = 0; i < flood; ++i) {
    clients.push_back(std::make_unique<ControlClient>(Sock(m)));
    if (!clients.back()->connected()) break;
  }
  const double flood_s = std::chrono::duration<double>(Clock::now() - flood_start).count();
  flooding = false;
  asker.join();
  MESSAGE(clients.size() << " connections opened in " << flood_s << " s; status asked "
                         << answered.load() << " times meanwhile, slowest answer "
                         << slowest_ms.load() << " ms");
  REQUIRE(clients.size() == flood);
  CHECK(clients.back()->connected());
  CHECK(answered > 0);
  CHECK(unanswered == 0);
  CHECK(slowest_ms < 5000);  // starved, it was the 10 s timeout

  // A newcomer while every slot is taken: a clear refusal, at once.
  long refused_probes = 0;
  {
    ControlClient late(Sock(m));
    const auto t = Clock::now();
    CHECK(RefusedFor(late.Ask(kStatus, 5s), kTooMany));
    CHECK(Clock::now() - t < 5s);
    ++refused_probes;
  }
  // The master holds at most its 256 connections, not the flood.
  CHECK(OpenFds(m.pid()) <= baseline + kMaxConnections + 8);

  // The slow loris: a line that never ends, one byte every 100 ms. The master closes it 10 s
  // after its first byte, however it trickles; the flood goes away meanwhile.
  const std::string partial = "{\"id\": 1, \"command\": \"status\"";
  const auto loris_start = Clock::now();
  REQUIRE(loris.Send(partial.substr(0, 1)));
  clients.clear();
  // Every flooding connection but the 253 the master took was refused, and so was each probe
  // until it has seen the flood's connections close: the log sums them up.
  std::optional<core::PoolStatus> st;
  REQUIRE(PollUntil(
      [&] {
        ControlClient c(Sock(m));
        auto r = c.Ask(kStatus, 5s);
        if (RefusedFor(r, kTooMany)) ++refused_probes;
        return r && !r->error;
      },
      10s, 50ms));
  REQUIRE(m.WaitForLog("accepting connections again after refusing "));
  const std::string summed = LineWith(m.Log(), "accepting connections again after refusing ");
  CHECK(summed.substr(summed.rfind(' ') + 1) ==
        std::to_string(flood - (kMaxConnections - 3) + static_cast<size_t>(refused_probes)));
  size_t warnings = 0;
  for (size_t at = 0; (at = m.Log().find("command socket: refused", at)) != std::string::npos;
       ++at) {
    ++warnings;
  }
  CHECK(warnings <= 5);  // 1st, 10th, 100th, 1000th refusal of the run

  bool closed = false;
  for (size_t i = 1; !closed && Clock::now() - loris_start < 30s; ++i) {
    closed = loris.WaitEof(100ms) ||
             !loris.Send(i < partial.size() ? partial.substr(i, 1) : std::string(" "));
  }
  const auto loris_s = std::chrono::duration<double>(Clock::now() - loris_start).count();
  MESSAGE("slow loris closed after " << loris_s << " s");
  CHECK(closed);
  CHECK(loris_s > 9);
  CHECK(m.LogHas("left a line unfinished for 10000 ms; closing it"));

  // The idle peer was never timed out, and is served.
  auto r = idle.Ask(kStatus);
  CHECK((r && !r->error));
  CHECK(PollUntil([&] { return OpenFds(m.pid()) == baseline + 2; }, 5s));  // idle and regular
  CHECK(m.process().running());
}

}  // namespace
}  // namespace einhorn::test
