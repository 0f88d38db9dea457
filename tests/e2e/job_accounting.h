// The job accounting of the queue tests (celery_test.cc, jobs_test.cc): the example workers of
// examples/celery and examples/jobs append one line per job start and end to JOBS_RESULTS, and
// the tests add up, after resizes, upgrades and a SIGKILL, which jobs ran, twice, or not to the
// end, and how the master saw each worker end.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "harness.h"

namespace einhorn::test {

// What the workers appended to JOBS_RESULTS: "start ID PID START_NS" and
// "done ID PID START_NS END_NS".
struct JobResults {
  std::map<long, std::vector<pid_t>> starts;  // job id -> the workers that started it
  std::map<long, std::vector<pid_t>> dones;   // job id -> the workers that finished it
  std::set<std::pair<long, pid_t>> done_by;
  long lines = 0;
  long bad_lines = 0;  // neither a start nor a done that ends after it starts
};
JobResults ReadJobResults(const std::string& path);

// The jobs `ids` (all the test enqueued) against what ran, with `killed` the worker the test
// SIGKILLed. Says in a MESSAGE which job was lost, run twice elsewhere or cut short by a drain.
struct JobTally {
  long lost = 0;                   // never finished
  long duplicates = 0;             // started or finished more than once
  long duplicates_not_killed = 0;  // ... and never started on the killed worker
  long cut_by_kill = 0;            // started without a done by the same worker: the killed one
  long cut_otherwise = 0;          // ... any other worker
  std::set<pid_t> workers_seen;    // every worker that started a job
};
JobTally TallyJobs(const JobResults& r, const std::vector<long>& ids, pid_t killed);

// How the master logged each worker's end ("exit 0", "signal 9"), by pid. Its lines read
// "... einhorn-cpp[PID] LEVEL: worker PID (index I, generation G) exited with HOW after ...".
std::map<pid_t, std::string> WorkerEnds(const MasterRun& m);

// Runs einhornctl commands against the master, CHECKs that each succeeded and remembers how long
// each took, for the tests' closing MESSAGE.
class TimedCtl {
 public:
  explicit TimedCtl(const MasterRun& m);
  // `einhornctl -d SOCKET args...`, 90 s at most; `name` labels its checks and its time.
  void operator()(const std::string& name, std::vector<std::string> args);
  // "einhornctl: NAME 1.2s, ... whole test 34.5s", the whole test counted from `started`.
  std::string Summary(std::chrono::steady_clock::time_point started) const;

 private:
  std::string socket_;
  std::map<std::string, double> took_;
};

}  // namespace einhorn::test
