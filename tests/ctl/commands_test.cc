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

// A pool of two generation-2 workers, ready, none of generation 1 left.
core::PoolStatus Upgraded() {
  core::PoolStatus s = test::MakeStatus(2, 2, 0);
  s.generation = 2;
  for (core::WorkerStatus& w : s.workers) w.generation = 2;
  return s;
}

// A master whose upgrades end as `end`, `pause` apart; its status shows the upgraded pool.
Script Upgrades(test::UpgradeEnd end, std::chrono::milliseconds pause = {}) {
  return [end, pause](const Request& r) {
    if (r.command == "status") return test::StatusAnswer(Upgraded());
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
  // Then status: whether the old workers have exited (they have).
  REQUIRE(h.sent.size() == 2);
  CHECK(h.sent[1].command == "status");
  CHECK(h.sent[0].command == "upgrade");
  CHECK(h.sent[0].id->text == "1");
  CHECK(h.sent[0].args_state == Request::ArgsState::kList);
  CHECK(h.sent[0].args.empty());
  // Not a terminal: progress lines are lines like the others.
  CHECK(h.out.str() ==
        "Upgrading smoothly, as commanded\n"
        "Progress: 0/2 new ready, 0/2 old told to drain\n"
        "Progress: 1/2 new ready, 0/2 old told to drain\n"
        "draining worker 5000 (index 0, generation 1): replaced by a ready worker\n"
        "Progress: 1/2 new ready, 1/2 old told to drain\n"
        "Progress: 2/2 new ready, 1/2 old told to drain\n"
        "draining worker 5001 (index 1, generation 1): replaced by a ready worker\n"
        "Progress: 2/2 new ready, 2/2 old told to drain\n"
        "Upgraded successfully to generation 2.\n"
        "Upgrade done\n");
  CHECK(h.err.str().empty());
}

TEST_CASE("commands: upgrade --fleet sends upgrade_fleet") {
  Harness h(Upgrades(test::UpgradeEnd::kDone));
  CHECK(h.Run({"upgrade", "--fleet", "--wait"}) == kExitOk);
  CHECK(h.Verbs() == std::vector<std::string>{"upgrade_fleet", "status"});
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
        "Upgrading smoothly, as commanded\nProgress: 0/2 new ready, 0/2 old told to drain\n");
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
  CHECK(h.out.str().find("Progress: 0/2 new ready, 0/2 old told to drain\n") != std::string::npos);
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

TEST_CASE("commands: upgrade --wait-timeout bounds the whole wait and exits 4") {
  using std::chrono::seconds;
  Harness h(Upgrades(test::UpgradeEnd::kDone, seconds(40)));
  CHECK(h.Run({"upgrade", "--wait", "--wait-timeout", "100"}) == kExitTimeout);
  // Two messages after the first one, then 20 s left for the third, which takes 40.
  CHECK(h.waits == std::vector<std::optional<double>>{40.0, 40.0, 20.0});
  CHECK(h.clock.Now() == 1100);
  CHECK(h.out.str() ==
        "Upgrading smoothly, as commanded\nProgress: 0/2 new ready, 0/2 old told to drain\n"
        "Progress: 1/2 new ready, 0/2 old told to drain\n");
  CHECK(h.err.str() ==
        "einhornctl: no end of the upgrade within 100s (--wait-timeout); it may still be running "
        "(see einhornctl status)\n");

  // A master that goes silent.
  Harness s(Upgrades(test::UpgradeEnd::kSilence));
  CHECK(s.Run({"upgrade", "--wait"}) == kExitTimeout);
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
        "\r\x1b[KProgress: 0/2 new ready, 0/2 old told to drain"
        "\r\x1b[KProgress: 1/2 new ready, 0/2 old told to drain\n"
        "draining worker 5000 (index 0, generation 1): replaced by a ready worker\n"
        "\r\x1b[KProgress: 1/2 new ready, 1/2 old told to drain"
        "\r\x1b[KProgress: 2/2 new ready, 1/2 old told to drain\n"
        "draining worker 5001 (index 1, generation 1): replaced by a ready worker\n"
        "\r\x1b[KProgress: 2/2 new ready, 2/2 old told to drain\n"
        "Upgraded successfully to generation 2.\n"
        "Upgrade done\n");

  // The failure goes to stderr: the progress line is ended first.
  Harness f(Upgrades(test::UpgradeEnd::kFailed));
  f.stdout_tty = true;
  CHECK(f.Run({"upgrade", "--wait"}) == kExitRefused);
  CHECK(f.out.str() ==
        "Upgrading smoothly, as commanded\n"
        "\r\x1b[KProgress: 0/2 new ready, 0/2 old told to drain\n");
  CHECK(f.err.str() == kFailure);

  // So is einhornctl's own diagnostic.
  Harness d(Upgrades(test::UpgradeEnd::kHangUp));
  d.stdout_tty = true;
  CHECK(d.Run({"upgrade", "--wait"}) == kExitUnreachable);
  CHECK(d.out.str().ends_with("\r\x1b[KProgress: 0/2 new ready, 0/2 old told to drain\n"));

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
  // --no-wait: Einhorn's reply only, as before.
  Harness h(test::EinhornLike());
  CHECK(h.Run({"reload", "--no-wait"}) == kExitOk);
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

// A worker told to drain that has not exited yet.
core::WorkerStatus Draining(core::Pid pid) {
  core::WorkerStatus w;
  w.slot = -1;
  w.pid = pid;
  w.state = "draining";
  return w;
}

TEST_CASE("commands: set --wait polls status until the pool is ready and the drained exited") {
  int polls = 0;
  Harness h([&polls](const Request& r) {
    if (r.command == "set_workers") return test::Say("Altering worker count, 2 -> 4.");
    ++polls;
    if (polls < 3) return test::StatusAnswer(test::MakeStatus(4, 2, 2));
    core::PoolStatus done = test::MakeStatus(4, 4, 0);
    if (polls < 5) {
      // Ready, but a worker told to drain is still running: not done (it was, before).
      done.draining = 1;
      done.workers.push_back(Draining(6000));
    }
    return test::StatusAnswer(done);
  });
  CHECK(h.Run({"set", "4", "--wait"}) == kExitOk);
  CHECK(h.Verbs() ==
        std::vector<std::string>{"set_workers", "status", "status", "status", "status", "status"});
  CHECK(h.sent[0].args == std::vector<std::string>{"4"});
  CHECK(h.clock.sleeps() == 4);
  CHECK(h.out.str() ==
        "Altering worker count, 2 -> 4.\nready 4/4, booting 0, told to drain: 0 running, 1 "
        "exited\n");
}

TEST_CASE("commands: set --wait times out with exit 4 while a worker told to drain runs") {
  Harness h([](const Request& r) {
    if (r.command == "set_workers") return test::Say("Altering worker count, 3 -> 2.");
    core::PoolStatus st = test::MakeStatus(2, 2, 0);
    st.draining = 1;
    st.workers.push_back(Draining(6001));
    return test::StatusAnswer(st);
  });
  CHECK(h.Run({"set", "2", "--wait", "--wait-timeout", "1"}) == kExitTimeout);
  CHECK(h.err.str() ==
        "einhornctl: timed out after 1s: ready 2/2, booting 0, told to drain: 1 running, 0 "
        "exited (running: 6001)\n");
}

TEST_CASE("commands: set --wait shows progress on a terminal") {
  int polls = 0;
  Harness h([&polls](const Request& r) {
    if (r.command == "set_workers") return test::Say("Altering");
    return test::StatusAnswer(++polls < 2 ? test::MakeStatus(3, 1, 2) : test::MakeStatus(3, 3, 0));
  });
  h.stdout_tty = true;
  CHECK(h.Run({"set", "3", "--wait"}) == kExitOk);
  CHECK(h.out.str().find("\r\x1b[Kwaiting: ready 1/3, booting 2, told to drain: 0 running, 0 "
                         "exited") != std::string::npos);
}

TEST_CASE("commands: set --wait times out with exit 4") {
  Harness h([](const Request& r) {
    if (r.command == "set_workers") return test::Say("Altering");
    return test::StatusAnswer(test::MakeStatus(3, 1, 2));
  });
  CHECK(h.Run({"set", "3", "--wait", "--timeout", "2"}) == kExitTimeout);
  CHECK(h.err.str() ==
        "einhornctl: timed out after 2s: ready 1/3, booting 2, told to drain: 0 running, 0 "
        "exited\n");
  CHECK(h.clock.sleeps() >= 20);  // every 100 ms (+1 for rounding)
  CHECK(h.clock.sleeps() <= 21);

  Harness j([](const Request& r) {
    if (r.command == "set_workers") return test::Say("Altering");
    return test::StatusAnswer(test::MakeStatus(3, 1, 2));
  });
  CHECK(j.Run({"set", "3", "--wait", "--timeout", "1", "--json"}) == kExitTimeout);
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
  // Answered in log-level's own names (issue 17.5), not quieter's "Verbosity set to 2".
  CHECK(h.out.str() == "Log level set to error (verbosity 2, was info)\n");

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
  CHECK(same.out.str() == "Log level already info (verbosity 1)\n");
}

TEST_CASE("commands: signal confirms what it sent, and to whom") {
  Harness h(test::EinhornLike());  // 2 workers, pids 5000 and 5001; `signal` answers ''
  CHECK(h.Run({"signal", "hup"}) == kExitOk);
  CHECK(h.Verbs() == std::vector<std::string>{"status", "signal"});
  CHECK(h.sent[1].args == std::vector<std::string>{"hup"});  // sent as typed, as Einhorn's
  CHECK(h.out.str() ==
        "Sent SIGHUP to the 2 workers (pids 5000, 5001); the master itself was not signalled\n");

  // Ruby Einhorn knows no `status`: the plain sentence.
  Harness ruby([](const Request& r) {
    if (r.command == "status") return test::Say("Unrecognized command: \"status\"");
    return test::Say("");
  });
  CHECK(ruby.Run({"signal", "SIGUSR2"}) == kExitOk);
  CHECK(ruby.out.str() == "Sent SIGUSR2 to every worker; the master itself was not signalled\n");
  CHECK(ruby.err.str().empty());

  // A refusal is the master's, on stderr, exit 1, and nothing claims a signal was sent.
  Harness bad([](const Request& r) {
    if (r.command == "status") return test::StatusAnswer(test::MakeStatus(1, 1, 0));
    return test::Refuse("Invalid signal: \"BOGUS\"");
  });
  CHECK(bad.Run({"signal", "BOGUS"}) == kExitRefused);
  CHECK(bad.out.str().empty());
  CHECK(bad.err.str() == "Invalid signal: \"BOGUS\"\n");

  // --json keeps the master's messages as they were.
  Harness j(test::EinhornLike());
  CHECK(j.Run({"signal", "HUP", "--json"}) == kExitOk);
  CHECK(j.out.str().find("Sent") == std::string::npos);
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
  // `set abc`, `-d /x status`, `shell`, `ack` and `log-level bogus` send nothing; `signal`
  // asks for the status first, to name the workers it reached.
  CHECK(h.Verbs() == std::vector<std::string>{"ehlo", "set_workers", "inc", "inc", "dec",
                                              "status", "signal", "set_workers", "upgrade",
                                              "status"});
  CHECK(h.sent[1].args == std::vector<std::string>{"8"});
  CHECK(h.sent[7].args == std::vector<std::string>{"3"});
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

// A master whose `reload` ends as `outcome` ("done", "failed", "other") on the second status
// after it; status before the reload: 2 workers, no reload yet.
Script Reloads(const std::string& outcome, const std::string& reason = "") {
  auto reloaded = std::make_shared<bool>(false);
  auto polls = std::make_shared<int>(0);
  return [=](const Request& r) {
    if (r.command == "reload") {
      *reloaded = true;
      return test::Say("Reloading, as commanded");
    }
    if (r.command != "status") return test::Refuse("no");
    core::PoolStatus s = test::MakeStatus(2, 2, 0);
    if (!*reloaded) return test::StatusAnswer(s);
    if (++*polls < 2 || outcome == "never") {
      s.reloading = true;
      return test::StatusAnswer(s);
    }
    if (outcome == "done") s.reloads = 1;
    if (outcome == "failed") {
      s.reload_failures = 1;
      s.last_reload_error = reason;
    }
    if (outcome == "other") s.master_pid = 999;
    return test::StatusAnswer(s);
  };
}

TEST_CASE("commands: reload waits for the new image and exits 0") {
  Harness h(Reloads("done"));
  CHECK(h.Run({"reload"}) == kExitOk);
  CHECK(h.Verbs() == std::vector<std::string>{"status", "reload", "status", "status"});
  CHECK(h.out.str() ==
        "Reloading, as commanded\n"
        "Waiting: the master checks the new binary, then re-execs it\n"
        "Reloaded: einhorn-cpp 0.1.0 is the master now (pid 4242, reload #1); it kept 2 of the 2 "
        "workers\n");
  CHECK(h.err.str().empty());
}

TEST_CASE("commands: a failed reload exits 1 with the whole reason") {
  // Longer than the 400 characters status used to keep.
  const std::string reason =
      "the upgrade check of /usr/bin/einhorn-cpp failed (exit 1): config /etc/x.yaml: the "
      "config changes what only a restart of the master can change: " +
      std::string(600, 'k') + " (1 -> 2); nothing was changed";
  Harness h(Reloads("failed", reason));
  CHECK(h.Run({"reload"}) == kExitRefused);
  CHECK(h.err.str() == "Reload failed, the master keeps running as it was: " + reason + "\n");
  CHECK(h.out.str().rfind("Reloading, as commanded\n", 0) == 0);

  // --json: the document says error, and the reason is on stderr too.
  Harness j(Reloads("failed", reason));
  CHECK(j.Run({"reload", "--json"}) == kExitRefused);
  const nlohmann::json doc = nlohmann::json::parse(j.out.str());
  CHECK(doc["error"] == true);
  CHECK(doc["messages"].back().get<std::string>().ends_with("nothing was changed"));
  CHECK(j.err.str().find(reason) != std::string::npos);
}

TEST_CASE("commands: reload timing out exits 4, another master exits 3") {
  Harness h(Reloads("never"));
  CHECK(h.Run({"reload", "--wait-timeout", "2"}) == kExitTimeout);
  CHECK(h.err.str() ==
        "einhornctl: no outcome of the reload within 2s (--wait-timeout); it may still be "
        "running (see einhornctl status)\n");

  Harness o(Reloads("other"));
  CHECK(o.Run({"reload"}) == kExitUnreachable);
  CHECK(o.err.str().find("another master answers now (pid 999, was 4242)") != std::string::npos);
}

TEST_CASE("commands: reload against a master without status reloads and says it cannot wait") {
  Harness h([](const Request& r) {
    if (r.command == "reload") return test::Say("Reloading, as commanded");
    return test::Say("Unrecognized command: \"status\"");
  });
  CHECK(h.Run({"reload"}) == kExitOk);
  CHECK(h.Verbs() == std::vector<std::string>{"status", "reload"});
  CHECK(h.out.str() == "Reloading, as commanded\n");
  CHECK(h.err.str().find("cannot wait for the outcome of the reload") != std::string::npos);
}

TEST_CASE("commands: a peer the master turns away gets exit 1, and no reload is sent") {
  Harness h([](const Request&) {
    test::Answer a = test::Refuse("Permission denied: uid 1000 may not use this command socket");
    a.close = true;
    return a;
  });
  CHECK(h.Run({"reload"}) == kExitRefused);
  CHECK(h.Verbs() == std::vector<std::string>{"status"});
  CHECK(h.err.str() == "Permission denied: uid 1000 may not use this command socket\n");
}

TEST_CASE("commands: reload connects again when the connection breaks") {
  // The first connection hangs up after the reload's reply; the second one sees the new image.
  int connection = 0;
  auto reloaded = std::make_shared<bool>(false);
  Harness h([&connection, reloaded](const Request& r) {
    if (r.command == "reload") {
      *reloaded = true;
      test::Answer a = test::Say("Reloading, as commanded");
      a.close = true;
      return a;
    }
    core::PoolStatus s = test::MakeStatus(2, 2, 0);
    if (*reloaded) s.reloads = 1;
    (void)connection;
    return test::StatusAnswer(s);
  });
  CHECK(h.Run({"reload"}) == kExitOk);
  CHECK(h.connects == 2);
  CHECK(h.out.str().find("Reloaded: ") != std::string::npos);
}

TEST_CASE("commands: upgrade --wait waits for the old workers told to drain to exit") {
  int polls = 0;
  Harness h([&polls](const Request& r) {
    if (r.command != "status") return test::UpgradeAnswer(r.command, 2, test::UpgradeEnd::kDone);
    core::PoolStatus s = Upgraded();
    if (++polls < 3) {
      core::WorkerStatus old = Draining(5000);
      old.generation = 1;
      s.workers.push_back(old);
      s.draining = 1;
    }
    return test::StatusAnswer(s);
  });
  CHECK(h.Run({"upgrade", "--wait"}) == kExitOk);
  CHECK(polls == 3);
  CHECK(h.out.str().ends_with(
      "Upgrade done\n"
      "Progress: 1 old workers told to drain, not exited yet: 5000\n"
      "Every old worker has exited\n"));

  // One that never exits: the deadline, exit 4.
  Harness t([](const Request& r) {
    if (r.command != "status") return test::UpgradeAnswer(r.command, 2, test::UpgradeEnd::kDone);
    core::PoolStatus s = Upgraded();
    core::WorkerStatus old = Draining(5000);
    old.generation = 1;
    s.workers.push_back(old);
    return test::StatusAnswer(s);
  });
  CHECK(t.Run({"upgrade", "--wait", "--wait-timeout", "5"}) == kExitTimeout);
  CHECK(t.err.str() ==
        "einhornctl: the upgrade is done, but 1 old workers told to drain have not exited within "
        "5s (--wait-timeout): 5000\n");
}

// A master whose status is `s`, whatever it is asked.
Script Shows(const core::PoolStatus& s) {
  return [s](const Request&) { return test::StatusAnswer(s); };
}

TEST_CASE("commands: wait ready, drained and upgraded") {
  Harness ready(Shows(test::MakeStatus(2, 2, 0)));
  CHECK(ready.Run({"wait", "ready"}) == kExitOk);
  CHECK(ready.out.str() == "ready: ready 2/2\n");
  CHECK(ready.Verbs() == std::vector<std::string>{"status"});

  Harness booting(Shows(test::MakeStatus(2, 1, 1)));
  CHECK(booting.Run({"wait", "ready", "--wait-timeout", "1"}) == kExitTimeout);
  CHECK(booting.err.str() ==
        "einhornctl: not ready within 1s (--wait-timeout): ready 1/2, booting 1, draining 0\n");
  CHECK(booting.clock.sleeps() >= 10);

  core::PoolStatus stopping = test::MakeStatus(2, 1, 0);
  stopping.stopping = true;
  Harness never(Shows(stopping));
  CHECK(never.Run({"wait", "ready"}) == kExitRefused);
  CHECK(never.err.str().find("will not be: the master is shutting down") != std::string::npos);

  core::PoolStatus draining = test::MakeStatus(2, 2, 0);
  draining.draining = 1;
  draining.workers.push_back(Draining(6000));
  Harness d(Shows(draining));
  CHECK(d.Run({"wait", "drained", "--timeout", "0.5"}) == kExitTimeout);
  CHECK(d.err.str() ==
        "einhornctl: not drained within 0.5s (--wait-timeout): 1 told to drain, not exited yet "
        "(pids 6000)\n");
  Harness dd(Shows(test::MakeStatus(2, 2, 0)));
  CHECK(dd.Run({"wait", "drained"}) == kExitOk);

  Harness u(Shows(Upgraded()));
  CHECK(u.Run({"wait", "upgraded"}) == kExitOk);
  CHECK(u.out.str() == "upgraded: generation 2: ready 2/2\n");

  core::PoolStatus rolled = test::MakeStatus(2, 2, 0);
  rolled.last_upgrade = core::LastUpgradeStatus{false, 2, "3 new workers failed", 5};
  Harness r(Shows(rolled));
  CHECK(r.Run({"wait", "upgraded"}) == kExitRefused);
  CHECK(r.err.str() ==
        "einhornctl: not upgraded, and it will not be: the last upgrade, to generation 2, rolled "
        "back: 3 new workers failed\n");

  // While the master checks its new binary, an upgrade has not begun yet: wait.
  core::PoolStatus reloading = Upgraded();
  reloading.reloading = true;
  Harness w(Shows(reloading));
  CHECK(w.Run({"wait", "upgraded", "--wait-timeout", "0.3"}) == kExitTimeout);
  CHECK(w.err.str().find("a master reload is under way") != std::string::npos);
}

TEST_CASE("commands: the waits' --wait-timeout 0 has no limit") {
  int polls = 0;
  Harness h([&polls](const Request&) {
    return test::StatusAnswer(++polls < 50 ? test::MakeStatus(2, 1, 1) : test::MakeStatus(2, 2, 0));
  });
  CHECK(h.Run({"wait", "ready", "--wait-timeout", "0"}) == kExitOk);
  CHECK(polls == 50);
}

}  // namespace
}  // namespace einhorn::ctl
