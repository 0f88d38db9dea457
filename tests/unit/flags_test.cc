#include "core/flags.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <variant>

#include "core/option_table.h"

namespace einhorn::core {
namespace {

const std::map<std::string, std::string> kEnv{{"TMPDIR", "/var/tmp/x/"}};

FlagsOutcome Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "einhorn-cpp");
  return ParseFlags(args, kEnv);
}

Options Run(std::vector<std::string> args) {
  FlagsOutcome out = Parse(args);
  INFO(out.err);
  REQUIRE(out.kind == FlagsOutcome::Kind::kRun);
  return out.options;
}

std::string UsageErr(std::vector<std::string> args) {
  FlagsOutcome out = Parse(args);
  REQUIRE(out.kind == FlagsOutcome::Kind::kExit);
  CHECK(out.exit_code == kExitUsage);
  CHECK(out.err.find('\n') == std::string::npos);  // one line
  CHECK(out.err.rfind("einhorn-cpp: ", 0) == 0);
  return out.err;
}

TEST_CASE("defaults") {
  Options o = Run({"./work"});
  CHECK(o.number == 1);
  CHECK(o.binds.empty());
  CHECK(o.backlog == 100);
  CHECK(o.ack_mode.kind == AckMode::Kind::kTimer);
  CHECK(o.ack_mode.timer_seconds == 1.0);
  CHECK(o.verbosity == 1);
  CHECK(o.seconds == 1.0);
  CHECK_FALSE(o.signal_timeout.has_value());
  CHECK_FALSE(o.kill_children_on_exit);
  CHECK(o.pidfile == "/var/tmp/x/einhorn.pid");
  CHECK(o.lockfile == "/var/tmp/x/einhorn.lock");
  CHECK(o.socket_path == "/var/tmp/x/einhorn.sock");
  CHECK(o.command == std::vector<std::string>{"./work"});
}

TEST_CASE("every flag of this version") {
  Options o = Run({"-n", "4", "-b", "127.0.0.1:0,r", "--bind=[::1]:0", "-c", "web", "-e",
                   "/p.pid", "-f", "/l.lock", "-k", "-l", "7", "-m", "0.25", "-q", "-q", "-s",
                   "2", "-t", "3.5", "--drop-env-var", "A", "--drop-env-var=B", "--nice",
                   "5:10", "--", "ruby", "-e", "x"});
  CHECK(o.number == 4);
  REQUIRE(o.binds.size() == 2);
  CHECK(o.binds[0].port == 0);
  CHECK(o.binds[0].reuseaddr);
  CHECK(o.binds[1].family == BindSpec::Family::kInet6);
  CHECK(o.command_name == "web");
  CHECK(o.pidfile == "/p.pid");
  CHECK(o.lockfile == "/l.lock");
  CHECK(o.socket_path == "/var/tmp/x/einhorn-web.sock");
  CHECK(o.kill_children_on_exit);
  CHECK(o.backlog == 7);
  CHECK(o.ack_mode.timer_seconds == 0.25);
  CHECK(o.verbosity == 2);
  CHECK(o.seconds == 2);
  CHECK(o.signal_timeout == 3.5);
  CHECK(o.drop_env_vars == std::vector<std::string>{"A", "B"});
  CHECK(o.nice.master == 5);
  CHECK(o.nice.worker == 10);
  CHECK(o.command == std::vector<std::string>{"ruby", "-e", "x"});
}

TEST_CASE("command socket flags") {
  Options o = Run({"-d", "/run/e.sock", "-g", "-m", "manual", "--control-allow-uid", "www",
                   "--control-allow-uid=1000", "--control-allow-gid", "adm", "x"});
  CHECK(o.socket_path == "/run/e.sock");
  CHECK(o.command_socket_as_fd);
  CHECK(o.ack_mode.kind == AckMode::Kind::kManual);
  CHECK(o.control_allow_uids == std::vector<std::string>{"www", "1000"});
  CHECK(o.control_allow_gids == std::vector<std::string>{"adm"});
  CHECK(UsageErr({"-d", "/" + std::string(200, 'a'), "x"}).find("longer than 107") !=
        std::string::npos);
  CHECK(Run({"-d", "/" + std::string(106, 'a'), "x"}).socket_path.size() == 107);
}

