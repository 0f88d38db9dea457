// --max-worker-memory with real processes: a worker that grows is replaced before it reaches the
// hard limit and the pool never serves with fewer than N ready workers; a child that bloats is
// counted through its parent; a worker that exits while its recycle is pending is handled once.
// The workers are small Python scripts (skipped, saying so, without python3).
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <thread>

#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

// Grows by RATE MiB/s up to CAP MiB (touched pages: resident), in itself or (MODE child) in a
// child it forks; with MODE once (under -m manual), only the first worker to find no FLAG file
// acks at once, bloats, then exits after EXIT_MS; the others ack after 3 s and stay small. Dies
// with its parent's drain signal (Python's default for SIGUSR2) and, as a child, once its parent
// is gone.
constexpr const char* kGrower = R"PY(
import os, socket, sys, time
rate, cap, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
flag = sys.argv[4] if len(sys.argv) > 4 else ''
exit_ms = int(sys.argv[5]) if len(sys.argv) > 5 else 0
chunks = []
def grow(limit_mib, watch_parent):
    parent = os.getppid()
    start = time.monotonic()
    while True:
        want = min(limit_mib, int((time.monotonic() - start) * rate))
        while len(chunks) < want:
            chunks.append(b'\x01' * (1 << 20))
        if watch_parent and os.getppid() != parent:
            os._exit(0)
        time.sleep(0.02)
if mode == 'self':
    grow(cap, False)
elif mode == 'child':
    if os.fork() == 0:
        grow(cap, True)
    while True:
        time.sleep(1)
elif mode == 'once':
    def ack():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(os.environ['EINHORN_SOCK_PATH'])
        s.sendall(('{"command":"worker:ack","pid":%d}\n' % os.getpid()).encode())
        s.close()
    try:
        fd = os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        time.sleep(3)
        ack()
        while True:
            time.sleep(1)
    ack()
    chunks.append(b'\x01' * (cap << 20))
    time.sleep(exit_ms / 1000.0)
    sys.exit(0)
)PY";

// Debian's python3 when present: a version manager's shim (pyenv) runs through a shell script
// and may leave more processes in the tree than the test counts.
std::string Python() {
  if (access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
  return LookUpInPath("python3").value_or("");
}
bool HavePython() {
  return !Python().empty() && RunProgram({Python(), "-c", "pass"}, 10s).status.code == 0;
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// The fewest ready workers `status` showed, sampled every few ms (as the upgrade tests do).
class MemoryReadySampler {
 public:
  explicit MemoryReadySampler(const MasterRun& m)
      : thread_([this, &m] {
          while (!stop_) {
            if (const auto st = Status(m)) {
              min_ready_ = std::min(min_ready_.load(), st->ready);
              for (const auto& w : st->workers) {
                if (w.memory_bytes) max_bytes_ = std::max<long long>(max_bytes_, *w.memory_bytes);
              }
              ++samples_;
            }
            std::this_thread::sleep_for(5ms);
          }
        }) {}
  ~MemoryReadySampler() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int min_ready() const { return min_ready_; }
  int samples() const { return samples_; }
  long long max_bytes() const { return max_bytes_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> min_ready_{INT_MAX};
  std::atomic<int> samples_{0};
  std::atomic<long long> max_bytes_{0};
  std::thread thread_;
};

TEST_CASE("memory: a worker growing 10 MB/s under 50M,hard=80M is replaced before hard, N ready") {
  if (!HavePython()) {
    MESSAGE("skipped: no python3 to run the growing worker");
    return;
  }
  TempDir scratch;
  const std::string grower = scratch.File("grower.py");
  WriteFile(grower, kGrower);
  MasterRun m({"-n", "2", "-m", "0.3", "-s", "0.1", "-t", "5", "--max-worker-memory",
               "50M,hard=80M", "--memory-interval", "0.2"},
              {Python(), grower, "10", "1000", "self"});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 2, 1); }, 20s));
  MemoryReadySampler sampler(m);
  // Each worker passes 50M about 4 s after its start: at least 4 recycles within 20 s.
  const bool enough = PollUntil([&] { return Count(m.Log(), "(memory, age") >= 4; }, 30s);
  sampler.Stop();
  const std::string log = m.Log();
  INFO(log);
  REQUIRE(enough);
  CHECK(sampler.samples() > 20);
  CHECK(sampler.min_ready() >= 2);
  CHECK(Count(log, "(memory_hard") == 0);
  CHECK(Count(log, "past the hard limit") == 0);
  CHECK(m.LogHas("past the soft limit of 50M"));
  CHECK(m.LogHas("memory limit: 50M,hard=80M per worker with its descendants (rss)"));
  // Seen by status: some worker passed 50M, none reached 80M.
  CHECK(sampler.max_bytes() >= 50LL << 20);
  CHECK(sampler.max_bytes() < 80LL << 20);
}

