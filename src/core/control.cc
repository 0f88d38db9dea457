#include "core/control.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <string_view>
#include <utility>

namespace einhorn::core {
namespace {

wire::Reply Ok(std::string message) { return wire::Reply{std::move(message), std::nullopt}; }

wire::Reply Err(std::string message) {
  wire::Reply r{std::move(message), std::nullopt};
  r.error = true;
  return r;
}

std::optional<wire::Reply> CheckArgs(const wire::Request& r) {
  switch (r.args_state) {
    case wire::Request::ArgsState::kAbsent:
      return Err("No args provided");
    case wire::Request::ArgsState::kNotList:
      return Err("Args must be an array");
    case wire::Request::ArgsState::kBadElement:
      return Err(r.bad_arg);
    case wire::Request::ArgsState::kList:
      return std::nullopt;
  }
  return Err("Args must be an array");
}

// Einhorn reports names as Ruby's inspect does.
std::string Quoted(const std::string& s) { return wire::RubyStringInspect(s); }

// Einhorn upcases a signal name and drops "SIG" before it looks it up, and reports it so.
std::string SignalArgText(const std::string& name) { return NormalizeSignalArg(name); }

// `events SEQ`: decimal digits only.
bool ParseSeq(const std::string& text, std::uint64_t* out) {
  if (text.empty() || text.size() > 19) return false;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

bool ParseCount(const std::string& text, int* out) {
  if (text.empty() || text.size() > 6) return false;
  int v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

// An event's detail stays one short line however long a refusal's text is.
constexpr size_t kMaxEventDetail = 200;

std::string PeerName(const Peer& peer) {
  return "uid " + std::to_string(peer.uid) + " pid " + std::to_string(peer.pid);
}

// Every verb the socket knows, the key of the verb table (Control::Verbs).
enum class ControlVerb {
  kConfig,
  kDec,
  kDie,
  kEhlo,
  kEvents,
  kHelp,
  kInc,
  kLouder,
  kMetrics,
  kQuieter,
  kRecycle,
  kReload,
  kSetWorkers,
  kSignal,
  kState,
  kStatus,
  kUpgrade,
  kUpgradeFleet,
  kWorkerAck,
  kWorkerPing,
  kWorkerRecycle,
};

wire::Reply ConfigCommand(const wire::Request& r) {
  if (auto bad = CheckArgs(r)) return *bad;
  return Err("config is not supported by einhorn-cpp: Einhorn merges it into its internal "
             "state, which has no equivalent here; use set_workers");
}

}  // namespace

// One request being handled: what its verb's handler needs.
struct Control::Call {
  ControlVerb verb;
  const wire::Request& r;
  const Peer& peer;
  const std::string& by;  // "uid 1000 pid 42", for the audit line
  Time now;
  ControlOutcome& out;

  void Reply(wire::Reply rep) const {
    rep.request_id = r.id;
    out.replies.push_back(std::move(rep));
  }
};

// A row of the verb table. `help` nullptr: not in the help listing (as Einhorn: ehlo and the
// worker: verbs).
struct Control::VerbRow {
  ControlVerb verb;
  const char* name;
  const char* help;
  void (*handler)(Control& self, const Call& call);
};

// The verb table: a new verb is one row here and its handler. Sorted by name, as the help
// listing and the metrics' command labels are.
std::span<const Control::VerbRow> Control::Verbs() {
  using V = ControlVerb;
  static constexpr VerbRow kRows[] = {
      {V::kConfig, "config",
       "Merge in a new config (not supported by einhorn-cpp; use set_workers)",
       [](Control&, const Call& c) { c.Reply(ConfigCommand(c.r)); }},
      {V::kDec, "dec", "Decrement the number of desired workers",
       [](Control& self, const Call& c) { c.Reply(self.Decrement(c.by, c.now)); }},
      {V::kDie, "die",
       "Send SIG (default: the drain signal, SIGUSR2) to all workers and exit when they are "
       "gone",
       [](Control& self, const Call& c) { c.Reply(self.DieCommand(c.r, c.by, c.now)); }},
      {V::kEhlo, "ehlo", nullptr,
       [](Control& self, const Call& c) { c.Reply(self.Ehlo(c.r)); }},
      {V::kEvents, "events",
       "Recent lifecycle events (spawns, exits, upgrades, resizes, commands) as YAML; args: "
       "[SEQ] for those after sequence number SEQ",
       [](Control& self, const Call& c) { c.Reply(self.Events(c.r)); }},
      {V::kHelp, "help", "Print out available commands",
       [](Control&, const Call& c) { c.Reply(Ok(HelpText())); }},
      {V::kInc, "inc", "Increment the number of desired workers",
       [](Control& self, const Call& c) { c.Reply(self.Increment(c.by, c.now)); }},
      {V::kLouder, "louder", "Increase verbosity",
       [](Control& self, const Call& c) { c.Reply(self.Verbosity(-1, c.by, c.now)); }},
      {V::kMetrics, "metrics", "Counters and gauges in the Prometheus text format",
       [](Control& self, const Call& c) {
         c.Reply(self.host_.telemetry.Kept() != nullptr ? Ok(self.MetricsText())
                                                        : Err("this master keeps no metrics"));
       }},
      {V::kQuieter, "quieter", "Decrease verbosity",
       [](Control& self, const Call& c) { c.Reply(self.Verbosity(+1, c.by, c.now)); }},
      {V::kRecycle, "recycle",
       "Replace a worker (args: PID) or every worker (args: all) with a new one of the same "
       "generation, the replacement ready before the old one drains, a few at a time",
       [](Control& self, const Call& c) { c.Reply(self.RecycleCommand(c.r, c.by, c.now)); }},
      {V::kReload, "reload",
       "Re-exec the einhorn-cpp master in place, keeping its workers, sockets and pid",
       [](Control& self, const Call& c) { self.ReloadCommand(c); }},
      {V::kSetWorkers, "set_workers", "Set the number of desired workers",
       [](Control& self, const Call& c) { c.Reply(self.SetWorkers(c.r, c.by, c.now)); }},
      {V::kSignal, "signal", "Send one or more signals to all workers (args: SIG1 [SIG2 ...])",
       [](Control& self, const Call& c) { c.Reply(self.SendSignal(c.r, c.by, c.now)); }},
      {V::kState, "state",
       "Get a dump of Einhorn's current state (Ruby YAML, as Einhorn; status is einhorn-cpp's "
       "own)",
       [](Control& self, const Call& c) { c.Reply(Ok(self.EinhornState())); }},
      {V::kStatus, "status",
       "The pool as YAML: target, counts, and every worker's slot, pid, state, readiness, "
       "uptime, restarts and last exit",
       [](Control& self, const Call& c) { c.Reply(Ok(PoolStatusToYaml(self.Status(c.now)))); }},
      {V::kUpgrade, "upgrade",
       "Replace every worker with a new generation, a few at a time; rolled back if the new "
       "workers do not become ready",
       [](Control& self, const Call& c) { self.UpgradeCommand(c); }},
      {V::kUpgradeFleet, "upgrade_fleet",
       "Start the whole new generation, then drain the old one; rolled back if the new "
       "workers do not become ready",
       [](Control& self, const Call& c) { self.UpgradeCommand(c); }},
      {V::kWorkerAck, "worker:ack", nullptr,
       [](Control& self, const Call& c) {
         self.WorkerAck(c.r, c.peer, c.now);
         c.out.close = true;
       }},
      {V::kWorkerPing, "worker:ping", nullptr,
       [](Control& self, const Call& c) {
         self.WorkerPing(c.r, c.peer, c.now);
         c.out.close = true;
       }},
      // As worker:ack: from the worker itself (or a descendant, or on its -g channel), no reply.
      {V::kWorkerRecycle, "worker:recycle", nullptr,
       [](Control& self, const Call& c) {
         self.WorkerRecycle(c.r, c.peer, c.now);
         c.out.close = true;
       }},
  };
  return kRows;
}

Control::Control(Supervisor& supervisor, ControlHost host, MasterInfo info)
    : supervisor_(supervisor), host_(host), info_(std::move(info)) {}

std::vector<std::string> Control::VerbNames() {
  std::vector<std::string> names;
  for (const VerbRow& row : Verbs()) names.emplace_back(row.name);
  return names;
}

const std::vector<std::string>& KnownCommands() {
  static const std::vector<std::string> kCommands = [] {
    std::vector<std::string> names = Control::VerbNames();
    names.insert(names.end(), {"unknown", "invalid"});
    return names;
  }();
  return kCommands;
}

// Sorted by name, as Einhorn lists them; ehlo and the worker: verbs are not listed.
std::string Control::CommandList() {
  std::vector<const VerbRow*> listed;
  for (const VerbRow& row : Verbs()) {
    if (row.help != nullptr) listed.push_back(&row);
  }
  std::sort(listed.begin(), listed.end(), [](const VerbRow* a, const VerbRow* b) {
    return std::string_view(a->name) < std::string_view(b->name);
  });
  std::string text;
  for (const VerbRow* row : listed) text += std::string(row->name) + ": " + row->help + "\n";
  return text;
}

std::string Control::HelpText() {
  return "You are speaking to the Einhorn command socket. You can run the following "
         "commands:\n\n" +
         CommandList();
}

ControlOutcome Control::Handle(const wire::ParseResult& parsed, const Peer& peer, Time now) {
  ControlOutcome out;
  const wire::Request& r = parsed.request;
  const std::string by = PeerName(peer);
  auto reply = [&](wire::Reply rep) {
    rep.request_id = r.id;
    out.replies.push_back(std::move(rep));
  };

  host_.telemetry.CountCommand(
      parsed.kind == wire::ParseResult::Kind::kOk && r.has_command ? r.command : "invalid");
  if (parsed.kind == wire::ParseResult::Kind::kNotParsed) {
    host_.log.Log(LogLevel::kDebug,
                  "control: unparsable request from " + by + ": " + parsed.detail);
    out.replies.push_back(Err("Could not parse command"));
    return out;
  }
  if (parsed.kind == wire::ParseResult::Kind::kNoCommand || !r.has_command) {
    reply(Err("No \"command\" parameter provided; not sure what you want me to do."));
    return out;
  }

  const auto rows = Verbs();
  const auto row = std::find_if(rows.begin(), rows.end(), [&r](const VerbRow& v) {
    return v.name == r.command;
  });
  if (row == rows.end()) {
    // As Einhorn: the verb list straight after the name, without help's first paragraph.
    reply(Err("Unrecognized command: " + Quoted(r.command) + "\n\n" + CommandList()));
    return out;
  }
  row->handler(*this, Call{row->verb, r, peer, by, now, out});
  return out;
}

wire::Reply Control::Ehlo(const wire::Request& r) const {
  return Ok("Welcome, " + r.user + "! You are speaking to Einhorn Master Process " +
            std::to_string(info_.pid) +
            (info_.command_name.empty() ? "" : " (" + info_.command_name + ")") +
            ".\nThis is einhorn-cpp " + info_.version + ".\n");
}

// upgrade and upgrade_fleet. As Einhorn, an upgrade re-execs the master first: a new
// einhorn-cpp binary takes over before the new workers start.
void Control::UpgradeCommand(const Call& c) {
  const bool smooth = c.verb == ControlVerb::kUpgrade;
  const UpgradeStart start =
      host_.reload.Reload(smooth ? UpgradeStrategy::kSmooth : UpgradeStrategy::kFleet, c.now);
  wire::Reply rep = start.started ? Ok(start.message) : Err(start.message);
  AuditCommand(c.by, smooth ? "upgrade" : "upgrade_fleet", rep, c.now);
  // As Einhorn: only a client that sent an id is streamed the rest; old-style clients
  // (go-einhorn's `request_id` key among them) get this reply alone.
  if (start.started && c.r.id) {
    rep.wait = true;
    c.out.subscribe_upgrade = c.r.id;
  }
  c.Reply(rep);
}

// Final, and sent before the re-exec, as Einhorn; how it went is in the log and status.
void Control::ReloadCommand(const Call& c) {
  const UpgradeStart start = host_.reload.Reload(std::nullopt, c.now);
  wire::Reply rep = start.started ? Ok(start.message) : Err(start.message);
  AuditCommand(c.by, "reload", rep, c.now);
  c.Reply(rep);
}

void Control::AuditCommand(const std::string& by, const std::string& verb, const wire::Reply& reply,
                           Time now) {
  Event e = EventAt(EventKind::kControl, now);
  e.by = by;
  e.detail = verb;
  if (reply.error) e.detail += " refused: " + reply.message.substr(0, kMaxEventDetail);
  host_.log.LogEventAlways(reply.error ? LogLevel::kWarn : LogLevel::kInfo,
                           "control: " + verb + " from " + by + ": " + reply.message, e);
}

void Control::Resized(int from, int to, const std::string& by, Time now) {
  Event e = EventAt(EventKind::kResize, now);
  e.from = from;
  e.to = to;
  e.by = by;
  host_.telemetry.RecordEvent(e);
}

void Control::Refused(const Peer& peer, const std::string& reason, Time now) {
  Event e = EventAt(EventKind::kControlRefused, now);
  e.by = PeerName(peer);
  e.detail = reason;
  host_.telemetry.RecordEvent(e);
}

wire::Reply Control::Increment(const std::string& by, Time now) {
  const int from = supervisor_.target();
  wire::Reply rep;
  if (supervisor_.Stopping()) {
    rep = Err("Can't increase the number of workers: einhorn-cpp is shutting down");
  } else if (from >= kMaxWorkers) {
    rep = Err("Can't increase the number of workers (already at the maximum of " +
              std::to_string(kMaxWorkers) + ")");
  } else {
    rep = Ok("Incrementing number of workers from " + std::to_string(from) + " -> " +
             std::to_string(from + 1));
    supervisor_.SetTarget(from + 1, now);
    Resized(from, from + 1, by, now);
  }
  AuditCommand(by, "inc", rep, now);
  return rep;
}

wire::Reply Control::Decrement(const std::string& by, Time now) {
  const int from = supervisor_.target();
  wire::Reply rep;
  if (supervisor_.Stopping()) {
    rep = Err("Can't decrease the number of workers: einhorn-cpp is shutting down");
  } else if (from <= 1) {
    rep = Err("Can't decrease number of workers (already at 1).  Run kill " +
              std::to_string(info_.pid) + " if you really want to kill einhorn.");
  } else {
    rep = Ok("Decrementing number of workers from " + std::to_string(from) + " -> " +
             std::to_string(from - 1));
    supervisor_.SetTarget(from - 1, now);
    Resized(from, from - 1, by, now);
  }
  AuditCommand(by, "dec", rep, now);
  return rep;
}

wire::Reply Control::SetWorkers(const wire::Request& r, const std::string& by, Time now) {
  wire::Reply rep;
  int n = 0;
  const int from = supervisor_.target();
  if (auto bad = CheckArgs(r)) {
    rep = *bad;
  } else if (r.args.empty() || !ParseCount(r.args[0], &n) || n < 1 || n > kMaxWorkers) {
    rep = Err("Invalid count: '" + (r.args.empty() ? std::string() : r.args[0]) +
              "'. Must be an integer in [1," + std::to_string(kMaxWorkers) + "].");
  } else if (supervisor_.Stopping()) {
    rep = Err("Can't change the number of workers: einhorn-cpp is shutting down");
  } else if (n == from) {
    rep = Ok("");  // as Einhorn
  } else {
    rep = Ok("Altering worker count, " + std::to_string(from) + " -> " + std::to_string(n) +
             (n > from ? ". Will spin up additional workers."
                       : ". Will gracefully terminate workers."));
    supervisor_.SetTarget(n, now);
    Resized(from, n, by, now);
  }
  AuditCommand(by, "set_workers", rep, now);
  return rep;
}

wire::Reply Control::Verbosity(int delta, const std::string& by, Time now) {
  const int level = std::clamp(host_.log.Verbosity() + delta, 0, 2);
  host_.log.SetVerbosity(level);
  wire::Reply rep = Ok("Verbosity set to " + std::to_string(level));
  AuditCommand(by, delta > 0 ? "quieter" : "louder", rep, now);
  return rep;
}

wire::Reply Control::SendSignal(const wire::Request& r, const std::string& by, Time now) {
  wire::Reply rep;
  std::vector<Signal> signals;
  if (auto bad = CheckArgs(r)) {
    rep = *bad;
  } else {
    for (const std::string& name : r.args) {
      Signal s{};
      if (!ParseSignalName(name, &s)) {
        rep = Err("Invalid signal: " + Quoted(SignalArgText(name)));
        signals.clear();
        break;
      }
      signals.push_back(s);
    }
  }
  std::string sent;
  for (Signal s : signals) {
    const int n = supervisor_.SignalAll(s);
    sent += std::string(sent.empty() ? "" : ", ") + SignalName(s) + " to " + std::to_string(n) +
            " workers";
  }
  // Einhorn's reply to a valid `signal` is always empty; the log says what happened.
  if (!rep.error) rep = Ok(std::string(signals.size() > 1 ? signals.size() - 1 : 0, '\n'));
  AuditCommand(by, "signal", rep.error ? rep : Ok("sent " + (sent.empty() ? "nothing" : sent)),
               now);
  return rep;
}

wire::Reply Control::DieCommand(const wire::Request& r, const std::string& by, Time now) {
  wire::Reply rep;
  Signal sig = supervisor_.config().drain_signal;
  if (auto bad = CheckArgs(r)) {
    rep = *bad;
  } else if (!r.args.empty() && !ParseSignalName(r.args[0], &sig)) {
    rep = Err("Invalid signal: " + Quoted(SignalArgText(r.args[0])));
  } else {
    rep = Ok("Einhorn is going down! ");  // the trailing space is Einhorn's
    supervisor_.Die(sig, now);
  }
  AuditCommand(by, "die", rep, now);
  return rep;
}

std::optional<Pid> Control::WorkerItself(const wire::Request& r, const Peer& peer,
                                         const std::string& verb, const char* what, Time now) {
  const std::string from = peer.bound_worker
                               ? "the -g channel of worker " + std::to_string(*peer.bound_worker)
                               : "pid " + std::to_string(peer.pid);
  // On a -g channel the pid may be left out; one that is given must still be an integer.
  if (!r.pid && (!peer.bound_worker || r.pid_present)) {
    RefuseAck("control: refused " + verb + " from " + from + ": no integer pid in the request",
              now);
    return std::nullopt;
  }
  const Pid pid = r.pid ? static_cast<Pid>(*r.pid) : *peer.bound_worker;
  if (r.pid && (*r.pid <= 0 || *r.pid > 0x7fffffff)) {
    RefuseAck("control: refused " + verb + " from " + from + ": bad pid", now);
    return std::nullopt;
  }
  const bool allowed =
      peer.bound_worker ? *peer.bound_worker == pid
                        : std::find(peer.lineage.begin(), peer.lineage.end(), pid) !=
                              peer.lineage.end();
  if (!allowed) {
    RefuseAck("control: refused " + verb + " for " + std::to_string(pid) + " from " + from +
                  ": only the worker itself or its descendants may " + what + " it",
              now);
    return std::nullopt;
  }
  return pid;
}

void Control::WorkerRecycle(const wire::Request& r, const Peer& peer, Time now) {
  const std::optional<Pid> pid = WorkerItself(r, peer, "worker:recycle", "recycle", now);
  if (!pid) return;
  const RecycleResult result = supervisor_.Recycle(*pid, RecycleCause::kWorker, now);
  // Started and queued are logged by the supervisor; the rest only here. An unknown pid is
  // refused as an unknown ack is (a stranger cannot get this far: it is not in the lineage).
  if (result == RecycleResult::kUnknownPid) {
    RefuseAck("control: could not find a worker with pid " + std::to_string(*pid) +
                  "; ignoring its worker:recycle",
              now);
  } else if (result != RecycleResult::kStarted && result != RecycleResult::kQueued) {
    LogLimited(idle_recycles_, LogLevel::kInfo,
               "control: worker:recycle: " + RecycleResultText(result, *pid), "worker:recycle",
               now);
  }
}

wire::Reply Control::RecycleCommand(const wire::Request& r, const std::string& by, Time now) {
  wire::Reply rep;
  int pid = 0;
  if (auto bad = CheckArgs(r)) {
    rep = *bad;
  } else if (r.args.size() != 1 ||
             (r.args[0] != "all" && (!ParseCount(r.args[0], &pid) || pid < 1))) {
    rep = Err("Usage: recycle PID | recycle all (got " +
              (r.args.empty() ? std::string("no argument")
                              : Quoted(r.args[0].substr(0, 64)) +
                                    (r.args.size() > 1 ? " and more" : "")) +
              ")");
  } else if (supervisor_.Stopping()) {
    rep = Err(RecycleResultText(RecycleResult::kStopping, 0));
  } else if (r.args[0] == "all") {
    const int n = supervisor_.RecycleAll(RecycleCause::kOperator, now);
    const int extra = supervisor_.RecycleAdditional();
    rep = Ok(n == 0 ? std::string("No ready worker to recycle (those pending already stay)")
                    : "Recycling " + std::to_string(n) + " worker" + (n == 1 ? "" : "s") +
                          ", at most " + std::to_string(extra) + " extra at once");
  } else {
    const RecycleResult result = supervisor_.Recycle(pid, RecycleCause::kOperator, now);
    const std::string text = RecycleResultText(result, pid);
    const bool ok = result == RecycleResult::kStarted || result == RecycleResult::kQueued ||
                    result == RecycleResult::kAlreadyPending;
    rep = ok ? Ok(text) : Err(text);
  }
  AuditCommand(by, "recycle", rep, now);
  return rep;
}

void Control::WorkerAck(const wire::Request& r, const Peer& peer, Time now) {
  const std::optional<Pid> self = WorkerItself(r, peer, "worker:ack", "ack", now);
  if (!self) return;
  const Pid pid = *self;
  switch (supervisor_.Ack(pid, now)) {
    case AckResult::kAcked:
      return;  // the supervisor logs the readiness
    case AckResult::kUnknownPid:
      RefuseAck("control: could not find a worker with pid " + std::to_string(pid) +
                    "; ignoring its ack",
                now);
      return;
    case AckResult::kAlreadyAcked:
      host_.log.Log(LogLevel::kInfo,
                    "control: worker " + std::to_string(pid) + " already acked; ignoring new ack");
      return;
    case AckResult::kNotManual:
      host_.log.Log(LogLevel::kInfo, "control: received a manual ack for " + std::to_string(pid) +
                                         ", but the ack mode is " + info_.ack_mode +
                                         "; ignoring it");
      return;
    case AckResult::kDraining:
      host_.log.Log(LogLevel::kInfo, "control: worker " + std::to_string(pid) +
                                         " acked while draining; ignoring it");
      return;
  }
}

void Control::RefuseAck(const std::string& line, Time now) {
  LogLimited(refused_acks_, LogLevel::kWarn, line, "worker:ack", now);
}

void Control::LogLimited(LogLimiter& limiter, LogLevel level, const std::string& line,
                         const std::string& what, Time now) {
  const LogLimiter::Verdict v = limiter.Note(now);
  if (v.ended && v.ended->unlogged > 0) {
    host_.log.Log(level, "control: refused " + std::to_string(v.ended->count) + " " + what +
                             " requests in all in the run before, " +
                             std::to_string(v.ended->unlogged) + " of them not logged");
  }
  if (!v.log) return;
  host_.log.Log(level,
                v.count == 1 ? line
                             : line + " (" + std::to_string(v.count) +
                                   " refused in this run; the next run says how many in all)");
}

void Control::WorkerPing(const wire::Request& r, const Peer& peer, Time now) {
  // 0 for none: a plain value, as gcc 12's -Wmaybe-uninitialized misreads an optional here.
  Pid pid = peer.bound_worker.value_or(0);
  if (r.pid) pid = *r.pid > 0 && *r.pid <= 0x7fffffff ? static_cast<Pid>(*r.pid) : 0;
  // Kept per worker until its next ping, carried across reloads and shown by state: an
  // identifier, not a payload.
  if (r.ping_request_id && r.ping_request_id->text.size() > kMaxPingRequestId) {
    host_.log.Log(LogLevel::kDebug, "control: worker:ping refused: its request_id is longer than " +
                                        std::to_string(kMaxPingRequestId) + " bytes");
    return;
  }
  if (pid <= 0 || !supervisor_.Ping(pid, now, r.ping_request_id, host_.facts.WallClockNs())) {
    host_.log.Log(LogLevel::kDebug, "control: worker:ping for an unknown pid");
  }
}

wire::Reply Control::Events(const wire::Request& r) const {
  const Telemetry* telemetry = host_.telemetry.Kept();
  if (telemetry == nullptr) return Err("this master keeps no events");
  std::uint64_t since = 0;
  if (r.args_state != wire::Request::ArgsState::kAbsent) {
    if (auto bad = CheckArgs(r)) return *bad;
    if (!r.args.empty() && !ParseSeq(r.args[0], &since)) {
      return Err("Invalid sequence number: " + Quoted(r.args[0]) +
                 ". Must be an integer >= 0 (events after it are sent).");
    }
  }
  const EventRing& ring = telemetry->ring();
  return Ok(EventsReplyToYaml(EventsReply{ring.first_seq(), ring.last_seq(), ring.Since(since)}));
}

std::string Control::MetricsText() const {
  MetricsInput in;
  if (const Telemetry* telemetry = host_.telemetry.Kept()) in.counters = &telemetry->counters();
  in.target = supervisor_.target();
  in.generation = supervisor_.generation();
  in.upgrading = supervisor_.upgrade().has_value();
  for (const Slot& slot : supervisor_.slots()) {
    in.pending_respawns += !slot.pid && slot.respawn_at ? 1 : 0;
  }
  for (size_t i = 0; i < kRecycleCauses; ++i) {
    in.recycles.emplace_back(RecycleCauseName(static_cast<RecycleCause>(i)),
                             static_cast<std::uint64_t>(supervisor_.recycles()[i]));
  }
  // The current generation's series exist even at 0, so that a pool with no ready worker
  // shows as einhorn_workers{state="ready"} 0, not as a missing series.
  for (WorkerState s : {WorkerState::kBooting, WorkerState::kReady, WorkerState::kDraining}) {
    in.workers[{WorkerStateName(s), supervisor_.generation()}] = 0;
  }
  for (const auto& [pid, w] : supervisor_.workers()) {
    ++in.workers[{WorkerStateName(w.state), w.generation}];
    if (w.slot < 0) continue;  // detached (recycled, shrunk): its slot has a new worker
    if (const MemoryWatch::Seen* m = host_.facts.WorkerMemory(pid)) {
      in.worker_memory[w.slot] = m->bytes;
    }
  }
  in.listeners = host_.facts.Listeners();
  host_.facts.AddProcessFacts(&in);
  return RenderMetrics(in);
}

std::string Control::EinhornState() const {
  EinhornStateFacts facts = host_.facts.EinhornFacts();
  facts.master_pid = info_.pid;
  facts.verbosity = host_.log.Verbosity();
  facts.reloads = host_.reload.Reloads();
  return EinhornStateYaml(supervisor_, facts);
}

namespace {

WorkerStatus WorkerStatusOf(Pid pid, const Worker& w, const std::vector<Slot>& slots, Time now) {
  WorkerStatus ws;
  ws.slot = w.slot;
  ws.index = w.index;
  ws.pid = pid;
  ws.generation = w.generation;
  ws.state = WorkerStateName(w.state);
  if (w.ready_at) ws.time_to_ready = ToSeconds(*w.ready_at - w.spawned_at);
  ws.uptime = ToSeconds(now - w.spawned_at);
  if (!w.notify_status.empty()) ws.notify_status = w.notify_status;
  if (w.pinged_at) {
    ws.pinged_ago = ToSeconds(now - *w.pinged_at);
    if (w.pinged_request_id) ws.pinged_request_id = w.pinged_request_id->text;
  }
  if (w.state == WorkerState::kDraining && w.draining_since) {
    ws.draining_for = ToSeconds(now - *w.draining_since);
  }
  if (w.recycle) {
    ws.recycle = RecycleCauseName(*w.recycle);
    ws.recycle_state = w.state == WorkerState::kDraining ? "draining"
                       : w.slot >= 0                     ? "queued"
                                                         : "replacing";
  }
  if (w.recycle_due && !w.recycle && w.state != WorkerState::kDraining) {
    ws.recycle_in = ToSeconds(*w.recycle_due - now);
  }
  if (w.slot >= 0 && static_cast<size_t>(w.slot) < slots.size()) {
    const Slot& slot = slots[static_cast<size_t>(w.slot)];
    ws.restarts = slot.restarts;
    if (slot.last_exit) ws.last_exit = slot.last_exit->ToString();
  }
  return ws;
}

// The slots waiting out a respawn delay.
std::vector<PendingSlot> PendingSlots(const std::vector<Slot>& slots, Time now) {
  std::vector<PendingSlot> pending;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].pid || !slots[i].respawn_at) continue;
    PendingSlot p;
    p.slot = static_cast<int>(i);
    p.respawn_in = std::max(0.0, ToSeconds(*slots[i].respawn_at - now));
    p.consecutive_failures = slots[i].consecutive_failures;
    p.restarts = slots[i].restarts;
    if (slots[i].last_exit) p.last_exit = slots[i].last_exit->ToString();
    pending.push_back(p);
  }
  return pending;
}

UpgradeStatus UpgradeStatusOf(const UpgradeProgress& u, const std::map<Pid, Worker>& workers,
                              Time now) {
  UpgradeStatus us;
  us.strategy = UpgradeStrategyName(u.strategy);
  us.from_generation = u.from_generation;
  us.to_generation = u.to_generation;
  us.elapsed = ToSeconds(now - u.started_at);
  us.failures = u.failures;
  for (const auto& [pid, w] : workers) {
    if (w.generation == u.to_generation) {
      us.new_ready += w.state == WorkerState::kReady ? 1 : 0;
    } else {
      ++us.old_remaining;
    }
  }
  return us;
}

// Pool slots first, in order; workers drained out of the pool (slot -1) last. The keys are
// sorted, then each entry moved once: a stable_sort of the entries themselves moved each
// several times (~7 % of a status of 1000 workers).
void SortBySlot(std::vector<WorkerStatus>* workers) {
  std::vector<std::pair<long long, size_t>> order;
  order.reserve(workers->size());
  for (size_t i = 0; i < workers->size(); ++i) {
    const int slot = (*workers)[i].slot;
    order.emplace_back(slot < 0 ? static_cast<long long>(kMaxWorkers) + 1 : slot, i);
  }
  std::sort(order.begin(), order.end());  // (key, index): ties keep their order
  std::vector<WorkerStatus> sorted;
  sorted.reserve(workers->size());
  for (const auto& [key, i] : order) sorted.push_back(std::move((*workers)[i]));
  *workers = std::move(sorted);
}

}  // namespace

