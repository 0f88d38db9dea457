// core/readiness.h: the GET /readyz decision, and the --ready-share setting that tunes it.
#include "core/readiness.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/config.h"
#include "core/flags.h"

namespace einhorn::core {
namespace {

Readiness Decide(int target, int ready, int share = 100, bool stopping = false,
                 bool upgrading = false) {
  return DecideReadiness(ReadinessInput{target, ready, share, stopping, upgrading});
}

TEST_CASE("readiness: every target worker ready by default") {
  CHECK(Decide(4, 4).ready);
  CHECK(Decide(4, 4).body == "ready 4/4\n");
  CHECK_FALSE(Decide(4, 3).ready);
  CHECK(Decide(4, 3).body == "not ready: ready 3/4, need 4\n");
  CHECK_FALSE(Decide(4, 0).ready);
  CHECK(Decide(1, 1).ready);
}

TEST_CASE("readiness: a share is rounded up and never below one worker") {
  CHECK(ReadyNeeded(4, 50) == 2);
  CHECK(ReadyNeeded(3, 50) == 2);
  CHECK(ReadyNeeded(10, 1) == 1);
  CHECK(ReadyNeeded(1, 1) == 1);
  CHECK(ReadyNeeded(10000, 100) == 10000);
  CHECK(ReadyNeeded(10000, 99) == 9900);
  CHECK(ReadyNeeded(0, 50) == 0);
  CHECK(Decide(4, 2, 50).ready);
  CHECK(Decide(4, 2, 50).body == "ready 2/4\n");
  CHECK_FALSE(Decide(4, 1, 50).ready);
  CHECK(Decide(4, 1, 50).body == "not ready: ready 1/4, need 2\n");
  CHECK_FALSE(Decide(3, 1, 50).ready);
  CHECK(Decide(3, 2, 50).ready);
}

TEST_CASE("readiness: a target of 0 is not ready, nobody accepts") {
  CHECK_FALSE(Decide(0, 0).ready);
  CHECK(Decide(0, 0).body == "not ready: no workers wanted, ready 0/0\n");
  CHECK_FALSE(Decide(0, 0, 1).ready);
  // Workers still alive after `set 0` (draining ones are not counted, ready ones may linger).
  CHECK_FALSE(Decide(0, 2).ready);
}

TEST_CASE("readiness: a stopping master is not ready, whatever its workers") {
  CHECK_FALSE(Decide(4, 4, 100, true).ready);
  CHECK(Decide(4, 4, 100, true).body == "not ready: stopping, ready 4/4\n");
  CHECK_FALSE(Decide(4, 4, 1, true, true).ready);
}

TEST_CASE("readiness: an upgrade counts old and new ready workers together") {
  // The old generation serves while the new one boots: still ready, and the body says why.
  CHECK(Decide(4, 4, 100, false, true).ready);
  CHECK(Decide(4, 4, 100, false, true).body == "ready 4/4 (upgrade under way)\n");
  CHECK(Decide(4, 6, 100, false, true).ready);  // more than the target during the overlap
  CHECK_FALSE(Decide(4, 3, 100, false, true).ready);
  CHECK(Decide(4, 3, 100, false, true).body ==
        "not ready: ready 3/4, need 4 (upgrade under way)\n");
}

TEST_CASE("readiness: every body is one line") {
  for (int target : {0, 1, 7, 10000}) {
    for (int ready : {0, 1, 7, 10000}) {
      for (int share : {1, 50, 100}) {
        for (bool stopping : {false, true}) {
          for (bool upgrading : {false, true}) {
            const std::string body = Decide(target, ready, share, stopping, upgrading).body;
            CAPTURE(body);
            REQUIRE(!body.empty());
            CHECK(body.back() == '\n');
            CHECK(body.find('\n') == body.size() - 1);
          }
        }
      }
    }
  }
}

// The setting.
const std::map<std::string, std::string> kEnv{{"TMPDIR", "/tmp"}};

FlagsOutcome Parse(std::vector<std::string> args, const std::string* file = nullptr) {
  args.insert(args.begin(), "einhorn-cpp");
  if (file == nullptr) return ParseFlags(args, kEnv);
  const ConfigSource source{"app.yaml", *file};
  return ParseFlags(args, kEnv, &source);
}

std::string UsageErr(std::vector<std::string> args, const std::string* file = nullptr) {
  FlagsOutcome out = Parse(std::move(args), file);
  REQUIRE(out.kind == FlagsOutcome::Kind::kExit);
  CHECK(out.exit_code == kExitUsage);
  CHECK(out.err.find('\n') == std::string::npos);
  CHECK(out.err.rfind("einhorn-cpp: ", 0) == 0);
  return out.err;
}

TEST_CASE("--ready-share: default 100, 1..100 accepted") {
  CHECK(Parse({"x"}).options.ready_share == 100);
  for (const char* ok : {"1", "50", "100", "+75"}) {
    CAPTURE(ok);
    const FlagsOutcome out = Parse({"--ready-share", ok, "x"});
    INFO(out.err);
    REQUIRE(out.kind == FlagsOutcome::Kind::kRun);
  }
  CHECK(Parse({"--ready-share=50", "x"}).options.ready_share == 50);
}

TEST_CASE("--ready-share: out of range, non-numbers and fractions refused in one line") {
  CHECK(UsageErr({"--ready-share", "0", "x"}) ==
        "einhorn-cpp: --ready-share must be a whole percentage from 1 to 100 (got 0)");
  CHECK(UsageErr({"--ready-share", "101", "x"}).find("from 1 to 100 (got 101)") !=
        std::string::npos);
  CHECK(UsageErr({"--ready-share=-5", "x"}).find("--ready-share") != std::string::npos);
  for (const char* bad : {"nan", "inf", "-inf", "1e10", "99999999999", "50.5", "half", "", "50%"}) {
    CAPTURE(bad);
    CHECK(UsageErr({"--ready-share", bad, "x"}).find("--ready-share") != std::string::npos);
  }
}

TEST_CASE("ready_share in the config file") {
  const std::string good = "command: [w]\nready_share: 75\n";
  const FlagsOutcome out = Parse({}, &good);
  INFO(out.err);
  REQUIRE(out.kind == FlagsOutcome::Kind::kRun);
  CHECK(out.options.ready_share == 75);
  // The flag wins over the file.
  CHECK(Parse({"--ready-share", "10"}, &good).options.ready_share == 10);
  for (const char* bad : {"0", "101", "-1", ".nan", ".inf", "1e10", "50.5", "lots", "[50]"}) {
    CAPTURE(bad);
    const std::string text = std::string("command: [w]\nready_share: ") + bad + "\n";
    const std::string err = UsageErr({}, &text);
    CHECK(err.find("app.yaml:2: ready_share: ") != std::string::npos);
  }
}

}  // namespace
}  // namespace einhorn::core
