// Stopping the pool: the master's stop signals (Stop, Die), the stop ladder a repeated INT or
// TERM climbs, and the reminder of who a drain still waits for.
//
// Why a ladder: Einhorn answers every INT with USR2 again and every TERM with TERM again, so
// without -t a worker that ignores them keeps the master (and the terminal, or the service
// manager's stop job) waiting forever. nginx, gunicorn and systemd all give the operator a way
// to say "now": a second signal that asks harder. The first signal keeps Einhorn's meaning.
#include <algorithm>

#include "core/supervisor.h"
#include "core/supervisor_text.h"

namespace einhorn::core {

StopDecision DecideStop(std::optional<StopStep> reached, StopKind kind, StopRepeat repeat,
                        Signal drain_signal) {
  const auto signal_of = [drain_signal](StopStep step) {
    switch (step) {
      case StopStep::kDrain:
        return drain_signal;
      case StopStep::kTerm:
        return Signal::kTerm;
      case StopStep::kKill:
        return Signal::kKill;
    }
    return Signal::kKill;
  };
  const StopStep first = kind == StopKind::kTerminate ? StopStep::kTerm : StopStep::kDrain;
  if (!reached) return {first, signal_of(first), false};
  if (repeat == StopRepeat::kResend) {
    // Its own signal again, on the rung the pool is on.
    return {*reached, kind == StopKind::kTerminate ? Signal::kTerm : drain_signal, false};
  }
  StopStep next = *reached == StopStep::kDrain ? StopStep::kTerm : StopStep::kKill;
  // --drain-signal TERM: the workers have had SIGTERM; the next rung that changes anything.
  if (next == StopStep::kTerm && drain_signal == Signal::kTerm) next = StopStep::kKill;
  return {next, signal_of(next), next != *reached};
}

std::string PidList(const std::vector<Pid>& pids, size_t shown) {
  std::string out;
  const size_t n = std::min(pids.size(), shown);
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out += i + 1 == pids.size() ? " and " : ", ";
    out += std::to_string(pids[i]);
  }
  if (pids.size() > n) {
    out += (n > 0 ? " and " : "") + std::to_string(pids.size() - n) + " more";
  }
  return out;
}

void Supervisor::Stop(StopKind kind, Time now, StopRepeat repeat) {
  if (finished_) return;
  const bool again = EnterStopping(kind,
                                   kind == StopKind::kQuit    ? "quit"
                                   : kind == StopKind::kDrain ? "drain"
                                                              : "terminate",
                                   now);
  if (kind == StopKind::kQuit) {
    Quit();
    return;
  }
  const StopDecision d = DecideStop(stop_step_, kind, repeat, config_.drain_signal);
  stop_step_ = d.step;
  // A reminder right after the operator acted would only repeat what they were just told.
  drain_reminder_ = After(now, kDrainReminderEvery);
  if (d.escalated || d.signal == Signal::kKill) {
    Escalate(d, now);
    return;
  }
  StopWith(d.signal, again, now);
}

// A `die` keeps the kind of a stop already under way, and is a drain otherwise; it never climbs
// the ladder (it is a script's graceful stop, as USR2).
void Supervisor::Die(Signal signal, Time now) {
  if (finished_) return;
  const bool again = EnterStopping(stopping_.value_or(StopKind::kDrain),
                                   std::string("die ") + SignalName(signal), now);
  if (!stop_step_) stop_step_ = StopStep::kDrain;
  drain_reminder_ = After(now, kDrainReminderEvery);
  StopWith(signal, again, now);
}

bool Supervisor::EnterStopping(StopKind kind, const std::string& detail, Time now) {
  const bool again = stopping_.has_value();
  stopping_ = kind;
  for (Slot& slot : slots_) slot.respawn_at.reset();
  RebuildSlotSets();
  if (upgrade_) RollBack("the master is stopping", now);
  Event stop = EventAt(EventKind::kStop, now);
  stop.detail = detail;
  fx_.LogEvent(LogLevel::kDebug, "stopping the pool: " + detail, stop);
  return again;
}

