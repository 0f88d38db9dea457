#include "ctl/cli.h"

#include <CLI/CLI.hpp>
#include <cctype>
#include <optional>
#include <sstream>

#include "core/text.h"
#include "core/options.h"
#include "ctl/commands.h"

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
    "Exit codes: 0 ok, 1 refused by the master, an upgrade or reload failed, or what wait\n"
    "waits for cannot come, 2 usage, 3 cannot reach the master or lost it (upgrade --wait:\n"
    "before the end of the upgrade), 4 a wait's --wait-timeout passed. See einhornctl(1).";

// The word CLI11 could not place, as one line with the nearest command or option when one is
// near: `stats` -> "unknown command: stats (did you mean status?)". nullopt when the error is
// about something else (a subcommand's extra argument, say), which CLI11's text then says.
std::optional<std::string> UnknownWord(CLI::App& app) {
  const std::vector<CLI::App*> chosen = app.get_subcommands();
  const std::vector<std::string> rest = app.remaining();
  if (rest.empty()) return std::nullopt;
  // After a subcommand, a word is that command's extra argument: CLI11's text says so.
  if (!chosen.empty() && !rest.front().starts_with("-")) return std::nullopt;
  // Terminal junk must not reach the terminal as is.
  std::string word = rest.front().substr(0, 64);
  for (char& ch : word) {
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
  }
  std::vector<std::string> names;
  const bool flag = word.starts_with("-");
  if (flag) {
    for (const CLI::App* in : {&app, chosen.empty() ? nullptr : chosen.front()}) {
      if (in == nullptr) continue;
      for (const CLI::Option* o : in->get_options()) {
        for (const std::string& n : o->get_lnames()) names.push_back("--" + n);
      }
    }
  } else {
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      names.push_back(sub->get_name());
    }
  }
  const std::string near = core::text::NearestWord(word, names);
  return std::string(flag ? "unknown option: " : "unknown command: ") + word +
         (near.empty() ? std::string() : " (did you mean " + near + "?)");
}

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
      ->check(SecondsValidator(false));

  AddCommands(app, inv);

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
    std::optional<std::string> unknown;
    if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) unknown = UnknownWord(app);
    result.err =
        "einhornctl: " + unknown.value_or(e.what()) + "\nRun 'einhornctl --help' for usage.\n";
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
