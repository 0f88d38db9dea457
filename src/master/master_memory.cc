// --max-worker-memory: a timer samples every live worker's memory (with its descendants,
// sys/memory.h) each --memory-interval, the pure MemoryWatch (core/memory_limit.h) decides, and
// the supervisor recycles (past the soft limit) or drains at once (past the hard one).
//
// Cost: one round reads /proc/PID/statm (or smaps_rollup) and /proc/PID/task/*/children for
// each process of each worker's tree: for 1,000 single-process workers, ~4 opens each. The
// round runs in the loop (there is no state to share with a thread, and a round of 1,000 takes
// a few ms); tests/bench/memory_sampling.sh measures it. No limit set: no timer, no reads.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "master/master.h"
#include "sys/memory.h"

namespace einhorn::master {

void Master::StartMemoryWatch() {
  uv_timer_init(&loop_, &memory_timer_);
  memory_timer_.data = this;
  const core::Options& o = setup_.options;
  if (!o.max_worker_memory.enabled()) return;
  memory_sampler_ = std::make_unique<sys::MemorySampler>(o.memory_measure);
  const auto ms = static_cast<std::uint64_t>(std::max(1.0, std::round(o.memory_interval * 1000)));
  spdlog::info("memory limit: {} per worker with its descendants ({}), sampled every {} s",
               core::FormatMemoryLimit(o.max_worker_memory),
               core::MemoryMeasureName(o.memory_measure), o.memory_interval);
  // The first round at once: after a reload the samples are taken again without waiting.
  uv_timer_start(
      &memory_timer_,
      [](uv_timer_t* handle) {
        auto* self = static_cast<Master*>(handle->data);
        try {
          self->SampleMemory();
          self->AfterEvent();
        } catch (const std::exception& e) {
          spdlog::error("internal error while sampling memory: {}", e.what());
        }
      },
      0, ms);
}

void Master::SampleMemory() {
  if (!memory_sampler_ || supervisor_.Finished() || supervisor_.Stopping()) return;
  const core::Options& o = setup_.options;
  const core::Time began = Now();
  memory_sampler_->BeginRound();
  std::vector<core::MemoryWatch::Sample> samples;
  samples.reserve(supervisor_.workers().size());
  for (const auto& [pid, w] : supervisor_.workers()) {
    // No worker is sampled between fork and exec (when it would still map the master's own
    // pages): sys::Launch returns once the child has exec'd.
    const auto tree = memory_sampler_->Sample(pid);
    if (!tree) continue;  // gone: its SIGCHLD is on its way
    core::MemoryWatch::Sample s;
    s.pid = pid;
    s.bytes = tree->bytes;
    s.processes = tree->processes;
    s.draining = w.state == core::WorkerState::kDraining;
    s.recycle_pending = w.recycle.has_value();
    s.drain_pending = w.recycle == core::RecycleCause::kMemoryHard;
    samples.push_back(s);
  }
  const core::Time now = Now();
  if (spdlog::should_log(spdlog::level::debug)) {
    int processes = 0;
    for (const auto& s : samples) processes += s.processes;
    spdlog::debug("memory: sampled {} workers ({} processes) in {:.3f} ms", samples.size(),
                  processes, std::chrono::duration<double, std::milli>(now - began).count());
  }
  for (const core::MemoryWatch::Decision& d :
       memory_watch_.Observe(o.max_worker_memory, samples, now)) {
    const bool hard = d.verdict == core::MemoryVerdict::kDrainNow;
    const core::RecycleResult r = supervisor_.Recycle(
        d.pid, hard ? core::RecycleCause::kMemoryHard : core::RecycleCause::kMemory, now);
    // A booting worker is not recycled by the soft limit: asked again once it is ready.
    if (r == core::RecycleResult::kNotReady) {
      memory_watch_.AskAgain(d.pid, d.verdict);
      continue;
    }
    if (memory_watch_.ShouldLog(now)) {
      const core::MemoryWatch::Seen* seen = memory_watch_.Find(d.pid);
      spdlog::info("worker {} uses {} bytes ({} process{}), past the {} limit of {}: {}", d.pid,
                   d.bytes, seen ? seen->processes : 1, seen && seen->processes != 1 ? "es" : "",
                   hard ? "hard" : "soft", core::FormatMemorySize(d.limit),
                   core::RecycleResultText(r, d.pid));
    }
  }
}

const core::MemoryWatch::Seen* Master::WorkerMemory(core::Pid pid) const {
  return memory_watch_.Find(pid);
}

}  // namespace einhorn::master
