// core/memory_limit.h: --max-worker-memory's grammar (adversarial values), and the decision per
// worker on a fake clock: nothing, recycle, drain now; each at most once per worker.
#include "core/memory_limit.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace einhorn::core {
namespace {

constexpr double kM = 1024.0 * 1024;
Time At(double seconds) { return Seconds(seconds); }

TEST_CASE("memory limit: sizes with and without units") {
  CHECK(ParseMemorySize("1").value() == 1);
  CHECK(ParseMemorySize("52428800").value() == 50 * kM);
  CHECK(ParseMemorySize("50M").value() == 50 * kM);
  CHECK(ParseMemorySize("50m").value() == 50 * kM);
  CHECK(ParseMemorySize("50MB").value() == 50 * kM);
  CHECK(ParseMemorySize("50MiB").value() == 50 * kM);
  CHECK(ParseMemorySize("1.5G").value() == 1536 * kM);
  CHECK(ParseMemorySize("512k").value() == 512 * 1024);
  CHECK(ParseMemorySize("1T").value() == 1024 * 1024 * kM);
  CHECK(ParseMemorySize("1024T").value() == kMaxMemoryBytes);
}

TEST_CASE("memory limit: invalid, zero, negative, huge, inf and nan sizes are one line each") {
  for (const char* text :
       {"",     "0",     "0M",  "0.0001", "-1",  "-50M",     "+5M",
        "1e10", "1e3M",  "inf", "-inf",   "nan", "infinity", "0x10",
        "5X",   "5MM",   "5 M", " 5M",    "5M ", "1025T",    "99999999999999999999",
        "1P",   "1..5M", ".",   "M",      "5\n", "5M\x01"}) {
    INFO("'", text, "'");
    const auto r = ParseMemorySize(text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().rfind("--max-worker-memory: ", 0) == 0);
    CHECK(r.error().find('\n') == std::string::npos);
    CHECK(r.error().find('\x01') == std::string::npos);
  }
  // A long hostile value is cut in the message.
  const auto r = ParseMemorySize(std::string(100000, '9'));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().size() < 200);
}

TEST_CASE("memory limit: soft and hard, and the hard one below the soft one") {
  CHECK_FALSE(ParseMemoryLimit("").value().enabled());
  CHECK_FALSE(ParseMemoryLimit("none").value().enabled());
  CHECK(ParseMemoryLimit("50M").value() == MemoryLimit{50 * kM, 0});
  CHECK(ParseMemoryLimit("50M,hard=80M").value() == MemoryLimit{50 * kM, 80 * kM});
  CHECK(ParseMemoryLimit("50M,hard=50M").value() == MemoryLimit{50 * kM, 50 * kM});
  const auto below = ParseMemoryLimit("80M,hard=50M");
  REQUIRE_FALSE(below.ok());
  CHECK(below.error() == "--max-worker-memory: the hard limit 50M is below the soft limit 80M");
  for (const char* text : {"50M,", "50M,hard=", "50M,soft=80M", "50M,hard=80M,hard=90M",
                           ",hard=80M", "hard=80M", "50M,hard=inf", "50M,hard=-1"}) {
    INFO(text);
    const auto r = ParseMemoryLimit(text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().rfind("--max-worker-memory: ", 0) == 0);
  }
}

TEST_CASE("memory limit: printed in the shortest text that reads back") {
  CHECK(FormatMemoryLimit(MemoryLimit{}) == "none");
  CHECK(FormatMemoryLimit(MemoryLimit{50 * kM, 80 * kM}) == "50M,hard=80M");
  CHECK(FormatMemoryLimit(MemoryLimit{1536 * kM, 0}) == "1536M");
  CHECK(FormatMemorySize(1000) == "1000");
  CHECK(FormatMemorySize(1536) == "1536");
  CHECK(FormatMemorySize(2048) == "2K");
  CHECK(FormatMemorySize(kMaxMemoryBytes) == "1024T");
  for (const char* text : {"1", "50M", "1.5G", "50M,hard=80M", "7,hard=9"}) {
    const MemoryLimit a = ParseMemoryLimit(text).value();
    CHECK(ParseMemoryLimit(FormatMemoryLimit(a)).value() == a);
  }
  CHECK(ParseMemoryMeasure("rss").value() == MemoryMeasure::kRss);
  CHECK(ParseMemoryMeasure("pss").value() == MemoryMeasure::kPss);
  CHECK_FALSE(ParseMemoryMeasure("RSS").ok());
  CHECK_FALSE(ParseMemoryMeasure("").ok());
}

TEST_CASE("memory watch: under the limit nothing, past soft a recycle, past hard a drain") {
  const MemoryLimit limit{50 * kM, 80 * kM};
  CHECK(JudgeMemory(limit, 49 * kM) == MemoryVerdict::kNone);
  CHECK(JudgeMemory(limit, 50 * kM) == MemoryVerdict::kRecycle);
  CHECK(JudgeMemory(limit, 80 * kM) == MemoryVerdict::kDrainNow);
  CHECK(JudgeMemory(MemoryLimit{50 * kM, 0}, 1e12) == MemoryVerdict::kRecycle);
  CHECK(JudgeMemory(MemoryLimit{}, 1e12) == MemoryVerdict::kNone);
}

