// The `signal` and `die` verbs with signals beyond the ones the master handles itself (CONT,
// WINCH, URG, PWR...): Einhorn 1.1.1 takes any name of Ruby's Signal.list.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "control_client.h"
#include "harness.h"

namespace einhorn::test {
namespace {

std::string Sock(const MasterRun& m) { return m.dir().File("einhorn.sock"); }

// One request in the bytes einhornsh/go-einhorn send (a JSON line, no id), and the raw reply
// line.
std::string RawReply(const MasterRun& m, const std::string& request) {
  ControlClient c(Sock(m));
  REQUIRE(c.connected());
  REQUIRE(c.Send(request + "\n"));
  return c.ReadLine(10s).value_or("<no reply>");
}

TEST_CASE("signal CONT and signal WINCH reach every worker, with Einhorn's reply bytes") {
  MasterRun m({"-n", "2", "-m", "0", "-t", "1"}, {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(m.WaitForWorkers(2));
  REQUIRE(PollUntil([&] { return ControlClient(Sock(m)).connected(); }, 10s));
  const auto workers = m.LiveWorkers();

  // Einhorn 1.1.1 replies '' to one signal and "\n" to two (captured with a raw socket:
  // ---%0Amessage: ''%0A and ---%0Amessage: "\n"%0A). Our YAML quotes every string with
  // double quotes, so the first line's bytes differ in quoting only; the second's are the same.
  {
    ControlClient c(Sock(m));
    const auto r = c.Ask(R"({"command":"signal","args":["CONT"]})"
                         "\n");
    REQUIRE(r);
    CHECK_FALSE(r->error);
    CHECK(r->message == "");
  }
  CHECK(RawReply(m, R"({"command":"signal","args":["sigwinch","Urg"]})") ==
        "---%0Amessage: \"\\n\"%0A");
  for (const auto& [pid, report] : workers) {
    CAPTURE(pid);
    // Sorted: signals pending together are delivered lowest number first (URG before WINCH).
    CHECK(PollUntil(
        [&] {
          auto got = m.SignalsOf(pid);
          std::sort(got.begin(), got.end());
          return got == std::vector<std::string>{"CONT", "URG", "WINCH"};
        },
        10s));
  }
  CHECK(m.WaitForLog("sent SIGWINCH to 2 workers, SIGURG to 2 workers"));

  // Numbers and EXIT are refused as Einhorn refuses unknown names; nothing is sent.
  ControlClient c(Sock(m));
  auto r = c.Ask("{\"command\":\"signal\",\"args\":[\"9\"]}\n");
  REQUIRE(r);
  CHECK(r->message == "Invalid signal: \"9\"");
  r = c.Ask("{\"command\":\"signal\",\"args\":[\"EXIT\"]}\n");
  REQUIRE(r);
  CHECK(r->message == "Invalid signal: \"EXIT\"");

  // Not recorded: with -t 1, nobody is killed, and the workers are the same ones.
  CHECK_FALSE(m.WaitForLog("sending SIGKILL", 1500ms));
  CHECK(m.LiveWorkers().size() == 2);
  for (const auto& [pid, report] : workers) CHECK(ProcessAlive(pid));
}

TEST_CASE("die CONT sends CONT recorded, so -t escalates and the master exits 0") {
  MasterRun m({"-n", "2", "-m", "0", "-t", "1"}, {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(m.WaitForWorkers(2));
  REQUIRE(PollUntil([&] { return ControlClient(Sock(m)).connected(); }, 10s));
  const auto workers = m.LiveWorkers();
  {
    ControlClient c(Sock(m));
    const auto r = c.Ask(R"({"command":"die","args":["cont"]})"
                         "\n");
    REQUIRE(r);
    CHECK(r->message == "Einhorn is going down! ");
  }
  // CONT does not stop a worker; the signal timeout's SIGKILL does.
  const auto status = m.process().WaitExit(20s);
  REQUIRE(status.has_value());
  CHECK(status->code == 0);
  for (const auto& [pid, report] : workers) {
    CHECK(m.SignalsOf(pid) == std::vector<std::string>{"CONT"});
  }
  CHECK(m.LogHas("sending SIGKILL"));
}

}  // namespace
}  // namespace einhorn::test
