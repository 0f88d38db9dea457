// The pool's recent history: lifecycle events (spawn, ready, exit with its cause, respawn
// delay, upgrade start/progress/end/rollback, resize, reload, control commands and refused
// peers) in a fixed-size ring, each with a sequence number, the wall-clock time and the
// monotonic time. The core decides what happened (supervisor.cc, control.cc); the shell stamps
// the wall clock and keeps the ring (core/telemetry.h). `einhornctl events` reads it through
// the `events` command: since SEQ returns the events after SEQ, so a follower polls with the
// last sequence number it saw.
//
// The `events` reply's message is a YAML document (each event a JSON object, which is YAML
// too):
//   first_seq: 12   # the oldest event still held (last_seq + 1 when the ring is empty)
//   last_seq: 41    # the newest event ever recorded (0: none yet)
//   events:
//     - {"seq": 40, "time": "2024-05-01T12:00:03.250Z", "mono": 73.25, "event": "exit",
//        "slot": 0, "pid": 4242, "generation": 1, "exit_code": null, "signal": 9,
//        "during_drain": false, "seconds": 3.2, "from": null, "to": null, "by": null,
//        "detail": null}
// Field names are stable (the JSON log lines use the same ones); absent fields are null.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace einhorn::core {

enum class EventKind {
  kSpawn,            // slot, pid, generation
  kSpawnFailed,      // slot, generation; detail: why (fork failed, no notify socket, ...)
  kReady,            // slot, pid, generation; seconds: time to ready
  kExit,             // slot (-1 if out of the pool), pid, generation, exit, during_drain;
                     // seconds: uptime
  kRespawnDelay,     // slot; seconds: the crash-loop backoff; detail: the streak
  kDrain,            // slot, pid, generation; detail: why the worker is told to go
  kKill,             // slot, pid, generation: SIGKILL after the signal timeout
  kWatchdogTimeout,  // slot, pid, generation; seconds: silent for
  kUpgradeStart,     // from, to (generations); detail: strategy
  kUpgradeProgress,  // generation; detail: "2/4 new ready, 1/4 old told to drain"
  kUpgradeDone,      // from, to; seconds: duration
  kUpgradeRollback,  // from (kept), to (failed); seconds: duration; detail: reason
  kResize,           // from, to (target); by
  kReload,           // detail: requested | done | failed: reason; by (requested)
  kStop,             // detail: drain | terminate | quit | die SIG
  kControl,          // a mutating command: detail: the verb (and " refused: why"); by
  kControlRefused,   // by; detail: permission | too_many_connections | out_of_fds
  kRecycle,          // slot (the one it leaves), pid, generation; seconds: its age;
                     // detail: the cause (memory | memory_hard | age | worker | operator)
  kRecycleDone,      // slot -1, pid, generation; seconds: since the recycle was asked for;
                     // detail: the cause, and ", before it started" if it exited while queued
  kZygote,           // pid, generation (--zygote); detail: start | ready | exit: how |
                     // load failed: why | start failed: why
  kOther,            // read from a newer master: detail starts with its event name
};
// Every kind by its name, in the events reply, JSON log lines and the carried state.
inline constexpr std::array<std::pair<EventKind, std::string_view>, 21> kEventKindNames{{
    {EventKind::kSpawn, "spawn"},
    {EventKind::kSpawnFailed, "spawn_failed"},
    {EventKind::kReady, "ready"},
    {EventKind::kExit, "exit"},
    {EventKind::kRespawnDelay, "respawn_delay"},
    {EventKind::kDrain, "drain"},
    {EventKind::kKill, "kill"},
    {EventKind::kWatchdogTimeout, "watchdog_timeout"},
    {EventKind::kUpgradeStart, "upgrade_start"},
    {EventKind::kUpgradeProgress, "upgrade_progress"},
    {EventKind::kUpgradeDone, "upgrade_done"},
    {EventKind::kUpgradeRollback, "upgrade_rollback"},
    {EventKind::kResize, "resize"},
    {EventKind::kReload, "reload"},
    {EventKind::kStop, "stop"},
    {EventKind::kControl, "control"},
    {EventKind::kControlRefused, "control_refused"},
    {EventKind::kRecycle, "recycle"},
    {EventKind::kRecycleDone, "recycle_done"},
    {EventKind::kZygote, "zygote"},
    {EventKind::kOther, "other"},
}};
const char* EventKindName(EventKind kind);  // "spawn", "upgrade_rollback", ...
std::optional<EventKind> ParseEventKind(std::string_view name);

