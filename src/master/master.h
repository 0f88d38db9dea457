// The imperative shell: a libuv loop that turns signals, child exits and timers into calls on
// the Supervisor, and carries out its decisions (it is the Supervisor's Effects).
#pragma once

#include <signal.h>
#include <uv.h>

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/control.h"
#include "core/log_limit.h"
#include "core/options.h"
#include "core/reload.h"
#include "core/service_notify.h"
#include "core/state.h"
#include "core/supervisor.h"
#include "core/telemetry.h"
#include "core/worker_env.h"
#include "core/zygote.h"
#include "master/control_server.h"
#include "master/metrics_server.h"
#include "master/worker_output.h"
#include "sys/listeners.h"
#include "sys/memory.h"
#include "sys/process.h"
#include "sys/spawn.h"
#include "sys/stand_in.h"

namespace einhorn::master {

// Signals the master handles; everything else keeps its default action.
inline constexpr std::array kHandledSignals{SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGUSR2,
                                           SIGHUP,  SIGTTIN, SIGTTOU, SIGUSR1};

struct MasterSetup {
  core::Options options;
  std::string command_path;  // resolved worker executable
  std::vector<sys::Listener> listeners;
  sys::Listener control;  // the bound, listening command socket (fd -1: none)
  AccessPolicy access;
  std::vector<std::string> startup_env;  // the first image's environment, restored to re-exec
  std::vector<std::string> worker_env;   // this image's environment: the workers' base
  std::string self_path;                 // the einhorn-cpp binary to re-exec
  sys::Listener metrics;                 // --metrics-listen, bound and listening (fd -1: none)
  std::string config_path;               // --config, absolute; read again by each reload
  std::vector<std::string> argv;         // the first command line, with --config only

