#include "ctl/commands.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/events.h"
#include "core/options.h"
#include "core/pool_status.h"
#include "core/wire.h"
#include "ctl/render.h"
#include "ctl/shell.h"
#include "ctl/waits.h"

namespace einhorn::ctl {
namespace {

using core::PoolStatus;
using core::Result;
using core::Status;
using core::wire::Reply;

constexpr double kPollInterval = 0.1;  // every wait asks for status this often

constexpr std::string_view kProgressPrefix = "Progress: ";

// The deadline of a wait of `seconds` (0: none) from now.
std::optional<double> DeadlineAfter(Context& ctx, double seconds) {
  if (seconds <= 0) return std::nullopt;
  return ctx.clock->Now() + seconds;
}

// How long to sleep before the next poll, or nullopt when the deadline has passed.
std::optional<double> NextPoll(Context& ctx, const std::optional<double>& deadline) {
  if (!deadline) return kPollInterval;
  const double left = *deadline - ctx.clock->Now();
  if (left <= 0) return std::nullopt;
  return std::min(kPollInterval, left);
}

// A one-line "Progress: 2/4 new ready, 1/4 old told to drain" of an upgrade, which the next one
// supersedes.
bool IsProgress(const Reply& reply) {
  const std::string& m = reply.message;
  return !reply.error && m.starts_with(kProgressPrefix) && m.find('\n') >= m.size() - 1;
}

// Prints what the master says as it arrives (streamed messages must not wait for the last one),
// or collects it for one JSON document at the end. Refusals go to stderr, einhornctl's own
// diagnostics too, prefixed with the program name.
class Output {
 public:
  Output(Context& ctx, bool json) : ctx_(ctx), json_(json) {}

  // On a terminal, consecutive progress lines (IsProgress) then overwrite each other instead
  // of scrolling; whatever follows starts on a new line.
  void OverwriteProgress() { overwrite_progress_ = ctx_.stdout_tty; }

  void Add(const Reply& reply) {
    error_ = error_ || reply.error;
    if (json_) {
      messages_.push_back(reply.message);
      return;
    }
    if (overwrite_progress_ && IsProgress(reply)) {
      std::string text = reply.message;
      if (text.back() == '\n') text.pop_back();
      *ctx_.out << "\r\x1b[K" << text << std::flush;
      line_open_ = true;
      return;
    }
    EndLine();
    std::ostream& to = reply.error ? *ctx_.err : *ctx_.out;
    to << MessageText(reply.message) << std::flush;
  }
  // A line of our own for people (json: dropped, the data says it).
  void Note(const std::string& text) {
    if (json_) return;
    EndLine();
    *ctx_.out << MessageText(text) << std::flush;
  }
  void Diagnose(const std::string& text) {
    EndLine();
    *ctx_.err << "einhornctl: " << text << "\n" << std::flush;
  }
  // The end of a command that reached the master.
  int Finish(int code) {
    EndLine();
    if (json_) *ctx_.out << RenderMessagesJson(messages_, error_ || code != kExitOk);
    return code;
  }
  // The end of a command that lost the master: diagnostics only.
  int Unreachable(const Status& status) {
    Diagnose(status.message());
    return kExitUnreachable;
  }
  bool error() const { return error_; }
  bool json() const { return json_; }

 private:
  // Ends an overwritten progress line, so that the next output starts on a line of its own.
  void EndLine() {
    if (!line_open_) return;
    *ctx_.out << "\n" << std::flush;
    line_open_ = false;
  }

  Context& ctx_;
  bool json_;
  bool overwrite_progress_ = false;
  bool line_open_ = false;  // a progress line without its '\n' is on the terminal
  std::vector<std::string> messages_;
  bool error_ = false;
};

// How a Call listens after its first reply. By default: to every message up to the final one,
// each within the connection's own timeout (--timeout).
struct Listen {
  bool first_only = false;  // hand up the first reply and read no further
  // The messages after the first may be far apart (an upgrade): wait for them until `deadline`
  // on the context's clock, or for ever without one, instead of --timeout each.
  bool patient = false;
  std::optional<double> deadline;
};

// One connection, opened on first use, and the request ids 1, 2, 3, ... (or those after the
// previous command's, in the shell: Context::next_request_id).
class Session {
 public:
  explicit Session(Context& ctx)
      : ctx_(ctx), next_id_(ctx.next_request_id != nullptr ? *ctx.next_request_id : own_next_id_) {}

  // Sends `verb` and hands every reply up to the final one to `on_reply`.
  template <typename OnReply>
  Status Call(const std::string& verb, const std::vector<std::string>& args, OnReply on_reply) {
    return Call(verb, args, Listen{}, on_reply);
  }
  template <typename OnReply>
  Status Call(const std::string& verb, const std::vector<std::string>& args, const Listen& listen,
              OnReply on_reply) {
    const std::int64_t id = next_id_++;
    return Exchange(core::wire::EncodeRequest(verb, args, id), id, on_reply, listen);
  }

  template <typename OnReply>
  Status Ehlo(const std::string& user, OnReply on_reply) {
    const std::int64_t id = next_id_++;
    core::wire::OutgoingRequest ehlo{"ehlo", id, std::nullopt, user, std::nullopt};
    return Exchange(core::wire::EncodeRequest(ehlo), id, on_reply);
  }

  // Forgets the connection (after it was lost): the next call connects again.
  void Drop() { conn_.reset(); }
  // Each later reply is due within `seconds` again (after a patient Call, see Listen).
  void SetReplyTimeout(double seconds) {
    if (conn_) conn_->SetReplyTimeout(seconds);
  }

