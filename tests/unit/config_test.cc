#include "core/config.h"

#include <doctest/doctest.h>

#include "core/flags.h"

namespace einhorn::core {
namespace {

const std::map<std::string, std::string> kEnv{{"TMPDIR", "/tmp"}};

LoadedConfig Load(const std::string& text) {
  auto loaded = LoadConfig(ConfigSource{"app.yaml", text});
  INFO(loaded.error());
  REQUIRE(loaded.ok());
  return loaded.value();
}

std::string LoadError(const std::string& text) {
  auto loaded = LoadConfig(ConfigSource{"app.yaml", text});
  REQUIRE_FALSE(loaded.ok());
  CHECK(loaded.error().find('\n') == std::string::npos);
  CHECK(loaded.error().rfind("app.yaml", 0) == 0);
  return loaded.error();
}

FlagsOutcome WithFile(std::vector<std::string> args, const std::string& text) {
  args.insert(args.begin(), "einhorn-cpp");
  const ConfigSource source{"app.yaml", text};
  return ParseFlags(args, kEnv, &source);
}

Options Effective(std::vector<std::string> args, const std::string& text) {
  FlagsOutcome out = WithFile(std::move(args), text);
  INFO(out.err);
  REQUIRE((out.kind == FlagsOutcome::Kind::kRun || out.kind == FlagsOutcome::Kind::kCheckConfig));
  return out.options;
}

TEST_CASE("every setting of the file reaches the options") {
  const Options o = Effective({"--config", "app.yaml"}, R"(
command: [bundle, exec, bin/work, --queue, mail]
number: 8
bind: [127.0.0.1:8080, "unix:/run/app.sock"]
backlog: 64
ack_mode: manual
command_name: mail
socket_path: /run/mail.sock
pidfile: /run/mail.pid
lockfile: /run/mail.lock
kill_children_on_exit: yes
log_level: debug
seconds: 2.5
signal_timeout: 30
drop_env_var: [SECRET, TOKEN]
nice: "5:10"
command_socket_as_fd: true
control_allow_uid: deploy
control_allow_gid: [1001, ops]
max_unacked: 3
max_upgrade_additional: 2
ack_timeout: 90
upgrade_timeout: 600
upgrade_max_failures: 5
canary: false
drain_signal: TERM
subreaper: true
worker_watchdog: 15
reexec_as: env FOO=bar /usr/bin/einhorn-cpp
log_format: json
metrics_listen: 127.0.0.1:9100
)");
  CHECK(o.command == std::vector<std::string>{"bundle", "exec", "bin/work", "--queue", "mail"});
  CHECK(o.number == 8);
  REQUIRE(o.binds.size() == 2);
  CHECK(o.binds[0].port == 8080);
  CHECK(o.binds[1].path == "/run/app.sock");
  CHECK(o.backlog == 64);
  CHECK(o.ack_mode.kind == AckMode::Kind::kManual);
  CHECK(o.command_name == "mail");
  CHECK(o.socket_path == "/run/mail.sock");
  CHECK(o.pidfile == "/run/mail.pid");
  CHECK(o.lockfile == "/run/mail.lock");
  CHECK(o.kill_children_on_exit);
  CHECK(o.verbosity == 0);
  CHECK(o.seconds == 2.5);
  CHECK(o.signal_timeout == 30);
  CHECK(o.drop_env_vars == std::vector<std::string>{"SECRET", "TOKEN"});
  CHECK(o.nice.master == 5);
  CHECK(o.nice.worker == 10);
  CHECK(o.command_socket_as_fd);
  CHECK(o.control_allow_uids == std::vector<std::string>{"deploy"});
  CHECK(o.control_allow_gids == std::vector<std::string>{"1001", "ops"});
  CHECK(o.max_unacked == 3);
  CHECK(o.max_upgrade_additional == 2);
  CHECK(o.ack_timeout == 90);
  CHECK(o.upgrade_timeout == 600);
  CHECK(o.upgrade_max_failures == 5);
  CHECK_FALSE(o.canary);
  CHECK(o.drain_signal == Signal::kTerm);
  CHECK(o.subreaper);
  CHECK(o.worker_watchdog == 15);
  CHECK(o.reexec_as == std::vector<std::string>{"env", "FOO=bar", "/usr/bin/einhorn-cpp"});
  CHECK(o.log_format == LogFormat::kJson);
  CHECK(o.metrics_listen == "127.0.0.1:9100");
}

TEST_CASE("flags override the file, and what neither sets keeps its default") {
  const std::string file =
      "command: bin/work --slow\nnumber: 8\nbind: 127.0.0.1:8080\n"
      "log_level: error\ncanary: true\n";
  const Options o = Effective({"--config", "app.yaml", "-n", "3", "-b", "127.0.0.1:9090", "-v",
                               "--no-canary", "--", "bin/other"},
                              file);
  CHECK(o.number == 3);
  REQUIRE(o.binds.size() == 1);  // -b replaces the file's list, never appends to it
  CHECK(o.binds[0].port == 9090);
  CHECK(o.verbosity == 1);  // -v steps from the file's level
  CHECK_FALSE(o.canary);
  CHECK(o.command == std::vector<std::string>{"bin/other"});
  CHECK(o.backlog == 100);
  CHECK(o.pidfile == "/tmp/einhorn.pid");

  const Options file_only = Effective({"--config", "app.yaml"}, file);
  CHECK(file_only.number == 8);
  CHECK(file_only.command == std::vector<std::string>{"bin/work", "--slow"});
  CHECK(file_only.verbosity == 2);
}

TEST_CASE("a repeatable flag replaces the file's list") {
  const Options o =
      Effective({"--config", "app.yaml", "--drop-env-var", "B", "x"}, "drop_env_var: [A, C]\n");
  CHECK(o.drop_env_vars == std::vector<std::string>{"B"});
}

TEST_CASE("command_name in the file names the default paths") {
  const Options o = Effective({"--config", "app.yaml"}, "command_name: mail\ncommand: [w]\n");
  CHECK(o.socket_path == "/tmp/einhorn-mail.sock");
  CHECK(o.lockfile == "/tmp/einhorn-mail.lock");
}

TEST_CASE("--config without the text asks for the file, and --check-config says so") {
  FlagsOutcome need = ParseFlags({"einhorn-cpp", "--config", "/etc/app.yaml", "-n", "2"}, kEnv);
  CHECK(need.kind == FlagsOutcome::Kind::kNeedConfig);
  CHECK(need.config_path == "/etc/app.yaml");
  FlagsOutcome check = WithFile({"--check-config", "app.yaml"}, "command: [w]\n");
  CHECK(check.kind == FlagsOutcome::Kind::kCheckConfig);
  CHECK(check.config_path == "app.yaml");
  FlagsOutcome both = ParseFlags({"einhorn-cpp", "--config", "a", "--check-config", "a"}, kEnv);
  CHECK(both.kind == FlagsOutcome::Kind::kExit);
  CHECK(both.exit_code == kExitUsage);
}

TEST_CASE("a file without a command needs one on the command line") {
  FlagsOutcome out = WithFile({"--config", "app.yaml"}, "number: 2\n");
  REQUIRE(out.kind == FlagsOutcome::Kind::kExit);
  CHECK(out.err.find("no worker command") != std::string::npos);
  CHECK(Effective({"--config", "app.yaml", "w"}, "number: 2\n").number == 2);
}

TEST_CASE("an empty file or one of comments sets nothing") {
  CHECK(Load("").keys.empty());
  CHECK(Load("# nothing yet\n").keys.empty());
  CHECK(Load("---\n").keys.empty());
}

TEST_CASE("errors name the file, the line and the key") {
  CHECK(LoadError("number: 4\nnumbr: 5\n") ==
        "app.yaml:2: numbr: unknown key (did you mean number?)");
  CHECK(LoadError("max-unacked: 2\n") ==
        "app.yaml:1: max-unacked: unknown key (did you mean max_unacked?)");
  CHECK(LoadError("frobnicate: 1\n") ==
        "app.yaml:1: frobnicate: unknown key (see man einhorn-cpp.yaml)");
  CHECK(LoadError("number: four\n") == "app.yaml:1: number: expected an integer, got 'four'");
  CHECK(LoadError("number: 99999999999\n") ==
        "app.yaml:1: number: expected an integer, got '99999999999'");
  CHECK(LoadError("number: [1]\n") == "app.yaml:1: number: expected an integer, got a list");
  CHECK(LoadError("number:\n") == "app.yaml:1: number: has no value");
  CHECK(LoadError("seconds: 1.5s\n") ==
        "app.yaml:1: seconds: expected a number of seconds, got '1.5s'");
  CHECK(LoadError("seconds: .nan\n").find("expected a number of seconds") != std::string::npos);
  CHECK(LoadError("canary: maybe\n") == "app.yaml:1: canary: expected true or false, got 'maybe'");
  CHECK(LoadError("bind:\n  - 127.0.0.1:80\n  - 127.0.0.1:99999\n")
            .rfind("app.yaml:3: bind[1]: ", 0) == 0);
  CHECK(LoadError("bind: {a: 1}\n") ==
        "app.yaml:1: bind: expected a string or a list of strings, got a map");
  CHECK(LoadError("command: [w, [x]]\n") ==
        "app.yaml:1: command[1]: expected a string, got a list");
  CHECK(LoadError("command: \"w 'unterminated\"\n").rfind("app.yaml:1: command: ", 0) == 0);
  CHECK(LoadError("ack_mode: sometimes\n").rfind("app.yaml:1: ack_mode: invalid ack mode", 0) == 0);
  CHECK(LoadError("log_level: loud\n") ==
        "app.yaml:1: log_level: expected debug, info or error, got 'loud'");
  CHECK(LoadError("drain_signal: SIGFOO\n") == "app.yaml:1: drain_signal: unknown signal 'SIGFOO'");
  CHECK(LoadError("nice: 99\n").rfind("app.yaml:1: nice: invalid --nice", 0) == 0);
  CHECK(LoadError("log_format: xml\n").rfind("app.yaml:1: log_format: ", 0) == 0);
  CHECK(LoadError("metrics_listen: 0.0.0.0:9100\n").rfind("app.yaml:1: metrics_listen: ", 0) == 0);
  CHECK(LoadError("number: 2\nmetrics_listen: 0.0.0.0:9100\n")
            .rfind("app.yaml:2: metrics_listen: --metrics-listen '0.0.0.0:9100': 0.0.0.0 is not a "
                   "loopback address",
                   0) == 0);
  CHECK(LoadError("metrics_listen: 0.0.0.0:9100\nmetrics_listen_public: false\n")
            .rfind("app.yaml:1: metrics_listen: ", 0) == 0);
  CHECK(LoadError("metrics_listen: localhost:1\nmetrics_listen_public: true\n")
            .rfind("app.yaml:1: metrics_listen: ", 0) == 0);
  CHECK(LoadError("metrics_listen_public: maybe\n").rfind("app.yaml:1: metrics_listen_public: ", 0) ==
        0);
}

TEST_CASE("values out of range name the key and its line") {
  CHECK(LoadError("command: [w]\n\nnumber: 0\n") ==
        "app.yaml:3: number: -n/--number must be at least 1 (got 0)");
  CHECK(LoadError("backlog: -1\n") == "app.yaml:1: backlog: -l/--backlog must not be negative");
  CHECK(LoadError("upgrade_max_failures: 0\n") ==
        "app.yaml:1: upgrade_max_failures: --upgrade-max-failures must be at least 1");
  CHECK(LoadError("ack_mode: 30\nack_timeout: 10\n").rfind("app.yaml:1: ack_mode: ", 0) == 0);
  CHECK(LoadError("drop_env_var: [A=B]\n").rfind("app.yaml:1: drop_env_var: ", 0) == 0);
  CHECK(LoadError("socket_path: /" + std::string(200, 'x') + "\n")
            .rfind("app.yaml:1: socket_path: ", 0) == 0);
}

TEST_CASE("a long timer ack moves the default ack timeout, as -m does") {
  CHECK(Load("ack_mode: 90\n").options.ack_timeout == 150);
  CHECK(Load("ack_mode: 5\n").options.ack_timeout == 60);
}

TEST_CASE("duplicate keys, several documents and a non-map root are refused") {
  CHECK(LoadError("number: 2\nbacklog: 5\nnumber: 3\n") ==
        "app.yaml:3: number: set twice (first on line 1)");
  CHECK(LoadError("number: 2\n---\nnumber: 3\n").rfind("app.yaml:", 0) == 0);
  CHECK(LoadError("- number\n") ==
        "app.yaml:1: expected a map of settings (key: value), got a list");
  CHECK(LoadError("just words\n") ==
        "app.yaml:1: expected a map of settings (key: value), got a scalar");
  CHECK(LoadError("[a]: 1\n") == "app.yaml:1: a key must be a name, not a list");
}

TEST_CASE("hostile files get an error, not a crash or a hang") {
  CHECK(LoadError("number: [1\n").find("not valid YAML") != std::string::npos);
  CHECK(LoadError(std::string(100000, '[')).find("app.yaml") == 0);
  // An alias bomb: every level doubles; walking it would take 2^30 steps.
  std::string bomb = "a0: &a0 [x, x]\n";
  for (int i = 1; i < 30; ++i) {
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [*a" + std::to_string(i - 1) +
            ", *a" + std::to_string(i - 1) + "]\n";
  }
  CHECK(LoadError(bomb) == "app.yaml:1: anchors and aliases (&x, *x) are not allowed here");
  CHECK(LoadError("number: 2\ncommand: &c [*c]\n") ==
        "app.yaml:2: anchors and aliases (&x, *x) are not allowed here");
  CHECK(LoadError("command: !!binary aGVsbG8=\n") ==
        "app.yaml:1: tags (tag:yaml.org,2002:binary) are not allowed here");
  CHECK(LoadError("command: [[[[[[[[[[w]]]]]]]]]]\n") ==
        "app.yaml:1: nested deeper than a config file needs");
  // yaml-cpp's LoadAll never returns on this one.
  CHECK(LoadError(",rnumber: 0\n3\n").rfind("app.yaml:", 0) == 0);
  CHECK(LoadError("number: \"\xff\"\n") == "app.yaml:1: not UTF-8 text (or a control character)");
  CHECK(LoadError("number: 1\nnice: \"\xed\xa0\x80\"\n") ==
        "app.yaml:2: not UTF-8 text (or a control character)");
  CHECK(LoadError("command: [w, \"a\\0b\"]\n") == "app.yaml:1: command[1]: contains a NUL byte");
  const std::string big(kMaxConfigBytes + 1, '#');
  CHECK(LoadError(big) == "app.yaml: larger than 1 MiB; this is not a config file");
  CHECK(LoadError(std::string("number: 1\0\n", 11)) ==
        "app.yaml:1: not UTF-8 text (or a control character)");
  // A carriage return ends a line only before a line feed (found by config_fuzz: a lone one at
  // the end stayed in the value, and --check-config printed it back as a line break).
  CHECK(LoadError("command: a\ncontrol_allow_uid: s\r") ==
        "app.yaml:2: not UTF-8 text (or a control character)");
  CHECK(LoadError("command: a\rnumber: 2\n") ==
        "app.yaml:1: not UTF-8 text (or a control character)");
  // yaml-cpp decodes \N and \_ to the bytes 0x85 and 0xA0, not UTF-8 (found by config_fuzz:
  // the command loaded, and --check-config printed a file that did not).
  const std::string not_text =
      "a value that is not UTF-8 text (yaml-cpp decodes the escapes \\N and \\_ to single "
      "bytes; write the character itself, or \\x85 or \\xA0)";
  CHECK(LoadError("command: \"\\NUL04 \"") == "app.yaml:1: " + not_text);
  CHECK(LoadError("number: 1\ncommand: [w, \"a\\_b\"]\n") == "app.yaml:2: " + not_text);
  CHECK(LoadError("command: [w]\npidfile: \"\\N\"\n") == "app.yaml:2: " + not_text);
  CHECK(LoadError("command: [w]\n\"\\N\": 1\n") == "app.yaml:2: " + not_text);
  // The same characters written as \x85 and \xA0 (or as themselves) are text.
  const auto escaped = LoadConfig(ConfigSource{"app.yaml", "command: [\"a\\x85\\xA0b\"]\n"});
  REQUIRE_MESSAGE(escaped.ok(), escaped.error());
  CHECK(escaped.value().options.command == std::vector<std::string>{"a\u0085\u00A0b"});
  const auto crlf = LoadConfig(ConfigSource{"app.yaml", "command: a\r\nnumber: 2\r\n"});
  REQUIRE_MESSAGE(crlf.ok(), crlf.error());
  CHECK(crlf.value().options.number == 2);
  CHECK(crlf.value().options.command == std::vector<std::string>{"a"});
}

TEST_CASE("the rendered settings read back to the same options") {
  const Options a = Effective({"--config", "app.yaml"}, R"(
command: [bin/work, "two words", "#hash", "~", "true", ""]
number: 3
bind: ["127.0.0.1:0,r", "[::1]:0", "unix:/tmp/a b.sock"]
ack_mode: 0.25
signal_timeout: 0.1
nice: "0:5:renice"
pidfile: "~"
command_name: "yes"
reexec_as: [env, "A=1", einhorn-cpp]
)");
  const std::string text = RenderConfig(a);
  INFO(text);
  const Options b = Effective({"--config", "app.yaml"}, text);
  CHECK(a == b);
  CHECK(RenderConfig(b) == text);
  const Options defaults = Effective({"--config", "app.yaml", "w"}, "");
  CHECK(Effective({"--config", "app.yaml"}, RenderConfig(defaults)) == defaults);
}

TEST_CASE("config: preload is a path, or true for the zygote of --zygote") {
  Options o = Load("command: [x]\npreload: true\n").options;
  CHECK(o.zygote);
  CHECK(o.preload.empty());
  o = Load("command: [x]\npreload: false\n").options;
  CHECK_FALSE(o.zygote);
  CHECK(o.preload.empty());
  o = Load("command: [x]\npreload: app.rb\n").options;
  CHECK_FALSE(o.zygote);
  CHECK(o.preload == "app.rb");
  // Quoted, true is a file's name; shown as ./true so that it reads back as that file.
  o = Load("command: [x]\npreload: \"true\"\n").options;
  CHECK_FALSE(o.zygote);
  CHECK(o.preload == "true");
  const std::string text = RenderConfig(o);
  CHECK(text.find("preload: ./true") != std::string::npos);
  CHECK(Load(text).options.preload == "./true");
  CHECK(RenderConfig(Load(text).options) == text);
  o = Load("command: [x]\npreload: \"\"\n").options;
  CHECK_FALSE(o.zygote);
  CHECK(o.preload.empty());
  CHECK(LoadError("command: [x]\npreload: [a]\n").find("preload") != std::string::npos);
}

TEST_CASE("every key is documented as live or restart-only") {
  const std::vector<std::string> keys = ConfigKeys();
  CHECK(keys.size() == 41);
  CHECK(IsLiveKey("number"));
  CHECK(IsLiveKey("command"));
  CHECK_FALSE(IsLiveKey("bind"));
  CHECK_FALSE(IsLiveKey("worker_watchdog"));
  CHECK_FALSE(IsLiveKey("metrics_listen_public"));
  CHECK_FALSE(IsLiveKey("no_such_key"));
}

TEST_CASE("reload takes live changes and names them") {
  const Options running = Effective({"--config", "app.yaml"}, "command: [w]\nnumber: 2\n");
  const Options reread =
      Effective({"--config", "app.yaml"}, "command: [w2, --fast]\nnumber: 4\nseconds: 3\n");
  auto r = ReconcileReload(running, reread);
  REQUIRE(r.ok());
  CHECK(r.value().options == reread);
  CHECK(r.value().changed == std::vector<std::string>{"command: [w] -> [w2, --fast]",
                                                      "number: 2 -> 4", "seconds: 1 -> 3"});
  auto same = ReconcileReload(running, running);
  REQUIRE(same.ok());
  CHECK(same.value().changed.empty());
}

TEST_CASE("reload refuses a change that needs a restart, naming every such key") {
  const Options running = Effective({"--config", "app.yaml"}, "command: [w]\n");
  const Options reread =
      Effective({"--config", "app.yaml"}, "command: [w2]\nbind: 127.0.0.1:80\nbacklog: 5\n");
  auto r = ReconcileReload(running, reread);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() ==
        "the config changes what only a restart of the master can change: bind ([] -> "
        "[127.0.0.1:80]), backlog (100 -> 5); nothing was changed");
}

TEST_CASE("config: worker_output and worker_log_dir, and back in --check-config's output") {
  const LoadedConfig c = Load("worker_output: prefix\nworker_log_dir: /var/log/app\n");
  CHECK(c.options.worker_output == WorkerOutput::kPrefix);
  CHECK(c.options.worker_log_dir == "/var/log/app");
  const std::string rendered = RenderConfig(c.options);
  CHECK(rendered.find("worker_output: prefix") != std::string::npos);
  CHECK(rendered.find("worker_log_dir: /var/log/app") != std::string::npos);
  CHECK_FALSE(Load("worker_output: ~\n").options.worker_output.has_value());
  CHECK(LoadError("worker_output: raw\n") ==
        "app.yaml:1: worker_output: --worker-output must be inherit, prefix or json (got 'raw')");
  CHECK(LoadError("worker_log_dir: logs\n") ==
        "app.yaml:1: worker_log_dir: expected an absolute directory path, got 'logs'");
  // Live keys: a reload takes them for the workers it starts from then on.
  CHECK(IsLiveKey("worker_output"));
  CHECK(IsLiveKey("worker_log_dir"));
}

}  // namespace
TEST_CASE("metrics_listen_public lets metrics_listen take any address, before or after it") {
  for (const char* text : {"metrics_listen_public: true\nmetrics_listen: 0.0.0.0:9100\n",
                           "metrics_listen: 0.0.0.0:9100\nmetrics_listen_public: true\n"}) {
    CAPTURE(text);
    auto loaded = LoadConfig(ConfigSource{"app.yaml", text});
    REQUIRE_MESSAGE(loaded.ok(), loaded.error());
    CHECK(loaded.value().options.metrics_listen == "0.0.0.0:9100");
    CHECK(loaded.value().options.metrics_listen_public);
  }
}

}  // namespace einhorn::core
