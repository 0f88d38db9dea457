// The imperative shell: a libuv loop that turns signals, child exits and timers into calls on
// the Supervisor, and carries out its decisions (it is the Supervisor's Effects).
#pragma once

#include <uv.h>

#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/control.h"
#include "core/options.h"
#include "core/supervisor.h"
#include "core/worker_env.h"
#include "master/control_server.h"
#include "sys/listeners.h"
#include "sys/spawn.h"

namespace einhorn::master {

struct MasterSetup {
  core::Options options;
  std::string command_path;  // resolved worker executable
  std::vector<sys::Listener> listeners;
  int control_fd = -1;  // the bound, listening command socket
  AccessPolicy access;
  std::vector<std::string> startup_env;
};

class Master final : public core::Effects, public core::ControlHost {
 public:
  explicit Master(MasterSetup setup);
  Master(const Master&) = delete;
  Master& operator=(const Master&) = delete;

  // Runs until the supervisor has finished; returns the master's exit code.
  int Run();

  core::SpawnOutcome Spawn(const core::SpawnRequest& request) override;
  void Kill(core::Pid pid, core::Signal signal) override;
  void Log(core::LogLevel level, const std::string& message) override;
  void UpgradeNote(core::UpgradeNoteKind kind, const std::string& text) override;

  int Verbosity() const override { return verbosity_; }
  void SetVerbosity(int verbosity) override;
  void Audit(core::LogLevel level, const std::string& message) override;

 private:
  static void OnSignal(uv_signal_t* handle, int signum) noexcept;
  static void OnTimer(uv_timer_t* handle) noexcept;
  void HandleSignal(int signum);
  void ReapChildren();
  void AfterEvent();
  struct PendingExec;
  void WatchExec(pid_t pid, int fd);
  void CheckExec(pid_t pid);
  void ForgetExec(PendingExec* p);
  core::Time Now() const;

  MasterSetup setup_;
  sys::SpawnPlan plan_template_;
  core::WorkerEnvInput env_input_;  // child_index filled per spawn
  core::Supervisor supervisor_;
  core::Control control_;
  int verbosity_;
  uv_loop_t loop_{};
  std::unique_ptr<ControlServer> server_;
  std::map<pid_t, PendingExec*> pending_execs_;  // children whose exec is not confirmed yet
  // Upgrade messages wait here until the event that produced them is handled, so that a
  // client's first reply goes out before the stream it subscribed to.
  std::vector<std::pair<core::UpgradeNoteKind, std::string>> notes_;
  uv_timer_t timer_{};
  std::vector<uv_signal_t> signals_;
};

}  // namespace einhorn::master