TEST_CASE("-c names the default files") {
  Options o = Run({"-c", "api", "x"});
  CHECK(o.pidfile == "/var/tmp/x/einhorn-api.pid");
  CHECK(o.lockfile == "/var/tmp/x/einhorn-api.lock");
}

TEST_CASE("TMPDIR unset or empty means /tmp") {
  FlagsOutcome out = ParseFlags({"einhorn-cpp", "x"}, {{"TMPDIR", ""}});
  CHECK(out.options.pidfile == "/tmp/einhorn.pid");
  out = ParseFlags({"einhorn-cpp", "x"}, {});
  CHECK(out.options.lockfile == "/tmp/einhorn.lock");
}

TEST_CASE("TMPDIR=/ and trailing slashes: the default paths einhornctl computes too") {
  // One function (core::DefaultPath) makes them for the master and for einhornctl; before it
  // the master made "//einhorn.sock" of TMPDIR=/ and einhornctl "/einhorn.sock".
  FlagsOutcome out = ParseFlags({"einhorn-cpp", "x"}, {{"TMPDIR", "/"}});
  CHECK(out.options.socket_path == "/einhorn.sock");
  CHECK(out.options.pidfile == "/einhorn.pid");
  CHECK(out.options.lockfile == "/einhorn.lock");
  out = ParseFlags({"einhorn-cpp", "-c", "web", "x"}, {{"TMPDIR", "//"}});
  CHECK(out.options.socket_path == "/einhorn-web.sock");
  out = ParseFlags({"einhorn-cpp", "x"}, {{"TMPDIR", "/var/tmp/"}});
  CHECK(out.options.socket_path == "/var/tmp/einhorn.sock");
  out = ParseFlags({"einhorn-cpp", "x"}, {{"TMPDIR", "/var/tmp//"}});
  CHECK(out.options.socket_path == "/var/tmp/einhorn.sock");
  CHECK(DefaultPath({{"TMPDIR", "/"}}, "", ".sock") == "/einhorn.sock");
  CHECK(DefaultPath({{"TMPDIR", "/srv/"}}, "api", ".lock") == "/srv/einhorn-api.lock");
  CHECK(DefaultPath({}, "", ".pid") == "/tmp/einhorn.pid");
}

TEST_CASE("options stop at the first positional word") {
  Options o = Run({"-n", "2", "sleep", "-n", "5", "--", "-b"});
  CHECK(o.number == 2);
  CHECK(o.command == std::vector<std::string>{"sleep", "-n", "5", "--", "-b"});
  CHECK(o.binds.empty());
}

TEST_CASE("verbosity steps are clamped") {
  CHECK(Run({"-v", "x"}).verbosity == 0);
  CHECK(Run({"-v", "-v", "-v", "x"}).verbosity == 0);
  CHECK(Run({"-q", "-q", "-q", "x"}).verbosity == 2);
  CHECK(Run({"-q", "-v", "x"}).verbosity == 1);
}

TEST_CASE("--nice with the master only") {
  Options o = Run({"--nice", "3", "x"});
  CHECK(o.nice.master == 3);
  CHECK_FALSE(o.nice.worker.has_value());
  o = Run({"--nice", "1:2:/usr/bin/renice", "x"});
  CHECK(o.nice.renice_cmd == "/usr/bin/renice");
}

TEST_CASE("help and version exit 0 with text on stdout") {
  FlagsOutcome out = Parse({"--help"});
  CHECK(out.kind == FlagsOutcome::Kind::kExit);
  CHECK(out.exit_code == 0);
  CHECK(out.out.find("--bind") != std::string::npos);
  CHECK(out.out.find("-p,--preload PATH") != std::string::npos);
  CHECK(out.out.find("--zygote") != std::string::npos);
  out = Parse({"--version"});
  CHECK(out.exit_code == 0);
  CHECK(out.out == std::string("einhorn-cpp ") + kVersion + "\n");
}

