#include "core/einhorn_state.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <utility>

#include "core/json_text.h"
#include "core/wire.h"

namespace einhorn::core {
namespace {

// A Ruby value as Psych writes it in block style. Scalars are kept as their YAML text.
struct Val {
  enum class Kind { kNil, kScalar, kMap, kSeq, kSet };
  // Declared here, defined below where Val is complete: clang (unlike g++) instantiates the
  // members of vector<pair<string, Val>> inside the class, where Val is still incomplete.
  Val();
  ~Val();
  Val(const Val&);
  Val(Val&&) noexcept;
  Val& operator=(const Val&);
  Val& operator=(Val&&) noexcept;
  Kind kind = Kind::kNil;
  std::string text;                               // kScalar
  std::vector<std::pair<std::string, Val>> map;   // kMap: key text, value
  std::vector<Val> seq;                           // kSeq
  std::vector<std::string> set;                   // kSet: its members (plain strings)
};

Val::Val() = default;
Val::~Val() = default;
Val::Val(const Val&) = default;
Val::Val(Val&&) noexcept = default;
Val& Val::operator=(const Val&) = default;
Val& Val::operator=(Val&&) noexcept = default;

Val Nil() { return Val{}; }
Val Scalar(std::string text) {
  Val v;
  v.kind = Val::Kind::kScalar;
  v.text = std::move(text);
  return v;
}
Val Map() {
  Val v;
  v.kind = Val::Kind::kMap;
  return v;
}
Val Seq() {
  Val v;
  v.kind = Val::Kind::kSeq;
  return v;
}
Val Sym(const std::string& name) { return Scalar(":" + name); }
Val Int(long long n) { return Scalar(std::to_string(n)); }
Val Bool(bool b) { return Scalar(b ? "true" : "false"); }
// Strings are always double-quoted (JSON escapes are YAML's): Psych reads them back as strings
// whatever they hold ("1000", "true", "-x").
Val Str(const std::string& s) { return Scalar(JsonString(s)); }
Val OptStr(const std::string& s) { return s.empty() ? Nil() : Str(s); }
// A number Einhorn keeps as an Integer when it is one (its defaults: `:seconds: 1`), else a
// Float, which Psych reads only with a '.' in it.
Val Number(double d) {
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) {
    return Int(static_cast<long long>(d));
  }
  std::string text;
  AppendJsonNumber(text, d);
  if (text.find_first_of(".en") == std::string::npos) text += ".0";
  const size_t e = text.find('e');
  if (e != std::string::npos && text.find('.') == std::string::npos) text.insert(e, ".0");
  return Scalar(text);
}
Val RTime(std::optional<std::int64_t> wall_ns) {
  return wall_ns ? Scalar(RubyTime(*wall_ns)) : Nil();
}
Val Strings(const std::vector<std::string>& items) {
  Val v = Seq();
  for (const std::string& s : items) v.seq.push_back(Str(s));
  return v;
}
void Put(Val* map, const std::string& symbol, Val value) {
  map->map.emplace_back(":" + symbol, std::move(value));
}

// ----------------------------------------------------------------------------------------
// Psych's block layout: a mapping's entries one per line; a sequence under a key at the key's
// own indent; a sequence inside a sequence starting on its parent's "- " line.

void EmitMap(const Val& map, int indent, std::string* out);

// The value after "key:" or "- " when it fits on that line ("" for nil).
bool Inline(const Val& v, std::string* text) {
  switch (v.kind) {
    case Val::Kind::kNil:
      *text = "";
      return true;
    case Val::Kind::kScalar:
      *text = v.text;
      return true;
    case Val::Kind::kMap:
      *text = "{}";
      return v.map.empty();
    case Val::Kind::kSeq:
      *text = "[]";
      return v.seq.empty();
    case Val::Kind::kSet:
      return false;
  }
  return false;
}

void Line(std::string* out, const std::string& head, const std::string& value) {
  *out += head;
  if (!value.empty()) *out += " " + value;
  *out += '\n';
}

// `lead` starts the first item's line (the indent, or the parent's "- ").
void EmitSeq(const Val& seq, int indent, const std::string& lead, std::string* out) {
  const std::string pad(static_cast<size_t>(indent), ' ');
  for (size_t i = 0; i < seq.seq.size(); ++i) {
    const Val& item = seq.seq[i];
    const std::string head = (i == 0 ? lead : pad) + "-";
    std::string text;
    if (Inline(item, &text)) {
      Line(out, head, text);
    } else if (item.kind == Val::Kind::kSeq) {
      EmitSeq(item, indent + 2, head + " ", out);
    } else {
      // Not produced by this document (no mappings or sets inside sequences).
      Line(out, head, "");
    }
  }
}

void EmitValue(const std::string& head, const Val& v, int indent, std::string* out) {
  std::string text;
  if (Inline(v, &text)) {
    Line(out, head, text);
    return;
  }
  switch (v.kind) {
    case Val::Kind::kMap:
      *out += head + "\n";
      EmitMap(v, indent + 2, out);
      return;
    case Val::Kind::kSeq:
      *out += head + "\n";
      EmitSeq(v, indent, std::string(static_cast<size_t>(indent), ' '), out);
      return;
    case Val::Kind::kSet: {
      // Ruby's Set as Psych dumps it: its members are the keys of its @hash, each `true`.
      const std::string pad(static_cast<size_t>(indent + 2), ' ');
      *out += head + " !ruby/object:Set\n" + pad + "hash:";
      if (v.set.empty()) {
        *out += " {}\n";
        return;
      }
      *out += "\n";
      for (const std::string& member : v.set) *out += pad + "  " + member + ": true\n";
      return;
    }
    case Val::Kind::kNil:
    case Val::Kind::kScalar:
      return;  // inline above
  }
}

void EmitMap(const Val& map, int indent, std::string* out) {
  const std::string pad(static_cast<size_t>(indent), ' ');
  for (const auto& [key, value] : map.map) EmitValue(pad + key + ":", value, indent, out);
}

// "USR2", as Einhorn names the signals it records.
std::string RubySignalName(Signal s) {
  std::string name = SignalName(s);
  if (name.rfind("SIG", 0) == 0) name.erase(0, 3);
  return name;
}

// The request_id as the worker sent it, with its YAML type.
Val IdValue(const wire::Id& id) { return Scalar(wire::IdYaml(id)); }

// The bind's flags as the user wrote them after the address (the spec's first ','), downcased
// as Einhorn keeps them.
Val BindFlags(const BindSpec& spec) {
  Val flags = Seq();
  const size_t first = spec.text.find(',');
  if (first == std::string::npos) return flags;
  const std::string rest = spec.text.substr(first + 1);
  size_t start = 0;
  while (start <= rest.size()) {
    size_t comma = rest.find(',', start);
    if (comma == std::string::npos) comma = rest.size();
    std::string flag = rest.substr(start, comma - start);
    for (char& c : flag) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!flag.empty()) flags.seq.push_back(Str(flag));
    start = comma + 1;
  }
  return flags;
}

