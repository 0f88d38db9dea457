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
  // The refusal names the way out.
  CHECK(open.err.find("unless --metrics-listen-public is given") != std::string::npos);
}

TEST_CASE("flags: --metrics-listen-public lets --metrics-listen take any IP address") {
  const FlagsOutcome any = Parse({"--metrics-listen", "0.0.0.0:9100", "--metrics-listen-public", "w"});
  REQUIRE_MESSAGE(any.kind == FlagsOutcome::Kind::kRun, any.err);
  CHECK(any.options.metrics_listen == "0.0.0.0:9100");
  CHECK(any.options.metrics_listen_public);
  CHECK_FALSE(Parse({"w"}).options.metrics_listen_public);
  CHECK(Parse({"--metrics-listen-public", "--metrics-listen", "[::]:0", "w"}).kind ==
        FlagsOutcome::Kind::kRun);
  // Still an address, a port and no flags.
  for (const char* bad : {"example.com:80", "*:9100", "0.0.0.0:99999", "0.0.0.0:-1", "1e10",
                          "0.0.0.0:9100,r", "256.0.0.1:80", "0.0.0.0:", ":9100"}) {
    CAPTURE(bad);
    const FlagsOutcome r = Parse({"--metrics-listen-public", "--metrics-listen", bad, "w"});
    REQUIRE(r.kind == FlagsOutcome::Kind::kExit);
    CHECK(r.exit_code == kExitUsage);
    CHECK(r.err.rfind("einhorn-cpp: --metrics-listen", 0) == 0);
  }
  const FlagsOutcome alone = Parse({"--metrics-listen-public", "w"});
  REQUIRE(alone.kind == FlagsOutcome::Kind::kExit);
  CHECK(alone.err == "einhorn-cpp: --metrics-listen-public needs --metrics-listen ADDR");
}

}  // namespace
}  // namespace einhorn::core

namespace einhorn::core {
namespace {

TEST_CASE("flags: --worker-output inherit, prefix or json, unset by default") {
  const FlagsOutcome plain = Parse({"w"});
  REQUIRE(plain.kind == FlagsOutcome::Kind::kRun);
  CHECK_FALSE(plain.options.worker_output.has_value());
  CHECK(EffectiveWorkerOutput(plain.options) == WorkerOutput::kInherit);
  // Unset follows --log-format json; an explicit inherit does not.
  CHECK(EffectiveWorkerOutput(Parse({"--log-format", "json", "w"}).options) ==
        WorkerOutput::kJson);
  CHECK(EffectiveWorkerOutput(
            Parse({"--log-format", "json", "--worker-output", "inherit", "w"}).options) ==
        WorkerOutput::kInherit);
  CHECK(Parse({"--worker-output", "prefix", "w"}).options.worker_output == WorkerOutput::kPrefix);
  CHECK(Parse({"--worker-output", "json", "w"}).options.worker_output == WorkerOutput::kJson);
  const FlagsOutcome bad = Parse({"--worker-output", "raw", "w"});
  REQUIRE(bad.kind == FlagsOutcome::Kind::kExit);
  CHECK(bad.exit_code == kExitUsage);
  CHECK(bad.err == "einhorn-cpp: --worker-output must be inherit, prefix or json (got 'raw')");
}

TEST_CASE("flags: --worker-log-dir takes an absolute directory") {
  CHECK(Parse({"w"}).options.worker_log_dir.empty());
  CHECK(Parse({"--worker-log-dir", "/var/log/app", "w"}).options.worker_log_dir == "/var/log/app");
  const FlagsOutcome rel = Parse({"--worker-log-dir", "logs", "w"});
  REQUIRE(rel.kind == FlagsOutcome::Kind::kExit);
  CHECK(rel.exit_code == kExitUsage);
  CHECK(rel.err == "einhorn-cpp: --worker-log-dir must be an absolute path (got 'logs')");
}

}  // namespace
}  // namespace einhorn::core
