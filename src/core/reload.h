// The decisions of a master re-exec (`reload`, and the first step of every `upgrade`): whether
// one may start, how requests that arrive while one runs are merged, and what the pre-flight
// check's result means. The shell runs the check (`NEW --upgrade-check --with-state-fd N`),
// flushes the command socket and execs; this class only says what to do next.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/supervisor.h"
#include "core/types.h"

namespace einhorn::core {

class Reload {
 public:
  struct Begin {
    bool accepted = false;
    bool start_check = false;  // false when it joins a reload already under way
    std::string message;       // the reply: Einhorn's text, or why not
  };
  // `then_upgrade`: the worker upgrade to start once the new image runs (upgrade,
  // upgrade_fleet, SIGHUP); none for a plain reload. Requests that arrive while a reload runs
  // join it, and the new image starts every upgrade asked for, in order: each supersedes the
  // one before (a new generation), as a second Einhorn upgrade supersedes the first.
  Begin Request(std::optional<UpgradeStrategy> then_upgrade, bool master_stopping);

  bool running() const { return running_; }
  const std::vector<UpgradeStrategy>& then_upgrades() const { return then_upgrades_; }

  // The check exited: nullopt means go ahead and exec; otherwise why the reload failed. An
  // exit 0 is not enough: the output must hold `proof` (ProofLine of the state the check was
  // given) on a line of its own, which only a binary that read and decoded that state prints.
  // A stub that exits 0 (`#!/bin/sh\nexit 0` at the binary's path) would otherwise be exec'd
  // and the master would vanish with its workers orphaned.
  static std::optional<std::string> CheckExited(const std::string& binary, const ExitStatus& status,
                                                const std::string& output,
                                                const std::string& proof);
  // The line the check prints once it has read, decoded and accepted `state` (the bytes on its
  // --with-state-fd): "einhorn-cpp upgrade check: state digest <16 hex digits>", the digest
  // being FNV-1a 64 of the bytes. Not a security measure (whoever can replace the binary owns
  // the master anyway): it proves the new image read this state, not an earlier one.
  static std::string ProofLine(std::string_view state);
  // The line a check prints when its binary takes a stand-in (sys/stand_in.h) on the reload,
  // and whether a check's output says so. Without it (a binary from before the stand-in, or a
  // wrapper that hides the line) the reload runs without one, as before.
  static constexpr std::string_view kTakesStandIn = "einhorn-cpp upgrade check: takes a stand-in";
  static bool TakesStandIn(const std::string& output);
  // The check did not finish in time (the shell kills it).
  static std::string CheckTimedOut(const std::string& binary, Duration limit);
  // Ends the reload (after a failure was reported, the master running as it was).
  void Clear();

  // A failed reload in the log, and as an upgrade's final message to its subscribers.
  static std::string FailureText(const std::string& reason);
  static std::string UpgradeFailureText(const std::string& reason);

 private:
  bool running_ = false;
  std::vector<UpgradeStrategy> then_upgrades_;
};

// The last non-empty line of a program's output, trimmed and capped, for a one-line reason.
// A failed check's reason keeps up to kMaxReasonChars of it.
inline constexpr size_t kMaxReasonChars = 4000;
std::string LastLine(const std::string& output, size_t max_chars = 300);

}  // namespace einhorn::core
