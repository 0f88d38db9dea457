// The supervisor: every decision about the pool (whom to spawn, when, whom to signal, when to
// escalate, when the master may exit) as a pure state machine. It is driven by calls carrying
// the current monotonic time, and acts only through the Effects seam, so tests drive it with a
// fake clock and fake effects (ninja's CommandRunner idea). The shell (src/master) calls Tick()
// at NextDeadline().
//
// Readiness and restarts:
//  - A worker is booting until acked (timer mode: alive for the ack delay), then ready.
//  - A worker's EINHORN_CHILD_INDEX is the smallest index no live worker holds (as Einhorn), so a
//    worker that exits is replaced in its slot with the same index. The death is a
//    failure when the worker never became ready or lived less than the backoff base (-s); each
//    consecutive failure of a slot delays its respawn by min(cap, base * 1.5^(k-1)), times a
//    jitter factor in [0.8, 1.2]. A worker that exits after being ready for the base period
//    resets its slot's streak and is replaced at once.
//  - Spawn errors (exec failed) count as failures of the slot.
// Resizing: SetTarget grows the pool at once (new slots are spawned immediately); shrinking
// drains the workers of the highest slots with the drain signal (recorded, so -t escalates).
// Manual acks (-m manual) make a booting worker ready; timer mode ignores them, as Einhorn.
// Stopping (signals to the master): drain (INT/USR2) sends the drain signal, terminate (TERM)
// sends SIGTERM; no respawns; after the signal timeout (-t) each survivor gets SIGKILL; the
// master finishes with 0 once no worker is left. Quit (QUIT) sends SIGQUIT and finishes at once
// with 1, as Einhorn does. Beyond Einhorn, a repeated INT or TERM climbs the stop ladder (drain
// signal, SIGTERM, SIGKILL; DecideStop), and while the pool drains a reminder line names the
// workers it waits for every kDrainReminderEvery (supervisor_stop.cc).
// Recycling (supervisor_recycle.cc): a worker is replaced in its slot without the pool ever
// serving fewer than N; see Supervisor::Recycle.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "core/events.h"
#include "core/index_pool.h"
#include "core/options.h"
#include "core/types.h"
#include "core/upgrade.h"
#include "core/wire.h"

namespace einhorn::core {

struct SpawnRequest {
  int slot = 0;
  int index = 0;  // EINHORN_CHILD_INDEX
  int generation = 1;
};

// A spawn starts the worker (pid), fails (error: a failure of the slot), or is deferred: "not
// now, ask again soon", not a failure. The shell defers to keep answering while it forks a big
// batch (it spends a small budget of each turn of its loop on spawns, and none while it handles
// a control command or a signal); a zygote still loading could defer the same way. A deferred
// slot stays pending, due at once (Slot::respawn_at = now, so NextDeadline() is now): it counts
// as a booting worker for the upgrade's budgets (max_unacked, max_additional, the canary), gets
// no line, no event and no failure, and the supervisor asks for no other spawn in that call.
struct SpawnOutcome {
  Pid pid = 0;        // > 0 on success
  std::string error;  // why the worker could not be started (exec errno, fork failure)
  bool deferred = false;
  bool ok() const { return pid > 0; }
  static SpawnOutcome Deferred() {
    SpawnOutcome o;
    o.deferred = true;
    return o;
  }
};

// What an upgrade tells the clients that asked for it (they get every message until the final
// one, as Einhorn's streamed `upgrade` replies).
enum class UpgradeNoteKind { kProgress, kDone, kFailed };

class Effects {
 public:
  virtual ~Effects() = default;
  virtual SpawnOutcome Spawn(const SpawnRequest& request) = 0;
  virtual void Kill(Pid pid, Signal signal) = 0;
  virtual void Log(LogLevel level, const std::string& message) = 0;
  // A lifecycle event (core/events.h) and its log line: the shell logs the line (with the
  // event's fields in JSON logs) and records the event. Without a recorder, it is only logged.
  virtual void LogEvent(LogLevel level, const std::string& message, const Event& event) {
    (void)event;
    Log(level, message);
  }
  // Also logged through Log; this is the copy for the upgrade's subscribers.
  virtual void UpgradeNote(UpgradeNoteKind kind, const std::string& text) {
    (void)kind, (void)text;
  }
};

struct SupervisorConfig {
  int target = 1;
  AckMode ack_mode;
  Duration backoff_base = Seconds(1);
  Duration backoff_cap = Seconds(30);
  std::optional<Duration> signal_timeout;
  Signal drain_signal = Signal::kUsr2;
  bool kill_children_on_exit = false;  // -k: survivors of QUIT get the drain signal too
  std::uint64_t jitter_seed = 0;
  double jitter = 0.2;  // respawn delays are scaled by a factor in [1-jitter, 1+jitter]
  UpgradePolicy upgrade;
  // A rolled-back worker that ignores the drain signal is killed after -t, or after this.
  Duration rollback_kill_after = Seconds(10);
  // --worker-watchdog: a ready worker silent this long gets SIGABRT, then SIGKILL after -t
  // (or rollback_kill_after).
  std::optional<Duration> worker_watchdog;
  // --max-worker-lifetime: each worker is recycled (RecycleCause::kAge) after this long, scaled
  // by a factor drawn for it at spawn, uniform in [1 - lifetime_jitter, 1].
  std::optional<Duration> max_worker_lifetime;
  double lifetime_jitter = 0.1;

