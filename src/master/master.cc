#include "master/master.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdio>
#include <random>

#include "core/preload.h"
#include "core/flags.h"
#include "master/logging.h"
#include "sys/notify.h"
#include "sys/peer.h"
#include "sys/posix.h"
#include "sys/process.h"

namespace einhorn::master {
namespace {

// The time one turn of the loop may spend forking once it has started one worker: short enough
// that a `status` asked meanwhile waits about this long (issue 20: p99 <= 5 ms).
constexpr core::Duration kSpawnSlice = std::chrono::milliseconds(1);

std::uint64_t JitterSeed() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

std::string AckModeText(const core::AckMode& mode) {
  if (mode.kind == core::AckMode::Kind::kManual) return "manual";
  if (mode.kind == core::AckMode::Kind::kNotify) return "notify";
  char buf[48];
  std::snprintf(buf, sizeof buf, "timer %gs", mode.timer_seconds);
  return buf;
}

}  // namespace

Master::Master(MasterSetup setup)
    : setup_(std::move(setup)),
      // A re-exec'd image takes the old one's supervisor whole, jitter state included (moved:
      // copying 1000 workers was part of the reload's silence).
      supervisor_(setup_.restored
                      ? core::Supervisor::Restore(std::move(setup_.restored->supervisor), *this)
                      : core::Supervisor(core::ConfigFromOptions(setup_.options, JitterSeed()),
                                         *this)),
      control_(supervisor_, core::ControlHost::Of(*this),
               core::MasterInfo{getpid(), setup_.options.command_name, core::kVersion,
                                AckModeText(setup_.options.ack_mode)}),
      verbosity_(setup_.restored ? setup_.restored->verbosity : setup_.options.verbosity),
      reloads_(setup_.restored ? setup_.restored->reloads : 0),
      zygotes_(ZygotePolicyFor(setup_.options)) {
  if (setup_.restored) {
    telemetry_.Restore(std::move(setup_.restored->telemetry));
    zygotes_.Restore(setup_.restored->zygote_book);
  }
  wall_offset_ns_ = ReadWallOffset();
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
  env_input_.base = setup_.worker_env;
  if (sys::ServiceManagerListens()) service_.emplace(setup_.restored.has_value());
  env_input_.master_pid = getpid();
  env_input_.sock_path = o.socket_path;
  // The environment is the same for every worker but for its index: built once, and each spawn
  // rewrites that one entry in place.
  plan_template_.env = core::BuildWorkerEnv(env_input_);
  for (size_t i = 0; i < plan_template_.env.size(); ++i) {
    if (plan_template_.env[i].starts_with("EINHORN_CHILD_INDEX=")) child_index_entry_ = i;
  }
}

core::Time Master::Now() const { return core::Time(uv_hrtime()); }

int Master::Run() {
  uv_loop_init(&loop_);
  loop_.data = this;
  uv_timer_init(&loop_, &timer_);
  timer_.data = this;
  uv_idle_init(&loop_, &soon_);
  soon_.data = this;
  StartTurnProbe();
  StartTurnEnd();
  output_ = std::make_unique<WorkerOutputRelay>(
      &loop_, WorkerOutputRelay::Settings{core::EffectiveWorkerOutput(setup_.options),
                                          setup_.options.worker_log_dir, getpid(),
                                          StderrIsJournal()});
  // A pipe reader that goes away must not kill the master (Einhorn dies of EPIPE here).
  signal(SIGPIPE, SIG_IGN);
  // A file at its size limit (RLIMIT_FSIZE: a --worker-log-dir file, the log) fails the write
  // with EFBIG instead of killing the master. Workers get default dispositions (sys/spawn).
  signal(SIGXFSZ, SIG_IGN);
  signals_.resize(kHandledSignals.size());
  for (size_t i = 0; i < kHandledSignals.size(); ++i) {
    uv_signal_init(&loop_, &signals_[i]);
    signals_[i].data = this;
    uv_signal_start(&signals_[i], &Master::OnSignal, kHandledSignals[i]);
  }
  // Only now: a re-exec'd image arrives with these blocked, and a SIGTERM sent during the
  // exec must reach a handler, not kill the master with its default action.
  sys::ResetSignalMask();
  uv_timer_init(&loop_, &reload_timer_);
  reload_timer_.data = this;
  uv_timer_init(&loop_, &watchdog_);
  watchdog_.data = this;
  uv_timer_init(&loop_, &notify_summary_);
  notify_summary_.data = this;
  if (const auto usec = sys::WatchdogMicroseconds()) {
    const std::uint64_t ms = std::max<std::uint64_t>(1, *usec / 2000);
    spdlog::info("systemd watchdog: WATCHDOG=1 every {} ms", ms);
    uv_timer_start(
        &watchdog_, [](uv_timer_t*) { sys::NotifyServiceManager("WATCHDOG=1"); }, 0, ms);
  }

  StartMemoryWatch();

  ServerLimits limits;
  limits.live_workers = [this] { return supervisor_.workers().size(); };
  server_ = std::make_unique<ControlServer>(
      &loop_, control_, setup_.access, [this] { return Now(); }, [this] { AfterEvent(); },
      std::move(limits));
  if (setup_.control.fd >= 0) server_->Listen(setup_.control.fd);
  StartMetricsServer();

  SetUpZygotes();  // --preload
  if (setup_.restored) {
    answer_first_ = true;
    AfterRestore();
  } else if (started_) {
    supervisor_.Start(Now());
  }
  AfterEvent();
  while (!supervisor_.Finished()) {
    uv_run(&loop_, UV_RUN_DEFAULT);
    if (!exec_requested_) break;
    exec_requested_ = false;
    TryExec();  // returns only if the re-exec did not happen
  }
  server_->Close();
  if (metrics_) metrics_->Close();
  while (!notify_channels_.empty()) DropNotify(notify_channels_.begin()->first);
  CloseZygotes();  // EOF: each zygote exits (ZYGOTE-PROTOCOL)
  output_->Close();

  uv_walk(
      &loop_, [](uv_handle_t* h, void*) { if (!uv_is_closing(h)) uv_close(h, nullptr); },
      nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  if (stand_in_fd_ >= 0) close(stand_in_fd_);
  server_.reset();
  metrics_.reset();
  output_.reset();
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
    self->TickNow();
    self->AfterEvent();
  } catch (const std::exception& e) {
    self->spawn_turn_.open = false;
    spdlog::error("internal error in a timer: {}", e.what());
  }
}

void Master::SoonTurn() {
  if (answer_first_) {
    answer_first_ = false;
    AfterEvent();  // still due: the next turn
    return;
  }
  try {
    if (reap_more_) ReapChildren();
    TickNow();
    AfterEvent();
  } catch (const std::exception& e) {
    spawn_turn_.open = false;
    spdlog::error("internal error in a timer: {}", e.what());
  }
}

void Master::TickNow() {
  const core::Time now = Now();
  spawn_turn_ = SpawnTurn{true, now, 0};
  supervisor_.Tick(now);
  spawn_turn_.open = false;
  if (probing()) turn_.tick_ns += static_cast<std::uint64_t>((Now() - now).count());
}

void Master::HandleSignal(int signum) {
  switch (signum) {
    case SIGCHLD:
      ReapChildren();
      return;
    // A repeated INT or TERM climbs the stop ladder, a repeated USR2 does not (the supervisor
    // decides, and says what it sends).
    case SIGTERM:
      if (supervisor_.Stopping()) {
        spdlog::info("got SIGTERM while stopping");
      } else {
        spdlog::info("got SIGTERM: stopping the workers");
      }
      supervisor_.Stop(core::StopKind::kTerminate, Now(), core::StopRepeat::kEscalate);
      return;
    case SIGINT:
    case SIGUSR2: {
      const char* name = signum == SIGINT ? "SIGINT" : "SIGUSR2";
      if (supervisor_.Stopping()) {
        spdlog::info("got {} while stopping", name);
      } else {
        spdlog::info("got {}: draining the workers", name);
      }
      supervisor_.Stop(core::StopKind::kDrain, Now(),
                       signum == SIGINT ? core::StopRepeat::kEscalate : core::StopRepeat::kResend);
      return;
    }
    case SIGQUIT:
      spdlog::info("got SIGQUIT");
      supervisor_.Stop(core::StopKind::kQuit, Now());
      return;
    case SIGHUP: {
      core::Event asked;
      asked.kind = core::EventKind::kControl;
      asked.by = "SIGHUP";
      asked.detail = "upgrade";
      LogEventAlways(core::LogLevel::kInfo, "got SIGHUP: smooth upgrade", asked);
      const core::UpgradeStart start = Reload(core::UpgradeStrategy::kSmooth, Now());
      if (!start.started) spdlog::warn("not upgrading: {}", start.message);
      return;
    }
    case SIGTTIN:
      control_.Increment("SIGTTIN", Now());
      return;
    case SIGTTOU:
      control_.Decrement("SIGTTOU", Now());
      return;
    case SIGUSR1: {
      // logrotate's postrotate (as gunicorn's and nginx's USR1). Einhorn dies of USR1.
      if (setup_.options.worker_log_dir.empty()) {
        spdlog::info("got SIGUSR1: no log files to reopen (no --worker-log-dir)");
        return;
      }
      const size_t closed = output_->Reopen();
      spdlog::info("got SIGUSR1: reopening the worker logs in {} ({} open)",
                   setup_.options.worker_log_dir, closed);
      return;
    }
    default:
      const auto sig = sys::FromPlatformSignal(signum);
      spdlog::warn("got {}: not yet supported, ignored", sig ? core::SignalName(*sig) : "a signal");
      return;
  }
}

void Master::ReapChildren() {
  constexpr size_t kBatch = 16;
  const core::Time started = Now();
  if (!reap_turn_.open) reap_turn_ = ReapTurn{true, started};
  reap_more_ = false;
  // This turn has spent its slice already (an earlier SIGCHLD of the same turn): after the
  // next poll for I/O.
  if (started - reap_turn_.started >= kSpawnSlice) {
    reap_more_ = true;
    return;
  }
  for (;;) {
    const std::vector<sys::Reaped> reaped = sys::ReapSome(kBatch);
    for (const sys::Reaped& r : reaped) {
      if (ReloadCheckExited(r.pid, r.status)) continue;
      ChildEnded(r.pid, r.status);
    }
    if (reaped.size() < kBatch) break;
    if (Now() - reap_turn_.started >= kSpawnSlice) {
      reap_more_ = true;  // the rest after the next poll for I/O (SoonTurn)
      break;
    }
  }
  if (probing()) turn_.reap_ns += static_cast<std::uint64_t>((Now() - started).count());
}

void Master::ChildEnded(pid_t pid, const core::ExitStatus& status) {
  if (probing()) ++turn_.exits;
  if (ZygoteEnded(pid, status)) return;
  // Its last lines before the line that says it exited.
  output_->WorkerExited(pid);
  // A child whose exec failed: why, before the exit.
  if (const auto it = exec_errors_.find(pid); it != exec_errors_.end()) {
    spdlog::error("worker {} could not be started: {}", pid, it->second);
    exec_errors_.erase(it);
  }
  server_->DropWorkerChannel(pid);
  DropNotify(pid);
  memory_watch_.Forget(pid);
  supervisor_.ChildExited(pid, status, Now());
}

void Master::AfterEvent() {
  ApplyZygotes();
  if (server_) {
    for (const auto& [kind, text] : notes_) server_->BroadcastUpgrade(kind, text);
  }
  notes_.clear();
  NotifyServiceManager();
  if (supervisor_.Finished()) {
    uv_timer_stop(&timer_);
    uv_idle_stop(&soon_);
    uv_stop(&loop_);
    return;
  }
  const core::Time asked = probing() ? Now() : core::Time{};
  std::optional<core::Time> deadline = supervisor_.NextDeadline();
  if (probing()) {
    turn_.deadline_ns += static_cast<std::uint64_t>((Now() - asked).count());
    ++turn_.deadline_calls;
  }
  if (const auto z = zygotes_.NextDeadline(); z && (!deadline || *z < *deadline)) deadline = z;
  const core::Time now = Now();
  if (reap_more_ || (deadline && *deadline <= now)) {
    // Due now (a slice of spawns or of exits left for later, a resize): after the next poll
    // for I/O. A 0 ms timer re-armed from its own callback could run again before any I/O.
    uv_timer_stop(&timer_);
    if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&soon_))) {
      uv_idle_start(&soon_, [](uv_idle_t* handle) {
        uv_idle_stop(handle);
        static_cast<Master*>(handle->data)->SoonTurn();
      });
    }
    return;
  }
  uv_idle_stop(&soon_);
  if (!deadline) {
    uv_timer_stop(&timer_);
    return;
  }
  // Both are >= 0 (a far deadline saturates at Time::max(), core::After), so the difference
  // cannot wrap. Round up: a timer that fires early would only re-arm itself.
  const std::int64_t wait = (*deadline - now).count();
  const std::int64_t ms = wait / 1'000'000 + (wait % 1'000'000 != 0 ? 1 : 0);
  uv_timer_start(&timer_, &Master::OnTimer, static_cast<std::uint64_t>(ms), 0);
}

