// ctl/cli.h: the command line and the socket path.
#include "ctl/cli.h"

#include <doctest/doctest.h>

namespace einhorn::ctl {
namespace {

ParsedCommandLine Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "einhornctl");
  return ParseCommandLine(args);
}

Invocation Ok(std::vector<std::string> args) {
  const ParsedCommandLine p = Parse(std::move(args));
  REQUIRE_MESSAGE(p.run, p.err);
  return p.invocation;
}

int UsageCode(std::vector<std::string> args) {
  const ParsedCommandLine p = Parse(std::move(args));
  CHECK_FALSE(p.run);
  if (p.exit_code == kExitUsage) CHECK(p.err.rfind("einhornctl: ", 0) == 0);
  return p.exit_code;
}

TEST_CASE("cli: subcommands and their arguments") {
  CHECK(Ok({"status"}).command == "status");
  CHECK(Ok({}).command.empty());
  CHECK(Ok({"inc"}).count == 1);
  CHECK(Ok({"inc", "3"}).count == 3);
  CHECK(Ok({"dec", "2"}).count == 2);
  const Invocation set = Ok({"set", "8", "--wait", "--timeout", "5"});
  CHECK(set.command == "set");
  CHECK(set.workers == 8);
  CHECK(set.wait);
  CHECK(set.wait_timeout == 5);
  CHECK(set.timeout == 30);  // --timeout after `set` is set's own
  CHECK(Ok({"signal", "HUP"}).signal == "HUP");
  CHECK(Ok({"die"}).signal.empty());
  CHECK(Ok({"die", "TERM"}).signal == "TERM");
  CHECK(Ok({"ack"}).pid == 0);
  CHECK(Ok({"ack", "77"}).pid == 77);
  CHECK(Ok({"log-level", "debug"}).level == "debug");
  const Invocation raw = Ok({"raw", "set_workers", "4"});
  CHECK(raw.verb == "set_workers");
  CHECK(raw.args == std::vector<std::string>{"4"});
  // A word after `raw VERB` is an argument, even if it names a subcommand.
  CHECK(Ok({"raw", "signal", "status"}).args == std::vector<std::string>{"status"});
  CHECK(Ok({"reload"}).command == "reload");
  CHECK_FALSE(Ok({"reload"}).no_wait);
  CHECK(Ok({"reload"}).wait_timeout == 60);
  CHECK(Ok({"reload", "--no-wait"}).no_wait);
  CHECK(Ok({"reload", "--wait-timeout", "7"}).wait_timeout == 7);
  // One name for a wait's deadline everywhere; set's old --timeout still works.
  CHECK(Ok({"set", "3", "--wait", "--wait-timeout", "5"}).wait_timeout == 5);
  const Invocation wait = Ok({"wait", "drained", "--wait-timeout", "9"});
  CHECK(wait.command == "wait");
  CHECK(wait.condition == "drained");
  CHECK(wait.wait_timeout == 9);
  CHECK(Ok({"wait", "upgraded", "--timeout", "3"}).wait_timeout == 3);
  CHECK(Ok({"wait", "ready"}).wait_timeout == 60);
  CHECK(UsageCode({"wait"}) == kExitUsage);
  CHECK(UsageCode({"wait", "up"}) == kExitUsage);
  CHECK(UsageCode({"wait", "ready", "drained"}) == kExitUsage);
  // The old spelling is hidden from the help.
  const ParsedCommandLine help = Parse({"set", "--help"});
  CHECK(help.out.find("--wait-timeout") != std::string::npos);
  CHECK(help.out.find("--timeout") == std::string::npos);
}

