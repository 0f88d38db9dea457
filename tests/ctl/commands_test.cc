// ctl/commands.h: every command against a scripted master in memory, with a fake clock.
#include "ctl/commands.h"

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/events.h"
#include "ctl/render.h"
#include "fake_master.h"

namespace einhorn::ctl {
namespace {

using core::wire::Request;
using test::Answer;
using test::Script;

class FakeClock : public Clock {
 public:
  double Now() override { return now_; }
  void Sleep(double seconds) override {
    now_ += seconds;
    ++sleeps_;
  }
  int sleeps() const { return sleeps_; }

 private:
  double now_ = 1000;
  int sleeps_ = 0;
};

// Runs one command line against `script` and keeps what it printed and sent.
struct Harness {
  explicit Harness(Script s) : script(std::move(s)) {}

  int Run(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), "einhornctl");
    const ParsedCommandLine p = ParseCommandLine(args);
    REQUIRE_MESSAGE(p.run, p.err);
    in.str(input);
    Context ctx;
    ctx.out = &out;
    ctx.err = &err;
    ctx.in = &in;
    ctx.stdin_tty = stdin_tty;
    ctx.stdout_tty = stdout_tty;
    ctx.user = "tester";
    ctx.parent_pid = 777;
    ctx.clock = &clock;
    ctx.connect = [this]() -> core::Result<std::unique_ptr<Connection>> {
      ++connects;
      if (!reachable) {
        return core::Result<std::unique_ptr<Connection>>::Error(
            "cannot connect to /nowhere: No such file or directory");
      }
      auto conn = std::make_unique<test::ScriptedConnection>(script, &sent);
      conn->on_elapse = [this](std::optional<double> seconds) {
        waits.push_back(seconds);
        if (seconds) clock.Sleep(*seconds);
      };
      return std::unique_ptr<Connection>(std::move(conn));
    };
    return ctl::Run(p.invocation, ctx);
  }

  std::vector<std::string> Verbs() const {
    std::vector<std::string> v;
    for (const Request& r : sent) v.push_back(r.command);
    return v;
  }

  Script script;
  std::vector<Request> sent;
  std::ostringstream out, err;
  std::istringstream in;
  FakeClock clock;
  bool stdin_tty = false;
  bool stdout_tty = false;
  bool reachable = true;
  int connects = 0;
  std::vector<std::optional<double>> waits;  // each wait of the connection (none: for ever)
};

using Specs = std::vector<RequestSpec>;

Specs Plan(std::vector<std::string> args) {
  args.insert(args.begin(), "einhornctl");
  return PlanRequests(ParseCommandLine(args).invocation);
}

TEST_CASE("commands: the requests each command sends") {
  CHECK(Plan({"inc"}) == Specs{{"inc", {}}});
  CHECK(Plan({"inc", "3"}) == Specs(3, {"inc", {}}));
  CHECK(Plan({"dec", "2"}) == Specs(2, {"dec", {}}));
  CHECK(Plan({"set", "8"}) == Specs{{"set_workers", {"8"}}});
  CHECK(Plan({"signal", "HUP"}) == Specs{{"signal", {"HUP"}}});
  CHECK(Plan({"die"}) == Specs{{"die", {}}});
  CHECK(Plan({"die", "TERM"}) == Specs{{"die", {"TERM"}}});
  CHECK(Plan({"quieter"}) == Specs{{"quieter", {}}});
  CHECK(Plan({"louder"}) == Specs{{"louder", {}}});
  CHECK(Plan({"help"}) == Specs{{"help", {}}});
  CHECK(Plan({"state"}) == Specs{{"state", {}}});
  CHECK(Plan({"raw", "config", "{a: 1}"}) == Specs{{"config", {"{a: 1}"}}});
  CHECK(Plan({"upgrade"}) == Specs{{"upgrade", {}}});
  CHECK(Plan({"upgrade", "--wait"}) == Specs{{"upgrade", {}}});
  CHECK(Plan({"upgrade", "--fleet"}) == Specs{{"upgrade_fleet", {}}});
  CHECK(Plan({"reload"}) == Specs{{"reload", {}}});
  CHECK(Plan({"status"}).empty());
  CHECK(Plan({"ack"}).empty());
}

TEST_CASE("commands: inc N sends N requests with ids 1..N and prints every reply") {
  Harness h(test::EinhornLike());
  CHECK(h.Run({"inc", "3"}) == kExitOk);
  REQUIRE(h.sent.size() == 3);
  for (int i = 0; i < 3; ++i) {
    REQUIRE(h.sent[i].id.has_value());
    CHECK(h.sent[i].id->kind == core::wire::Id::Kind::kInt);
    CHECK(h.sent[i].id->text == std::to_string(i + 1));
    CHECK(h.sent[i].args_state == Request::ArgsState::kList);
  }
  CHECK(h.out.str() ==
        "Incrementing number of workers from 2 -> 3\nIncrementing number of workers from 3 -> 4\n"
        "Incrementing number of workers from 4 -> 5\n");
  CHECK(h.err.str().empty());
  CHECK(h.connects == 1);
}

