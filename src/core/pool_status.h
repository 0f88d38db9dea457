// The answer to the `status` command: a snapshot of the pool, produced by the master from the
// supervisor and read back by einhornctl. On the wire it is the reply's `message`, a YAML
// document (readable as-is in einhornsh), with the fields below (times in seconds).
//
//   master_pid: 1234            version: "0.1.0"          command_name: ""
//   target: 4                   generation: 1              ack_mode: "timer 1s" | "manual"
//   verbosity: 1                stopping: false
//   reloads: 0                  # master re-execs (reload, upgrade) this master pid went through
//   last_reload_error: ~        # or why the last reload failed (the master kept running)
//   reload_failures: 0          # reloads this image refused (reset by the re-exec of a success)
//   reloading: false            # a reload (its check, then the exec) is under way
//   watchdog_timeouts: 0        # workers aborted by --worker-watchdog
//   counts: {booting: 0, ready: 4, draining: 0}
//   upgrade: ~                  # or, while an upgrade runs:
//     {strategy: "smooth" | "fleet", from_generation: 1, to_generation: 2, elapsed: 3.2,
//      failures: 0, new_ready: 2, old_remaining: 2}
//   last_upgrade: ~             # or, once one has ended (succeeded or rolled back):
//     {ok: false, generation: 2, reason: "3 new workers failed", ago: 61.5}   # reason "" if ok
//   workers:                    # live workers, by slot then pid
//     - {slot: 0, index: 0, pid: 101, generation: 1, state: "ready", time_to_ready: 1.001,
//        uptime: 35.2, restarts: 0, last_exit: "exit 1",   # last_exit/time_to_ready may be ~
//        notify_status: "serving",   # -m notify: its last STATUS=, else ~
//        pinged_ago: 2.5, pinged_request_id: "req-1",   # only once it sent worker:ping
//        draining_for: 12.5,   # only while draining: seconds since its first stop signal
//        recycle: "age", recycle_state: "queued" | "replacing" | "draining",  # only while a
//                              # recycle of it is pending (Supervisor::Recycle); its age is uptime
//        recycle_in: 3590.2}   # only with --max-worker-lifetime: seconds until it is due
//        memory_bytes: 52428800, memory_sampled_ago: 1.2}   # only once sampled
//                              # (--max-worker-memory): the worker and its descendants
//   pending:                    # slots waiting for a respawn (crash-loop backoff)
//     - {slot: 2, respawn_in: 3.4, consecutive_failures: 3, restarts: 5, last_exit: "signal 9"}
//   listeners:                  # the -b sockets, in order; queue figures where Linux has them
//     - {name: "127.0.0.1:8080", accept_queue: 0, backlog: 100}   # ~ when unknown (UDP)
//
// Layout: one `key: value` per line at the top, one flow mapping per line for counts, upgrade,
// last_upgrade and each row (`workers: []` when empty). Scalars, typed the same by yaml-cpp and
// by YAML 1.1 readers such as Ruby's Psych (einhornsh):
//  - integers and booleans plain; null is `~`;
//  - times are rounded to the millisecond and written in the shortest decimal that reads back
//    as the same double, always with a '.' so they stay floats (`7200.0`, `1.001`); non-finite
//    ones as `.inf`, `-.inf`, `.nan`;
//  - every string double-quoted with JSON's escapes (\" \\ \n \r \t, other control characters,
//    DEL, C1 controls, U+2028/U+2029 and U+FEFF as \uXXXX); the output is valid UTF-8. A byte
//    of a string that is not part of valid UTF-8 is written \xXX, which every YAML reader
//    decodes as U+00XX: such a string reads back as its Latin-1 reading, not byte for byte.
// Readers ignore unknown keys; absent optional fields take the defaults below.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace einhorn::core {

