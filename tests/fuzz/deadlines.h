// Shared by the flags and config fuzzers (issue 14.4): options that were accepted must drive a
// supervisor whose every deadline lies at or after the time it was computed, even far into the
// monotonic clock (nothing wraps). A broken invariant calls __builtin_trap().
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "core/supervisor.h"

namespace einhorn::fuzz {

class QuietEffects final : public core::Effects {
 public:
  core::SpawnOutcome Spawn(const core::SpawnRequest&) override {
    return core::SpawnOutcome{next_++, ""};
  }
  void Kill(core::Pid, core::Signal) override {}
  void Log(core::LogLevel, const std::string&) override {}

 private:
  core::Pid next_ = 100;
};

inline void RequireNoWrap(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "deadlines: invariant broken: %s\n", what);
    __builtin_trap();
  }
}

inline void CheckDeadlinesFrom(const core::Supervisor& s, core::Time now) {
  if (const auto next = s.NextDeadline()) RequireNoWrap(*next >= now, "a deadline before now");
  for (const auto& [pid, w] : s.workers()) {
    if (w.kill_at) RequireNoWrap(*w.kill_at >= now, "a kill deadline before now");
  }
  for (const core::Slot& slot : s.slots()) {
    if (slot.respawn_at) RequireNoWrap(*slot.respawn_at >= now, "a respawn before now");
  }
}

// A small pool through a crash, an upgrade and a stop, starting at the largest time a carried
// state may hold (2^61 ns).
inline void DriveWithoutWrapping(const core::Options& o) {
  QuietEffects fx;
  core::Options small = o;
  small.number = 2;
  core::Supervisor s(core::ConfigFromOptions(small, 1), fx);
  core::Time now{std::int64_t{1} << 61};
  s.Start(now);
  CheckDeadlinesFrom(s, now);
  now = core::After(now, core::Seconds(1));
  s.Tick(now);
  if (!s.workers().empty()) {
    s.ChildExited(s.workers().begin()->first, core::ExitStatus{false, 1}, now);
  }
  CheckDeadlinesFrom(s, now);
  s.Upgrade(core::UpgradeStrategy::kSmooth, now);
  CheckDeadlinesFrom(s, now);
  s.Stop(core::StopKind::kTerminate, now);
  CheckDeadlinesFrom(s, now);
}

}  // namespace einhorn::fuzz