TEST_CASE("commands: a refusal stops the sequence, goes to stderr and exits 1") {
  Harness h(test::EinhornLike());
  CHECK(h.Run({"dec", "3"}) == kExitRefused);
  CHECK(h.Verbs() == std::vector<std::string>{"dec", "dec"});
  CHECK(h.out.str() == "Decrementing number of workers from 2 -> 1\n");
  CHECK(h.err.str().find("Can't decrease number of workers") == 0);
}

TEST_CASE("commands: --json wraps the messages") {
  Harness h(test::EinhornLike());
  CHECK(h.Run({"--json", "dec", "3"}) == kExitRefused);
  const nlohmann::json j = nlohmann::json::parse(h.out.str());
  CHECK(j["error"] == true);
  REQUIRE(j["messages"].size() == 2);
  CHECK(j["messages"][0] == "Decrementing number of workers from 2 -> 1");

  Harness ok(test::EinhornLike());
  CHECK(ok.Run({"signal", "USR2", "--json"}) == kExitOk);
  const nlohmann::json k = nlohmann::json::parse(ok.out.str());
  CHECK(k["error"] == false);
  CHECK(k["messages"] == nlohmann::json::array({""}));
}

TEST_CASE("commands: status as a table and as JSON") {
  Harness h(test::EinhornLike());
  CHECK(h.Run({"status"}) == kExitOk);
  CHECK(h.out.str().rfind("target 2 | generation 1 | ready 2/2 | booting 0 | draining 0", 0) == 0);
  CHECK(h.out.str().find("\nSLOT  INDEX  PID ") != std::string::npos);
  CHECK(h.out.str().find("5001") != std::string::npos);

  Harness j(test::EinhornLike());
  CHECK(j.Run({"status", "--json"}) == kExitOk);
  const nlohmann::json doc = nlohmann::json::parse(j.out.str());
  CHECK(doc["target"] == 2);
  CHECK(doc["workers"].size() == 2);
}

TEST_CASE("commands: status from a master that does not know it") {
  Harness h([](const Request&) { return test::Say("Unrecognized command: \"status\"\n\nhelp"); });
  CHECK(h.Run({"status"}) == kExitRefused);
  CHECK(h.err.str().find("does not know `status`") != std::string::npos);
  Harness g([](const Request&) { return test::Say("master_pid: [oops"); });
  CHECK(g.Run({"status"}) == kExitRefused);
  CHECK(g.err.str().find("not a pool status") != std::string::npos);
}

TEST_CASE("commands: an unreachable or silent master exits 3") {
  Harness h(test::EinhornLike());
  h.reachable = false;
  CHECK(h.Run({"inc"}) == kExitUnreachable);
  CHECK(h.err.str() == "einhornctl: cannot connect to /nowhere: No such file or directory\n");
  CHECK(h.out.str().empty());

  Harness s([](const Request&) {
    Answer a;
    a.silent = true;
    return a;
  });
  CHECK(s.Run({"status", "--json"}) == kExitUnreachable);
  CHECK(s.err.str().find("no reply") != std::string::npos);
  CHECK(s.out.str().empty());
}

// A master whose upgrades end as `end`, `pause` apart.
Script Upgrades(test::UpgradeEnd end, std::chrono::milliseconds pause = {}) {
  return [end, pause](const Request& r) {
    if (r.command != "upgrade" && r.command != "upgrade_fleet") return test::Refuse("no");
    Answer a = test::UpgradeAnswer(r.command, 2, end);
    a.pause = pause;
    return a;
  };
}

const char* const kFailure =
    "Upgrade to generation 2 failed: 3 new workers failed (the last: worker 5102 exited with "
    "status 3 before it was ready). Rolled back: generation 1 keeps serving (2 ready)\n";

TEST_CASE("commands: upgrade --wait prints every message and exits 0 on Upgrade done") {
  Harness h(Upgrades(test::UpgradeEnd::kDone));
  CHECK(h.Run({"upgrade", "--wait"}) == kExitOk);
  REQUIRE(h.sent.size() == 1);
  CHECK(h.sent[0].command == "upgrade");
  CHECK(h.sent[0].id->text == "1");
  CHECK(h.sent[0].args_state == Request::ArgsState::kList);
  CHECK(h.sent[0].args.empty());
  // Not a terminal: progress lines are lines like the others.
  CHECK(h.out.str() ==
        "Upgrading smoothly, as commanded\n"
        "Progress: 0/2 new ready, 0/2 old drained\n"
        "Progress: 1/2 new ready, 0/2 old drained\n"
        "draining worker 5000 (index 0, generation 1): replaced by a ready worker\n"
        "Progress: 1/2 new ready, 1/2 old drained\n"
        "Progress: 2/2 new ready, 1/2 old drained\n"
        "draining worker 5001 (index 1, generation 1): replaced by a ready worker\n"
        "Progress: 2/2 new ready, 2/2 old drained\n"
        "Upgraded successfully to generation 2.\n"
        "Upgrade done\n");
  CHECK(h.err.str().empty());
}