  bool operator==(const SupervisorConfig&) const = default;
};
SupervisorConfig ConfigFromOptions(const Options& o, std::uint64_t jitter_seed);

// A worker's states and what moves it, as s6-supervise's `actions` table:
//   state     ack/READY=1/timer  STOPPING=1  drain/stop/shrink  watchdog silent  -t passed  exit
//   booting   ready              draining    draining           -                -          gone
//   ready     refused            draining    draining           draining (ABRT)  -          gone
//   draining  refused            ignored     signalled again    -                SIGKILL    gone
// Each column is one private transition of Supervisor that logs its line and emits its event:
// BecomeReady, WorkerStopping, SendStop (DrainWorker with its line), WatchdogExpired,
// KillLingering, ChildExited (AnnounceExit, RefillSlot).
enum class WorkerState { kBooting, kReady, kDraining };
const char* WorkerStateName(WorkerState s);

// Why a worker is recycled (replaced in its slot, then drained once the replacement is ready):
// past the soft memory limit, past the hard one (drained at once), past --max-worker-lifetime,
// asked for by the worker itself (worker:recycle, RECYCLE=1), or by an operator (`recycle`).
enum class RecycleCause { kMemory, kMemoryHard, kAge, kWorker, kOperator };
inline constexpr size_t kRecycleCauses = 5;
// "memory", "memory_hard", "age", "worker", "operator" (status, events, the metric's label).
const char* RecycleCauseName(RecycleCause c);
std::optional<RecycleCause> ParseRecycleCause(std::string_view name);

enum class RecycleResult {
  kStarted,         // its replacement was spawned now (or its slot waits out the backoff)
  kQueued,          // it waits for room (pacing) or for the running upgrade to end
  kUnknownPid,      // not a worker of this master
  kAlreadyPending,  // a recycle of it is queued or under way already, or an upgrade replaces it
  kDraining,        // it is told to go already
  kNotReady,        // booting: it serves nobody yet (only a hard memory recycle takes it)
  kStopping,        // the master is shutting down
};
// One line for the asker: "recycle of worker 42 started", "worker 42 is draining already".
std::string RecycleResultText(RecycleResult r, Pid pid);

// Recycles never run more than this many extra workers at once when --max-upgrade-additional
// is unset (a set value of 0 acts as 1, as for upgrades: a recycle needs room for one).
inline constexpr int kDefaultRecycleAdditional = 1;

struct Worker {
  Pid pid = 0;
  int slot = 0;   // -1 once detached from the pool (drained by a shrink)
  int index = 0;  // EINHORN_CHILD_INDEX
  int generation = 1;
  Time spawned_at{};
  std::optional<Time> ready_at;
  WorkerState state = WorkerState::kBooting;
  std::optional<Time> signaled_at;  // when the stop/drain signal was sent
  std::optional<Time> kill_at;      // SIGKILL then, if still alive
  bool killed = false;              // SIGKILL already sent
  std::optional<Time> pinged_at;    // last worker:ping
  // That ping's wall clock (ns since the Unix epoch, as the shell read it) and its request_id
  // (absent when it sent none), for `state` (Einhorn's :pinged_at, :pinged_request_id).
  std::optional<std::int64_t> pinged_wall_ns;
  std::optional<wire::Id> pinged_request_id;
  // The stop signals sent to it, each once, in order (Einhorn's :signaled set); SIGKILL after
  // -t is `killed`.
  std::vector<Signal> signals_sent;
  std::string notify_status;        // the last STATUS= it sent (-m notify)
  std::optional<Time> watchdog_at;  // --worker-watchdog: last WATCHDOG=1, or when it got ready
  // When it became draining (its first stop signal, or its STOPPING=1), for `status`.
  std::optional<Time> draining_since;
  // A recycle asked for (its cause, and when): queued while the worker still fills its slot,
  // under way once it is detached (slot -1; its replacement fills the slot), until it exits.
  std::optional<RecycleCause> recycle;
  std::optional<Time> recycle_asked_at;
  // --max-worker-lifetime: from then on it is recycled for its age (set at spawn, jittered).
  std::optional<Time> recycle_due;

