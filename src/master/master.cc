#include "master/master.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "master/logging.h"
#include "sys/process.h"

namespace einhorn::master {
namespace {

// Signals the master handles; everything else keeps its default action.
constexpr std::array kHandledSignals{SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGUSR2,
                                     SIGHUP,  SIGTTIN, SIGTTOU, SIGUSR1};

std::uint64_t JitterSeed() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace

Master::Master(MasterSetup setup)
    : setup_(std::move(setup)),
      supervisor_(core::ConfigFromOptions(setup_.options, JitterSeed()), *this) {
  const core::Options& o = setup_.options;
  plan_template_.path = setup_.command_path;
  plan_template_.argv = o.command;
  // As Einhorn: the worker sees the resolved path as argv[0].
  plan_template_.argv[0] = setup_.command_path;
  plan_template_.set_listen_pid = !setup_.listeners.empty();
  for (const sys::Listener& l : setup_.listeners) {
    plan_template_.pass_fds.push_back(l.fd);
    env_input_.families.push_back(l.spec.family);
    env_input_.fd_names.push_back(l.spec.Name());
  }
  if (o.kill_children_on_exit) {
    plan_template_.pdeath_signal = SIGUSR2;
    plan_template_.expected_parent = getpid();
  }
  if (o.nice.worker) plan_template_.nice = *o.nice.worker;
  env_input_.base = setup_.startup_env;
  env_input_.master_pid = getpid();
  env_input_.sock_path = o.socket_path;
}

core::Time Master::Now() const { return core::Time(uv_hrtime()); }

int Master::Run() {
  uv_loop_init(&loop_);
  loop_.data = this;
  uv_timer_init(&loop_, &timer_);
  timer_.data = this;
  // A pipe reader that goes away must not kill the master (Einhorn dies of EPIPE here).
  signal(SIGPIPE, SIG_IGN);
  signals_.resize(kHandledSignals.size());
  for (size_t i = 0; i < kHandledSignals.size(); ++i) {
    uv_signal_init(&loop_, &signals_[i]);
    signals_[i].data = this;
    uv_signal_start(&signals_[i], &Master::OnSignal, kHandledSignals[i]);
  }

  supervisor_.Start(Now());
  AfterEvent();
  if (!supervisor_.Finished()) uv_run(&loop_, UV_RUN_DEFAULT);

  uv_walk(
      &loop_, [](uv_handle_t* h, void*) { if (!uv_is_closing(h)) uv_close(h, nullptr); },
      nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  return supervisor_.ExitCode();
}

void Master::OnSignal(uv_signal_t* handle, int signum) noexcept {
  auto* self = static_cast<Master*>(handle->data);
  try {
    self->HandleSignal(signum);
    self->AfterEvent();
  } catch (const std::exception& e) {
    spdlog::error("internal error while handling signal {}: {}", signum, e.what());
  }
}

void Master::OnTimer(uv_timer_t* handle) noexcept {
  auto* self = static_cast<Master*>(handle->data);
  try {
    self->supervisor_.Tick(self->Now());
    self->AfterEvent();
  } catch (const std::exception& e) {
    spdlog::error("internal error in a timer: {}", e.what());
  }
}

void Master::HandleSignal(int signum) {
  switch (signum) {
    case SIGCHLD:
      ReapChildren();
      return;
    case SIGTERM:
      spdlog::info("got SIGTERM: stopping the workers");
      supervisor_.Stop(core::StopKind::kTerminate, Now());
      return;
    case SIGINT:
    case SIGUSR2:
      spdlog::info("got {}: draining the workers", signum == SIGINT ? "SIGINT" : "SIGUSR2");
      supervisor_.Stop(core::StopKind::kDrain, Now());
      return;
    case SIGQUIT:
      spdlog::info("got SIGQUIT");
      supervisor_.Stop(core::StopKind::kQuit, Now());
      return;
    default:
      const auto sig = sys::FromPlatformSignal(signum);
      spdlog::warn("got {}: not yet supported, ignored", sig ? core::SignalName(*sig) : "a signal");
      return;
  }
}

void Master::ReapChildren() {
  for (const sys::Reaped& r : sys::ReapAll()) {
    supervisor_.ChildExited(r.pid, r.status, Now());
  }
}

void Master::AfterEvent() {
  if (supervisor_.Finished()) {
    uv_timer_stop(&timer_);
    uv_stop(&loop_);
    return;
  }
  const std::optional<core::Time> deadline = supervisor_.NextDeadline();
  if (!deadline) {
    uv_timer_stop(&timer_);
    return;
  }
  const core::Duration wait = *deadline - Now();
  // Round up: a timer that fires early would only re-arm itself.
  const auto ms = wait.count() <= 0 ? 0 : (wait.count() + 999'999) / 1'000'000;
  uv_timer_start(&timer_, &Master::OnTimer, static_cast<std::uint64_t>(ms), 0);
}

core::SpawnOutcome Master::Spawn(const core::SpawnRequest& request) {
  sys::SpawnPlan plan = plan_template_;
  env_input_.child_index = request.index;
  plan.env = core::BuildWorkerEnv(env_input_);
  auto pid = sys::Spawn(plan);
  if (!pid.ok()) return core::SpawnOutcome{0, pid.error()};
  return core::SpawnOutcome{pid.value(), ""};
}

void Master::Kill(core::Pid pid, core::Signal signal) {
  const int err = sys::SendSignal(pid, signal);
  if (err != 0 && err != ESRCH) {
    spdlog::error("could not send {} to {}: {}", core::SignalName(signal), pid, std::strerror(err));
  } else {
    spdlog::debug("sent {} to {}", core::SignalName(signal), pid);
  }
}

void Master::Log(core::LogLevel level, const std::string& message) {
  spdlog::log(ToSpdlog(level), "{}", message);
}

}  // namespace einhorn::master
