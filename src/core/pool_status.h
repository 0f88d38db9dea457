// The answer to the `status` command: a snapshot of the pool, produced by the master from the
// supervisor and read back by einhornctl. On the wire it is the reply's `message`, a YAML
// document (readable as-is in einhornsh), with the fields below (times in seconds).
//
//   master_pid: 1234            version: "0.1.0"          command_name: ""
//   target: 4                   generation: 1              ack_mode: "timer 1s" | "manual"
//   verbosity: 1                stopping: false
//   counts: {booting: 0, ready: 4, draining: 0}
//   workers:                    # live workers, by slot then pid
//     - {slot: 0, index: 0, pid: 101, generation: 1, state: ready, time_to_ready: 1.001,
//        uptime: 35.2, restarts: 0, last_exit: "exit 1"}   # last_exit/time_to_ready may be null
//   pending:                    # slots waiting for a respawn (crash-loop backoff)
//     - {slot: 2, respawn_in: 3.4, consecutive_failures: 3, restarts: 5, last_exit: "signal 9"}
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
  int restarts = 0;  // of its slot
  std::optional<std::string> last_exit;  // of its slot: "exit 1", "signal 9"
};

struct PendingSlot {
  int slot = 0;
  double respawn_in = 0;
  int consecutive_failures = 0;
  int restarts = 0;
  std::optional<std::string> last_exit;
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
  int booting = 0;
  int ready = 0;
  int draining = 0;
  std::vector<WorkerStatus> workers;
  std::vector<PendingSlot> pending;
};

std::string PoolStatusToYaml(const PoolStatus& status);
Result<PoolStatus> PoolStatusFromYaml(const std::string& text);

}  // namespace einhorn::core
