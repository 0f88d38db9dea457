#include "core/flags.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <optional>
#include <set>
#include <string_view>
#include <type_traits>
#include <variant>

#include "core/option_table.h"
#include "core/text.h"

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

constexpr const char* kUsageLine = "Usage: einhorn-cpp [options] [--] COMMAND [ARGS...]";

// Options left out of --help. CLI11 2.1 hides an option by giving it the group "", but then
// also drops its name from its own error messages (": 1 required TEXT missing"); a named
// group that the help formatter skips keeps them.
constexpr const char* kHiddenGroup = "Hidden";
class HidingFormatter : public CLI::Formatter {
 public:
  // One usage line (CLI11's own would say "[OPTIONS]" and miss the command).
  std::string make_usage(const CLI::App*, std::string) const override {
    return std::string(kUsageLine) + "\n";
  }
  std::string make_group(std::string group, bool is_positional,
                         std::vector<const CLI::Option*> opts) const override {
    if (group == kHiddenGroup) return "";
    return CLI::Formatter::make_group(std::move(group), is_positional, std::move(opts));
  }
  // A value_optional flag's default is the kBareFlag marker, not a value to show.
  std::string make_option_opts(const CLI::Option* opt) const override {
    std::string text = CLI::Formatter::make_option_opts(opt);
    const std::string marker = std::string("=") + kBareFlag;
    if (const size_t at = text.find(marker); at != std::string::npos) text.erase(at, marker.size());
    return text;
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

// What the command line gave for one setting of the table (option_table.h); CLI11 writes the
// text here, and ApplySettingFlags turns it into the setting.
struct SettingFlag {
  const OptionDef* def = nullptr;
  CLI::Option* opt = nullptr;
  std::string text;                // a flag with one value
  std::vector<std::string> texts;  // a repeatable flag
  bool given = false;              // a switch
};

template <typename M>
constexpr bool kIsList = false;
template <typename T>
constexpr bool kIsList<std::vector<T> Options::*> = true;

// Whether a flag may be given more than once, each value one item of its list: a list member,
// except a list of words that its hook makes of one value (--reexec-as CMDLINE).
bool Repeatable(const OptionDef& d) {
  if (d.from_flag && std::holds_alternative<std::vector<std::string> Options::*>(d.field)) {
    return false;
  }
  return std::visit([](auto m) { return kIsList<decltype(m)>; }, d.field);
}

// A numeric setting's value name in --help (CLI11's own names), or nullptr: not a number.
const char* NumberName(const Field& field) {
  if (std::holds_alternative<int Options::*>(field) ||
      std::holds_alternative<std::optional<int> Options::*>(field)) {
    return "INT";
  }
  if (std::holds_alternative<double Options::*>(field) ||
      std::holds_alternative<std::optional<double> Options::*>(field)) {
    return "FLOAT";
  }
  return nullptr;
}

// A flag's name for messages: its first (short, if it has one).
std::string FirstName(const OptionDef& d) {
  const std::string names = d.flag.names;
  return names.substr(0, names.find(','));
}

// "-s 2" and the like, with CLI11's own conversion (what it accepted before is accepted), and
// one line naming the flag otherwise.
template <typename T>
Status Convert(const OptionDef& d, const std::string& text, T* value) {
  if (CLI::detail::lexical_cast(text, *value)) return Status::Ok();
  double as_double = 0;
  const bool fraction = std::is_integral_v<T> && CLI::detail::lexical_cast(text, as_double);
  return Status::Error(FirstName(d) + (fraction ? ": not a whole number: " : ": not a number: ") +
                       text);
}

// The setting's value from its flag, by the type of its member (an entry of another type
// gives `from_flag`).
template <typename T>
concept Number = std::is_arithmetic_v<T> && !std::is_same_v<T, bool>;

template <Number T>
Status FlagValue(const OptionDef& d, const SettingFlag& f, T Options::*m, Options* o) {
  return Convert(d, f.text, &(o->*m));
}
template <Number T>
Status FlagValue(const OptionDef& d, const SettingFlag& f, std::optional<T> Options::*m,
                 Options* o) {
  T v{};
  Status st = Convert(d, f.text, &v);
  if (st.ok()) o->*m = v;
  return st;
}
Status FlagValue(const OptionDef&, const SettingFlag& f, std::string Options::*m, Options* o) {
  o->*m = f.text;
  return Status::Ok();
}
Status FlagValue(const OptionDef&, const SettingFlag& f, std::vector<std::string> Options::*m,
                 Options* o) {
  o->*m = f.texts;
  return Status::Ok();
}
Status FlagValue(const OptionDef& d, const SettingFlag&, bool Options::*m, Options* o) {
  // --no-canary turns a setting off; every other switch turns its setting on.
  o->*m = std::string_view(d.flag.names).find("--no-") == std::string_view::npos;
  return Status::Ok();
}
template <typename M>
Status FlagValue(const OptionDef& d, const SettingFlag&, M, Options*) {
  return Status::Error(std::string(d.key) + ": no flag reading for this type (give from_flag)");
}

// Registers the flag of every setting that has one, in the table's order, and the -q/-v steps
// where log_level stands. The help line ends with the setting's default.
std::vector<SettingFlag> AddSettingFlags(CLI::App& app, int* quiet, int* verbose) {
  const std::vector<OptionDef>& table = OptionTable();
  std::vector<SettingFlag> flags(table.size());  // CLI11 holds references: never resized
  for (size_t i = 0; i < table.size(); ++i) {
    const OptionDef& d = table[i];
    SettingFlag& f = flags[i];
    f.def = &d;
    if (std::string_view(d.key) == "log_level") {
      app.add_flag("-q,--quiet", *quiet, "Log less (repeatable; default: info)");
      app.add_flag("-v,--verbose", *verbose, "Log more (repeatable)");
    }
    if (!d.flag.names) continue;
    std::string help = d.flag.help;
    const std::string shown = d.shown_default ? d.shown_default : SettingText(d, Options{});
    const bool is_switch = std::holds_alternative<bool Options::*>(d.field);
    if (!is_switch && !shown.empty() && shown != "~" && shown != "[]" && shown != "\"\"") {
      help += " (default " + shown + ")";
    }
    if (is_switch) {
      f.opt = app.add_flag(d.flag.names, f.given, help);
      continue;
    }
    f.opt = Repeatable(d) ? app.add_option(d.flag.names, f.texts, help)->allow_extra_args(false)
                          : app.add_option(d.flag.names, f.text, help);
    if (const char* type_name = d.flag.type_name ? d.flag.type_name : NumberName(d.field)) {
      f.opt->type_name(type_name);
    }
    // CLI11 stores the default string as the result of a value left out.
    if (d.flag.value_optional) f.opt->expected(0, 1)->default_str(kBareFlag);
  }
  return flags;
}

// Applies what the command line gave, in the table's order; the first refusal is the answer.
// numbers: only the numeric settings (CLI11 converted those while parsing, before any other
// check), or only the others.
Status ApplySettingFlags(const std::vector<SettingFlag>& flags, bool numbers, Options* o) {
  for (const SettingFlag& f : flags) {
    if (!f.opt || f.opt->count() == 0) continue;
    const OptionDef& d = *f.def;
    if ((NumberName(d.field) != nullptr) != numbers) continue;
    Status st = Status::Ok();
    if (d.from_flag) {
      if (!Repeatable(d)) {
        st = d.from_flag(f.text, o);
      } else {
        std::visit(
            [o](auto m) {
              if constexpr (kIsList<decltype(m)>) (o->*m).clear();
            },
            d.field);
        for (const std::string& t : f.texts) {
          if (st = d.from_flag(t, o); !st.ok()) break;
        }
      }
    } else {
      st = std::visit([&](auto m) { return FlagValue(d, f, m, o); }, d.field);
    }
    if (!st.ok()) return st;
  }
  return Status::Ok();
}

// Whether the command line gave the setting `key`.
bool Given(const std::vector<SettingFlag>& flags, std::string_view key) {
  return std::any_of(flags.begin(), flags.end(), [key](const SettingFlag& f) {
    return f.def->key == key && f.opt && f.opt->count() > 0;
  });
}

// "--numbr" -> "--number": the visible long flag nearest to an unknown one, or "".
std::string NearestFlag(const CLI::App& app, std::string word) {
  if (word.rfind("--", 0) != 0 || word.size() < 4) return "";
  word = word.substr(0, word.find('='));
  std::vector<std::string> names;
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_group() == kHiddenGroup) continue;
    for (const std::string& l : opt->get_lnames()) names.push_back("--" + l);
  }
  return text::Nearest(word, names);
}

