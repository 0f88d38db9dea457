// Master self-upgrade: `reload`, and the first step of every upgrade. The old image checks
// that the new binary runs and can read the state (`NEW --upgrade-check --with-state-fd 3`),
// stops reading requests, waits until every reply is written, then execs
// `NEW --with-state-fd N -- CMD...` with the state in a memfd and every fd that matters open:
// listeners, the command socket and its connections, -g channels. The pid stays,
// so the workers, systemd and the pidfile never notice. Any failure before execve leaves the
// old image running as it was and is reported (to an upgrade's subscribers as its final
// message); what the new image does with the state is in main.cc and AfterRestore.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/preload.h"
#include "core/flags.h"
#include "master/logging.h"
#include "master/master.h"
#include "sys/process.h"
#include "sys/reexec.h"

namespace einhorn::master {
namespace {

// Long enough for a cold binary on a loaded host to decode a big state (1.5 s for 10,000
// workers), short enough that a hung check does not hold an upgrade for long.
const core::Duration kCheckTimeout = core::Seconds(30);
// Test-only: EINHORN_CPP_TEST_CHECK_TIMEOUT_MS (1 to 30000) shortens the limit, so that the
// e2e test of a hung check does not wait 30 s. Not a setting: undocumented for users, and
// anything else in it is ignored.
core::Duration CheckTimeout() {
  const char* text = std::getenv("EINHORN_CPP_TEST_CHECK_TIMEOUT_MS");
  if (text == nullptr) return kCheckTimeout;
  char* end = nullptr;
  errno = 0;
  const long ms = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || ms < 1 || ms > 30000) return kCheckTimeout;
  return std::chrono::milliseconds(ms);
}
// Replies still being written when the exec is due: how long a slow reader is waited for.
const core::Duration kFlushTimeout = core::Seconds(1);
constexpr std::uint64_t kFlushPollMs = 2;
constexpr size_t kMaxCheckOutput = 64 * 1024;

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

core::UpgradeStart Master::Reload(std::optional<core::UpgradeStrategy> then_upgrade,
                                  core::Time) {
  if (!started_) {
    // Nothing to carry yet but a loading zygote, and no pool to upgrade.
    return core::UpgradeStart{false,
                              "The first zygote is still loading (--preload); try again once "
                              "the workers have started"};
  }
  const core::Reload::Begin begin =
      reload_.Request(then_upgrade, supervisor_.Stopping() || supervisor_.Finished());
  if (begin.accepted) {
    spdlog::info("{}: re-executing the master{}", begin.message,
                 begin.start_check ? "" : " (joining the reload under way)");
  }
  if (begin.start_check) {
    core::Event started;
    started.kind = core::EventKind::kReload;
    started.detail = then_upgrade ? std::string("started, then a ") +
                                        core::UpgradeStrategyName(*then_upgrade) + " upgrade"
                                  : "started";
    RecordEvent(started);
    StartReloadCheck();
  }
  return core::UpgradeStart{begin.accepted, begin.message};
}

// As Einhorn: the environment the master started with, minus --drop-env-var.
core::Result<Master::ExecTarget> Master::ReexecTarget() const {
  using R = core::Result<ExecTarget>;
  ExecTarget t;
  const core::Options& o = setup_.options;
  for (const std::string& e : setup_.startup_env) {
    const std::string name = e.substr(0, e.find('='));
    bool dropped = false;
    for (const std::string& d : o.drop_env_vars) dropped = dropped || d == name;
    if (!dropped) t.env.push_back(e);
  }
  if (o.reexec_as.empty()) {
    t.path = setup_.self_path;
    t.argv = {setup_.self_path};
    return t;
  }
  const auto env = core::EnvMap(t.env);
  const auto path_it = env.find("PATH");
  auto path = sys::ResolveCommand(o.reexec_as.front(), path_it == env.end() ? "" : path_it->second);
  if (!path.ok()) return R::Error("--reexec-as: " + path.error());
  t.path = path.value();
  t.argv = o.reexec_as;
  return t;
}

void Master::StartReloadCheck() {
  auto target = ReexecTarget();
  if (!target.ok()) return ReloadFailed(target.error());
  // The check decodes a state taken now; the exec carries a fresh one of the same format.
  core::MasterState probe;
  probe.options = setup_.options;
  probe.command_path = setup_.command_path;
  probe.supervisor = supervisor_.Snapshot();
  probe.self_path = setup_.self_path;
  probe.written_by = core::kVersion;
  probe.startup_env = setup_.startup_env;
  probe.verbosity = verbosity_;
  probe.telemetry = telemetry_.Save();
  probe.config_path = setup_.config_path;
  probe.argv = setup_.argv;
  const std::string probe_bytes = core::EncodeState(probe);
  auto state_fd = sys::BytesMemfd("einhorn-cpp-state", probe_bytes, /*sealed=*/true);
  if (!state_fd.ok()) return ReloadFailed(state_fd.error());
  auto output_fd = sys::BytesMemfd("einhorn-cpp-upgrade-check", "");
  if (!output_fd.ok()) {
    close(state_fd.value());
    return ReloadFailed(output_fd.error());
  }

  sys::SpawnPlan plan;
  plan.path = target.value().path;
  plan.argv = target.value().argv;
  for (const char* a : {"--upgrade-check", "--with-state-fd", "3", "--"}) plan.argv.push_back(a);
  for (const std::string& c : setup_.options.command) plan.argv.push_back(c);
  plan.env = target.value().env;
  plan.pass_fds = {state_fd.value()};
  plan.stdout_fd = output_fd.value();
  plan.stderr_fd = output_fd.value();
  plan.pdeath_signal = SIGKILL;
  auto started = sys::StartSpawn(plan);
  if (!started.ok()) {
    close(state_fd.value());
    close(output_fd.value());
    return ReloadFailed("the upgrade check of " + plan.path + " could not start: " +
                        started.error());
  }
  check_ = ReloadCheck{started.value().pid, started.value().status_fd,
                       output_fd.value(),   state_fd.value(),
                       plan.path,           core::Reload::ProofLine(probe_bytes)};
  spdlog::info("reload: checking {} (pid {})", plan.path, check_->pid);
  uv_timer_start(
      &reload_timer_, [](uv_timer_t* h) { static_cast<Master*>(h->data)->OnReloadTimer(); },
      static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(CheckTimeout()).count()),
      0);
}