  bool operator==(const Worker&) const = default;
};

struct Slot {
  std::optional<Pid> pid;           // the worker currently filling the slot
  int starts = 0;                   // workers started in this slot
  int restarts = 0;                 // workers started in this slot after the first
  int consecutive_failures = 0;
  std::optional<Time> respawn_at;   // pending respawn
  std::optional<ExitStatus> last_exit;

  bool operator==(const Slot&) const = default;
};

enum class StopKind { kDrain, kTerminate, kQuit };

// How a stop signal that comes again acts: INT and TERM (a person's Ctrl-C, a service manager's
// stop) climb the ladder; USR2 and `die` (a script asking for a graceful stop) send their signal
// again, as Einhorn does for all of them.
enum class StopRepeat { kEscalate, kResend };

// The rungs of the stop ladder, in order: the drain signal, SIGTERM, SIGKILL.
enum class StopStep { kDrain, kTerm, kKill };

struct StopDecision {
  StopStep step = StopStep::kDrain;  // the rung reached once this signal is handled
  Signal signal = Signal::kUsr2;     // what every live worker gets now
  bool escalated = false;            // a higher rung than before (false for the first signal)

  bool operator==(const StopDecision&) const = default;
};

// What a drain (INT, USR2) or terminate (TERM) stop signal does, given the rung the pool reached
// so far (nullopt: it is the first). The first drain sends the drain signal, the first terminate
// SIGTERM (Einhorn's default). Then each kEscalate signal climbs one rung from the one reached:
// drain -> SIGTERM -> SIGKILL, and SIGKILL again from there; the SIGTERM rung is skipped when
// the drain signal is SIGTERM already (it would change nothing). A kResend signal sends its own
// signal again and stays on its rung. kQuit is not a rung: QUIT ends at once.
StopDecision DecideStop(std::optional<StopStep> reached, StopKind kind, StopRepeat repeat,
                        Signal drain_signal);

// While the pool drains after a stop, every this long a line names the workers it waits for.
inline constexpr Duration kDrainReminderEvery = std::chrono::seconds(5);
// The reminder lists this many pids, then "and N more".
inline constexpr size_t kDrainReminderPids = 10;
// "101, 102, 103" or, past `shown`, "101, 102 and 3 more"; the pids in the given order.
std::string PidList(const std::vector<Pid>& pids, size_t shown);

enum class AckResult { kAcked, kUnknownPid, kAlreadyAcked, kNotManual, kDraining };

struct UpgradeProgress {
  UpgradeStrategy strategy = UpgradeStrategy::kSmooth;
  int from_generation = 1;  // the one serving when the first of superseding upgrades began
  int to_generation = 2;
  Time started_at{};
  int failures = 0;         // new workers that died before they were ready
  std::string last_failure;
  int old_at_start = 0;     // workers serving when this upgrade began
  int reported_ready = -1;  // the last Progress line sent, to send only changes
  int reported_drained = -1;

