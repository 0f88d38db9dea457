// libFuzzer target for the re-exec state codec (src/core/state). Built only with
// -DEINHORN_FUZZ=ON and clang++; run it with scripts/fuzz. The new master reads the state as
// its first act, so whatever the bytes, DecodeState must return a value or an error, never
// crash or throw; what it accepts must re-encode to itself; and a supervisor restored from an
// accepted state must hold it exactly and survive being driven (UBSan watches the time
// arithmetic: CheckSnapshot's ranges must keep it from overflowing).
// The one-pass reader of EncodeState's layout must read whatever it accepts as yaml-cpp does, the
// canonical reader (straight into the structs) as the general one does, and
// the restored supervisor's tallies and deadline index must agree with its pool throughout.
// A broken invariant calls __builtin_trap(), which libFuzzer reports as a crash and saves.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "core/state.h"
#include "core/state_format.h"
#include "core/supervisor.h"

namespace core = einhorn::core;

namespace {

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "state_fuzz: invariant broken: %s\n", what);
    __builtin_trap();
  }
}

// Spawns get pids no live worker has, as the kernel's would.
class Effects final : public core::Effects {
 public:
  explicit Effects(const core::SupervisorSnapshot& s) {
    for (const core::Worker& w : s.workers) used_.insert(w.pid);
  }
  core::SpawnOutcome Spawn(const core::SpawnRequest&) override {
    while (used_.count(next_) > 0) ++next_;
    used_.insert(next_);
    return core::SpawnOutcome{next_, ""};
  }
  void Kill(core::Pid, core::Signal) override {}
  void Log(core::LogLevel, const std::string&) override {}

 private:
  std::set<core::Pid> used_;
  core::Pid next_ = 1;
};

void Drive(const core::SupervisorSnapshot& snapshot) {
  Effects fx(snapshot);
  core::Supervisor s = core::Supervisor::Restore(snapshot, fx);
  Require(s.Snapshot() == snapshot, "Restore then Snapshot gives the snapshot back");
  core::Time now{0};
  for (const core::Worker& w : snapshot.workers) now = std::max(now, w.spawned_at);
  for (int round = 0; round < 3 && !s.Finished(); ++round) {
    if (const auto next = s.NextDeadline()) now = std::max(now, *next);
    s.Tick(now);
    if (!s.workers().empty()) {
      s.ChildExited(s.workers().begin()->first, core::ExitStatus{round == 1, 1}, now);
    }
    if (!s.workers().empty()) s.Ack(s.workers().rbegin()->first, now);
    Require(s.TalliesMatch(), "the tallies and the deadline index match the pool");
  }
  s.SetTarget(2, now);
  Require(s.TalliesMatch(), "the tallies and the deadline index match after a shrink");
  s.Upgrade(core::UpgradeStrategy::kFleet, now);
  s.Stop(core::StopKind::kTerminate, now);
  Require(s.TalliesMatch(), "the tallies and the deadline index match after a stop");
}

// Both readers of the state, on the same bytes: the one-pass one gives up or agrees.
void CompareReaders(std::string_view in) {
  const core::StateLimits limits;
  const std::optional<core::text::Node> ours = core::state_format::ParseOurs(in, limits);
  if (!ours) return;
  try {
    const core::text::Node theirs = core::state_format::ParseWithYamlCpp(in, limits);
    Require(*ours == theirs, "the one-pass reader builds yaml-cpp's tree");
  } catch (const std::exception& e) {
    // The byte check comes before either reader in DecodeState.
    Require(std::string_view(e.what()).find(": byte 0x") != std::string_view::npos,
            "what the one-pass reader accepts, yaml-cpp reads");
  }
}

// The canonical reader (a reload's) declines, or reads what the general reader reads.
void CompareDecoders(std::string_view in) {
  const std::optional<core::MasterState> canonical = core::ReadStateCanonical(in);
  if (!canonical) return;
  const core::Result<core::MasterState> general = core::ReadStateGeneral(in);
  Require(general.ok(), "what the canonical reader accepts, the general one reads");
  Require(*canonical == general.value(), "the canonical reader reads the general one's state");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  CompareReaders(in);
  CompareDecoders(in);
  const core::Result<core::MasterState> decoded = core::DecodeState(in);
  if (!decoded.ok()) {
    Require(!decoded.error().empty(), "a refusal says why");
    return 0;
  }
  const core::MasterState& state = decoded.value();
  Require(state.format_version == core::kStateVersion, "only this version is returned");
  const std::string text = core::EncodeState(state);
  const core::Result<core::MasterState> again = core::DecodeState(text);
  Require(again.ok(), "what decodes re-encodes to something that decodes");
  Require(again.value() == state, "the re-encoded state decodes equal");
  Require(core::EncodeState(again.value()) == text, "one encoding per state");
  Drive(state.supervisor);
  return 0;
}
