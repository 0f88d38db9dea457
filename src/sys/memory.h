// The memory a worker uses, counted over the worker and every process below it (job workers
// fork one child per job), read from /proc. Reads only; no policy (core/memory_limit.h decides).
//
// Which figure, and why (README "Recycling workers"):
//   - RSS (the default): /proc/PID/statm's resident pages. One small read per process, so
//     sampling 1,000 workers every 5 s costs the master well under 0.5 % of a core. Summed over
//     a tree it counts pages shared between a parent and its forked children (copy-on-write,
//     the same libraries) once per process: it over-states a forking tree.
//   - PSS (--memory-measure pss): /proc/PID/smaps_rollup's Pss, each shared page divided among
//     the processes that map it, so a tree's sum is what it really costs the machine. The
//     kernel walks every mapping of the process to produce it (several times the cost of statm,
//     more for big processes), and it holds the process's mmap lock while it does.
//
// How descendants are found: /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN, on in every
// mainstream kernel) for each thread of each process, breadth first. Without it (the file is
// missing), one scan of /proc/[0-9]*/stat per sampling round builds a parent -> children map
// (cost grows with every process on the host, not only ours). Either way:
//   - a process that exits between being listed and being read counts 0 (ENOENT/ESRCH);
//   - a zombie's statm reads 0 pages and its smaps_rollup is empty: it counts 0;
//   - the root is the master's own child, so its pid cannot be reused before the master reaps
//     it; a descendant's pid could be reused in the microseconds between listing and reading
//     it, and would then be counted once by mistake (the next sample corrects it);
//   - names (comm, argv) are never looked at: a worker that renames itself is counted the same;
//     /proc/PID/stat's comm may hold ')' and spaces, so it is parsed from the last ')';
//   - a process that leaves the tree (double fork: re-parented to the master, which is the
//     subreaper) is no longer counted;
//   - at most kMaxTreeProcesses processes are counted per root (a fork bomb costs the master a
//     bounded read); `partial` says the tree was cut.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/memory_limit.h"

namespace einhorn::sys {

struct TreeMemory {
  std::uint64_t bytes = 0;  // RSS or PSS summed over the tree
  int processes = 0;        // processes counted (the root included)
  bool partial = false;     // cut at kMaxTreeProcesses
};

constexpr int kMaxTreeProcesses = 4096;

// One process's own figure in bytes, or nullopt when it is gone (or /proc is unreadable).
std::optional<std::uint64_t> ProcessMemory(pid_t pid, core::MemoryMeasure measure);

// The direct children of `pid` (every thread's), from /proc/PID/task/*/children; nullopt when
// no thread's file could be read: the kernel has no CONFIG_PROC_CHILDREN, or the process is
// gone.
std::optional<std::vector<pid_t>> ProcessChildren(pid_t pid);

class MemorySampler {
 public:
  explicit MemorySampler(core::MemoryMeasure measure) : measure_(measure) {}

  // Starts a sampling round: forgets the /proc scan of the previous round (if one was needed).
  void BeginRound() { scanned_ = false; }
  // The tree rooted at `root`; nullopt when the root itself is gone.
  std::optional<TreeMemory> Sample(pid_t root);

  // Tests: behave as on a kernel without CONFIG_PROC_CHILDREN.
  void ForceProcScan() { force_scan_ = true; }
  bool used_proc_scan() const { return used_scan_; }

 private:
  std::vector<pid_t> ChildrenOf(pid_t pid);
  void ScanProc();

  core::MemoryMeasure measure_;
  bool force_scan_ = false;
  bool no_children_file_ = false;  // learnt once: the kernel has no CONFIG_PROC_CHILDREN
  bool scanned_ = false;
  bool used_scan_ = false;
  std::unordered_map<pid_t, std::vector<pid_t>> by_parent_;  // from the round's /proc scan
};

}  // namespace einhorn::sys