TEST_CASE("commands: upgrade --fleet sends upgrade_fleet") {
  Harness h(Upgrades(test::UpgradeEnd::kDone));
  CHECK(h.Run({"upgrade", "--fleet", "--wait"}) == kExitOk);
  CHECK(h.Verbs() == std::vector<std::string>{"upgrade_fleet"});
  CHECK(h.out.str().rfind("Upgrading fleet, as commanded\n", 0) == 0);
}

TEST_CASE("commands: upgrade without --wait returns after the first reply") {
  for (const test::UpgradeEnd end : {test::UpgradeEnd::kDone, test::UpgradeEnd::kSilence}) {
    Harness h(Upgrades(end));
    CHECK(h.Run({"upgrade"}) == kExitOk);
    CHECK(h.out.str() == "Upgrading smoothly, as commanded\n");
    CHECK(h.err.str().empty());
    CHECK(h.waits.empty());  // nothing more was read
  }
  Harness j(Upgrades(test::UpgradeEnd::kSilence));
  CHECK(j.Run({"upgrade", "--fleet", "--json"}) == kExitOk);
  const nlohmann::json doc = nlohmann::json::parse(j.out.str());
  CHECK(doc["messages"] == nlohmann::json::array({"Upgrading fleet, as commanded"}));
  CHECK(doc["error"] == false);
}

TEST_CASE("commands: an upgrade refused at once exits 1, with or without --wait") {
  for (const bool wait : {false, true}) {
    Harness h(
        [](const Request&) { return test::Refuse("Can't upgrade: einhorn-cpp is shutting down"); });
    std::vector<std::string> args = {"upgrade"};
    if (wait) args.push_back("--wait");
    CHECK(h.Run(args) == kExitRefused);
    CHECK(h.out.str().empty());
    CHECK(h.err.str() == "Can't upgrade: einhorn-cpp is shutting down\n");
    CHECK(h.waits.empty());
  }
}

TEST_CASE("commands: upgrade --wait failure exits 1 with the reason on stderr") {
  Harness h(Upgrades(test::UpgradeEnd::kFailed));
  CHECK(h.Run({"upgrade", "--wait"}) == kExitRefused);
  CHECK(h.out.str() ==
        "Upgrading smoothly, as commanded\nProgress: 0/2 new ready, 0/2 old drained\n");
  CHECK(h.err.str() == kFailure);

  // --json: one document at the end, and the reason still on stderr.
  Harness j(Upgrades(test::UpgradeEnd::kFailed));
  CHECK(j.Run({"upgrade", "--wait", "--json"}) == kExitRefused);
  const nlohmann::json doc = nlohmann::json::parse(j.out.str());
  CHECK(doc["error"] == true);
  REQUIRE(doc["messages"].size() == 3);
  CHECK(doc["messages"][0] == "Upgrading smoothly, as commanded");
  CHECK(doc["messages"][2].get<std::string>().rfind("Upgrade to generation 2 failed:", 0) == 0);
  CHECK(j.err.str() == kFailure);
}

TEST_CASE("commands: upgrade --wait when the master hangs up mid-stream exits 3") {
  Harness h(Upgrades(test::UpgradeEnd::kHangUp));
  CHECK(h.Run({"upgrade", "--wait"}) == kExitUnreachable);
  CHECK(h.out.str().find("Progress: 0/2 new ready, 0/2 old drained\n") != std::string::npos);
  CHECK(h.err.str() ==
        "einhornctl: the master closed the connection before the end of the upgrade; it may "
        "still be running (see einhornctl status)\n");

  // --json: like every command that loses the master, diagnostics only.
  Harness j(Upgrades(test::UpgradeEnd::kHangUp));
  CHECK(j.Run({"upgrade", "--wait", "--json"}) == kExitUnreachable);
  CHECK(j.out.str().empty());
  CHECK(j.err.str().find("closed the connection") != std::string::npos);
}

TEST_CASE("commands: upgrade --wait waits longer than --timeout between messages") {
  using std::chrono::seconds;
  // 40 s between messages, more than the 30 s --timeout, 360 s in all.
  Harness h(Upgrades(test::UpgradeEnd::kDone, seconds(40)));
  CHECK(h.Run({"upgrade", "--wait", "--wait-timeout", "1000"}) == kExitOk);
  CHECK(h.out.str().find("Upgrade done\n") != std::string::npos);
  CHECK(h.clock.Now() == 1000 + 9 * 40);
  CHECK(h.waits == std::vector<std::optional<double>>(9, 40.0));
  CHECK(h.err.str().empty());
}

