// --max-worker-memory: the limit's grammar, and the pure decision the master asks at each
// sampling round (which workers to recycle, which to drain at once). The samples come from
// sys/memory.h (a worker and its descendants, RSS or PSS); the recycling itself is the
// supervisor's (Supervisor::Recycle).
//
//   --max-worker-memory SIZE[,hard=SIZE]   SIZE: bytes, or a number with K, M, G or T (powers
//                                          of 1024; "50M", "1.5G", "512KiB", "80MB"), above 0
//                                          and at most kMaxMemoryBytes
//   --memory-interval SECONDS              how often every worker is sampled (default 5)
//   --memory-measure rss|pss               which figure (sys/memory.h says why rss)
//
// Past the soft limit a worker is recycled (a replacement first, then the drain); past the hard
// limit it is drained at once. Each is asked once per worker: a worker whose recycle is pending
// is not asked again for the same limit, but may still be escalated to the hard one.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/log_limit.h"
#include "core/status.h"
#include "core/types.h"

namespace einhorn::core {

enum class MemoryMeasure { kRss, kPss };
Result<MemoryMeasure> ParseMemoryMeasure(const std::string& text);  // "rss", "pss"
const char* MemoryMeasureName(MemoryMeasure m);

// --memory-interval's floor: below it the sampling would be the master's main work.
inline constexpr double kMinMemoryInterval = 0.01;

// 1 PiB: far past any machine's memory, and exact as a double.
inline constexpr double kMaxMemoryBytes = 1125899906842624.0;

// Bytes; 0: no limit. A double so that the settings' state carries it as a number (every value
// is a whole number of bytes, exact below 2^53).
struct MemoryLimit {
  double soft = 0;
  double hard = 0;  // 0: none (only the soft limit)
  bool enabled() const { return soft > 0; }
  bool operator==(const MemoryLimit&) const = default;
};

// "50M" -> 52428800. An error line names the flag and the text.
Result<double> ParseMemorySize(const std::string& text);
// "50M,hard=80M"; "" or "none" is no limit. The hard limit must not be below the soft one.
Result<MemoryLimit> ParseMemoryLimit(const std::string& text);
// The shortest text that reads back: "50M", "1536K", "1000", "50M,hard=80M"; "none".
std::string FormatMemorySize(double bytes);
std::string FormatMemoryLimit(const MemoryLimit& limit);

// What to do about one worker's sample.
enum class MemoryVerdict { kNone, kRecycle, kDrainNow };

// Tracks the workers' last samples and what was already asked for each, so that each worker is
// asked at most once per limit. Pure: the master passes the samples and the clock.
class MemoryWatch {
 public:
  struct Sample {
    Pid pid = 0;
    std::uint64_t bytes = 0;
    int processes = 1;      // the worker and its descendants counted
    bool draining = false;  // already on its way out: never asked
    // What the supervisor already has for it (Worker::recycle, carried across a reload): a
    // recycle pending is not asked again, a hard one not at all.
    bool recycle_pending = false;
    bool drain_pending = false;
  };
  struct Decision {
    Pid pid = 0;
    MemoryVerdict verdict = MemoryVerdict::kNone;
    std::uint64_t bytes = 0;
    double limit = 0;  // the limit it passed
  };
  struct Seen {
    std::uint64_t bytes = 0;
    int processes = 1;
    Time at{};
    bool asked_recycle = false;
    bool asked_drain = false;
    bool operator==(const Seen&) const = default;
  };

  // One round: `samples` are every live worker's (a worker missing from it has exited and is
  // forgotten). Returns the workers to act on, in the samples' order.
  std::vector<Decision> Observe(const MemoryLimit& limit, const std::vector<Sample>& samples,
                                Time now);
  // A worker that has gone (reaped): forgotten, so a reused pid starts afresh.
  void Forget(Pid pid) { seen_.erase(pid); }
  // The supervisor could not take the request yet (a booting worker is not recycled by the
  // soft limit): ask again at the next round.
  void AskAgain(Pid pid, MemoryVerdict verdict);
  // Whether to write the line of a decision the supervisor took, at `now`: rate-limited, so
  // that a pool that bloats at once writes a handful of lines (the events say the rest).
  bool ShouldLog(Time now) { return log_limit_.Note(now).log; }
  // A worker's last sample (for status and the metrics), or nullptr if never sampled.
  const Seen* Find(Pid pid) const;
  const std::map<Pid, Seen>& seen() const { return seen_; }
  // For a master reload: the entries carried across (state.cc).
  void Restore(std::map<Pid, Seen> seen) { seen_ = std::move(seen); }

 private:
  std::map<Pid, Seen> seen_;
  LogLimiter log_limit_;
};

// The verdict for one sample against the limit, ignoring what was already asked.
MemoryVerdict JudgeMemory(const MemoryLimit& limit, std::uint64_t bytes);

}  // namespace einhorn::core
