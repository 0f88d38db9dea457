// Preload (--preload): one zygote per generation, and every decision about it, pure.
//
// The zygote is the worker command started once per generation with EINHORN_ZYGOTE_FD (the
// protocol is ZYGOTE-PROTOCOL v1, man einhorn-zygote(7)): it loads the application, says
// `{"ready": true}`, then forks one worker per request. The shell (master/zygote_link.cc) owns
// the socket and the round trips; this book decides which zygote should exist, when one is
// started, closed or killed, and what its end means:
//
//   state     ready msg   load timeout  error/EOF/fault   not needed any more   exit (reaped)
//   loading   ready       killed        killed            -                     gone (load failure)
//   ready     fault       -             killed            closing (EOF)         gone
//   closing   ignored     -             -                 -                     gone, quietly
//
// - The current generation always has a zygote (unless the pool stops). One that dies leaves
//   its workers running; the next one starts after the crash-loop backoff of the zygotes,
//   min(cap, base * 1.5^(k-1)) for the k-th end in a row (reset when one gets ready). Spawns
//   meanwhile fail (the supervisor's slot backoff then applies).
// - An upgrade under --preload first starts the new generation's zygote (it "gates" the
//   upgrade); the upgrade itself begins once it is ready. A gating zygote that ends before it
//   is ready, or is not ready within the load timeout, fails the upgrade: nothing of the new
//   generation ran, the old one keeps serving (Supervisor::UpgradeFailedEarly). A newer
//   upgrade supersedes a gating zygote (it is killed; the newer one gets a new zygote).
// - A zygote whose generation is not the current one and has no live worker left is closed
//   (EOF on its socket), and killed if it has not gone after the close grace.
// - When the pool stops, every zygote is closed.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/events.h"
#include "core/status.h"
#include "core/types.h"
#include "core/upgrade.h"

namespace einhorn::core {

enum class ZygoteState { kLoading, kReady, kClosing };
const char* ZygoteStateName(ZygoteState s);  // "loading", "ready", "closing"
std::optional<ZygoteState> ParseZygoteState(std::string_view name);

struct Zygote {
  Pid pid = 0;
  int generation = 1;
  ZygoteState state = ZygoteState::kLoading;
  Time started_at{};
  std::optional<Time> ready_at;
  std::optional<Time> closed_at;  // told to go (EOF, or killed)
  int spawns = 0;                 // workers it forked
  std::optional<UpgradeStrategy> gates;  // this upgrade starts once it is ready
  std::string fault;  // why the shell killed it (protocol error, timeout, forged pid)

  bool operator==(const Zygote&) const = default;
};

struct ZygotePolicy {
  Duration load_timeout = Seconds(60);  // loading -> ready
  Duration close_grace = Seconds(10);   // closing -> SIGKILL
  Duration backoff_base = Seconds(1);   // -s, as the workers' crash-loop backoff
  Duration backoff_cap = Seconds(30);

  bool operator==(const ZygotePolicy&) const = default;
};

// What the pool looks like, as the shell reads it from the supervisor before each decision.
struct ZygoteFacts {
  int generation = 1;              // the generation new workers get
  std::set<int> live_generations;  // the generations with a live worker
  bool stopping = false;
  bool started = true;  // the supervisor runs (false: the first zygote is still loading)
};

struct ZygoteAction {
  enum class Kind { kStart, kClose, kKill };
  Kind kind = Kind::kStart;
  int generation = 0;                    // kStart
  std::optional<UpgradeStrategy> gates;  // kStart: for this upgrade
  Pid pid = 0;                           // kClose, kKill
  std::string reason;                    // kKill, kClose: for the log line

  bool operator==(const ZygoteAction&) const = default;
};

// What a zygote's end (or a failed start) means.
struct ZygoteEnd {
  bool known = false;
  int generation = 0;
  std::optional<UpgradeStrategy> failed_upgrade;  // it gated this upgrade, which failed
  std::string why;                                // the upgrade's failure reason
  std::optional<Time> respawn_at;                 // the current generation's next zygote
  LogLevel level = LogLevel::kInfo;
  std::string line;  // the log line
  Event event;       // kZygote, detail "exit" / "load failed: ..."
};

struct ZygoteBookSnapshot {
  std::vector<Zygote> zygotes;  // ascending pid
  int failures = 0;             // ends in a row of the current generation's zygotes
  std::optional<Time> respawn_at;