  bool operator==(const UpgradeProgress&) const = default;
};

struct UpgradeResult {
  bool ok = false;
  int generation = 0;  // the generation the upgrade was to
  std::string reason;  // why it was rolled back
  Time finished_at{};

  bool operator==(const UpgradeResult&) const = default;
};

struct UpgradeStart {
  bool started = false;
  std::string message;  // Einhorn's first reply, or why not
};

// Everything a Supervisor holds, for a master re-exec (core/state.h carries it across). Times
// are the shell's monotonic clock (CLOCK_MONOTONIC), which an exec does not reset.
struct SupervisorSnapshot {
  SupervisorConfig config;      // its target is the live one (after resizes)
  std::mt19937_64 rng;          // the jitter's generator, mid-stream
  std::vector<Worker> workers;  // ascending pid
  std::vector<Slot> slots;
  int generation = 1;
  int next_generation = 2;
  std::optional<UpgradeProgress> upgrade;
  std::optional<UpgradeResult> last_upgrade;
  std::optional<StopKind> stopping;
  std::optional<StopStep> stop_step;   // the rung of the stop ladder reached
  std::optional<Time> drain_reminder;  // when the next reminder is due
  bool finished = false;
  int exit_code = 0;
  int watchdog_timeouts = 0;  // workers found hung by --worker-watchdog
  // Recycles started, by RecycleCause (empty in the state of an older image: all 0).
  std::vector<int> recycles;

  bool operator==(const SupervisorSnapshot&) const = default;
};

// The structure Supervisor::Restore relies on (one slot per target worker, each slot's worker
// exists and points back at it, pids unique, indexes in range, times and counters in ranges
// that cannot overflow): ok, or one line naming the offending field. DecodeState checks it;
// every Snapshot() taken after Start passes.
Status CheckSnapshot(const SupervisorSnapshot& snapshot);

class Supervisor {
 public:
  Supervisor(SupervisorConfig config, Effects& effects);
  // A supervisor that behaves from here on exactly as the one that took the snapshot would
  // have (same decisions, same jitter). The snapshot must pass CheckSnapshot. No effect is
  // called: the shell has to find out itself which workers died while it was not looking
  // (sweep, then ChildExited). supervisor_snapshot.cc.
  static Supervisor Restore(SupervisorSnapshot snapshot, Effects& effects);
  SupervisorSnapshot Snapshot() const;

  void Start(Time now);
  void ChildExited(Pid pid, const ExitStatus& status, Time now);
  // A stop signal to the master: INT is (kDrain, kEscalate), USR2 (kDrain, kResend), TERM
  // (kTerminate, kEscalate), QUIT kQuit. See DecideStop for what a repeated one does.
  void Stop(StopKind kind, Time now, StopRepeat repeat = StopRepeat::kEscalate);
  // `die`: like a drain stop, with the given signal.
  void Die(Signal signal, Time now);
  void Tick(Time now);

