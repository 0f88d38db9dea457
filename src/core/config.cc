#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <map>
#include <sstream>

#include "core/metrics.h"
#include "core/shell_words.h"
#include "core/text.h"

namespace einhorn::core {
namespace {

// Thrown inside the loader only; LoadConfig turns it into the error line.
using Bad = text::Error;

struct Ctx {
  const std::string& file;
  int fallback_line;  // the key's line, for a value without a mark of its own
};

int LineOf(const YAML::Node& n, int fallback) {
  const YAML::Mark m = n.Mark();
  return m.is_null() || m.line < 0 ? fallback : m.line + 1;
}

[[noreturn]] void Fail(const Ctx& c, const YAML::Node& n, const std::string& path,
                       const std::string& what) {
  // A missing value's mark is where the next token starts: the key's line is the one to show.
  const int line = n.IsNull() ? c.fallback_line : LineOf(n, c.fallback_line);
  throw Bad{c.file + ":" + std::to_string(line) + ": " + path + ": " + what};
}

std::string Shown(const std::string& s) {
  return "'" + (s.size() > 60 ? s.substr(0, 60) + "..." : s) + "'";
}

const std::string& Scalar(const Ctx& c, const YAML::Node& n, const std::string& path,
                          const char* expected) {
  if (!n.IsScalar()) {
    Fail(c, n, path,
         std::string("expected ") + expected + ", got " +
             (n.IsSequence() ? "a list"
              : n.IsMap()    ? "a map"
                             : "no value"));
  }
  // From a "\0" escape: no path, word or name can hold one.
  if (n.Scalar().find('\0') != std::string::npos) Fail(c, n, path, "contains a NUL byte");
  return n.Scalar();
}

int Int(const Ctx& c, const YAML::Node& n, const std::string& path) {
  const std::string& s = Scalar(c, n, path, "an integer");
  int v = 0;
  const char* begin = s.data() + (!s.empty() && s[0] == '+' ? 1 : 0);
  const auto [end, ec] = std::from_chars(begin, s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
    Fail(c, n, path, "expected an integer, got " + Shown(s));
  }
  return v;
}

double Number(const Ctx& c, const YAML::Node& n, const std::string& path) {
  const std::string& s = Scalar(c, n, path, "a number of seconds");
  double v = 0;
  const char* begin = s.data() + (!s.empty() && s[0] == '+' ? 1 : 0);
  const auto [end, ec] = std::from_chars(begin, s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) {
    Fail(c, n, path, "expected a number of seconds, got " + Shown(s));
  }
  return v;
}

bool Bool(const Ctx& c, const YAML::Node& n, const std::string& path) {
  std::string s = Scalar(c, n, path, "true or false");
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  Fail(c, n, path, "expected true or false, got " + Shown(n.Scalar()));
}

std::string String(const Ctx& c, const YAML::Node& n, const std::string& path) {
  return Scalar(c, n, path, "a string");
}

// A scalar, or a list of scalars (a lone scalar is a list of one).
std::vector<std::string> Strings(const Ctx& c, const YAML::Node& n, const std::string& path) {
  if (!n.IsSequence()) return {Scalar(c, n, path, "a string or a list of strings")};
  std::vector<std::string> out;
  for (size_t i = 0; i < n.size(); ++i) {
    out.push_back(Scalar(c, n[i], path + "[" + std::to_string(i) + "]", "a string"));
  }
  return out;
}

// An argv: a list of words, or one string split as a shell would.
std::vector<std::string> Words(const Ctx& c, const YAML::Node& n, const std::string& path) {
  if (n.IsSequence()) return Strings(c, n, path);
  auto words = ShellSplit(Scalar(c, n, path, "a command line or a list of words"));
  if (!words.ok()) Fail(c, n, path, words.error());
  if (words.value().empty()) Fail(c, n, path, "expected a command, got an empty one");
  return std::move(words).value();
}

std::string FormatNumber(double v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : "0";
}

YAML::Node List(const std::vector<std::string>& items) {
  YAML::Node n(YAML::NodeType::Sequence);
  for (const std::string& s : items) n.push_back(s);
  return n;
}

YAML::Node Null() { return YAML::Node(YAML::NodeType::Null); }

const auto& kLogLevels = kLogLevelNames;

// One setting: its key in the file, whether reload may change it, its flag on the command line
// (flags.cc), how the file's value is read and how it is shown (--check-config, reload).
struct Key {
  const char* name;
  bool live;
  FlagSpec flag;
  std::function<void(const Ctx&, const YAML::Node&, const std::string&, Options*)> read;
  std::function<YAML::Node(const Options&)> show;
};

const std::vector<Key>& Keys() {
  using N = const YAML::Node&;
  using P = const std::string&;
  static const std::vector<Key> keys = {
      {"command",
       true,
       {},
       [](const Ctx& c, N n, P p, Options* o) { o->command = Words(c, n, p); },
       [](const Options& o) { return List(o.command); }},
      {"number",
       true,
       {"-n,--number", "Number of workers to run (default 1)", nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->number = Int(c, n, p); },
       [](const Options& o) { return YAML::Node(o.number); }},
      {"bind",
       false,
       {"-b,--bind",
        "Listen on HOST:PORT[,FLAG...], [IPV6]:PORT or unix:/PATH; flags r, n, reuseport", nullptr},
       [](const Ctx& c, N n, P p, Options* o) {
         o->binds.clear();
         const std::vector<std::string> specs = Strings(c, n, p);
         for (size_t i = 0; i < specs.size(); ++i) {
           auto spec = ParseBindSpec(specs[i]);
           const std::string at = n.IsSequence() ? p + "[" + std::to_string(i) + "]" : p;
           if (!spec.ok()) Fail(c, n.IsSequence() ? n[i] : n, at, spec.error());
           o->binds.push_back(std::move(spec).value());
         }
       },
       [](const Options& o) {
         std::vector<std::string> specs;
         for (const BindSpec& b : o.binds) specs.push_back(b.text);
         return List(specs);
       }},
      {"backlog",
       false,
       {"-l,--backlog", "listen() backlog for -b sockets (default 100)", nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->backlog = Int(c, n, p); },
       [](const Options& o) { return YAML::Node(o.backlog); }},
      {"ack_mode",
       true,
       {"-m,--ack-mode",
        "SECONDS alive before a worker is ready (default 1), manual (worker:ack), or notify "
        "(READY=1 on its NOTIFY_SOCKET)",
        nullptr},
       [](const Ctx& c, N n, P p, Options* o) {
         auto mode = ParseAckMode(Scalar(c, n, p, "a number of seconds, manual or notify"));
         if (!mode.ok()) Fail(c, n, p, mode.error());
         o->ack_mode = mode.value();
       },
       [](const Options& o) {
         switch (o.ack_mode.kind) {
           case AckMode::Kind::kManual:
             return YAML::Node("manual");
           case AckMode::Kind::kNotify:
             return YAML::Node("notify");
           case AckMode::Kind::kTimer:
             break;
         }
         return YAML::Node(FormatNumber(o.ack_mode.timer_seconds));
       }},
      {"command_name",
       false,
       {"-c,--command-name", "Name used in default file names", nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->command_name = String(c, n, p); },
       [](const Options& o) { return YAML::Node(o.command_name); }},
      {"socket_path",
       false,
       {"-d,--socket-path", "Command socket (default $TMPDIR/einhorn[-NAME].sock)", nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->socket_path = String(c, n, p); },
       [](const Options& o) { return YAML::Node(o.socket_path); }},
      {"pidfile",
       false,
       {"-e,--pidfile", "Pidfile (default $TMPDIR/einhorn[-NAME].pid)", nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->pidfile = String(c, n, p); },
       [](const Options& o) { return YAML::Node(o.pidfile); }},
      {"lockfile",
       false,
       {"-f,--lockfile", "Lockfile (default $TMPDIR/einhorn[-NAME].lock)", nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->lockfile = String(c, n, p); },
       [](const Options& o) { return YAML::Node(o.lockfile); }},
      {"kill_children_on_exit",
       true,
       {"-k,--kill-children-on-exit", "Workers get SIGUSR2 when the master dies", nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->kill_children_on_exit = Bool(c, n, p); },
       [](const Options& o) { return YAML::Node(o.kill_children_on_exit); }},
      {"log_level",
       true,
       {},
       [](const Ctx& c, N n, P p, Options* o) {
         const std::string& s = Scalar(c, n, p, "debug, info or error");
         for (int i = 0; i < 3; ++i) {
           if (s == kLogLevels[i]) {
             o->verbosity = i;
             return;
           }
         }
         Fail(c, n, p, "expected debug, info or error, got " + Shown(s));
       },
       [](const Options& o) { return YAML::Node(kLogLevels[std::clamp(o.verbosity, 0, 2)]); }},
      {"seconds",
       true,
       {"-s,--seconds", "Base of the crash-loop backoff (default 1)", nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->seconds = Number(c, n, p); },
       [](const Options& o) { return YAML::Node(FormatNumber(o.seconds)); }},
      {"signal_timeout",
       true,
       {"-t,--signal-timeout", "SIGKILL workers this many seconds after a stop signal", nullptr},
       [](const Ctx& c, N n, P p, Options* o) {
         o->signal_timeout.reset();
         if (!n.IsNull()) o->signal_timeout = Number(c, n, p);
       },
       [](const Options& o) {
         return o.signal_timeout ? YAML::Node(FormatNumber(*o.signal_timeout)) : Null();
       }},
      {"drop_env_var",
       true,
       {"--drop-env-var", "Drop VAR from the environment on re-exec", nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->drop_env_vars = Strings(c, n, p); },
       [](const Options& o) { return List(o.drop_env_vars); }},
      {"nice",
       true,
       {"--nice", "MASTER[:WORKER[:RENICE_CMD]] niceness", nullptr},
       [](const Ctx& c, N n, P p, Options* o) {
         o->nice = NiceSpec{};
         if (n.IsNull()) return;
         auto spec = ParseNiceSpec(Scalar(c, n, p, "MASTER[:WORKER[:RENICE_CMD]]"));
         if (!spec.ok()) Fail(c, n, p, spec.error());
         o->nice = spec.value();
       },
       [](const Options& o) {
         if (!o.nice.master) return Null();
         std::string s = std::to_string(*o.nice.master);
         if (o.nice.worker) s += ":" + std::to_string(*o.nice.worker);
         if (o.nice.worker && !o.nice.renice_cmd.empty()) s += ":" + o.nice.renice_cmd;
         return YAML::Node(s);
       }},
      {"command_socket_as_fd",
       false,
       {"-g,--command-socket-as-fd",
        "Give each worker its own command-socket connection in EINHORN_SOCK_FD", nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->command_socket_as_fd = Bool(c, n, p); },
       [](const Options& o) { return YAML::Node(o.command_socket_as_fd); }},
      {"control_allow_uid",
       true,
       {"--control-allow-uid",
        "Also allow this user (name or uid) on the command socket (repeatable)", nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->control_allow_uids = Strings(c, n, p); },
       [](const Options& o) { return List(o.control_allow_uids); }},
      {"control_allow_gid",
       true,
       {"--control-allow-gid",
        "Also allow this group (name or gid) on the command socket (repeatable)", nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->control_allow_gids = Strings(c, n, p); },
       [](const Options& o) { return List(o.control_allow_gids); }},
      {"max_unacked",
       true,
       {"--max-unacked", "Upgrades: at most this many new workers not yet ready (default: CPUs)",
        nullptr},
       [](const Ctx& c, N n, P p, Options* o) {
         o->max_unacked.reset();
         if (!n.IsNull()) o->max_unacked = Int(c, n, p);
       },
       [](const Options& o) { return o.max_unacked ? YAML::Node(*o.max_unacked) : Null(); }},
      {"max_upgrade_additional",
       true,
       {"--max-upgrade-additional",
        "Upgrades: at most -n plus this many workers alive (smooth; 0 acts as 1)", nullptr},
       [](const Ctx& c, N n, P p, Options* o) {
         o->max_upgrade_additional.reset();
         if (!n.IsNull()) o->max_upgrade_additional = Int(c, n, p);
       },
       [](const Options& o) {
         return o.max_upgrade_additional ? YAML::Node(*o.max_upgrade_additional) : Null();
       }},
      {"ack_timeout",
       true,
       {"--ack-timeout",
        "Upgrades: roll back if a new worker is not ready after SECS (default 60, 0 none)",
        nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->ack_timeout = Number(c, n, p); },
       [](const Options& o) { return YAML::Node(FormatNumber(o.ack_timeout)); }},
      {"upgrade_timeout",
       true,
       {"--upgrade-timeout", "Upgrades: roll back if not done after SECS (default 0: no limit)",
        nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->upgrade_timeout = Number(c, n, p); },
       [](const Options& o) { return YAML::Node(FormatNumber(o.upgrade_timeout)); }},
      {"upgrade_max_failures",
       true,
       {"--upgrade-max-failures",
        "Upgrades: roll back after K new workers die before ready (default 3)", nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->upgrade_max_failures = Int(c, n, p); },
       [](const Options& o) { return YAML::Node(o.upgrade_max_failures); }},
      {"canary",
       true,
       {"--no-canary", "Upgrades: do not wait for the first new worker before spawning the others",
        nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->canary = Bool(c, n, p); },
       [](const Options& o) { return YAML::Node(o.canary); }},
      {"drain_signal",
       true,
       {"--drain-signal", "Signal that drains a worker (default USR2)", nullptr},
       [](const Ctx& c, N n, P p, Options* o) {
         const std::string& s = Scalar(c, n, p, "a signal name");
         if (!ParseSignalName(s, &o->drain_signal)) Fail(c, n, p, "unknown signal " + Shown(s));
       },
       [](const Options& o) {
         return YAML::Node(std::string(SignalName(o.drain_signal)).substr(3));
       }},
      {"subreaper",
       false,
       {"--subreaper",
        "Adopt and reap the orphans of the workers' subtrees (PR_SET_CHILD_SUBREAPER; implied as "
        "PID 1)",
        nullptr},
       [](const Ctx& c, N n, P p, Options* o) { o->subreaper = Bool(c, n, p); },
       [](const Options& o) { return YAML::Node(o.subreaper); }},
      // Restart only: the workers already running were not given WATCHDOG_USEC.
      {"worker_watchdog",
       false,
       {"--worker-watchdog",
        "A ready worker silent for SECS on its NOTIFY_SOCKET (no WATCHDOG=1) is aborted and "
        "replaced; exports WATCHDOG_USEC",
        "SECS"},
       [](const Ctx& c, N n, P p, Options* o) {
         o->worker_watchdog.reset();
         if (!n.IsNull()) o->worker_watchdog = Number(c, n, p);
       },
       [](const Options& o) {
         return o.worker_watchdog ? YAML::Node(FormatNumber(*o.worker_watchdog)) : Null();
       }},
      {"log_format",
       true,
       {"--log-format",
        "The master's log lines: text (default; journald priorities when stderr is the journal) or "
        "json (one object per line)",
        "text|json"},
       [](const Ctx& c, N n, P p, Options* o) {
         auto format = ParseLogFormat(Scalar(c, n, p, "text or json"));
         if (!format.ok()) Fail(c, n, p, format.error());
         o->log_format = format.value();
       },
       [](const Options& o) { return YAML::Node(LogFormatName(o.log_format)); }},
      // Restart only: the endpoint is opened once, at start.
      {"metrics_listen",
       false,
       {"--metrics-listen",
        "Serve Prometheus metrics (GET /metrics) on 127.0.0.1:PORT, [::1]:PORT or unix:/PATH; no "
        "authentication, so loopback or UNIX socket only",
        "ADDR"},
       [](const Ctx& c, N n, P p, Options* o) {
         o->metrics_listen.clear();
         if (n.IsNull()) return;
         const std::string& addr = Scalar(c, n, p, "an address");
         if (auto spec = ParseMetricsListen(addr); !spec.ok()) Fail(c, n, p, spec.error());
         o->metrics_listen = addr;
       },
       [](const Options& o) {
         return o.metrics_listen.empty() ? Null() : YAML::Node(o.metrics_listen);
       }},
      // Live: the choice is made per worker at its spawn, so workers started after a reload
      // take the new one.
      {"worker_output",
       true,
       {"--worker-output",
        "Workers' stdout and stderr: inherit (default; json under --log-format json), prefix "
        "(whole lines tagged with pid, slot, generation and stream) or json",
        "inherit|prefix|json"},
       [](const Ctx& c, N n, P p, Options* o) {
         o->worker_output.reset();
         if (n.IsNull()) return;
         auto mode = ParseWorkerOutput(Scalar(c, n, p, "inherit, prefix or json"));
         if (!mode.ok()) Fail(c, n, p, mode.error());
         o->worker_output = mode.value();
       },
       [](const Options& o) {
         return o.worker_output ? YAML::Node(WorkerOutputName(*o.worker_output)) : Null();
       }},
      {"worker_log_dir",
       true,
       {"--worker-log-dir",
        "Also write each slot's lines to DIR/slot-N.log (reopened on SIGUSR1, for logrotate)",
        "DIR"},
       [](const Ctx& c, N n, P p, Options* o) {
         o->worker_log_dir.clear();
         if (n.IsNull()) return;
         o->worker_log_dir = Scalar(c, n, p, "an absolute directory path");
         if (o->worker_log_dir.empty() || o->worker_log_dir.front() != '/') {
           Fail(c, n, p, "expected an absolute directory path, got " + Shown(o->worker_log_dir));
         }
       },
       [](const Options& o) {
         return o.worker_log_dir.empty() ? Null() : YAML::Node(o.worker_log_dir);
       }},
      {"reexec_as",
       true,
       {"--reexec-as", "Reload execs CMDLINE (split as a shell would) instead of this binary",
        "CMDLINE"},
       [](const Ctx& c, N n, P p, Options* o) {
         o->reexec_as.clear();
         if (!n.IsNull()) o->reexec_as = Words(c, n, p);
       },
       [](const Options& o) { return o.reexec_as.empty() ? Null() : List(o.reexec_as); }},
  };
  return keys;
}

const Key* FindKey(const std::string& name) {
  for (const Key& k : Keys()) {
    if (name == k.name) return &k;
  }
  return nullptr;
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string UnknownKey(const std::string& name) {
  std::string best;
  size_t best_distance = 3;
  std::string normalized = name;
  std::replace(normalized.begin(), normalized.end(), '-', '_');
  for (const Key& k : Keys()) {
    const size_t d = EditDistance(normalized, k.name);
    if (d < best_distance) best = k.name, best_distance = d;
  }
  return "unknown key" + (best.empty() ? std::string(" (see man einhorn-cpp.yaml)")
                                       : " (did you mean " + best + "?)");
}

std::string OneLine(const YAML::Node& n) {
  YAML::Emitter out;
  out.SetSeqFormat(YAML::Flow);
  out.SetMapFormat(YAML::Flow);
  out << n;
  return out.c_str();
}

// What the guard (text::GuardDocument) refuses, with its line: anchors and aliases (a cycle,
// or an exponential walk), tags, a second document, deep nesting and huge node counts.
constexpr text::GuardLimits kConfigGuard{
    100000,  // values: the sample with every key has under 100
    8,       // nesting: the format needs 3 (map, list, scalar)
    text::GuardLimits::Tags::kNone};

std::string GuardPhrase(const std::string& file, const text::Refusal& r) {
  using Kind = text::Refusal::Kind;
  std::string why;
  switch (r.kind) {
    case Kind::kSecondDocument:
      why = "more than one YAML document; put every setting in one map";
      break;
    case Kind::kAlias:
    case Kind::kAnchor:
      why = "anchors and aliases (&x, *x) are not allowed here";
      break;
    case Kind::kTag:
      // "?" plain, "!" quoted; explicit tags (!!binary, !custom) mean nothing to a setting.
      why = "tags (" + r.tag + ") are not allowed here";
      break;
    case Kind::kTooManyNodes:
      why = "more than " + std::to_string(kConfigGuard.max_nodes) + " values";
      break;
    case Kind::kTooDeep:
      why = "nested deeper than a config file needs";
      break;
  }
  return file + ":" + std::to_string(r.line) + ": " + why;
}

// The line of the first byte that is not UTF-8 or is a control character YAML does not allow
// in a stream, or 0. A setting holding such bytes could not be printed back by --check-config
// as the same value.
int FirstNonUtf8Line(std::string_view bytes) {
  int line = 1;
  for (size_t i = 0; i < bytes.size();) {
    const char32_t cp = text::NextCodePoint(bytes, &i);
    if (cp == text::kInvalidUtf8 || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') ||
        cp == 0x7f) {
      return line;
    }
    if (cp == '\n') ++line;
  }
  return 0;
}

LoadedConfig LoadOrThrow(const ConfigSource& source) {
  const std::string& file = source.path;
  if (source.text.size() > kMaxConfigBytes) {
    throw Bad{file + ": larger than " + std::to_string(kMaxConfigBytes >> 20) +
              " MiB; this is not a config file"};
  }
  if (const int line = FirstNonUtf8Line(source.text)) {
    throw Bad{file + ":" + std::to_string(line) + ": not UTF-8 text (or a control character)"};
  }
  YAML::Node root;
  try {
    // Never YAML::LoadAll: on some malformed input its document loop does not end.
    text::GuardDocument(source.text, kConfigGuard,
                        [&](const text::Refusal& r) { return GuardPhrase(file, r); });
    root = YAML::Load(source.text);
  } catch (const YAML::Exception& e) {
    throw Bad{file + ":" + std::to_string(e.mark.is_null() ? 1 : e.mark.line + 1) +
              ": not valid YAML: " + e.msg};
  }
  LoadedConfig loaded;
  if (!root.IsDefined() || root.IsNull()) return loaded;
  if (!root.IsMap()) {
    throw Bad{file + ":" + std::to_string(LineOf(root, 1)) +
              ": expected a map of settings (key: value), got " +
              (root.IsSequence() ? "a list" : "a scalar")};
  }
  std::map<std::string, int> seen;  // key -> line
  for (const auto& entry : root) {
    const YAML::Node& key_node = entry.first;
    const int line = LineOf(key_node, 1);
    const Ctx c{file, line};
    if (!key_node.IsScalar()) {
      throw Bad{file + ":" + std::to_string(line) + ": a key must be a name, not " +
                (key_node.IsSequence() ? "a list"
                 : key_node.IsMap()    ? "a map"
                                       : "empty")};
    }
    const std::string& name = key_node.Scalar();
    const Key* key = FindKey(name);
    if (!key) Fail(c, key_node, name, UnknownKey(name));
    if (auto [it, fresh] = seen.emplace(name, line); !fresh) {
      Fail(c, key_node, name, "set twice (first on line " + std::to_string(it->second) + ")");
    }
    const YAML::Node& value = entry.second;
    // Null ("key:" or "key: ~") means "not set", for the settings that are not set by default.
    if (value.IsNull() && !key->show(Options{}).IsNull()) Fail(c, value, name, "has no value");
    key->read(c, value, name, &loaded.options);
    loaded.keys.insert(name);
  }
  // As the flags do: a long timer ack leaves the default ack timeout a minute of room.
  if (!loaded.keys.contains("ack_timeout")) FitAckTimeout(&loaded.options);
  // Ranges: checked now with a stand-in for what the command line may still give.
  Options probe = loaded.options;
  if (!loaded.keys.contains("command")) probe.command = {"command"};
  if (!loaded.keys.contains("socket_path")) probe.socket_path.clear();
  if (auto problem = FindProblem(probe)) {
    const auto at = seen.find(problem->key);
    throw Bad{file + ":" + std::to_string(at == seen.end() ? 1 : at->second) + ": " + problem->key +
              ": " + problem->message};
  }
  return loaded;
}

}  // namespace

Result<LoadedConfig> LoadConfig(const ConfigSource& source) {
  std::string error;
  try {
    return LoadOrThrow(source);
  } catch (const Bad& e) {
    error = e.what();
  } catch (const YAML::Exception& e) {
    error = source.path + ": not valid YAML: " + e.msg;
  }
  // One line, whatever the parser or the file put in it.
  for (char& ch : error) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  return Result<LoadedConfig>::Error(error);
}

std::string RenderConfig(const Options& o) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const Key& k : Keys()) {
    out << YAML::Key << k.name << YAML::Value << k.show(o);
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

FlagSpec FlagOf(const std::string& key) {
  const Key* k = FindKey(key);
  return k ? k->flag : FlagSpec{};
}

bool IsLiveKey(const std::string& key) {
  const Key* k = FindKey(key);
  return k && k->live;
}

std::vector<std::string> ConfigKeys() {
  std::vector<std::string> names;
  for (const Key& k : Keys()) names.emplace_back(k.name);
  return names;
}

Result<ReloadedOptions> ReconcileReload(const Options& running, const Options& reread) {
  ReloadedOptions r;
  r.options = reread;
  std::vector<std::string> restart;
  for (const Key& k : Keys()) {
    const std::string before = OneLine(k.show(running));
    const std::string after = OneLine(k.show(reread));
    if (before == after) continue;
    if (k.live) {
      r.changed.push_back(std::string(k.name) + ": " + before + " -> " + after);
    } else {
      restart.push_back(std::string(k.name) + " (" + before + " -> " + after + ")");
    }
  }
  if (!restart.empty()) {
    std::string list;
    for (const std::string& s : restart) list += (list.empty() ? "" : ", ") + s;
    return Result<ReloadedOptions>::Error(
        "the config changes what only a restart of the master can change: " + list +
        "; nothing was changed");
  }
  return r;
}

}  // namespace einhorn::core
