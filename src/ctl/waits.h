// What einhornctl's waits decide from the master's `status` (core/pool_status.h): whether
// `wait ready|drained|upgraded` has come (or never will), how a `reload` ended, and how the
// workers told to drain are getting on. Pure: commands.cc polls and prints.
//
// The conditions (einhornctl(1) says the same):
//   ready     the master is not stopping, no reload or upgrade is under way, no worker is
//             booting, and at least `target` workers are ready. Never: the master is stopping.
//   drained   no worker is draining: every worker told to drain has exited.
//   upgraded  no reload or upgrade is under way, every worker is of the newest generation,
//             ready, none booting or draining, at least `target` of them. Never: with nothing
//             under way, the last upgrade rolled back, or the last master reload failed.
#pragma once

#include <optional>
#include <set>
#include <string>

#include "core/pool_status.h"
#include "core/types.h"

namespace einhorn::ctl {

enum class WaitCondition { kReady, kDrained, kUpgraded };

// "ready", "drained", "upgraded"; nullopt for anything else.
std::optional<WaitCondition> WaitConditionFromName(const std::string& name);

struct WaitVerdict {
  enum class Kind { kWaiting, kReached, kNever };
  Kind kind = Kind::kWaiting;
  // kWaiting: what is still missing ("ready 2/4, booting 2"); kReached: the state reached;
  // kNever: why it cannot come.
  std::string text;
};
WaitVerdict CheckWait(WaitCondition condition, const core::PoolStatus& status);

// How a reload sent after `before` (the status taken just before it) stands in `now`, a
// status of the same socket. The master's pid stays across a reload; `reloads` goes up when
// a new image took over, `reload_failures` when the old one refused and kept running.
struct ReloadVerdict {
  enum class Kind { kRunning, kDone, kFailed, kOtherMaster };
  Kind kind = Kind::kRunning;
  std::string text;  // kDone: what the new image carried; kFailed: the reason, in full
};
ReloadVerdict JudgeReload(const core::PoolStatus& before, const core::PoolStatus& now);

// The workers a wait saw told to drain: those still running, and those that have exited since
// (seen draining once, listed no longer).
class DrainTracker {
 public:
  void Update(const core::PoolStatus& status);
  int running() const { return static_cast<int>(running_.size()); }
  int exited() const { return static_cast<int>(exited_.size()); }
  // "told to drain: 2 running, 1 exited"; with `pids`, the running ones' pids after it.
  std::string Text(bool pids = false) const;

 private:
  std::set<core::Pid> running_;
  std::set<core::Pid> exited_;
};

// Workers of generations older than the pool's (`status.generation`) still alive: an
// upgrade's old workers that have not exited yet.
std::set<core::Pid> OldWorkers(const core::PoolStatus& status);

}  // namespace einhorn::ctl
