// How one master log line looks, apart from the logger (master/logging.cc applies it):
//  - text: "2024-05-01T12:00:03.250 einhorn-cpp[42] info: message", prefixed with sd-daemon's
//    "<N>" priority when stderr is the systemd journal, so journald files each line at its
//    level (and strips the prefix);
//  - json (--log-format json): one object per line with stable field names: time (UTC, ms),
//    level (debug, info, warning, error), message, and for a line that tells of a lifecycle
//    event the event's fields as in `einhornctl events --json` (seq, event, slot, pid,
//    generation, exit_code, signal, during_drain, seconds, from, to, by, detail; absent ones
//    left out).
// Pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/events.h"
#include "core/types.h"

namespace einhorn::core {

// "<7>" debug, "<6>" info, "<4>" warning, "<3>" error (syslog priorities, sd-daemon.h).
const char* JournalPrefix(LogLevel level);
const char* LogLevelName(LogLevel level);  // "debug", "info", "warning", "error"

// The json line, without its newline. `event` may be null.
std::string JsonLogLine(std::int64_t wall_ns, LogLevel level, std::string_view message,
                        const Event* event);

// systemd sets JOURNAL_STREAM=DEV:INO for a service whose stderr (or stdout) is the journal;
// stderr is the journal when its fstat device and inode are those numbers (systemd.exec(5)).
bool JournalStreamMatches(std::string_view journal_stream, std::uint64_t dev, std::uint64_t ino);

}  // namespace einhorn::core
