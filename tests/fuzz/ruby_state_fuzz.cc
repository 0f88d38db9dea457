// libFuzzer target for Ruby Einhorn's state (src/core/ruby_state), read when a live Ruby
// Einhorn execs einhorn-cpp. Built only with -DEINHORN_FUZZ=ON and clang++; run it with
// scripts/fuzz. Whatever the bytes, ParseRubyState returns a value or an error, never crashes
// or throws; an accepted state has a command and at most 100 problem lines; and the takeover
// planned from it (every worker alive, and every other one dead) passes CheckSnapshot.
// A broken invariant calls __builtin_trap(), which libFuzzer reports as a crash and saves.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string_view>

#include "core/ruby_state.h"
#include "core/supervisor.h"

namespace core = einhorn::core;

namespace {

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "ruby_state_fuzz: invariant broken: %s\n", what);
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto parsed = core::ParseRubyState(bytes);
  if (!parsed.ok()) return 0;
  const core::RubyState& s = parsed.value();
  Require(!s.options.command.empty(), "an accepted state has a command");
  Require(s.problems.size() <= 100, "problems are capped");
  std::set<core::Pid> all;
  std::set<core::Pid> half;
  for (size_t i = 0; i < s.workers.size(); ++i) {
    all.insert(s.workers[i].pid);
    if (i % 2 == 0) half.insert(s.workers[i].pid);
  }
  for (const auto* alive : {&all, &half}) {
    const core::RubyTakeover t = core::PlanRubyTakeover(
        s, *alive, core::Seconds(100), 1796569312449207639LL, 1);
    Require(core::CheckSnapshot(t.supervisor).ok(), "the planned takeover passes CheckSnapshot");
  }
  return 0;
}