TEST_CASE("commands: upgrade --wait-timeout bounds the whole wait and exits 3") {
  using std::chrono::seconds;
  Harness h(Upgrades(test::UpgradeEnd::kDone, seconds(40)));
  CHECK(h.Run({"upgrade", "--wait", "--wait-timeout", "100"}) == kExitUnreachable);
  // Two messages after the first one, then 20 s left for the third, which takes 40.
  CHECK(h.waits == std::vector<std::optional<double>>{40.0, 40.0, 20.0});
  CHECK(h.clock.Now() == 1100);
  CHECK(h.out.str() ==
        "Upgrading smoothly, as commanded\nProgress: 0/2 new ready, 0/2 old drained\n"
        "Progress: 1/2 new ready, 0/2 old drained\n");
  CHECK(h.err.str() ==
        "einhornctl: no end of the upgrade within 100s (--wait-timeout); it may still be running "
        "(see einhornctl status)\n");

  // A master that goes silent.
  Harness s(Upgrades(test::UpgradeEnd::kSilence));
  CHECK(s.Run({"upgrade", "--wait"}) == kExitUnreachable);
  CHECK(s.waits == std::vector<std::optional<double>>{3600.0});
  CHECK(s.err.str().find("no end of the upgrade within 3600s (--wait-timeout)") !=
        std::string::npos);
}

TEST_CASE("commands: upgrade --wait-timeout 0 waits without a limit") {
  Harness h(Upgrades(test::UpgradeEnd::kSilence));
  CHECK(h.Run({"upgrade", "--wait", "--wait-timeout", "0"}) == kExitUnreachable);
  REQUIRE(h.waits.size() == 1);
  CHECK_FALSE(h.waits[0].has_value());
}

TEST_CASE("commands: the first reply of upgrade --wait is due within --timeout") {
  Harness h([](const Request&) {
    Answer a;
    a.silent = true;
    return a;
  });
  CHECK(h.Run({"upgrade", "--wait"}) == kExitUnreachable);
  CHECK(h.waits == std::vector<std::optional<double>>{30.0});
  CHECK(h.err.str() == "einhornctl: no reply from the master within 30s\n");
}

TEST_CASE("commands: upgrade --wait on a terminal overwrites progress lines") {
  Harness h(Upgrades(test::UpgradeEnd::kDone));
  h.stdout_tty = true;
  CHECK(h.Run({"upgrade", "--wait"}) == kExitOk);
  CHECK(h.out.str() ==
        "Upgrading smoothly, as commanded\n"
        "\r\x1b[KProgress: 0/2 new ready, 0/2 old drained"
        "\r\x1b[KProgress: 1/2 new ready, 0/2 old drained\n"
        "draining worker 5000 (index 0, generation 1): replaced by a ready worker\n"
        "\r\x1b[KProgress: 1/2 new ready, 1/2 old drained"
        "\r\x1b[KProgress: 2/2 new ready, 1/2 old drained\n"
        "draining worker 5001 (index 1, generation 1): replaced by a ready worker\n"
        "\r\x1b[KProgress: 2/2 new ready, 2/2 old drained\n"
        "Upgraded successfully to generation 2.\n"
        "Upgrade done\n");

  // The failure goes to stderr: the progress line is ended first.
  Harness f(Upgrades(test::UpgradeEnd::kFailed));
  f.stdout_tty = true;
  CHECK(f.Run({"upgrade", "--wait"}) == kExitRefused);
  CHECK(f.out.str() ==
        "Upgrading smoothly, as commanded\n\r\x1b[KProgress: 0/2 new ready, 0/2 old drained\n");
  CHECK(f.err.str() == kFailure);

  // So is einhornctl's own diagnostic.
  Harness d(Upgrades(test::UpgradeEnd::kHangUp));
  d.stdout_tty = true;
  CHECK(d.Run({"upgrade", "--wait"}) == kExitUnreachable);
  CHECK(d.out.str().ends_with("\r\x1b[KProgress: 0/2 new ready, 0/2 old drained\n"));

  // --json on a terminal: the document only.
  Harness j(Upgrades(test::UpgradeEnd::kDone));
  j.stdout_tty = true;
  CHECK(j.Run({"upgrade", "--wait", "--json"}) == kExitOk);
  const nlohmann::json doc = nlohmann::json::parse(j.out.str());
  CHECK(doc["messages"].size() == 10);
  CHECK(doc["messages"][9] == "Upgrade done");
  CHECK(doc["error"] == false);
  CHECK(j.out.str().find('\r') == std::string::npos);
}