bool Master::ReloadCheckExited(pid_t pid, const core::ExitStatus& status) {
  if (!check_ || check_->pid != pid) return false;
  uv_timer_stop(&reload_timer_);
  ReloadCheck check = *check_;
  check_.reset();
  // Spawn put the check in a process group of its own (its pid): whatever it left behind
  // goes with it. The group id stays reserved while any member lives, so this reaches only
  // the check's own descendants (ESRCH when none are left).
  sys::SignalGroup(pid, core::Signal::kKill);
  fcntl(check.status_fd, F_SETFL, fcntl(check.status_fd, F_GETFL) | O_NONBLOCK);
  const sys::ExecOutcome exec = sys::ReadExecOutcome(check.status_fd, check.binary);
  auto output = sys::ReadWholeFd(check.output_fd, kMaxCheckOutput);
  CloseFd(check.status_fd);
  CloseFd(check.output_fd);
  CloseFd(check.state_fd);
  if (exec.state == sys::ExecState::kFailed) {
    ReloadFailed("the upgrade check could not run: " + exec.error);
    return true;
  }
  const std::string said = output.ok() ? output.value() : "";
  if (auto failed = core::Reload::CheckExited(check.binary, status, said, check.proof)) {
    ReloadFailed(*failed);
    return true;
  }
  if (supervisor_.Stopping()) {
    ReloadFailed("the master is shutting down");
    return true;
  }
  check_takes_stand_in_ = core::Reload::TakesStandIn(said);
  // Requests that arrive from now on wait in the kernel for the new image (or the stand-in).
  server_->Freeze();
  flush_deadline_ = Now() + kFlushTimeout;
  exec_requested_ = true;
  uv_stop(&loop_);
  return true;
}

void Master::OnReloadTimer() {
  if (check_) {
    spdlog::warn(
        "reload: the upgrade check (pid {}) is taking too long; killing it and its "
        "process group",
        check_->pid);
    // Not only its pid: a check that hangs in a child (a wrapper script's `sleep`) would leave
    // that child running, orphaned, forever. Spawn made the check a group leader.
    sys::SignalGroup(check_->pid, core::Signal::kKill);
    sys::SendSignal(check_->pid, core::Signal::kKill);  // should it have left its group
    const std::string reason = core::Reload::CheckTimedOut(check_->binary, CheckTimeout());
    // Its exit is reaped later and no longer matches a check.
    CloseFd(check_->status_fd);
    CloseFd(check_->output_fd);
    CloseFd(check_->state_fd);
    check_.reset();
    ReloadFailed(reason);
    AfterEvent();
    return;
  }
  // Polling for the replies to drain.
  exec_requested_ = true;
  uv_stop(&loop_);
}