// Einhorn 1.1.1 with no worker command (no args, only flags, or a bare "--") prints its usage,
// starting "## Usage", on stdout and exits 1; its test/integration/startup.rb checks this.
TEST_CASE("no worker command: the usage on stdout and exit 1, as Einhorn") {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {}, {"--"}, {"-n", "2", "-b", "127.0.0.1:0"}, {"-m", "manual", "--"}}) {
    FlagsOutcome out = Parse(args);
    CHECK(out.kind == FlagsOutcome::Kind::kExit);
    CHECK(out.exit_code == 1);
    CHECK(out.err.empty());
    CHECK(out.out.rfind("## Usage\n", 0) == 0);
    CHECK(out.out.find("--bind") != std::string::npos);
  }
  // A bad flag is still a usage error first, as Einhorn raises while parsing.
  CHECK(UsageErr({"-b", "nope"}).find("invalid bind 'nope'") != std::string::npos);
}

// The table of settings (option_table.cc) names each setting's flag and help: a flag is the key with
// '-' for '_' (canary's is --no-canary), --help shows it with that help, and a value the flag
// sets is the value the key sets. A new setting is one entry in that table plus its parsing.
TEST_CASE("each config key's flag comes from the keys' table") {
  const std::string help = Parse({"--help"}).out;
  size_t with_flag = 0;
  for (const std::string& key : ConfigKeys()) {
    INFO(key);
    const FlagSpec f = FlagOf(key);
    if (key == "command" || key == "log_level") {
      CHECK(f.names == nullptr);  // the worker's argv; -q/-v, relative to the file's level
      continue;
    }
    REQUIRE(f.names != nullptr);
    REQUIRE(f.help != nullptr);
    ++with_flag;
    std::string long_name = key == "canary" ? "no-canary" : key;
    std::replace(long_name.begin(), long_name.end(), '_', '-');
    const std::string names = f.names;
    CHECK(names.substr(names.rfind(',') + 1) == "--" + long_name);
    CHECK(help.find(names) != std::string::npos);
    CHECK(help.find(std::string(f.help).substr(0, 40)) != std::string::npos);
  }
  CHECK(with_flag == ConfigKeys().size() - 2);
  CHECK(FlagOf("no_such_key").names == nullptr);
}

TEST_CASE("usage errors are one line with exit 2") {
  CHECK(UsageErr({"-n", "0", "x"}).find("at least 1") != std::string::npos);
  CHECK(UsageErr({"-n", "-3", "x"}).find("number") != std::string::npos);
  CHECK(UsageErr({"-n", "abc", "x"}).find("number") != std::string::npos);
  CHECK(UsageErr({"-b", "nope", "x"}).find("invalid bind 'nope'") != std::string::npos);
  CHECK(UsageErr({"-m", "soon", "x"}).find("invalid ack mode") != std::string::npos);
  CHECK(UsageErr({"-m", "-1", "x"}).find("ack mode") != std::string::npos);
  CHECK(UsageErr({"-s", "0", "x"}).find("--seconds") != std::string::npos);
  CHECK(UsageErr({"-s", "-1", "x"}).find("--seconds") != std::string::npos);
  CHECK(UsageErr({"-t", "-2", "x"}).find("--signal-timeout") != std::string::npos);
  CHECK(UsageErr({"-l", "-2", "x"}).find("backlog") != std::string::npos);
  CHECK(UsageErr({"--nice", "a", "x"}).find("--nice") != std::string::npos);
  CHECK(UsageErr({"--nice", "1:99", "x"}).find("--nice") != std::string::npos);
  CHECK(UsageErr({"--bogus", "x"}).find("--bogus") != std::string::npos);
  CHECK(UsageErr({"-Z", "x"}).find("-Z") != std::string::npos);
  CHECK(UsageErr({"-n"}).find("-n") != std::string::npos);
  CHECK(UsageErr({"--", "-x"}).find("-x") != std::string::npos);
  CHECK(UsageErr({"--drop-env-var", "A=B", "x"}).find("drop-env-var") != std::string::npos);
  CHECK(UsageErr({"", "x"}).find("empty") != std::string::npos);
}

// Found by flags_fuzz: the word "--\n" after -- made "unknown option --\n (see ...)", two lines.
TEST_CASE("usage errors that echo control bytes stay one line") {
  CHECK(UsageErr({"--", "--\n"}) == "einhorn-cpp: unknown option --\\n (see einhorn-cpp --help)");
  CHECK(UsageErr({"-b", "a\r\n\x1b[2J", "x"}).find("'a\\r\\n\\x1b[2J'") != std::string::npos);
  CHECK(UsageErr({"--nice", "1\t2", "x"}).find("'1\\t2'") != std::string::npos);
}