  // Grows or shrinks the pool; n >= 1.
  void SetTarget(int n, Time now);
  int target() const { return config_.target; }
  // worker:ack (-m manual or notify), and READY=1 on the worker's NOTIFY_SOCKET (-m notify).
  AckResult Ack(Pid pid, Time now);
  // The rest of what a worker says on its NOTIFY_SOCKET: STATUS= is kept for `status`;
  // STOPPING=1 marks it draining (it leaves on its own: no signal; its slot is refilled when it
  // exits, as after any exit).
  void WorkerStatusText(Pid pid, const std::string& text);
  void WorkerStopping(Pid pid, Time now);
  // WATCHDOG=1 (--worker-watchdog).
  void WorkerWatchdog(Pid pid, Time now);
  int watchdog_timeouts() const { return watchdog_timeouts_; }
  // worker:ping: keeps when (and, as the shell read it, the wall clock) and its request_id.
  // False for an unknown pid.
  bool Ping(Pid pid, Time now, std::optional<wire::Id> request_id = std::nullopt,
            std::optional<std::int64_t> wall_ns = std::nullopt);
  // The `signal` command: to every live worker, not recorded (no escalation), as Einhorn.
  int SignalAll(Signal signal);

  // upgrade / upgrade_fleet / SIGHUP: a new generation replaces the current one (see upgrade.h).
  // During an upgrade, a new one supersedes it, as Einhorn.
  UpgradeStart Upgrade(UpgradeStrategy strategy, Time now);
  const std::optional<UpgradeProgress>& upgrade() const { return upgrade_; }

  // Recycling a worker (supervisor_recycle.cc): it is detached from its slot and keeps
  // serving; a replacement is spawned into the slot; once the replacement is ready, the old
  // one gets the drain signal (and SIGKILL after -t), as the detached workers of an upgrade.
  //  - Ready workers never drop below N because of a recycle (the drain waits for the
  //    replacement). A replacement that dies before ready is retried with the slot's backoff
  //    while the old worker keeps serving.
  //  - Pacing: at most --max-upgrade-additional (kDefaultRecycleAdditional when unset) workers
  //    above N are alive at once, draining ones included; the others queue, oldest request
  //    first. While an upgrade runs, every recycle queues (the upgrade replaces them anyway).
  //  - A worker recycled within -s of its start counts as a failure of its slot: the
  //    replacement waits out the crash-loop backoff. An older one resets the slot's streak.
  //  - kMemoryHard does not wait: the worker is drained at once and its replacement spawned
  //    at once, whatever the pacing (also when a softer recycle of it is pending).
  //  - Only ready workers are recycled by the soft causes (kNotReady otherwise).
  //  - A worker that exits while its recycle is pending is handled as any exit, once.
  RecycleResult Recycle(Pid pid, RecycleCause cause, Time now);
  // `recycle --all`: every ready worker in a slot without a recycle pending; returns how many
  // were queued or started.
  int RecycleAll(RecycleCause cause, Time now);
  // Recycles started, by cause (the index is the RecycleCause).
  const std::array<int, kRecycleCauses>& recycles() const { return recycles_; }
  // The extra workers recycles may run at once.
  int RecycleAdditional() const;
  // --preload: an upgrade that failed before it began (its zygote did not load). Nothing of
  // the new generation ran: its number is used up, the result is recorded as a rollback (event,
  // last_upgrade, the subscribers' final message) and the current generation keeps serving.
  void UpgradeFailedEarly(UpgradeStrategy strategy, const std::string& reason, Time now);
  // The generation the next Upgrade starts.
  int next_generation() const { return next_generation_; }
  const std::optional<UpgradeResult>& last_upgrade() const { return last_upgrade_; }

  // The earliest time at which Tick() has something to do.
  std::optional<Time> NextDeadline() const;
  bool Finished() const { return finished_; }
  int ExitCode() const { return exit_code_; }
  bool Stopping() const { return stopping_.has_value(); }
  // The rung of the stop ladder reached (nullopt: not stopping, or stopped with QUIT).
  std::optional<StopStep> stop_step() const { return stop_step_; }