TEST_CASE("commands: upgrade --wait that ends without Upgrade done exits 1") {
  Harness h([](const Request&) {
    return test::Stream({"Upgrading smoothly, as commanded", "Reloading, as commanded"});
  });
  CHECK(h.Run({"upgrade", "--wait"}) == kExitRefused);
  CHECK(h.out.str() == "Upgrading smoothly, as commanded\nReloading, as commanded\n");
  CHECK(h.err.str().find("not \"Upgrade done\"") != std::string::npos);
}

TEST_CASE("commands: upgrade --wait skips messages of an earlier upgrade") {
  Harness h([](const Request& r) {
    Answer a = test::UpgradeAnswer(r.command, 1, test::UpgradeEnd::kDone);
    core::wire::Reply old{"Upgrade done", core::wire::Id{core::wire::Id::Kind::kInt, "7"}, false,
                          false};
    a.replies.insert(a.replies.begin() + 1, old);
    return a;
  });
  CHECK(h.Run({"upgrade", "--wait"}) == kExitOk);
  CHECK(h.out.str().find("Upgraded successfully to generation 2.\nUpgrade done\n") !=
        std::string::npos);
}

TEST_CASE("commands: reload prints the reply, exit 1 if refused") {
  Harness h(test::EinhornLike());
  CHECK(h.Run({"reload"}) == kExitOk);
  CHECK(h.Verbs() == std::vector<std::string>{"reload"});
  CHECK(h.sent[0].id->text == "1");
  CHECK(h.out.str() == "Reloading, as commanded\n");

  Harness r([](const Request&) {
    return test::Refuse("reload is not yet supported by einhorn-cpp 0.1.0");
  });
  CHECK(r.Run({"reload"}) == kExitRefused);
  CHECK(r.out.str().empty());
  CHECK(r.err.str() == "reload is not yet supported by einhorn-cpp 0.1.0\n");

  Harness j([](const Request&) { return test::Refuse("no"); });
  CHECK(j.Run({"reload", "--json"}) == kExitRefused);
  CHECK(nlohmann::json::parse(j.out.str())["error"] == true);
}

TEST_CASE("commands: streamed replies are printed until the final one") {
  Harness h([](const Request& r) {
    if (r.command == "upgrade")
      return test::Stream({"Upgrading smoothly", "===> Launched 7", "Upgrade done"});
    return test::Refuse("no");
  });
  CHECK(h.Run({"raw", "upgrade"}) == kExitOk);
  CHECK(h.out.str() == "Upgrading smoothly\n===> Launched 7\nUpgrade done\n");
}

TEST_CASE("commands: replies for another request id are skipped") {
  Harness h([](const Request&) {
    Answer a = test::Stream({"old upgrade news", "ours"});
    a.replies[0].request_id = core::wire::Id{core::wire::Id::Kind::kInt, "99"};
    return a;
  });
  CHECK(h.Run({"help"}) == kExitOk);
  CHECK(h.out.str() == "ours\n");
}

TEST_CASE("commands: set --wait polls status until the pool is ready") {
  int polls = 0;
  Harness h([&polls](const Request& r) {
    if (r.command == "set_workers") return test::Say("Altering worker count, 2 -> 4.");
    ++polls;
    if (polls < 3) return test::StatusAnswer(test::MakeStatus(4, 2, 2));
    core::PoolStatus done = test::MakeStatus(4, 4, 0);
    done.draining = 1;  // draining workers may remain
    return test::StatusAnswer(done);
  });
  CHECK(h.Run({"set", "4", "--wait"}) == kExitOk);
  CHECK(h.Verbs() == std::vector<std::string>{"set_workers", "status", "status", "status"});
  CHECK(h.sent[0].args == std::vector<std::string>{"4"});
  CHECK(h.clock.sleeps() == 2);
  CHECK(h.out.str() == "Altering worker count, 2 -> 4.\nready 4/4, booting 0, draining 1\n");
}

TEST_CASE("commands: set --wait shows progress on a terminal") {
  int polls = 0;
  Harness h([&polls](const Request& r) {
    if (r.command == "set_workers") return test::Say("Altering");
    return test::StatusAnswer(++polls < 2 ? test::MakeStatus(3, 1, 2) : test::MakeStatus(3, 3, 0));
  });
  h.stdout_tty = true;
  CHECK(h.Run({"set", "3", "--wait"}) == kExitOk);
  CHECK(h.out.str().find("\r\x1b[Kwaiting: ready 1/3, booting 2, draining 0") != std::string::npos);
}