TEST_CASE("cli: upgrade and its flags") {
  const Invocation plain = Ok({"upgrade"});
  CHECK(plain.command == "upgrade");
  CHECK_FALSE(plain.fleet);
  CHECK_FALSE(plain.wait);
  CHECK(plain.upgrade_wait_timeout == 3600);
  CHECK(plain.timeout == 30);

  const Invocation all = Ok({"upgrade", "--fleet", "--wait", "--wait-timeout", "0"});
  CHECK(all.fleet);
  CHECK(all.wait);
  CHECK(all.upgrade_wait_timeout == 0);
  CHECK(Ok({"upgrade", "--wait", "--wait-timeout", "90.5"}).upgrade_wait_timeout == 90.5);
  CHECK(Ok({"upgrade", "--wait-timeout", "5", "--wait"}).upgrade_wait_timeout == 5);

  // Global options around it; --timeout stays the per-reply one (the first reply, here).
  const Invocation global = Ok({"--json", "upgrade", "--wait", "--timeout", "2", "-d", "/s"});
  CHECK(global.json);
  CHECK(global.wait);
  CHECK(global.timeout == 2);
  CHECK(global.upgrade_wait_timeout == 3600);
  CHECK(global.socket_path == "/s");
  // set's --wait and --timeout are set's own.
  CHECK(Ok({"set", "3", "--wait"}).upgrade_wait_timeout == 3600);
}

TEST_CASE("cli: upgrade and reload usage errors exit 2") {
  CHECK(UsageCode({"upgrade", "--wait-timeout", "5"}) == kExitUsage);  // needs --wait
  CHECK(UsageCode({"upgrade", "--wait", "--wait-timeout", "-1"}) == kExitUsage);
  CHECK(UsageCode({"upgrade", "--wait", "--wait-timeout", "soon"}) == kExitUsage);
  CHECK(UsageCode({"upgrade", "--wait", "--wait-timeout"}) == kExitUsage);
  CHECK(UsageCode({"upgrade", "now"}) == kExitUsage);
  CHECK(UsageCode({"upgrade", "--smooth"}) == kExitUsage);
  CHECK(UsageCode({"upgrade-fleet"}) == kExitUsage);  // it is upgrade --fleet
  CHECK(UsageCode({"reload", "--wait"}) == kExitUsage);  // it waits unless --no-wait
  CHECK(UsageCode({"reload", "now"}) == kExitUsage);
  CHECK(UsageCode({"reload", "--no-wait", "--wait-timeout", "5"}) == kExitUsage);
  CHECK(UsageCode({"--wait-timeout", "5", "upgrade", "--wait"}) == kExitUsage);

  const ParsedCommandLine help = Parse({"upgrade", "--help"});
  CHECK_FALSE(help.run);
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("--fleet") != std::string::npos);
  CHECK(help.out.find("--wait-timeout") != std::string::npos);
  CHECK(help.out.find("0 = no limit") != std::string::npos);
}

TEST_CASE("cli: global options before or after the subcommand") {
  Invocation a = Ok({"-d", "/run/x.sock", "--json", "--timeout", "2.5", "status"});
  CHECK(a.socket_path == "/run/x.sock");
  CHECK(a.json);
  CHECK(a.timeout == 2.5);
  Invocation b = Ok({"status", "--json", "-c", "web", "--timeout", "4"});
  CHECK(b.command == "status");
  CHECK(b.json);
  CHECK(b.name == "web");
  CHECK(b.timeout == 4);
  CHECK(Ok({"inc", "2", "-d", "/s"}).socket_path == "/s");
  CHECK(Ok({"--timeout", "9", "set", "3"}).timeout == 9);
}

