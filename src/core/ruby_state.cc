#include "core/ruby_state.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

namespace einhorn::core {
namespace {

constexpr size_t kMaxRubyStateBytes = size_t{64} << 20;
constexpr long long kMaxFd = 1 << 20;
constexpr long long kMaxPid = 1 << 22;  // the kernel's PID_MAX_LIMIT

// Reads one map with a fixed vocabulary; every value read goes through here so that a wrong
// type or an unknown key becomes one line in `problems` instead of an exception.
class Reader {
 public:
  explicit Reader(std::vector<std::string>* problems) : problems_(problems) {}

  void Problem(const std::string& line) {
    if (problems_->size() < 100) problems_->push_back(line);
  }

  // Ruby's `nil` (an empty value, `~` or `null`).
  static bool IsNil(const YAML::Node& n) { return !n || n.IsNull(); }

  std::optional<long long> Int(const YAML::Node& n, const std::string& at, long long lo,
                               long long hi) {
    if (IsNil(n)) return std::nullopt;
    if (!n.IsScalar() || n.Tag() == "!") return Bad(at, "an integer", n);
    const std::string& s = n.Scalar();
    long long v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) return Bad(at, "an integer", n);
    if (v < lo || v > hi) {
      Problem(at + ": " + s + " is out of range (" + std::to_string(lo) + ".." +
              std::to_string(hi) + "); ignored");
      return std::nullopt;
    }
    return v;
  }

  std::optional<double> Number(const YAML::Node& n, const std::string& at, double lo, double hi) {
    if (IsNil(n)) return std::nullopt;
    if (!n.IsScalar() || n.Tag() == "!") return Bad<double>(at, "a number", n);
    double v = 0;
    const std::string& s = n.Scalar();
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) {
      return Bad<double>(at, "a number", n);
    }
    if (v < lo || v > hi) {
      Problem(at + ": " + s + " is out of range; ignored");
      return std::nullopt;
    }
    return v;
  }

  std::optional<bool> Bool(const YAML::Node& n, const std::string& at) {
    if (IsNil(n)) return std::nullopt;
    if (n.IsScalar() && n.Tag() != "!") {
      if (n.Scalar() == "true") return true;
      if (n.Scalar() == "false") return false;
    }
    return Bad<bool>(at, "true or false", n);
  }

  // A Ruby String (quoted or plain). Symbols (`:x`) are refused where a string is meant.
  std::optional<std::string> String(const YAML::Node& n, const std::string& at) {
    if (IsNil(n)) return std::nullopt;
    if (!n.IsScalar()) return Bad<std::string>(at, "a string", n);
    return n.Scalar();
  }

  // A Ruby Symbol: a plain `:name`.
  std::optional<std::string> Symbol(const YAML::Node& n, const std::string& at) {
    if (IsNil(n)) return std::nullopt;
    if (n.IsScalar() && n.Tag() != "!" && n.Scalar().size() > 1 && n.Scalar()[0] == ':') {
      return n.Scalar().substr(1);
    }
    return Bad<std::string>(at, "a symbol", n);
  }

  std::optional<WallNanos> Time(const YAML::Node& n, const std::string& at) {
    if (IsNil(n)) return std::nullopt;
    if (n.IsScalar()) {
      if (auto t = ParseRubyTime(n.Scalar())) return t;
    }
    return Bad<WallNanos>(at, "a time", n);
  }

  std::optional<std::vector<std::string>> Strings(const YAML::Node& n, const std::string& at) {
    if (IsNil(n)) return std::nullopt;
    if (!n.IsSequence()) return Bad<std::vector<std::string>>(at, "a list of strings", n);
    std::vector<std::string> out;
    for (size_t i = 0; i < n.size(); ++i) {
      auto s = String(n[i], at + "[" + std::to_string(i) + "]");
      if (!s) return std::nullopt;
      out.push_back(*s);
    }
    return out;
  }