TEST_CASE("commands: set --wait times out with exit 1") {
  Harness h([](const Request& r) {
    if (r.command == "set_workers") return test::Say("Altering");
    return test::StatusAnswer(test::MakeStatus(3, 1, 2));
  });
  CHECK(h.Run({"set", "3", "--wait", "--timeout", "2"}) == kExitRefused);
  CHECK(h.err.str() == "einhornctl: timed out after 2s: ready 1/3\n");
  CHECK(h.clock.sleeps() >= 20);  // every 100 ms (+1 for rounding)
  CHECK(h.clock.sleeps() <= 21);

  Harness j([](const Request& r) {
    if (r.command == "set_workers") return test::Say("Altering");
    return test::StatusAnswer(test::MakeStatus(3, 1, 2));
  });
  CHECK(j.Run({"set", "3", "--wait", "--timeout", "1", "--json"}) == kExitRefused);
  CHECK(nlohmann::json::parse(j.out.str())["error"] == true);
}

TEST_CASE("commands: set refused is not waited for") {
  Harness h(test::EinhornLike());
  CHECK(h.Run({"set", "0", "--wait"}) == kExitRefused);
  CHECK(h.Verbs() == std::vector<std::string>{"set_workers"});
  CHECK(h.err.str().find("Invalid count: '0'") == 0);
}

TEST_CASE("commands: set --wait gives up when the master is stopping") {
  Harness h([](const Request& r) {
    if (r.command == "set_workers") return test::Say("Altering");
    core::PoolStatus s = test::MakeStatus(3, 1, 0);
    s.stopping = true;
    return test::StatusAnswer(s);
  });
  CHECK(h.Run({"set", "3", "--wait"}) == kExitRefused);
  CHECK(h.err.str().find("shutting down") != std::string::npos);
}

TEST_CASE("commands: log-level steps the verbosity from where it is") {
  Harness h(test::EinhornLike());  // verbosity 1
  CHECK(h.Run({"log-level", "error"}) == kExitOk);
  CHECK(h.Verbs() == std::vector<std::string>{"status", "quieter"});
  CHECK(h.out.str() == "Verbosity set to 2\n");

  Harness d([](const Request& r) {
    if (r.command == "status") return test::StatusAnswer(test::MakeStatus(1, 1, 0, 2));
    return test::Say("Verbosity set to n");
  });
  CHECK(d.Run({"log-level", "debug"}) == kExitOk);
  CHECK(d.Verbs() == std::vector<std::string>{"status", "louder", "louder"});
  CHECK(d.out.str() == "Verbosity set to n\n");

  Harness same(test::EinhornLike());
  CHECK(same.Run({"log-level", "info"}) == kExitOk);
  CHECK(same.Verbs() == std::vector<std::string>{"status"});
  CHECK(same.out.str() == "Verbosity already 1 (info)\n");
}

TEST_CASE("commands: ack sends the Einhorn JSON ack for the parent or the given pid") {
  Harness h(test::EinhornLike());
  CHECK(h.Run({"ack"}) == kExitOk);
  REQUIRE(h.sent.size() == 1);
  CHECK(h.sent[0].command == "worker:ack");
  CHECK(h.sent[0].pid == 777);
  CHECK_FALSE(h.sent[0].id.has_value());
  CHECK(h.out.str().empty());

  Harness p(test::EinhornLike());
  CHECK(p.Run({"ack", "1234"}) == kExitOk);
  CHECK(p.sent.at(0).pid == 1234);
}

TEST_CASE("commands: ehlo sends the user") {
  Harness h(test::EinhornLike());
  CHECK(h.Run({"ehlo"}) == kExitOk);
  CHECK(h.sent.at(0).user == "tester");
  CHECK(h.out.str().rfind("Welcome, tester!", 0) == 0);
}

TEST_CASE("commands: no subcommand without a terminal is a usage error") {
  Harness h(test::EinhornLike());
  CHECK(h.Run({}) == kExitUsage);
  CHECK(h.connects == 0);
}

TEST_CASE("commands: the interactive shell") {
  Harness h(test::EinhornLike());
  h.stdin_tty = true;
  CHECK(h.Run({}, "inc\n\n  set_workers   5 \nstatus\nbogus\nquit\ninc\n") == kExitOk);
  CHECK(h.Verbs() == std::vector<std::string>{"ehlo", "inc", "set_workers", "status", "bogus"});
  CHECK(h.sent[0].user == "tester");
  CHECK(h.sent[2].args == std::vector<std::string>{"5"});
  const std::string out = h.out.str();
  CHECK(out.rfind("Welcome, tester!", 0) == 0);
  CHECK(out.find("einhorn> Incrementing number of workers from 2 -> 3\n") != std::string::npos);
  CHECK(out.find("target 5 | generation 1 | ready 5/5") != std::string::npos);
  CHECK(h.err.str().find("Unrecognized command: \"bogus\"") != std::string::npos);

  Harness eof(test::EinhornLike());
  eof.stdin_tty = true;
  CHECK(eof.Run({}, "help\n") == kExitOk);
  CHECK(eof.Verbs() == std::vector<std::string>{"ehlo", "help"});
}

