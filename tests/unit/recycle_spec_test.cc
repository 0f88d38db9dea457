// core/recycle_spec.h: --max-worker-lifetime SECS[,jitter=PCT], and its place in the options.
#include "core/recycle_spec.h"

#include <doctest/doctest.h>

#include <string>

#include "core/options.h"
#include "core/supervisor.h"

namespace einhorn::core {
namespace {

TEST_CASE("lifetime spec: seconds and an optional jitter") {
  Result<LifetimeSpec> r = ParseLifetimeSpec("3600");
  REQUIRE(r.ok());
  CHECK(r.value().seconds == 3600);
  CHECK(r.value().jitter_pct == 10);
  r = ParseLifetimeSpec("0.5,jitter=0");
  REQUIRE(r.ok());
  CHECK(r.value().seconds == 0.5);
  CHECK(r.value().jitter_pct == 0);
  r = ParseLifetimeSpec("86400,jitter=2.5%");
  REQUIRE(r.ok());
  CHECK(r.value().jitter_pct == 2.5);
  CHECK(ParseLifetimeSpec("1000000,jitter=90").ok());
}

TEST_CASE("lifetime spec: invalid and huge values are one error line") {
  for (const char* bad : {"",
                          "0",
                          "-1",
                          "1e10",
                          "1000001",
                          "inf",
                          "nan",
                          "-inf",
                          "1h",
                          " 5",
                          "5 ",
                          "0x10",
                          "+5",
                          "5,",
                          "5,jitter",
                          "5,jitter=",
                          "5,jitter=-1",
                          "5,jitter=91",
                          "5,jitter=nan",
                          "5,jitter=inf",
                          "5,jitter=1e10",
                          "5,hard=1",
                          "5,jitter=5,jitter=6",
                          "5,jitter=5%%",
                          "\x01\xff"}) {
    INFO(bad);
    const Result<LifetimeSpec> r = ParseLifetimeSpec(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().rfind("--max-worker-lifetime must be SECS[,jitter=PCT]: ", 0) == 0);
    CHECK(r.error().find('\n') == std::string::npos);
    for (char c : r.error()) CHECK((c >= 0x20 && c < 0x7f));
  }
}

TEST_CASE("lifetime spec: the option reaches the supervisor, and bad values are a problem") {
  Options o;
  o.command = {"true"};
  o.max_worker_lifetime = "100,jitter=20";
  CHECK_FALSE(FindProblem(o).has_value());
  const SupervisorConfig c = ConfigFromOptions(o, 1);
  REQUIRE(c.max_worker_lifetime.has_value());
  CHECK(*c.max_worker_lifetime == Seconds(100));
  CHECK(c.lifetime_jitter == doctest::Approx(0.2));
  o.max_worker_lifetime = "nan";
  const auto p = FindProblem(o);
  REQUIRE(p.has_value());
  CHECK(p->key == "max_worker_lifetime");
  o.max_worker_lifetime.clear();
  CHECK_FALSE(ConfigFromOptions(o, 1).max_worker_lifetime.has_value());
}

}  // namespace
}  // namespace einhorn::core
