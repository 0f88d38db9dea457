// Fault injection on the processes and the disk: workers SIGKILLed under load, the master
// SIGKILLed with and without -k, a pidfile on a full disk. Reloads to a binary that fails its
// check, or does not exist, are in reload_test.cc; an unwritable pidfile path in
// startup_errors_test.cc and tests/sys/files_test.cc. Not covered: a new binary that passes the
// reload check and then crashes (the exec has replaced the old image by then: nothing is left
// to keep running, as with any crash of the master).
#include <dirent.h>
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <random>
#include <set>

#include "control_client.h"
#include "load.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

// Forked, not yet the worker program: SIGKILLing it tests nothing about connections.
bool Execd(pid_t pid) {
  const std::string comm = ReadFile("/proc/" + std::to_string(pid) + "/comm");
  return !comm.empty() && comm != "einhorn-cpp\n";
}

// n workers, all ready, all running the worker program.
bool Serving(const MasterRun& m, int n) {
  if (!PoolSettled(m, n, 1)) return false;
  const std::set<pid_t> pids = Pids(m);
  return static_cast<int>(pids.size()) == n && std::all_of(pids.begin(), pids.end(), Execd);
}

bool AllGone(const std::set<pid_t>& pids) {
  return std::none_of(pids.begin(), pids.end(), ProcessAlive);
}

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = 0; (at = haystack.find(needle, at)) != std::string::npos; at += needle.size()) {
    ++n;
  }
  return n;
}

// Workers a dead master left behind are nobody's descendants any more: MasterRun cannot find
// them, so this kills them at the end. A pid is killed only while it is still the same process
// (same start time), never a newcomer that reused it.
class Orphans {
 public:
  explicit Orphans(const std::set<pid_t>& pids) {
    for (pid_t p : pids) started_[p] = StartTime(p);
  }
  ~Orphans() { KillAll(); }
  Orphans(const Orphans&) = delete;
  Orphans& operator=(const Orphans&) = delete;
  void KillAll() {
    for (const auto& [pid, start] : started_) {
      if (ProcessAlive(pid) && StartTime(pid) == start) kill(pid, SIGKILL);
    }
  }

 private:
  static std::string StartTime(pid_t pid) {
    const auto f = ProcStatFields(pid);
    return f.size() > 19 ? f[19] : "";  // field 22, starttime
  }
  std::map<pid_t, std::string> started_;
};