  // The keys of a map of symbols, checked against `known`; an unknown one is named once.
  bool Map(const YAML::Node& n, const std::string& at, std::initializer_list<const char*> known) {
    if (IsNil(n)) return false;
    if (!n.IsMap()) {
      Bad<int>(at, "a map", n);
      return false;
    }
    for (const auto& kv : n) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "?";
      bool ok = false;
      for (const char* k : known) ok = ok || key == std::string(":") + k;
      if (!ok) Problem(at + ": unknown key '" + key + "'; ignored");
    }
    return true;
  }

  template <typename T = long long>
  std::optional<T> Bad(const std::string& at, const char* want, const YAML::Node& n) {
    std::string got = "a " + std::string(n.IsMap() ? "map" : n.IsSequence() ? "list" : "value");
    if (n.IsScalar()) got = "'" + n.Scalar().substr(0, 40) + "'";
    Problem(at + ": " + got + " is not " + want + "; ignored");
    return std::nullopt;
  }

 private:
  std::vector<std::string>* problems_;
};

YAML::Node Get(const YAML::Node& map, const char* key) {
  if (!map || !map.IsMap()) return YAML::Node();
  for (const auto& kv : map) {
    if (kv.first.IsScalar() && kv.first.Scalar() == std::string(":") + key) return kv.second;
  }
  return YAML::Node();
}

std::optional<wire::Id> RequestId(const YAML::Node& n) {
  if (!n || !n.IsScalar() || n.IsNull()) return std::nullopt;
  wire::Id id;
  id.text = n.Scalar();
  if (n.Tag() != "!") {
    long long i = 0;
    double d = 0;
    const char* b = id.text.data();
    const char* e = b + id.text.size();
    if (auto [p, ec] = std::from_chars(b, e, i); ec == std::errc() && p == e) {
      id.kind = wire::Id::Kind::kInt;
    } else if (auto [q, ec2] = std::from_chars(b, e, d); ec2 == std::errc() && q == e) {
      id.kind = wire::Id::Kind::kFloat;
    } else if (id.text == "true") {
      id.kind = wire::Id::Kind::kBool;
    }
  }
  return id;
}

void ReadWorker(Reader& r, Pid pid, const YAML::Node& n, const std::string& at, RubyState* out) {
  r.Map(n, at,
        {"type", "version", "acked", "signaled", "last_signaled_at", "index", "spinup_time",
         "pinged_at", "pinged_request_id"});
  const auto type = r.Symbol(Get(n, "type"), at + ":type");
  if (type == "state_passer") {
    out->state_passers.push_back(pid);
    return;
  }
  if (type != "worker") {
    r.Problem(at + ": a child of type '" + type.value_or("") + "' is not a worker; not adopted");
    return;
  }
  RubyWorker w;
  w.pid = pid;
  w.version = static_cast<int>(r.Int(Get(n, "version"), at + ":version", 0, 1 << 30).value_or(0));
  w.acked = r.Bool(Get(n, "acked"), at + ":acked").value_or(false);
  const YAML::Node set = Get(n, "signaled");
  if (set && !set.IsNull()) {
    const YAML::Node hash = set.IsMap() ? set["hash"] : YAML::Node();
    if (set.Tag() != "!ruby/object:Set" || !hash || !(hash.IsMap() || hash.IsNull())) {
      r.Problem(at + ":signaled: not a Ruby Set; read as signalled");
      w.signaled.insert("?");
    } else if (hash.IsMap()) {
      for (const auto& kv : hash) {
        if (kv.first.IsScalar()) w.signaled.insert(kv.first.Scalar());
      }
    }
  }
  w.last_signaled_at = r.Time(Get(n, "last_signaled_at"), at + ":last_signaled_at");
  w.index = static_cast<int>(r.Int(Get(n, "index"), at + ":index", 0, 1 << 30).value_or(0));
  w.spinup_time = r.Time(Get(n, "spinup_time"), at + ":spinup_time");
  w.pinged_at = r.Time(Get(n, "pinged_at"), at + ":pinged_at");
  out->workers.push_back(std::move(w));
}

void ReadBinds(Reader& r, const YAML::Node& st, RubyState* out) {
  const YAML::Node binds = Get(st, "bind");
  if (Reader::IsNil(binds)) return;
  if (!binds.IsSequence()) {
    r.Problem(":bind: not a list; no listening socket is kept");
    return;
  }
  for (size_t i = 0; i < binds.size(); ++i) {
    const std::string at = ":bind[" + std::to_string(i) + "]";
    const YAML::Node b = binds[i];
    if (!b.IsSequence() || b.size() != 3 || !b[0].IsScalar() || !b[1].IsScalar() ||
        !b[2].IsSequence()) {
      r.Problem(at + ": not [host, port, [flags]]; that socket is not kept");
      out->options.binds.push_back(BindSpec{});  // keeps the positions of :bind_fds
      continue;
    }
    std::string text = b[0].Scalar() + ":" + b[1].Scalar();
    for (size_t f = 0; f < b[2].size(); ++f) {
      if (b[2][f].IsScalar()) text += "," + b[2][f].Scalar();
    }
    auto spec = ParseBindSpec(text);
    if (!spec.ok()) {
      r.Problem(at + ": " + spec.error() + "; that socket is not kept");
      out->options.binds.push_back(BindSpec{});
      continue;
    }
    out->options.binds.push_back(spec.value());
  }
}