void Supervisor::Quit() {
  fx_.Log(LogLevel::kInfo, "quitting: sending SIGQUIT to " + std::to_string(workers_.size()) +
                               " workers and exiting at once");
  for (auto& [pid, w] : workers_) fx_.Kill(pid, Signal::kQuit);
  if (config_.kill_children_on_exit) {
    for (auto& [pid, w] : workers_) fx_.Kill(pid, config_.drain_signal);
  }
  finished_ = true;
  exit_code_ = 1;
}

namespace {

std::string Workers(size_t n) { return std::to_string(n) + " worker" + (n == 1 ? "" : "s"); }

}  // namespace

void Supervisor::StopWith(Signal sig, bool again, Time now) {
  fx_.Log(LogLevel::kInfo, std::string(again ? "re-sending " : "stopping: sending ") +
                               SignalName(sig) + " to " + Workers(workers_.size()));
  for (auto& [pid, w] : workers_) SendStop(w, sig, now);
  CheckFinished();
}

void Supervisor::Escalate(const StopDecision& d, Time now) {
  const std::string what = std::string(SignalName(d.signal)) + " to " + Workers(workers_.size());
  if (d.signal != Signal::kKill) {
    fx_.Log(LogLevel::kWarn,
            "escalating the stop: sending " + what + "; another INT or TERM sends SIGKILL");
    for (auto& [pid, w] : workers_) SendStop(w, d.signal, now);
    CheckFinished();
    return;
  }
  fx_.Log(LogLevel::kWarn, std::string(d.escalated ? "escalating the stop: sending "
                                                   : "stop signal again: sending ") +
                               what);
  for (auto& [pid, w] : workers_) {
    if (!w.signaled_at) w.signaled_at = now;
    if (!w.draining_since) w.draining_since = now;
    Untally(w);
    w.state = WorkerState::kDraining;
    if (!w.killed) {
      w.killed = true;
      ++killed_;
      w.kill_at = now;  // when SIGKILL went, as after -t (`state`'s :last_signaled_at)
      Reindex(w);
      Event e = WorkerEvent(EventKind::kKill, w, now);
      e.detail = "the stop was escalated";
      // One warning line above says it for all; this is the event, and a debug line.
      fx_.LogEvent(LogLevel::kDebug, Describe(w) + ": sending SIGKILL (the stop was escalated)", e);
    }
    fx_.Kill(w.pid, Signal::kKill);
  }
  CheckFinished();
}

void Supervisor::RemindDraining(Time now) {
  if (!stopping_ || !drain_reminder_ || now < *drain_reminder_) return;
  // A worker that got SIGKILL cannot be hurried: the reminder is about the others.
  std::vector<Pid> waiting;
  std::optional<Time> last_kill;  // when -t will have killed them all
  for (const auto& [pid, w] : workers_) {
    if (w.killed) continue;
    waiting.push_back(pid);
    if (w.kill_at && (!last_kill || *w.kill_at > *last_kill)) last_kill = w.kill_at;
  }
  if (waiting.empty()) {
    drain_reminder_.reset();
    return;
  }
  drain_reminder_ = After(now, kDrainReminderEvery);
  std::string line = Workers(waiting.size()) + " still draining";
  if (stop_step_ == StopStep::kTerm) line += " after SIGTERM";
  line += " (pids " + PidList(waiting, kDrainReminderPids) + "); ";
  const bool at_term = stop_step_ == StopStep::kTerm ||
                       (stop_step_ == StopStep::kDrain && config_.drain_signal == Signal::kTerm);
  const std::string ctrl_c = at_term ? "another Ctrl-C" : "a second Ctrl-C";
  if (last_kill) {
    line += "-t sends SIGKILL in " + LogSeconds(std::max(Duration(0), *last_kill - now)) + ", " +
            ctrl_c + " forces it now";
  } else {
    line += "-t or " + ctrl_c + " forces it";
  }
  fx_.Log(LogLevel::kInfo, line);
}

}  // namespace einhorn::core
