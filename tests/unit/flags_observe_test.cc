// --log-format and --metrics-listen on the command line (core/flags.h).
#include <doctest/doctest.h>

#include "core/flags.h"

namespace einhorn::core {
namespace {

FlagsOutcome Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "einhorn-cpp");
  return ParseFlags(args, {{"TMPDIR", "/tmp"}});
}

TEST_CASE("flags: --log-format text or json, text by default") {
  FlagsOutcome plain = Parse({"w"});
  REQUIRE(plain.kind == FlagsOutcome::Kind::kRun);
  CHECK(plain.options.log_format == LogFormat::kText);
  FlagsOutcome json = Parse({"--log-format", "json", "w"});
  REQUIRE(json.kind == FlagsOutcome::Kind::kRun);
  CHECK(json.options.log_format == LogFormat::kJson);
  CHECK(Parse({"--log-format", "text", "w"}).options.log_format == LogFormat::kText);
  const FlagsOutcome bad = Parse({"--log-format", "xml", "w"});
  REQUIRE(bad.kind == FlagsOutcome::Kind::kExit);
  CHECK(bad.exit_code == kExitUsage);
  CHECK(bad.err == "einhorn-cpp: --log-format must be text or json (got 'xml')");
  CHECK(std::string(LogFormatName(LogFormat::kJson)) == "json");
}

TEST_CASE("flags: --metrics-listen takes a loopback or UNIX address, off by default") {
  CHECK(Parse({"w"}).options.metrics_listen.empty());
  const FlagsOutcome ok = Parse({"--metrics-listen", "127.0.0.1:9100", "w"});
  REQUIRE(ok.kind == FlagsOutcome::Kind::kRun);
  CHECK(ok.options.metrics_listen == "127.0.0.1:9100");
  CHECK(Parse({"--metrics-listen", "unix:/run/m.sock", "w"}).kind == FlagsOutcome::Kind::kRun);
  const FlagsOutcome open = Parse({"--metrics-listen", "0.0.0.0:9100", "w"});
  REQUIRE(open.kind == FlagsOutcome::Kind::kExit);
  CHECK(open.exit_code == kExitUsage);
  CHECK(open.err.rfind("einhorn-cpp: --metrics-listen '0.0.0.0:9100': 0.0.0.0 is not a loopback "
                       "address",
                       0) == 0);
  CHECK(Parse({"--metrics-listen", "nonsense", "w"}).kind == FlagsOutcome::Kind::kExit);
}

}  // namespace
}  // namespace einhorn::core