namespace {

// The fds one spawn opens besides the listeners; the master takes each over once the child is
// started, or closes it.
struct SpawnExtras {
  std::optional<std::pair<int, int>> channel;  // -g: ours, the worker's
  std::optional<sys::WorkerNotifySocket> notify;
  std::optional<WorkerOutputRelay::Pipes> pipes;

  // After a failure before the fork (the pipes are opened last: never open then).
  void CloseAll() {
    if (channel) {
      close(channel->first);
      close(channel->second);
    }
    if (notify) close(notify->fd);
  }
};

// -g: a private, pre-connected command channel at the fd after the listeners. Einhorn's
// version of this is lost at exec (CLOEXEC); ours is placed by the spawn plan.
core::Status AddChannel(sys::SpawnPlan* plan, SpawnExtras* extras) {
  auto pair = sys::StreamSocketPair();
  if (!pair.ok()) return core::Status::Error(pair.error());
  extras->channel = pair.value();
  plan->env.push_back("EINHORN_SOCK_FD=" +
                      std::to_string(core::kFirstListenFd + plan->pass_fds.size()));
  plan->pass_fds.push_back(extras->channel->second);
  return core::Status::Ok();
}

// -m notify: the worker's own NOTIFY_SOCKET; what arrives there is checked to come from it.
core::Status AddNotifySocket(sys::SpawnPlan* plan, SpawnExtras* extras) {
  auto opened = sys::OpenWorkerNotifySocket();
  if (!opened.ok()) return core::Status::Error("NOTIFY_SOCKET: " + opened.error());
  extras->notify = opened.value();
  plan->env.push_back("NOTIFY_SOCKET=" + extras->notify->address);
  return core::Status::Ok();
}

void AddWatchdog(double seconds, sys::SpawnPlan* plan) {
  const auto usec = static_cast<long long>(seconds * 1e6);
  plan->env.push_back("WATCHDOG_USEC=" + std::to_string(usec));
  plan->set_watchdog_pid = true;
}

// --worker-output prefix|json, --worker-log-dir: stdout and stderr into pipes we read.
core::Status AddOutputPipes(WorkerOutputRelay& output, sys::SpawnPlan* plan, SpawnExtras* extras) {
  auto opened = output.Open();
  if (!opened.ok()) return core::Status::Error("worker output: " + opened.error());
  extras->pipes = opened.value();
  plan->stdout_fd = extras->pipes->out_write;
  plan->stderr_fd = extras->pipes->err_write;
  return core::Status::Ok();
}

// A worker a zygote forked, as sys::Launch reports an exec'd one (it has no exec to fail).
core::Result<sys::Launched> Forked(const core::Result<pid_t>& forked) {
  if (!forked.ok()) return core::Result<sys::Launched>::Error(forked.error());
  return sys::Launched{forked.value(), ""};
}

core::Status PrepareExtras(const core::Options& o, WorkerOutputRelay& output, sys::SpawnPlan* plan,
                           SpawnExtras* extras) {
  if (o.command_socket_as_fd) {
    if (core::Status st = AddChannel(plan, extras); !st.ok()) return st;
  }
  if (o.ack_mode.kind == core::AckMode::Kind::kNotify || o.worker_watchdog) {
    if (core::Status st = AddNotifySocket(plan, extras); !st.ok()) return st;
  }
  if (o.worker_watchdog) AddWatchdog(*o.worker_watchdog, plan);
  if (output.Wanted()) return AddOutputPipes(output, plan, extras);
  return core::Status::Ok();
}

}  // namespace