void ReadDescriptors(Reader& r, const YAML::Node& list, RubyState* out) {
  if (Reader::IsNil(list)) return;
  if (!list.IsSequence()) {
    r.Problem(":persistent_descriptors: not a list; the command socket is not kept");
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = ":persistent_descriptors[" + std::to_string(i) + "]";
    const YAML::Node d = list[i];
    const auto klass = r.String(Get(d, "class"), at + ":class");
    if (klass == "Einhorn::Event::CommandServer") {
      r.Map(d, at, {"class", "server"});
      out->command_server_fd = r.Int(Get(d, "server"), at + ":server", 0, kMaxFd);
    } else if (klass == "Einhorn::Event::Connection") {
      r.Map(d, at, {"class", "socket", "read_buffer", "write_buffer", "subscriptions"});
      RubyConnection c;
      const auto fd = r.Int(Get(d, "socket"), at + ":socket", 0, kMaxFd);
      if (!fd) continue;
      c.fd = static_cast<int>(*fd);
      c.read_buffer = r.String(Get(d, "read_buffer"), at + ":read_buffer").value_or("");
      c.write_buffer = r.String(Get(d, "write_buffer"), at + ":write_buffer").value_or("");
      const YAML::Node subs = Get(d, "subscriptions");
      if (r.Map(subs, at + ":subscriptions", {"upgrade"})) {
        c.upgrade_id = RequestId(Get(subs, "upgrade"));
      }
      out->connections.push_back(std::move(c));
    } else if (klass == "Einhorn::Event::ACKTimer") {
      r.Map(d, at, {"class", "time", "start", "pid"});
      const auto pid = r.Int(Get(d, "pid"), at + ":pid", 1, kMaxPid);
      const auto start = r.Time(Get(d, "start"), at + ":start");
      if (pid && start) out->ack_timer_starts[static_cast<Pid>(*pid)] = *start;
    } else {
      r.Problem(at + ": unknown descriptor class '" + klass.value_or("") + "'; ignored");
    }
  }
}