struct WorkerStatus {
  int slot = 0;
  int index = 0;  // EINHORN_CHILD_INDEX
  Pid pid = 0;
  int generation = 1;
  std::string state;  // booting, ready, draining
  std::optional<double> time_to_ready;
  double uptime = 0;
  int restarts = 0;                      // of its slot
  std::optional<std::string> last_exit;  // of its slot: "exit 1", "signal 9"
  std::optional<std::string> notify_status;  // -m notify: the worker's last STATUS=
  std::optional<double> pinged_ago;  // seconds since its last worker:ping
  std::optional<std::string> pinged_request_id;  // that ping's request_id (as text)
  // Draining workers: seconds since it was told to stop (or said STOPPING=1).
  std::optional<double> draining_for;
  // A recycle asked for: its cause (core::RecycleCauseName) and where it stands: queued (it
  // still fills its slot), replacing (its replacement boots; it serves on), draining.
  std::optional<std::string> recycle;
  std::optional<std::string> recycle_state;
  // --max-worker-lifetime: seconds until it is due for its age (negative: overdue, queued).
  std::optional<double> recycle_in;
  // --max-worker-memory: the last sample of the worker and its descendants (RSS or PSS,
  // --memory-measure), and how long ago it was taken; absent before the first sample.
  std::optional<long long> memory_bytes;
  std::optional<double> memory_sampled_ago;
};

struct PendingSlot {
  int slot = 0;
  double respawn_in = 0;
  int consecutive_failures = 0;
  int restarts = 0;
  std::optional<std::string> last_exit;
};

// An upgrade in progress (Supervisor::upgrade()).
struct UpgradeStatus {
  std::string strategy;  // "smooth", "fleet"
  int from_generation = 1;
  int to_generation = 2;
  double elapsed = 0;     // since it began
  int failures = 0;       // new workers that died before they were ready
  int new_ready = 0;      // ready workers of to_generation
  int old_remaining = 0;  // workers of older generations still alive, draining ones included
};

// How the last upgrade ended (Supervisor::last_upgrade()).
struct LastUpgradeStatus {
  bool ok = false;     // false: rolled back
  int generation = 0;  // the generation it was to
  std::string reason;  // why it was rolled back; empty when ok
  double ago = 0;      // since it ended
};

// --preload: a zygote (core/zygote.h).
struct ZygoteStatus {
  Pid pid = 0;
  int generation = 1;
  std::string state;  // loading, ready, closing
  int spawns = 0;     // workers it forked
  double age = 0;     // seconds since it started
};

// A listening socket's accept queue (TCP: TCP_INFO; UNIX stream: sock_diag).
struct ListenerStatus {
  std::string name;  // as bound: "127.0.0.1:8080", "unix:/run/app.sock"
  std::optional<long long> accept_queue;  // connections waiting for a worker's accept()
  std::optional<long long> backlog;       // the queue's limit
};

struct PoolStatus {
  Pid master_pid = 0;
  std::string version;
  std::string command_name;
  int target = 0;
  int generation = 1;
  std::string ack_mode;
  int verbosity = 1;
  bool stopping = false;
  int reloads = 0;
  std::optional<std::string> last_reload_error;  // cleared by a reload that succeeds
  // Reloads that failed in this image (the master kept running): with `reloads`, which a
  // reload that succeeds increments (and which starts a new image at 0 failures), a client
  // that sent `reload` tells its outcome even when the same reason comes twice.
  int reload_failures = 0;
  bool reloading = false;  // a reload's check (or its exec) is under way
  int watchdog_timeouts = 0;  // workers found hung by --worker-watchdog (and aborted)
  int booting = 0;
  int ready = 0;
  int draining = 0;
  std::optional<UpgradeStatus> upgrade;           // only while one runs
  std::optional<LastUpgradeStatus> last_upgrade;  // once one has ended
  std::vector<WorkerStatus> workers;
  std::vector<PendingSlot> pending;
  std::vector<ListenerStatus> listeners;  // absent in replies of older masters: empty
  std::vector<ZygoteStatus> zygotes;      // --preload; written only when there are some
};

// Never fails, whatever the strings hold; O(size of the output), no regexes (the master's loop
// waits for it: about 0.1 ms for 1000 workers).
std::string PoolStatusToYaml(const PoolStatus& status);
// Errors name the key path ("status: workers[3].pid: expected an integer"). O(size of the
// text): what PoolStatusToYaml writes is read by a one-pass parser of that subset of YAML
// (about 100x faster than yaml-cpp: einhornctl reads the status of 5000 workers in ~15 ms);
// any other document (an older master's, a hand-written one, an error) by yaml-cpp, so both
// read every document the same way.
Result<PoolStatus> PoolStatusFromYaml(const std::string& text);
// The two paths, for the tests that check they agree: the fast one is nullopt where it defers
// to yaml-cpp.
std::optional<PoolStatus> PoolStatusFromYamlFast(const std::string& text);
Result<PoolStatus> PoolStatusFromYamlSlow(const std::string& text);

}  // namespace einhorn::core