// Issue 17 §5: a numeric flag names itself and the word it could not read (CLI11 said
// "Could not convert: --number = abc"), and an unknown flag names the nearest one, as the
// config file's unknown keys do (one edit distance, core/text.h).
TEST_CASE("a numeric flag that is not a number says so, naming the flag") {
  CHECK(UsageErr({"-n", "abc", "x"}) == "einhorn-cpp: -n: not a number: abc");
  CHECK(UsageErr({"--number=abc", "x"}) == "einhorn-cpp: -n: not a number: abc");
  CHECK(UsageErr({"-n", "1.5", "x"}) == "einhorn-cpp: -n: not a whole number: 1.5");
  CHECK(UsageErr({"-s", "soon", "x"}) == "einhorn-cpp: -s: not a number: soon");
  CHECK(UsageErr({"-t", "", "x"}) == "einhorn-cpp: -t: not a number: ");
  CHECK(UsageErr({"-l", "x1", "x"}) == "einhorn-cpp: -l: not a number: x1");
  CHECK(UsageErr({"--max-unacked", "two", "x"}) ==
        "einhorn-cpp: --max-unacked: not a number: two");
  CHECK(UsageErr({"--ack-timeout", "1m", "x"}) == "einhorn-cpp: --ack-timeout: not a number: 1m");
  CHECK(UsageErr({"--worker-watchdog", "x", "x"}) ==
        "einhorn-cpp: --worker-watchdog: not a number: x");
  // The word is echoed on one line, whatever it holds.
  CHECK(UsageErr({"-n", "1\n2", "x"}) == "einhorn-cpp: -n: not a number: 1\\n2");
  // What CLI11 read before still reads (its conversion is kept): base prefixes, signs.
  CHECK(Run({"-n", "0x10", "x"}).number == 16);
  CHECK(Run({"-n", "+3", "x"}).number == 3);
  CHECK(Run({"-s", "1e-1", "x"}).seconds == 0.1);
  // Ranges are still Validate's.
  CHECK(UsageErr({"-s", "inf", "x"}).find("-s/--seconds must be a number of seconds") !=
        std::string::npos);
}

TEST_CASE("an unknown flag suggests the nearest one") {
  CHECK(UsageErr({"--numbr", "3", "x"}) ==
        "einhorn-cpp: unknown option --numbr; did you mean --number? (see einhorn-cpp --help)");
  CHECK(UsageErr({"--numbr=3", "x"}).find("did you mean --number?") != std::string::npos);
  CHECK(UsageErr({"--singal-timeout", "3", "x"}).find("did you mean --signal-timeout?") !=
        std::string::npos);
  CHECK(UsageErr({"--no-canry", "x"}).find("did you mean --no-canary?") != std::string::npos);
  // Nothing near, a short flag, or a hidden one: no guess.
  CHECK(UsageErr({"--frobnicate", "x"}) ==
        "einhorn-cpp: unknown option --frobnicate (see einhorn-cpp --help)");
  CHECK(UsageErr({"-Z", "x"}) == "einhorn-cpp: unknown option -Z (see einhorn-cpp --help)");
  CHECK(UsageErr({"--with-state-f", "x"}).find("did you mean") == std::string::npos);
}

TEST_CASE("--help has one usage line and every value flag's default") {
  const std::string help = Parse({"--help"}).out;
  size_t usages = 0;
  for (size_t at = help.find("Usage:"); at != std::string::npos; at = help.find("Usage:", at + 1)) {
    ++usages;
  }
  CHECK(usages == 1);
  CHECK(help.find("Usage: einhorn-cpp [options] [--] COMMAND [ARGS...]\n") != std::string::npos);
  CHECK(help.find("-n,--number INT             Number of workers to run (default 1)\n") !=
        std::string::npos);
  CHECK(help.find("listen() backlog for -b sockets (default 100)") != std::string::npos);
  CHECK(help.find("Signal that drains a worker (default USR2)") != std::string::npos);
  CHECK(help.find("(default 60)") != std::string::npos);
  CHECK(help.find("(default $TMPDIR/einhorn[-NAME].sock)") != std::string::npos);
  // Each setting's line (a switch's default is off) ends with its default.
  for (const OptionDef& d : OptionTable()) {
    if (!d.flag.names || std::holds_alternative<bool Options::*>(d.field)) continue;
    INFO(d.key);
    const size_t line = help.find(std::string("  ") + d.flag.names);
    REQUIRE(line != std::string::npos);
    const size_t end = help.find('\n', help.find(d.flag.help, line));
    CHECK(help.substr(line, end - line).find(" (default ") != std::string::npos);
  }
}

