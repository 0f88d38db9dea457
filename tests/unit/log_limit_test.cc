// core/log_limit.h: a flood of occurrences gives a handful of lines and one summary, on a fake
// clock.
#include "core/log_limit.h"

#include <doctest/doctest.h>

#include <vector>

namespace einhorn::core {
namespace {

Time At(double seconds) { return Seconds(seconds); }

TEST_CASE("log limit: a flood logs the 1st, 10th, 100th... and is summed up when it stops") {
  LogLimiter limit;
  std::vector<std::uint64_t> logged;
  // 20,000 occurrences in half a second.
  for (int i = 0; i < 20000; ++i) {
    const LogLimiter::Verdict v = limit.Note(At(100 + i * 0.000025));
    CHECK_FALSE(v.ended);
    if (v.log) logged.push_back(v.count);
  }
  CHECK(logged == std::vector<std::uint64_t>{1, 10, 100, 1000, 10000});
  CHECK(limit.count() == 20000);
  // Still going on: nothing to sum up yet.
  CHECK_FALSE(limit.Settle(At(100.5)));
  REQUIRE(limit.settle_at());
  CHECK(*limit.settle_at() == At(100 + 19999 * 0.000025) + std::chrono::seconds(10));
  const auto s = limit.Settle(At(111));
  REQUIRE(s);
  CHECK(s->count == 20000);
  CHECK(s->unlogged == 20000 - 5);
  CHECK(ToSeconds(s->lasted) == doctest::Approx(0.5).epsilon(0.01));
  CHECK(limit.count() == 0);
  CHECK_FALSE(limit.settle_at());
  CHECK_FALSE(limit.Settle(At(200)));
  // A new run starts from one again.
  CHECK(limit.Note(At(300)).log);
  CHECK(limit.Note(At(300)).count == 2);
}

TEST_CASE("log limit: the verdict says how many went unlogged since the last line") {
  LogLimiter limit;
  for (int i = 1; i <= 9; ++i) CHECK(limit.Note(At(0)).log == (i == 1));
  const LogLimiter::Verdict tenth = limit.Note(At(0));
  CHECK(tenth.log);
  CHECK(tenth.count == 10);
  CHECK(tenth.skipped == 8);  // the 2nd to the 9th
}

TEST_CASE("log limit: a steady drip is logged at least once a minute") {
  LogLimiter limit;  // quiet 10 s, interval 60 s
  int lines = 0;
  // One every 5 s for an hour: one run (never 10 s quiet), 720 occurrences.
  for (int i = 0; i < 720; ++i) lines += limit.Note(At(i * 5.0)).log ? 1 : 0;
  CHECK(lines >= 60);
  CHECK(lines <= 63);
}

TEST_CASE("log limit: a run that stopped is handed back by the next occurrence too") {
  LogLimiter limit(LogLimiter::Options{Seconds(1), Seconds(60)});
  for (int i = 0; i < 5; ++i) limit.Note(At(0));
  const LogLimiter::Verdict v = limit.Note(At(2));
  REQUIRE(v.ended);
  CHECK(v.ended->count == 5);
  CHECK(v.ended->unlogged == 4);
  CHECK(v.log);
  CHECK(v.count == 1);
}

TEST_CASE("log limit: force settles at once, also a run whose every occurrence was logged") {
  LogLimiter limit;
  limit.Note(At(0));
  const auto s = limit.Settle(At(0), /*force=*/true);
  REQUIRE(s);
  CHECK(s->count == 1);
  CHECK(s->unlogged == 0);
  CHECK_FALSE(limit.Settle(At(0), true));
}

TEST_CASE("log limit: nonsense options are clamped, never a division or a stall") {
  LogLimiter limit(LogLimiter::Options{Duration(-5), Duration(0)});
  CHECK(limit.Note(At(0)).log);
  CHECK(limit.Settle(At(0) + Duration(1)));
}

}  // namespace
}  // namespace einhorn::core
