#include "ctl/cli.h"

#include <CLI/CLI.hpp>
#include <cctype>
#include <sstream>

#include "core/options.h"

#ifndef EINHORN_VERSION
#define EINHORN_VERSION "unknown"
#endif

namespace einhorn::ctl {
namespace {

using core::Result;

const char* const kFooter =
    "The socket is -d PATH, else $TMPDIR/einhorn-NAME.sock for -c NAME, else\n"
    "$EINHORN_SOCK_PATH, else $TMPDIR/einhorn.sock. Without a COMMAND and with a terminal\n"
    "on stdin, einhornctl is an interactive shell like einhornsh.\n"
    "Exit codes: 0 ok, 1 refused by the master, upgrade failed or set --wait timed out,\n"
    "2 usage, 3 cannot reach the master or lost it (upgrade --wait: before the end of the\n"
    "upgrade). See einhornctl(1).";

}  // namespace

ParsedCommandLine ParseCommandLine(const std::vector<std::string>& argv) {
  ParsedCommandLine result;
  Invocation& inv = result.invocation;
  CLI::App app{"Controls an einhorn-cpp (or Einhorn) master through its command socket.",
               "einhornctl"};
  app.footer(kFooter);
  app.set_version_flag("--version", std::string("einhornctl ") + EINHORN_VERSION);
  app.require_subcommand(0, 1);
  // Options of the whole program may also follow the subcommand: `einhornctl status --json`.
  app.fallthrough();

  CLI::Option* d =
      app.add_option("-d,--socket-path", inv.socket_path, "The master's command socket");
  CLI::Option* c =
      app.add_option("-c,--command-name", inv.name, "Talk to the master started with -c NAME");
  d->excludes(c);
  app.add_flag("--json", inv.json, "Print JSON instead of text");
  app.add_option("--timeout", inv.timeout, "Seconds to wait for each reply (default 30)")
      ->check(CLI::PositiveNumber);

  const auto sub = [&app](const char* name, const char* help) {
    CLI::App* s = app.add_subcommand(name, help);
    s->fallthrough();
    return s;
  };
  sub("status", "Show the pool: a summary and a table of workers");
  sub("inc", "Add N workers (default 1)")
      ->add_option("N", inv.count, "How many")
      ->check(CLI::PositiveNumber);
  sub("dec", "Remove N workers (default 1), draining them with USR2")
      ->add_option("N", inv.count, "How many")
      ->check(CLI::PositiveNumber);
  CLI::App* set = sub("set", "Set the number of workers to N");
  set->add_option("N", inv.workers, "The new number of workers")->required();
  set->add_flag("--wait", inv.wait, "Wait until N workers are ready and none is booting");
  set->add_option("--timeout", inv.wait_timeout, "Seconds --wait waits (default 60)")
      ->check(CLI::PositiveNumber);
  sub("signal", "Send a signal to every worker")
      ->add_option("SIG", inv.signal, "A signal name: TERM, SIGHUP, usr2...")
      ->required();
  sub("quieter", "Log less (the master's verbosity + 1)");
  sub("louder", "Log more (the master's verbosity - 1)");
  sub("log-level", "Set the master's log level")
      ->add_option("LEVEL", inv.level, "debug, info or error")
      ->required()
      ->check(CLI::IsMember(
          std::vector<std::string>(core::kLogLevelNames.begin(), core::kLogLevelNames.end())));
  sub("die", "Stop the workers (USR2 or SIG) and then the master")
      ->add_option("SIG", inv.signal, "The signal for the workers");
  sub("ack", "Acknowledge a worker as ready (-m manual): run by the worker")
      ->add_option("PID", inv.pid, "The worker's pid (default: the parent process)")
      ->check(CLI::PositiveNumber);
  sub("ehlo", "Say hello and show the master's welcome");
  sub("help", "Show the master's list of commands");
  sub("state", "Show the master's internal state");
  CLI::App* raw = sub("raw", "Send any command with arguments and print every reply");
  raw->add_option("VERB", inv.verb, "The command")->required();
  raw->add_option("ARGS", inv.args, "Its arguments");
  CLI::App* upgrade = sub("upgrade", "Replace the workers with a new generation, a few at a time");
  upgrade->add_flag("--fleet", inv.fleet, "Start all the new workers at once (upgrade_fleet)");
  CLI::Option* upgrade_wait = upgrade->add_flag(
      "--wait", inv.wait, "Print the progress until the upgrade ends; exit 0 only if it succeeded");
  upgrade
      ->add_option("--wait-timeout", inv.upgrade_wait_timeout,
                   "Seconds --wait waits in all (default 3600, 0 = no limit)")
      ->check(CLI::NonNegativeNumber)
      ->needs(upgrade_wait);
  sub("reload", "Re-exec the master in place, keeping the workers");
  CLI::App* events = sub("events", "Show recent lifecycle events: spawns, exits, upgrades, ...");
  events->add_option("--since", inv.since, "Only the events after this sequence number");
  events->add_flag("-f,--follow", inv.follow, "Keep printing new events as they happen");
  events->add_option("--interval", inv.follow_interval, "Seconds between polls of --follow (default 0.5)")
      ->check(CLI::PositiveNumber);
  sub("metrics", "Print the master's metrics (Prometheus text format)");

  std::vector<const char*> cargv;
  cargv.reserve(argv.size());
  for (const std::string& a : argv) cargv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(cargv.size()), cargv.data());
  } catch (const CLI::Success& e) {  // --help, --version
    std::ostringstream out, err;
    result.exit_code = app.exit(e, out, err);
    result.out = out.str();
    result.err = err.str();
    // CLI11 prints the version without a newline.
    if (!result.out.empty() && result.out.back() != '\n') result.out += '\n';
    return result;
  } catch (const CLI::ParseError& e) {
    result.exit_code = kExitUsage;
    result.err = std::string("einhornctl: ") + e.what() + "\nRun 'einhornctl --help' for usage.\n";
    return result;
  }
  const std::vector<CLI::App*> chosen = app.get_subcommands();
  if (!chosen.empty()) inv.command = chosen.front()->get_name();
  result.run = true;
  return result;
}

Result<Target> ResolveTarget(const Invocation& inv, const Env& env) {
  const auto get = [&env](const char* name) {
    const auto it = env.find(name);
    return it == env.end() ? std::string() : it->second;
  };
  Target target;
  if (!inv.socket_path.empty()) {
    target.path = inv.socket_path;
  } else if (!inv.name.empty()) {
    target.path = core::DefaultPath(env, inv.name, ".sock");
  } else if (!get("EINHORN_SOCK_PATH").empty()) {
    target.path = get("EINHORN_SOCK_PATH");
  } else {
    target.path = core::DefaultPath(env, "", ".sock");
  }
  const std::string fd = get("EINHORN_SOCK_FD");
  if (inv.command == "ack" && inv.socket_path.empty() && inv.name.empty() && !fd.empty()) {
    int value = 0;
    for (char ch : fd) {
      if (!std::isdigit(static_cast<unsigned char>(ch)) || value > 100000000) {
        return Result<Target>::Error("EINHORN_SOCK_FD is not a file descriptor number: '" + fd +
                                     "'");
      }
      value = value * 10 + (ch - '0');
    }
    target.fd = value;
  }
  return target;
}

}  // namespace einhorn::ctl