// Einhorn's -p PATH (issue 19): once refused as Ruby-only, now run by a Ruby zygote.
TEST_CASE("-p PATH and --gc-before-fork are Einhorn's Ruby preload") {
  Options o = Run({"-p", "app.rb", "ruby", "app.rb"});
  CHECK(o.preload == "app.rb");
  CHECK_FALSE(o.gc_before_fork);
  o = Run({"--preload", "./lib/app", "--gc-before-fork", "--", "ruby", "x"});
  CHECK(o.preload == "./lib/app");
  CHECK(o.gc_before_fork);
  CHECK(Run({"x"}).preload.empty());
  CHECK(UsageErr({"--gc-before-fork", "x"}).find("--gc-before-fork works only with -p PATH") !=
        std::string::npos);
  // An explicit empty PATH is no preload (Einhorn's require of "" fails, and it runs the
  // workers exec'd), not a request for a zygote.
  o = Run({"-p", "", "x"});
  CHECK(o.preload.empty());
  CHECK_FALSE(o.zygote);
}

// Issue 19 also names the generic zygote `--preload`: without a PATH (the next word is a flag,
// `--` or nothing) it is --zygote. Einhorn took the next word as the path even then, and failed.
TEST_CASE("--preload without PATH is the zygote of --zygote, with PATH Einhorn's preload") {
  Options o = Run({"--preload", "-n", "2", "--", "python3", "app.py"});
  CHECK(o.zygote);
  CHECK(o.preload.empty());
  CHECK(o.number == 2);
  CHECK(o.command == std::vector<std::string>{"python3", "app.py"});
  o = Run({"-n", "3", "--preload", "--", "x"});
  CHECK(o.zygote);
  CHECK(o.number == 3);
  CHECK(o.command == std::vector<std::string>{"x"});
  CHECK(Run({"-p", "-m", "manual", "x"}).zygote);
  o = Run({"--preload", "app.rb", "-n", "2", "--", "x"});
  CHECK_FALSE(o.zygote);
  CHECK(o.preload == "app.rb");
  // As Einhorn: a word that is not a flag is the PATH, even the worker's program.
  o = Run({"--preload", "python3", "app.py"});
  CHECK(o.preload == "python3");
  CHECK(o.command == std::vector<std::string>{"app.py"});
  CHECK_FALSE(Run({"x"}).zygote);
  // The marker CLI11 holds for "no value" never shows.
  const std::string help = Parse({"--help"}).out;
  CHECK(help.find("-p,--preload PATH ") != std::string::npos);
  CHECK(help.find('\x01') == std::string::npos);
  CHECK(help.find("PATH=") == std::string::npos);
}

TEST_CASE("--reexec-as is shell-split into the argv reload execs") {
  CHECK(Run({"x"}).reexec_as.empty());
  CHECK(Run({"--reexec-as", "env FOO=bar ruby /path/einhorn", "x"}).reexec_as ==
        std::vector<std::string>{"env", "FOO=bar", "ruby", "/path/einhorn"});
  CHECK(Run({"--reexec-as=/opt/e\\ c/einhorn-cpp '' \"a b\"", "-n", "2", "x"}).reexec_as ==
        std::vector<std::string>{"/opt/e c/einhorn-cpp", "", "a b"});
  CHECK(UsageErr({"--reexec-as", "ruby 'x", "x"}) ==
        "einhorn-cpp: --reexec-as: unmatched quote in \"ruby 'x\"");
  CHECK(UsageErr({"--reexec-as", "", "x"}) ==
        "einhorn-cpp: --reexec-as needs a command line (got an empty one)");
  CHECK(UsageErr({"--reexec-as= \t", "x"}) ==
        "einhorn-cpp: --reexec-as needs a command line (got an empty one)");
  CHECK(UsageErr({"--reexec-as", "'' -x", "x"}) ==
        "einhorn-cpp: --reexec-as: the program to exec is an empty string");
  CHECK(UsageErr({"--reexec-as"}).find("--reexec-as") != std::string::npos);
  CHECK(Parse({"--help"}).out.find("--reexec-as") != std::string::npos);
}

