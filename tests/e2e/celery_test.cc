// Celery workers on a real redis (examples/celery) under the real master: while jobs run, the
// pool is resized up and down, upgraded once and loses a worker to SIGKILL while it holds a job,
// and afterwards the job accounting must add up. Every job ran to the end at least once, only
// the killed worker's job ran twice (its message was never acknowledged: redis hands it out
// again once the visibility timeout has passed and a worker looks), and no drained worker left
// a job unfinished.
// Skipped with a message when redis-server or a python3 with celery and redis is missing (CI
// installs them: scripts/install-deps test).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"
#include "job_accounting.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

using Clock = std::chrono::steady_clock;

// How long a message may stay unacknowledged before redis hands it out again: above any job's
// run time here (20 ms) with room for a loaded machine, and short enough that the test waits
// for it.
constexpr auto kVisibilityTimeout = 3s;

// examples/celery in the source tree, found from this file's path (CMake compiles it by its
// absolute path).
std::string CeleryExampleDir() {
  std::string here = __FILE__;
  return here.substr(0, here.rfind("tests/e2e/")) + "examples/celery";
}

// A python3 that can import celery and redis: the one in PATH, else Debian's (a pyenv or venv
// python in PATH does not see the Debian packages).
std::optional<std::string> CeleryPython() {
  std::vector<std::string> candidates;
  if (auto p = LookUpInPath("python3")) candidates.push_back(*p);
  candidates.push_back("/usr/bin/python3");
  for (const auto& py : candidates) {
    if (access(py.c_str(), X_OK) == 0 &&
        RunProgram({py, "-c", "import celery, redis"}, 30s).status.code == 0) {
      return py;
    }
  }
  return std::nullopt;
}

