// Every setting of the master, its default and its validation. Filled from the command line by
// ParseFlags (flags.h); later also from the YAML config file. Pure: the environment is passed in.
#pragma once

#include <array>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bind_spec.h"
#include "core/memory_limit.h"
#include "core/status.h"
#include "core/types.h"

namespace einhorn::core {

struct AckMode {
  // kNotify: READY=1 on the worker's own NOTIFY_SOCKET (systemd's protocol); a worker:ack
  // counts too.
  enum class Kind { kTimer, kManual, kNotify };
  Kind kind = Kind::kTimer;
  double timer_seconds = 1.0;  // kTimer: a worker alive this long counts as ready

  bool operator==(const AckMode&) const = default;
};
Result<AckMode> ParseAckMode(const std::string& text);

// --nice MASTER[:WORKER[:RENICE_CMD]]. As in Einhorn, an omitted WORKER means the workers
// inherit the master's niceness. RENICE_CMD is accepted for compatibility and unused: we call
// setpriority(2) ourselves.
struct NiceSpec {
  std::optional<int> master;
  std::optional<int> worker;
  std::string renice_cmd;

  bool operator==(const NiceSpec&) const = default;
};
Result<NiceSpec> ParseNiceSpec(const std::string& text);

// --log-format: the master's log lines as text (journald priority prefixes when stderr is the
// journal) or as JSON lines with stable field names (master/logging.h).
enum class LogFormat { kText, kJson };
Result<LogFormat> ParseLogFormat(const std::string& text);  // "text", "json"
const char* LogFormatName(LogFormat format);

// --worker-output: where the workers' stdout and stderr go. kInherit: straight to the master's
// own stdout and stderr, as Einhorn; kPrefix and kJson: through a pipe per stream that the
// master reads, relaying whole lines tagged with pid, slot, generation and stream, as text
// lines in the master's format or as JSON lines (core/worker_output.h).
enum class WorkerOutput { kInherit, kPrefix, kJson };
Result<WorkerOutput> ParseWorkerOutput(const std::string& text);  // "inherit", "prefix", "json"
const char* WorkerOutputName(WorkerOutput mode);

struct Options {
  int number = 1;
  std::vector<BindSpec> binds;
  std::string command_name;  // -c
  std::string socket_path;   // -d; default $TMPDIR/einhorn[-NAME].sock
  std::string pidfile;       // -e; default $TMPDIR/einhorn[-NAME].pid
  std::string lockfile;      // -f; default $TMPDIR/einhorn[-NAME].lock
  bool kill_children_on_exit = false;  // -k
  int backlog = 100;                   // -l
  AckMode ack_mode;                    // -m
  int verbosity = 1;                   // 0 debug, 1 info, 2 errors only; -v lowers, -q raises
  double seconds = 1.0;                // -s: base of the crash-loop backoff
  std::optional<double> signal_timeout;  // -t: SIGKILL this long after a drain/stop signal
  std::vector<std::string> drop_env_vars;
  NiceSpec nice;
  bool command_socket_as_fd = false;  // -g: each worker gets its own channel in EINHORN_SOCK_FD
  // Peers allowed on the command socket besides root and the master's own uid.
  std::vector<std::string> control_allow_uids;  // names or numbers
  std::vector<std::string> control_allow_gids;
  std::vector<std::string> command;  // worker argv, never empty after validation
  // --reexec-as CMDLINE, shell-split (core/shell_words.h): what a reload execs instead of this
  // binary, as Einhorn (`env FOO=bar /usr/local/bin/einhorn-cpp`). Empty: re-exec ourselves.
  std::vector<std::string> reexec_as;
  // --subreaper: PR_SET_CHILD_SUBREAPER, so orphans of the workers' subtrees are reaped here
  // (implied when the master is PID 1).
  bool subreaper = false;
  // -p/--preload PATH: Einhorn's Ruby preload, run by a zygote (lib/ruby/einhorn-preload.rb,
  // man einhorn-zygote.7): the worker command is started once per generation as
  // `ruby einhorn-preload.rb ... PATH -- COMMAND` (core/preload.h), which loads PATH and forks
  // the workers. Empty: no Ruby preload.
  std::string preload;
  bool gc_before_fork = false;  // --gc-before-fork: GC and compact after the preload (-p only)
  // --worker-watchdog SECS: WATCHDOG_USEC in each worker; a ready worker that sends no
  // WATCHDOG=1 on its NOTIFY_SOCKET for that long is hung: SIGABRT, SIGKILL, respawn.
  std::optional<double> worker_watchdog;
  // --max-worker-lifetime SECS[,jitter=PCT] (core/recycle_spec.h): each worker is recycled
  // after about that long. Empty: no limit.
  std::string max_worker_lifetime;
  LogFormat log_format = LogFormat::kText;  // --log-format
  // --metrics-listen ADDR: GET /metrics over HTTP there; loopback HOST:PORT or unix:/PATH only
  // (core/metrics.h ParseMetricsListen). Empty: no endpoint (`einhornctl metrics` still works).
  std::string metrics_listen;
  // --metrics-listen-public: metrics_listen may be any address (0.0.0.0:9100), not only
  // loopback. The endpoint stays unauthenticated: the operator's explicit choice.
  bool metrics_listen_public = false;
  // --ready-share PCT (1..100): GET /readyz answers 200 once this share of the target workers
  // is ready (core/readiness.h).
  int ready_share = 100;
  // --worker-output; unset: inherit, or json under --log-format json (EffectiveWorkerOutput).
  std::optional<WorkerOutput> worker_output;
  // --worker-log-dir DIR (absolute): each slot's lines also go to DIR/slot-N.log, reopened on
  // SIGUSR1. Empty: no files.
  std::string worker_log_dir;
  // --zygote: each generation's command runs once as a zygote that loads the application and
  // forks the workers (man einhorn-zygote.7, core/zygote.h); -g's channel travels with each
  // spawn request. -p PATH implies it (core/preload.h ZygoteMode).
  bool zygote = false;

