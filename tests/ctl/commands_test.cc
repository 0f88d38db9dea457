// ctl/commands.h: every command against a scripted master in memory, with a fake clock.
#include "ctl/commands.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <sstream>

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
      return std::unique_ptr<Connection>(new test::ScriptedConnection(script, &sent));
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

TEST_CASE("commands: upgrade, upgrade-fleet and reload are not yet supported") {
  for (const char* c : {"upgrade", "upgrade-fleet", "reload"}) {
    Harness h(test::EinhornLike());
    CHECK(h.Run({c}) == kExitUsage);
    CHECK(h.err.str().find("not yet supported") != std::string::npos);
    CHECK(h.connects == 0);
  }
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

}  // namespace
}  // namespace einhorn::ctl
