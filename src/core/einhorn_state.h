// The `state` verb's answer, as Einhorn gives it (EINHORN-CONTRACT.md sections 3.5 and 5.6):
// the text of Ruby's `YAML.dump({:state => State})`, which monitoring scripts, einhornsh and
// Einhorn's own tests read with `YAML.unsafe_load` or Psych's safe_load permitting Set, Symbol
// and Time:
//
//   ---
//   :state:
//     :children:
//       4242:                       # integer pid keys
//         :type: :worker
//         :version: 0               # the worker's generation - 1 (Einhorn counts from 0)
//         :acked: true
//         :signaled: !ruby/object:Set
//           hash:
//             USR2: true            # `hash: {}` when never signalled
//         :last_signaled_at:        # a Ruby Time, or nil
//         :index: 0                 # EINHORN_CHILD_INDEX
//         :spinup_time: 2026-11-22 22:32:35.999061695 +00:00
//         :pinged_at: ...           # only once it sent worker:ping
//         :pinged_request_id: req-1
//     :config: {:number, :backlog, :seconds, [:max_unacked, :max_upgrade_additional]}
//     :versions: {}  :version: 0  :sockets: {}  :orig_cmd: [...]  :cmd: [...]
//     :bind: [[host, port, [flags]]]  :bind_fds: [...]  :bound_ports: [...]  ... (see Build)
//
// Everything is filled from the supervisor, the options and what the shell knows; fields that
// have no einhorn-cpp counterpart keep Einhorn's value for a master without that feature
// (:versions and :sockets {}, :script_name and :path nil, :preloaded false). Times are
// written in UTC. Aliases are never emitted (Einhorn's `&1`/`*1` for :last_spinup), so plain
// safe_load reads it too. `status` keeps einhorn-cpp's own document (pool_status.h). Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/options.h"
#include "core/supervisor.h"
#include "core/types.h"

namespace einhorn::core {

// What only the shell knows, read when `state` is asked.
struct EinhornStateFacts {
  Pid master_pid = 0;
  // The wall clock (ns since the Unix epoch) minus the supervisor's monotonic clock. The shell
  // reads it once, so that a worker's times read the same in every reply, as Einhorn's.
  std::int64_t wall_offset_ns = 0;
  Options options;           // as the master runs with them
  std::string command_path;  // the resolved worker executable (Einhorn's :cmd[0])
  std::vector<int> bind_fds;  // the listeners' fds in the master, in -b order
  // The real port of each -b listener (nullopt for UNIX sockets), in -b order.
  std::vector<std::optional<int>> bound_ports;
  int verbosity = 1;          // the live one
  int reloads = 0;            // master re-execs: Einhorn's :generation
  bool reloading = false;     // a master re-exec is under way
  // The upgrades the re-exec will start (Einhorn's :reloading_for_upgrade, :smooth_upgrade).
  std::vector<UpgradeStrategy> then_upgrades;
};

// A Ruby Time as Psych writes it, in UTC: "2026-11-22 22:32:35.999061695 +00:00".
std::string RubyTime(std::int64_t wall_ns);

// The YAML text of {:state => State}.
std::string EinhornStateYaml(const Supervisor& supervisor, const EinhornStateFacts& facts);

}  // namespace einhorn::core