size_t EntriesIn(const std::string& dir) {
  size_t n = 0;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return 0;
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

std::string ParentOf(pid_t pid) {
  const auto f = ProcStatFields(pid);
  return f.size() > 1 ? f[1] : "";
}

TEST_CASE("workers SIGKILLed under load: the pool recovers, and only their connections fail") {
  constexpr int kWorkers = 4, kClients = 4, kKills = 6;
  // Each answer waits 20 ms, so that a kill finds requests in flight. -s 0.1: a worker killed
  // young is a failure of its slot, and the backoff starts at 0.1 s instead of 1 s.
  MasterRun m({"-n", std::to_string(kWorkers), "-m", "0", "-s", "0.1", "-b", "127.0.0.1:0"},
              {EXAMPLE_HTTP_BIN, "--delay-ms", "20"}, {"EINHORN_EXAMPLE_QUIET=1"});
  REQUIRE(m.WaitForLog("listening on"));
  const auto port = m.Port();
  REQUIRE(port.has_value());
  REQUIRE(PollUntil([&] { return Serving(m, kWorkers); }, 10s, 50ms));

  std::random_device device;
  const unsigned seed = device();
  std::mt19937 rng(seed);
  INFO("seed ", seed);
  // Each client thread has one connection open at a time: a kill can fail at most one request
  // per client, and only if the victim held it. The listening socket, and the connections
  // queued on it, belong to the master and survive every kill.
  Load load(*port, kClients);
  REQUIRE(PollUntil([&] { return load.ok() >= 50; }, 10s));
  for (int k = 0; k < kKills; ++k) {
    const std::set<pid_t> live = Pids(m);
    REQUIRE(!live.empty());
    const pid_t victim = *std::next(live.begin(), static_cast<long>(rng() % live.size()));
    REQUIRE(kill(victim, SIGKILL) == 0);
    REQUIRE(PollUntil([&] { return Serving(m, kWorkers) && Pids(m).count(victim) == 0; }, 15s,
                      50ms));
    const long ok_then = load.ok();
    REQUIRE(PollUntil([&] { return load.ok() >= ok_then + 20; }, 10s));
  }
  // Every failure so far came with a kill; none may come without one.
  const long failed_by_kills = load.failed();
  const long ok_then = load.ok();
  CHECK(PollUntil([&] { return load.ok() >= ok_then + 200; }, 20s));
  load.Stop();
  MESSAGE(load.Summary() << " with " << kKills << " kills (seed " << seed << ")");
  CHECK(load.failed() == failed_by_kills);
  CHECK(failed_by_kills <= kKills * kClients);
  CHECK(load.Summary().find("connect errors 0,") != std::string::npos);
  CHECK(load.Summary().find("timeouts 0,") != std::string::npos);
  CHECK(Count(m.Log(), "exited with signal 9") == kKills);
  CHECK(m.process().running());
}

TEST_CASE("SIGKILL of the master with -k: no worker outlives it and the port closes") {
  MasterRun m({"-n", "3", "-m", "0", "-k", "-b", "127.0.0.1:0"}, {EXAMPLE_HTTP_BIN},
              {"EINHORN_EXAMPLE_QUIET=1"});
  REQUIRE(m.WaitForLog("listening on"));
  const auto port = m.Port();
  REQUIRE(port.has_value());
  REQUIRE(PollUntil([&] { return Serving(m, 3); }, 10s));
  const std::set<pid_t> pids = Pids(m);
  Orphans leftovers(pids);  // only if the test fails
  {
    Load load(*port, 2);  // busy workers drain too
    REQUIRE(PollUntil([&] { return load.ok() >= 20; }, 10s));
    REQUIRE(m.process().Signal(SIGKILL));
    CHECK(PollUntil([&] { return AllGone(pids); }, 10s));
  }
  // The last copies of the listening socket went with them.
  CHECK(HttpGet("127.0.0.1", *port, 2s).empty());
}

TEST_CASE("-k sends SIGUSR2 at the master's death, so a worker that ignores it outlives it") {
  MasterRun m({"-n", "1", "-m", "0", "-k"},
              {TEST_WORKER_BIN, "--report", "{reports}", "--ignore", "USR2"});
  REQUIRE(m.WaitForWorkers(1));
  const pid_t worker = m.LiveWorkers().begin()->first;
  Orphans orphans({worker});
  REQUIRE(m.process().Signal(SIGKILL));
  REQUIRE(m.process().WaitExit(5s).has_value());
  CHECK(PollUntil([&] { return m.SignalsOf(worker) == std::vector<std::string>{"USR2"}; }, 5s));
  CHECK(ProcessAlive(worker));
  CHECK(ParentOf(worker) != std::to_string(m.pid()));
}

TEST_CASE("SIGKILL of the master without -k: the workers are orphaned and keep serving") {
  MasterRun m({"-n", "2", "-m", "0", "-b", "127.0.0.1:0"}, {EXAMPLE_HTTP_BIN},
              {"EINHORN_EXAMPLE_QUIET=1"});
  REQUIRE(m.WaitForLog("listening on"));
  const auto port = m.Port();
  REQUIRE(port.has_value());
  REQUIRE(PollUntil([&] { return Serving(m, 2); }, 10s));
  const std::set<pid_t> pids = Pids(m);
  Orphans orphans(pids);
  REQUIRE(m.process().Signal(SIGKILL));
  const auto status = m.process().WaitExit(5s);
  REQUIRE(status.has_value());
  CHECK(status->signaled);

  // Re-parented (to init, or the nearest subreaper), and sent nothing.
  CHECK(PollUntil(
      [&] {
        return std::all_of(pids.begin(), pids.end(), [&](pid_t p) {
          return ProcessAlive(p) && !ParentOf(p).empty() && ParentOf(p) != std::to_string(m.pid());
        });
      },
      5s));
  // Still serving on the socket they inherited.
  for (int i = 0; i < 20; ++i) CHECK(pids.count(AnsweringPid(HttpGet("127.0.0.1", *port, 2s))) == 1);
  // The master's files stay behind: its pidfile, naming the dead master, and its command
  // socket's file, where nobody answers.
  CHECK(ReadFile(m.dir().File("einhorn.pid")) == std::to_string(m.pid()));
  CHECK(FileExists(Sock(m)));
  CHECK_FALSE(ControlClient(Sock(m)).connected());
  // A new master for the same port is refused while the orphans hold it.
  const Finished again = RunToExit({"-b", "127.0.0.1:" + std::to_string(*port), "--",
                                    TEST_WORKER_BIN},
                                   10s, {"TMPDIR=" + m.dir().path()});
  CHECK(again.status.code == 1);
  CHECK(again.err.find("in use") != std::string::npos);

  orphans.KillAll();
  CHECK(PollUntil([&] { return AllGone(pids); }, 10s));
  CHECK(HttpGet("127.0.0.1", *port, 2s).empty());
}

// In a user and mount namespace of its own (no root needed): DIR becomes a 4 KiB tmpfs, filled
// up, with /dev/full bound onto DIR/full; then the master runs with -e DIR/$2, and what is left
// in DIR is listed on stdout. Exit 90: the namespace or the mounts are not allowed here.
const char* const kFullDiskScript = R"(
dir=$1; pidfile=$2; shift 2
mount -t tmpfs -o size=4k tmpfs "$dir" || exit 90
head -c 65536 /dev/zero >"$dir/fill" 2>/dev/null
touch "$dir/full" && mount --bind /dev/full "$dir/full" || exit 90
"$@" -e "$dir/$pidfile" -b "unix:$dir/../w.sock" -- "$WORKER" --report "$dir/../reports"
code=$?
ls -A "$dir"
exit $code
)";

