// How einhornctl shows what the master said: the `status` summary and table for people, JSON for
// scripts, and human durations. Pure functions of their inputs.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/events.h"
#include "core/pool_status.h"

namespace einhorn::ctl {

// "35s", "12m03s", "2h05m", "3d04h" (rounded down; negative counts as 0).
std::string HumanDuration(double seconds);
// Seconds with `decimals` places and an "s": "1.00s", "3.4s".
std::string FixedSeconds(double seconds, int decimals);
// A timeout or interval as given: "60s", "0.5s".
std::string ShortSeconds(double seconds);

// "target 4 | generation 1 | ready 4/4 | booting 0 | draining 0 (master 1234, timer 1s)\n"
std::string RenderStatusSummary(const core::PoolStatus& status);
// The column table of live workers (SLOT INDEX PID GEN STATE READY-IN UPTIME RESTARTS
// LAST-EXIT), then one row per slot waiting for a respawn. Every line ends with '\n'.
std::string RenderStatusTable(const core::PoolStatus& status);
// Summary and table.
std::string RenderStatus(const core::PoolStatus& status);

// The status as a JSON object with the YAML's field names, null for missing optionals.
std::string RenderStatusJson(const core::PoolStatus& status);
// {"messages": [...], "error": bool}, for every command but status under --json.
std::string RenderMessagesJson(const std::vector<std::string>& messages, bool error);
// One JSON string literal, invalid UTF-8 replaced by U+FFFD (nlohmann-json's escapes: this file
// is the only user of that library).
std::string JsonQuoted(const std::string& s);

// One event per line for people: time, sequence number, event, slot, pid, generation and the
// detail ("-" where there is none). The header names the columns.
std::string RenderEventsHeader();
std::string RenderEvent(const core::Event& event);
// The listeners' accept queues under the status summary ("" when there are none).
std::string RenderListeners(const core::PoolStatus& status);

// `signal SIG`'s confirmation (the master's own reply is Einhorn's, empty): "Sent SIGHUP to
// the 4 workers (pids 11, 12, 13, 14); the master itself was not signalled". `before` is the
// pool just before (nullopt from a master without `status`); `signal` is the normalized name
// ("HUP"). At most 10 pids are listed.
std::string SignalSentText(const std::string& signal,
                           const std::optional<core::PoolStatus>& before);
// log-level's answer in the names it accepts: "Verbosity set to 0" (Einhorn's reply to
// quieter/louder), from verbosity `was`, becomes "Log level set to debug (verbosity 0, was
// info)"; a message it does not recognise is returned as it is.
std::string LogLevelText(const std::string& reply, int was);

// A reply message as printed: nothing for an empty message (Einhorn's `signal` always answers
// ''), otherwise the text with exactly one trailing newline added if it has none.
std::string MessageText(const std::string& message);

}  // namespace einhorn::ctl
