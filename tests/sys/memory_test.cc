// sys/memory.h with real processes: a worker's tree (itself and what it forked), RSS and PSS,
// the /proc scan used where the kernel has no CONFIG_PROC_CHILDREN, zombies, renamed
// processes, and a root that is gone.
#include "sys/memory.h"

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "proc.h"
#include "sys_test_util.h"

namespace einhorn {
namespace {

using namespace std::chrono_literals;
using core::MemoryMeasure;

constexpr std::uint64_t kMiB = 1024 * 1024;

// Maps and touches `mib` MiB of private anonymous memory (resident from then on).
void Touch(size_t mib) {
  if (mib == 0) return;
  void* p = mmap(nullptr, mib * kMiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) _exit(3);
  std::memset(p, 1, mib * kMiB);
}

// A child that touches `own` MiB, then (if `child` >= 0) forks a grandchild that touches
// `child` MiB more (after the fork: its own pages, not shared), then both wait to be killed.
// With `zombie`, the child also forks a grandchild that exits at once and is never reaped.
// `name`: the child's new comm. Returns once both are ready (a byte each on a pipe).
pid_t StartTree(size_t own, int child, bool zombie = false, const char* name = nullptr) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    setpgid(0, 0);
    if (name != nullptr) prctl(PR_SET_NAME, name);
    Touch(own);
    if (zombie && fork() == 0) _exit(0);
    if (child >= 0) {
      if (fork() == 0) {
        Touch(static_cast<size_t>(child));
        if (write(fds[1], "g", 1) != 1) _exit(4);
        while (true) pause();
      }
    }
    if (write(fds[1], "c", 1) != 1) _exit(4);
    while (true) pause();
  }
  close(fds[1]);
  char buf[2];
  const size_t want = child >= 0 ? 2 : 1;
  size_t got = 0;
  while (got < want) {
    const ssize_t n = read(fds[0], buf, want - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fds[0]);
  REQUIRE(got == want);
  return pid;
}

TEST_CASE("memory: a process's own RSS counts what it touched") {
  test::ChildGuard guard(StartTree(64, -1));
  const auto own = sys::ProcessMemory(guard.pid(), MemoryMeasure::kRss);
  REQUIRE(own);
  CHECK(*own >= 64 * kMiB);
  sys::MemorySampler sampler(MemoryMeasure::kRss);
  sampler.BeginRound();
  const auto tree = sampler.Sample(guard.pid());
  REQUIRE(tree);
  CHECK(tree->processes == 1);
  CHECK(tree->bytes >= 64 * kMiB);
  CHECK_FALSE(tree->partial);
}

TEST_CASE("memory: a child that bloats is counted through its parent's tree") {
  test::ChildGuard guard(StartTree(0, 96));
  const auto own = sys::ProcessMemory(guard.pid(), MemoryMeasure::kRss);
  REQUIRE(own);
  CHECK(*own < 96 * kMiB);  // the parent alone looks small
  const auto children = sys::ProcessChildren(guard.pid());
  REQUIRE(children);
  CHECK(children->size() == 1);
  for (bool scan : {false, true}) {
    INFO("proc scan: ", scan);
    sys::MemorySampler sampler(MemoryMeasure::kRss);
    if (scan) sampler.ForceProcScan();
    sampler.BeginRound();
    const auto tree = sampler.Sample(guard.pid());
    REQUIRE(tree);
    CHECK(tree->processes == 2);
    CHECK(tree->bytes >= 96 * kMiB);
    CHECK(sampler.used_proc_scan() == scan);
  }
}

TEST_CASE("memory: PSS divides the pages a forked child shares, RSS counts them twice") {
  // The parent touches 64 MiB, then forks: the child shares every page (copy-on-write).
  test::ChildGuard guard(StartTree(64, 0));
  sys::MemorySampler rss(MemoryMeasure::kRss), pss(MemoryMeasure::kPss);
  const auto r = rss.Sample(guard.pid());
  const auto p = pss.Sample(guard.pid());
  REQUIRE(r);
  REQUIRE(p);
  CHECK(r->processes == 2);
  CHECK(p->processes == 2);
  CHECK(r->bytes >= 128 * kMiB);
  CHECK(p->bytes >= 64 * kMiB);
  CHECK(p->bytes < 100 * kMiB);
}

TEST_CASE("memory: a zombie descendant counts 0, a renamed root is found the same") {
  // The child calls itself ") x (" (stat's comm parser must take the last ')').
  test::ChildGuard guard(StartTree(8, 16, /*zombie=*/true, ") 1 (z"));
  // The zombie shows up once it has exited.
  REQUIRE(test::PollUntil(
      [&] {
        const auto children = sys::ProcessChildren(guard.pid());
        return children && children->size() == 2;
      },
      5s));
  for (bool scan : {false, true}) {
    for (MemoryMeasure m : {MemoryMeasure::kRss, MemoryMeasure::kPss}) {
      INFO("proc scan: ", scan, " measure: ", std::string(core::MemoryMeasureName(m)));
      sys::MemorySampler sampler(m);
      if (scan) sampler.ForceProcScan();
      sampler.BeginRound();
      const auto tree = sampler.Sample(guard.pid());
      REQUIRE(tree);
      CHECK(tree->processes == 3);  // the zombie is listed, with 0 bytes
      CHECK(tree->bytes >= 24 * kMiB);
      CHECK(tree->bytes < 200 * kMiB);
    }
  }
}

TEST_CASE("memory: a root that is gone is nullopt, and so are its children") {
  pid_t pid = StartTree(0, -1);
  { test::ChildGuard guard(pid); }  // killed and reaped
  CHECK_FALSE(sys::ProcessMemory(pid, MemoryMeasure::kRss));
  CHECK_FALSE(sys::ProcessMemory(pid, MemoryMeasure::kPss));
  CHECK_FALSE(sys::ProcessChildren(pid));
  sys::MemorySampler sampler(MemoryMeasure::kRss);
  CHECK_FALSE(sampler.Sample(pid));
}

TEST_CASE("memory: an unreaped (zombie) root is sampled as 0 bytes, not an error") {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) _exit(0);
  test::ChildGuard guard(pid);
  // Wait until it is a zombie (statm then reads all zeros).
  REQUIRE(test::PollUntil(
      [&] {
        const auto own = sys::ProcessMemory(pid, MemoryMeasure::kRss);
        return own && *own == 0;
      },
      5s));
  sys::MemorySampler sampler(MemoryMeasure::kPss);
  const auto tree = sampler.Sample(pid);
  REQUIRE(tree);
  CHECK(tree->bytes == 0);
}

}  // namespace
}  // namespace einhorn