  // worker:ack: no id, no reply; a refusal (the master turning the peer away) goes to
  // `on_reply`.
  template <typename OnReply>
  Status Ack(core::Pid pid, OnReply on_reply) {
    if (Status s = Open(); !s.ok()) return s;
    core::wire::OutgoingRequest ack{"worker:ack", std::nullopt, std::nullopt, std::nullopt, pid};
    ack.compact = true;
    const std::string line = core::wire::EncodeRequest(ack);
    if (Status s = conn_->Send(line); !s.ok()) return s;
    Result<std::optional<Reply>> closed = conn_->AwaitClose();
    if (!closed.ok()) return closed.status();
    if (closed.value()) on_reply(*closed.value());
    return Status::Ok();
  }

 private:
  Status Open() {
    if (conn_) return Status::Ok();
    Result<std::unique_ptr<Connection>> c = ctx_.connect();
    if (!c.ok()) return c.status();
    conn_ = std::move(c).value();
    return Status::Ok();
  }

  template <typename OnReply>
  Status Exchange(const std::string& line, std::int64_t id, OnReply& on_reply,
                  const Listen& listen = Listen{}) {
    if (Status s = Open(); !s.ok()) return s;
    if (Status s = conn_->Send(line); !s.ok()) return s;
    const std::string want = std::to_string(id);
    for (bool first = true;;) {
      if (!first && listen.patient) {
        std::optional<double> left;
        if (listen.deadline) {
          left = *listen.deadline - ctx_.clock->Now();
          if (*left <= 0) return Status::Error("no final message from the master in time");
        }
        conn_->SetReplyTimeout(left);
      }
      Result<Reply> r = conn_->Receive();
      if (!r.ok()) return r.status();
      const Reply& reply = r.value();
      // Einhorn keeps streaming an earlier upgrade's progress to a connection that asked for
      // it; those messages carry that request's id, not ours.
      if (reply.request_id && reply.request_id->kind == core::wire::Id::Kind::kInt &&
          reply.request_id->text != want) {
        continue;
      }
      on_reply(reply);
      if (!reply.wait || listen.first_only) return Status::Ok();
      first = false;
    }
  }