void Master::TryExec() {
  // No handler may run from here to execve: a signal that arrives now stays pending across
  // the exec and the new image handles it. One non-blocking turn of the loop takes whatever
  // the handlers already queued (a SIGTERM just before this point must not be lost).
  const sys::SignalMask saved =
      sys::BlockSignals(std::vector<int>(kHandledSignals.begin(), kHandledSignals.end()));
  uv_run(&loop_, UV_RUN_NOWAIT);
  auto resume = [&] { sys::RestoreSignalMask(saved); };
  if (supervisor_.Stopping() || supervisor_.Finished()) {
    resume();
    server_->Thaw();
    ReloadFailed("the master is shutting down");
    AfterEvent();
    return;
  }
  if (!server_->Flushed()) {
    if (Now() < flush_deadline_) {
      resume();
      uv_timer_start(
          &reload_timer_, [](uv_timer_t* h) { static_cast<Master*>(h->data)->OnReloadTimer(); },
          kFlushPollMs, 0);
      return;
    }
    server_->DropUnflushed();
  }
  const core::Status st = ExecNewImage();
  // Still here: execve (or what comes before it) failed.
  resume();
  server_->Thaw();
  TakeBackFromStandIn();
  ReloadFailed(st.message());
  AfterEvent();
}

core::Status Master::ExecNewImage() {
  auto target = ReexecTarget();
  if (!target.ok()) return core::Status::Error(target.error());

  StartStandIn();
  const std::vector<ControlServer::Carried> carried = server_->Export();
  core::MasterState state;
  state.options = setup_.options;
  state.command_path = setup_.command_path;
  state.supervisor = supervisor_.Snapshot();
  state.verbosity = verbosity_;
  state.self_path = setup_.self_path;
  state.written_by = core::kVersion;
  state.startup_env = setup_.startup_env;
  state.then_upgrades = reload_.then_upgrades();
  state.reloads = reloads_ + 1;
  // lock_fd stays -1: the lockfile is held only while the first image creates the socket.
  state.telemetry = telemetry_.Save();
  state.config_path = setup_.config_path;
  state.argv = setup_.argv;
  auto listener = [](const sys::Listener& l, int fd) {
    core::MasterState::Listener m;
    m.spec = l.spec;
    m.fd = fd;
    m.bound = l.bound;
    m.owns_path = l.owns_path;
    m.path_dev = static_cast<std::uint64_t>(l.path_dev);
    m.path_ino = static_cast<std::uint64_t>(l.path_ino);
    return m;
  };
  for (const sys::Listener& l : setup_.listeners) state.listeners.push_back(listener(l, l.fd));
  state.control = listener(setup_.control, server_->listener_fd());
  if (metrics_) state.metrics = listener(setup_.metrics, metrics_->listener_fd());
  for (const auto& [worker, channel] : notify_channels_) {
    state.notify_sockets.push_back({worker, NotifyFd(channel)});
  }
  for (const WorkerOutputRelay::Carried& p : output_->Export()) {
    state.worker_pipes.push_back({p.tag, p.fd, p.pending, p.dropping});
  }
  state.zygotes = ExportZygotes();
  state.zygote_failures = zygotes_.Snapshot().failures;
  state.zygote_respawn_at = zygotes_.Snapshot().respawn_at;
  state.stand_in_fd = stand_in_ ? stand_in_->channel.get() : -1;
  for (const ControlServer::Carried& c : carried) {
    core::MasterState::Client client;
    client.fd = c.fd;
    client.peer = c.peer;
    client.pending_input = c.pending_input;
    client.upgrade_id = c.upgrade_id;
    state.clients.push_back(std::move(client));
  }

  auto memfd = sys::BytesMemfd("einhorn-cpp-state", core::EncodeState(state), /*sealed=*/true);
  if (!memfd.ok()) return core::Status::Error(memfd.error());
  std::vector<int> kept;
  for (const core::CarriedFd& c : core::CarriedFds(state)) {
    if (c.fd >= 0) kept.push_back(c.fd);
  }
  kept.push_back(memfd.value());
  core::Status st = core::Status::Ok();
  for (int fd : kept) {
    if (st.ok()) st = sys::SetCloexec(fd, false);
  }
  if (st.ok()) {
    std::vector<std::string> argv = target.value().argv;
    for (const std::string& a :
         {std::string("--with-state-fd"), std::to_string(memfd.value()), std::string("--")}) {
      argv.push_back(a);
    }
    for (const std::string& c : setup_.options.command) argv.push_back(c);
    spdlog::info("reload: exec {} with {} workers, {} connections (reload #{})",
                 target.value().path, state.supervisor.workers.size(), carried.size(),
                 state.reloads);
    spdlog::default_logger()->flush();
    st = sys::ExecImage(target.value().path, argv, target.value().env);
  }
  for (int fd : kept) sys::SetCloexec(fd, true);
  close(memfd.value());
  return st;
}

