// Background-job workers on a real queue (examples/jobs: Ruby + beaneater on beanstalkd) under the
// real master: while thousands of jobs run, the pool is resized up and down, upgraded twice and
// loses a worker to SIGKILL, and afterwards the job accounting must add up. Every job ran to the
// end at least once, a job ran twice only because its worker was SIGKILLed while holding it,
// and no drained worker (dec, set, upgrade) left a job unfinished.
// Skipped with a message when ruby, the beaneater gem or beanstalkd is missing (CI installs
// them: scripts/install-deps test).
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
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

// examples/jobs in the source tree, found from this file's path (CMake compiles it by its
// absolute path).
std::string JobsExampleDir() {
  std::string here = __FILE__;
  return here.substr(0, here.rfind("tests/e2e/")) + "examples/jobs";
}

// beanstalkd on a loopback port of the kernel's choosing, with no race for the port: the test
// binds and listens, and beanstalkd takes the socket over by systemd socket activation (fd 3,
// LISTEN_FDS=1, LISTEN_PID).
class Beanstalkd {
 public:
  explicit Beanstalkd(const std::string& program) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(fd, 128) == 0);
    socklen_t len = sizeof a;
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    Process::Options o;
    o.argv = {program};
    o.pass_fds = {fd};
    o.set_listen_pid = true;
    o.extra_env = {"LISTEN_FDS=1"};
    o.unset_env = {"LISTEN_FDNAMES"};
    o.stdout_path = dir_.File("beanstalkd.log");
    o.stderr_path = dir_.File("beanstalkd.log");
    proc_ = Process::Start(o);
    close(fd);
  }
  int port() const { return port_; }
  std::string url() const { return "127.0.0.1:" + std::to_string(port_); }
  bool running() { return !proc_->WaitExit(0ms).has_value(); }

 private:
  TempDir dir_;
  int port_ = 0;
  std::optional<Process> proc_;
};

// A minimal beanstalkd client (the protocol is lines of text): blocking socket, 10 s timeouts.
class BeanstalkClient {
 public:
  explicit BeanstalkClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~BeanstalkClient() { close(fd_); }
  BeanstalkClient(const BeanstalkClient&) = delete;
  BeanstalkClient& operator=(const BeanstalkClient&) = delete;

  bool connected() const { return connected_; }

  // Sends `command` (CRLF added) and returns the first reply line without its CRLF, "" on
  // error. An "OK <bytes>" reply has its body (a YAML map) parsed into `body`.
  std::string Ask(const std::string& command, std::map<std::string, std::string>* body = nullptr) {
    const std::string out = command + "\r\n";
    if (send(fd_, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
      return "";
    }
    std::string line;
    if (!ReadUntil("\r\n", &line)) return "";
    if (line.rfind("OK ", 0) == 0) {
      const size_t bytes = std::stoul(line.substr(3));
      std::string yaml;
      if (!ReadBytes(bytes + 2, &yaml)) return "";
      std::istringstream in(yaml);
      std::string l;
      while (body != nullptr && std::getline(in, l)) {
        const size_t colon = l.find(": ");
        if (colon != std::string::npos) (*body)[l.substr(0, colon)] = l.substr(colon + 2);
      }
    }
    return line;
  }
  // `put` on the tube in use; true if INSERTED.
  bool Put(const std::string& data, int pri, int ttr) {
    return Ask("put " + std::to_string(pri) + " 0 " + std::to_string(ttr) + " " +
               std::to_string(data.size()) + "\r\n" + data)
               .rfind("INSERTED ", 0) == 0;
  }
  // A number from `stats` (all tubes) or `stats-tube NAME`; -1 if unavailable.
  long Stat(const std::string& command, const std::string& key) {
    std::map<std::string, std::string> s;
    if (Ask(command, &s).rfind("OK ", 0) != 0 || s.count(key) == 0) return -1;
    return std::atol(s[key].c_str());
  }

 private:
  bool Fill() {
    char buf[4096];
    const ssize_t n = read(fd_, buf, sizeof buf);
    if (n <= 0) return false;
    pending_.append(buf, static_cast<size_t>(n));
    return true;
  }
  bool ReadUntil(const std::string& end, std::string* out) {
    size_t at;
    while ((at = pending_.find(end)) == std::string::npos) {
      if (!Fill()) return false;
    }
    *out = pending_.substr(0, at);
    pending_.erase(0, at + end.size());
    return true;
  }
  bool ReadBytes(size_t n, std::string* out) {
    while (pending_.size() < n) {
      if (!Fill()) return false;
    }
    *out = pending_.substr(0, n);
    pending_.erase(0, n);
    return true;
  }
  int fd_ = -1;
  bool connected_ = false;
  std::string pending_;
};

constexpr int kTtr = 5;  // seconds; well above a job's few ms (see the slow job below)

// Keeps a backlog of 5 ms jobs on the "emails" tube while the test resizes and upgrades the
// pool, so that every worker is busy (holding a job) whenever it is told to drain. Ids go on
// from `first_id`; at most `cap` jobs in all.
class Feeder {
 public:
  Feeder(int port, long first_id, long cap)
      : next_id_(first_id), first_id_(first_id), cap_(cap), thread_([this, port] {
          BeanstalkClient c(port);
          if (!c.connected() || c.Ask("use emails") != "USING emails") {
            failed_ = true;
            return;
          }
          while (!stop_) {
            const long ready = c.Stat("stats-tube emails", "current-jobs-ready");
            if (ready < 0) {
              failed_ = true;
              return;
            }
            if (next_id_ > first_id_) min_backlog_ = std::min(min_backlog_.load(), ready);
            for (long i = ready; i < kBacklog && next_id_ < cap_; ++i) {
              if (!c.Put("{\"id\":" + std::to_string(next_id_.load()) + "}", 1000, kTtr)) {
                failed_ = true;
                return;
              }
              ++next_id_;
            }
            std::this_thread::sleep_for(10ms);
          }
        }) {}
  ~Feeder() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  long next_id() const { return next_id_; }
  bool failed() const { return failed_; }
  // The fewest jobs seen waiting once the feeder had started: > 0 means the workers never ran
  // out of work.
  long min_backlog() const { return min_backlog_; }