TEST_CASE("cli: usage errors exit 2, --help and --version exit 0") {
  CHECK(UsageCode({"frobnicate"}) == kExitUsage);
  CHECK(UsageCode({"inc", "0"}) == kExitUsage);
  CHECK(UsageCode({"inc", "-1"}) == kExitUsage);
  CHECK(UsageCode({"inc", "x"}) == kExitUsage);
  CHECK(UsageCode({"inc", "1", "2"}) == kExitUsage);
  CHECK(UsageCode({"set"}) == kExitUsage);
  CHECK(UsageCode({"set", "many"}) == kExitUsage);
  CHECK(UsageCode({"signal"}) == kExitUsage);
  CHECK(UsageCode({"log-level", "loud"}) == kExitUsage);
  CHECK(UsageCode({"raw"}) == kExitUsage);
  CHECK(UsageCode({"-d", "a", "-c", "b", "status"}) == kExitUsage);
  CHECK(UsageCode({"--timeout", "0", "status"}) == kExitUsage);
  CHECK(UsageCode({"status", "inc"}) == kExitUsage);
  CHECK(UsageCode({"--bogus"}) == kExitUsage);

  const ParsedCommandLine help = Parse({"--help"});
  CHECK_FALSE(help.run);
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("status") != std::string::npos);
  CHECK(help.out.find("log-level") != std::string::npos);
  CHECK(help.out.find("upgrade") != std::string::npos);
  CHECK(help.out.find("reload") != std::string::npos);
  CHECK(help.out.find("not yet supported") == std::string::npos);
  const ParsedCommandLine sub_help = Parse({"set", "--help"});
  CHECK(sub_help.exit_code == 0);
  CHECK(sub_help.out.find("--wait") != std::string::npos);
  const ParsedCommandLine version = Parse({"--version"});
  CHECK(version.exit_code == 0);
  CHECK(version.out.find("einhornctl ") == 0);
}

TEST_CASE("cli: an unknown command or option suggests the nearest one") {
  auto err = [](std::vector<std::string> args) {
    const ParsedCommandLine p = Parse(std::move(args));
    CHECK_FALSE(p.run);
    CHECK(p.exit_code == kExitUsage);
    return p.err;
  };
  CHECK(err({"stats"}) ==
        "einhornctl: unknown command: stats (did you mean status?)\n"
        "Run 'einhornctl --help' for usage.\n");
  CHECK(err({"-c", "web", "upgarde", "--wait"}).rfind(
            "einhornctl: unknown command: upgarde (did you mean upgrade?)\n", 0) == 0);
  CHECK(err({"loglevel", "debug"}).find("(did you mean log-level?)") != std::string::npos);
  CHECK(err({"evnts"}).find("(did you mean events?)") != std::string::npos);
  // Nothing near: no suggestion, still one line and the usage hint.
  CHECK(err({"frobnicate"}) ==
        "einhornctl: unknown command: frobnicate\nRun 'einhornctl --help' for usage.\n");
  // Options, the program's and the subcommand's.
  CHECK(err({"--jsn", "status"}).find("unknown option: --jsn (did you mean --json?)") !=
        std::string::npos);
  CHECK(err({"upgrade", "--wiat"}).find("(did you mean --wait?)") != std::string::npos);
  // Control bytes never reach the terminal, and a huge word is cut.
  const std::string junk = err({"\x1b[2J" + std::string(5000, 'x')});
  CHECK(junk.find('\x1b') == std::string::npos);
  CHECK(junk.size() < 200);
  // An extra argument of a known command keeps CLI11's own words.
  CHECK(err({"status", "inc"}).find("unknown command") == std::string::npos);
}

Target Resolve(const Invocation& inv, const Env& env) {
  const core::Result<Target> t = ResolveTarget(inv, env);
  REQUIRE_MESSAGE(t.ok(), t.error());
  return t.value();
}

TEST_CASE("cli: socket path resolution") {
  Invocation inv;
  inv.command = "status";
  CHECK(Resolve(inv, {}).path == "/tmp/einhorn.sock");
  CHECK(Resolve(inv, {{"TMPDIR", ""}}).path == "/tmp/einhorn.sock");
  CHECK(Resolve(inv, {{"TMPDIR", "/var/tmp//"}}).path == "/var/tmp/einhorn.sock");
  CHECK(Resolve(inv, {{"TMPDIR", "/"}}).path == "/einhorn.sock");
  CHECK(Resolve(inv, {{"TMPDIR", "/var/tmp/"}}).path == "/var/tmp/einhorn.sock");
  // Run by a worker: the master it belongs to.
  CHECK(Resolve(inv, {{"TMPDIR", "/x"}, {"EINHORN_SOCK_PATH", "/run/w.sock"}}).path ==
        "/run/w.sock");
  inv.name = "web";
  CHECK(Resolve(inv, {{"TMPDIR", "/x/"}, {"EINHORN_SOCK_PATH", "/run/w.sock"}}).path ==
        "/x/einhorn-web.sock");
  CHECK(Resolve(inv, {{"TMPDIR", "/"}}).path == "/einhorn-web.sock");
  inv.socket_path = "/explicit.sock";
  CHECK(Resolve(inv, {{"EINHORN_SOCK_PATH", "/run/w.sock"}}).path == "/explicit.sock");
  CHECK_FALSE(Resolve(inv, {{"EINHORN_SOCK_FD", "5"}}).fd.has_value());
}