// A blocking RESP client on redis's UNIX socket, 10 s timeouts; enough for integer replies.
class RedisClient {
 public:
  explicit RedisClient(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RedisClient() {
    if (fd_ >= 0) close(fd_);
  }
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  bool connected() const { return connected_; }

  // Sends the command and returns the first reply line without its CRLF ("" on error):
  // ":42" for an integer, "+PONG" for a status, "-ERR ..." for an error.
  std::string Ask(const std::vector<std::string>& args) {
    if (!connected_) return "";
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    if (send(fd_, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
      return "";
    }
    size_t at;
    while ((at = pending_.find("\r\n")) == std::string::npos) {
      char buf[512];
      const ssize_t n = read(fd_, buf, sizeof buf);
      if (n <= 0) return "";
      pending_.append(buf, static_cast<size_t>(n));
    }
    std::string line = pending_.substr(0, at);
    pending_.erase(0, at + 2);
    return line;
  }
  // An integer reply (LLEN, HLEN...), -1 if the reply is anything else.
  long Int(const std::vector<std::string>& args) {
    const std::string r = Ask(args);
    return r.size() > 1 && r[0] == ':' ? std::atol(r.c_str() + 1) : -1;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string pending_;
};

// redis-server on a UNIX socket in a private directory (no TCP port, so nothing to race for),
// nothing saved to disk.
class RedisServer {
 public:
  explicit RedisServer(const std::string& program) : socket_(dir_.File("redis.sock")) {
    Process::Options o;
    o.argv = {program,    "--port", "0", "--unixsocket", socket_, "--unixsocketperm",
              "700",      "--save", "",  "--appendonly", "no",    "--dir",
              dir_.path()};
    o.stdout_path = dir_.File("redis.log");
    o.stderr_path = dir_.File("redis.log");
    proc_ = Process::Start(o);
  }
  const std::string& socket_path() const { return socket_; }
  std::string url() const { return "redis+socket://" + socket_; }
  bool running() { return !proc_->WaitExit(0ms).has_value(); }
  std::string log() const { return ReadFile(dir_.File("redis.log")); }

 private:
  TempDir dir_;
  std::string socket_;
  std::optional<Process> proc_;
};

// Watches how many jobs wait in the queue (LLEN jobs) from `Start` to `Stop`: the fewest seen
// > 0 means no worker ever ran out of work, so every drained worker held a job when told.
class BacklogWatch {
 public:
  explicit BacklogWatch(const std::string& socket_path)
      : thread_([this, socket_path] {
          RedisClient c(socket_path);
          while (!stop_) {
            const long n = c.Int({"LLEN", "jobs"});
            if (n < 0) {
              failed_ = true;
              return;
            }
            fewest_ = std::min(fewest_.load(), n);
            std::this_thread::sleep_for(5ms);
          }
        }) {}
  ~BacklogWatch() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  bool failed() const { return failed_; }
  long fewest() const { return fewest_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::atomic<long> fewest_{LONG_MAX};
  std::thread thread_;
};

// The job `pid` started and has not finished, 0 if none.
long JobInHand(const JobResults& r, pid_t pid) {
  for (const auto& [id, pids] : r.starts) {
    if (std::find(pids.begin(), pids.end(), pid) != pids.end() && r.done_by.count({id, pid}) == 0) {
      return id;
    }
  }
  return 0;
}

// "enqueued K jobs (ids A..B), never fewer than W waiting": K.
long EnqueuedCount(const std::string& producer_out) {
  const size_t at = producer_out.rfind("enqueued ");
  return at == std::string::npos ? -1 : std::atol(producer_out.c_str() + at + 9);
}

TEST_CASE(
    "celery: redis workers lose and cut short no job through resizes, an upgrade and a kill") {
  const auto redis_bin = LookUpInPath("redis-server");
  if (!redis_bin) {
    MESSAGE("skipped: redis-server is not installed (it is in CI)");
    return;
  }
  const auto python = CeleryPython();
  if (!python) {
    MESSAGE("skipped: no python3 with celery and redis (python3-celery python3-redis, in CI)");
    return;
  }
  const auto started = Clock::now();
  const std::string example = CeleryExampleDir();
  RedisServer redis(*redis_bin);
  REQUIRE_MESSAGE(
      PollUntil([&] { return RedisClient(redis.socket_path()).Ask({"PING"}) == "+PONG"; }, 30s),
      redis.log());
  TempDir results_dir;
  const std::string results = results_dir.File("results");
  const std::string visibility =
      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kVisibilityTimeout).count());
  const std::vector<std::string> env = {"CELERY_BROKER_URL=" + redis.url(),
                                        "CELERY_VISIBILITY_TIMEOUT=" + visibility,
                                        "JOBS_RESULTS=" + results, "JOBS_SLEEP_MS=20"};

  MasterRun m({"-n", "4", "-m", "manual"}, {*python, example + "/bin/work"}, env);
  REQUIRE_MESSAGE(PollUntil([&] { return PoolSettled(m, 4, 1); }, 60s), m.Log());

  // The example producer keeps about 150 jobs waiting (it waits while the queue is that long)
  // until the test stops it, so the workers never run dry while the pool changes.
  Process::Options po;
  po.argv = {*python, example + "/bin/produce", "5000"};
  po.extra_env = {"CELERY_BROKER_URL=" + redis.url(), "BACKLOG=150"};
  po.stdout_path = results_dir.File("producer.out");
  po.stderr_path = results_dir.File("producer.err");
  Process producer = Process::Start(po);
  RedisClient queue(redis.socket_path());
  REQUIRE(queue.connected());
  auto waiting = [&] { return queue.Int({"LLEN", "jobs"}); };
  REQUIRE_MESSAGE(PollUntil([&] { return waiting() >= 100; }, 30s),
                  ReadFile(results_dir.File("producer.err")));
  BacklogWatch backlog(redis.socket_path());

  TimedCtl ctl(m);

  ctl("set 6", {"set", "6", "--wait"});
  CHECK(PollUntil([&] { return PoolSettled(m, 6, 1); }, 10s));

  // SIGKILL a worker while it holds a job. The test freezes a worker (SIGSTOP) so that what it
  // holds cannot change while the test looks: its "start" line without a "done" is the job in
  // hand, whose message is taken and unacknowledged. A worker frozen between two jobs goes on
  // (SIGCONT) and the test tries another.
  pid_t killed = 0;
  long held = 0;
  REQUIRE(PollUntil(
      [&] {
        for (pid_t pid : Pids(m)) {
          if (kill(pid, SIGSTOP) != 0) continue;
          if (PollUntil([&] { return ProcessState(pid) == 'T'; }, 10s)) {
            held = JobInHand(ReadJobResults(results), pid);
          }
          if (held != 0) {
            killed = pid;
            return true;
          }
          kill(pid, SIGCONT);
        }
        return false;
      },
      30s, 50ms));
  // The message was taken before the job started: it is visible again by then.
  const auto visible_again = Clock::now() + kVisibilityTimeout + 500ms;
  REQUIRE(kill(killed, SIGKILL) == 0);
  CHECK(PollUntil([&] { return WorkerEnds(m)[killed] == "signal 9"; }, 10s));
  CHECK(PollUntil([&] { return PoolSettled(m, 6, 1); }, 60s));
  CHECK(queue.Int({"HLEN", "unacked"}) >= 1);  // the killed worker's message, at least

  ctl("set 3", {"set", "3", "--wait"});
  // kombu's redis transport looks for messages unacknowledged for longer than the visibility
  // timeout when a worker starts consuming (and then only about every 100 s per worker): once
  // the timeout has passed, the upgrade's new workers put the killed worker's job back.
  CHECK(PollUntil([&] { return Clock::now() >= visible_again; }, kVisibilityTimeout + 1s, 50ms));
  ctl("upgrade", {"upgrade", "--wait"});
  ctl("set 5", {"set", "5", "--wait"});
  CHECK(redis.running());
  backlog.Stop();
  CHECK_FALSE(backlog.failed());
  // Jobs were waiting all along: every worker held a job whenever it was told to drain.
  CHECK(backlog.fewest() > 0);

  REQUIRE(producer.Signal(SIGTERM));
  const auto produced = producer.WaitExit(30s);
  REQUIRE(produced.has_value());
  CHECK(produced->code == 0);
  const std::string producer_out = ReadFile(results_dir.File("producer.out"));
  const long last_id = EnqueuedCount(producer_out);
  REQUIRE_MESSAGE(last_id > 0, producer_out << ReadFile(results_dir.File("producer.err")));

  // Wait for the queue to empty: nothing waiting, nothing taken and unacknowledged.
  auto queue_empty = [&] { return waiting() == 0 && queue.Int({"HLEN", "unacked"}) == 0; };
  REQUIRE_MESSAGE(PollUntil(queue_empty, 60s, 50ms), m.Log());

  // The pool ends at the requested size, of the second generation.
  REQUIRE(PollUntil([&] { return PoolSettled(m, 5, 2); }, 10s));
  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->target == 5);
  const std::set<pid_t> alive = Pids(m);

  // The accounting.
  const JobResults r = ReadJobResults(results);
  CHECK(r.bad_lines == 0);
  std::vector<long> ids;
  for (long id = 1; id <= last_id; ++id) ids.push_back(id);
  const auto [lost, duplicates, duplicates_not_killed, cut_by_kill, cut_otherwise, workers_seen] =
      TallyJobs(r, ids, killed);
  CHECK(r.dones.size() == ids.size());  // no job the test did not enqueue
  // Every worker that is gone, but the killed one, was drained and exited 0: 3 by `set 3`,
  // 3 by the upgrade.
  const auto ends = WorkerEnds(m);
  long drained = 0;
  for (const auto& [pid, how] : ends) {
    if (pid == killed) continue;
    CHECK_MESSAGE(how == "exit 0", "worker " << pid << " " << how);
    if (m.LogHas("celery worker " + std::to_string(pid) + ": drained after ")) ++drained;
  }
  CHECK(drained == 6);
  CHECK(ends.size() == 7);
  for (pid_t pid : workers_seen) CHECK((ends.count(pid) == 1 || alive.count(pid) == 1));

  // The killed worker's job ran again elsewhere, to the end, once.
  const auto held_dones = r.dones.find(held);
  REQUIRE(held_dones != r.dones.end());
  CHECK(held_dones->second.size() == 1);
  CHECK(held_dones->second.front() != killed);
  CHECK(r.starts.at(held).size() == 2);

  CHECK(lost == 0);
  CHECK(duplicates_not_killed == 0);
  CHECK(cut_otherwise == 0);
  CHECK(cut_by_kill == 1);
  CHECK(duplicates == 1);
  MESSAGE("celery: " << ids.size() << " enqueued, " << r.dones.size() << " completed, " << lost
                     << " lost, " << duplicates << " run twice (job " << held
                     << ", held by the SIGKILLed worker " << killed << "), " << cut_by_kill
                     << " cut short by the SIGKILL, " << cut_otherwise << " cut short by a drain; "
                     << drained << " workers drained, " << workers_seen.size()
                     << " workers ran jobs, never fewer than " << backlog.fewest()
                     << " jobs waiting");
  MESSAGE(ctl.Summary(started));

  // A gentle end: SIGINT to the master drains the idle workers, which exit 0.
  REQUIRE(m.process().Signal(SIGINT));
  const auto status = m.process().WaitExit(30s);
  REQUIRE(status.has_value());
  CHECK(status->code == 0);
  for (pid_t pid : alive) CHECK(WorkerEnds(m)[pid] == "exit 0");
}

}  // namespace
}  // namespace einhorn::test