  const std::map<Pid, Worker>& workers() const { return workers_; }
  const std::vector<Slot>& slots() const { return slots_; }
  const SupervisorConfig& config() const { return config_; }
  int generation() const { return generation_; }

  // For the tests that keep the supervisor linear in the number of workers: the elements the
  // per-event work visited so far (workers and slots scanned by FreeIndex, Count, Reconcile,
  // DrainDetached). Every event must cost O(log n) of them, not O(n).
  std::uint64_t scan_steps() const { return scan_steps_; }
  // Live workers by state in O(1) (from the tallies below), and the ready ones in the pool's
  // slots (during an upgrade, all of the new generation's).
  int ready_count() const { return attached_ready_ + static_cast<int>(detached_ready_.size()); }
  int booting_count() const {
    return attached_booting_ + static_cast<int>(detached_booting_.size());
  }
  int draining_count() const {
    return static_cast<int>(workers_.size()) - ready_count() - booting_count();
  }
  int attached_ready_count() const { return attached_ready_; }
  // For tests: whether the counts kept with every change equal a recount of the pool, and the
  // deadline index agrees with the workers and slots.
  bool TalliesMatch() const;

 private:
  // One function per transition; each logs its line and emits its event.
  // False when the shell deferred it (the slot is then pending, due now).
  bool SpawnInto(int slot, Time now);
  // SpawnInto for each slot in [from, to); after a deferral the rest are pending too.
  void SpawnRange(int from, int to, Time now);
  void SpawnFailed(int slot, const std::string& error, Time now);
  void ScheduleRespawn(int slot, Time now);
  Duration BackoffFor(int consecutive_failures);
  // booting -> ready; `how` ends its log line ("after 1.000s", "(acked after 0.2s)").
  void BecomeReady(Worker& w, const std::string& how, Time now);
  // A worker that exited: its line and event, then its slot's respawn (now, or after the
  // backoff when it failed).
  void AnnounceExit(const Worker& w, const ExitStatus& status, Duration uptime, Time now);
  void RefillSlot(const Worker& w, const ExitStatus& status, Duration uptime, Time now);
  // any -> draining: told to go with the drain signal, `why` in its line and event.
  void DrainWorker(Worker& w, const std::string& why, Time now);
  // ready -> draining with SIGABRT (--worker-watchdog); then SIGKILL when it lingers.
  void WatchdogExpired(Worker& w, Time now);
  void KillLingering(Worker& w, Time now);
  // Any signal that tells a worker to go, recorded for the -t escalation.
  void SendStop(Worker& w, Signal sig, Time now);
  // The pool stops (Stop and Die): no respawns, an upgrade rolls back, the `stop` event.
  // Returns whether it was stopping already (the signal is then sent again).
  bool EnterStopping(StopKind kind, const std::string& detail, Time now);
  void Quit();
  void StopWith(Signal sig, bool again, Time now);
  // A repeated stop signal that climbed the ladder (supervisor_stop.cc).
  void Escalate(const StopDecision& d, Time now);
  // The reminder of who the stop waits for, when due (supervisor_stop.cc).
  void RemindDraining(Time now);
  int FreeIndex() const;
  void CheckFinished();
  // After every event: upgrade progress, spawns it allows, drains of detached workers.
  void Reconcile(Time now);
  void DrainDetached(const UpgradeStep& step, Time now);
  // O(1), from the tallies below; Recount is the scan they must equal (checked in debug
  // builds and by TalliesMatch).
  PoolCounts Count() const;
  PoolCounts Recount() const;
  // The tallies follow every change of a worker's state or slot: Untally before it, Tally
  // after (both ignore draining workers, which count only as alive). SlotChanged files one
  // slot under empty or waiting; the Rebuild ones redo everything after a bulk change.
  void Tally(const Worker& w);
  void Untally(const Worker& w);
  void SlotChanged(int slot);
  void RebuildSlotSets();
  void RebuildTallies();
  // The deadline index (supervisor_deadlines.cc). WorkerDue is the earliest time Tick has
  // something to do with a worker (its timer ack, watchdog, age, SIGKILL or ack timeout), as
  // things stand; Reindex files it again after a change that may bring it earlier (a change
  // that only puts it later may wait: Tick refiles every worker it finds due). DueWorkers are
  // the pids filed at or before now, ascending (the order of the walks of the pool they
  // replace). DeadlinesMatch: no worker is filed later than WorkerDue says, no slot's respawn
  // is missing (TalliesMatch checks it).
  std::optional<Time> WorkerDue(const Worker& w) const;
  void Reindex(const Worker& w);
  void Unindex(Pid pid);
  void RebuildDeadlines();
  std::vector<Pid> DueWorkers(Time now) const;
  bool DeadlinesMatch() const;
  void CheckUpgradeDeadlines(Time now);
  void NewWorkerFailed(const std::string& what);
  void FinishUpgrade(Time now);
  void RollBack(const std::string& reason, Time now);
  // Logs, and during an upgrade streams the line to its subscribers (Einhorn's tagged lines).
  void Announce(LogLevel level, const std::string& text);
  // The same, for a line that tells of a lifecycle event.
  void Announce(LogLevel level, const std::string& text, const Event& event);
  void ReportProgress(const PoolCounts& c, Time now);
  // Recycling (supervisor_recycle.cc).
  void StartRecycle(Worker& w, Time now);
  void StartQueuedRecycles(Time now);
  void MarkAgedWorkers(Time now);
  void DrawLifetime(Worker& w);
  void RecycleEnded(const Worker& w, Time now);