  bool operator==(const ZygoteBookSnapshot&) const = default;
};

// Every check DecodeState needs: pids > 0 and unique, generations >= 1, counters >= 0, at most
// one gating zygote. Ok, or one line naming the field.
Status CheckZygotes(const ZygoteBookSnapshot& s);

class ZygoteBook {
 public:
  explicit ZygoteBook(ZygotePolicy policy = {}) : policy_(policy) {}
  void Restore(ZygoteBookSnapshot s) { s_ = std::move(s); }
  const ZygoteBookSnapshot& Snapshot() const { return s_; }
  const std::vector<Zygote>& zygotes() const { return s_.zygotes; }
  const ZygotePolicy& policy() const { return policy_; }

  // What to do now. The shell carries out each action at once and reports back (Started or
  // StartFailed for kStart) before it asks again.
  std::vector<ZygoteAction> Decide(const ZygoteFacts& facts, Time now);
  // The earliest time at which Decide has something new to do (a load timeout, a close grace,
  // a respawn).
  std::optional<Time> NextDeadline() const;

  // An upgrade under --preload: its generation's zygote is started by the next Decide. A zygote
  // still loading for an earlier upgrade is superseded: its pid is returned, to be killed.
  std::optional<Pid> RequestUpgrade(UpgradeStrategy strategy, int generation, Time now);
  // The upgrade asked for is waiting for its zygote (or has none yet).
  bool UpgradePending() const { return upgrade_.has_value() || Gating() != nullptr; }

  void Started(Pid pid, int generation, std::optional<UpgradeStrategy> gates, Time now);
  ZygoteEnd StartFailed(int generation, std::optional<UpgradeStrategy> gates,
                        const std::string& error, int current_generation, Time now);
  // `{"ready": true}`: returns the upgrade it gated, which the shell now starts. nullopt also
  // for an unknown or non-loading zygote (a second ready is a fault: the shell's to judge).
  std::optional<UpgradeStrategy> Ready(Pid pid, Time now);
  // The shell found it broken and kills it; `why` becomes its end's reason (the first one
  // given wins).
  void Fault(Pid pid, const std::string& why, Time now);
  // Reaped: its end, with `status` the exit as text ("exit 0", "signal 9").
  ZygoteEnd Ended(Pid pid, const std::string& status, int current_generation, Time now);
  void CountSpawn(Pid pid);

  const Zygote* Find(Pid pid) const;
  // The zygote that forks the workers of this generation: ready, not closing.
  const Zygote* ReadyFor(int generation) const;
  // The live (not closing) zygote of a generation, any state.
  const Zygote* LiveFor(int generation) const;

 private:
  Zygote* FindMutable(Pid pid);
  const Zygote* Gating() const;
  Duration BackoffFor(int failures) const;

  ZygotePolicy policy_;
  ZygoteBookSnapshot s_;
  // Asked for, no zygote started yet.
  struct Request {
    UpgradeStrategy strategy;
    int generation;
  };
  std::optional<Request> upgrade_;
};

// --- The protocol's messages (ZYGOTE-PROTOCOL v1): one JSON object per packet. -------------

inline constexpr size_t kMaxZygotePacket = 65536;

struct ZygoteMessage {
  enum class Kind { kReady, kError, kSpawned, kFailed };
  Kind kind = Kind::kReady;
  std::int64_t id = 0;   // kSpawned, kFailed
  std::int64_t pid = 0;  // kSpawned
  std::string error;     // kError, kFailed (at most kMaxZygoteErrorText bytes, cut)
};
inline constexpr size_t kMaxZygoteErrorText = 400;

// One packet from a zygote: a message, or one line saying what is wrong with it (not JSON, not
// an object, a known key of the wrong type, no known key, too big, nested too deep). Unknown
// keys are skipped. Never throws.
Result<ZygoteMessage> ParseZygoteMessage(std::string_view packet);

// `{"spawn": ID, "env": {...}, "self_pid_vars": [...]}`; env entries are "NAME=value" (an entry
// without '=' is skipped). Names and values are any bytes: invalid UTF-8 becomes U+FFFD (JSON
// has no other way), so such an entry should not be relied upon. With pdeath_signal (-k: the
// signal's number), also `"pdeath_signal": N`: the worker sets it as its parent-death signal
// once it is the master's child (an optional key, which zygotes that predate it ignore). With
// fd_targets (-g's channel), also `"fds": [N, ...]`: the fds sent after the three of stdio go
// to these numbers in the worker (a zygote that predates the key fails the request: it
// expects exactly three fds).
std::string EncodeSpawnRequest(std::int64_t id, const std::vector<std::string>& env,
                               const std::vector<std::string>& self_pid_vars,
                               std::optional<int> pdeath_signal = std::nullopt,
                               const std::vector<int>& fd_targets = {});

}  // namespace einhorn::core
