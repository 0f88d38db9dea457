// core/worker_output.h: cutting a worker's stream into lines, and the tagged lines.
#include "core/worker_output.h"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

namespace einhorn::core {
namespace {

struct Got {
  std::string text;
  bool cut = false;
  bool operator==(const Got&) const = default;
};

std::vector<Got> FeedAll(LineSplitter& s, const std::vector<std::string>& chunks) {
  std::vector<Got> got;
  for (const std::string& c : chunks) {
    s.Feed(c, [&](std::string_view line, bool cut) { got.push_back({std::string(line), cut}); });
  }
  return got;
}

TEST_CASE("worker output: whole lines, however the bytes arrive") {
  LineSplitter s;
  CHECK(FeedAll(s, {"hel", "lo\nwor", "ld\n\nlast"}) ==
        std::vector<Got>{{"hello", false}, {"world", false}, {"", false}});
  CHECK(s.pending() == "last");
  CHECK(s.Finish() == std::optional<std::string>("last"));
  CHECK(s.pending().empty());
  CHECK_FALSE(s.Finish().has_value());
}

TEST_CASE("worker output: every split of the same bytes gives the same lines") {
  const std::string bytes = "alpha\nbeta gamma\n\nd\nxxxxxxxxxxxxxxxxxxxx\nyy\nzzz";
  LineSplitter whole(8);
  const std::vector<Got> want = FeedAll(whole, {bytes});
  const auto want_last = whole.Finish();
  std::mt19937 rng(7);
  for (int round = 0; round < 500; ++round) {
    std::vector<std::string> chunks;
    size_t at = 0;
    while (at < bytes.size()) {
      const size_t n = 1 + rng() % 6;
      chunks.push_back(bytes.substr(at, n));
      at += n;
    }
    LineSplitter s(8);
    CHECK(FeedAll(s, chunks) == want);
    CHECK(s.Finish() == want_last);
    CHECK(s.pending().size() <= 8);
  }
}

TEST_CASE("worker output: a line over the limit is cut once, the rest dropped") {
  LineSplitter s(4);
  // Exactly the limit is whole; one byte more is cut.
  CHECK(FeedAll(s, {"abcd\n", "abcde\n", "ok\n"}) ==
        std::vector<Got>{{"abcd", false}, {"abcd", true}, {"ok", false}});
  // Cut as soon as the limit is passed, without waiting for the newline, then dropped until it.
  std::vector<Got> got = FeedAll(s, {"ab", "cd", "e"});
  CHECK(got == std::vector<Got>{{"abcd", true}});
  CHECK(s.dropping());
  CHECK(s.pending().empty());
  CHECK(FeedAll(s, {std::string(100000, 'x'), "yy\nnext\n"}) == std::vector<Got>{{"next", false}});
  CHECK_FALSE(s.dropping());
  // A cut line's rest at the end of the stream is not a line of its own.
  FeedAll(s, {"abcdefgh"});
  CHECK_FALSE(s.Finish().has_value());
  // An endless line never holds more than the limit.
  LineSplitter big;
  for (int i = 0; i < 100; ++i) {
    big.Feed(std::string(1000, 'z'), [](std::string_view, bool) {});
    CHECK(big.pending().size() <= kMaxWorkerLineBytes);
  }
}

TEST_CASE("worker output: the carried state resumes where it stopped") {
  LineSplitter s(std::string("half a "), false);
  CHECK(FeedAll(s, {"line\n"}) == std::vector<Got>{{"half a line", false}});
  LineSplitter d(std::string(), true);
  CHECK(FeedAll(d, {"rest of a cut line\nnew\n"}) == std::vector<Got>{{"new", false}});
  // Hostile carried state is trimmed to the limit.
  LineSplitter t(std::string(50, 'a'), false, 10);
  CHECK(t.pending().size() == 10);
}

TEST_CASE("worker output: text lines in the master's format, tagged") {
  const WorkerTag tag{1234, 3, 2, OutputStream::kStderr};
  std::string out;
  AppendTextWorkerLine(out, "2024-05-01T12:00:03.250", 42, false, tag, "hello", {});
  CHECK(out == "2024-05-01T12:00:03.250 einhorn-cpp[42] info: worker slot=3 pid=1234 gen=2 "
               "stderr: hello\n");
  out.clear();
  AppendTextWorkerLine(out, "T", 42, true, {7, 0, 1, OutputStream::kStdout}, "x",
                       {.cut = true, .unterminated = true});
  CHECK(out == "<6>T einhorn-cpp[42] info: worker slot=0 pid=7 gen=1 stdout: x [cut at 16384 "
               "bytes] [no newline at exit]\n");
}

TEST_CASE("worker output: json lines with the master's field names, any bytes escaped") {
  const WorkerTag tag{1234, 3, 2, OutputStream::kStdout};
  std::string out;
  AppendJsonWorkerLine(out, "2024-05-01T12:00:03.250Z", tag, "say \"hi\"\t\x01\xff", {});
  CHECK(out ==
        R"({"time": "2024-05-01T12:00:03.250Z", "level": "info", "message": "say \"hi\"\t\u0001)" "\xef\xbf\xbd" R"(", )"
        R"("source": "worker", "stream": "stdout", "slot": 3, "pid": 1234, "generation": 2})"
        "\n");
  out.clear();
  AppendJsonWorkerLine(out, "T", tag, "", {.cut = true, .unterminated = true});
  CHECK(out.find(R"(, "cut": true, "unterminated": true})") != std::string::npos);
  CHECK(out.find('\n') == out.size() - 1);
}

TEST_CASE("worker output: one log file per slot") {
  CHECK(WorkerLogFileName(0) == "slot-0.log");
  CHECK(WorkerLogFileName(12) == "slot-12.log");
}

}  // namespace
}  // namespace einhorn::core
