// Manual acks (-m manual) in every shape real clients send, from the right and the wrong
// peers, and -g channels.
#include <doctest/doctest.h>

#include "control_client.h"
#include "core/pool_status.h"
#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

int Ready(const MasterRun& m) {
  auto st = Status(m);
  return st ? st->ready : -1;
}

TEST_CASE("an unacked worker stays booting and every client's ack shape makes it ready") {
  {
    MasterRun m({"-n", "1", "-m", "manual"}, {TEST_WORKER_BIN, "--report", "{reports}"});
    REQUIRE(m.WaitForWorkers(1));
    // Nothing acks it: it stays booting for as long as we look.
    CHECK_FALSE(PollUntil([&] { return Ready(m) != 0; }, 1500ms));
    CHECK(Status(m)->booting == 1);
  }
  for (const char* shape : {"ruby", "go", "json", "json-compact", "node"}) {
    INFO("shape: ", shape);
    MasterRun m({"-n", "2", "-m", "manual"}, {TEST_WORKER_BIN, "--ack", shape});
    CHECK(PollUntil([&] { return Ready(m) == 2; }, 10s));
    const auto st = Status(m);
    REQUIRE(st.has_value());
    for (const auto& w : st->workers) {
      CHECK(w.state == "ready");
      CHECK(w.time_to_ready.has_value());
    }
  }
}

TEST_CASE("an ack counts only from the worker or its descendants") {
  // A descendant of the worker (a shell script's `einhornctl ack`) may ack it.
  {
    MasterRun m({"-n", "1", "-m", "manual"}, {TEST_WORKER_BIN, "--ack", "json", "--ack-from-child"});
    CHECK(PollUntil([&] { return Ready(m) == 1; }, 10s));
  }
  // Nobody else may: not this test process, not a sibling worker.
  MasterRun m({"-n", "2", "-m", "manual"}, {TEST_WORKER_BIN, "--report", "{reports}"});
  REQUIRE(m.WaitForWorkers(2));
  const auto workers = m.LiveWorkers();
  const pid_t first = workers.begin()->first;
  {
    ControlClient c(Sock(m));
    REQUIRE(c.Send("{\"command\":\"worker:ack\", \"pid\":" + std::to_string(first) + "}\n"));
    CHECK(c.WaitEof(10s));  // no reply, as Einhorn
  }
  CHECK(m.WaitForLog("refused worker:ack for " + std::to_string(first)));
  CHECK(Ready(m) == 0);
}

TEST_CASE("-g gives each worker its own channel, and an ack on it counts for that worker only") {
  {
    MasterRun m({"-n", "2", "-m", "manual", "-g", "-b", "127.0.0.1:0"},
                {TEST_WORKER_BIN, "--report", "{reports}", "--ack", "json", "--ack-fd"});
    REQUIRE(PollUntil([&] { return Ready(m) == 2; }, 10s));
    for (const auto& [pid, r] : m.LiveWorkers()) {
      CHECK(r.at("EINHORN_SOCK_FD") == "4");  // right after the one listener
      CHECK(r.at("LISTEN_FDS") == "1");       // the channel is not a listener
      CHECK(r.at("fds") == "0 1 2 3 4");
    }
  }
  {
    MasterRun m({"-n", "1", "-m", "manual", "-g"},
                {TEST_WORKER_BIN, "--ack", "json", "--ack-fd", "--ack-pid", "1"});
    CHECK(m.WaitForLog("refused worker:ack for 1 from the -g channel of worker"));
    CHECK(Ready(m) == 0);
  }
}

}  // namespace
}  // namespace einhorn::test