Val Bind(const BindSpec& spec) {
  Val entry = Seq();
  if (spec.family == BindSpec::Family::kUnix) {
    entry.seq.push_back(Str("unix:" + spec.path));
    entry.seq.push_back(Nil());
  } else {
    entry.seq.push_back(Str(spec.host));
    entry.seq.push_back(Int(spec.port));
  }
  entry.seq.push_back(BindFlags(spec));
  return entry;
}

Val AckModeValue(const AckMode& mode) {
  Val v = Map();
  switch (mode.kind) {
    case AckMode::Kind::kTimer:
      Put(&v, "type", Sym("timer"));
      Put(&v, "timeout", Number(mode.timer_seconds));
      break;
    case AckMode::Kind::kManual:
      Put(&v, "type", Sym("manual"));
      break;
    case AckMode::Kind::kNotify:
      Put(&v, "type", Sym("notify"));  // einhorn-cpp's sd_notify readiness
      break;
  }
  return v;
}

}  // namespace

std::string RubyTime(std::int64_t wall_ns) {
  constexpr std::int64_t kNsPerSec = 1000000000;
  std::int64_t secs = wall_ns / kNsPerSec;
  std::int64_t nanos = wall_ns % kNsPerSec;
  if (nanos < 0) {
    nanos += kNsPerSec;
    --secs;
  }
  // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
  std::int64_t days = secs / 86400;
  std::int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  const std::int64_t z = days + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t day = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  char buf[160];
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lld %02lld:%02lld:%02lld.%09lld +00:00",
                static_cast<long long>(year), static_cast<long long>(month),
                static_cast<long long>(day), static_cast<long long>(rem / 3600),
                static_cast<long long>(rem % 3600 / 60), static_cast<long long>(rem % 60),
                static_cast<long long>(nanos));
  return buf;
}