  Context& ctx_;
  std::unique_ptr<Connection> conn_;
  std::int64_t own_next_id_ = 1;
  std::int64_t& next_id_;
};

enum class Fetch { kOk, kRefused, kUnreachable };

// Asks for `status`. On failure the reason is already printed (or collected by `output`).
Fetch FetchStatus(Session& session, Output& output, PoolStatus* status) {
  Reply last;
  const Status sent = session.Call("status", {}, [&](const Reply& r) { last = r; });
  if (!sent.ok()) {
    output.Unreachable(sent);
    return Fetch::kUnreachable;
  }
  if (last.error) {
    output.Add(last);
    return Fetch::kRefused;
  }
  Result<PoolStatus> parsed = core::PoolStatusFromYaml(last.message);
  if (!parsed.ok()) {
    if (last.message.rfind("Unrecognized command", 0) == 0) {
      output.Diagnose("this master does not know `status` (Ruby Einhorn?); it needs einhorn-cpp");
    } else {
      output.Diagnose("the master's answer to status is not a pool status: " + parsed.error());
    }
    return Fetch::kRefused;
  }
  *status = std::move(parsed).value();
  return Fetch::kOk;
}

// `status` for a wait, printing nothing: the error says why not, `*lost` whether the master
// could not be reached at all, and `refusal` (when given) is set to the master's refusal (a
// peer it turns away), not to its "Unrecognized command".
Result<PoolStatus> AskStatus(Session& session, bool* lost,
                             std::optional<Reply>* refusal = nullptr) {
  Reply last;
  const Status sent = session.Call("status", {}, [&](const Reply& r) { last = r; });
  *lost = !sent.ok();
  if (!sent.ok()) return Result<PoolStatus>::Error(sent.message());
  std::string said = last.message;
  if (!said.empty() && said.back() == '\n') said.pop_back();
  if (said.rfind("Unrecognized command", 0) == 0) {
    return Result<PoolStatus>::Error("this master does not know `status` (Ruby Einhorn?)");
  }
  if (last.error) {
    if (refusal != nullptr) *refusal = last;
    return Result<PoolStatus>::Error("status refused: " + said);
  }
  return core::PoolStatusFromYaml(last.message);
}

// FetchStatus for a command that stops when it fails: the exit code then; nullopt with the
// status in `status`. `progress`: the terminal whose progress line is to be ended first.
std::optional<int> StatusOrExit(Session& session, Output& output, PoolStatus* status,
                                std::ostream* progress = nullptr) {
  const Fetch f = FetchStatus(session, output, status);
  if (f == Fetch::kOk) return std::nullopt;
  if (progress) *progress << "\n";
  return f == Fetch::kRefused ? output.Finish(kExitRefused) : kExitUnreachable;
}

int StatusCommand(Context& ctx, Session& session, bool json) {
  Output output(ctx, json);
  PoolStatus status;
  if (const std::optional<int> code = StatusOrExit(session, output, &status)) return *code;
  *ctx.out << (json ? RenderStatusJson(status) : RenderStatus(status)) << std::flush;
  return kExitOk;
}

// Sends `specs` in order, stopping at the first refusal.
int RunPlan(const std::vector<RequestSpec>& specs, Session& session, Output& output) {
  for (const RequestSpec& spec : specs) {
    const Status s = session.Call(spec.verb, spec.args, [&](const Reply& r) { output.Add(r); });
    if (!s.ok()) return output.Unreachable(s);
    if (output.error()) return output.Finish(kExitRefused);
  }
  return output.Finish(kExitOk);
}

// `signal SIG`: Einhorn's reply to it is empty (its wire contract, kept by the master), so the
// confirmation is einhornctl's own: which signal went to whom, from the workers the master
// listed just before (a master without `status`, Ruby Einhorn, gets the plain sentence).
int SignalCommand(const Invocation& inv, Context& ctx, Session& session) {
  Output output(ctx, inv.json);
  std::optional<PoolStatus> before;
  Reply listed;
  Status s = session.Call("status", {}, [&](const Reply& r) { listed = r; });
  if (!s.ok()) return output.Unreachable(s);
  if (!listed.error) {
    if (Result<PoolStatus> st = core::PoolStatusFromYaml(listed.message); st.ok()) {
      before = std::move(st).value();
    }
  }
  bool empty_reply = true;
  s = session.Call("signal", {inv.signal}, [&](const Reply& r) {
    if (!r.message.empty() && r.message.find_first_not_of('\n') != std::string::npos) {
      empty_reply = false;
    }
    output.Add(r);
  });
  if (!s.ok()) return output.Unreachable(s);
  if (output.error()) return output.Finish(kExitRefused);
  if (empty_reply) output.Note(SignalSentText(core::NormalizeSignalArg(inv.signal), before));
  return output.Finish(kExitOk);
}

int LogLevelCommand(const Invocation& inv, Context& ctx, Session& session) {
  Output output(ctx, inv.json);
  PoolStatus status;
  if (const std::optional<int> code = StatusOrExit(session, output, &status)) return *code;
  int want = 0;
  while (want < 2 && inv.level != core::kLogLevelNames[want]) ++want;
  const int steps = want - status.verbosity;
  if (steps == 0) {
    Reply same;
    same.message = "Log level already " + inv.level + " (verbosity " + std::to_string(want) + ")";
    output.Add(same);
    return output.Finish(kExitOk);
  }
  // Each step answers "Verbosity set to N"; only the last one is news.
  Output quiet(ctx, /*json=*/true);
  Reply last;
  for (int i = 0; i < (steps > 0 ? steps : -steps); ++i) {
    const Status s = session.Call(steps > 0 ? "quieter" : "louder", {}, [&](const Reply& r) {
      last = r;
      quiet.Add(r);
    });
    if (!s.ok()) return output.Unreachable(s);
    if (quiet.error()) break;
  }
  // quieter/louder answer Einhorn's "Verbosity set to N"; log-level speaks in its own names.
  if (!last.error) last.message = LogLevelText(last.message, status.verbosity);
  output.Add(last);
  return output.Finish(last.error ? kExitRefused : kExitOk);
}

// set N --wait: the resize is done when the master targets N, N workers are ready, none is
// booting, and every worker told to drain has exited (a culled worker finishing its last
// requests still holds its resources, and may yet be killed by -t).
int SetCommand(const Invocation& inv, Context& ctx, Session& session) {
  Output output(ctx, inv.json);
  const Status s = session.Call("set_workers", {std::to_string(inv.workers)},
                                [&](const Reply& r) { output.Add(r); });
  if (!s.ok()) return output.Unreachable(s);
  if (output.error()) return output.Finish(kExitRefused);
  if (!inv.wait) return output.Finish(kExitOk);

  const int n = inv.workers;
  const std::optional<double> deadline = DeadlineAfter(ctx, inv.wait_timeout);
  const bool progress = ctx.stdout_tty && !inv.json;
  DrainTracker drains;
  auto line = [n, &drains](const PoolStatus& st, bool pids) {
    return "ready " + std::to_string(st.ready) + "/" + std::to_string(n) + ", booting " +
           std::to_string(st.booting) + ", " + drains.Text(pids);
  };
  for (;;) {
    PoolStatus st;
    if (const std::optional<int> code =
            StatusOrExit(session, output, &st, progress ? ctx.out : nullptr)) {
      return *code;
    }
    drains.Update(st);
    if (st.target == n && st.ready == n && st.booting == 0 && st.draining == 0) {
      if (progress) *ctx.out << "\r\x1b[K";
      output.Note(line(st, false));
      return output.Finish(kExitOk);
    }
    const std::optional<double> sleep = NextPoll(ctx, deadline);
    if (st.stopping || !sleep) {
      if (progress) *ctx.out << "\n" << std::flush;
      if (st.stopping) {
        output.Diagnose("the master is shutting down: " + line(st, true));
        return output.Finish(kExitRefused);
      }
      output.Diagnose("timed out after " + ShortSeconds(inv.wait_timeout) + ": " + line(st, true));
      return output.Finish(kExitTimeout);
    }
    if (progress) *ctx.out << "\r\x1b[Kwaiting: " << line(st, false) << std::flush;
    ctx.clock->Sleep(*sleep);
  }
}

// recycle PID|--all [--wait]: the master answers at once; --wait then polls `status` until no
// recycle is pending (each ends when its old worker exits), the recycled pid is gone, and the
// pool is ready again (at least target ready, none booting, none draining).
int RecycleCommand(const Invocation& inv, Context& ctx, Session& session) {
  Output output(ctx, inv.json);
  const std::string arg = inv.all ? "all" : std::to_string(inv.pid);
  const Status s = session.Call("recycle", {arg}, [&](const Reply& r) { output.Add(r); });
  if (!s.ok()) return output.Unreachable(s);
  if (output.error()) return output.Finish(kExitRefused);
  if (!inv.wait) return output.Finish(kExitOk);

  const std::optional<double> deadline = DeadlineAfter(ctx, inv.wait_timeout);
  const bool progress = ctx.stdout_tty && !inv.json;
  auto line = [](const PoolStatus& st, int pending) {
    return std::to_string(pending) + " recycle" + (pending == 1 ? "" : "s") + " pending, ready " +
           std::to_string(st.ready) + "/" + std::to_string(st.target) + ", booting " +
           std::to_string(st.booting) + ", draining " + std::to_string(st.draining);
  };
  for (;;) {
    PoolStatus st;
    if (const std::optional<int> code =
            StatusOrExit(session, output, &st, progress ? ctx.out : nullptr)) {
      return *code;
    }
    int pending = 0;
    bool pid_alive = false;
    for (const core::WorkerStatus& w : st.workers) {
      pending += w.recycle ? 1 : 0;
      pid_alive = pid_alive || (!inv.all && w.pid == inv.pid);
    }
    if (pending == 0 && !pid_alive && st.ready >= st.target && st.booting == 0 &&
        st.draining == 0) {
      if (progress) *ctx.out << "\r\x1b[K";
      output.Note("recycled: " + line(st, 0));
      return output.Finish(kExitOk);
    }
    const std::optional<double> sleep = NextPoll(ctx, deadline);
    if (st.stopping || !sleep) {
      if (progress) *ctx.out << "\n" << std::flush;
      if (st.stopping) {
        output.Diagnose("the master is shutting down: " + line(st, pending));
        return output.Finish(kExitRefused);
      }
      output.Diagnose("timed out after " + ShortSeconds(inv.wait_timeout) + ": " +
                      line(st, pending));
      return output.Finish(kExitTimeout);
    }
    if (progress) *ctx.out << "\r\x1b[Kwaiting: " << line(st, pending) << std::flush;
    ctx.clock->Sleep(*sleep);
  }
}

// After "Upgrade done" (every new worker ready, every old one told to drain), upgrade --wait is
// done once the old workers have exited too: until then they hold their connections, memory
// and the old code.
int WaitOldExited(const Invocation& inv, Context& ctx, Session& session, Output& output,
                  const std::optional<double>& deadline) {
  std::set<core::Pid> seen;  // old workers seen alive after "Upgrade done" (not a total: some
                             // may have exited before the first look)
  std::set<core::Pid> shown;
  auto pids = [](const std::set<core::Pid>& set) {
    std::string out;
    for (const core::Pid p : set) out += (out.empty() ? "" : " ") + std::to_string(p);
    return out;
  };
  auto say = [&output](const std::string& text) {
    Reply r;
    r.message = text;
    output.Add(r);
  };
  session.SetReplyTimeout(inv.timeout);
  for (;;) {
    bool lost = false;
    const Result<PoolStatus> st = AskStatus(session, &lost);
    if (lost) {
      return output.Unreachable(Status::Error(
          st.error() + " while the old workers were draining (the upgrade itself is done)"));
    }
    if (!st.ok()) {
      output.Diagnose("the upgrade is done; whether its old workers have exited is unknown: " +
                      st.error());
      return output.Finish(kExitOk);
    }
    const std::set<core::Pid> old = OldWorkers(st.value());
    seen.insert(old.begin(), old.end());
    if (old.empty()) {
      if (!seen.empty()) say("Every old worker has exited");
      return output.Finish(kExitOk);
    }
    if (old != shown) {
      say("Progress: " + std::to_string(old.size()) +
          " old workers told to drain, not exited yet: " + pids(old));
      shown = old;
    }
    const std::optional<double> sleep = NextPoll(ctx, deadline);
    if (!sleep) {
      output.Diagnose("the upgrade is done, but " + std::to_string(old.size()) +
                      " old workers told to drain have not exited within " +
                      ShortSeconds(inv.upgrade_wait_timeout) + " (--wait-timeout): " + pids(old));
      return output.Finish(kExitTimeout);
    }
    ctx.clock->Sleep(*sleep);
  }
}

// upgrade [--fleet] [--wait]: the master answers at once that the upgrade has begun (or
// refuses), then streams its progress and ends it with one final message: "Upgrade done", or the
// failure with `error: true`. Without --wait that first answer is all we read; the upgrade goes
// on without us.
int UpgradeCommand(const Invocation& inv, Context& ctx, Session& session) {
  Output output(ctx, inv.json);
  output.OverwriteProgress();
  const RequestSpec spec = PlanRequests(inv).front();
  Listen listen;
  listen.first_only = !inv.wait;
  // The first answer is an ordinary reply, due within --timeout. The rest may take as long as
  // the master's own upgrade deadlines (it always sends a final message), hence one deadline
  // for the whole wait instead.
  listen.patient = inv.wait;
  if (inv.wait && inv.upgrade_wait_timeout > 0) {
    listen.deadline = ctx.clock->Now() + inv.upgrade_wait_timeout;
  }
  Reply last;
  int replies = 0;
  const Status s = session.Call(spec.verb, spec.args, listen, [&](const Reply& r) {
    last = r;
    ++replies;
    output.Add(r);
  });
  if (!s.ok()) {
    if (replies == 0) return output.Unreachable(s);
    // The upgrade has begun and we do not know how it ends: not a failure (1), a lost master.
    // The deadline passed: the outcome is not known yet (4), the master may be fine.
    if (listen.deadline && ctx.clock->Now() >= *listen.deadline) {
      output.Diagnose("no end of the upgrade within " + ShortSeconds(inv.upgrade_wait_timeout) +
                      " (--wait-timeout); it may still be running (see einhornctl status)");
      return output.Finish(kExitTimeout);
    }
    return output.Unreachable(
        Status::Error(s.message() +
                      " before the end of the upgrade; it may still be running (see einhornctl "
                      "status)"));
  }
  if (last.error) {
    // The reason must be seen even when stdout is a JSON document for a program.
    if (output.json()) *ctx.err << MessageText(last.message) << std::flush;
    return output.Finish(kExitRefused);
  }
  if (!inv.wait) return output.Finish(kExitOk);
  std::string_view end = last.message;
  if (end.ends_with('\n')) end.remove_suffix(1);
  if (end != "Upgrade done") {
    output.Diagnose("the upgrade's last message is not \"Upgrade done\": it may not have happened");
    return output.Finish(kExitRefused);
  }
  return WaitOldExited(inv, ctx, session, output, listen.deadline);
}

// events [--since SEQ] [--follow]: the ring's events after SEQ, oldest first; --follow then
// asks again every interval for those after the newest one seen, until interrupted (or the
// master goes away: exit 3). Human lines under a header, or one JSON object per line.
int EventsCommand(const Invocation& inv, Context& ctx, Session& session) {
  Output output(ctx, inv.json);
  std::uint64_t since = inv.since;
  for (bool first = true;; first = false) {
    Reply last;
    std::vector<std::string> args;
    if (since > 0) args.push_back(std::to_string(since));
    const Status s = session.Call("events", args, [&](const Reply& r) { last = r; });
    if (!s.ok()) {
      if (first) return output.Unreachable(s);
      return output.Unreachable(Status::Error("lost the master while following: " + s.message()));
    }
    if (last.error) {
      output.Add(last);
      return output.Finish(kExitRefused);
    }
    const Result<core::EventsReply> parsed = core::EventsReplyFromYaml(last.message);
    if (!parsed.ok()) {
      output.Diagnose(last.message.rfind("Unrecognized command", 0) == 0
                          ? "this master does not know `events` (Ruby Einhorn, or an older "
                            "einhorn-cpp)"
                          : "the master's answer to events is not a list of events: " +
                                parsed.error());
      return output.Finish(kExitRefused);
    }
    const core::EventsReply& reply = parsed.value();
    if (reply.last_seq < since) {
      // Numbering starts again only with another master (events survive a reload).
      output.Diagnose("the master's events start again at 1: following from there");
      since = 0;
      continue;
    }
    // Numbers the reply skips went out of the ring: before its oldest event, or from the
    // middle (a flood of one class of events makes room in its own share, core/events.h).
    const std::uint64_t newer = reply.last_seq - since;
    if (since > 0 && reply.events.size() < newer) {
      output.Diagnose(std::to_string(newer - reply.events.size()) + " events after " +
                      std::to_string(since) + " are no longer kept");
    }
    if (first && !inv.json) *ctx.out << RenderEventsHeader();
    for (const core::Event& e : reply.events) {
      *ctx.out << (inv.json ? core::EventToJson(e) + "\n" : RenderEvent(e));
    }
    *ctx.out << std::flush;
    since = reply.last_seq;
    if (!inv.follow) return kExitOk;
    ctx.clock->Sleep(inv.follow_interval);
  }
}

// metrics: the text exposition as the master renders it (what --metrics-listen serves).
int MetricsCommand(const Invocation& inv, Context& ctx, Session& session) {
  Output output(ctx, inv.json);
  Reply last;
  const Status s = session.Call("metrics", {}, [&](const Reply& r) { last = r; });
  if (!s.ok()) return output.Unreachable(s);
  if (last.error || last.message.rfind("# HELP", 0) != 0) {
    if (!last.error) {
      output.Diagnose("the master's answer to metrics is not the Prometheus text format");
      return output.Finish(kExitRefused);
    }
    output.Add(last);
    return output.Finish(kExitRefused);
  }
  *ctx.out << last.message << std::flush;
  return kExitOk;
}

// reload: Einhorn's reply comes before the master re-execs, whatever happens next. Unless
// --no-wait, the outcome is then read from `status` (core/pool_status.h): `reloads` goes up
// when a new image took over, `reload_failures` when the old one refused and kept running,
// with the reason in full in `last_reload_error`. The connection is carried across the exec;
// should it break anyway, we connect again (for up to --timeout in a row).
int ReloadCommand(const Invocation& inv, Context& ctx, Session& session) {
  Output output(ctx, inv.json);
  if (inv.no_wait) return RunPlan(PlanRequests(inv), session, output);
  bool lost = false;
  std::optional<Reply> refusal;
  const Result<PoolStatus> before = AskStatus(session, &lost, &refusal);
  if (lost) return output.Unreachable(before.status());
  if (refusal) {
    // Turned away (the master may close the connection after saying so): that is the answer.
    output.Add(*refusal);
    return output.Finish(kExitRefused);
  }
  const Status sent = session.Call("reload", {}, [&](const Reply& r) { output.Add(r); });
  if (!sent.ok()) return output.Unreachable(sent);
  if (output.error()) return output.Finish(kExitRefused);
  if (!before.ok()) {
    // Ruby Einhorn (or something else): it reloads, and says nothing of how it went.
    output.Diagnose("cannot wait for the outcome of the reload: " + before.error() +
                    "; see the master's log");
    return output.Finish(kExitOk);
  }
  const std::optional<double> deadline = DeadlineAfter(ctx, inv.wait_timeout);
  std::optional<double> unreachable_since;
  std::string last_error;
  bool said_checking = false;
  for (;;) {
    const Result<PoolStatus> now = AskStatus(session, &lost);
    if (lost) {
      session.Drop();
      last_error = now.error();
      if (!unreachable_since) unreachable_since = ctx.clock->Now();
      if (ctx.clock->Now() - *unreachable_since >= inv.timeout) {
        return output.Unreachable(
            Status::Error("lost the master during the reload: " + last_error +
                          " (the new image may have failed to start; see the master's log)"));
      }
    } else if (!now.ok()) {
      output.Diagnose("the master's answer to status is not a pool status: " + now.error());
      return output.Finish(kExitRefused);
    } else {
      unreachable_since.reset();
      const ReloadVerdict verdict = JudgeReload(before.value(), now.value());
      Reply r;
      r.message = verdict.text;
      switch (verdict.kind) {
        case ReloadVerdict::Kind::kDone:
          output.Add(r);
          return output.Finish(kExitOk);
        case ReloadVerdict::Kind::kFailed:
          r.error = true;
          output.Add(r);
          // The reason must be seen even when stdout is a JSON document for a program.
          if (output.json()) *ctx.err << MessageText(r.message) << std::flush;
          return output.Finish(kExitRefused);
        case ReloadVerdict::Kind::kOtherMaster:
          output.Diagnose(verdict.text);
          return output.Finish(kExitUnreachable);
        case ReloadVerdict::Kind::kRunning:
          if (now.value().reloading && !said_checking) {
            output.Note("Waiting: the master checks the new binary, then re-execs it");
            said_checking = true;
          }
          break;
      }
    }
    const std::optional<double> sleep = NextPoll(ctx, deadline);
    if (!sleep) {
      output.Diagnose("no outcome of the reload within " + ShortSeconds(inv.wait_timeout) +
                      " (--wait-timeout)" +
                      (unreachable_since ? "; the master does not answer: " + last_error
                                         : "; it may still be running (see einhornctl status)"));
      return output.Finish(kExitTimeout);
    }
    ctx.clock->Sleep(*sleep);
  }
}

// wait ready|drained|upgraded, in the manner of s6-svwait: polls `status` until the pool is in
// that state (exit 0), it cannot come (1), or --wait-timeout passes (4). waits.h defines each.
int WaitCommand(const Invocation& inv, Context& ctx, Session& session) {
  Output output(ctx, inv.json);
  const std::optional<WaitCondition> condition = WaitConditionFromName(inv.condition);
  if (!condition) {
    output.Diagnose("wait for what? ready, drained or upgraded, not '" + inv.condition + "'");
    return kExitUsage;
  }
  const std::optional<double> deadline = DeadlineAfter(ctx, inv.wait_timeout);
  const bool progress = ctx.stdout_tty && !inv.json;
  for (;;) {
    PoolStatus st;
    if (const std::optional<int> code =
            StatusOrExit(session, output, &st, progress ? ctx.out : nullptr)) {
      return *code;
    }
    const WaitVerdict verdict = CheckWait(*condition, st);
    if (verdict.kind == WaitVerdict::Kind::kReached) {
      if (progress) *ctx.out << "\r\x1b[K";
      output.Note(inv.condition + ": " + verdict.text);
      return output.Finish(kExitOk);
    }
    const std::optional<double> sleep = NextPoll(ctx, deadline);
    if (verdict.kind == WaitVerdict::Kind::kNever || !sleep) {
      if (progress) *ctx.out << "\n" << std::flush;
      if (verdict.kind == WaitVerdict::Kind::kNever) {
        output.Diagnose("not " + inv.condition + ", and it will not be: " + verdict.text);
        return output.Finish(kExitRefused);
      }
      output.Diagnose("not " + inv.condition + " within " + ShortSeconds(inv.wait_timeout) +
                      " (--wait-timeout): " + verdict.text);
      return output.Finish(kExitTimeout);
    }
    if (progress) *ctx.out << "\r\x1b[Kwaiting: " << verdict.text << std::flush;
    ctx.clock->Sleep(*sleep);
  }
}

// ack and ehlo: one exchange (`send` given the printer of each reply), every reply printed.
template <typename Send>
int PrintReplies(const Invocation& inv, Context& ctx, const Send& send) {
  Output output(ctx, inv.json);
  const Status s = send([&output](const Reply& r) { output.Add(r); });
  if (!s.ok()) return output.Unreachable(s);
  return output.Finish(output.error() ? kExitRefused : kExitOk);
}

std::vector<RequestSpec> Requests(int count, const char* verb) {
  return std::vector<RequestSpec>(static_cast<size_t>(count), RequestSpec{verb, {}});
}

// --wait-timeout, the one name of a wait's deadline in every command that waits (0 = no
// limit). With `hidden_timeout`, also --timeout, hidden: set's old spelling (and the one the
// issue asked `wait` to take); elsewhere --timeout after the command stays the global one, the
// limit for each reply.
CLI::Option* AddWaitTimeout(CLI::App& sub, double& seconds, int default_seconds,
                            bool hidden_timeout) {
  CLI::Option* option =
      sub.add_option("--wait-timeout", seconds,
                     "Seconds the wait may take in all (default " +
                         std::to_string(default_seconds) + ", 0 = no limit); then exit 4")
          ->check(SecondsValidator(true));
  if (hidden_timeout) {
    sub.add_option("--timeout", seconds, "Old spelling of --wait-timeout")
        ->check(SecondsValidator(true))
        ->group("");
  }
  return option;
}

// One einhornctl command: its name and help (einhornctl --help lists them in this order), its
// arguments, the requests it sends when that is a fixed list (PlanRequests), and `run` when it
// needs more than sending them. With neither, it sends its own name once, without args.
struct CommandDef {
  const char* name;
  const char* help;
  void (*arguments)(CLI::App& sub, Invocation& inv);
  std::vector<RequestSpec> (*plan)(const Invocation& inv);
  int (*run)(const Invocation& inv, Context& ctx, Session& session);
};

// The command table: a new command is one row here (and its function if it needs one).
const CommandDef kCommands[] = {
    {"status", "Show the pool: a summary and a table of workers", nullptr, nullptr,
     [](const Invocation& inv, Context& ctx, Session& session) {
       return StatusCommand(ctx, session, inv.json);
     }},
    {"inc", "Add N workers (default 1)",
     [](CLI::App& sub, Invocation& inv) {
       sub.add_option("N", inv.count, "How many")->check(CLI::PositiveNumber);
     },
     [](const Invocation& inv) { return Requests(inv.count, "inc"); }, nullptr},
    {"dec", "Remove N workers (default 1), draining them with USR2",
     [](CLI::App& sub, Invocation& inv) {
       sub.add_option("N", inv.count, "How many")->check(CLI::PositiveNumber);
     },
     [](const Invocation& inv) { return Requests(inv.count, "dec"); }, nullptr},
    {"set", "Set the number of workers to N",
     [](CLI::App& sub, Invocation& inv) {
       sub.add_option("N", inv.workers, "The new number of workers")->required();
       sub.add_flag("--wait", inv.wait,
                    "Wait until N workers are ready, none is booting, and every worker told to "
                    "drain has exited");
       AddWaitTimeout(sub, inv.wait_timeout, 60, /*hidden_timeout=*/true);
     },
     [](const Invocation& inv) {
       return std::vector<RequestSpec>{{"set_workers", {std::to_string(inv.workers)}}};
     },
     SetCommand},
    {"signal", "Send a signal to every worker",
     [](CLI::App& sub, Invocation& inv) {
       sub.add_option("SIG", inv.signal, "A signal name: TERM, SIGHUP, usr2...")->required();
     },
     [](const Invocation& inv) {
       return std::vector<RequestSpec>{{"signal", {inv.signal}}};
     },
     SignalCommand},
    {"quieter", "Log less (the master's verbosity + 1)", nullptr, nullptr, nullptr},
    {"louder", "Log more (the master's verbosity - 1)", nullptr, nullptr, nullptr},
    {"log-level", "Set the master's log level",
     [](CLI::App& sub, Invocation& inv) {
       sub.add_option("LEVEL", inv.level, "debug, info or error")
           ->required()
           ->check(CLI::IsMember(std::vector<std::string>(core::kLogLevelNames.begin(),
                                                          core::kLogLevelNames.end())));
     },
     nullptr, LogLevelCommand},
    {"die", "Stop the workers (USR2 or SIG) and then the master",
     [](CLI::App& sub, Invocation& inv) {
       sub.add_option("SIG", inv.signal, "The signal for the workers");
     },
     [](const Invocation& inv) {
       return std::vector<RequestSpec>{
           {"die", inv.signal.empty() ? std::vector<std::string>{} : std::vector{inv.signal}}};
     },
     nullptr},
    {"ack", "Acknowledge a worker as ready (-m manual): run by the worker",
     [](CLI::App& sub, Invocation& inv) {
       sub.add_option("PID", inv.pid, "The worker's pid (default: the parent process)")
           ->check(CLI::PositiveNumber);
     },
     nullptr,
     [](const Invocation& inv, Context& ctx, Session& session) {
       return PrintReplies(inv, ctx, [&](const auto& print) {
         return session.Ack(inv.pid > 0 ? inv.pid : ctx.parent_pid, print);
       });
     }},
    {"ehlo", "Say hello and show the master's welcome", nullptr, nullptr,
     [](const Invocation& inv, Context& ctx, Session& session) {
       return PrintReplies(inv, ctx,
                           [&](const auto& print) { return session.Ehlo(ctx.user, print); });
     }},
    {"help", "Show the master's list of commands", nullptr, nullptr, nullptr},
    {"state", "Show the master's internal state", nullptr, nullptr, nullptr},
    {"raw", "Send any command with arguments and print every reply",
     [](CLI::App& sub, Invocation& inv) {
       sub.add_option("VERB", inv.verb, "The command")->required();
       sub.add_option("ARGS", inv.args, "Its arguments");
     },
     [](const Invocation& inv) {
       return std::vector<RequestSpec>{{inv.verb, inv.args}};
     },
     nullptr},
    {"upgrade", "Replace the workers with a new generation, a few at a time",
     [](CLI::App& sub, Invocation& inv) {
       sub.add_flag("--fleet", inv.fleet, "Start all the new workers at once (upgrade_fleet)");
       CLI::Option* wait = sub.add_flag(
           "--wait", inv.wait,
           "Print the progress until the upgrade ends and the old workers have exited; exit 0 "
           "only if it succeeded");
       AddWaitTimeout(sub, inv.upgrade_wait_timeout, 3600, /*hidden_timeout=*/false)->needs(wait);
     },
     [](const Invocation& inv) { return Requests(1, inv.fleet ? "upgrade_fleet" : "upgrade"); },
     UpgradeCommand},
    {"recycle",
     "Replace a worker (PID) or every worker (--all) by a new one of the same generation: the "
     "replacement is ready before the old one drains, a few at a time",
     [](CLI::App& sub, Invocation& inv) {
       CLI::Option* pid =
           sub.add_option("PID", inv.pid, "The worker to recycle")->check(CLI::PositiveNumber);
       CLI::Option* all = sub.add_flag("--all", inv.all, "Every ready worker (a rolling restart)");
       pid->excludes(all);
       sub.add_flag("--wait", inv.wait,
                    "Wait until no recycle is pending and the pool is ready again (none "
                    "booting or draining)");
       AddWaitTimeout(sub, inv.wait_timeout, 60, /*hidden_timeout=*/false);
       sub.callback([&inv] {
         if (inv.pid <= 0 && !inv.all) throw CLI::ValidationError("recycle: give a PID or --all");
       });
     },
     [](const Invocation& inv) {
       return std::vector<RequestSpec>{
           {"recycle", {inv.all ? std::string("all") : std::to_string(inv.pid)}}};
     },
     RecycleCommand},
    {"reload", "Re-exec the master in place (workers kept) and wait for the outcome",
     [](CLI::App& sub, Invocation& inv) {
       CLI::Option* no_wait = sub.add_flag(
           "--no-wait", inv.no_wait, "Print the master's first reply only (as einhornsh), exit 0");
       AddWaitTimeout(sub, inv.wait_timeout, 60, /*hidden_timeout=*/false)->excludes(no_wait);
     },
     [](const Invocation&) {
       return std::vector<RequestSpec>{{"reload", {}}};
     },
     ReloadCommand},
    {"wait", "Wait until the pool is ready, drained or upgraded (as s6-svwait)",
     [](CLI::App& sub, Invocation& inv) {
       sub.add_option("CONDITION", inv.condition, "ready, drained or upgraded")
           ->required()
           ->check(CLI::IsMember(std::vector<std::string>{"ready", "drained", "upgraded"}));
       AddWaitTimeout(sub, inv.wait_timeout, 60, /*hidden_timeout=*/true);
     },
     nullptr, WaitCommand},
    {"events", "Show recent lifecycle events: spawns, exits, upgrades, ...",
     [](CLI::App& sub, Invocation& inv) {
       sub.add_option("--since", inv.since, "Only the events after this sequence number");
       sub.add_flag("-f,--follow", inv.follow, "Keep printing new events as they happen");
       sub.add_option("--interval", inv.follow_interval,
                      "Seconds between polls of --follow (default 0.5)")
           ->check(SecondsValidator(false));
     },
     nullptr, EventsCommand},
    {"metrics", "Print the master's metrics (Prometheus text format)", nullptr, nullptr,
     MetricsCommand},
    {"shell", "Read commands from stdin (an interactive shell on a terminal, like einhornsh)",
     nullptr, nullptr,
     [](const Invocation& inv, Context& ctx, Session&) { return Shell(inv, ctx); }},
};

const CommandDef* FindCommand(const std::string& name) {
  for (const CommandDef& c : kCommands) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

}  // namespace

bool IsCommand(const std::string& name) { return FindCommand(name) != nullptr; }

CLI::Validator SecondsValidator(bool zero_ok) {
  return CLI::Validator(
      [zero_ok](std::string& text) -> std::string {
        double v = 0;
        try {
          size_t used = 0;
          v = std::stod(text, &used);
          if (used != text.size()) return "not a number of seconds: " + text;
        } catch (const std::exception&) {
          return "not a number of seconds: " + text;
        }
        if (!std::isfinite(v) || v < 0 || (v == 0 && !zero_ok) || v > core::kMaxSettingSeconds) {
          return std::string("seconds must be ") + (zero_ok ? "from 0" : "above 0") +
                 " to 1000000, not " + text;
        }
        return std::string();
      },
      zero_ok ? "SECONDS (0 = no limit)" : "SECONDS");
}

void AddCommands(CLI::App& app, Invocation& inv) {
  for (const CommandDef& c : kCommands) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    sub->fallthrough();
    if (c.arguments != nullptr) c.arguments(*sub, inv);
  }
}

std::vector<RequestSpec> PlanRequests(const Invocation& inv) {
  const CommandDef* c = FindCommand(inv.command);
  if (c == nullptr) return {};
  if (c->plan != nullptr) return c->plan(inv);
  if (c->run == nullptr) return {{c->name, {}}};
  return {};
}

int Run(const Invocation& inv, Context& ctx) {
  Session session(ctx);
  if (inv.command.empty()) {
    if (!ctx.stdin_tty) {
      *ctx.err << "einhornctl: a COMMAND is required when standard input is not a terminal "
                  "(einhornctl shell reads commands from it)\n"
               << "Run 'einhornctl --help' for usage.\n";
      return kExitUsage;
    }
    return Shell(inv, ctx);
  }
  const CommandDef* c = FindCommand(inv.command);
  if (c != nullptr && c->run != nullptr) return c->run(inv, ctx, session);
  Output output(ctx, inv.json);
  return RunPlan(PlanRequests(inv), session, output);
}

}  // namespace einhorn::ctl