  // Upgrades (see core/upgrade.h). Unset max_unacked means the number of CPUs, as Einhorn.
  std::optional<int> max_unacked;             // --max-unacked: unready new workers at a time
  std::optional<int> max_upgrade_additional;  // --max-upgrade-additional: workers beyond -n
  double ack_timeout = 60;    // --ack-timeout: a new worker not ready by then fails the upgrade
  double upgrade_timeout = 0;  // --upgrade-timeout: the whole upgrade; 0 = no limit
  int upgrade_max_failures = 3;  // --upgrade-max-failures: new-worker deaths before ready
  bool canary = true;            // --no-canary turns it off
  Signal drain_signal = Signal::kUsr2;  // --drain-signal

  // Memory (core/memory_limit.h): --max-worker-memory SIZE[,hard=SIZE] (off by default),
  // sampled every --memory-interval seconds as --memory-measure (rss or pss).
  MemoryLimit max_worker_memory;
  double memory_interval = 5;
  MemoryMeasure memory_measure = MemoryMeasure::kRss;

  bool operator==(const Options&) const = default;
};

// The log levels by name, indexed by verbosity (0 debug, 1 info, 2 errors only, as Einhorn's
// -v/-q steps): the config file's log_level and einhornctl's log-level both read this list.
inline constexpr std::array<const char*, 3> kLogLevelNames = {"debug", "info", "error"};

// sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
inline constexpr size_t kMaxSocketPath = 107;

// "NAME=VALUE" entries (as in environ) as a map; an entry without '=' is left out, and the
// first of two entries with the same name wins, as getenv(3) finds it.
std::map<std::string, std::string> EnvMap(const std::vector<std::string>& env);

// $TMPDIR/einhorn[-NAME]EXTENSION, the one place the default paths are made (the master's
// -d/-e/-f and einhornctl's socket): $TMPDIR if set and non-empty, else /tmp (Ruby's
// Dir.tmpdir), without its trailing slashes; TMPDIR=/ gives "/einhorn.sock".
std::string DefaultPath(const std::map<std::string, std::string>& env,
                        const std::string& command_name, std::string_view extension);

// Fills the default socket/pid/lock paths (DefaultPath) from TMPDIR and -c.
void ApplyDefaultPaths(Options* o, const std::map<std::string, std::string>& env);

// A setting out of range: the config-file key it belongs to (core/config.h) and one error
// line naming the flag.
struct Problem {
  std::string key;
  std::string message;
};
// Every check of the ranges, duration settings included: each of them (-s, -t, -m SECS,
// --ack-timeout, --upgrade-timeout, --worker-watchdog) must be a finite number of seconds from
// 0 (above 0 for -s and --worker-watchdog) to kMaxSettingSeconds (core/types.h). The flags,
// the config file and a reload's carried state all pass through here.
std::optional<Problem> FindProblem(const Options& o);

// When the ack timeout was not given: a timer ack (-m SECS) at least as long as it moves it
// to the timer plus a minute, so that an Einhorn command line with a long timer ack (-m 90)
// keeps working; to no limit (0) where that minute would pass kMaxSettingSeconds.
void FitAckTimeout(Options* o);

// What --worker-output means with --log-format: unset is inherit, or json when the master's
// log is json.
WorkerOutput EffectiveWorkerOutput(const Options& o);

// Checks the ranges the flag parser cannot: FindProblem's message.
Status Validate(const Options& o);

}  // namespace einhorn::core
