// Records what the supervisor asked for; spawns succeed with increasing pids unless told to fail.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/supervisor.h"

namespace einhorn::test {

struct FakeEffects : core::Effects {
  struct Kill {
    core::Pid pid;
    core::Signal signal;
  };
  std::vector<core::SpawnRequest> spawns;
  std::vector<Kill> kills;
  std::vector<std::pair<core::LogLevel, std::string>> logs;
  std::vector<std::pair<core::UpgradeNoteKind, std::string>> notes;  // UpgradeNote, in order
  std::vector<core::Event> events;  // LogEvent, in order (their lines are in logs too)
  core::Pid next_pid = 100;
  std::string fail_with;  // non-empty: every spawn fails with this error
  // The shell's spawn budget: -1 none; otherwise the spawns that go ahead (each counts it down)
  // before the next ones are deferred (SpawnOutcome::Deferred, not recorded in `spawns`).
  int budget = -1;
  int deferrals = 0;  // spawns deferred so far

  core::SpawnOutcome Spawn(const core::SpawnRequest& r) override {
    if (budget == 0) {
      ++deferrals;
      return core::SpawnOutcome::Deferred();
    }
    if (budget > 0) --budget;
    spawns.push_back(r);
    if (!fail_with.empty()) return core::SpawnOutcome{0, fail_with};
    return core::SpawnOutcome{next_pid++, ""};
  }
  void Kill(core::Pid pid, core::Signal s) override { kills.push_back({pid, s}); }
  void Log(core::LogLevel l, const std::string& m) override { logs.emplace_back(l, m); }
  void LogEvent(core::LogLevel l, const std::string& m, const core::Event& e) override {
    logs.emplace_back(l, m);
    events.push_back(e);
  }
  std::vector<core::Event> EventsOf(core::EventKind kind) const {
    std::vector<core::Event> out;
    for (const core::Event& e : events) {
      if (e.kind == kind) out.push_back(e);
    }
    return out;
  }
  void UpgradeNote(core::UpgradeNoteKind k, const std::string& t) override {
    notes.emplace_back(k, t);
  }

  bool Logged(const std::string& needle) const {
    for (const auto& [level, text] : logs) {
      if (text.find(needle) != std::string::npos) return true;
    }
    return false;
  }
  int NotesOf(core::UpgradeNoteKind kind) const {
    int n = 0;
    for (const auto& [k, text] : notes) n += k == kind ? 1 : 0;
    return n;
  }
};

}  // namespace einhorn::test