TEST_CASE("commands: the shell reads each line as einhornctl's command line") {
  Harness h(test::EinhornLike());
  h.stdin_tty = true;
  CHECK(h.Run({}, "set 8\ninc 2\ndec\nset abc\nsignal HUP; set_workers 3\n"
                  "upgrade\nstatus --json\n-d /x status\nshell\nack\nlog-level bogus\n") ==
        kExitOk);
  // `set abc`, `-d /x status`, `shell`, `ack` and `log-level bogus` send nothing.
  CHECK(h.Verbs() == std::vector<std::string>{"ehlo", "set_workers", "inc", "inc", "dec",
                                              "signal", "set_workers", "upgrade", "status"});
  CHECK(h.sent[1].args == std::vector<std::string>{"8"});
  CHECK(h.sent[6].args == std::vector<std::string>{"3"});
  // The ids go on from one command to the next.
  for (size_t i = 1; i < h.sent.size(); ++i) {
    CHECK(h.sent[i].id.has_value());
    if (h.sent[i].id) CHECK(h.sent[i].id->text == std::to_string(i + 1));
  }
  const std::string out = h.out.str();
  CHECK(out.find("Altering worker count, 2 -> 8.") != std::string::npos);
  CHECK(out.find("\"target\": 3") != std::string::npos);  // status --json
  const std::string err = h.err.str();
  CHECK(err.find("einhornctl: Could not convert: N = abc\n") != std::string::npos);
  CHECK(err.find("the shell talks to one master") != std::string::npos);
  CHECK(err.find("already in the shell") != std::string::npos);
  CHECK(err.find("ack is for workers") != std::string::npos);
  CHECK(err.find("Run 'einhornctl --help'") == std::string::npos);
  CHECK(h.connects == 1);
}

TEST_CASE("commands: einhornctl shell without a terminal reads commands quietly") {
  Harness h(test::EinhornLike());
  CHECK(h.Run({"shell"}, "inc\nset 5\n") == kExitOk);
  CHECK(h.Verbs() == std::vector<std::string>{"inc", "set_workers"});  // no ehlo
  CHECK(h.out.str() ==
        "Incrementing number of workers from 2 -> 3\n"
        "Altering worker count, 3 -> 5. Will spin up additional workers.\n");

  Harness refused(test::EinhornLike());  // the exit code is the last command's
  CHECK(refused.Run({"shell"}, "inc\nbogus\n") == kExitRefused);
  Harness recovered(test::EinhornLike());
  CHECK(recovered.Run({"shell"}, "bogus\ninc\n") == kExitOk);
  Harness quoted(test::EinhornLike());
  CHECK(quoted.Run({"shell"}, "raw config 'a: 1'\nraw 'x\n") == kExitUsage);
  CHECK(quoted.sent.at(0).args == std::vector<std::string>{"a: 1"});
  CHECK(quoted.err.str().find("unmatched quote") != std::string::npos);

  Harness gone(test::EinhornLike());
  gone.reachable = false;
  CHECK(gone.Run({"shell"}, "inc\ninc\n") == kExitUnreachable);
  CHECK(gone.connects == 1);
}

// A master whose ring gains one event per `events` request (seq 1, 2, ...) and that hangs up
// after `calls` requests.
Script GrowingEvents(int calls) {
  auto ring = std::make_shared<core::EventRing>(3);
  auto served = std::make_shared<int>(0);
  return [ring, served, calls](const Request& r) -> Answer {
    if (r.command != "events") return test::Refuse("Unrecognized command");
    if (++*served > calls) {
      Answer a;
      a.close = true;
      return a;
    }
    core::Event e;
    e.kind = core::EventKind::kExit;
    e.wall_ns = 1'714'564'803'250'000'000;
    e.slot = 0;
    e.pid = 4000 + *served;
    e.generation = 1;
    e.exit = core::ExitStatus{true, 9};
    e.seconds = 2;
    ring->Push(e);
    std::uint64_t since = 0;
    if (!r.args.empty()) since = std::stoull(r.args[0]);
    return test::Say(core::EventsReplyToYaml(
        core::EventsReply{ring->first_seq(), ring->last_seq(), ring->Since(since)}));
  };
}

TEST_CASE("commands: events prints a header and one line per event") {
  Harness h(GrowingEvents(1));
  CHECK(h.Run({"events"}) == kExitOk);
  REQUIRE(h.sent.size() == 1);
  CHECK(h.sent[0].args.empty());
  CHECK(h.out.str() == RenderEventsHeader() +
                           "2024-05-01T12:00:03.250Z      1  exit                0  4001       1  "
                           "signal 9 after 2.000s\n");
  // After 7 of a master that is at 1: another master, whose events are all new.
  Harness since(GrowingEvents(2));
  CHECK(since.Run({"events", "--since", "7"}) == kExitOk);
  REQUIRE(since.sent.size() == 2);
  CHECK(since.sent[0].args == std::vector<std::string>{"7"});
  CHECK(since.sent[1].args.empty());
  CHECK(since.err.str() == "einhornctl: the master's events start again at 1: following from there\n");
}

