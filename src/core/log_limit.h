// How often to write a log line that someone else can trigger (a refused peer, a forged notify
// datagram, ...): every such site owns one LogLimiter and asks it before each line, so that a
// flood of ten thousand refusals writes a handful of lines, and yet every refusal is visible
// once: the first is logged at once, a run of them is summed up when it stops.
//
// A run is a series of occurrences with less than `quiet` between one and the next. Within a
// run the limiter lets through the 1st, 10th, 100th, 1000th... occurrence, and besides one at
// least every `interval` while the run lasts (a steady drip is not silenced for good). When the
// run ends (no occurrence for `quiet`, or the caller says so: a good connection after refused
// ones) Settle hands back the tally, and the next occurrence starts a new run.
//
// Pure: the clock is passed in. The caller arms its own timer at settle_at() to write the
// summary of a run that stopped.
#pragma once

#include <cstdint>
#include <optional>

#include "core/types.h"

namespace einhorn::core {

class LogLimiter {
 public:
  struct Options {
    Duration quiet = std::chrono::seconds(10);
    Duration interval = std::chrono::seconds(60);
  };

  // The tally of a run.
  struct Summary {
    std::uint64_t count = 0;     // occurrences in the run
    std::uint64_t unlogged = 0;  // of those, how many got no line of their own
    Duration lasted{};           // first to last occurrence
  };

  struct Verdict {
    bool log = false;            // write this occurrence's line
    std::uint64_t count = 0;     // occurrences in the run so far, this one included
    std::uint64_t skipped = 0;   // unlogged occurrences since the last line written
    std::optional<Summary> ended;  // the run before this one, had it not been settled yet
  };

  LogLimiter() : LogLimiter(Options{}) {}
  explicit LogLimiter(Options options);

  // One occurrence at `now`.
  Verdict Note(Time now);
  // The run's tally once it has been quiet for `quiet` at `now` (at once with `force`), and the
  // limiter starts afresh; nullopt while the run goes on or when there is none.
  std::optional<Summary> Settle(Time now, bool force = false);
  // When Settle will hand back the current run (nullopt: no run).
  std::optional<Time> settle_at() const;
  // Occurrences in the current run (0: none).
  std::uint64_t count() const { return count_; }

 private:
  Options options_;
  std::uint64_t count_ = 0;
  std::uint64_t unlogged_ = 0;
  std::uint64_t skipped_ = 0;  // since the last line
  Time first_{};
  Time last_{};
  Time last_logged_{};
};

}  // namespace einhorn::core
