// core/einhorn_state.h: the `state` verb's document, Ruby Einhorn's YAML.dump({:state =>
// State}), built from a Supervisor driven with a fake clock. The shape is checked against Ruby
// Einhorn 1.1.1 itself in tests/e2e/einhorn_state_test.cc; here: the exact text, the values
// each field takes from the supervisor and the options, and strings that need quoting.
#include "core/einhorn_state.h"

#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include <string>

#include "fake_effects.h"

namespace einhorn::core {
namespace {

using test::FakeEffects;

Time At(double seconds) { return Seconds(seconds); }

// 2023-11-14 22:13:20 UTC, at the supervisor's At(100).
constexpr std::int64_t kWallAt100 = 1700000000000000000;

EinhornStateFacts Facts(const Options& o) {
  EinhornStateFacts f;
  f.wall_offset_ns = kWallAt100 - At(100).count();
  f.options = o;
  f.command_path = "/usr/bin/sleep";
  f.bind_fds = {5, 6};
  f.bound_ports = {41234, std::nullopt};
  f.verbosity = 1;
  return f;
}

Options BaseOptions() {
  Options o;
  o.number = 2;
  o.command = {"sleep", "1000"};
  o.socket_path = "/run/einhorn.sock";
  o.pidfile = "/run/einhorn.pid";
  o.lockfile = "/run/einhorn.lock";
  o.binds = {ParseBindSpec("127.0.0.1:0,R,n").value(), ParseBindSpec("unix:/run/app.sock").value()};
  return o;
}

SupervisorConfig Config(int n) {
  SupervisorConfig c;
  c.target = n;
  c.ack_mode.kind = AckMode::Kind::kManual;
  c.signal_timeout = Seconds(5);
  c.jitter = 0;
  return c;
}

TEST_CASE("einhorn state: Ruby's Time format, in UTC") {
  CHECK(RubyTime(0) == "1970-01-01 00:00:00.000000000 +00:00");
  CHECK(RubyTime(-1) == "1969-12-31 23:59:59.999999999 +00:00");
  CHECK(RubyTime(951782400000000000) == "2000-02-29 00:00:00.000000000 +00:00");
  CHECK(RubyTime(1700000000123456789) == "2023-11-14 22:13:20.123456789 +00:00");
  CHECK(RubyTime(4102444799999999999) == "2099-12-31 23:59:59.999999999 +00:00");
}

TEST_CASE("einhorn state: the whole document, byte for byte") {
  FakeEffects fx;
  Supervisor sup(Config(2), fx);
  sup.Start(At(100));  // workers 100 and 101
  sup.Ack(100, At(100.5));
  sup.Ping(100, At(101), wire::Id{wire::Id::Kind::kString, "req-1"}, kWallAt100 + 1250000000);
  Options o = BaseOptions();
  o.command_name = "web";
  o.max_upgrade_additional = 1;
  o.signal_timeout = 5;
  o.nice.master = 3;
  o.reexec_as = {"env", "FOO=bar", "einhorn-cpp"};
  o.drop_env_vars = {"SECRET"};
  o.ack_mode.kind = AckMode::Kind::kManual;
  o.seconds = 2.5;
  const std::string doc = EinhornStateYaml(sup, Facts(o));
  CHECK(doc ==
        "---\n"
        ":state:\n"
        "  :children:\n"
        "    100:\n"
        "      :type: :worker\n"
        "      :version: 0\n"
        "      :acked: true\n"
        "      :signaled: !ruby/object:Set\n"
        "        hash: {}\n"
        "      :last_signaled_at:\n"
        "      :index: 0\n"
        "      :spinup_time: 2023-11-14 22:13:20.000000000 +00:00\n"
        "      :pinged_at: 2023-11-14 22:13:21.250000000 +00:00\n"
        "      :pinged_request_id: \"req-1\"\n"
        "    101:\n"
        "      :type: :worker\n"
        "      :version: 0\n"
        "      :acked: false\n"
        "      :signaled: !ruby/object:Set\n"
        "        hash: {}\n"
        "      :last_signaled_at:\n"
        "      :index: 1\n"
        "      :spinup_time: 2023-11-14 22:13:20.000000000 +00:00\n"
        "  :config:\n"
        "    :number: 2\n"
        "    :backlog: 100\n"
        "    :seconds: 2.5\n"
        "    :max_upgrade_additional: 1\n"
        "  :versions: {}\n"
        "  :version: 0\n"
        "  :sockets: {}\n"
        "  :orig_cmd:\n"
        "  - \"sleep\"\n"
        "  - \"1000\"\n"
        "  :bind:\n"
        "  - - \"127.0.0.1\"\n"
        "    - 0\n"
        "    - - \"r\"\n"
        "      - \"n\"\n"
        "  - - \"unix:/run/app.sock\"\n"
        "    -\n"
        "    - []\n"
        "  :bind_fds:\n"
        "  - 5\n"
        "  - 6\n"
        "  :bound_ports:\n"
        "  - 41234\n"
        "  -\n"
        "  :cmd:\n"
        "  - \"/usr/bin/sleep\"\n"
        "  - \"1000\"\n"
        "  :script_name:\n"
        "  :respawn: true\n"
        "  :upgrading: false\n"
        "  :smooth_upgrade: false\n"
        "  :reloading_for_upgrade: false\n"
        "  :path:\n"
        "  :cmd_name: \"web\"\n"
        "  :verbosity: 1\n"
        "  :generation: 0\n"
        "  :last_spinup: 2023-11-14 22:13:20.000000000 +00:00\n"
        "  :ack_mode:\n"
        "    :type: :manual\n"
        "  :kill_children_on_exit: false\n"
        "  :command_socket_as_fd: false\n"
        "  :socket_path: \"/run/einhorn.sock\"\n"
        "  :pidfile: \"/run/einhorn.pid\"\n"
        "  :lockfile: \"/run/einhorn.lock\"\n"
        "  :consecutive_deaths_before_ack: 0\n"
        "  :last_upgraded:\n"
        "  :nice:\n"
        "    :master: 3\n"
        "    :worker:\n"
        "    :renice_cmd:\n"
        "  :reexec_commandline:\n"
        "  - \"env\"\n"
        "  - \"FOO=bar\"\n"
        "  - \"einhorn-cpp\"\n"
        "  :drop_environment_variables:\n"
        "  - \"SECRET\"\n"
        "  :signal_timeout: 5\n"
        "  :preloaded: false\n");
}

// The document read back by a YAML reader (yaml-cpp keeps Ruby's symbols as ":name" strings).
YAML::Node Load(const Supervisor& sup, const Options& o) {
  const YAML::Node root = YAML::Load(EinhornStateYaml(sup, Facts(o)));
  REQUIRE(root[":state"].IsMap());
  return root[":state"];
}

TEST_CASE("einhorn state: signals, the SIGKILL after -t, and the timer ack mode") {
  FakeEffects fx;
  SupervisorConfig c = Config(3);
  c.ack_mode.kind = AckMode::Kind::kTimer;
  c.ack_mode.timer_seconds = 1;
  Supervisor sup(c, fx);
  sup.Start(At(100));  // 100, 101, 102
  sup.Tick(At(101));   // all acked by the timer
  sup.SetTarget(2, At(102));  // drains 102 with SIGUSR2
  Options o = BaseOptions();
  YAML::Node s = Load(sup, o);
  CHECK(s[":config"][":number"].as<int>() == 2);
  CHECK(s[":children"].size() == 3);
  YAML::Node drained = s[":children"]["102"];
  CHECK(drained[":acked"].as<bool>());
  CHECK(drained[":signaled"].Tag() == "!ruby/object:Set");
  CHECK(drained[":signaled"]["hash"]["USR2"].as<bool>());
  CHECK(drained[":signaled"]["hash"].size() == 1);
  CHECK(drained[":last_signaled_at"].as<std::string>() == "2023-11-14 22:13:22.000000000 +00:00");
  CHECK(s[":children"]["100"][":signaled"]["hash"].size() == 0);
  CHECK(s[":children"]["100"][":last_signaled_at"].IsNull());
  CHECK(s[":ack_mode"][":type"].as<std::string>() == ":timer");
  CHECK(s[":ack_mode"][":timeout"].as<std::string>() == "1");  // an Integer, as Einhorn's default
  CHECK(s[":respawn"].as<bool>());

  sup.Tick(At(107));  // -t 5: SIGKILL
  s = Load(sup, o);
  drained = s[":children"]["102"];
  CHECK(drained[":signaled"]["hash"]["USR2"].as<bool>());
  CHECK(drained[":signaled"]["hash"]["KILL"].as<bool>());
  CHECK(drained[":last_signaled_at"].as<std::string>() == "2023-11-14 22:13:27.000000000 +00:00");

  o.ack_mode.timer_seconds = 0.25;
  CHECK(Load(sup, o)[":ack_mode"][":timeout"].as<std::string>() == "0.25");
  sup.Stop(StopKind::kTerminate, At(109));
  s = Load(sup, o);
  CHECK_FALSE(s[":respawn"].as<bool>());
  CHECK(s[":children"]["100"][":signaled"]["hash"]["TERM"].as<bool>());
}

TEST_CASE("einhorn state: an upgrade shows as Einhorn's version and upgrading") {
  FakeEffects fx;
  Supervisor sup(Config(1), fx);
  sup.Start(At(100));
  sup.Ack(100, At(100));
  REQUIRE(sup.Upgrade(UpgradeStrategy::kSmooth, At(104)).started);
  const Options o = BaseOptions();
  YAML::Node s = Load(sup, o);
  CHECK(s[":upgrading"].as<bool>());
  CHECK(s[":smooth_upgrade"].as<bool>());
  CHECK(s[":version"].as<int>() == 1);
  CHECK(s[":children"]["100"][":version"].as<int>() == 0);
  CHECK(s[":children"]["101"][":version"].as<int>() == 1);
  CHECK(s[":last_upgraded"].as<std::string>() == "2023-11-14 22:13:24.000000000 +00:00");
  CHECK(s[":last_spinup"].as<std::string>() == "2023-11-14 22:13:24.000000000 +00:00");

  EinhornStateFacts f = Facts(o);
  f.reloads = 2;
  f.reloading = true;
  f.then_upgrades = {UpgradeStrategy::kFleet};
  s = YAML::Load(EinhornStateYaml(sup, f))[":state"];
  CHECK(s[":generation"].as<int>() == 2);
  CHECK(s[":reloading_for_upgrade"].as<bool>());
  CHECK_FALSE(s[":smooth_upgrade"].as<bool>());
}

TEST_CASE("einhorn state: strings are quoted whatever they hold") {
  FakeEffects fx;
  Supervisor sup(Config(1), fx);
  sup.Start(At(100));
  const std::string odd = "a\"b\\c\nd: e # f %25 true";
  sup.Ping(100, At(100), wire::Id{wire::Id::Kind::kString, odd}, kWallAt100);
  Options o = BaseOptions();
  o.command = {"true", "-x", "010", "", odd};
  o.command_name = "yes";
  const YAML::Node s = Load(sup, o);
  REQUIRE(s[":orig_cmd"].size() == 5);
  CHECK(s[":orig_cmd"][1].as<std::string>() == "-x");
  CHECK(s[":orig_cmd"][2].as<std::string>() == "010");
  CHECK(s[":orig_cmd"][3].as<std::string>() == "");
  CHECK(s[":orig_cmd"][4].as<std::string>() == odd);
  CHECK(s[":cmd_name"].as<std::string>() == "yes");
  CHECK(s[":children"]["100"][":pinged_request_id"].as<std::string>() == odd);
  // A request_id keeps its YAML type: an integer stays plain.
  sup.Ping(100, At(100), wire::Id{wire::Id::Kind::kInt, "7"}, kWallAt100);
  CHECK(EinhornStateYaml(sup, Facts(o)).find(":pinged_request_id: 7\n") !=
        std::string::npos);
  // No workers: an empty mapping.
  sup.Stop(StopKind::kQuit, At(101));
  sup.ChildExited(100, ExitStatus{true, 3}, At(101));
  CHECK(EinhornStateYaml(sup, Facts(o)).find("  :children: {}\n") !=
        std::string::npos);
}

}  // namespace
}  // namespace einhorn::core