namespace {

// The supervisor's clock is monotonic; Einhorn's times are wall-clock ones.
struct WallClock {
  std::int64_t offset_ns = 0;
  std::int64_t At(Time t) const { return t.count() + offset_ns; }
  std::optional<std::int64_t> At(std::optional<Time> t) const {
    return t ? std::optional<std::int64_t>(At(*t)) : std::nullopt;
  }
};

// One of :children, Einhorn's worker hash.
Val ChildValue(const Worker& w, const WallClock& wall) {
  Val c = Map();
  Put(&c, "type", Sym("worker"));
  Put(&c, "version", Int(w.generation - 1));
  Put(&c, "acked", Bool(w.ready_at.has_value()));
  Val signaled;
  signaled.kind = Val::Kind::kSet;
  for (Signal s : w.signals_sent) signaled.set.push_back(RubySignalName(s));
  if (w.killed) signaled.set.push_back("KILL");
  Put(&c, "signaled", std::move(signaled));
  // The KILL after -t is sent at kill_at (the supervisor's Tick runs then).
  Put(&c, "last_signaled_at", RTime(w.killed ? wall.At(w.kill_at) : wall.At(w.signaled_at)));
  Put(&c, "index", Int(w.index));
  Put(&c, "spinup_time", RTime(wall.At(w.spawned_at)));
  if (w.pinged_at) {
    Put(&c, "pinged_at", RTime(w.pinged_wall_ns ? w.pinged_wall_ns : wall.At(w.pinged_at)));
    Put(&c, "pinged_request_id", w.pinged_request_id ? IdValue(*w.pinged_request_id) : Nil());
  }
  return c;
}

Val ChildrenValue(const Supervisor& supervisor, const WallClock& wall) {
  Val children = Map();
  for (const auto& [pid, w] : supervisor.workers()) {
    children.map.emplace_back(std::to_string(pid), ChildValue(w, wall));
  }
  return children;
}

std::optional<Time> LastSpinup(const Supervisor& supervisor) {
  std::optional<Time> last;
  for (const auto& [pid, w] : supervisor.workers()) {
    if (!last || w.spawned_at > *last) last = w.spawned_at;
  }
  return last;
}

Val PoolConfigValue(const Supervisor& supervisor, const Options& o) {
  Val config = Map();
  Put(&config, "number", Int(supervisor.target()));
  Put(&config, "backlog", Int(o.backlog));
  Put(&config, "seconds", Number(o.seconds));
  if (o.max_unacked) Put(&config, "max_unacked", Int(*o.max_unacked));
  if (o.max_upgrade_additional) {
    Put(&config, "max_upgrade_additional", Int(*o.max_upgrade_additional));
  }
  return config;
}

Val IntsValue(const std::vector<int>& items) {
  Val seq = Seq();
  for (int i : items) seq.seq.push_back(Int(i));
  return seq;
}

Val BoundPortsValue(const std::vector<std::optional<int>>& ports) {
  Val seq = Seq();
  for (const std::optional<int>& port : ports) seq.seq.push_back(port ? Int(*port) : Nil());
  return seq;
}

// :upgrading and the fields around it.
struct UpgradeFacts {
  bool reloading_for_upgrade = false;
  bool smooth = false;  // the strategy of the upgrade under way or about to start
  std::optional<std::int64_t> last_upgraded;
};

UpgradeFacts UpgradeFactsOf(const Supervisor& supervisor, const EinhornStateFacts& facts,
                            const WallClock& wall) {
  UpgradeFacts u;
  const auto& upgrade = supervisor.upgrade();
  const auto& last_upgrade = supervisor.last_upgrade();
  u.reloading_for_upgrade = facts.reloading && !facts.then_upgrades.empty();
  if (u.reloading_for_upgrade) {
    u.smooth = facts.then_upgrades.back() == UpgradeStrategy::kSmooth;
  } else if (upgrade) {
    u.smooth = upgrade->strategy == UpgradeStrategy::kSmooth;
  }
  if (upgrade) {
    u.last_upgraded = wall.At(upgrade->started_at);
  } else if (last_upgrade) {
    u.last_upgraded = wall.At(last_upgrade->finished_at);
  }
  return u;
}

// Einhorn counts worker deaths before an ack since the last ack; the slots' streaks are ours.
long long DeathsBeforeAck(const Supervisor& supervisor) {
  long long deaths = 0;
  for (const Slot& slot : supervisor.slots()) deaths += slot.consecutive_failures;
  return deaths;
}

Val NiceValue(const Options& o) {
  Val nice = Map();
  Put(&nice, "master", o.nice.master ? Int(*o.nice.master) : Nil());
  Put(&nice, "worker", o.nice.worker ? Int(*o.nice.worker) : Nil());
  // einhorn-cpp renices with setpriority(2); a RENICE_CMD given is kept but never run.
  Put(&nice, "renice_cmd", OptStr(o.nice.renice_cmd));
  return nice;
}

}  // namespace