 private:
  static constexpr long kBacklog = 500;
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::atomic<long> next_id_;
  std::atomic<long> min_backlog_{LONG_MAX};
  const long first_id_;
  const long cap_;
  std::thread thread_;
};

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// ruby (with the beaneater gem) and beanstalkd, or nullopt after saying which is missing.
std::optional<std::pair<std::string, std::string>> JobsTools() {
  const auto ruby = LookUpInPath("ruby");
  const auto beanstalkd = LookUpInPath("beanstalkd");
  if (!ruby || !beanstalkd) {
    MESSAGE("skipped: ruby or beanstalkd is not installed (it is in CI)");
    return std::nullopt;
  }
  if (RunProgram({*ruby, "-e", "require 'beaneater'"}, 30s).status.code != 0) {
    MESSAGE("skipped: the beaneater gem is not installed (ruby-beaneater, it is in CI)");
    return std::nullopt;
  }
  return std::pair{*ruby, *beanstalkd};
}

// Every job deleted: none ready, reserved or delayed (buried ones are checked apart).
bool QueueEmpty(BeanstalkClient& stats) {
  return stats.Stat("stats", "current-jobs-ready") == 0 &&
         stats.Stat("stats", "current-jobs-reserved") == 0 &&
         stats.Stat("stats", "current-jobs-delayed") == 0;
}

// The ids the feeder enqueued: 1 to last.
std::vector<long> IdsThrough(long last) {
  std::vector<long> ids;
  for (long id = 1; id <= last; ++id) ids.push_back(id);
  return ids;
}

bool PoolAtRest(const MasterRun& m, int n) {
  const auto st = Status(m);
  return st && st->ready == n && st->booting == 0 && st->draining == 0 &&
         static_cast<int>(st->workers.size()) == n;
}

TEST_CASE(
    "jobs: beanstalkd workers lose and cut short no job through resizes, upgrades and a kill") {
  const auto tools = JobsTools();
  if (!tools) return;
  const auto& [ruby, beanstalkd_bin] = *tools;
  const auto started = Clock::now();
  const std::string example = JobsExampleDir();
  Beanstalkd queue(beanstalkd_bin);
  TempDir results_dir;
  const std::string results = results_dir.File("results");
  const std::vector<std::string> env = {"BEANSTALKD_URL=" + queue.url(), "JOBS_RESULTS=" + results,
                                        "JOBS_SLEEP_MS=5"};

  MasterRun m({"-n", "4", "-m", "manual"}, {ruby, example + "/bin/work"}, env);
  REQUIRE_MESSAGE(PollUntil([&] { return PoolAtRest(m, 4); }, 30s), m.Log());

  // The example producer enqueues the first 2000 jobs; the feeder keeps a backlog after them.
  const long first_batch = 2000;
  const Finished produced = RunProgram({ruby, example + "/bin/produce", "2000"}, 30s,
                                       {"BEANSTALKD_URL=" + queue.url(), "JOB_TTR=5"});
  REQUIRE_MESSAGE(produced.status.code == 0, produced.err);
  Feeder feeder(queue.port(), first_batch + 1, 40000);

  TimedCtl ctl(m);

  ctl("set 8", {"set", "8", "--wait"});
  CHECK(PollUntil([&] { return PoolAtRest(m, 8); }, 10s));
  ctl("upgrade 1", {"upgrade", "--wait"});

  // SIGKILL a worker while it holds a job: a slow one (3 s, long enough for the poll below to
  // see it start on a loaded machine) put in front of the backlog, so the test knows which job
  // that worker held. beanstalkd gives it back when the connection drops (or after its TTR if
  // the worker merely hung) and another worker runs it again.
  const long slow_id = 1000000;
  pid_t killed = 0;
  {
    BeanstalkClient c(queue.port());
    REQUIRE(c.connected());
    REQUIRE(c.Ask("use emails") == "USING emails");
    REQUIRE(c.Put("{\"id\":" + std::to_string(slow_id) + ",\"ms\":3000}", 0, 10 * kTtr));
    REQUIRE(PollUntil(
        [&] {
          const auto s = ReadJobResults(results).starts;
          const auto it = s.find(slow_id);
          if (it != s.end()) killed = it->second.front();
          return killed != 0;
        },
        10s));
    REQUIRE(kill(killed, SIGKILL) == 0);
  }
  CHECK(PollUntil([&] { return WorkerEnds(m)[killed] == "signal 9"; }, 10s));
  CHECK(PollUntil([&] { return PoolAtRest(m, 8); }, 30s));

  ctl("set 3", {"set", "3", "--wait"});
  ctl("upgrade 2", {"upgrade", "--wait"});
  ctl("set 6", {"set", "6", "--wait"});
  CHECK(queue.running());
  feeder.Stop();
  CHECK_FALSE(feeder.failed());
  // Jobs were waiting all along: every worker held a job whenever it was told to drain.
  CHECK(feeder.min_backlog() > 0);
  const long last_id = feeder.next_id() - 1;

  // Wait for the queue to empty: every job deleted, none reserved, delayed or buried.
  BeanstalkClient stats(queue.port());
  REQUIRE(stats.connected());
  REQUIRE_MESSAGE(PollUntil([&] { return QueueEmpty(stats); }, 30s), m.Log());
  CHECK(stats.Stat("stats", "current-jobs-buried") == 0);
  CHECK(stats.Stat("stats", "total-jobs") == last_id + 1);  // + the slow one
  CHECK(stats.Stat("stats", "cmd-delete") == last_id + 1);

  // The pool ends at the requested size, of the third generation.
  REQUIRE(PollUntil([&] { return PoolAtRest(m, 6); }, 10s));
  const auto st = Status(m);
  REQUIRE(st.has_value());
  CHECK(st->target == 6);
  for (const auto& w : st->workers) CHECK(w.generation == 3);
  const std::set<pid_t> alive = Pids(m);

  // The accounting.
  const JobResults r = ReadJobResults(results);
  CHECK(r.bad_lines == 0);
  std::vector<long> ids = IdsThrough(last_id);
  ids.push_back(slow_id);
  const auto [lost, duplicates, duplicates_not_killed, cut_by_kill, cut_otherwise, workers_seen] =
      TallyJobs(r, ids, killed);
  // Every worker that is gone, but the killed one, was drained and exited 0: 8 by the first
  // upgrade, 5 by `set 3`, 3 by the second upgrade.
  const auto exits = WorkerEnds(m);
  long drained = 0;
  for (const auto& [pid, how] : exits) {
    if (pid == killed) continue;
    CHECK_MESSAGE(how == "exit 0", "worker " << pid << " " << how);
    if (m.LogHas("jobs worker " + std::to_string(pid) + ": drained after ")) ++drained;
  }
  CHECK(drained == 16);
  CHECK(exits.size() == 17);
  for (pid_t pid : workers_seen) CHECK((exits.count(pid) == 1 || alive.count(pid) == 1));

  const auto slow_dones = r.dones.find(slow_id);
  REQUIRE(slow_dones != r.dones.end());
  CHECK(slow_dones->second.size() == 1);
  CHECK(slow_dones->second.front() != killed);
  CHECK(r.starts.at(slow_id).size() == 2);

  CHECK(lost == 0);
  CHECK(duplicates_not_killed == 0);
  CHECK(cut_otherwise == 0);
  CHECK(cut_by_kill == 1);
  CHECK(duplicates == 1);
  MESSAGE("jobs: " << ids.size() << " enqueued, " << r.dones.size() << " completed, " << lost
                   << " lost, " << duplicates << " run twice (all on the SIGKILLed worker "
                   << killed << "), " << cut_by_kill << " cut short by the SIGKILL, "
                   << cut_otherwise << " cut short by a drain; " << drained << " workers drained, "
                   << workers_seen.size() << " workers ran jobs, never fewer than "
                   << feeder.min_backlog() << " jobs waiting");
  MESSAGE(ctl.Summary(started));

  // A gentle end: SIGTERM to the master stops the idle workers, which exit 0.
  REQUIRE(m.process().Signal(SIGTERM));
  const auto status = m.process().WaitExit(15s);
  REQUIRE(status.has_value());
  CHECK(status->code == 0);
  for (pid_t pid : alive) CHECK(WorkerEnds(m)[pid] == "exit 0");
}

// MAX_JOBS: each worker asks to be recycled (worker:recycle) after that many jobs, so under a
// steady stream the pool recycles over and over; each old worker is drained only once its
// replacement is ready, and finishes the job in hand. No job is lost, cut short or run twice
// (no worker is SIGKILLed here), and the ready count never drops below N.
TEST_CASE("jobs: MAX_JOBS recycles under a steady stream lose and cut short no job") {
  const auto tools = JobsTools();
  if (!tools) return;
  const auto& [ruby, beanstalkd_bin] = *tools;
  const std::string example = JobsExampleDir();
  Beanstalkd queue(beanstalkd_bin);
  TempDir results_dir;
  const std::string results = results_dir.File("results");
  const std::vector<std::string> env = {"BEANSTALKD_URL=" + queue.url(), "JOBS_RESULTS=" + results,
                                        "JOBS_SLEEP_MS=5", "MAX_JOBS=100"};
  MasterRun m({"-n", "4", "-m", "manual"}, {ruby, example + "/bin/work"}, env);
  REQUIRE_MESSAGE(PollUntil([&] { return PoolAtRest(m, 4); }, 30s), m.Log());
  ReadySampler sampler(m);
  Feeder feeder(queue.port(), 1, 6000);
  auto recycles = [&m] {
    return static_cast<long>(Count(m.Log(), "recycled (worker): its replacement is ready"));
  };
  CHECK_MESSAGE(PollUntil([&] { return recycles() >= 30 || feeder.next_id() >= 6000; }, 120s),
                m.Log());
  feeder.Stop();
  CHECK_FALSE(feeder.failed());
  const long last_id = feeder.next_id() - 1;
  BeanstalkClient stats(queue.port());
  REQUIRE(stats.connected());
  REQUIRE_MESSAGE(PollUntil([&] { return QueueEmpty(stats); }, 60s), m.Log());
  REQUIRE(PollUntil([&] { return PoolAtRest(m, 4); }, 30s));
  sampler.Stop();
  CHECK(stats.Stat("stats", "current-jobs-buried") == 0);
  CHECK(stats.Stat("stats", "cmd-delete") == last_id);

  const JobResults r = ReadJobResults(results);
  CHECK(r.bad_lines == 0);
  std::vector<long> ids = IdsThrough(last_id);
  const auto [lost, duplicates, duplicates_not_killed, cut_by_kill, cut_otherwise, workers_seen] =
      TallyJobs(r, ids, 0);
  long drained = 0;
  for (const auto& [pid, how] : WorkerEnds(m)) {
    CHECK_MESSAGE(how == "exit 0", "worker " << pid << " " << how);
    if (m.LogHas("jobs worker " + std::to_string(pid) + ": drained after ")) ++drained;
  }
  CHECK(recycles() >= 10);
  CHECK(lost == 0);
  CHECK(duplicates == 0);
  CHECK(cut_otherwise == 0);
  CHECK(sampler.min_ready() == 4);
  MESSAGE("jobs with MAX_JOBS=100 on 4 workers:\n"
          << "  enqueued            " << ids.size() << "\n"
          << "  completed           " << r.dones.size() << "\n"
          << "  lost                " << lost << "\n"
          << "  run twice           " << duplicates << " (no worker was SIGKILLed)\n"
          << "  cut short by drain  " << cut_otherwise << "\n"
          << "  recycles            " << recycles() << " (worker:recycle)\n"
          << "  workers drained     " << drained << ", all exit 0\n"
          << "  workers ran jobs    " << workers_seen.size() << "\n"
          << "  fewest ready        " << sampler.min_ready() << " of 4 (" << sampler.samples()
          << " samples)\n"
          << "  fewest jobs waiting " << feeder.min_backlog());

  REQUIRE(m.process().Signal(SIGTERM));
  const auto status = m.process().WaitExit(15s);
  REQUIRE(status.has_value());
  CHECK(status->code == 0);
}


// --max-worker-memory under a steady stream of jobs: every worker leaks on every job, so the
// pool is recycled many times over (a replacement first, then the drain: the old worker
// finishes the job in hand). No job is lost, none is cut short, none runs twice.
TEST_CASE("jobs: workers that leak on every job are recycled by memory, no job lost or cut short") {
  const auto tools = JobsTools();
  if (!tools) return;
  const auto& [ruby, beanstalkd_bin] = *tools;
  const auto started = Clock::now();
  const std::string example = JobsExampleDir();
  Beanstalkd queue(beanstalkd_bin);
  TempDir results_dir;
  const std::string results = results_dir.File("results");
  // 256 KiB kept per job: a worker passes the soft limit after about 100 jobs.
  const std::vector<std::string> env = {"BEANSTALKD_URL=" + queue.url(),
                                        "JOBS_RESULTS=" + results, "JOBS_SLEEP_MS=5",
                                        "JOBS_LEAK_KB=256"};
  MasterRun m({"-n", "4", "-m", "manual", "--max-worker-memory", "60M,hard=400M",
               "--memory-interval", "0.2"},
              {ruby, example + "/bin/work"}, env);
  REQUIRE_MESSAGE(PollUntil([&] { return PoolAtRest(m, 4); }, 30s), m.Log());
  Feeder feeder(queue.port(), 1, 40000);
  const bool recycled =
      PollUntil([&] { return Count(m.Log(), "(memory, age") >= 12; }, 120s);
  feeder.Stop();
  CHECK_FALSE(feeder.failed());
  REQUIRE_MESSAGE(recycled, m.Log());
  const long last_id = feeder.next_id() - 1;

  BeanstalkClient stats(queue.port());
  REQUIRE(stats.connected());
  REQUIRE_MESSAGE(PollUntil([&] { return QueueEmpty(stats); }, 60s), m.Log());
  CHECK(stats.Stat("stats", "current-jobs-buried") == 0);
  CHECK(stats.Stat("stats", "cmd-delete") == last_id);

  const JobResults r = ReadJobResults(results);
  CHECK(r.bad_lines == 0);
  std::vector<long> ids = IdsThrough(last_id);
  const auto [lost, duplicates, duplicates_not_killed, cut_by_kill, cut_otherwise, workers_seen] =
      TallyJobs(r, ids, 0);
  const std::string log = m.Log();
  const size_t memory_recycles = Count(log, "(memory, age");
  const size_t hard = Count(log, "(memory_hard");
  // Every worker that is gone was drained after its replacement was ready, and exited 0.
  long drained = 0, killed = 0;
  for (const auto& [pid, how] : WorkerEnds(m)) {
    CHECK_MESSAGE(how == "exit 0", "worker " << pid << " " << how);
    killed += how == "signal 9";
    if (m.LogHas("jobs worker " + std::to_string(pid) + ": drained after ")) ++drained;
  }
  CHECK(lost == 0);
  CHECK(duplicates == 0);
  CHECK(cut_otherwise == 0);
  CHECK(cut_by_kill == 0);
  CHECK(hard == 0);
  CHECK(killed == 0);
  MESSAGE("memory recycles under jobs:\n"
          << "| jobs enqueued | completed | lost | run twice | cut short by a drain | "
             "memory recycles | hard | workers drained | SIGKILLed | workers that ran jobs |\n"
          << "|---|---|---|---|---|---|---|---|---|---|\n"
          << "| " << ids.size() << " | " << r.dones.size() << " | " << lost << " | "
          << duplicates << " | " << cut_otherwise << " | " << memory_recycles << " | " << hard
          << " | " << drained << " | " << killed << " | " << workers_seen.size() << " |");
  MESSAGE("whole test " << std::chrono::duration<double>(Clock::now() - started).count() << " s");
  REQUIRE(m.process().Signal(SIGTERM));
  CHECK(m.process().WaitExit(30s).has_value());
}

}  // namespace
}  // namespace einhorn::test