  // An image started by a re-exec carries on where the previous one stopped.
  struct Restored {
    core::SupervisorSnapshot supervisor;  // moved into the Master's Supervisor, then empty
    int verbosity = 1;
    std::vector<ControlServer::Carried> clients;
    std::vector<core::UpgradeStrategy> then_upgrades;
    int reloads = 0;
    std::string previous_version;
    std::vector<std::pair<pid_t, int>> notify_sockets;  // worker, fd
    core::Telemetry::Snapshot telemetry;                 // the event ring and the counters
    std::optional<int> resize_to;  // the config file's `number` changed
    // Taken over from Ruby Einhorn: adopted workers beyond -n, already marked draining in
    // `supervisor`, that get the drain signal once the loop runs (master/ruby_takeover.h).
    std::vector<pid_t> drain_now;
    std::vector<WorkerOutputRelay::Carried> worker_pipes;  // --worker-output's pipes
    std::vector<core::MasterState::ZygoteLink> zygotes;    // --preload
    core::ZygoteBookSnapshot zygote_book;
    // The previous image exec'd this binary itself (no --reexec-as, no script): no other
    // program ran under our pid in between, so none can have reaped a worker
    // (CheckCarriedWorkers).
    bool exec_was_direct = false;
    int stand_in_fd = -1;  // the reload's stand-in's channel (sys/stand_in.h), or -1
  };
  std::optional<Restored> restored;
};

// The Supervisor's Effects, and each concern of Control's host (core/control.h).
class Master final : public core::Effects,
                     public core::ControlLog,
                     public core::ControlTelemetry,
                     public core::ControlFacts,
                     public core::ControlReload {
 public:
  explicit Master(MasterSetup setup);
  Master(const Master&) = delete;
  Master& operator=(const Master&) = delete;

  // Runs until the supervisor has finished; returns the master's exit code.
  int Run();

  core::SpawnOutcome Spawn(const core::SpawnRequest& request) override;
  void Kill(core::Pid pid, core::Signal signal) override;
  void Log(core::LogLevel level, const std::string& message) override;
  void UpgradeNote(core::UpgradeNoteKind kind, const std::string& text) override;
  // Lifecycle events (core/events.h): stamped with the wall clock, kept in telemetry_, and
  // logged with their fields (master_observe.cc).
  void LogEvent(core::LogLevel level, const std::string& message,
                const core::Event& event) override;
  void RecordEvent(const core::Event& event) override;
  void CountCommand(const std::string& verb) override;
  const core::Telemetry* Kept() const override { return &telemetry_; }
  std::vector<core::ListenerStats> Listeners() const override;
  void AddProcessFacts(core::MetricsInput* input) const override;
  std::vector<core::ZygoteStatus> Zygotes(core::Time now) const override;

  int Verbosity() const override { return verbosity_; }
  void SetVerbosity(int verbosity) override;
  void LogEventAlways(core::LogLevel level, const std::string& message,
                      const core::Event& event) override;
  core::UpgradeStart Reload(std::optional<core::UpgradeStrategy> then_upgrade,
                            core::Time now) override;
  int Reloads() const override { return reloads_; }
  core::EinhornStateFacts EinhornFacts() const override;
  std::optional<std::int64_t> WallClockNs() const override;
  const core::MemoryWatch::Seen* WorkerMemory(core::Pid pid) const override;
  std::optional<std::string> LastReloadError() const override { return last_reload_error_; }
  int ReloadFailures() const override { return reload_failures_; }
  bool Reloading() const override { return reload_.running(); }

 private:
  static void OnSignal(uv_signal_t* handle, int signum) noexcept;
  static void OnTimer(uv_timer_t* handle) noexcept;
  // The supervisor's Tick, the only turn of the loop that may fork (a slice of them).
  void TickNow();
  void HandleSignal(int signum);
  // Reaps and handles ended children for about kSpawnSlice; sets reap_more_ when some may be
  // left, for the next turn (a burst of 1000 exits is handled in slices, between answers).
  void ReapChildren();
  // The idle handle's turn: reaping left over, then the supervisor's Tick.
  void SoonTurn();
  // One child ended (reaped, or found gone): the bookkeeping every exit gets.
  void ChildEnded(pid_t pid, const core::ExitStatus& status);
  // After a reload: every carried worker that is no longer our live child ends here.
  void CheckCarriedWorkers();
  void AfterEvent();
  // -m notify: each worker's NOTIFY_SOCKET (master_notify.cc).
  struct NotifyChannel;
  void WatchNotify(pid_t worker, int fd);
  void DropNotify(pid_t worker);
  void ReadNotify(NotifyChannel* channel);
  static int NotifyFd(const NotifyChannel* channel);
  // A datagram from a process that is not the worker nor its descendant: dropped, and logged
  // through notify_strangers_ (anyone can send to an abstract socket; 10,000 of them must not
  // make 10,000 lines). The summary timer sums a run up once it stops.
  void NoteNotifyStranger(pid_t worker, pid_t sender, uid_t uid);
  void ArmNotifySummary();
  core::Time Now() const;
  // The wall clock minus Now(), read once per image (`state`'s times).
  std::int64_t ReadWallOffset() const;
  // Stamps the wall clock, keeps the event; returns it as kept (with its sequence number).
  core::Event StoreEvent(core::Event event);
  void StartMetricsServer();
  core::Readiness Readiness() const;  // GET /readyz

  // Master re-exec (master_reload.cc).
  void StartReloadCheck();
  bool ReloadCheckExited(pid_t pid, const core::ExitStatus& status);
  void OnReloadTimer();
  void TryExec();
  core::Status ExecNewImage();
  void ReloadFailed(const std::string& reason);
  struct ExecTarget {
    std::string path;
    std::vector<std::string> argv;  // without the flags that follow
    std::vector<std::string> env;
  };
  core::Result<ExecTarget> ReexecTarget() const;
  void AfterRestore();
  // --preload (master_zygote.cc).
  struct ZygoteLink;
  static core::ZygotePolicy ZygotePolicyFor(const core::Options& o);
  void SetUpZygotes();
  core::ZygoteFacts ZygoteFactsNow() const;
  void ApplyZygotes();
  void StartZygote(int generation, std::optional<core::UpgradeStrategy> gates);
  void WatchZygote(pid_t pid, int fd, std::int64_t next_id);
  void CloseZygoteLink(pid_t pid);
  void CloseZygotes();
  void ZygoteBroken(pid_t pid, const std::string& why);
  void ReadZygote(pid_t pid);
  void ZygoteHungUp(pid_t pid);
  void ZygoteReady(pid_t pid);
  void RequestPreloadUpgrade(core::UpgradeStrategy strategy);
  bool ZygoteEnded(pid_t pid, const core::ExitStatus& status);
  core::Result<pid_t> ForkFromZygote(const core::SpawnRequest& request,
                                     const sys::SpawnPlan& plan);
  std::vector<core::MasterState::ZygoteLink> ExportZygotes() const;
  // systemd's notify protocol, when NOTIFY_SOCKET is set.
  void NotifyServiceManager();
  core::ServiceFacts ServiceFactsNow() const;

  MasterSetup setup_;
  sys::SpawnPlan plan_template_;
  core::WorkerEnvInput env_input_;
  size_t child_index_entry_ = 0;  // plan_template_.env's EINHORN_CHILD_INDEX, set per spawn
  core::Supervisor supervisor_;
  core::Control control_;
  int verbosity_;
  uv_loop_t loop_{};
  std::unique_ptr<ControlServer> server_;
  core::Telemetry telemetry_;
  std::int64_t wall_offset_ns_ = 0;
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<WorkerOutputRelay> output_;  // --worker-output, --worker-log-dir
  std::map<pid_t, std::string> exec_errors_;  // children whose exec failed, not reaped yet
  std::map<pid_t, NotifyChannel*> notify_channels_;
  core::LogLimiter notify_strangers_;
  uv_timer_t notify_summary_{};
  // Upgrade messages wait here until the event that produced them is handled, so that a
  // client's first reply goes out before the stream it subscribed to.
  std::vector<std::pair<core::UpgradeNoteKind, std::string>> notes_;
  uv_timer_t timer_{};
  // A deadline that is due now runs from this idle handle instead: once per turn of the loop,
  // after polling I/O, so that a batch of spawns is cut in slices with answers in between.
  uv_idle_t soon_{};
  // Spawns run only inside TickNow, and within a slice of it: after the first spawn of a turn,
  // the shell defers the rest (core::SpawnOutcome::Deferred) once kSpawnSlice has passed. A
  // control command, a signal or a child's exit never forks: a resize or an upgrade answers
  // first, and its workers are started by the turns that follow.
  struct SpawnTurn {
    bool open = false;
    core::Time started{};
    int spawned = 0;
  };
  SpawnTurn spawn_turn_;
  // A re-exec'd image's first turn polls for I/O before its first slice of spawns: the clients
  // that waited in the backlog through the exec are answered first (the control server reads
  // what a client sent as it accepts it). Cleared at that turn's end (turn_end_), spawns due or
  // not.
  bool answer_first_ = false;
  bool reap_more_ = false;  // ReapChildren stopped at its slice: zombies may be left
  // The slice of exits this turn spends, shared by every ReapChildren of the turn: libuv calls
  // the SIGCHLD handler once per signal it caught, so a burst of 1000 exits makes dozens of
  // calls in one turn, and a slice per call let one turn handle 700 exits (8 ms at 1000
  // workers). Closed by turn_end_.
  struct ReapTurn {
    bool open = false;
    core::Time started{};
  };
  ReapTurn reap_turn_;
  std::vector<uv_signal_t> signals_;

  core::Reload reload_;
  int reloads_ = 0;  // re-execs this master has been through
  std::optional<std::string> last_reload_error_;
  int reload_failures_ = 0;  // in this image
  struct ReloadCheck {
    pid_t pid = -1;
    int status_fd = -1;  // the check's exec outcome
    int output_fd = -1;  // a memfd: what the check printed
    int state_fd = -1;   // the memfd it reads
    std::string binary;
    std::string proof;  // the line it must print (core::Reload::ProofLine of the state)
  };
  std::optional<ReloadCheck> check_;
  // The reload's stand-in (sys/stand_in.h), used when the check says the new binary takes
  // one: in the old image the child forked for the exec, in the new one the channel on which
  // it takes the connections the stand-in accepted, until its EOF.
  bool check_takes_stand_in_ = false;
  std::optional<sys::StandIn> stand_in_;
  int stand_in_fd_ = -1;
  size_t stand_in_handed_ = 0;
  uv_poll_t stand_in_poll_{};
  void StartStandIn();
  void TakeBackFromStandIn();  // the exec failed: this image serves what the stand-in holds
  void ListenToStandIn(int fd);
  void ReceiveFromStandIn();
  // Serves every connection waiting on the channel; true at its EOF.
  bool AcceptHandedFrom(int channel, size_t* count);
  uv_timer_t reload_timer_{};  // the check's deadline, then the flush before exec
  core::Time flush_deadline_{};
  bool exec_requested_ = false;  // Run leaves uv_run to exec outside any callback

  core::ZygoteBook zygotes_;
  std::map<pid_t, ZygoteLink*> zygote_links_;
  bool started_ = true;  // false while --preload's first zygote loads (Start not yet called)

  std::optional<core::ServiceNotifier> service_;  // NOTIFY_SOCKET set
  uv_timer_t watchdog_{};                          // WATCHDOG=1 at half of WATCHDOG_USEC

  // EINHORN_CPP_SLOW_TURN_MS (master_turns.cc): a line for each loop turn busy that long, with
  // the work it did. The counters below are bumped only while it is on (slow_turn_ns_ > 0).
  struct TurnWork {
    std::uint64_t started_ns = 0;  // the previous turn's end (uv_hrtime)
    std::uint64_t idle_ns = 0;     // uv_metrics_idle_time then
    std::uint64_t cpu_ns = 0;      // the thread's CPU time then
    int spawns = 0, exits = 0, kills = 0, lines = 0, commands = 0, deadline_calls = 0;
    std::uint64_t tick_ns = 0, deadline_ns = 0, reap_ns = 0;
  };
  void StartTurnProbe();
  // A prepare handle runs at the end of every turn (just before the loop polls for I/O): it
  // closes the turn's reaping slice, and reports the turn when probing.
  void StartTurnEnd();
  void TurnEnded() noexcept;
  bool probing() const { return slow_turn_ns_ > 0; }
  TurnWork turn_;
  std::uint64_t slow_turn_ns_ = 0;
  uv_prepare_t turn_end_{};

  // --max-worker-memory (master_memory.cc).
  void StartMemoryWatch();
  void SampleMemory();
  core::MemoryWatch memory_watch_;
  std::unique_ptr<sys::MemorySampler> memory_sampler_;  // only with a limit
  uv_timer_t memory_timer_{};
};

}  // namespace einhorn::master
