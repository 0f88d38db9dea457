#include "core/options.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/metrics.h"
#include "core/recycle_spec.h"

namespace einhorn::core {
namespace {

std::string FormatSeconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.15g", s);
  return buf;
}

// Whole-string number parsing: "1.5x" or "" are errors, not 1.5 or 0 as Ruby's to_f would say.
bool ParseDouble(const std::string& s, double* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

bool ParseInt(const std::string& s, int* out) {
  if (s.empty() || s.size() > 9) return false;
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  *out = std::atoi(s.c_str());
  return true;
}

// The one range check of a duration setting: finite, from 0 (or above 0) up to
// kMaxSettingSeconds. Written so that NaN fails too.
std::optional<Problem> SecondsProblem(const char* key, const char* flag, double v, bool zero_ok,
                                      const char* note = "") {
  const bool low_ok = zero_ok ? v >= 0 : v > 0;
  if (low_ok && v <= kMaxSettingSeconds) return std::nullopt;
  return Problem{key, std::string(flag) + " must be a number of seconds " +
                          (zero_ok ? "from 0 to " : "above 0, at most ") +
                          FormatSeconds(kMaxSettingSeconds) + note + " (got " + FormatSeconds(v) +
                          ")"};
}

}  // namespace

void FitAckTimeout(Options* o) {
  if (o->ack_mode.kind != AckMode::Kind::kTimer || o->ack_mode.timer_seconds < o->ack_timeout) {
    return;
  }
  const double fitted = o->ack_mode.timer_seconds + 60;
  o->ack_timeout = fitted <= kMaxSettingSeconds ? fitted : 0;
}

Result<LogFormat> ParseLogFormat(const std::string& text) {
  if (text == "text") return LogFormat::kText;
  if (text == "json") return LogFormat::kJson;
  return Result<LogFormat>::Error("--log-format must be text or json (got '" + text + "')");
}

const char* LogFormatName(LogFormat format) {
  return format == LogFormat::kJson ? "json" : "text";
}

Result<WorkerOutput> ParseWorkerOutput(const std::string& text) {
  if (text == "inherit") return WorkerOutput::kInherit;
  if (text == "prefix") return WorkerOutput::kPrefix;
  if (text == "json") return WorkerOutput::kJson;
  return Result<WorkerOutput>::Error("--worker-output must be inherit, prefix or json (got '" +
                                     text + "')");
}

const char* WorkerOutputName(WorkerOutput mode) {
  switch (mode) {
    case WorkerOutput::kInherit:
      return "inherit";
    case WorkerOutput::kPrefix:
      return "prefix";
    case WorkerOutput::kJson:
      return "json";
  }
  return "inherit";
}

WorkerOutput EffectiveWorkerOutput(const Options& o) {
  if (o.worker_output) return *o.worker_output;
  return o.log_format == LogFormat::kJson ? WorkerOutput::kJson : WorkerOutput::kInherit;
}

Result<AckMode> ParseAckMode(const std::string& text) {
  AckMode mode;
  if (text == "manual") {
    mode.kind = AckMode::Kind::kManual;
    return mode;
  }
  if (text == "notify") {
    mode.kind = AckMode::Kind::kNotify;
    return mode;
  }
  double seconds = 0;
  if (!ParseDouble(text, &seconds) || seconds < 0) {
    return Result<AckMode>::Error("invalid ack mode '" + text +
                                  "' (valid modes: a number of seconds >= 0, manual or notify)");
  }
  mode.timer_seconds = seconds;
  return mode;
}

Result<NiceSpec> ParseNiceSpec(const std::string& text) {
  NiceSpec spec;
  const size_t first = text.find(':');
  const std::string master = text.substr(0, first);
  auto bad = [&](const std::string& why) {
    return Result<NiceSpec>::Error("invalid --nice '" + text + "': " + why +
                                   " (expected MASTER[:WORKER[:RENICE_CMD]], niceness -20..19)");
  };
  int value = 0;
  if (!ParseInt(master, &value) || value < -20 || value > 19) return bad("bad master niceness");
  spec.master = value;
  if (first == std::string::npos) return spec;
  const size_t second = text.find(':', first + 1);
  const std::string worker =
      text.substr(first + 1, second == std::string::npos ? std::string::npos : second - first - 1);
  if (!ParseInt(worker, &value) || value < -20 || value > 19) return bad("bad worker niceness");
  spec.worker = value;
  if (second != std::string::npos) spec.renice_cmd = text.substr(second + 1);
  return spec;
}

std::map<std::string, std::string> EnvMap(const std::vector<std::string>& env) {
  std::map<std::string, std::string> m;
  for (const std::string& e : env) {
    const size_t eq = e.find('=');
    if (eq != std::string::npos) m.emplace(e.substr(0, eq), e.substr(eq + 1));
  }
  return m;
}

static std::string TmpDir(const std::map<std::string, std::string>& env) {
  std::string dir = "/tmp";
  if (auto it = env.find("TMPDIR"); it != env.end() && !it->second.empty()) dir = it->second;
  while (!dir.empty() && dir.back() == '/') dir.pop_back();
  return dir;  // "" for "/": joined as "/einhorn.sock", as Ruby's File.join does
}

std::string DefaultPath(const std::map<std::string, std::string>& env,
                        const std::string& command_name, std::string_view extension) {
  std::string path = TmpDir(env) + "/einhorn";
  if (!command_name.empty()) path += "-" + command_name;
  path += extension;
  return path;
}

void ApplyDefaultPaths(Options* o, const std::map<std::string, std::string>& env) {
  if (o->socket_path.empty()) o->socket_path = DefaultPath(env, o->command_name, ".sock");
  if (o->pidfile.empty()) o->pidfile = DefaultPath(env, o->command_name, ".pid");
  if (o->lockfile.empty()) o->lockfile = DefaultPath(env, o->command_name, ".lock");
}

namespace {

// -n, the command socket path, -l.
std::optional<Problem> PoolProblem(const Options& o) {
  if (o.number < 1) {
    return Problem{"number",
                   "-n/--number must be at least 1 (got " + std::to_string(o.number) + ")"};
  }
  if (o.number > 10000) return Problem{"number", "-n/--number must be at most 10000"};
  if (o.socket_path.size() > kMaxSocketPath) {
    return Problem{"socket_path",
                   "the command socket path (-d/--socket-path, by default from TMPDIR and "
                   "-c) is longer than " +
                       std::to_string(kMaxSocketPath) +
                       " bytes, the limit of a UNIX socket path: " + o.socket_path};
  }
  if (o.backlog < 0) return Problem{"backlog", "-l/--backlog must not be negative"};
  return std::nullopt;
}

// -s, -t and the ack timer.
std::optional<Problem> TimingProblem(const Options& o) {
  if (auto p = SecondsProblem("seconds", "-s/--seconds", o.seconds, false)) return p;
  if (o.signal_timeout) {
    if (auto p = SecondsProblem("signal_timeout", "-t/--signal-timeout", *o.signal_timeout, true)) {
      return p;
    }
  }
  if (o.ack_mode.kind == AckMode::Kind::kTimer) {
    if (auto p = SecondsProblem("ack_mode", "-m/--ack-mode", o.ack_mode.timer_seconds, true,
                                ", or manual or notify")) {
      return p;
    }
  }
  return std::nullopt;
}

// The worker command, --reexec-as, --worker-log-dir and -p.
std::optional<Problem> CommandProblem(const Options& o) {
  if (o.command.empty()) {
    return Problem{"command",
                   "no worker command given (usage: einhorn-cpp [options] [--] COMMAND [ARGS...])"};
  }
  if (o.command.front().empty()) return Problem{"command", "the worker command is an empty string"};
  if (!o.reexec_as.empty() && o.reexec_as.front().empty()) {
    return Problem{"reexec_as", "--reexec-as: the program to exec is an empty string"};
  }
  if (!o.worker_log_dir.empty() &&
      (o.worker_log_dir.front() != '/' || o.worker_log_dir.find('\0') != std::string::npos ||
       o.worker_log_dir.size() > 4096)) {
    return Problem{"worker_log_dir",
                   "--worker-log-dir must be an absolute path (got '" +
                       o.worker_log_dir.substr(0, 200) + "')"};
  }
  if (o.gc_before_fork && o.preload.empty()) {
    return Problem{"gc_before_fork", "--gc-before-fork works only with -p PATH (Ruby preload)"};
  }
  if (!o.preload.empty() &&
      (o.preload.find('\0') != std::string::npos || o.preload.size() > 4096)) {
    return Problem{"preload", "-p/--preload: not a usable path"};
  }
  return std::nullopt;
}

// The upgrade's limits and deadlines, and --worker-watchdog.
std::optional<Problem> UpgradeProblem(const Options& o) {
  if (o.max_unacked && *o.max_unacked < 1) {
    return Problem{"max_unacked", "--max-unacked must be at least 1"};
  }
  if (o.max_upgrade_additional && *o.max_upgrade_additional < 0) {
    return Problem{"max_upgrade_additional", "--max-upgrade-additional must not be negative"};
  }
  if (o.worker_watchdog) {
    if (auto p =
            SecondsProblem("worker_watchdog", "--worker-watchdog", *o.worker_watchdog, false)) {
      return p;
    }
  }
  if (auto p =
          SecondsProblem("ack_timeout", "--ack-timeout", o.ack_timeout, true, ", 0 for no limit")) {
    return p;
  }
  if (auto p = SecondsProblem("upgrade_timeout", "--upgrade-timeout", o.upgrade_timeout, true,
                              ", 0 for no limit")) {
    return p;
  }
  if (o.ack_mode.kind == AckMode::Kind::kTimer && o.ack_timeout > 0 &&
      o.ack_mode.timer_seconds >= o.ack_timeout) {
    return Problem{"ack_mode", "-m/--ack-mode " + FormatSeconds(o.ack_mode.timer_seconds) +
                                   " must be shorter than --ack-timeout " +
                                   FormatSeconds(o.ack_timeout) +
                                   ", or every upgrade would be rolled back"};
  }
  if (o.upgrade_max_failures < 1) {
    return Problem{"upgrade_max_failures", "--upgrade-max-failures must be at least 1"};
  }
  if (!o.max_worker_lifetime.empty()) {
    const Result<LifetimeSpec> spec = ParseLifetimeSpec(o.max_worker_lifetime);
    if (!spec.ok()) return Problem{"max_worker_lifetime", spec.error()};
  }
  return std::nullopt;
}

// --metrics-listen, --ready-share and --drop-env-var.
std::optional<Problem> ServiceProblem(const Options& o) {
  if (o.metrics_listen_public && o.metrics_listen.empty()) {
    return Problem{"metrics_listen_public", "--metrics-listen-public needs --metrics-listen ADDR"};
  }
  // Loopback or not depends on metrics_listen_public, which may come after it in a file.
  if (!o.metrics_listen.empty()) {
    if (auto spec = ParseMetricsListen(o.metrics_listen, o.metrics_listen_public); !spec.ok()) {
      return Problem{"metrics_listen", spec.error()};
    }
  }
  if (o.ready_share < 1 || o.ready_share > 100) {
    return Problem{"ready_share", "--ready-share must be a whole percentage from 1 to 100 (got " +
                                      std::to_string(o.ready_share) + ")"};
  }
  if (o.memory_interval < kMinMemoryInterval || !(o.memory_interval <= kMaxSettingSeconds)) {
    return Problem{"memory_interval", "--memory-interval must be a number of seconds from " +
                                          FormatSeconds(kMinMemoryInterval) + " to " +
                                          FormatSeconds(kMaxSettingSeconds) + " (got " +
                                          FormatSeconds(o.memory_interval) + ")"};
  }
  if (o.max_worker_memory.enabled() || o.max_worker_memory.hard > 0) {
    // A carried state is read back without the flag's parser: the same ranges again.
    auto again = ParseMemoryLimit(FormatMemoryLimit(o.max_worker_memory));
    if (!again.ok() || !(again.value() == o.max_worker_memory)) {
      return Problem{"max_worker_memory", again.ok() ? "--max-worker-memory: not a whole number "
                                                       "of bytes, or hard without soft"
                                                     : again.error()};
    }
  }
  for (const std::string& name : o.drop_env_vars) {
    if (name.empty() || name.find('=') != std::string::npos) {
      return Problem{"drop_env_var", "--drop-env-var '" + name + "' is not a variable name"};
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<Problem> FindProblem(const Options& o) {
  // In this order: the first problem found is the one reported.
  for (auto* check : {PoolProblem, TimingProblem, CommandProblem, UpgradeProblem, ServiceProblem}) {
    if (auto p = check(o)) return p;
  }
  return std::nullopt;
}

Status Validate(const Options& o) {
  if (auto p = FindProblem(o)) return Status::Error(p->message);
  return Status::Ok();
}

}  // namespace einhorn::core