TEST_CASE("a pidfile on a full disk, or on /dev/full, stops the start with one line") {
  if (!LookUpInPath("unshare")) {
    MESSAGE("skipped: no unshare (util-linux)");
    return;
  }
  if (const Finished probe = RunProgram({"unshare", "-rm", "true"}); probe.status.code != 0) {
    MESSAGE("skipped: no user and mount namespaces here (" << probe.err << ")");
    return;
  }
  for (const std::string pidfile : {"einhorn.pid", "full"}) {
    TempDir tmp;
    const std::string mounted = tmp.File("disk");
    REQUIRE(mkdir(mounted.c_str(), 0755) == 0);
    REQUIRE(mkdir(tmp.File("reports").c_str(), 0755) == 0);
    const Finished f = RunProgram(
        {"unshare", "-rm", "sh", "-c", kFullDiskScript, "sh", mounted, pidfile, EINHORN_BIN}, 10s,
        {"TMPDIR=" + tmp.path(), std::string("WORKER=") + TEST_WORKER_BIN});
    if (f.status.code == 90) {
      MESSAGE("skipped: no user and mount namespaces here (" << f.err << ")");
      return;
    }
    INFO("stderr: ", f.err);
    CHECK(f.status.code == 1);
    const std::string line = "einhorn-cpp: cannot write pidfile " + mounted + "/" + pidfile +
                             ": No space left on device\n";
    CHECK(f.err.size() >= line.size());
    CHECK(f.err.substr(f.err.size() - std::min(f.err.size(), line.size())) == line);
    CHECK(Count(f.err, "einhorn-cpp: ") == 1);  // the rest is the log, "einhorn-cpp[PID] info:"
    CHECK(f.out == "fill\nfull\n");              // no temp file left, /dev/full not replaced
    CHECK_FALSE(FileExists(tmp.File("w.sock")));
    CHECK_FALSE(FileExists(tmp.File("einhorn.sock")));
    CHECK(EntriesIn(tmp.File("reports")) == 0);  // no worker ever started
  }
}

}  // namespace
}  // namespace einhorn::test
