// The command socket's verbs (EINHORN-CONTRACT.md section 3.5): what each request does to the
// supervisor and what the peer is told, with Einhorn's reply texts. Pure: the shell parses the
// bytes (wire.h), checks the peer's credentials and writes the replies; anything that needs the
// OS (is this peer a descendant of that worker?) is asked of the host (ControlHost).
//
// Beyond Einhorn: a worker:ack counts only when it comes from the worker itself or one of its
// descendants, or on that worker's own -g channel; replies that report a failure carry
// `error: true`; resizing is refused while the master shuts down.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/einhorn_state.h"
#include "core/events.h"
#include "core/log_limit.h"
#include "core/memory_limit.h"
#include "core/metrics.h"
#include "core/pool_status.h"
#include "core/supervisor.h"
#include "core/telemetry.h"
#include "core/wire.h"

namespace einhorn::core {

struct Peer {
  Pid pid = 0;  // from SO_PEERCRED; 0 if unknown
  int uid = -1;
  int gid = -1;
  // pid, its parent, grandparent, ... read when the connection was accepted: an acking process
  // may be gone (and its /proc entry with it) by the time its request is read.
  std::vector<Pid> lineage;
  // Set on a worker's private -g channel: acks there count for this worker only.
  std::optional<Pid> bound_worker;

  bool operator==(const Peer&) const = default;
};

// What Control asks of the shell, one interface per concern; the master implements all four,
// a test's fake only what it checks (every concern but logging and reload has defaults).

// Logging: the verbosity the operator sets, and the lines commands leave.
class ControlLog {
 public:
  virtual ~ControlLog() = default;
  virtual int Verbosity() const = 0;  // 0 debug, 1 info, 2 errors only
  virtual void SetVerbosity(int verbosity) = 0;
  virtual void Log(LogLevel level, const std::string& message) = 0;
  // The one line each mutating command leaves, and its `control` event; the shell shows the
  // line whatever the verbosity.
  virtual void LogEventAlways(LogLevel level, const std::string& message, const Event& event) {
    (void)event;
    Log(level, message);
  }
};

// Telemetry: the events and counters the master keeps, for `events` and `metrics`.
class ControlTelemetry {
 public:
  virtual ~ControlTelemetry() = default;
  // An event with no log line of its own (a resize, which the audit line tells; a refused
  // peer, which the server logs).
  virtual void RecordEvent(const Event& event) { (void)event; }
  // Every request, for einhorn_control_commands_total ("invalid": not a request).
  virtual void CountCommand(const std::string& verb) { (void)verb; }
  // What the master remembers; nullptr: nothing is kept.
  virtual const Telemetry* Kept() const { return nullptr; }
};

// Observation: what only the shell can read.
class ControlFacts {
 public:
  virtual ~ControlFacts() = default;
  // The listeners' accept queues, for `status` and `metrics`, and the master process's own
  // figures (resident memory, open fds, the host's listen overflows), for `metrics`.
  virtual std::vector<ListenerStats> Listeners() const { return {}; }
  virtual void AddProcessFacts(MetricsInput* input) const { (void)input; }
  // `state` (Einhorn's document, core/einhorn_state.h): Control fills in master_pid,
  // verbosity and reloads itself.
  virtual EinhornStateFacts EinhornFacts() const { return {}; }
  // The wall clock, ns since the Unix epoch, for a worker:ping's time (nullopt: none).
  virtual std::optional<std::int64_t> WallClockNs() const { return std::nullopt; }
  // --max-worker-memory: a worker's last memory sample (status, the metrics); nullptr when it
  // was not sampled (no limit set, or not yet).
  virtual const MemoryWatch::Seen* WorkerMemory(Pid pid) const {
    (void)pid;
    return nullptr;
  }
  // --preload: the zygotes, for `status`.
  virtual std::vector<ZygoteStatus> Zygotes(Time now) const {
    (void)now;
    return {};
  }
};

// Reload: the master's re-exec, and what `status` and `state` tell of it.
class ControlReload {
 public:
  virtual ~ControlReload() = default;
  // reload (then_upgrade empty), upgrade and upgrade_fleet: the master re-execs itself first
  // and the new image starts the worker upgrade. `started` false: refused, with the reason.
  // The master's answer is core::Reload::Request's.
  virtual UpgradeStart Reload(std::optional<UpgradeStrategy> then_upgrade, Time now) = 0;
  virtual int Reloads() const { return 0; }
  virtual std::optional<std::string> LastReloadError() const { return std::nullopt; }
  // Reloads that failed in this image, and whether one is under way (status).
  virtual int ReloadFailures() const { return 0; }
  virtual bool Reloading() const { return false; }
};

// What the shell lends Control: one object per concern (often the same one).
struct ControlHost {
  ControlLog& log;
  ControlTelemetry& telemetry;
  ControlFacts& facts;
  ControlReload& reload;

