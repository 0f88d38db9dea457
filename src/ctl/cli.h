// einhornctl's command line (CLI11) and where it finds the master's socket. Pure: the
// environment comes in as a map.
//
// Exit codes: 0 ok; 1 the master refused (a reply with `error: true`), an upgrade or a reload
// failed, or what `wait` waits for cannot come; 2 usage; 3 cannot connect, or the master
// stopped answering (for `upgrade --wait`: before the upgrade's final message); 4 a wait's
// deadline (--wait-timeout) passed before its outcome was known.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/types.h"

namespace einhorn::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;
inline constexpr int kExitTimeout = 4;

// A parsed command line. `command` is the subcommand as typed ("status", "log-level", ...);
// empty means the interactive shell.
struct Invocation {
  std::string command;
  std::string socket_path;  // -d
  std::string name;         // -c
  bool json = false;
  double timeout = 30;       // seconds to wait for each reply (--timeout before the subcommand)
  int count = 1;             // inc/dec N
  int workers = 0;           // set N
  bool wait = false;         // set --wait, upgrade --wait
  // --wait-timeout (one name in every command that waits; `set --timeout` and `wait
  // --timeout` are hidden aliases): seconds for the whole wait, 0 = no limit.
  double wait_timeout = 60;  // set --wait, wait, reload
  bool fleet = false;        // upgrade --fleet
  std::string level;         // log-level
  std::string signal;        // signal SIG, die [SIG] ("" = none given)
  core::Pid pid = 0;         // ack [PID] (0 = the parent process), recycle PID
  bool all = false;          // recycle --all
  std::string verb;          // raw VERB
  std::vector<std::string> args;  // raw ARGS...
  // upgrade --wait --wait-timeout: seconds for the whole wait (0 = no limit). Not --timeout,
  // which only bounds the first reply here: the master bounds an upgrade itself and always
  // ends it with a message, which may take much longer than one reply.
  double upgrade_wait_timeout = 3600;
  bool no_wait = false;        // reload --no-wait: Einhorn's reply only, as einhornsh
  std::string condition;       // wait ready|drained|upgraded
  // events: only those after this sequence number; --follow keeps asking every
  // follow_interval seconds until interrupted or the master goes away.
  std::uint64_t since = 0;
  bool follow = false;
  double follow_interval = 0.5;
};

// Either something to run, or the end: --help and --version (exit 0, text in `out`) and usage
// errors (exit 2, text in `err`).
struct ParsedCommandLine {
  bool run = false;
  Invocation invocation;
  int exit_code = kExitOk;
  std::string out;
  std::string err;
};

// `argv` includes argv[0].
ParsedCommandLine ParseCommandLine(const std::vector<std::string>& argv);

using Env = std::map<std::string, std::string>;

// Where to talk to the master.
struct Target {
  std::string path;
  // `ack` only, with EINHORN_SOCK_FD set and neither -d nor -c: write the ack on this inherited
  // fd (einhorn -g) instead of connecting to `path`.
  std::optional<int> fd;
};

// -d PATH; else -c NAME: $TMPDIR/einhorn-NAME.sock; else $EINHORN_SOCK_PATH (we are run by a
// worker); else $TMPDIR/einhorn.sock. An unset or empty TMPDIR is /tmp; trailing slashes go.
// Error: EINHORN_SOCK_FD is needed and is not a number.
core::Result<Target> ResolveTarget(const Invocation& invocation, const Env& env);

}  // namespace einhorn::ctl
