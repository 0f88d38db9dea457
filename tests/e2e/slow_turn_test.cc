// EINHORN_CPP_SLOW_TURN_MS (issue 20's debugging aid, man einhorn-cpp ENVIRONMENT): a number of
// ms in [0, 60000] turns on one line per slow turn of the loop; anything else is one warning,
// and the master runs as usual.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "harness.h"
#include "pool_query.h"

namespace einhorn::test {
namespace {

TEST_CASE("slow turns: EINHORN_CPP_SLOW_TURN_MS reports busy turns, and a bad value is one warning") {
  for (const std::string bad : {"nan", "-1", "1e10", "inf", "abc", "60001"}) {
    INFO(bad);
    MasterRun m({"-n", "1", "-m", "0"}, {"/bin/sleep", "1000"},
                {"EINHORN_CPP_SLOW_TURN_MS=" + bad});
    REQUIRE(PollUntil([&] { return Status(m) && Status(m)->ready == 1; }, 10s));
    const std::string log = m.Log();
    const std::string warning = "EINHORN_CPP_SLOW_TURN_MS=" + bad + ": not a number of ms";
    const size_t at = log.find(warning);
    CHECK(at != std::string::npos);
    CHECK(log.find(warning, at + 1) == std::string::npos);  // once
    CHECK_FALSE(m.LogHas("slow turn:"));
  }
  // 0: every turn that did anything at all; the spawn's turn is one of them.
  MasterRun m({"-n", "1", "-m", "0"}, {"/bin/sleep", "1000"}, {"EINHORN_CPP_SLOW_TURN_MS=0"});
  REQUIRE(PollUntil([&] { return Status(m) && Status(m)->ready == 1; }, 10s));
  CHECK(m.WaitForLog("reporting every loop turn busy for 0 ms or more"));
  CHECK(m.WaitForLog("1 spawns"));
  CHECK_FALSE(m.LogHas("not a number of ms"));
}

}  // namespace
}  // namespace einhorn::test