// First thing in ExecNewImage: from here to the new image's first turn, the command socket
// is served by the stand-in, which answers `status` and hands every other connection over.
void Master::StartStandIn() {
  const bool takes = check_takes_stand_in_;
  check_takes_stand_in_ = false;
  if (!takes || server_->listener_fd() < 0) return;
  auto started = sys::StartStandIn(server_->listener_fd(), [this](int fd, std::string_view b) {
    return server_->StandInReply(fd, b);
  });
  if (!started.ok()) {
    // The reload goes on without one, as before the stand-in existed.
    spdlog::warn("reload: no stand-in for the command socket: {}", started.error());
    return;
  }
  stand_in_ = std::move(started.value());
}

void Master::TakeBackFromStandIn() {
  if (!stand_in_) return;
  sys::StopStandIn(stand_in_->channel.get());
  // It finishes the connection in hand (its own limits bound that), hands it over and exits:
  // every connection it took is then in the channel, before EOF.
  const core::Time deadline = Now() + core::Seconds(5);
  size_t taken = 0;
  while (!AcceptHandedFrom(stand_in_->channel.get(), &taken)) {
    const core::Duration left = deadline - Now();
    if (left <= core::Duration::zero()) {
      spdlog::warn("reload: the stand-in (pid {}) did not finish; killing it",
                   stand_in_->pid);
      sys::SendSignal(stand_in_->pid, core::Signal::kKill);
      break;
    }
    sys::WaitForHanded(stand_in_->channel.get(), left);
  }
  if (taken > 0) {
    spdlog::info("reload: took back {} command connections from the stand-in", taken);
  }
  stand_in_.reset();  // its exit is reaped as a child that is not a worker
}

void Master::ListenToStandIn(int fd) {
  if (!sys::IsHandOverChannel(fd)) {
    // Not ours to serve, and not to leak into the workers either.
    spdlog::warn("reloaded: stand_in_fd {} is not a SOCK_SEQPACKET socket; closing it", fd);
    close(fd);
    return;
  }
  sys::SetCloexec(fd, true);
  sys::StopStandIn(fd);  // this image answers from its next poll for I/O
  stand_in_fd_ = fd;
  uv_poll_init(&loop_, &stand_in_poll_, fd);
  stand_in_poll_.data = this;
  uv_poll_start(&stand_in_poll_, UV_READABLE, [](uv_poll_t* h, int, int) {
    static_cast<Master*>(h->data)->ReceiveFromStandIn();
  });
  ReceiveFromStandIn();
}

bool Master::AcceptHandedFrom(int channel, size_t* count) {
  for (;;) {
    sys::HandedConnection handed;
    const sys::HandOverRead r = sys::ReceiveHanded(channel, &handed);
    if (r == sys::HandOverRead::kNone) return false;
    if (r == sys::HandOverRead::kEnd) return true;
    server_->AcceptHanded(handed.fd.release(), handed.bytes);
    ++*count;
  }
}

void Master::ReceiveFromStandIn() {
  if (stand_in_fd_ < 0 || !AcceptHandedFrom(stand_in_fd_, &stand_in_handed_)) return;
  spdlog::debug("reloaded: the stand-in handed over {} command connections", stand_in_handed_);
  // EOF: the stand-in has handed everything over and exited. uv_close's callback runs after
  // the handle is unregistered from the loop: only then may the fd go.
  uv_close(reinterpret_cast<uv_handle_t*>(&stand_in_poll_), [](uv_handle_t* h) {
    auto* self = static_cast<Master*>(h->data);
    close(self->stand_in_fd_);
    self->stand_in_fd_ = -1;
  });
}