std::string EinhornStateYaml(const Supervisor& supervisor, const EinhornStateFacts& facts) {
  const Options& o = facts.options;
  const WallClock wall{facts.wall_offset_ns};
  Val bind = Seq();
  for (const BindSpec& spec : o.binds) bind.seq.push_back(Bind(spec));
  std::vector<std::string> cmd = o.command;
  if (!cmd.empty() && !facts.command_path.empty()) cmd.front() = facts.command_path;
  const UpgradeFacts u = UpgradeFactsOf(supervisor, facts, wall);

  Val state = Map();
  Put(&state, "children", ChildrenValue(supervisor, wall));
  Put(&state, "config", PoolConfigValue(supervisor, o));
  Put(&state, "versions", Map());
  Put(&state, "version", Int(supervisor.generation() - 1));
  Put(&state, "sockets", Map());
  Put(&state, "orig_cmd", Strings(o.command));
  Put(&state, "bind", std::move(bind));
  Put(&state, "bind_fds", IntsValue(facts.bind_fds));
  Put(&state, "bound_ports", BoundPortsValue(facts.bound_ports));
  Put(&state, "cmd", Strings(cmd));
  Put(&state, "script_name", Nil());
  Put(&state, "respawn", Bool(!supervisor.Stopping()));
  Put(&state, "upgrading", Bool(supervisor.upgrade().has_value()));
  Put(&state, "smooth_upgrade", Bool(u.smooth));
  Put(&state, "reloading_for_upgrade", Bool(u.reloading_for_upgrade));
  Put(&state, "path", Nil());
  Put(&state, "cmd_name", OptStr(o.command_name));
  Put(&state, "verbosity", Int(facts.verbosity));
  Put(&state, "generation", Int(facts.reloads));
  Put(&state, "last_spinup", RTime(wall.At(LastSpinup(supervisor))));
  Put(&state, "ack_mode", AckModeValue(o.ack_mode));
  Put(&state, "kill_children_on_exit", Bool(o.kill_children_on_exit));
  Put(&state, "command_socket_as_fd", Bool(o.command_socket_as_fd));
  Put(&state, "socket_path", OptStr(o.socket_path));
  Put(&state, "pidfile", OptStr(o.pidfile));
  Put(&state, "lockfile", OptStr(o.lockfile));
  Put(&state, "consecutive_deaths_before_ack", Int(DeathsBeforeAck(supervisor)));
  Put(&state, "last_upgraded", RTime(u.last_upgraded));
  Put(&state, "nice", NiceValue(o));
  Put(&state, "reexec_commandline", o.reexec_as.empty() ? Nil() : Strings(o.reexec_as));
  Put(&state, "drop_environment_variables", Strings(o.drop_env_vars));
  Put(&state, "signal_timeout", o.signal_timeout ? Number(*o.signal_timeout) : Nil());
  Put(&state, "preloaded", Bool(false));

  Val root = Map();
  Put(&root, "state", std::move(state));
  std::string out = "---\n";
  EmitMap(root, 0, &out);
  return out;
}

}  // namespace einhorn::core
