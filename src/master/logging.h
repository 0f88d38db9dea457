// The master's logger: synchronous, to stderr, flushed on every line (STYLE.md: spdlog), never
// used between fork and exec.
#pragma once

#include <spdlog/spdlog.h>

#include "core/types.h"

namespace einhorn::master {

// verbosity: 0 debug, 1 info (default), 2 errors only, as Einhorn's -v/-q steps.
void SetUpLogging(int verbosity);
void SetLogLevel(int verbosity);
spdlog::level::level_enum ToSpdlog(core::LogLevel level);

}  // namespace einhorn::master
