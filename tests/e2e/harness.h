// Runs the real einhorn-cpp binary with test_worker (or the example HTTP worker) and reads back
// what happened: the master's log, the workers' self-reports, the live process tree.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "proc.h"

namespace einhorn::test {

using namespace std::chrono_literals;

// What one test_worker wrote about itself in DIR/<pid>.env.
using Report = std::map<std::string, std::string>;

class MasterRun {
 public:
  // Starts `einhorn-cpp FLAGS -- WORKER...` with TMPDIR set to a fresh directory (so the default
  // pid and lock files are private to the test) and the master's stderr in a log file.
  // `worker` may use "{reports}" which is replaced by the report directory.
  // `launcher` runs first and execs the master (e.g. systemd-socket-activate ... --); "{dir}"
  // in it is replaced by the test directory (TMPDIR).
  MasterRun(std::vector<std::string> flags, std::vector<std::string> worker,
            std::vector<std::string> extra_env = {}, std::vector<std::string> launcher = {});

  pid_t pid() const { return proc_.pid(); }
  Process& process() { return proc_; }
  const TempDir& dir() const { return dir_; }
  std::string reports_dir() const { return dir_.File("reports"); }
  std::string Log() const { return ReadFile(log_path_); }
  bool LogHas(const std::string& needle) const { return Log().find(needle) != std::string::npos; }
  // Polls the log for `needle`.
  bool WaitForLog(const std::string& needle, std::chrono::milliseconds timeout = 10s) const;

  // Every report written so far, keyed by pid.
  std::map<pid_t, Report> Reports() const;
  // Reports of the master's live children.
  std::map<pid_t, Report> LiveWorkers() const;
  // Waits until exactly n live children have written their reports.
  bool WaitForWorkers(size_t n, std::chrono::milliseconds timeout = 10s) const;
  // Signals a worker received, in order (from DIR/<pid>.signals).
  std::vector<std::string> SignalsOf(pid_t worker) const;
  // The real port of the i-th TCP listener, from the master's "listening on" log line.
  std::optional<int> Port(size_t index = 0) const;

 private:
  TempDir dir_;
  std::string log_path_;
  Process proc_;
};

// The pid in the example HTTP worker's "hello from worker PID" body, or 0.
pid_t AnsweringPid(const std::string& body);
// `pid` is a direct child of `master`.
bool IsChild(pid_t master, pid_t pid);

// Runs `body` in a forked child as nobody (uid and gid 65534, no groups); its exit code (99:
// the switch failed, 98: it did not exit normally). Needs root.
int AsNobody(const std::function<int()>& body);

// Runs einhorn-cpp to completion (it must exit within `timeout`) and returns its exit status and
// stderr, for usage and startup errors.
struct Finished {
  core::ExitStatus status;
  std::string err;
  std::string out;
};
Finished RunToExit(std::vector<std::string> args, std::chrono::milliseconds timeout = 10s,
                   std::vector<std::string> extra_env = {});
// The same for any program (argv[0]), e.g. einhornctl; stdin is inherited.
Finished RunProgram(std::vector<std::string> argv, std::chrono::milliseconds timeout = 10s,
                    std::vector<std::string> extra_env = {});

}  // namespace einhorn::test
