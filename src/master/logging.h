// The master's logger: synchronous, to stderr, flushed on every line (STYLE.md: spdlog), never
// used between fork and exec. Lines are text (with journald priority prefixes when stderr is
// the journal) or, with --log-format json, one JSON object per line (core/log_line.h).
#pragma once

#include <spdlog/spdlog.h>

#include "core/events.h"
#include "core/options.h"
#include "core/types.h"

namespace einhorn::master {

// verbosity: 0 debug, 1 info (default), 2 errors only, as Einhorn's -v/-q steps.
void SetUpLogging(int verbosity);
void SetLogLevel(int verbosity);
// --log-format; text lines get "<N>" priority prefixes when stderr is the journal
// (JOURNAL_STREAM names stderr's device and inode). Call after SetUpLogging.
void SetLogFormat(core::LogFormat format);
// A line that tells of a lifecycle event: in json, the event's fields go with it.
void LogEvent(core::LogLevel level, const std::string& message, const core::Event& event);
spdlog::level::level_enum ToSpdlog(core::LogLevel level);
// Whether stderr is the systemd journal (JOURNAL_STREAM names its device and inode).
bool StderrIsJournal();

}  // namespace einhorn::master
