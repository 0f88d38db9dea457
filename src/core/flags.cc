#include "core/flags.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <set>

#include "core/metrics.h"
#include "core/shell_words.h"

namespace einhorn::core {

const char* const kVersion = EINHORN_VERSION;

namespace {

// Einhorn's short usage, for a command line without a worker command; --help's text follows.
constexpr const char* kShortUsage =
    "## Usage\n"
    "\n"
    "einhorn-cpp is a language-independent shared socket manager, a drop-in replacement\n"
    "for Einhorn. Run `einhorn-cpp -h` to see detailed usage. At a high level, usage\n"
    "looks like the following:\n"
    "\n"
    "    einhorn-cpp [options] [--] program [args...]\n"
    "\n"
    "einhorn-cpp will open one or more shared sockets and run multiple copies of your\n"
    "process. You can seamlessly reload your code, dynamically reconfigure it, and more.\n"
    "\n"
    "### Options\n"
    "\n";

// err is one line whatever was typed: messages echo the user's words, which may hold a newline
// or other control bytes; those are written as escapes (\n, \r, \t, \xNN).
FlagsOutcome UsageError(const std::string& message) {
  FlagsOutcome out;
  out.kind = FlagsOutcome::Kind::kExit;
  out.exit_code = kExitUsage;
  out.err = "einhorn-cpp: ";
  for (const char c : message) {
    const auto b = static_cast<unsigned char>(c);
    if (c == '\n') {
      out.err += "\\n";
    } else if (c == '\r') {
      out.err += "\\r";
    } else if (c == '\t') {
      out.err += "\\t";
    } else if (b < 0x20 || b == 0x7f) {
      out.err += "\\x";
      out.err += "0123456789abcdef"[b >> 4];
      out.err += "0123456789abcdef"[b & 0xf];
    } else {
      out.err += c;
    }
  }
  return out;
}

// Options left out of --help. CLI11 2.1 hides an option by giving it the group "", but then
// also drops its name from its own error messages (": 1 required TEXT missing"); a named
// group that the help formatter skips keeps them.
constexpr const char* kHiddenGroup = "Hidden";
class HidingFormatter : public CLI::Formatter {
 public:
  std::string make_group(std::string group, bool is_positional,
                         std::vector<const CLI::Option*> opts) const override {
    if (group == kHiddenGroup) return "";
    return CLI::Formatter::make_group(std::move(group), is_positional, std::move(opts));
  }
};

// "-n,--number" as "-n/--number", for messages.
std::string DisplayName(const CLI::Option& opt) {
  std::string name = opt.get_name(false, true);
  std::replace(name.begin(), name.end(), ',', '/');
  return name;
}

// An fd number as the old master wrote it: decimal digits only, within int.
bool ParseFd(const std::string& text, int* fd) {
  if (text.empty() || text.size() > 9) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  *fd = std::stoi(text);
  return true;
}

}  // namespace

FlagsOutcome ParseFlags(const std::vector<std::string>& argv,
                        const std::map<std::string, std::string>& env,
                        const ConfigSource* config) {
  // The file's settings first: CLI11 writes only what the command line gives.
  Options o;
  std::set<std::string> from_file;
  if (config) {
    auto loaded = LoadConfig(*config);
    if (!loaded.ok()) return UsageError(loaded.error());
    o = std::move(loaded.value().options);
    from_file = std::move(loaded.value().keys);
  }
  CLI::App app{"einhorn-cpp: a pre-forking process supervisor, compatible with Einhorn",
               "einhorn-cpp"};
  app.footer("Usage: einhorn-cpp [options] [--] COMMAND [ARGS...]\nOption parsing stops at the first non-option word: it and everything after it are the worker command.");
  // Einhorn's rule: option parsing stops at the first positional word, which with everything
  // after it is the worker's command line.
  app.prefix_command();
  app.formatter(std::make_shared<HidingFormatter>());

  std::vector<std::string> binds;
  std::string ack_mode;
  std::string nice;
  double signal_timeout = -1;
  int quiet = 0;
  int verbose = 0;
  bool version = false;
  std::string unsupported_value;
  std::string drain_signal;
  bool no_canary = false;
  int max_unacked = 0;
  int max_upgrade_additional = 0;
  std::string reexec_as;
  std::string state_fd;
  std::string config_path;
  std::string check_config_path;

  // The settings' flags, in --help's order; their names and help are the config keys'
  // (config.cc), so a new setting is one entry there plus its parsing here.
  const auto option = [&app](const char* key, auto& into) {
    const FlagSpec f = FlagOf(key);
    CLI::Option* opt = app.add_option(f.names, into, f.help);
    if (f.type_name) opt->type_name(f.type_name);
    return opt;
  };
  const auto flag = [&app](const char* key, auto& into) {
    const FlagSpec f = FlagOf(key);
    return app.add_flag(f.names, into, f.help);
  };
  option("number", o.number);
  CLI::Option* bind_opt = option("bind", binds)->allow_extra_args(false);
  option("command_name", o.command_name);
  option("pidfile", o.pidfile);
  option("lockfile", o.lockfile);
  flag("kill_children_on_exit", o.kill_children_on_exit);
  option("backlog", o.backlog);
  option("ack_mode", ack_mode);
  app.add_flag("-q,--quiet", quiet, "Log less (repeatable)");
  app.add_flag("-v,--verbose", verbose, "Log more (repeatable)");
  option("seconds", o.seconds);
  CLI::Option* signal_timeout_opt = option("signal_timeout", signal_timeout);
  option("drop_env_var", o.drop_env_vars)->allow_extra_args(false);
  option("nice", nice);
  app.add_flag("--version", version, "Print the version and exit");
  option("socket_path", o.socket_path);
  flag("command_socket_as_fd", o.command_socket_as_fd);
  option("control_allow_uid", o.control_allow_uids)->allow_extra_args(false);
  option("control_allow_gid", o.control_allow_gids)->allow_extra_args(false);
  CLI::Option* max_unacked_opt = option("max_unacked", max_unacked);
  CLI::Option* max_upgrade_additional_opt =
      option("max_upgrade_additional", max_upgrade_additional);
  CLI::Option* ack_timeout_opt = option("ack_timeout", o.ack_timeout);
  option("upgrade_timeout", o.upgrade_timeout);
  option("upgrade_max_failures", o.upgrade_max_failures);
  flag("canary", no_canary);
  option("drain_signal", drain_signal);
  flag("subreaper", o.subreaper);
  option("worker_watchdog", o.worker_watchdog);
  CLI::Option* reexec_as_opt = option("reexec_as", reexec_as);
  std::string log_format;
  CLI::Option* log_format_opt = option("log_format", log_format);
  option("metrics_listen", o.metrics_listen);
  std::string worker_output;
  CLI::Option* worker_output_opt = option("worker_output", worker_output);
  option("worker_log_dir", o.worker_log_dir);

  CLI::Option* config_opt =
      app.add_option("--config", config_path,
                     "Read settings from this YAML file (man einhorn-cpp.yaml); flags override it")
          ->type_name("FILE");
  CLI::Option* check_config_opt =
      app.add_option("--check-config", check_config_path,
                     "Validate the YAML file (with the other flags) and print the effective "
                     "settings, then exit")
          ->type_name("FILE");

  // The two internal ones, hidden from --help as in Einhorn: reload execs the new image as
  // `--with-state-fd N -- CMD...`, after a pre-flight `--upgrade-check --with-state-fd N --
  // CMD...`. The state at N holds every setting; CMD is only there for ps.
  CLI::Option* with_state_fd = app.add_option("--with-state-fd", state_fd)->group(kHiddenGroup);
  CLI::Option* upgrade_check = app.add_flag("--upgrade-check")->group(kHiddenGroup);

  // Einhorn flags that belong to later work, and Ruby-only ones: parsed so that the error is
  // ours and clear, not CLI11's "unknown option".
  struct Refused {
    const char* names;
    bool takes_value;
    const char* why;
  };
  const Refused refused[] = {
      {"-p,--preload", true, "is Ruby-only (preloading code into the master); run the worker as "
                             "a command instead"},
      {"--gc-before-fork", false, "is Ruby-only"},
  };
  std::vector<std::pair<CLI::Option*, const Refused*>> refused_options;
  for (const Refused& r : refused) {
    CLI::Option* opt = r.takes_value ? app.add_option(r.names, unsupported_value)
                                     : app.add_flag(r.names);
    opt->group(kHiddenGroup);
    refused_options.emplace_back(opt, &r);
  }

  std::vector<const char*> cargv;
  cargv.reserve(argv.size());
  for (const std::string& a : argv) cargv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(cargv.size()), cargv.data());
  } catch (const CLI::CallForHelp&) {
    FlagsOutcome out;
    out.kind = FlagsOutcome::Kind::kExit;
    out.out = app.help();
    return out;
  } catch (const CLI::ParseError& e) {
    return UsageError(std::string(e.what()) + " (see einhorn-cpp --help)");
  }

  if (with_state_fd->count() > 0 || upgrade_check->count() > 0) {
    CLI::Option* internal = upgrade_check->count() > 0 ? upgrade_check : with_state_fd;
    for (const CLI::Option* opt : app.get_options()) {
      if (opt == with_state_fd || opt == upgrade_check || opt->count() == 0) continue;
      return UsageError(DisplayName(*internal) +
                        " is internal (used by reload) and takes no other flag (got " +
                        DisplayName(*opt) + ")");
    }
    FlagsOutcome out;
    out.kind = upgrade_check->count() > 0 ? FlagsOutcome::Kind::kUpgradeCheck
                                          : FlagsOutcome::Kind::kRestore;
    if (with_state_fd->count() > 0 && !ParseFd(state_fd, &out.state_fd)) {
      return UsageError("--with-state-fd: '" + state_fd + "' is not an fd (an integer >= 0)");
    }
    return out;  // the worker command, if any, is ignored: the state holds the real one
  }
  if (version) {
    FlagsOutcome out;
    out.kind = FlagsOutcome::Kind::kExit;
    out.out = std::string("einhorn-cpp ") + kVersion + "\n";
    return out;
  }
  for (const auto& [opt, r] : refused_options) {
    if (opt->count() > 0) return UsageError(DisplayName(*opt) + " " + r->why);
  }
  if (config_opt->count() > 0 && check_config_opt->count() > 0) {
    return UsageError("--config and --check-config name the same file; give one of them");
  }
  const std::string& file = config_opt->count() > 0 ? config_path : check_config_path;
  if (!file.empty() && !config) {
    FlagsOutcome out;
    out.kind = FlagsOutcome::Kind::kNeedConfig;
    out.config_path = file;
    return out;
  }
  if ((config_opt->count() > 0 || check_config_opt->count() > 0) && file.empty()) {
    return UsageError("--config needs a file name (got an empty one)");
  }

  std::vector<std::string> command = app.remaining();
  if (!command.empty() && command.front() == "--") command.erase(command.begin());
  if (!command.empty() && !command.front().empty() && command.front()[0] == '-') {
    return UsageError("unknown option " + command.front() + " (see einhorn-cpp --help)");
  }
  if (!command.empty() || !config) o.command = std::move(command);

  if (bind_opt->count() > 0) o.binds.clear();
  for (const std::string& b : binds) {
    auto spec = ParseBindSpec(b);
    if (!spec.ok()) return UsageError(spec.error());
    o.binds.push_back(std::move(spec).value());
  }
  if (!ack_mode.empty()) {
    auto mode = ParseAckMode(ack_mode);
    if (!mode.ok()) return UsageError(mode.error());
    o.ack_mode = mode.value();
  }
  if (!nice.empty()) {
    auto spec = ParseNiceSpec(nice);
    if (!spec.ok()) return UsageError(spec.error());
    o.nice = spec.value();
  }
  // Its range, as every duration's, is FindProblem's (Validate below).
  if (signal_timeout_opt->count() > 0) o.signal_timeout = signal_timeout;
  o.verbosity = std::clamp(o.verbosity + quiet - verbose, 0, 2);
  if (no_canary) o.canary = false;
  // An Einhorn command line with a long timer ack (-m 90) must keep working: the default
  // ack timeout then leaves the timer a minute of room. Only explicit contradictions are errors.
  if (ack_timeout_opt->count() == 0 && !from_file.contains("ack_timeout")) FitAckTimeout(&o);
  if (max_unacked_opt->count() > 0) o.max_unacked = max_unacked;
  if (max_upgrade_additional_opt->count() > 0) o.max_upgrade_additional = max_upgrade_additional;
  if (reexec_as_opt->count() > 0) {
    auto words = ShellSplit(reexec_as);
    if (!words.ok()) return UsageError("--reexec-as: " + words.error());
    if (words.value().empty()) {
      return UsageError("--reexec-as needs a command line (got an empty one)");
    }
    o.reexec_as = std::move(words).value();
  }
  if (log_format_opt->count() > 0) {
    auto format = ParseLogFormat(log_format);
    if (!format.ok()) return UsageError(format.error());
    o.log_format = format.value();
  }
  if (worker_output_opt->count() > 0) {
    auto mode = ParseWorkerOutput(worker_output);
    if (!mode.ok()) return UsageError(mode.error());
    o.worker_output = mode.value();
  }
  if (!o.metrics_listen.empty()) {
    if (auto spec = ParseMetricsListen(o.metrics_listen); !spec.ok()) {
      return UsageError(spec.error());
    }
  }
  if (!drain_signal.empty() && !ParseSignalName(drain_signal, &o.drain_signal)) {
    return UsageError("--drain-signal: unknown signal '" + drain_signal + "'");
  }

  // As Einhorn: no worker command on the command line prints the usage on stdout and exits 1
  // (Einhorn's own test/integration/startup.rb checks for "## Usage"). A config file that
  // names no command gets Validate's one line, which names the file.
  if (o.command.empty() && !config) {
    FlagsOutcome out;
    out.kind = FlagsOutcome::Kind::kExit;
    out.exit_code = kExitRuntime;
    // --help's option list, without its own title lines.
    std::string help = app.help();
    if (const size_t list = help.find("Options:\n"); list != std::string::npos) {
      help.erase(0, list + 9);
    }
    out.out = std::string(kShortUsage) + help;
    return out;
  }

  ApplyDefaultPaths(&o, env);
  if (Status st = Validate(o); !st.ok()) {
    return UsageError(st.message() + (config ? " (with " + config->path + ")" : ""));
  }

  FlagsOutcome out;
  out.options = std::move(o);
  if (config) out.config_path = config->path;
  if (check_config_opt->count() > 0) out.kind = FlagsOutcome::Kind::kCheckConfig;
  return out;
}

}  // namespace einhorn::core
