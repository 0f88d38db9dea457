// Ruby Einhorn's state, as a running Ruby Einhorn 1.x hands it to the binary it re-execs
// (`--reexec-as=einhorn-cpp`, then `upgrade`, `reload` or SIGHUP): the bytes of
// `YAML.dump({state: Einhorn::State.state, persistent_descriptors: [...]})` on the
// `--with-state-fd` pipe (EINHORN-CONTRACT.md §5.6). Reading it lets einhorn-cpp take over a
// live Ruby master in place: same pid, same listening fds, command socket and connections,
// the Ruby-started workers adopted. Pure: the shell reads the fd, checks which pids still
// live and opens nothing here.
//
// The dialect: symbol keys and values (`:children:`, `:type: :worker`), integer pid keys,
// `!ruby/object:Set` with its `hash:` map, Ruby Times as plain scalars
// (`2026-12-06 15:01:52.449207639 +00:00`), anchors and aliases (`&1` / `*1`, shared Times),
// nulls as empty values.
//
// Strict but not fatal. The exec has already happened when this is read, so the Ruby master
// is gone: refusing the state would orphan its workers. So only what einhorn-cpp cannot run
// without is an error (not YAML, no `:state`, no `:cmd`, a worker command that fails
// Validate); anything else that is unexpected (an unknown key, a value of the wrong type, a
// setting einhorn-cpp does not have, such as preload) is skipped or defaulted and named, one
// line each, in `problems`, which the shell logs as errors.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/options.h"
#include "core/status.h"
#include "core/supervisor.h"
#include "core/types.h"
#include "core/wire.h"

namespace einhorn::core {

// Wall-clock time as Ruby wrote it: nanoseconds since the Unix epoch.
using WallNanos = std::int64_t;

struct RubyWorker {
  Pid pid = 0;
  int version = 0;  // Einhorn's upgrade version the worker was started for
  bool acked = false;
  std::set<std::string> signaled;  // "USR2", "TERM", ... (the Set's members)
  std::optional<WallNanos> last_signaled_at;
  int index = 0;
  std::optional<WallNanos> spinup_time;
  std::optional<WallNanos> pinged_at;

  bool operator==(const RubyWorker&) const = default;
};

struct RubyConnection {
  int fd = -1;
  std::string read_buffer;             // a half-received request
  std::string write_buffer;            // replies Ruby had not written yet
  std::optional<wire::Id> upgrade_id;  // :subscriptions: {:upgrade: ID}

  bool operator==(const RubyConnection&) const = default;
};

struct RubyState {
  // The settings, as einhorn-cpp options: command (:cmd, already resolved by Ruby), number,
  // backlog, seconds, max_unacked, max_upgrade_additional, binds, ack mode, -c, -d, -e, -f,
  // -k, -g, -t, verbosity (clamped to 0..2), nice, --reexec-as, --drop-env-var. Paths that
  // Ruby left nil stay empty (the shell fills einhorn-cpp's defaults).
  Options options;
  std::vector<RubyWorker> workers;  // :type: :worker children, ascending pid
  std::vector<Pid> state_passers;   // :type: :state_passer children (exited helpers)
  std::vector<int> bind_fds;        // as listed; matched to options.binds by address
  std::vector<int> bound_ports;     // the real port of each bind (Ruby resolves port 0)
  int version = 0;                  // Einhorn's upgrade version
  int generation = 0;
  bool upgrading = false;
  bool smooth_upgrade = false;
  bool reloading_for_upgrade = false;  // this exec is the first step of an upgrade
  bool respawn = true;                 // false: the Ruby master was stopping
  std::optional<int> command_server_fd;
  std::vector<RubyConnection> connections;
  std::map<Pid, WallNanos> ack_timer_starts;  // timer ack mode: unacked workers' timers
  std::vector<std::string> problems;

  bool operator==(const RubyState&) const = default;
};

// Whether these bytes are Ruby Einhorn's state rather than einhorn-cpp's own: a YAML document
// whose first key is `:state`.
bool LooksLikeRubyState(std::string_view bytes);

// Reads the state. Never throws, whatever the bytes; at most 64 MiB.
Result<RubyState> ParseRubyState(std::string_view bytes);

// Ruby's `Time#to_s`-style dump, "YYYY-MM-DD HH:MM:SS[.fraction] +HH:MM" (or Z / -HH:MM,
// or a 'T' between date and time): nanoseconds since the epoch, or nullopt.
std::optional<WallNanos> ParseRubyTime(std::string_view text);

// What the new master starts from, once the shell knows which workers still live.
struct RubyTakeover {
  SupervisorSnapshot supervisor;  // passes CheckSnapshot
  // Adopted workers beyond -n that were not yet signalled: the shell sends them the drain
  // signal now (Ruby's cull would have on its next turn).
  std::vector<Pid> drain_now;
  // The upgrade Ruby was asked for (`:reloading_for_upgrade`), or one it was in the middle
  // of (`:upgrading`): a new einhorn-cpp generation replaces every adopted worker.
  std::optional<UpgradeStrategy> then_upgrade;
  std::vector<std::string> notes;  // one line per worker dropped or drained, for the log
};

// `alive`: the workers' pids the shell found still running (waitpid WNOHANG); the others are
// dropped and their slots respawn at once. Ruby's wall-clock times become monotonic ones
// through the pair (now, now_wall), so a worker acked 3 s ago reads as ready for 3 s.
// Adopted workers are generation 1: a slot each for the first -n unsignalled ones (acked
// first, then newest version, then lowest index), draining for the signalled ones (the
// signal time kept, so -t still escalates); a timer-mode worker not yet acked keeps its
// timer's start.
RubyTakeover PlanRubyTakeover(const RubyState& state, const std::set<Pid>& alive, Time now,
                              WallNanos now_wall, std::uint64_t jitter_seed);

}  // namespace einhorn::core
