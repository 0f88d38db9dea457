#include "pool_query.h"

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

}  // namespace einhorn::test
