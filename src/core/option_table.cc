// The table of settings; option_table.h says why it is one table and how an entry reads.
#include "core/option_table.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <string>

#include "core/shell_words.h"

namespace einhorn::core {
namespace {

// -b: each value appends one spec (the flag's values replace the file's list as a whole).
void ReadBinds(const ConfigValue& v, Options* o) {
  o->binds.clear();
  const std::vector<std::string> specs = v.Strings();
  for (size_t i = 0; i < specs.size(); ++i) {
    auto spec = ParseBindSpec(specs[i]);
    if (!spec.ok()) (v.IsSequence() ? v.Item(i) : v).Fail(spec.error());
    o->binds.push_back(std::move(spec).value());
  }
}
YAML::Node ShowBinds(const Options& o) {
  std::vector<std::string> specs;
  for (const BindSpec& b : o.binds) specs.push_back(b.text);
  return ConfigList(specs);
}
Status BindFlag(const std::string& text, Options* o) {
  auto spec = ParseBindSpec(text);
  if (!spec.ok()) return Status::Error(spec.error());
  o->binds.push_back(std::move(spec).value());
  return Status::Ok();
}

void ReadAckMode(const ConfigValue& v, Options* o) {
  auto mode = ParseAckMode(v.Scalar("a number of seconds, manual or notify"));
  if (!mode.ok()) v.Fail(mode.error());
  o->ack_mode = mode.value();
}
YAML::Node ShowAckMode(const Options& o) {
  switch (o.ack_mode.kind) {
    case AckMode::Kind::kManual:
      return YAML::Node("manual");
    case AckMode::Kind::kNotify:
      return YAML::Node("notify");
    case AckMode::Kind::kTimer:
      break;
  }
  return ConfigNumber(o.ack_mode.timer_seconds);
}
// An empty -m, --nice or --drain-signal leaves the setting as it was (as ParseFlags always did).
Status AckModeFlag(const std::string& text, Options* o) {
  if (text.empty()) return Status::Ok();
  auto mode = ParseAckMode(text);
  if (!mode.ok()) return Status::Error(mode.error());
  o->ack_mode = mode.value();
  return Status::Ok();
}

void ReadLogLevel(const ConfigValue& v, Options* o) {
  const std::string& s = v.Scalar("debug, info or error");
  for (int i = 0; i < 3; ++i) {
    if (s == kLogLevelNames[i]) {
      o->verbosity = i;
      return;
    }
  }
  v.Fail("expected debug, info or error, got " + ConfigShown(s));
}
YAML::Node ShowLogLevel(const Options& o) {
  return YAML::Node(kLogLevelNames[std::clamp(o.verbosity, 0, 2)]);
}

void ReadNice(const ConfigValue& v, Options* o) {
  o->nice = NiceSpec{};
  if (v.IsNull()) return;
  auto spec = ParseNiceSpec(v.Scalar("MASTER[:WORKER[:RENICE_CMD]]"));
  if (!spec.ok()) v.Fail(spec.error());
  o->nice = spec.value();
}
YAML::Node ShowNice(const Options& o) {
  if (!o.nice.master) return ConfigNull();
  std::string s = std::to_string(*o.nice.master);
  // Appended piece by piece: gcc 12 warns (-Wrestrict, a false positive) on ":" + string.
  if (o.nice.worker) s.append(":").append(std::to_string(*o.nice.worker));
  if (o.nice.worker && !o.nice.renice_cmd.empty()) s.append(":").append(o.nice.renice_cmd);
  return YAML::Node(s);
}
Status NiceFlag(const std::string& text, Options* o) {
  if (text.empty()) return Status::Ok();
  auto spec = ParseNiceSpec(text);
  if (!spec.ok()) return Status::Error(spec.error());
  o->nice = spec.value();
  return Status::Ok();
}

void ReadDrainSignal(const ConfigValue& v, Options* o) {
  const std::string& s = v.Scalar("a signal name");
  if (!ParseSignalName(s, &o->drain_signal)) v.Fail("unknown signal " + ConfigShown(s));
}
YAML::Node ShowDrainSignal(const Options& o) {
  return YAML::Node(std::string(SignalName(o.drain_signal)).substr(3));
}
Status DrainSignalFlag(const std::string& text, Options* o) {
  if (!text.empty() && !ParseSignalName(text, &o->drain_signal)) {
    return Status::Error("--drain-signal: unknown signal '" + text + "'");
  }
  return Status::Ok();
}

void ReadLogFormat(const ConfigValue& v, Options* o) {
  auto format = ParseLogFormat(v.Scalar("text or json"));
  if (!format.ok()) v.Fail(format.error());
  o->log_format = format.value();
}
YAML::Node ShowLogFormat(const Options& o) { return YAML::Node(LogFormatName(o.log_format)); }
Status LogFormatFlag(const std::string& text, Options* o) {
  auto format = ParseLogFormat(text);
  if (!format.ok()) return Status::Error(format.error());
  o->log_format = format.value();
  return Status::Ok();
}

// The address is checked by FindProblem, once every key and flag is in: whether it must be
// loopback depends on metrics_listen_public, which may come after it.
void ReadMetricsListen(const ConfigValue& v, Options* o) {
  o->metrics_listen.clear();
  if (!v.IsNull()) o->metrics_listen = v.Scalar("an address");
}
YAML::Node ShowMetricsListen(const Options& o) {
  return o.metrics_listen.empty() ? ConfigNull() : YAML::Node(o.metrics_listen);
}

void ReadWorkerOutput(const ConfigValue& v, Options* o) {
  o->worker_output.reset();
  if (v.IsNull()) return;
  auto mode = ParseWorkerOutput(v.Scalar("inherit, prefix or json"));
  if (!mode.ok()) v.Fail(mode.error());
  o->worker_output = mode.value();
}
YAML::Node ShowWorkerOutput(const Options& o) {
  return o.worker_output ? YAML::Node(WorkerOutputName(*o.worker_output)) : ConfigNull();
}
Status WorkerOutputFlag(const std::string& text, Options* o) {
  auto mode = ParseWorkerOutput(text);
  if (!mode.ok()) return Status::Error(mode.error());
  o->worker_output = mode.value();
  return Status::Ok();
}

void ReadWorkerLogDir(const ConfigValue& v, Options* o) {
  o->worker_log_dir.clear();
  if (v.IsNull()) return;
  o->worker_log_dir = v.Scalar("an absolute directory path");
  if (o->worker_log_dir.empty() || o->worker_log_dir.front() != '/') {
    v.Fail("expected an absolute directory path, got " + ConfigShown(o->worker_log_dir));
  }
}
YAML::Node ShowWorkerLogDir(const Options& o) {
  return o.worker_log_dir.empty() ? ConfigNull() : YAML::Node(o.worker_log_dir);
}

void ReadCommand(const ConfigValue& v, Options* o) { o->command = v.Words(); }

void ReadReexecAs(const ConfigValue& v, Options* o) {
  o->reexec_as.clear();
  if (!v.IsNull()) o->reexec_as = v.Words();
}
YAML::Node ShowReexecAs(const Options& o) {
  return o.reexec_as.empty() ? ConfigNull() : ConfigList(o.reexec_as);
}
Status ReexecAsFlag(const std::string& text, Options* o) {
  auto words = ShellSplit(text);
  if (!words.ok()) return Status::Error("--reexec-as: " + words.error());
  if (words.value().empty()) {
    return Status::Error("--reexec-as needs a command line (got an empty one)");
  }
  o->reexec_as = std::move(words).value();
  return Status::Ok();
}

void ReadMemoryLimit(const ConfigValue& v, Options* o) {
  o->max_worker_memory = MemoryLimit{};
  if (v.IsNull()) return;
  // A bare number of bytes is a plain YAML integer; a size with a unit is a string.
  auto limit = ParseMemoryLimit(v.Scalar("SIZE[,hard=SIZE]"));
  if (!limit.ok()) v.Fail(limit.error());
  o->max_worker_memory = limit.value();
}
YAML::Node ShowMemoryLimit(const Options& o) {
  if (!o.max_worker_memory.enabled()) return ConfigNull();
  return YAML::Node(FormatMemoryLimit(o.max_worker_memory));
}
Status MemoryLimitFlag(const std::string& text, Options* o) {
  auto limit = ParseMemoryLimit(text);
  if (!limit.ok()) return Status::Error(limit.error());
  o->max_worker_memory = limit.value();
  return Status::Ok();
}

void ReadMemoryMeasure(const ConfigValue& v, Options* o) {
  auto m = ParseMemoryMeasure(v.Scalar("rss or pss"));
  if (!m.ok()) v.Fail(m.error());
  o->memory_measure = m.value();
}
YAML::Node ShowMemoryMeasure(const Options& o) {
  return YAML::Node(MemoryMeasureName(o.memory_measure));
}
Status MemoryMeasureFlag(const std::string& text, Options* o) {
  auto m = ParseMemoryMeasure(text);
  if (!m.ok()) return Status::Error(m.error());
  o->memory_measure = m.value();
  return Status::Ok();
}

// Issue 19 names the generic zygote `--preload` (config `preload: true`), Einhorn names its Ruby
// preload `-p, --preload PATH`. Both hold: with a path it is Einhorn's; bare (Einhorn would take
// the next flag for the path, and fail) or `true`, it is --zygote.
void ReadPreload(const ConfigValue& v, Options* o) {
  const std::string& text = v.Scalar("a path, or true for the zygote of --zygote");
  const bool plain = v.node().Tag() != "!";  // a quoted 'true' is a file's name
  if (plain && (text == "true" || text == "false")) {
    o->preload.clear();
    if (text == "true") o->zygote = true;
    return;
  }
  o->preload = text;  // empty: none, as Einhorn's failed require of "" ran the workers exec'd
}
// A path named true or false is shown as ./true, which reads back as that path.
YAML::Node ShowPreload(const Options& o) {
  return YAML::Node(o.preload == "true" || o.preload == "false" ? "./" + o.preload : o.preload);
}
Status PreloadFlag(const std::string& text, Options* o) {
  if (text == kBareFlag) {
    o->zygote = true;
    return Status::Ok();
  }
  o->preload = text;
  return Status::Ok();
}

}  // namespace

// The entries, in the order of --help and --check-config; state_pos is the order of the
// re-exec state, frozen by older binaries and fixtures (a new setting takes the next number).
const std::vector<OptionDef>& OptionTable() {
  static const std::vector<OptionDef> table = {
      {.key = "command",
       .field = &Options::command,
       .live = true,
       .state_pos = 17,
       .read = ReadCommand},
      {.key = "number",
       .field = &Options::number,
       .live = true,
       .flag = {"-n,--number", "Number of workers to run"},
       .state_pos = 0},
      {.key = "bind",
       .field = &Options::binds,
       .flag = {"-b,--bind",
                "Listen on HOST:PORT[,FLAG...], [IPV6]:PORT or unix:/PATH; flags r, n, reuseport"},
       .shown_default = "none",
       .state_pos = 1,
       .state_key = "binds",
       .read = ReadBinds,
       .show = ShowBinds,
       .from_flag = BindFlag},
      {.key = "backlog",
       .field = &Options::backlog,
       .flag = {"-l,--backlog", "listen() backlog for -b sockets"},
       .state_pos = 7},
      {.key = "ack_mode",
       .field = &Options::ack_mode,
       .live = true,
       .flag = {"-m,--ack-mode",
                "SECONDS alive before a worker is ready, manual (worker:ack), or notify (READY=1 "
                "on its NOTIFY_SOCKET)"},
       .state_pos = 8,
       .read = ReadAckMode,
       .show = ShowAckMode,
       .from_flag = AckModeFlag},
      {.key = "command_name",
       .field = &Options::command_name,
       .flag = {"-c,--command-name", "Name used in default file names"},
       .shown_default = "none",
       .state_pos = 2},
      {.key = "socket_path",
       .field = &Options::socket_path,
       .flag = {"-d,--socket-path", "Command socket"},
       .shown_default = "$TMPDIR/einhorn[-NAME].sock",
       .state_pos = 3},
      {.key = "pidfile",
       .field = &Options::pidfile,
       .flag = {"-e,--pidfile", "Pidfile"},
       .shown_default = "$TMPDIR/einhorn[-NAME].pid",
       .state_pos = 4},
      {.key = "lockfile",
       .field = &Options::lockfile,
       .flag = {"-f,--lockfile", "Lockfile"},
       .shown_default = "$TMPDIR/einhorn[-NAME].lock",
       .state_pos = 5},
      {.key = "kill_children_on_exit",
       .field = &Options::kill_children_on_exit,
       .live = true,
       .flag = {"-k,--kill-children-on-exit", "Workers get SIGUSR2 when the master dies"},
       .state_pos = 6},
      // Its flags are -q/-v, steps relative to the file's level (flags.cc).
      {.key = "log_level",
       .field = &Options::verbosity,
       .live = true,
       .state_pos = 9,
       .state_key = "verbosity",
       .read = ReadLogLevel,
       .show = ShowLogLevel},
      {.key = "seconds",
       .field = &Options::seconds,
       .live = true,
       .flag = {"-s,--seconds", "Base of the crash-loop backoff"},
       .state_pos = 10},
      {.key = "signal_timeout",
       .field = &Options::signal_timeout,
       .live = true,
       .flag = {"-t,--signal-timeout", "SIGKILL workers this many seconds after a stop signal"},
       .shown_default = "never",
       .state_pos = 11},
      {.key = "drop_env_var",
       .field = &Options::drop_env_vars,
       .live = true,
       .flag = {"--drop-env-var", "Drop VAR from the environment on re-exec"},
       .shown_default = "none",
       .state_pos = 12,
       .state_key = "drop_env_vars"},
      {.key = "nice",
       .field = &Options::nice,
       .live = true,
       .flag = {"--nice", "MASTER[:WORKER[:RENICE_CMD]] niceness"},
       .shown_default = "unchanged",
       .state_pos = 13,
       .read = ReadNice,
       .show = ShowNice,
       .from_flag = NiceFlag},
      {.key = "command_socket_as_fd",
       .field = &Options::command_socket_as_fd,
       .flag = {"-g,--command-socket-as-fd",
                "Give each worker its own command-socket connection in EINHORN_SOCK_FD"},
       .state_pos = 14},
      {.key = "control_allow_uid",
       .field = &Options::control_allow_uids,
       .live = true,
       .flag = {"--control-allow-uid",
                "Also allow this user (name or uid) on the command socket (repeatable)"},
       .shown_default = "root and the master's uid",
       .state_pos = 15,
       .state_key = "control_allow_uids"},
      {.key = "control_allow_gid",
       .field = &Options::control_allow_gids,
       .live = true,
       .flag = {"--control-allow-gid",
                "Also allow this group (name or gid) on the command socket (repeatable)"},
       .shown_default = "none",
       .state_pos = 16,
       .state_key = "control_allow_gids"},
      {.key = "max_unacked",
       .field = &Options::max_unacked,
       .live = true,
       .flag = {"--max-unacked", "Upgrades: at most this many new workers not yet ready"},
       .shown_default = "the number of CPUs",
       .state_pos = 21},
      {.key = "max_upgrade_additional",
       .field = &Options::max_upgrade_additional,
       .live = true,
       .flag = {"--max-upgrade-additional",
                "Upgrades: at most -n plus this many workers alive (smooth; 0 acts as 1)"},
       .shown_default = "no limit",
       .state_pos = 22},
      {.key = "ack_timeout",
       .field = &Options::ack_timeout,
       .live = true,
       .flag = {"--ack-timeout",
                "Upgrades: roll back if a new worker is not ready after SECS (0: no limit)"},
       .state_pos = 23},
      {.key = "upgrade_timeout",
       .field = &Options::upgrade_timeout,
       .live = true,
       .flag = {"--upgrade-timeout", "Upgrades: roll back if not done after SECS (0: no limit)"},
       .state_pos = 24},
      {.key = "upgrade_max_failures",
       .field = &Options::upgrade_max_failures,
       .live = true,
       .flag = {"--upgrade-max-failures",
                "Upgrades: roll back after K new workers die before ready"},
       .state_pos = 25},
      {.key = "canary",
       .field = &Options::canary,
       .live = true,
       .flag = {"--no-canary",
                "Upgrades: do not wait for the first new worker before spawning the others"},
       .state_pos = 26},
      {.key = "drain_signal",
       .field = &Options::drain_signal,
       .live = true,
       .flag = {"--drain-signal", "Signal that drains a worker"},
       .state_pos = 27,
       .read = ReadDrainSignal,
       .show = ShowDrainSignal,
       .from_flag = DrainSignalFlag},
      {.key = "subreaper",
       .field = &Options::subreaper,
       .flag = {"--subreaper",
                "Adopt and reap the orphans of the workers' subtrees (PR_SET_CHILD_SUBREAPER; "
                "implied as PID 1)"},
       .state_pos = 19},
      // Live: each generation's zygote is started with the settings of its upgrade.
      {.key = "preload",
       .field = &Options::preload,
       .live = true,
       .flag = {"-p,--preload",
                "Einhorn's Ruby preload: load PATH once (load, or require for .rb) in a zygote and "
                "fork the workers from it, calling einhorn_main (man einhorn-zygote); without "
                "PATH (followed by another flag or --): as --zygote",
                "PATH", /*value_optional=*/true},
       .shown_default = "none",
       .state_pos = 38,
       .state_if_set = true,
       .read = ReadPreload,
       .show = ShowPreload,
       .from_flag = PreloadFlag},
      {.key = "gc_before_fork",
       .field = &Options::gc_before_fork,
       .live = true,
       .flag = {"--gc-before-fork",
                "With -p: run the GC (and GC.compact, or Process.warmup) after requiring PATH, so "
                "that workers share more memory"},
       .state_pos = 39,
       .state_if_set = true},
      // Restart only: the workers already running were not given WATCHDOG_USEC.
      {.key = "worker_watchdog",
       .field = &Options::worker_watchdog,
       .flag = {"--worker-watchdog",
                "A ready worker silent for SECS on its NOTIFY_SOCKET (no WATCHDOG=1) is aborted "
                "and replaced; exports WATCHDOG_USEC",
                "SECS"},
       .shown_default = "off",
       .state_pos = 20},
      // Live: each worker's lifetime is drawn at its spawn, so workers started after a reload
      // take the new one.
      {.key = "max_worker_lifetime",
       .field = &Options::max_worker_lifetime,
       .live = true,
       .flag = {"--max-worker-lifetime",
                "Recycle each worker after SECS (replacement ready first, then drained), minus a "
                "random 0..PCT % (default 10) so a pool started together spreads out",
                "SECS[,jitter=PCT]"},
       .shown_default = "off",
       .state_pos = 34,
       .state_if_set = true},
      {.key = "log_format",
       .field = &Options::log_format,
       .live = true,
       .flag = {"--log-format",
                "The master's log lines: text (journald priorities when stderr is the journal) "
                "or json (one object per line)",
                "text|json"},
       .state_pos = 28,
       .state_if_set = true,
       .read = ReadLogFormat,
       .show = ShowLogFormat,
       .from_flag = LogFormatFlag},
      // Restart only: the endpoint is opened once, at start.
      {.key = "metrics_listen",
       .field = &Options::metrics_listen,
       .flag = {"--metrics-listen",
                "Serve Prometheus metrics (GET /metrics) on 127.0.0.1:PORT, [::1]:PORT or "
                "unix:/PATH; no authentication, so loopback or UNIX socket only (unless "
                "--metrics-listen-public)",
                "ADDR"},
       .shown_default = "off",
       .state_pos = 29,
       .state_if_set = true,
       .read = ReadMetricsListen,
       .show = ShowMetricsListen},
      // Restart only, as metrics_listen.
      {.key = "metrics_listen_public",
       .field = &Options::metrics_listen_public,
       .flag = {"--metrics-listen-public",
                "Let --metrics-listen take any address, not only loopback (e.g. 0.0.0.0:9100 in "
                "a container); the endpoint has no authentication"},
       .state_pos = 30,
       .state_if_set = true},
      // Live: read by each GET /readyz.
      {.key = "ready_share",
       .field = &Options::ready_share,
       .live = true,
       .flag = {"--ready-share",
                "GET /readyz on --metrics-listen answers 200 once PCT % (1..100) of the target "
                "workers are ready",
                "PCT"},
       .state_pos = 33,
       .state_if_set = true},
      // Live: the choice is made per worker at its spawn, so workers started after a reload
      // take the new one.
      {.key = "worker_output",
       .field = &Options::worker_output,
       .live = true,
       .flag = {"--worker-output",
                "Workers' stdout and stderr: inherit (json under --log-format json), prefix "
                "(whole lines tagged with pid, slot, generation and stream) or json",
                "inherit|prefix|json"},
       .shown_default = "inherit",
       .state_pos = 31,
       .state_if_set = true,
       .read = ReadWorkerOutput,
       .show = ShowWorkerOutput,
       .from_flag = WorkerOutputFlag},
      {.key = "worker_log_dir",
       .field = &Options::worker_log_dir,
       .live = true,
       .flag = {"--worker-log-dir",
                "Also write each slot's lines to DIR/slot-N.log (reopened on SIGUSR1, for "
                "logrotate)",
                "DIR"},
       .shown_default = "none",
       .state_pos = 32,
       .state_if_set = true,
       .read = ReadWorkerLogDir,
       .show = ShowWorkerLogDir},
      // Live: the master reads them at each sampling round (a new interval re-arms its timer).
      {.key = "max_worker_memory",
       .field = &Options::max_worker_memory,
       .live = true,
       .flag = {"--max-worker-memory",
                "Recycle a worker whose memory (with its descendants') passes SIZE (50M, 1G, "
                "bytes): a replacement first, then the drain; past hard=SIZE, drain it at once",
                "SIZE[,hard=SIZE]"},
       .shown_default = "none",
       .state_pos = 35,
       .state_if_set = true,
       .read = ReadMemoryLimit,
       .show = ShowMemoryLimit,
       .from_flag = MemoryLimitFlag},
      {.key = "memory_interval",
       .field = &Options::memory_interval,
       .live = true,
       .flag = {"--memory-interval", "How often --max-worker-memory samples every worker, in SECS",
                "SECS"},
       .state_pos = 36,
       .state_if_set = true},
      {.key = "memory_measure",
       .field = &Options::memory_measure,
       .live = true,
       .flag = {"--memory-measure",
                "--max-worker-memory's figure: rss (/proc/PID/statm, cheap; counts pages a "
                "forked child shares twice) or pss (smaps_rollup, shared pages divided, slower)",
                "rss|pss"},
       .shown_default = "rss",
       .state_pos = 37,
       .state_if_set = true,
       .read = ReadMemoryMeasure,
       .show = ShowMemoryMeasure,
       .from_flag = MemoryMeasureFlag},
      // Restart only: a reload keeps the zygotes it carries.
      {.key = "zygote",
       .field = &Options::zygote,
       .flag = {"--zygote",
                "Start the command once per generation as a zygote that loads the application "
                "and forks the workers (its library speaks the protocol in einhorn-zygote(7))"},
       .state_pos = 40,
       .state_if_set = true},
      {.key = "reexec_as",
       .field = &Options::reexec_as,
       .live = true,
       .flag = {"--reexec-as",
                "Reload execs CMDLINE (split as a shell would) instead of this binary", "CMDLINE"},
       .shown_default = "this binary",
       .state_pos = 18,
       .read = ReadReexecAs,
       .show = ShowReexecAs,
       .from_flag = ReexecAsFlag},
  };
  return table;
}

const std::vector<const OptionDef*>& OptionsInStateOrder() {
  static const std::vector<const OptionDef*> ordered = [] {
    std::vector<const OptionDef*> defs;
    for (const OptionDef& d : OptionTable()) defs.push_back(&d);
    std::sort(defs.begin(), defs.end(),
              [](const OptionDef* a, const OptionDef* b) { return a->state_pos < b->state_pos; });
    return defs;
  }();
  return ordered;
}

const OptionDef* FindOption(const std::string& key) {
  for (const OptionDef& d : OptionTable()) {
    if (key == d.key) return &d;
  }
  return nullptr;
}

}  // namespace einhorn::core
