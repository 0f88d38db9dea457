#include "job_accounting.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "pool_query.h"

namespace einhorn::test {

JobResults ReadJobResults(const std::string& path) {
  JobResults r;
  std::istringstream in(ReadFile(path));
  std::string line;
  while (std::getline(in, line)) {
    ++r.lines;
    std::istringstream f(line);
    std::string kind;
    long id = 0, start = 0, end = 0;
    pid_t pid = 0;
    f >> kind >> id >> pid >> start;
    if (kind == "start" && f) {
      r.starts[id].push_back(pid);
    } else if (kind == "done" && (f >> end) && end >= start) {
      r.dones[id].push_back(pid);
      r.done_by.insert({id, pid});
    } else {
      ++r.bad_lines;
    }
  }
  return r;
}

JobTally TallyJobs(const JobResults& r, const std::vector<long>& ids, pid_t killed) {
  JobTally t;
  for (long id : ids) {
    const auto d = r.dones.find(id);
    if (d == r.dones.end()) {
      ++t.lost;
      MESSAGE("job " << id << " never finished");
      continue;
    }
    const auto& starts = r.starts.at(id);
    if (starts.size() > 1 || d->second.size() > 1) {
      ++t.duplicates;
      if (std::find(starts.begin(), starts.end(), killed) == starts.end()) {
        ++t.duplicates_not_killed;
        MESSAGE("job " << id << " ran " << starts.size() << " times, not on the killed worker");
      }
    }
  }
  // A start without a done by the same worker: a job cut short.
  for (const auto& [id, pids] : r.starts) {
    for (pid_t pid : pids) {
      t.workers_seen.insert(pid);
      if (r.done_by.count({id, pid}) != 0) continue;
      if (pid == killed) {
        ++t.cut_by_kill;
      } else {
        ++t.cut_otherwise;
        MESSAGE("job " << id << " started by worker " << pid << " never finished there");
      }
    }
  }
  return t;
}

std::map<pid_t, std::string> WorkerEnds(const MasterRun& m) {
  std::map<pid_t, std::string> ends;
  std::istringstream log(m.Log());
  std::string line;
  const std::string who = ": worker ";
  const std::string what = " exited with ";
  while (std::getline(log, line)) {
    const size_t w = line.find(who);
    const size_t ex = line.find(what);
    if (line.find("einhorn-cpp[") == std::string::npos || w == std::string::npos ||
        ex == std::string::npos || ex < w) {
      continue;
    }
    const pid_t pid = static_cast<pid_t>(std::atol(line.c_str() + w + who.size()));
    const size_t from = ex + what.size();
    ends[pid] = line.substr(from, line.find(" after", from) - from);
  }
  return ends;
}

TimedCtl::TimedCtl(const MasterRun& m) : socket_(Sock(m)) {}

void TimedCtl::operator()(const std::string& name, std::vector<std::string> args) {
  INFO(name);
  args.insert(args.begin(), {EINHORNCTL_BIN, "-d", socket_});
  const auto t0 = std::chrono::steady_clock::now();
  const Finished f = RunProgram(args, 90s);
  took_[name] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK_MESSAGE(f.status.code == 0, f.out << f.err);
  CHECK_FALSE(f.status.signaled);
}

std::string TimedCtl::Summary(std::chrono::steady_clock::time_point started) const {
  std::ostringstream times;
  times << "einhornctl: ";
  for (const auto& [name, s] : took_) times << name << " " << s << "s, ";
  times << "whole test "
        << std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() << "s";
  return times.str();
}

}  // namespace einhorn::test