PoolStatus Control::Status(Time now) const {
  PoolStatus st;
  st.master_pid = info_.pid;
  st.version = info_.version;
  st.command_name = info_.command_name;
  st.target = supervisor_.target();
  st.generation = supervisor_.generation();
  st.ack_mode = info_.ack_mode;
  st.verbosity = host_.log.Verbosity();
  st.stopping = supervisor_.Stopping();
  st.reloads = host_.reload.Reloads();
  st.last_reload_error = host_.reload.LastReloadError();
  st.reload_failures = host_.reload.ReloadFailures();
  st.reloading = host_.reload.Reloading();
  st.watchdog_timeouts = supervisor_.watchdog_timeouts();
  for (const ListenerStats& l : host_.facts.Listeners()) {
    st.listeners.push_back(ListenerStatus{l.name, l.accept_queue, l.backlog});
  }
  const auto& slots = supervisor_.slots();
  st.workers.reserve(supervisor_.workers().size());
  for (const auto& [pid, w] : supervisor_.workers()) {
    WorkerStatus ws = WorkerStatusOf(pid, w, slots, now);
    if (const MemoryWatch::Seen* m = host_.facts.WorkerMemory(pid)) {
      ws.memory_bytes = static_cast<long long>(m->bytes);
      ws.memory_sampled_ago = ToSeconds(now - m->at);
    }
    switch (w.state) {
      case WorkerState::kBooting:
        ++st.booting;
        break;
      case WorkerState::kReady:
        ++st.ready;
        break;
      case WorkerState::kDraining:
        ++st.draining;
        break;
    }
    st.workers.push_back(std::move(ws));
  }
  SortBySlot(&st.workers);
  st.pending = PendingSlots(slots, now);
  st.zygotes = host_.facts.Zygotes(now);
  if (const auto& u = supervisor_.upgrade()) {
    st.upgrade = UpgradeStatusOf(*u, supervisor_.workers(), now);
  }
  if (const auto& last = supervisor_.last_upgrade()) {
    st.last_upgrade = LastUpgradeStatus{last->ok, last->generation, last->reason,
                                        ToSeconds(now - last->finished_at)};
  }
  return st;
}

}  // namespace einhorn::core
