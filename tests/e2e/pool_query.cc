#include "pool_query.h"

#include <doctest/doctest.h>

#include "control_client.h"

namespace einhorn::test {

std::string Sock(const MasterRun& m) { return m.dir().File("einhorn.sock"); }

std::optional<core::PoolStatus> Status(const MasterRun& m) {
  ControlClient c(Sock(m));
  if (!c.connected()) return std::nullopt;
  auto reply = c.Ask("{\"id\": 1, \"command\": \"status\"}\n");
  if (!reply) return std::nullopt;
  auto status = core::PoolStatusFromYaml(reply->message);
  if (!status.ok()) return std::nullopt;
  return status.value();
}

std::set<pid_t> Pids(const MasterRun& m) {
  std::set<pid_t> pids;
  if (const auto st = Status(m)) {
    for (const auto& w : st->workers) pids.insert(w.pid);
  }
  return pids;
}

bool PoolSettled(const MasterRun& m, int n, int generation) {
  const auto st = Status(m);
  if (!st || st->ready != n || static_cast<int>(st->workers.size()) != n) return false;
  for (const auto& w : st->workers) {
    if (w.generation != generation) return false;
  }
  return true;
}

UpgradeRun RunUpgrade(const MasterRun& m, const std::string& verb,
                      std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  UpgradeRun run;
  const auto start = Clock::now();
  ControlClient c(Sock(m));
  REQUIRE(c.Send("{\"id\": 42, \"command\": \"" + verb + "\"}\n"));
  while (Clock::now() - start < timeout) {
    auto r = c.ReadReply(timeout);
    if (!r) break;
    run.messages.push_back(r->message);
    CHECK(r->request_id.has_value());
    if (!r->wait) {
      run.ended = true;
      run.error = r->error;
      run.last = r->message;
      break;
    }
  }
  run.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return run;
}

std::string MetricsAddress(const MasterRun& m) {
  std::string address;
  PollUntil(
      [&] {
        const std::string log = m.Log();
        const std::string mark = "metrics: serving GET /metrics on ";
        const size_t at = log.find(mark);
        if (at == std::string::npos) return false;
        const size_t start = at + mark.size();
        address = log.substr(start, log.find(' ', start) - start);
        return true;
      },
      std::chrono::seconds(10));
  return address;
}

}  // namespace einhorn::test