namespace {

// Puts a plan back as it was once a spawn is done with it: the extras that spawn appended
// (PrepareExtras) come off again, on every path.
class PlanRestore {
 public:
  explicit PlanRestore(sys::SpawnPlan& plan)
      : plan_(plan),
        env_(plan.env.size()),
        fds_(plan.pass_fds.size()),
        stdout_fd_(plan.stdout_fd),
        stderr_fd_(plan.stderr_fd),
        watchdog_pid_(plan.set_watchdog_pid) {}
  ~PlanRestore() {
    plan_.env.resize(env_);
    plan_.pass_fds.resize(fds_);
    plan_.stdout_fd = stdout_fd_;
    plan_.stderr_fd = stderr_fd_;
    plan_.set_watchdog_pid = watchdog_pid_;
  }
  PlanRestore(const PlanRestore&) = delete;
  PlanRestore& operator=(const PlanRestore&) = delete;

 private:
  sys::SpawnPlan& plan_;
  size_t env_;
  size_t fds_;
  int stdout_fd_;
  int stderr_fd_;
  bool watchdog_pid_;
};

}  // namespace

core::SpawnOutcome Master::Spawn(const core::SpawnRequest& request) {
  // Outside a tick, or past this turn's slice: later (the slot stays pending, due now).
  if (!spawn_turn_.open ||
      (spawn_turn_.spawned > 0 && Now() - spawn_turn_.started >= kSpawnSlice)) {
    return core::SpawnOutcome::Deferred();
  }
  ++spawn_turn_.spawned;
  if (probing()) ++turn_.spawns;
  // The template itself, not a copy of it (one spawn at a time, from the loop's thread): a
  // copy of argv and the whole environment per worker is what this avoids.
  sys::SpawnPlan& plan = plan_template_;
  const PlanRestore restore(plan);
  plan.env[child_index_entry_] = "EINHORN_CHILD_INDEX=" + std::to_string(request.index);
  SpawnExtras extras;
  if (const core::Status st = PrepareExtras(setup_.options, *output_, &plan, &extras); !st.ok()) {
    extras.CloseAll();
    return core::SpawnOutcome{0, st.message(), false};
  }
  // Returns once the child has exec'd or failed (sys/spawn.h): no pipe, no callback.
  // Under --zygote the request's zygote forks it (master_zygote.cc): there is no exec.
  auto started = core::ZygoteMode(setup_.options) ? Forked(ForkFromZygote(request, plan)) : sys::Launch(plan);
  if (const auto& pipes = extras.pipes) {
    close(pipes->out_write);
    close(pipes->err_write);
    if (started.ok()) {
      output_->Attach(core::WorkerTag{started.value().pid, request.index, request.generation,
                                      core::OutputStream::kStdout},
                      pipes->out_read, pipes->err_read);
    } else {
      close(pipes->out_read);
      close(pipes->err_read);
    }
  }
  if (const auto& notify = extras.notify) {
    if (started.ok()) {
      WatchNotify(started.value().pid, notify->fd);
    } else {
      close(notify->fd);
    }
  }
  if (const auto& channel = extras.channel) {
    close(channel->second);
    if (started.ok()) {
      server_->AddWorkerChannel(channel->first, started.value().pid);
    } else {
      close(channel->first);
    }
  }
  if (!started.ok()) return core::SpawnOutcome{0, started.error(), false};
  // A failed exec is a worker that exits 127 at once: it is said when its exit is handled,
  // just before the exit line, as one would read it.
  if (!started.value().exec_error.empty()) {
    exec_errors_[started.value().pid] = started.value().exec_error;
  }
  return core::SpawnOutcome{started.value().pid, "", false};
}

