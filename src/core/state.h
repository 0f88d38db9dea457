// The master's state carried across its own re-exec (`reload`): the old image encodes it into a
// memfd, execs the new binary (options.reexec_as, or self_path) with `--with-state-fd FD --
// CMD...`, and the new image decodes it and carries on with the same pid, children and fds:
// the listeners, the command socket, the lock, and every open command-socket connection and
// -g worker channel with its half-read line and upgrade subscription. A pre-flight child
// (`--upgrade-check --with-state-fd FD`) decodes the same bytes first. Pure: the shell does
// the memfd, the fds and the exec.
//
// The format is one YAML document, versioned:
//   format: "einhorn-cpp-state"
//   version: 1
//   ...every field of MasterState, always present (null for an empty optional)...
//   end: true
// Within a version the set of keys is fixed: any change to it bumps kStateVersion, and a
// binary decodes every version up to its own. A newer version, another format, a missing,
// unknown or ill-typed key, a truncated document or a state that breaks the supervisor's
// structure (CheckSnapshot) is refused with one line naming the key path; DecodeState never
// throws, whatever the bytes.
//
// Strings are any bytes (environment entries, argv, paths): printable ASCII is written as a
// double-quoted scalar, anything else as `!!binary` base64, so every string round-trips
// exactly. Doubles are written in their shortest exact form; times and durations as
// integer nanoseconds of CLOCK_MONOTONIC, which an exec does not reset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/bind_spec.h"
#include "core/control.h"
#include "core/options.h"
#include "core/status.h"
#include "core/supervisor.h"
#include "core/telemetry.h"
#include "core/wire.h"
#include "core/worker_output.h"
#include "core/zygote.h"

namespace einhorn::core {

inline constexpr int kStateVersion = 1;
inline constexpr std::string_view kStateFormat = "einhorn-cpp-state";
// Far above any real state (10,000 workers in the middle of a fleet upgrade take 5 MB) and
// small enough to read whole.
inline constexpr size_t kMaxStateBytes = size_t{64} << 20;

struct MasterState {
  // What EncodeState writes as `version`; DecodeState only ever returns kStateVersion.
  int format_version = kStateVersion;
  std::string written_by;    // the version of the binary that wrote it (kVersion), for messages
  Options options;           // as the old master ran with them (max_unacked filled in)
  std::string command_path;  // the worker executable the old master resolved
  // The absolute path of the einhorn-cpp binary that a reload execs when options.reexec_as
  // is empty (the path as started, not /proc/self/exe, so that a new binary is picked up).
  std::string self_path;
  SupervisorSnapshot supervisor;
  int verbosity = 1;  // the live one (quieter/louder), not options.verbosity

  // sys::Listener, field for field: the fd stays open across the exec.
  struct Listener {
    BindSpec spec;
    int fd = -1;
    std::string bound;
    bool owns_path = false;
    std::uint64_t path_dev = 0;
    std::uint64_t path_ino = 0;

    bool operator==(const Listener&) const = default;
  };
  std::vector<Listener> listeners;  // in -b order (fd 3+i in the workers)
  Listener control;                 // the command socket (fd -1: none)

  // One command-socket connection or -g worker channel (peer.bound_worker set), kept open
  // across the exec.
  struct Client {
    int fd = -1;
    Peer peer;                            // as the old master read it at accept
    std::string pending_input;            // the bytes of a half-received line (any bytes)
    std::optional<wire::Id> upgrade_id;  // subscribed to the upgrade's streamed messages

    bool operator==(const Client&) const = default;
  };
  std::vector<Client> clients;
  // -m notify: each worker's own NOTIFY_SOCKET (a bound datagram socket the master reads).
  struct NotifySocket {
    Pid worker = 0;
    int fd = -1;