struct Event {
  std::uint64_t seq = 0;     // set by the ring: 1, 2, 3, ...
  Time mono{};               // the core's monotonic clock
  std::int64_t wall_ns = 0;  // wall clock, ns since the Unix epoch (set by the shell)
  EventKind kind = EventKind::kOther;
  int slot = -1;  // -1: none
  Pid pid = 0;    // 0: none
  int generation = 0;  // 0: none
  std::optional<ExitStatus> exit;
  bool during_drain = false;  // exit: the worker had been told to stop (or said STOPPING=1)
  std::optional<double> seconds;
  std::optional<int> from;
  std::optional<int> to;
  std::string by;  // who: "uid 1000 pid 42", "SIGTTIN"
  std::string detail;

  bool operator==(const Event&) const = default;
};
// The one way to start an event: its kind and when, the fields it carries to be filled in.
inline Event EventAt(EventKind kind, Time now) {
  Event e;
  e.kind = kind;
  e.mono = now;
  return e;
}

// Who may fill the ring. A refused peer or a crash-looping worker can make events as fast as
// it likes; the record of what was changed, and by whom, must outlive them.
enum class EventClass {
  kAudit,      // a change and who made it: control, resize, reload, upgrade start/done/
               // rollback, stop
  kLifecycle,  // what the workers did: spawn, ready, exit, respawn delay, drain, ...
  kRefusal,    // control_refused: made by peers that may not even talk to the master
};
EventClass ClassOf(EventKind kind);

// The newest events, at most `capacity`, numbered 1, 2, 3, ... Each class has a reserved share
// of the capacity (audit a quarter, refusals a tenth, the lifecycle the rest) that the others
// cannot take: when the ring is full, the event that goes is the oldest of a class holding
// more than its share. So 20,000 refusals keep the last 250 audit events and the last 650
// lifecycle events, and fill only what those leave free; a ring of one class alone keeps its
// newest `capacity`. Numbers may then have gaps (the events evicted from the middle).
class EventRing {
 public:
  static constexpr size_t kDefaultCapacity = 1000;
  explicit EventRing(size_t capacity = kDefaultCapacity);

  // Gives the event the next sequence number and returns it.
  std::uint64_t Push(Event event);
  // The events after `since` (all held ones for 0), in sequence order, at most `limit`.
  std::vector<Event> Since(std::uint64_t since, size_t limit = kDefaultCapacity) const;
  std::uint64_t last_seq() const { return last_seq_; }
  // The oldest event still held (last_seq + 1 when the ring is empty).
  std::uint64_t first_seq() const;
  // Every event held, in sequence order.
  std::vector<Event> events() const { return Since(0, size()); }
  size_t size() const;
  size_t capacity() const { return capacity_; }
  size_t share(EventClass c) const { return share_[static_cast<size_t>(c)]; }

  // A master re-exec: the events (ascending seq, up to last_seq) and the counter carry on.
  // Keeps what Push would have kept.
  void Restore(std::uint64_t last_seq, std::vector<Event> events);

 private:
  static constexpr size_t kClasses = 3;
  void Add(Event event);
  void Trim();

  size_t capacity_;
  std::array<size_t, kClasses> share_{};
  std::uint64_t last_seq_ = 0;
  std::array<std::deque<Event>, kClasses> held_;  // each in sequence order
};

// "2024-05-01T12:00:03.250Z" (UTC, milliseconds) and back; nullopt if not that shape.
std::string FormatUtc(std::int64_t wall_ns);
std::optional<std::int64_t> ParseUtc(std::string_view text);

// The event's fields as JSON members, `"seq": 40, "time": ..., ...` without braces, in the
// order of the header. with_nulls false leaves absent fields out (log lines stay short);
// with_times false leaves out time and mono (a log line has its own time).
void AppendEventJsonFields(std::string& out, const Event& event, bool with_nulls,
                           bool with_times = true);
// {"seq": ..., ...}: one JSON object on one line, every field present.
std::string EventToJson(const Event& event);

// The detail column for people: "signal 9 after 3.200s, draining", "1 -> 3 by uid 1000 pid 7".
std::string EventSummary(const Event& event);

struct EventsReply {
  std::uint64_t first_seq = 1;
  std::uint64_t last_seq = 0;
  std::vector<Event> events;
};
std::string EventsReplyToYaml(const EventsReply& reply);
// Errors name the key path ("events: events[3].seq: expected an unsigned integer").
Result<EventsReply> EventsReplyFromYaml(const std::string& text);

}  // namespace einhorn::core