void Master::Kill(core::Pid pid, core::Signal signal) {
  if (probing()) ++turn_.kills;
  const int err = sys::SendSignal(pid, signal);
  if (err != 0 && err != ESRCH) {
    spdlog::error("could not send {} to {}: {}", core::SignalName(signal), pid,
                  sys::ErrnoText(err));
  } else {
    spdlog::debug("sent {} to {}", core::SignalName(signal), pid);
  }
}

void Master::Log(core::LogLevel level, const std::string& message) {
  if (probing()) ++turn_.lines;
  spdlog::log(ToSpdlog(level), "{}", message);
}

void Master::UpgradeNote(core::UpgradeNoteKind kind, const std::string& text) {
  notes_.emplace_back(kind, text);
}

void Master::LogEventAlways(core::LogLevel level, const std::string& message,
                            const core::Event& event) {
  // -q must not hide who changed the pool: lift the level for this one line.
  const spdlog::level::level_enum was = spdlog::get_level();
  spdlog::set_level(std::min(was, ToSpdlog(level)));
  master::LogEvent(level, message, StoreEvent(event));
  spdlog::set_level(was);
}

void Master::SetVerbosity(int verbosity) {
  verbosity_ = verbosity;
  SetLogLevel(verbosity);
}

core::ServiceFacts Master::ServiceFactsNow() const {
  core::ServiceFacts f;
  f.target = supervisor_.target();
  f.generation = supervisor_.generation();
  const auto& upgrade = supervisor_.upgrade();
  if (upgrade) f.upgrading_to = upgrade->to_generation;
  // O(1): this runs after every event, and a scan made a start of n workers O(n^2).
  f.booting = supervisor_.booting_count();
  f.ready = supervisor_.ready_count();
  f.draining = supervisor_.draining_count();
  // During an upgrade the slots hold only the new generation.
  if (upgrade) f.upgrade_new_ready = supervisor_.attached_ready_count();
  f.reloading = reload_.running();
  f.stopping = supervisor_.Stopping();
  if (const auto& last = supervisor_.last_upgrade(); last && !last->ok) {
    f.last_upgrade_failure = last->reason;
  }
  f.last_reload_error = last_reload_error_;
  return f;
}

void Master::NotifyServiceManager() {
  if (!service_) return;
  if (const auto message = service_->Update(ServiceFactsNow(), Now())) {
    if (!sys::NotifyServiceManager(*message)) {
      spdlog::debug("could not notify the service manager: {}", *message);
    }
  }
}

}  // namespace einhorn::master
