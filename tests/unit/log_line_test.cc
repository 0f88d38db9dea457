// core/log_line.h: the json log lines, the journald priority prefixes and JOURNAL_STREAM.
#include "core/log_line.h"

#include <doctest/doctest.h>

#include <string>

namespace einhorn::core {
namespace {

constexpr std::int64_t kWall = 1'714'564'803'250'000'000;  // 2024-05-01T12:00:03.250Z

TEST_CASE("log lines: json with stable names, event fields when there is one") {
  CHECK(JsonLogLine(kWall, LogLevel::kInfo, "command socket at /tmp/e.sock", nullptr) ==
        R"({"time": "2024-05-01T12:00:03.250Z", "level": "info", )"
        R"("message": "command socket at /tmp/e.sock"})");
  Event e;
  e.seq = 9;
  e.kind = EventKind::kExit;
  e.mono = Seconds(5);
  e.wall_ns = kWall;
  e.slot = 1;
  e.pid = 4242;
  e.generation = 2;
  e.exit = ExitStatus{true, 9};
  e.seconds = 3.25;
  CHECK(JsonLogLine(kWall, LogLevel::kWarn,
                    "worker 4242 (index 1, generation 2) exited with signal 9 after 3.250s", &e) ==
        R"({"time": "2024-05-01T12:00:03.250Z", "level": "warning", "message": "worker 4242 )"
        R"((index 1, generation 2) exited with signal 9 after 3.250s", "seq": 9, )"
        R"("event": "exit", "slot": 1, "pid": 4242, "generation": 2, "signal": 9, )"
        R"("during_drain": false, "seconds": 3.25})");
  // Whatever the message holds, the line stays one line of valid JSON.
  const std::string odd = JsonLogLine(0, LogLevel::kError, "a\nb\"c\\\x01\xff", nullptr);
  CHECK(odd == R"({"time": "1970-01-01T00:00:00.000Z", "level": "error", )"
               R"("message": "a\nb\"c\\\u0001)"
               "\xEF\xBF\xBD\"}");
  CHECK(odd.find('\n') == std::string::npos);
}

TEST_CASE("log lines: journald priorities") {
  CHECK(std::string(JournalPrefix(LogLevel::kDebug)) == "<7>");
  CHECK(std::string(JournalPrefix(LogLevel::kInfo)) == "<6>");
  CHECK(std::string(JournalPrefix(LogLevel::kWarn)) == "<4>");
  CHECK(std::string(JournalPrefix(LogLevel::kError)) == "<3>");
}

TEST_CASE("log lines: JOURNAL_STREAM names stderr by device and inode") {
  CHECK(JournalStreamMatches("8:1234", 8, 1234));
  CHECK_FALSE(JournalStreamMatches("8:1234", 8, 1235));
  CHECK_FALSE(JournalStreamMatches("9:1234", 8, 1234));
  CHECK_FALSE(JournalStreamMatches("", 0, 0));
  CHECK_FALSE(JournalStreamMatches(":", 0, 0));
  CHECK_FALSE(JournalStreamMatches("8:", 8, 0));
  CHECK_FALSE(JournalStreamMatches(":1234", 0, 1234));
  CHECK_FALSE(JournalStreamMatches("8:1234x", 8, 1234));
  CHECK_FALSE(JournalStreamMatches("-8:1234", 8, 1234));
  CHECK(JournalStreamMatches("18446744073709551615:1", 18446744073709551615ULL, 1));
}

}  // namespace
}  // namespace einhorn::core