// The flags that are not settings: the config file, the internal forms reload uses, and
// Einhorn's Ruby-only flags.
struct CommandLineExtras {
  std::string config_path;
  std::string check_config_path;
  std::string state_fd;
  CLI::Option* config = nullptr;
  CLI::Option* check_config = nullptr;
  CLI::Option* with_state_fd = nullptr;
  CLI::Option* upgrade_check = nullptr;
  // Einhorn flags that are Ruby-only: parsed so that the error is ours and clear, not
  // CLI11's "unknown option".
  std::vector<std::pair<CLI::Option*, const char*>> refused;  // the option, why
};

CommandLineExtras AddExtraFlags(CLI::App& app) {
  CommandLineExtras x;
  x.config =
      app.add_option("--config", x.config_path,
                     "Read settings from this YAML file (man einhorn-cpp.yaml); flags override it")
          ->type_name("FILE");
  x.check_config =
      app.add_option("--check-config", x.check_config_path,
                     "Validate the YAML file (with the other flags) and print the effective "
                     "settings, then exit")
          ->type_name("FILE");
  // The two internal ones, hidden from --help as in Einhorn: reload execs the new image as
  // `--with-state-fd N -- CMD...`, after a pre-flight `--upgrade-check --with-state-fd N --
  // CMD...`. The state at N holds every setting; CMD is only there for ps.
  x.with_state_fd = app.add_option("--with-state-fd", x.state_fd)->group(kHiddenGroup);
  x.upgrade_check = app.add_flag("--upgrade-check")->group(kHiddenGroup);
  return x;
}

