// The recycle half of the supervisor: a worker is replaced in its slot by a new one of the same
// generation, and drained once the replacement is ready. It reuses the upgrade's detached
// model: the recycled worker leaves its slot (slot -1) and keeps serving, and the drain of a
// detached ready worker (DrainDetached, PlanStep outside an upgrade) waits until the ready
// workers would still number N without it. This file decides only what to recycle and when.
#include <algorithm>
#include <tuple>

#include "core/supervisor.h"
#include "core/supervisor_text.h"

namespace einhorn::core {

namespace {

constexpr std::array<std::pair<RecycleCause, std::string_view>, kRecycleCauses> kCauseNames{{
    {RecycleCause::kMemory, "memory"},
    {RecycleCause::kMemoryHard, "memory_hard"},
    {RecycleCause::kAge, "age"},
    {RecycleCause::kWorker, "worker"},
    {RecycleCause::kOperator, "operator"},
}};

}  // namespace

const char* RecycleCauseName(RecycleCause c) {
  for (const auto& [k, name] : kCauseNames) {
    if (k == c) return name.data();
  }
  return "?";
}

std::optional<RecycleCause> ParseRecycleCause(std::string_view name) {
  for (const auto& [k, n] : kCauseNames) {
    if (n == name) return k;
  }
  return std::nullopt;
}

std::string RecycleResultText(RecycleResult r, Pid pid) {
  const std::string who = "worker " + std::to_string(pid);
  switch (r) {
    case RecycleResult::kStarted:
      return "Recycling " + who + ": its replacement is starting";
    case RecycleResult::kQueued:
      return "Recycle of " + who + " queued";
    case RecycleResult::kUnknownPid:
      return "No worker with pid " + std::to_string(pid);
    case RecycleResult::kAlreadyPending:
      return "A recycle of " + who + " is pending already";
    case RecycleResult::kDraining:
      return who + " is draining already";
    case RecycleResult::kNotReady:
      return who + " is not ready yet; not recycling it";
    case RecycleResult::kStopping:
      return "The master is shutting down; not recycling";
  }
  return "?";
}

int Supervisor::RecycleAdditional() const {
  return std::max(1, config_.upgrade.max_additional.value_or(kDefaultRecycleAdditional));
}

RecycleResult Supervisor::Recycle(Pid pid, RecycleCause cause, Time now) {
  if (finished_ || stopping_) return RecycleResult::kStopping;
  auto it = workers_.find(pid);
  if (it == workers_.end()) return RecycleResult::kUnknownPid;
  Worker& w = it->second;
  if (w.state == WorkerState::kDraining) return RecycleResult::kDraining;
  const bool hard = cause == RecycleCause::kMemoryHard;
  if (w.slot < 0) {
    // Replaced already (its recycle is under way, or an upgrade or shrink detached it): only
    // the hard limit hastens its drain.
    if (!hard) return RecycleResult::kAlreadyPending;
    w.recycle = cause;
    recycle_queued_ = true;
    if (!w.recycle_asked_at) w.recycle_asked_at = now;
    ++recycles_[static_cast<size_t>(cause)];
    DrainWorker(w, "recycled: past the hard memory limit", now);
    Reconcile(now);
    return RecycleResult::kStarted;
  }
  if (w.recycle && !hard) return RecycleResult::kAlreadyPending;
  if (!hard && w.state != WorkerState::kReady) return RecycleResult::kNotReady;
  w.recycle = cause;
  recycle_queued_ = true;
  w.recycle_asked_at = now;
  if (hard) {
    StartRecycle(w, now);
    Reconcile(now);
    return RecycleResult::kStarted;
  }
  Reconcile(now);
  // Reconcile never erases a worker: w is still there.
  if (w.slot < 0) return RecycleResult::kStarted;
  fx_.Log(LogLevel::kInfo,
          "recycle of " + Describe(w) + " (" + RecycleCauseName(cause) + ") queued: " +
              (upgrade_ ? "an upgrade is running"
                        : "at most " + std::to_string(RecycleAdditional()) + " extra worker" +
                              (RecycleAdditional() == 1 ? "" : "s") + " at once"));
  return RecycleResult::kQueued;
}

int Supervisor::RecycleAll(RecycleCause cause, Time now) {
  if (finished_ || stopping_) return 0;
  int n = 0;
  for (auto& [pid, w] : workers_) {
    if (w.slot < 0 || w.recycle || w.state != WorkerState::kReady) continue;
    w.recycle = cause;
    recycle_queued_ = true;
    w.recycle_asked_at = now;
    ++n;
  }
  if (n > 0) {
    fx_.Log(LogLevel::kInfo, "recycling " + std::to_string(n) + " worker" + (n == 1 ? "" : "s") +
                                 " (" + RecycleCauseName(cause) + "), at most " +
                                 std::to_string(RecycleAdditional()) + " extra at once");
  }
  Reconcile(now);
  return n;
}

// In a slot, with its recycle asked for: leaves the slot for a replacement.
void Supervisor::StartRecycle(Worker& w, Time now) {
  const int slot_index = w.slot;
  Slot& slot = slots_[static_cast<size_t>(slot_index)];
  const RecycleCause cause = w.recycle.value_or(RecycleCause::kOperator);
  const bool hard = cause == RecycleCause::kMemoryHard;
  const Duration age = now - w.spawned_at;
  ++recycles_[static_cast<size_t>(cause)];
  Event e = WorkerEvent(EventKind::kRecycle, w, now);
  e.seconds = ToSeconds(age);
  e.detail = RecycleCauseName(cause);
  Announce(LogLevel::kInfo,
           "recycling " + Describe(w) + " (" + RecycleCauseName(cause) + ", age " +
               LogSeconds(age) + "): " +
               (hard ? "draining it now, its replacement starts in slot "
                     : "it serves until its replacement in slot ") +
               std::to_string(slot_index) + (hard ? "" : " is ready"),
           e);
  Untally(w);
  w.slot = -1;
  Tally(w);
  slot.pid.reset();
  SlotChanged(slot_index);
  if (hard) DrainWorker(w, "recycled: past the hard memory limit", now);
  // Recycled within -s of its start: the slot is in a loop of some kind (a worker that leaks
  // at once, a lifetime shorter than its boot); its replacement waits out the backoff.
  if (age < config_.backoff_base) {
    ++slot.consecutive_failures;
    ScheduleRespawn(slot_index, now);
  } else {
    slot.consecutive_failures = 0;
    SpawnInto(slot_index, now);
  }
}

void Supervisor::StartQueuedRecycles(Time now) {
  // The upgrade replaces every worker anyway; a recycle waits for it to end.
  // Only while some recycle may wait: this runs after every event, and a walk of the pool
  // there would make a start or an upgrade quadratic.
  if (upgrade_ || stopping_ || finished_ || !recycle_queued_) return;
  std::vector<Worker*> queued;
  for (auto& [pid, w] : workers_) {
    if (w.recycle && w.slot >= 0 && w.state == WorkerState::kReady) queued.push_back(&w);
  }
  if (queued.empty()) {
    // None waits in a slot any more (booting ones wait for ready: they are asked again then).
    recycle_queued_ = std::any_of(workers_.begin(), workers_.end(), [](const auto& kv) {
      return kv.second.recycle && kv.second.slot >= 0;
    });
    return;
  }
  std::sort(queued.begin(), queued.end(), [](const Worker* a, const Worker* b) {
    return std::tie(a->recycle_asked_at, a->spawned_at, a->pid) <
           std::tie(b->recycle_asked_at, b->spawned_at, b->pid);
  });
  const int limit = config_.target + RecycleAdditional();
  for (Worker* w : queued) {
    if (Count().alive >= limit) return;
    StartRecycle(*w, now);
  }
}

void Supervisor::MarkAgedWorkers(Time now) {
  if (!config_.max_worker_lifetime || stopping_) return;
  for (const Pid pid : DueWorkers(now)) {
    Worker& w = workers_.at(pid);
    if (w.slot < 0 || w.recycle || w.state != WorkerState::kReady || !w.recycle_due ||
        now < *w.recycle_due) {
      continue;
    }
    w.recycle = RecycleCause::kAge;
    recycle_queued_ = true;
    w.recycle_asked_at = now;
    Reindex(w);
  }
}

// Uniform in [lifetime * (1 - jitter), lifetime]: never later than the limit, and a pool
// started together spreads its recycles over the last jitter share of the lifetime.
void Supervisor::DrawLifetime(Worker& w) {
  if (!config_.max_worker_lifetime) return;
  double factor = 1;
  if (config_.lifetime_jitter > 0) {
    std::uniform_real_distribution<double> draw(1 - config_.lifetime_jitter, 1);
    factor = draw(rng_);
  }
  w.recycle_due = After(w.spawned_at, Seconds(ToSeconds(*config_.max_worker_lifetime) * factor));
}

void Supervisor::RecycleEnded(const Worker& w, Time now) {
  if (!w.recycle) return;
  Event e = WorkerEvent(EventKind::kRecycleDone, w, now);
  e.detail = RecycleCauseName(*w.recycle);
  if (w.slot >= 0) e.detail += ", before it started";
  if (w.recycle_asked_at) e.seconds = ToSeconds(now - *w.recycle_asked_at);
  Announce(LogLevel::kInfo, "recycle of " + Describe(w) + " done (" + e.detail + ")", e);
}

}  // namespace einhorn::core