// :children, one worker per pid (the first listed), in pid order.
void ReadChildren(Reader& r, const YAML::Node& st, RubyState* out) {
  const YAML::Node children = Get(st, "children");
  if (!Reader::IsNil(children) && !children.IsMap()) {
    r.Problem(":children: not a map; no worker is adopted");
  } else if (children) {
    for (const auto& kv : children) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "?";
      const auto pid = r.Int(kv.first, ":children: key '" + key + "'", 1, kMaxPid);
      if (pid) ReadWorker(r, static_cast<Pid>(*pid), kv.second, ":children:" + key, out);
    }
  }
  std::stable_sort(out->workers.begin(), out->workers.end(),
                   [](const RubyWorker& a, const RubyWorker& b) { return a.pid < b.pid; });
  // yaml-cpp keeps duplicate keys (and 012 is 12): one worker per pid, the first listed.
  for (size_t i = 1; i < out->workers.size();) {
    if (out->workers[i].pid == out->workers[i - 1].pid) {
      r.Problem(":children: pid " + std::to_string(out->workers[i].pid) +
                " is listed twice; the second is ignored");
      out->workers.erase(out->workers.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

// :config: the pool's numbers.
void ReadConfig(Reader& r, const YAML::Node& st, Options* options) {
  Options& o = *options;
  const YAML::Node config = Get(st, "config");
  if (r.Map(config, ":config",
            {"number", "backlog", "seconds", "max_unacked", "max_upgrade_additional",
             "gc_before_fork"})) {
    o.number =
        static_cast<int>(r.Int(Get(config, "number"), ":config:number", 1, 1'000'000).value_or(1));
    o.backlog = static_cast<int>(
        r.Int(Get(config, "backlog"), ":config:backlog", 1, 1 << 20).value_or(100));
    o.seconds = r.Number(Get(config, "seconds"), ":config:seconds", 0, 86400).value_or(1);
    if (auto v = r.Int(Get(config, "max_unacked"), ":config:max_unacked", 1, 1'000'000)) {
      o.max_unacked = static_cast<int>(*v);
    }
    if (auto v = r.Int(Get(config, "max_upgrade_additional"), ":config:max_upgrade_additional", 1,
                       1'000'000)) {
      o.max_upgrade_additional = static_cast<int>(*v);
    }
    if (r.Bool(Get(config, "gc_before_fork"), ":config:gc_before_fork").value_or(false)) {
      r.Problem(
          ":config:gc_before_fork: a Ruby preload setting einhorn-cpp does not have; "
          "ignored");
    }
  }
}

// :bind_fds and :bound_ports, position by position.
void ReadListenerFds(Reader& r, const YAML::Node& st, RubyState* out) {
  const YAML::Node fds = Get(st, "bind_fds");
  if (!Reader::IsNil(fds) && fds.IsSequence()) {
    for (size_t i = 0; i < fds.size(); ++i) {
      out->bind_fds.push_back(static_cast<int>(
          r.Int(fds[i], ":bind_fds[" + std::to_string(i) + "]", 0, kMaxFd).value_or(-1)));
    }
  } else if (!Reader::IsNil(fds)) {
    r.Problem(":bind_fds: not a list; no listening socket is kept");
  }
  const YAML::Node ports = Get(st, "bound_ports");
  if (!Reader::IsNil(ports) && ports.IsSequence()) {
    for (size_t i = 0; i < ports.size(); ++i) {
      out->bound_ports.push_back(static_cast<int>(
          r.Int(ports[i], ":bound_ports[" + std::to_string(i) + "]", 0, 65535).value_or(0)));
    }
  }
}

// What the master was doing (respawn, an upgrade under way), and the Ruby preload einhorn-cpp
// does not do.
void ReadRunState(Reader& r, const YAML::Node& st, RubyState* out) {
  out->respawn = r.Bool(Get(st, "respawn"), ":respawn").value_or(true);
  out->upgrading = r.Bool(Get(st, "upgrading"), ":upgrading").value_or(false);
  out->smooth_upgrade = r.Bool(Get(st, "smooth_upgrade"), ":smooth_upgrade").value_or(false);
  out->reloading_for_upgrade =
      r.Bool(Get(st, "reloading_for_upgrade"), ":reloading_for_upgrade").value_or(false);
  if (auto path = r.String(Get(st, "path"), ":path")) {
    r.Problem(":path: '" + *path +
              "' is a Ruby preload (-p), which einhorn-cpp does not do; "
              "new workers run the command");
  }
  if (r.Bool(Get(st, "preloaded"), ":preloaded").value_or(false)) {
    r.Problem(":preloaded: the workers were preloaded Ruby forks; new ones run the command");
  }
}

// :ack_mode: timer (with its timeout) or manual.
void ReadAckMode(Reader& r, const YAML::Node& st, Options* options) {
  Options& o = *options;
  const YAML::Node ack = Get(st, "ack_mode");
  if (r.Map(ack, ":ack_mode", {"type", "timeout"})) {
    const auto type = r.Symbol(Get(ack, "type"), ":ack_mode:type");
    if (type == "manual") {
      o.ack_mode.kind = AckMode::Kind::kManual;
    } else if (type == "timer") {
      o.ack_mode.kind = AckMode::Kind::kTimer;
      o.ack_mode.timer_seconds =
          r.Number(Get(ack, "timeout"), ":ack_mode:timeout", 0, 86400).value_or(1);
    } else {
      r.Problem(":ack_mode:type: '" + type.value_or("") + "' is not timer or manual; timer 1 s");
    }
  }
}

// :kill_children_on_exit, the command socket, the pid and lock files, :nice, the re-exec
// command line, the dropped variables and the signal timeout.
void ReadProcessOptions(Reader& r, const YAML::Node& st, Options* options) {
  Options& o = *options;
  o.kill_children_on_exit =
      r.Bool(Get(st, "kill_children_on_exit"), ":kill_children_on_exit").value_or(false);
  o.command_socket_as_fd =
      r.Bool(Get(st, "command_socket_as_fd"), ":command_socket_as_fd").value_or(false);
  o.socket_path = r.String(Get(st, "socket_path"), ":socket_path").value_or("");
  o.pidfile = r.String(Get(st, "pidfile"), ":pidfile").value_or("");
  o.lockfile = r.String(Get(st, "lockfile"), ":lockfile").value_or("");

  const YAML::Node nice = Get(st, "nice");
  if (r.Map(nice, ":nice", {"master", "worker", "renice_cmd"})) {
    if (auto v = r.Int(Get(nice, "master"), ":nice:master", -20, 19)) {
      o.nice.master = static_cast<int>(*v);
    }
    if (auto v = r.Int(Get(nice, "worker"), ":nice:worker", -20, 19)) {
      o.nice.worker = static_cast<int>(*v);
    }
    o.nice.renice_cmd = r.String(Get(nice, "renice_cmd"), ":nice:renice_cmd").value_or("");
  }
  if (auto v = r.Strings(Get(st, "reexec_commandline"), ":reexec_commandline")) o.reexec_as = *v;
  if (auto v = r.Strings(Get(st, "drop_environment_variables"), ":drop_environment_variables")) {
    o.drop_env_vars = *v;
  }
  if (auto v = r.Number(Get(st, "signal_timeout"), ":signal_timeout", 0, 1e6)) {
    o.signal_timeout = *v;
  }
}

void ReadState(Reader& r, const YAML::Node& st, RubyState* out) {
  r.Map(st, ":state",
        {"children",
         "config",
         "versions",
         "version",
         "sockets",
         "orig_cmd",
         "bind",
         "bind_fds",
         "bound_ports",
         "cmd",
         "script_name",
         "respawn",
         "upgrading",
         "smooth_upgrade",
         "reloading_for_upgrade",
         "path",
         "cmd_name",
         "verbosity",
         "generation",
         "last_spinup",
         "ack_mode",
         "kill_children_on_exit",
         "command_socket_as_fd",
         "socket_path",
         "pidfile",
         "lockfile",
         "consecutive_deaths_before_ack",
         "last_upgraded",
         "nice",
         "reexec_commandline",
         "drop_environment_variables",
         "signal_timeout",
         "preloaded"});
  ReadChildren(r, st, out);
  ReadConfig(r, st, &out->options);
  out->version = static_cast<int>(r.Int(Get(st, "version"), ":version", 0, 1 << 30).value_or(0));
  out->generation =
      static_cast<int>(r.Int(Get(st, "generation"), ":generation", 0, 1 << 30).value_or(0));

  if (auto cmd = r.Strings(Get(st, "cmd"), ":cmd")) out->options.command = *cmd;
  ReadBinds(r, st, out);
  ReadListenerFds(r, st, out);
  ReadRunState(r, st, out);
  Options& o = out->options;
  o.command_name = r.String(Get(st, "cmd_name"), ":cmd_name").value_or("");
  const long long verbosity = r.Int(Get(st, "verbosity"), ":verbosity", -100, 100).value_or(1);
  o.verbosity = static_cast<int>(std::clamp(verbosity, 0LL, 2LL));

  ReadAckMode(r, st, &o);
  ReadProcessOptions(r, st, &o);
}

}  // namespace

bool LooksLikeRubyState(std::string_view bytes) {
  // YAML.dump always starts with the document marker; the first key of the hash is :state.
  return bytes.rfind("---\n:state:", 0) == 0 || bytes.rfind(":state:", 0) == 0;
}

std::optional<WallNanos> ParseRubyTime(std::string_view s) {
  // YYYY-MM-DD[ T]HH:MM:SS[.f{1,9}][ ](Z|+HH:MM|-HH:MM|+HHMM)
  auto digits = [&](size_t at, size_t n, int* v) {
    if (at + n > s.size()) return false;
    int x = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
  };
  int y, mo, d, h, mi, sec;
  if (!digits(0, 4, &y) || s.size() < 19 || s[4] != '-' || !digits(5, 2, &mo) || s[7] != '-' ||
      !digits(8, 2, &d) || (s[10] != ' ' && s[10] != 'T') || !digits(11, 2, &h) || s[13] != ':' ||
      !digits(14, 2, &mi) || s[16] != ':' || !digits(17, 2, &sec)) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  size_t at = 19;
  std::int64_t frac = 0;
  if (at < s.size() && s[at] == '.') {
    ++at;
    int n = 0;
    while (at < s.size() && s[at] >= '0' && s[at] <= '9') {
      if (n < 9) {
        frac = frac * 10 + (s[at] - '0');
        ++n;
      }
      ++at;
    }
    if (n == 0) return std::nullopt;
    for (; n < 9; ++n) frac *= 10;
  }
  if (at < s.size() && s[at] == ' ') ++at;
  int offset = 0;
  if (at < s.size() && s[at] == 'Z') {
    ++at;
  } else if (at < s.size() && (s[at] == '+' || s[at] == '-')) {
    const int sign = s[at] == '-' ? -1 : 1;
    int oh, om;
    if (!digits(at + 1, 2, &oh)) return std::nullopt;
    size_t m = at + 3;
    if (m < s.size() && s[m] == ':') ++m;
    if (!digits(m, 2, &om) || oh > 23 || om > 59) return std::nullopt;
    offset = sign * (oh * 3600 + om * 60);
    at = m + 2;
  } else {
    return std::nullopt;
  }
  if (at != s.size()) return std::nullopt;
  // Days from the civil date (Howard Hinnant's algorithm).
  const int yy = y - (mo <= 2);
  const int era = (yy >= 0 ? yy : yy - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(yy - era * 400);
  const unsigned doy = static_cast<unsigned>((153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1);
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const std::int64_t days = static_cast<std::int64_t>(era) * 146097 + doe - 719468;
  const std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset;
  // Nanoseconds since the epoch fit in 64 bits from 1970 to 2262; anything else is not a
  // time a running master wrote.
  if (secs < 0 || secs >= std::numeric_limits<std::int64_t>::max() / 1'000'000'000 - 1) {
    return std::nullopt;
  }
  return secs * 1'000'000'000 + frac;
}

Result<RubyState> ParseRubyState(std::string_view bytes) {
  using R = Result<RubyState>;
  if (bytes.size() > kMaxRubyStateBytes) return R::Error("Ruby Einhorn's state is over 64 MiB");
  RubyState out;
  Reader r(&out.problems);
  try {
    const YAML::Node doc = YAML::Load(std::string(bytes));
    if (!doc.IsMap()) return R::Error("Ruby Einhorn's state is not a YAML map");
    for (const auto& kv : doc) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "?";
      if (key != ":state" && key != ":persistent_descriptors") {
        r.Problem("unknown key '" + key + "'; ignored");
      }
    }
    const YAML::Node st = Get(doc, "state");
    if (!st || !st.IsMap()) return R::Error("Ruby Einhorn's state has no :state map");
    ReadState(r, st, &out);
    ReadDescriptors(r, Get(doc, "persistent_descriptors"), &out);
  } catch (const YAML::Exception& e) {
    return R::Error("Ruby Einhorn's state is not YAML einhorn-cpp can read: " + e.msg + " (line " +
                    std::to_string(e.mark.line + 1) + ")");
  }
  if (out.options.command.empty()) return R::Error("Ruby Einhorn's state has no :cmd");
  if (out.options.binds.size() != out.bind_fds.size()) {
    r.Problem(":bind lists " + std::to_string(out.options.binds.size()) + " sockets but " +
              ":bind_fds " + std::to_string(out.bind_fds.size()) +
              "; each fd is matched by its address");
  }
  // Only what the state itself says is checked here; paths Ruby left nil are the shell's.
  Options check = out.options;
  if (check.socket_path.empty()) check.socket_path = "/x";
  if (check.pidfile.empty()) check.pidfile = "/x";
  if (check.lockfile.empty()) check.lockfile = "/x";
  std::erase_if(check.binds, [](const BindSpec& b) { return b.text.empty(); });
  if (Status st = Validate(check); !st.ok()) {
    return R::Error("Ruby Einhorn's settings: " + st.message());
  }
  return out;
}

namespace {

// Ruby Einhorn's wall-clock times on the supervisor's monotonic clock.
struct MonoClock {
  Time now;
  WallNanos now_wall;
  Time At(WallNanos wall) const {
    // A time in the future (a clock step) reads as now; before boot as the boot.
    const std::int64_t ago = std::max<std::int64_t>(0, now_wall - wall);
    return Time(std::max<std::int64_t>(0, now.count() - ago));
  }
};

// A live Ruby worker as ours, not in a slot yet: draining if Einhorn had signalled it, ready if
// it had acked.
Worker AdoptWorker(const RubyWorker& r, const RubyState& state, const SupervisorConfig& config,
                   const MonoClock& clock) {
  const Time now = clock.now;
  Worker w;
  w.pid = r.pid;
  w.slot = -1;
  w.index = r.index;
  w.generation = 1;
  const auto timer = state.ack_timer_starts.find(r.pid);
  w.spawned_at = timer != state.ack_timer_starts.end() ? clock.At(timer->second)
                 : r.spinup_time                       ? clock.At(*r.spinup_time)
                                                       : now;
  if (r.pinged_at) w.pinged_at = clock.At(*r.pinged_at);
  if (!r.signaled.empty()) {
    w.state = WorkerState::kDraining;
    w.signaled_at = r.last_signaled_at ? clock.At(*r.last_signaled_at) : now;
    w.draining_since = w.signaled_at;
    if (config.signal_timeout) w.kill_at = *w.signaled_at + *config.signal_timeout;
    if (r.acked) w.ready_at = w.spawned_at;
    return w;
  }
  if (r.acked) {
    w.state = WorkerState::kReady;
    w.ready_at = w.spawned_at;
    w.watchdog_at = now;
  }
  return w;
}

// The serving workers take the slots: acked first, then the newest version, then the lowest
// index. Those beyond -n are drained; empty slots respawn now.
void AssignSlots(std::vector<const RubyWorker*> serving, Time now, RubyTakeover* t) {
  SupervisorSnapshot& s = t->supervisor;
  std::stable_sort(serving.begin(), serving.end(), [](const RubyWorker* a, const RubyWorker* b) {
    if (a->acked != b->acked) return a->acked;
    if (a->version != b->version) return a->version > b->version;
    return a->index < b->index;
  });
  auto find = [&](Pid pid) -> Worker& {
    return *std::find_if(s.workers.begin(), s.workers.end(),
                         [&](const Worker& w) { return w.pid == pid; });
  };
  for (size_t i = 0; i < serving.size(); ++i) {
    Worker& w = find(serving[i]->pid);
    if (i < s.slots.size()) {
      w.slot = static_cast<int>(i);
      s.slots[i].pid = w.pid;
      s.slots[i].starts = 1;
      continue;
    }
    w.state = WorkerState::kDraining;
    w.signaled_at = now;
    w.draining_since = now;
    if (s.config.signal_timeout) w.kill_at = now + *s.config.signal_timeout;
    t->drain_now.push_back(w.pid);
    t->notes.push_back("worker " + std::to_string(w.pid) + " is beyond -n " +
                       std::to_string(s.config.target) + "; drained");
  }
  for (Slot& slot : s.slots) {
    if (!slot.pid) slot.respawn_at = now;
  }
}

}  // namespace

RubyTakeover PlanRubyTakeover(const RubyState& state, const std::set<Pid>& alive, Time now,
                              WallNanos now_wall, std::uint64_t jitter_seed) {
  RubyTakeover t;
  SupervisorSnapshot& s = t.supervisor;
  s.config = ConfigFromOptions(state.options, jitter_seed);
  s.rng.seed(jitter_seed);
  s.slots.resize(static_cast<size_t>(s.config.target));
  s.generation = 1;
  s.next_generation = 2;
  const MonoClock clock{now, now_wall};

  std::vector<const RubyWorker*> serving;
  for (const RubyWorker& r : state.workers) {
    if (!alive.contains(r.pid)) {
      t.notes.push_back("worker " + std::to_string(r.pid) + " (index " + std::to_string(r.index) +
                        ") is gone (it died during the exec); dropped, its slot respawns");
      continue;
    }
    s.workers.push_back(AdoptWorker(r, state, s.config, clock));
    if (r.signaled.empty()) serving.push_back(&r);
  }
  AssignSlots(std::move(serving), now, &t);
  std::sort(s.workers.begin(), s.workers.end(),
            [](const Worker& a, const Worker& b) { return a.pid < b.pid; });
  if (state.reloading_for_upgrade || state.upgrading) {
    t.then_upgrade = state.smooth_upgrade ? UpgradeStrategy::kSmooth : UpgradeStrategy::kFleet;
  }
  return t;
}

}  // namespace einhorn::core