// What the command line asks before any setting matters: an internal form, the version, a
// refused flag, or the config file to read first. nullopt: go on.
std::optional<FlagsOutcome> EarlyOutcome(const CLI::App& app, const CommandLineExtras& x,
                                         bool version, const ConfigSource* config) {
  if (x.with_state_fd->count() > 0 || x.upgrade_check->count() > 0) {
    CLI::Option* internal = x.upgrade_check->count() > 0 ? x.upgrade_check : x.with_state_fd;
    for (const CLI::Option* opt : app.get_options()) {
      if (opt == x.with_state_fd || opt == x.upgrade_check || opt->count() == 0) continue;
      return UsageError(DisplayName(*internal) +
                        " is internal (used by reload) and takes no other flag (got " +
                        DisplayName(*opt) + ")");
    }
    FlagsOutcome out;
    out.kind = x.upgrade_check->count() > 0 ? FlagsOutcome::Kind::kUpgradeCheck
                                            : FlagsOutcome::Kind::kRestore;
    if (x.with_state_fd->count() > 0 && !ParseFd(x.state_fd, &out.state_fd)) {
      return UsageError("--with-state-fd: '" + x.state_fd + "' is not an fd (an integer >= 0)");
    }
    return out;  // the worker command, if any, is ignored: the state holds the real one
  }
  if (version) {
    FlagsOutcome out;
    out.kind = FlagsOutcome::Kind::kExit;
    out.out = std::string("einhorn-cpp ") + kVersion + "\n";
    return out;
  }
  for (const auto& [opt, why] : x.refused) {
    if (opt->count() > 0) return UsageError(DisplayName(*opt) + " " + why);
  }
  if (x.config->count() > 0 && x.check_config->count() > 0) {
    return UsageError("--config and --check-config name the same file; give one of them");
  }
  const std::string& file = x.config->count() > 0 ? x.config_path : x.check_config_path;
  if (!file.empty() && !config) {
    FlagsOutcome out;
    out.kind = FlagsOutcome::Kind::kNeedConfig;
    out.config_path = file;
    return out;
  }
  if ((x.config->count() > 0 || x.check_config->count() > 0) && file.empty()) {
    return UsageError("--config needs a file name (got an empty one)");
  }
  return std::nullopt;
}