TEST_CASE("memory: a worker whose child bloats is counted through its descendants") {
  if (!HavePython()) {
    MESSAGE("skipped: no python3 to run the growing worker");
    return;
  }
  TempDir scratch;
  const std::string grower = scratch.File("grower.py");
  WriteFile(grower, kGrower);
  // The child grows to 70M and stops: only the tree (parent + child) passes 50M.
  MasterRun m({"-n", "1", "-m", "0.2", "-s", "0.1", "--max-worker-memory", "50M",
               "--memory-interval", "0.2"},
              {Python(), grower, "100", "70", "child"});
  REQUIRE(PollUntil([&] { return PoolSettled(m, 1, 1); }, 20s));
  const pid_t first = *Pids(m).begin();
  REQUIRE(m.WaitForLog("recycling worker " + std::to_string(first), 20s));
  // The master's line on it follows the supervisor's.
  CHECK(m.WaitForLog("worker " + std::to_string(first) + " uses ", 10s));
  INFO(m.Log());
  // Counted with its child: the parent alone is far below the limit.
  CHECK(m.LogHas("(2 processes), past the soft limit of 50M"));
  CHECK(m.LogHas("(memory, age"));
}

TEST_CASE("memory: a worker that exits while its recycle is pending is handled once") {
  if (!HavePython()) {
    MESSAGE("skipped: no python3 to run the growing worker");
    return;
  }
  TempDir scratch;
  const std::string grower = scratch.File("grower.py");
  WriteFile(grower, kGrower);
  // The first worker acks, takes 60M at once and exits 1.5 s later; its replacement acks after
  // 3 s, so the exit comes while the recycle is under way.
  MasterRun m({"-n", "1", "-m", "manual", "-s", "0.1", "--max-worker-memory", "50M",
               "--memory-interval", "0.2"},
              {Python(), grower, "0", "60", "once", scratch.File("flag"), "1500"});
  REQUIRE(PollUntil([&] { return Status(m) && Status(m)->workers.size() == 1; }, 20s));
  const pid_t first = *Pids(m).begin();
  const std::string who = "worker " + std::to_string(first);
  REQUIRE(m.WaitForLog("recycling " + who, 20s));
  REQUIRE(m.WaitForLog("recycle of " + who, 20s));
  // Then one ready worker, the replacement; no second one spawned for the exit.
  REQUIRE(PollUntil([&] { return PoolSettled(m, 1, 1); }, 20s));
  // A wrong second replacement would show as a second worker within a second.
  CHECK_FALSE(PollUntil(
      [&] {
        const auto st = Status(m);
        return st && st->workers.size() != 1;
      },
      1s));
  const std::string log = m.Log();
  INFO(log);
  CHECK(Count(log, "recycling " + who) == 1);
  CHECK(Count(log, "recycle of " + who) == 1);
  const auto st = Status(m);
  REQUIRE(st);
  CHECK(st->workers.size() == 1);
  CHECK(st->workers[0].pid != first);
  CHECK(st->workers[0].restarts == 1);  // one replacement in the slot, not two
}

TEST_CASE("memory: invalid limits, intervals and measures are one error line, exit 2") {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--max-worker-memory", "0"},
                                             {"--max-worker-memory", "-50M"},
                                             {"--max-worker-memory", "inf"},
                                             {"--max-worker-memory", "nan"},
                                             {"--max-worker-memory", "1e10"},
                                             {"--max-worker-memory", "2048T"},
                                             {"--max-worker-memory", "80M,hard=50M"},
                                             {"--max-worker-memory", "50M,hard=0"},
                                             {"--memory-interval", "0"},
                                             {"--memory-interval", "-1"},
                                             {"--memory-interval", "nan"},
                                             {"--memory-measure", "uss"}}) {
    std::vector<std::string> argv = args;
    argv.push_back(TEST_WORKER_BIN);
    INFO(args[0], " ", args[1]);
    const Finished f = RunToExit(argv);
    CHECK(f.status.code == 2);
    CHECK(std::count(f.err.begin(), f.err.end(), '\n') == 1);
    CHECK(f.err.rfind("einhorn-cpp: --m", 0) == 0);
  }
}

}  // namespace
}  // namespace einhorn::test