void Master::ReloadFailed(const std::string& reason) {
  const bool upgrading = !reload_.then_upgrades().empty();
  reload_.Clear();
  last_reload_error_ = reason;
  ++reload_failures_;
  core::Event failed;
  failed.kind = core::EventKind::kReload;
  failed.detail = "failed: " + reason.substr(0, 200);
  LogEvent(core::LogLevel::kError, core::Reload::FailureText(reason), failed);
  if (upgrading) {
    UpgradeNote(core::UpgradeNoteKind::kFailed, core::Reload::UpgradeFailureText(reason));
  }
}

void Master::AfterRestore() {
  const MasterSetup::Restored& r = *setup_.restored;
  spdlog::info("reloaded: einhorn-cpp {} took over from {} (reload #{}); {} workers, {} "
               "command connections{} kept",
               core::kVersion, r.previous_version, r.reloads,
               supervisor_.workers().size(), r.clients.size(),
               r.zygotes.empty() ? "" : ", " + std::to_string(r.zygotes.size()) + " zygotes");
  core::Event done;
  done.kind = core::EventKind::kReload;
  done.detail = "done";
  RecordEvent(done);
  for (const ControlServer::Carried& c : r.clients) server_->Restore(c);
  if (r.stand_in_fd >= 0) ListenToStandIn(r.stand_in_fd);
  for (const auto& [worker, fd] : r.notify_sockets) WatchNotify(worker, fd);
  // Before the sweep below: a worker that died during the exec has its last lines there.
  for (const WorkerOutputRelay::Carried& p : r.worker_pipes) output_->Restore(p);
  for (const pid_t pid : r.drain_now) {
    spdlog::info("takeover: sending {} to worker {} (beyond -n)",
                 core::SignalName(setup_.options.drain_signal), pid);
    sys::SendSignal(pid, setup_.options.drain_signal);
  }
  // Children that died while no image was watching: their SIGCHLD came before our handler.
  ReapChildren();
  // A waitpid for each worker (0.5 ms of the reload's silence at 1000), for a case only
  // another program under our pid can cause.
  if (!r.exec_was_direct) CheckCarriedWorkers();
  if (r.resize_to) supervisor_.SetTarget(*r.resize_to, Now());
  for (const core::UpgradeStrategy strategy : r.then_upgrades) {
    if (core::ZygoteMode(setup_.options)) {
      // The new generation's zygote loads the new code first; the upgrade begins once it is
      // ready (ZygoteReady), or fails if it does not load. A later one supersedes it.
      RequestPreloadUpgrade(strategy);
      continue;
    }
    const core::UpgradeStart start = supervisor_.Upgrade(strategy, Now());
    if (!start.started) {
      spdlog::warn("not upgrading: {}", start.message);
      UpgradeNote(core::UpgradeNoteKind::kFailed, "Upgrade failed: " + start.message);
      break;
    }
  }
}

void Master::CheckCarriedWorkers() {
  // ReapChildren took the zombies. A worker that is still in the pool but not our child any
  // more died in the exec window and was reaped by someone else: a --reexec-as wrapper that
  // waits for its own children (a shell running `sleep`) reaps ours too, since they are the
  // children of the same pid. Kept, it would be a ghost: listed ready, never replaced, and
  // waited for forever at exit. Each is ended once here, so its slot is refilled.
  std::vector<pid_t> carried;
  for (const auto& [pid, w] : supervisor_.workers()) carried.push_back(pid);
  for (const pid_t pid : carried) {
    const sys::ChildProbe probe = sys::ProbeChild(pid);
    if (probe.kind == sys::ChildProbe::Kind::kAlive) continue;
    // kExited: it died just now, after ReapChildren; an exit like any other.
    if (probe.kind == sys::ChildProbe::Kind::kExited) {
      ChildEnded(pid, probe.status);
      continue;
    }
    spdlog::warn(
        "reloaded: worker {} died during the reload and another process reaped it "
        "(a --reexec-as wrapper that waits for its children?); its exit status is "
        "unknown",
        pid);
    ChildEnded(pid, core::ExitStatus::Unknown());
  }
}

}  // namespace einhorn::master