  SupervisorConfig config_;
  Effects& fx_;
  std::mt19937_64 rng_;
  std::map<Pid, Worker> workers_;
  std::vector<Slot> slots_;
  int generation_ = 1;       // the generation new workers get
  int next_generation_ = 2;  // generations are never reused, even after a rollback
  std::optional<UpgradeProgress> upgrade_;
  std::optional<UpgradeResult> last_upgrade_;
  int watchdog_timeouts_ = 0;
  std::array<int, kRecycleCauses> recycles_{};
  // A worker may be waiting in its slot for its recycle to start (StartQueuedRecycles).
  bool recycle_queued_ = true;
  std::optional<StopKind> stopping_;
  std::optional<StopStep> stop_step_;
  std::optional<Time> drain_reminder_;
  bool finished_ = false;
  int exit_code_ = 0;
  mutable std::uint64_t scan_steps_ = 0;

  // Derived from workers_ and slots_ (Restore rebuilds them; the snapshot does not carry
  // them), so that no event costs a scan of the pool: the structures that keep it linear.
  IndexPool indexes_;       // EINHORN_CHILD_INDEX held, and the lowest free one
  int attached_ready_ = 0;  // not draining, in a slot
  int attached_booting_ = 0;
  // Detached, not draining: ready ones in the order they are drained (oldest generation, then
  // oldest worker), booting ones by pid.
  std::set<std::tuple<int, Time, Pid>> detached_ready_;
  std::set<Pid> detached_booting_;
  std::set<int> empty_slots_;    // no worker and no respawn pending, filled lowest first
  std::set<int> waiting_slots_;  // no worker, a respawn pending
  // The deadline index, so that NextDeadline is O(1) and Tick visits only what is due instead
  // of every worker at each turn of the loop: each worker filed at its WorkerDue (due_at_ is
  // where), each waiting slot at its respawn (respawn_key_ is where), and how many workers got
  // SIGKILL already (the drain reminder waits for the others).
  std::set<std::pair<Time, Pid>> worker_due_;
  std::map<Pid, Time> due_at_;
  std::set<std::pair<Time, int>> respawn_due_;
  std::map<int, Time> respawn_key_;
  size_t killed_ = 0;
};

}  // namespace einhorn::core
