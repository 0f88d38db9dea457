// Prometheus metrics: the counters the master keeps (fed by lifecycle events, telemetry.h) and
// the text exposition format 0.0.4 rendered from them plus the gauges of one instant (the
// pool's workers, which the supervisor holds, and what the shell reads from /proc and the
// listening sockets). Pure; `einhornctl metrics` and `--metrics-listen` serve the same text.
//
// Every family has HELP and TYPE lines; names follow Prometheus conventions (base units,
// counters end in _total); label values are escaped (\\, \", \n). Counters with a fixed label
// set are always all present, at 0 until they move, so rate() sees the first increment.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bind_spec.h"
#include "core/status.h"

namespace einhorn::core {

// --metrics-listen ADDR: "127.0.0.1:9100" (any 127.x.y.z), "[::1]:9100" or "unix:/PATH"; port
// 0 picks a free one. The endpoint has no authentication, so anything that is not loopback or
// a UNIX socket (whose file mode decides who may connect) is refused, host names included.
// With `allow_public` (--metrics-listen-public, the operator's explicit opt-in, for a container
// that Prometheus scrapes from outside) any IPv4 or IPv6 address is taken, still no host name.
// TCP listeners get SO_REUSEADDR, so a restarted master can bind the port again at once.
Result<BindSpec> ParseMetricsListen(const std::string& text, bool allow_public = false);

// Cumulative-at-render histogram with fixed upper bounds (le); +Inf is implied.
struct Histogram {
  std::vector<double> bounds;         // ascending
  std::vector<std::uint64_t> counts;  // per bucket, not cumulative; bounds.size() + 1
  double sum = 0;
  std::uint64_t count = 0;

  static Histogram WithBounds(std::vector<double> bounds);
  void Observe(double value);
  bool operator==(const Histogram&) const = default;
};

// Buckets (seconds) of einhorn_worker_time_to_ready_seconds and
// einhorn_upgrade_duration_seconds.
const std::vector<double>& TimeToReadyBounds();
const std::vector<double>& UpgradeDurationBounds();

enum class ExitCause { kCleanExit, kErrorExit, kSignal };  // exit 0, exit N > 0, killed
inline constexpr std::array<const char*, 3> kExitCauseNames = {"clean_exit", "error_exit",
                                                                 "signal"};
inline constexpr std::array<const char*, 2> kUpgradeOutcomes = {"succeeded", "rolled_back"};
inline constexpr std::array<const char*, 2> kReloadOutcomes = {"done", "failed"};
inline constexpr std::array<const char*, 3> kRefusalReasons = {
    "permission", "too_many_connections", "out_of_fds"};

struct Counters {
  std::uint64_t spawns = 0;
  std::uint64_t spawn_failures = 0;  // fork failed, or a worker's notify socket could not open
  std::uint64_t acks = 0;            // workers that became ready (timer, worker:ack, READY=1)
  std::uint64_t respawn_backoffs = 0;
  std::uint64_t kills = 0;  // SIGKILL after the signal timeout
  std::uint64_t watchdog_timeouts = 0;
  std::array<std::array<std::uint64_t, 2>, 3> exits{};  // [ExitCause][during_drain]
  std::array<std::uint64_t, 2> upgrades{};             // kUpgradeOutcomes
  std::array<std::uint64_t, 2> reloads{};              // kReloadOutcomes
  std::array<std::uint64_t, 3> refused_peers{};        // kRefusalReasons
  std::map<std::string, std::uint64_t> commands;       // verb (KnownCommands(), "unknown")
  Histogram time_to_ready = Histogram::WithBounds(TimeToReadyBounds());
  Histogram upgrade_duration = Histogram::WithBounds(UpgradeDurationBounds());

  bool operator==(const Counters&) const = default;
};

// The command label's values: every verb of the command socket, "unknown" for anything else
// and "invalid" for a request that is not one, so a client cannot grow the label set. Defined
// beside the verb table (control.cc), so a new verb is counted under its own name.
const std::vector<std::string>& KnownCommands();
std::string CommandLabel(std::string_view verb);

// A listening socket's queue where Linux tells it (TCP: TCP_INFO on the listening fd; UNIX
// stream: sock_diag), else empty.
struct ListenerStats {
  std::string name;                  // "127.0.0.1:8080", "unix:/run/app.sock"
  std::optional<std::int64_t> accept_queue;  // connections waiting for accept()
  std::optional<std::int64_t> backlog;       // the queue's limit
  bool operator==(const ListenerStats&) const = default;
};

// TcpExt: ListenOverflows and ListenDrops from /proc/net/netstat: for the whole network
// namespace, not this master's sockets alone.
struct HostListenStats {
  std::uint64_t overflows = 0;
  std::uint64_t drops = 0;
  bool operator==(const HostListenStats&) const = default;
};
// Reads the TcpExt header and value lines of /proc/net/netstat; nullopt if absent or garbled.
std::optional<HostListenStats> ParseProcNetstat(std::string_view text);

// One instant of the pool and the master process.
struct MetricsInput {
  const Counters* counters = nullptr;
  int target = 0;
  int generation = 1;
  bool upgrading = false;
  int pending_respawns = 0;  // slots waiting out a crash-loop backoff
  // Recycles started since the first image (the supervisor carries them across reloads), by
  // cause name, every cause present: einhorn_worker_recycles_total{cause}.
  std::vector<std::pair<std::string, std::uint64_t>> recycles;
  // Live workers by (state, generation); states are "booting", "ready", "draining".
  std::map<std::pair<std::string, int>, int> workers;
  std::optional<std::uint64_t> resident_memory_bytes;
  std::optional<std::int64_t> open_fds;
  std::vector<ListenerStats> listeners;
  std::optional<HostListenStats> host;
  // --max-worker-memory: the last memory sample of the worker in each slot (the worker and its
  // descendants), by slot; einhorn_worker_memory_bytes{slot}.
  std::map<int, std::uint64_t> worker_memory;
};

// The exposition text (Content-Type: text/plain; version=0.0.4), ending with '\n'.
std::string RenderMetrics(const MetricsInput& input);

// A label value as the format writes it between quotes.
std::string EscapeLabelValue(std::string_view value);

}  // namespace einhorn::core