TEST_CASE("commands: events --follow asks for what came after the last one seen") {
  Harness h(GrowingEvents(4));
  CHECK(h.Run({"events", "--follow", "--json", "--interval", "2"}) == kExitUnreachable);
  REQUIRE(h.sent.size() == 5);  // the fifth finds the master gone
  CHECK(h.sent[0].args.empty());
  CHECK(h.sent[1].args == std::vector<std::string>{"1"});
  CHECK(h.sent[3].args == std::vector<std::string>{"3"});
  CHECK(h.clock.sleeps() == 4);
  // One JSON object per line, each event once.
  std::istringstream lines(h.out.str());
  std::vector<int> pids;
  for (std::string line; std::getline(lines, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    CHECK(j["event"] == "exit");
    CHECK(j["signal"] == 9);
    CHECK(j["exit_code"].is_null());
    pids.push_back(j["pid"]);
  }
  CHECK(pids == std::vector<int>{4001, 4002, 4003, 4004});
  CHECK(h.err.str().find("lost the master while following") != std::string::npos);
}

TEST_CASE("commands: events says which ones it missed, and refuses what is not a reply") {
  // Asked for those after 1 of a ring of 3 that is at 5: 2 is gone.
  auto ring = std::make_shared<core::EventRing>(3);
  for (int i = 0; i < 5; ++i) ring->Push(core::Event{});
  Harness h([ring](const Request& r) {
    const std::uint64_t since = r.args.empty() ? 0 : std::stoull(r.args[0]);
    return test::Say(core::EventsReplyToYaml(
        core::EventsReply{ring->first_seq(), ring->last_seq(), ring->Since(since)}));
  });
  CHECK(h.Run({"events", "--since", "1"}) == kExitOk);
  CHECK(h.err.str() == "einhornctl: 1 events after 1 are no longer kept\n");
  const std::string out = h.out.str();
  CHECK(std::count(out.begin(), out.end(), '\n') == 4);  // the header and 3

  // Gaps in the middle (refusals making room in their own share) count as missed too.
  auto gappy = std::make_shared<core::EventRing>(10);
  core::Event control, spawn, refused;
  control.kind = core::EventKind::kControl;
  spawn.kind = core::EventKind::kSpawn;
  refused.kind = core::EventKind::kControlRefused;
  gappy->Push(control);
  gappy->Push(spawn);
  for (int i = 0; i < 9; ++i) gappy->Push(refused);  // 3..11: 3 goes
  Harness g([gappy](const Request& r) {
    const std::uint64_t since = r.args.empty() ? 0 : std::stoull(r.args[0]);
    return test::Say(core::EventsReplyToYaml(
        core::EventsReply{gappy->first_seq(), gappy->last_seq(), gappy->Since(since)}));
  });
  CHECK(g.Run({"events", "--since", "1"}) == kExitOk);
  CHECK(g.err.str() == "einhornctl: 1 events after 1 are no longer kept\n");
  const std::string listed = g.out.str();
  CHECK(std::count(listed.begin(), listed.end(), '\n') == 10);  // the header and 9

  Harness old([](const Request&) { return test::Refuse("Unrecognized command: \"events\""); });
  CHECK(old.Run({"events"}) == kExitRefused);
  Harness odd([](const Request&) { return test::Say("hello"); });
  CHECK(odd.Run({"events"}) == kExitRefused);
  CHECK(odd.err.str().find("not a list of events") != std::string::npos);
  Harness gone(GrowingEvents(0));
  CHECK(gone.Run({"events"}) == kExitUnreachable);
}

TEST_CASE("commands: metrics prints the text as the master sends it") {
  const std::string text = "# HELP einhorn_spawns_total Workers started.\n"
                           "# TYPE einhorn_spawns_total counter\neinhorn_spawns_total 3\n";
  Harness h([text](const Request& r) {
    return r.command == "metrics" ? test::Say(text) : test::Refuse("no");
  });
  CHECK(h.Run({"metrics"}) == kExitOk);
  CHECK(h.out.str() == text);
  Harness refused([](const Request&) { return test::Refuse("Unrecognized command: \"metrics\""); });
  CHECK(refused.Run({"metrics"}) == kExitRefused);
  CHECK(refused.err.str().find("Unrecognized command") != std::string::npos);
  Harness odd([](const Request&) { return test::Say("hello"); });
  CHECK(odd.Run({"metrics"}) == kExitRefused);
}

}  // namespace
}  // namespace einhorn::ctl
