// --max-worker-lifetime SECS[,jitter=PCT] (and the max_worker_lifetime config key): the text
// into a lifetime and its jitter. Pure; the supervisor draws each worker's own lifetime at its
// spawn, uniform in [SECS * (1 - PCT/100), SECS] (core/supervisor.h).
#pragma once

#include <string_view>

#include "core/status.h"

namespace einhorn::core {

inline constexpr double kDefaultLifetimeJitterPct = 10;
// Up to 90 %: at 100 a worker could be recycled the moment it is ready, and again, and again.
inline constexpr double kMaxLifetimeJitterPct = 90;

struct LifetimeSpec {
  double seconds = 0;  // above 0, at most kMaxSettingSeconds
  double jitter_pct = kDefaultLifetimeJitterPct;
};

// "3600", "3600,jitter=5", "86400,jitter=2.5%": finite numbers only; one error line naming
// the flag otherwise ("--max-worker-lifetime must be ...").
Result<LifetimeSpec> ParseLifetimeSpec(std::string_view text);

}  // namespace einhorn::core