  // One object that implements every concern (the master, a test's fake).
  template <class All>
  static ControlHost Of(All& all) {
    return ControlHost{all, all, all, all};
  }
};

struct MasterInfo {
  Pid pid = 0;
  std::string command_name;  // -c
  std::string version;
  std::string ack_mode;  // "timer 1s", "manual"
};

struct ControlOutcome {
  std::vector<wire::Reply> replies;
  bool close = false;  // close the connection after writing the replies
  // upgrade/upgrade_fleet with an id: the connection gets the upgrade's messages from now on,
  // each with this request_id, until the final one.
  std::optional<wire::Id> subscribe_upgrade;
};

inline constexpr int kMaxWorkers = 10000;
// A worker:ping whose request_id is longer is refused (logged at debug).
inline constexpr size_t kMaxPingRequestId = 1024;

class Control {
 public:
  Control(Supervisor& supervisor, ControlHost host, MasterInfo info);

  ControlOutcome Handle(const wire::ParseResult& parsed, const Peer& peer, Time now);
  PoolStatus Status(Time now) const;
  // The `state` reply: Ruby Einhorn's YAML.dump({:state => State}).
  std::string EinhornState() const;
  // The Prometheus exposition text (`metrics`, and the --metrics-listen endpoint).
  std::string MetricsText() const;
  // The command-socket server turned a peer away (reason: one of kRefusalReasons).
  void Refused(const Peer& peer, const std::string& reason, Time now);

  // inc/dec, also used for SIGTTIN/SIGTTOU; `by` names the requester for the log.
  wire::Reply Increment(const std::string& by, Time now);
  wire::Reply Decrement(const std::string& by, Time now);

  static std::string HelpText();
  static std::string CommandList();  // HelpText without its first paragraph
  // Every verb the socket answers (the verb table's names, sorted).
  static std::vector<std::string> VerbNames();

 private:
  struct Call;     // one request being handled (control.cc)
  struct VerbRow;  // {verb, name, help, handler}: a row of the verb table (control.cc)
  static std::span<const VerbRow> Verbs();

  wire::Reply Ehlo(const wire::Request& r) const;
  void UpgradeCommand(const Call& call);
  void ReloadCommand(const Call& call);
  wire::Reply SetWorkers(const wire::Request& r, const std::string& by, Time now);
  wire::Reply SendSignal(const wire::Request& r, const std::string& by, Time now);
  wire::Reply DieCommand(const wire::Request& r, const std::string& by, Time now);
  wire::Reply Verbosity(int delta, const std::string& by, Time now);
  void WorkerAck(const wire::Request& r, const Peer& peer, Time now);
  void WorkerPing(const wire::Request& r, const Peer& peer, Time now);
  // worker:recycle: the worker asks to be recycled (RecycleCause::kWorker).
  void WorkerRecycle(const wire::Request& r, const Peer& peer, Time now);
  // `recycle PID` / `recycle all`: an operator's rolling restart (RecycleCause::kOperator).
  wire::Reply RecycleCommand(const wire::Request& r, const std::string& by, Time now);
  // The worker a worker:ack or worker:recycle is about, when the peer may speak for it (the
  // worker itself, a descendant, or its own -g channel); nullopt after a refusal line.
  std::optional<Pid> WorkerItself(const wire::Request& r, const Peer& peer,
                                  const std::string& verb, const char* what, Time now);
  // A refused worker:ack, logged through refused_acks_: any peer allowed on the socket (other
  // users with --control-allow-uid) can send them as fast as it likes.
  void RefuseAck(const std::string& line, Time now);
  // One line through `limiter` (runs of a repeated line: the 1st, 10th, 100th... and a count),
  // `what` naming the requests in the summary of a run.
  void LogLimited(LogLimiter& limiter, LogLevel level, const std::string& line,
                  const std::string& what, Time now);
  void AuditCommand(const std::string& by, const std::string& verb, const wire::Reply& reply,
                    Time now);
  void Resized(int from, int to, const std::string& by, Time now);
  wire::Reply Events(const wire::Request& r) const;

  Supervisor& supervisor_;
  ControlHost host_;
  MasterInfo info_;
  LogLimiter refused_acks_;
  // worker:recycle from the worker itself that changes nothing (pending already, draining...):
  // a worker may send it in a loop.
  LogLimiter idle_recycles_;
};

}  // namespace einhorn::core