    bool operator==(const NotifySocket&) const = default;
  };
  std::vector<NotifySocket> notify_sockets;
  int lock_fd = -1;                      // the held flock on options.lockfile (-1: none)
  std::vector<std::string> startup_env;  // the environment the first master started with
  // reload as the first step of `upgrade`: the worker upgrades the new image starts once up,
  // in order (more than one when upgrades arrived during the reload; each supersedes the one
  // before, as Einhorn's do).
  std::vector<UpgradeStrategy> then_upgrades;
  int reloads = 0;  // how many times this master (this pid) has re-exec'd itself
  // --config: the file's absolute path, read again by each reload, and the command line the
  // first image started with, whose flags still override the file. Empty without --config.
  std::string config_path;
  std::vector<std::string> argv;
  // The event ring and the metrics' counters, so that a reload keeps the pool's history.
  // Written when not empty; a state without it starts them afresh.
  Telemetry::Snapshot telemetry;
  // --metrics-listen: its listening socket (fd -1: none), kept open across the exec.
  Listener metrics;
  // --worker-output prefix|json, --worker-log-dir: the read end of each worker's stdout and
  // stderr pipe, with who writes there and the half-read line (core/worker_output.h). A pipe
  // outlives its worker while a descendant holds the write end. Written when not empty.
  struct WorkerPipe {
    WorkerTag tag;
    int fd = -1;
    std::string pending;    // at most kMaxWorkerLineBytes
    bool dropping = false;  // the rest of a cut line

    bool operator==(const WorkerPipe&) const = default;
  };
  std::vector<WorkerPipe> worker_pipes;
  // --preload: each zygote (core/zygote.h) with the master's end of its socket, kept open
  // across the exec, and the next spawn request id; then the zygotes' crash-loop streak.
  // Written when there are zygotes.
  struct ZygoteLink {
    Zygote zygote;
    int fd = -1;
    std::int64_t next_id = 1;

    bool operator==(const ZygoteLink&) const = default;
  };
  std::vector<ZygoteLink> zygotes;
  int zygote_failures = 0;
  std::optional<Time> zygote_respawn_at;
  // The reload's stand-in (sys/stand_in.h): the new image's end of the channel on which it
  // hands over the connections it accepted during the exec; -1: none. Written only when
  // there is one, and only to a binary whose upgrade check said it takes it
  // (core::Reload::kTakesStandIn).
  int stand_in_fd = -1;

  bool operator==(const MasterState&) const = default;
};

// Every fd a state carries across the exec, in one list (tableflip's Fds): DecodeState checks
// it, the old image clears CLOEXEC on it before the exec, and a new kind of carried fd is
// added here only. `where` names the field ("listeners[0].fd"); an optional fd is -1 when
// there is none (the control and metrics sockets, lock_fd).
struct CarriedFd {
  int fd = -1;
  std::string where;
  bool optional = false;
};
std::vector<CarriedFd> CarriedFds(const MasterState& state);

// Never fails; the output is what DecodeState reads back as an equal state.
std::string EncodeState(const MasterState& state);

// What DecodeState accepts before it builds anything. The defaults hold any real state;
// tests lower them.
struct StateLimits {
  size_t max_bytes = kMaxStateBytes;
  size_t max_nodes = size_t{1} << 20;  // 10,000 workers in an upgrade need about 600,000
  size_t max_depth = 32;               // the format needs 5
};

// Besides the format checks above: every fd is >= 0 (control.fd and lock_fd may be -1) and
// no fd appears twice (listeners, control, clients, lock); a client's peer has pid >= 0,
// uid and gid >= -1, lineage pids > 0, and bound_worker > 0 with at most one channel per
// worker; self_path is empty or absolute; reloads >= 0; the options pass Validate. A state in
// the layout EncodeState writes is read in one pass straight into the structs (the canonical
// reader, core/state_stream.h): 2.6-2.9 ms for 1,000 ready workers and 1000 events (620 KB;
// optimised build, a fresh process). Any other is read as a tree: in one pass where the layout
// allows (state_format::ParseOurs, 10 ms for the same state), else through yaml-cpp (0.1 s).
Result<MasterState> DecodeState(std::string_view bytes, const StateLimits& limits = {});

// The two readers DecodeState tries, for the tests that compare them; neither runs the checks
// of the whole state above (the supervisor's structure, the fds, the options). The canonical
// one declines (nullopt) whatever is not in EncodeState's layout; the general one reads any
// layout, or says why not.
std::optional<MasterState> ReadStateCanonical(std::string_view bytes,
                                              const StateLimits& limits = {});
Result<MasterState> ReadStateGeneral(std::string_view bytes, const StateLimits& limits = {});

// Each struct the state carries, with its number of members and the number of them its schema
// (state.cc, one Visit per struct that drives both encoding and decoding) names. They differ
// when a member was added to the struct but not to the schema; state_test checks every pair.
struct StateSchemaCoverage {
  std::string type;
  size_t members = 0;
  size_t visited = 0;
};
std::vector<StateSchemaCoverage> StateSchemaCoverages();

}  // namespace einhorn::core
