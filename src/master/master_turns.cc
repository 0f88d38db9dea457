// EINHORN_CPP_SLOW_TURN_MS=N, a debugging aid for issue 20 (scale without stalls): every turn of
// the loop that kept the master busy for N ms or more gets one line saying what it did (spawns,
// exits handled, signals sent, log lines, commands) and where the time went (the supervisor's
// Tick, its NextDeadline, the reaping). A turn is the time from one uv_prepare callback (just
// before the loop polls for I/O) to the next, minus the time the poll itself waited
// (uv_metrics_idle_time). Unset (the default), nothing of this runs but a branch per counter.
#include <time.h>

#include <cstdlib>

#include "master/logging.h"
#include "master/master.h"

namespace einhorn::master {
namespace {

std::uint64_t ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace

void Master::StartTurnProbe() {
  const char* text = std::getenv("EINHORN_CPP_SLOW_TURN_MS");
  if (text == nullptr || *text == '\0') return;
  char* end = nullptr;
  const double ms = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(ms >= 0) || ms > 60'000) {
    spdlog::warn("EINHORN_CPP_SLOW_TURN_MS={}: not a number of ms in [0, 60000]; ignored", text);
    return;
  }
  slow_turn_ns_ = static_cast<std::uint64_t>(ms * 1e6);
  if (slow_turn_ns_ == 0) slow_turn_ns_ = 1;
  uv_loop_configure(&loop_, UV_METRICS_IDLE_TIME);
  turn_ = TurnWork{};
  turn_.started_ns = uv_hrtime();
  turn_.idle_ns = uv_metrics_idle_time(&loop_);
  turn_.cpu_ns = ThreadCpuNs();
  spdlog::info("reporting every loop turn busy for {} ms or more", ms);
}

void Master::StartTurnEnd() {
  uv_prepare_init(&loop_, &turn_end_);
  turn_end_.data = this;
  uv_prepare_start(&turn_end_, [](uv_prepare_t* handle) {
    auto* self = static_cast<Master*>(handle->data);
    // The next turn gets its own slice of exits (ReapChildren), and spawns in its slice.
    self->reap_turn_.open = false;
    self->answer_first_ = false;
    if (self->probing()) self->TurnEnded();
  });
}

void Master::TurnEnded() noexcept {
  const std::uint64_t now = uv_hrtime();
  const std::uint64_t idle = uv_metrics_idle_time(&loop_);
  const std::uint64_t waited = idle - turn_.idle_ns;
  const std::uint64_t span = now - turn_.started_ns;
  const std::uint64_t busy = span > waited ? span - waited : 0;
  const std::uint64_t cpu = ThreadCpuNs() - turn_.cpu_ns;
  if (busy >= slow_turn_ns_) {
    try {
      spdlog::info(
          "slow turn: busy {:.2f} ms (CPU {:.2f} ms): {} spawns, {} exits, {} signals, {} lines, {} commands; "
          "tick {:.2f} ms, next deadline {:.2f} ms ({} calls), reaping {:.2f} ms; {} workers",
          static_cast<double>(busy) / 1e6, static_cast<double>(cpu) / 1e6, turn_.spawns, turn_.exits, turn_.kills, turn_.lines,
          turn_.commands, static_cast<double>(turn_.tick_ns) / 1e6,
          static_cast<double>(turn_.deadline_ns) / 1e6, turn_.deadline_calls,
          static_cast<double>(turn_.reap_ns) / 1e6, supervisor_.workers().size());
    } catch (...) {
      // A log line that could not be written loses only itself.
    }
  }
  turn_ = TurnWork{};
  turn_.started_ns = uv_hrtime();  // the line above is not the next turn's work
  turn_.idle_ns = uv_metrics_idle_time(&loop_);
  turn_.cpu_ns = ThreadCpuNs();
}

}  // namespace einhorn::master