TEST_CASE("cli: ack uses EINHORN_SOCK_FD unless -d or -c says otherwise") {
  Invocation inv;
  inv.command = "ack";
  const Env env = {{"EINHORN_SOCK_FD", "5"}, {"EINHORN_SOCK_PATH", "/run/w.sock"}};
  CHECK(Resolve(inv, env).fd == 5);
  inv.command = "status";
  CHECK_FALSE(Resolve(inv, env).fd.has_value());
  inv.command = "ack";
  inv.socket_path = "/d.sock";
  CHECK_FALSE(Resolve(inv, env).fd.has_value());
  inv.socket_path.clear();
  inv.name = "web";
  CHECK_FALSE(Resolve(inv, env).fd.has_value());
  inv.name.clear();
  CHECK_FALSE(Resolve(inv, {{"EINHORN_SOCK_FD", ""}}).fd.has_value());
  CHECK_FALSE(ResolveTarget(inv, {{"EINHORN_SOCK_FD", "five"}}).ok());
  CHECK_FALSE(ResolveTarget(inv, {{"EINHORN_SOCK_FD", "-1"}}).ok());
  CHECK_FALSE(ResolveTarget(inv, {{"EINHORN_SOCK_FD", "99999999999999"}}).ok());
}

// Issue 14, item 4, on einhornctl's side: its waits are durations too. CLI11's PositiveNumber
// let nan through, and 1e10 seconds overflowed the clock arithmetic of the wait.
TEST_CASE("cli: every wait takes a finite number of seconds up to 1e6") {
  for (const std::string bad : {"nan", "inf", "-inf", "1e10", "1000001", "-1", "0", "abc", "1s"}) {
    INFO(bad);
    CHECK(UsageCode({"--timeout", bad, "status"}) == kExitUsage);
    CHECK(UsageCode({"events", "--follow", "--interval", bad}) == kExitUsage);
    // Every wait's deadline: 0 is no limit, the rest is refused alike.
    if (bad == "0") continue;
    CHECK(UsageCode({"set", "3", "--wait", "--timeout", bad}) == kExitUsage);
    CHECK(UsageCode({"set", "3", "--wait", "--wait-timeout", bad}) == kExitUsage);
    CHECK(UsageCode({"upgrade", "--wait", "--wait-timeout", bad}) == kExitUsage);
    CHECK(UsageCode({"reload", "--wait-timeout", bad}) == kExitUsage);
    CHECK(UsageCode({"wait", "ready", "--wait-timeout", bad}) == kExitUsage);
    CHECK(UsageCode({"wait", "drained", "--timeout", bad}) == kExitUsage);
  }
  CHECK(Ok({"set", "3", "--wait", "--timeout", "0"}).wait_timeout == 0);
  CHECK(Ok({"wait", "upgraded", "--wait-timeout", "0"}).wait_timeout == 0);
  CHECK(Ok({"--timeout", "0.5", "status"}).timeout == 0.5);
  CHECK(Ok({"--timeout", "1000000", "status"}).timeout == 1e6);
  CHECK(Ok({"set", "3", "--wait", "--timeout", "2.5"}).wait_timeout == 2.5);
  CHECK(Ok({"upgrade", "--wait", "--wait-timeout", "0"}).upgrade_wait_timeout == 0);
}

}  // namespace
}  // namespace einhorn::ctl