TEST_CASE("--with-state-fd: the new image of a reloading master") {
  // What Einhorn's master and ours exec: the worker command is only there for ps.
  FlagsOutcome out = Parse({"--with-state-fd", "9", "--", "./worker"});
  INFO(out.err);
  CHECK(out.kind == FlagsOutcome::Kind::kRestore);
  CHECK(out.state_fd == 9);
  CHECK(out.options == Options{});
  CHECK(out.err.empty());
  CHECK(Parse({"--with-state-fd=0"}).kind == FlagsOutcome::Kind::kRestore);
  CHECK(Parse({"--with-state-fd=0"}).state_fd == 0);
  CHECK(Parse({"--with-state-fd", "12", "ruby", "-n", "3"}).state_fd == 12);
  CHECK(Parse({"--with-state-fd", "12", "--"}).state_fd == 12);
  CHECK(Parse({"--with-state-fd", "12", "--", "-x"}).state_fd == 12);
  // Words after the worker command are the worker's, not ours.
  CHECK(Parse({"--with-state-fd", "3", "w", "--upgrade-check"}).kind ==
        FlagsOutcome::Kind::kRestore);
  CHECK(Run({"w", "--with-state-fd", "3"}).command ==
        std::vector<std::string>{"w", "--with-state-fd", "3"});
}

TEST_CASE("--with-state-fd: the form a reload execs has the parser's outcome without it") {
  // `SELF --with-state-fd N -- CMD...` is decided before the parser is built;
  // `--with-state-fd=N` is the same request through the parser.
  const std::vector<std::vector<std::string>> commands = {
      {}, {"./worker"}, {"ruby", "-n", "3"}, {"-x"}, {"--with-state-fd", "4"},
      {"--upgrade-check"}, {"--", "w"}, {"--help"}, {""}};
  for (const std::string fd : {"0", "3", "12", "999999999", "x", "-1", "3x", "1234567890"}) {
    for (const auto& command : commands) {
      std::vector<std::string> fast = {"--with-state-fd", fd, "--"};
      std::vector<std::string> slow = {"--with-state-fd=" + fd, "--"};
      fast.insert(fast.end(), command.begin(), command.end());
      slow.insert(slow.end(), command.begin(), command.end());
      const FlagsOutcome a = Parse(fast);
      const FlagsOutcome b = Parse(slow);
      INFO("fd '" << fd << "', " << command.size() << " words after --: " << a.err << " / "
                  << b.err);
      CHECK(a.kind == b.kind);
      CHECK(a.state_fd == b.state_fd);
      CHECK(a.exit_code == b.exit_code);
      CHECK(a.options == b.options);
      CHECK(a.err.empty() == b.err.empty());
      CHECK(a.out == b.out);
    }
  }
  CHECK(Parse({"--with-state-fd", "7", "--", "w"}).state_fd == 7);
  // Not a number: the parser's usage error, as before.
  CHECK(UsageErr({"--with-state-fd", "x", "--", "w"}) ==
        "einhorn-cpp: --with-state-fd: 'x' is not an fd (an integer >= 0)");
}

TEST_CASE("--upgrade-check: reload's pre-flight") {
  FlagsOutcome out = Parse({"--upgrade-check", "--with-state-fd", "9", "--", "./worker", "a"});
  CHECK(out.kind == FlagsOutcome::Kind::kUpgradeCheck);
  CHECK(out.state_fd == 9);
  out = Parse({"--with-state-fd=4", "--upgrade-check"});
  CHECK(out.kind == FlagsOutcome::Kind::kUpgradeCheck);
  CHECK(out.state_fd == 4);
  out = Parse({"--upgrade-check"});
  CHECK(out.kind == FlagsOutcome::Kind::kUpgradeCheck);
  CHECK(out.state_fd == -1);
  CHECK(Parse({"--upgrade-check", "--", "w"}).kind == FlagsOutcome::Kind::kUpgradeCheck);
}