TEST_CASE("memory watch: each worker is asked once per limit, escalated to hard once") {
  const MemoryLimit limit{50 * kM, 80 * kM};
  MemoryWatch w;
  using S = MemoryWatch::Sample;
  auto d = w.Observe(limit, {S{10, std::uint64_t(40 * kM)}, S{11, std::uint64_t(10 * kM)}}, At(1));
  CHECK(d.empty());
  REQUIRE(w.Find(10));
  CHECK(w.Find(10)->bytes == std::uint64_t(40 * kM));
  CHECK(w.Find(10)->at == At(1));
  // Past soft: one recycle.
  d = w.Observe(limit, {S{10, std::uint64_t(60 * kM)}, S{11, std::uint64_t(10 * kM)}}, At(2));
  REQUIRE(d.size() == 1);
  CHECK(d[0].pid == 10);
  CHECK(d[0].verdict == MemoryVerdict::kRecycle);
  CHECK(d[0].limit == 50 * kM);
  // Still past soft (its recycle pending): not asked again.
  for (int i = 0; i < 5; ++i) {
    CHECK(w.Observe(limit, {S{10, std::uint64_t(70 * kM)}}, At(3 + i)).empty());
  }
  // Past hard while the recycle is pending: escalated once.
  d = w.Observe(limit, {S{10, std::uint64_t(90 * kM)}}, At(10));
  REQUIRE(d.size() == 1);
  CHECK(d[0].verdict == MemoryVerdict::kDrainNow);
  CHECK(d[0].limit == 80 * kM);
  CHECK(w.Observe(limit, {S{10, std::uint64_t(95 * kM)}}, At(11)).empty());
  // Worker 11 missing from the round: it exited, and is forgotten.
  CHECK(w.Find(11) == nullptr);
}

TEST_CASE("memory watch: straight past hard is one drain, never a recycle after it") {
  const MemoryLimit limit{50 * kM, 80 * kM};
  MemoryWatch w;
  using S = MemoryWatch::Sample;
  auto d = w.Observe(limit, {S{7, std::uint64_t(100 * kM)}}, At(1));
  REQUIRE(d.size() == 1);
  CHECK(d[0].verdict == MemoryVerdict::kDrainNow);
  CHECK(w.Observe(limit, {S{7, std::uint64_t(60 * kM)}}, At(2)).empty());
}

TEST_CASE("memory watch: draining workers are never asked, a reused pid starts afresh") {
  const MemoryLimit limit{50 * kM, 0};
  MemoryWatch w;
  using S = MemoryWatch::Sample;
  CHECK(w.Observe(limit, {S{7, std::uint64_t(100 * kM), 1, true}}, At(1)).empty());
  REQUIRE(w.Observe(limit, {S{8, std::uint64_t(100 * kM)}}, At(1)).size() == 1);
  w.Forget(8);  // reaped; the pid comes back for a new worker
  REQUIRE(w.Observe(limit, {S{8, std::uint64_t(100 * kM)}}, At(2)).size() == 1);
  // The limit turned off by a reload: nothing more.
  CHECK(w.Observe(MemoryLimit{}, {S{9, std::uint64_t(1e12)}}, At(3)).empty());
}

TEST_CASE("memory watch: a pool that bloats at once writes a handful of lines") {
  const MemoryLimit limit{50 * kM, 0};
  MemoryWatch w;
  std::vector<MemoryWatch::Sample> samples;
  for (int pid = 1; pid <= 1000; ++pid) samples.push_back({pid, std::uint64_t(60 * kM)});
  const auto d = w.Observe(limit, samples, At(1));
  CHECK(d.size() == 1000);
  int logged = 0;
  for (size_t i = 0; i < d.size(); ++i) logged += w.ShouldLog(At(1));
  CHECK(logged <= 4);
  CHECK(logged >= 1);
}

}  // namespace
}  // namespace einhorn::core

namespace einhorn::core {
namespace {

TEST_CASE("memory watch: a recycle the supervisor carries (a reload) is not asked again") {
  const MemoryLimit limit{50 * kM, 80 * kM};
  MemoryWatch w;
  MemoryWatch::Sample s{5, std::uint64_t(60 * kM)};
  s.recycle_pending = true;
  CHECK(w.Observe(limit, {s}, At(1)).empty());
  // Past hard with a soft recycle pending: escalated.
  s.bytes = std::uint64_t(90 * kM);
  auto d = w.Observe(limit, {s}, At(2));
  REQUIRE(d.size() == 1);
  CHECK(d[0].verdict == MemoryVerdict::kDrainNow);
  // A hard one carried: nothing.
  MemoryWatch w2;
  s.drain_pending = true;
  CHECK(w2.Observe(limit, {s}, At(1)).empty());
}

TEST_CASE("memory watch: a request the supervisor could not take yet is asked again") {
  const MemoryLimit limit{50 * kM, 0};
  MemoryWatch w;
  const MemoryWatch::Sample s{5, std::uint64_t(60 * kM)};
  REQUIRE(w.Observe(limit, {s}, At(1)).size() == 1);
  CHECK(w.Observe(limit, {s}, At(2)).empty());
  w.AskAgain(5, MemoryVerdict::kRecycle);  // it was booting
  CHECK(w.Observe(limit, {s}, At(3)).size() == 1);
}

}  // namespace
}  // namespace einhorn::core