// No worker command: Einhorn's short usage and --help's option list, on stdout, exit 1.
FlagsOutcome ShortUsage(const CLI::App& app) {
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

}  // namespace

FlagsOutcome ParseFlags(const std::vector<std::string>& argv,
                        const std::map<std::string, std::string>& env, const ConfigSource* config) {
  // The form a reload execs, `SELF --with-state-fd N -- CMD...`, without building the parser:
  // CLI11's 0.3 ms were part of the new image's silence. Its outcome is the parser's
  // (flags_test compares it with `--with-state-fd=N`, which goes through the parser).
  if (!config && argv.size() >= 4 && argv[1] == "--with-state-fd" && argv[3] == "--") {
    FlagsOutcome out;
    out.kind = FlagsOutcome::Kind::kRestore;
    if (ParseFd(argv[2], &out.state_fd)) return out;
  }
  // The file's settings first: the flags then change only what the command line gives.
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
  app.footer(
      "Option parsing stops at the first non-option word: it and everything after it are the "
      "worker command.");
  // Einhorn's rule: option parsing stops at the first positional word, which with everything
  // after it is the worker's command line.
  app.prefix_command();
  app.formatter(std::make_shared<HidingFormatter>());

  int quiet = 0;
  int verbose = 0;
  const std::vector<SettingFlag> settings = AddSettingFlags(app, &quiet, &verbose);
  bool version = false;
  app.add_flag("--version", version, "Print the version and exit");
  CommandLineExtras extras = AddExtraFlags(app);

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
  if (Status st = ApplySettingFlags(settings, true, &o); !st.ok()) return UsageError(st.message());
  if (std::optional<FlagsOutcome> early = EarlyOutcome(app, extras, version, config)) {
    return *std::move(early);
  }

  std::vector<std::string> command = app.remaining();
  if (!command.empty() && command.front() == "--") command.erase(command.begin());
  if (!command.empty() && !command.front().empty() && command.front()[0] == '-') {
    const std::string near = NearestFlag(app, command.front());
    return UsageError("unknown option " + command.front() +
                      (near.empty() ? "" : "; did you mean " + near + "?") +
                      " (see einhorn-cpp --help)");
  }
  if (!command.empty() || !config) o.command = std::move(command);

  if (Status st = ApplySettingFlags(settings, false, &o); !st.ok()) return UsageError(st.message());
  o.verbosity = std::clamp(o.verbosity + quiet - verbose, 0, 2);
  // An Einhorn command line with a long timer ack (-m 90) must keep working: the default
  // ack timeout then leaves the timer a minute of room. Only explicit contradictions are errors.
  if (!Given(settings, "ack_timeout") && !from_file.contains("ack_timeout")) FitAckTimeout(&o);

  // As Einhorn: no worker command on the command line prints the usage on stdout and exits 1
  // (Einhorn's own test/integration/startup.rb checks for "## Usage"). A config file that
  // names no command gets Validate's one line, which names the file.
  if (o.command.empty() && !config) return ShortUsage(app);

  ApplyDefaultPaths(&o, env);
  if (Status st = Validate(o); !st.ok()) {
    return UsageError(st.message() + (config ? " (with " + config->path + ")" : ""));
  }

  FlagsOutcome out;
  out.options = std::move(o);
  if (config) out.config_path = config->path;
  if (extras.check_config->count() > 0) out.kind = FlagsOutcome::Kind::kCheckConfig;
  return out;
}

}  // namespace einhorn::core