TEST_CASE("the internal flags take no other flag and a real fd") {
  CHECK(UsageErr({"--with-state-fd", "9", "-n", "2", "--", "w"}) ==
        "einhorn-cpp: --with-state-fd is internal (used by reload) and takes no other flag "
        "(got -n/--number)");
  CHECK(UsageErr({"-k", "--upgrade-check", "w"}) ==
        "einhorn-cpp: --upgrade-check is internal (used by reload) and takes no other flag "
        "(got -k/--kill-children-on-exit)");
  CHECK(UsageErr({"--reexec-as", "x", "--with-state-fd", "3"}).find("(got --reexec-as)") !=
        std::string::npos);
  CHECK(UsageErr({"--version", "--with-state-fd", "3"}).find("(got --version)") !=
        std::string::npos);
  CHECK(UsageErr({"-p", "a.rb", "--with-state-fd", "3"}).find("takes no other flag") !=
        std::string::npos);
  for (const char* bad : {"-1", "x", "", "3x", "+3", " 3", "1e3", "9999999999"}) {
    INFO(bad);
    CHECK(UsageErr({"--with-state-fd", bad, "w"}) ==
          std::string("einhorn-cpp: --with-state-fd: '") + bad +
              "' is not an fd (an integer >= 0)");
  }
  CHECK(UsageErr({"--with-state-fd"}).find("--with-state-fd") != std::string::npos);
  CHECK(UsageErr({"--with-state-fd", "3", "--with-state-fd", "4"}).find("--with-state-fd") !=
        std::string::npos);
  // Hidden from --help, as in Einhorn.
  const std::string help = Parse({"--help"}).out;
  CHECK(help.find("--with-state-fd") == std::string::npos);
  CHECK(help.find("--upgrade-check") == std::string::npos);
}

TEST_CASE("upgrade flags") {
  const Options d = Run({"x"});
  CHECK_FALSE(d.max_unacked.has_value());
  CHECK_FALSE(d.max_upgrade_additional.has_value());
  CHECK(d.ack_timeout == 60);
  CHECK(d.upgrade_timeout == 0);
  CHECK(d.upgrade_max_failures == 3);
  CHECK(d.canary);
  CHECK(d.drain_signal == Signal::kUsr2);

  const Options o = Run({"--max-unacked", "2", "--max-upgrade-additional=0", "--ack-timeout",
                           "2.5", "--upgrade-timeout=30", "--upgrade-max-failures", "1",
                           "--no-canary", "--drain-signal", "TERM", "x"});
  CHECK(o.max_unacked == 2);
  CHECK(o.max_upgrade_additional == 0);
  CHECK(o.ack_timeout == 2.5);
  CHECK(o.upgrade_timeout == 30);
  CHECK(o.upgrade_max_failures == 1);
  CHECK_FALSE(o.canary);
  CHECK(o.drain_signal == Signal::kTerm);

  CHECK(UsageErr({"--max-unacked", "0", "x"}) == "einhorn-cpp: --max-unacked must be at least 1");
  CHECK(UsageErr({"--max-upgrade-additional=-1", "x"}).find("must not be negative") !=
        std::string::npos);
  CHECK(UsageErr({"--ack-timeout=-1", "x"}).find("--ack-timeout must be") != std::string::npos);
  CHECK(UsageErr({"--upgrade-timeout=nan", "x"}).find("--upgrade-timeout") != std::string::npos);
  CHECK(UsageErr({"--upgrade-max-failures=0", "x"}).find("at least 1") != std::string::npos);
  // A long timer ack moves the default ack timeout; an explicit contradiction is refused.
  CHECK(Run({"-m", "90", "x"}).ack_timeout == 150);
  CHECK(Run({"-m", "2", "--ack-timeout", "0", "x"}).ack_timeout == 0);
  CHECK(UsageErr({"-m", "5", "--ack-timeout", "5", "x"}).find("must be shorter than --ack-timeout") !=
        std::string::npos);
  CHECK(UsageErr({"--drain-signal", "BOGUS", "x"}) ==
        "einhorn-cpp: --drain-signal: unknown signal 'BOGUS'");
}

}  // namespace
}  // namespace einhorn::core
