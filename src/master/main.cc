// einhorn-cpp: parse the command line, open everything that can fail before any worker
// exists (the command socket, under the lockfile; listeners; pidfile), then hand over to the
// loop. A startup failure is one line on stderr, exit 1 (2 for usage), and leaves nothing behind.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/flags.h"
#include "core/metrics.h"
#include "core/reload.h"
#include "core/reload_apply.h"
#include "core/ruby_state.h"
#include "core/state.h"
#include "master/logging.h"
#include "master/master.h"
#include "master/ruby_takeover.h"
#include "sys/activation.h"
#include "sys/files.h"
#include "sys/listeners.h"
#include "sys/peer.h"
#include "sys/posix.h"
#include "sys/process.h"
#include "sys/reexec.h"
#include "sys/safe_path.h"
#include "sys/spawn.h"

extern char** environ;

namespace einhorn::master {
namespace {

std::vector<std::string> CurrentEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
  return env;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "einhorn-cpp: %s\n", message.c_str());
  return core::kExitRuntime;
}

// What the master opened that outlives it in the fd table or on disk: the listeners, the
// command socket (its path; the server closes its fd), the metrics socket, the pidfile. Undone
// once, when this goes out of scope: on an early return of startup as at the end of the loop,
// so that a failure leaves nothing behind without each error path cleaning up by hand.
struct Opened {
  std::vector<sys::Listener> listeners;
  sys::Listener control;
  sys::Listener metrics;
  std::string pidfile;  // written by this master (RemovePidfile checks that it still is)

  Opened() = default;
  Opened(const Opened&) = delete;
  Opened& operator=(const Opened&) = delete;
  ~Opened() {
    for (sys::Listener& l : listeners) sys::CloseListener(l);
    sys::CloseListener(control);
    sys::CloseListener(metrics);
    if (!pidfile.empty()) sys::RemovePidfile(pidfile, getpid());
  }
  // Hands everything over to `setup` (RunMaster owns it from there); nothing is undone here.
  void MoveInto(MasterSetup* setup) {
    setup->listeners = std::exchange(listeners, {});
    setup->control = std::exchange(control, {});
    setup->metrics = std::exchange(metrics, {});
    pidfile.clear();
  }
};

// A relative --config is made absolute now, so that every reload reads the same file (through
// a symlink like current/, the one it then points to) whatever the cwd.
std::string AbsolutePath(const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd)) return path;
  return std::string(cwd) + "/" + path;
}

core::Result<std::string> ReadConfigFile(const std::string& path) {
  using R = core::Result<std::string>;
  const sys::UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return R::Error(sys::PosixError("cannot read the config file " + path, errno));
  struct stat st {};
  if (fstat(fd.get(), &st) == 0 && !S_ISREG(st.st_mode)) {
    return R::Error("the config file " + path + " is not a regular file");
  }
  if (static_cast<size_t>(st.st_size) > core::kMaxConfigBytes) {
    return R::Error(path + ": larger than 1 MiB; this is not a config file");
  }
  auto text = sys::ReadWholeFd(fd.get(), core::kMaxConfigBytes + 1);
  if (!text.ok()) return R::Error("cannot read the config file " + path + ": " + text.error());
  return text;
}

// Nothing to fill any more: an unset --max-unacked is resolved by core::ConfigFromOptions
// (the CPU count, scaled with the pool), and stays unset in `state`, as in Einhorn's.
void FillRuntimeDefaults(core::Options* o) { (void)o; }

// What a reload reads: the config file again, under the first command line's flags. The
// result says which settings change; a change that needs a restart is an error.
core::Result<core::ReloadedOptions> RereadConfig(const core::MasterState& state,
                                                  std::string* command_path) {
  using R = core::Result<core::ReloadedOptions>;
  *command_path = state.command_path;
  if (state.config_path.empty()) return core::ReloadedOptions{state.options, {}};
  auto text = ReadConfigFile(state.config_path);
  if (!text.ok()) return R::Error(text.error());
  const core::ConfigSource source{state.config_path, text.value()};
  core::FlagsOutcome flags =
      core::ParseFlags(state.argv, core::EnvMap(state.startup_env), &source);
  if (flags.kind != core::FlagsOutcome::Kind::kRun) {
    std::string err = flags.err.empty() ? "the first command line no longer parses" : flags.err;
    if (err.rfind("einhorn-cpp: ", 0) == 0) err.erase(0, 13);
    return R::Error(err);
  }
  FillRuntimeDefaults(&flags.options);
  auto reloaded = core::ReconcileReload(state.options, flags.options);
  if (!reloaded.ok()) return reloaded;
  if (reloaded.value().options.command != state.options.command) {
    const char* path_env = std::getenv("PATH");
    auto command = sys::ResolveCommand(reloaded.value().options.command.front(),
                                       path_env ? path_env : "");
    if (!command.ok()) return R::Error("command: " + command.error());
    *command_path = command.value();
  }
  return reloaded;
}

core::Result<AccessPolicy> ResolveAccess(const core::Options& o) {
  using R = core::Result<AccessPolicy>;
  AccessPolicy access;
  access.self_uid = getuid();
  for (const std::string& u : o.control_allow_uids) {
    auto uid = sys::ResolveUser(u);
    if (!uid.ok()) return R::Error("--control-allow-uid: " + uid.error());
    access.allow_uids.insert(uid.value());
  }
  for (const std::string& g : o.control_allow_gids) {
    auto gid = sys::ResolveGroup(g);
    if (!gid.ok()) return R::Error("--control-allow-gid: " + gid.error());
    access.allow_gids.insert(gid.value());
  }
  return access;
}

// With --control-allow-uid/gid other users must be able to connect at all; the peer
// credential check is then what lets them in or not.
bool Widened(const core::Options& o) {
  return !o.control_allow_uids.empty() || !o.control_allow_gids.empty();
}

mode_t ControlSocketMode(bool widened) { return widened ? 0666 : 0600; }

// A re-exec'd image keeps the command socket it was handed; its file is left as it is unless
// a reloaded config changed who may connect, and even then it is changed only while the path
// still names the socket the first image created (never through a link someone put there).
void KeepControlSocketMode(const sys::Listener& control, bool was_widened, bool widened) {
  const std::string& path = control.spec.path;
  if (!control.owns_path) return;
  if (!sys::StillSameEntry(path, control.path_dev, control.path_ino)) {
    spdlog::warn("command socket: {} no longer names this master's socket (it was removed or "
                 "replaced); left alone, and clients cannot reach the master by that path",
                 path);
    return;
  }
  if (was_widened == widened) return;
  const mode_t mode = ControlSocketMode(widened);
  if (core::Status st = sys::ChmodIfSame(path, control.path_dev, control.path_ino, mode);
      !st.ok()) {
    spdlog::warn("command socket: {}", st.message());
    return;
  }
  spdlog::info("command socket: mode {:o} now that --control-allow-uid/gid {}", mode,
               widened ? "are set" : "are gone");
}

// Runs the loop, then undoes what the master set up: listeners, the command socket's path,
// the pidfile.
int RunMaster(MasterSetup setup) {
  int code = 0;
  {
    Opened opened;
    opened.listeners = setup.listeners;
    // The servers close the command and metrics sockets' fds; only their paths are ours.
    opened.control = setup.control;
    opened.control.fd = -1;
    opened.metrics = setup.metrics;
    opened.metrics.fd = -1;
    opened.pidfile = setup.options.pidfile;
    Master master(std::move(setup));
    code = master.Run();
  }
  spdlog::info("exiting with status {}", code);
  return code;
}

// The state the previous image left at `fd`, which is closed once read (or mapped).
core::Result<sys::FdBytes> ReadStateBytes(int fd) {
  const sys::UniqueFd owned(fd);
  return sys::FdBytes::Of(owned.get(), core::kMaxStateBytes + 1);
}

// `--upgrade-check`: run by the old master before it execs us. Succeeds only if this binary
// can take over the state it passes.
int UpgradeCheck(int state_fd) {
  // stdout and stderr share one memfd whose last line the old master reports: line buffering
  // keeps them in the order they were written.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("einhorn-cpp %s: upgrade check\n", core::kVersion);
  if (state_fd < 0) return 0;
  auto bytes = ReadStateBytes(state_fd);
  auto state = bytes.ok() ? core::DecodeState(bytes.value().view())
                          : core::Result<core::MasterState>::Error(bytes.error());
  if (!state.ok()) {
    std::fprintf(stderr, "einhorn-cpp %s cannot take over this master: %s\n", core::kVersion,
                 state.error().c_str());
    return core::kExitRuntime;
  }
  std::printf("state of einhorn-cpp %s with %zu workers: readable\n",
              state.value().written_by.c_str(), state.value().supervisor.workers.size());
  std::string command_path;
  auto config = RereadConfig(state.value(), &command_path);
  if (!config.ok()) {
    std::fprintf(stderr, "config %s: %s\n", state.value().config_path.c_str(),
                 config.error().c_str());
    return core::kExitRuntime;
  }
  for (const std::string& change : config.value().changed) {
    std::printf("config %s: %s\n", state.value().config_path.c_str(), change.c_str());
  }
  std::printf("%s\n", std::string(core::Reload::kTakesStandIn).c_str());
  // Last, once everything passed: the old master execs us only if it sees this line.
  std::printf("%s\n", core::Reload::ProofLine(bytes.value().view()).c_str());
  return 0;
}

sys::Listener ToListener(const core::MasterState::Listener& m) {
  sys::Listener l;
  l.spec = m.spec;
  l.fd = m.fd;
  l.bound = m.bound;
  l.owns_path = m.owns_path;
  l.path_dev = static_cast<dev_t>(m.path_dev);
  l.path_ino = static_cast<ino_t>(m.path_ino);
  return l;
}

// The reload that exec'd this image reads the config file again. The check read the same
// file a moment ago; if it has changed into something that cannot be used since, the running
// settings stay. Returns the new -n, if it changed.
std::optional<int> ApplyConfigAgain(core::MasterState* state) {
  std::string command_path;
  auto config = RereadConfig(*state, &command_path);
  if (!config.ok()) {
    spdlog::error("reload: config {}: {}; the settings stay as they were", state->config_path,
                  config.error());
    return std::nullopt;
  }
  for (const std::string& change : config.value().changed) {
    spdlog::info("reload: config {}: {}", state->config_path, change);
  }
  const core::ReloadEffects fx = core::ApplyReloadedConfig(config.value(), command_path, state);
  if (fx.verbosity) SetLogLevel(*fx.verbosity);
  if (fx.log_format) SetLogFormat(*fx.log_format);
  if (fx.master_nice) {
    if (core::Status st = sys::SetNice(*fx.master_nice); !st.ok()) spdlog::warn("{}", st.message());
  }
  return fx.resize_to;
}

// Who may use the command socket after a reload: as configured, or, when a user or group was
// deleted since the start, only root and our own uid.
AccessPolicy AccessOrOnlyOurs(const core::Result<AccessPolicy>& access) {
  if (access.ok()) return access.value();
  spdlog::error("{}; the command socket now admits only root and uid {}", access.error(),
                getuid());
  AccessPolicy ours;
  ours.self_uid = getuid();
  return ours;
}

// The loop's setup from the carried state, fd for fd (access is the caller's).
MasterSetup SetupFromState(core::MasterState state, const std::vector<std::string>& env,
                           std::optional<int> resize_to) {
  MasterSetup setup;
  setup.options = state.options;
  setup.command_path = state.command_path;
  setup.config_path = state.config_path;
  setup.argv = state.argv;
  for (const auto& l : state.listeners) setup.listeners.push_back(ToListener(l));
  setup.control = ToListener(state.control);
  if (state.metrics.fd >= 0) setup.metrics = ToListener(state.metrics);
  setup.startup_env = state.startup_env;
  setup.worker_env = env;
  setup.self_path = state.self_path;
  MasterSetup::Restored restored;
  restored.supervisor = std::move(state.supervisor);
  restored.verbosity = state.verbosity;
  for (auto& c : state.clients) {
    restored.clients.push_back(
        ControlServer::Carried{c.fd, c.peer, std::move(c.pending_input), c.upgrade_id});
  }
  restored.then_upgrades = state.then_upgrades;
  for (const auto& n : state.notify_sockets) restored.notify_sockets.emplace_back(n.worker, n.fd);
  for (const auto& p : state.worker_pipes) {
    restored.worker_pipes.push_back({p.tag, p.fd, p.pending, p.dropping});
  }
  for (const auto& z : state.zygotes) restored.zygote_book.zygotes.push_back(z.zygote);
  restored.zygote_book.failures = state.zygote_failures;
  restored.zygote_book.respawn_at = state.zygote_respawn_at;
  restored.zygotes = state.zygotes;
  restored.reloads = state.reloads;
  restored.previous_version = state.written_by;
  restored.resize_to = resize_to;
  restored.telemetry = std::move(state.telemetry);
  setup.restored = std::move(restored);
  return setup;
}

// `--with-state-fd N`: this image replaces a master that re-exec'd itself. Nothing may fail
// from here without losing the workers, so everything that can fail was checked by the old
// image's --upgrade-check of this same binary.
int Restore(core::Result<sys::FdBytes> bytes, const std::vector<std::string>& env) {
  auto decoded = bytes.ok() ? core::DecodeState(bytes.value().view())
                            : core::Result<core::MasterState>::Error(bytes.error());
  if (bytes.ok()) bytes.value().Release();
  if (!decoded.ok()) {
    std::fprintf(stderr, "einhorn-cpp: cannot take over from the previous master image: %s\n",
                 decoded.error().c_str());
    return core::kExitRuntime;
  }
  core::MasterState& state = decoded.value();
  SetUpLogging(state.verbosity);
  SetLogFormat(state.options.log_format);
  const bool was_widened = Widened(state.options);
  // What the previous image exec'd: itself, unless --reexec-as (its options, before the
  // config file's are applied again) named another program.
  const bool exec_was_direct = state.options.reexec_as.empty() && sys::RunsAs(state.self_path);
  const std::optional<int> resize_to = ApplyConfigAgain(&state);
  const int stand_in_fd = state.stand_in_fd;
  // An image from before einhorn-cpp followed Einhorn's -f held the lock for its whole life
  // and passed it on; the lock is only for the socket's creation, long done.
  if (state.lock_fd >= 0) close(state.lock_fd);
  MasterSetup setup = SetupFromState(std::move(state), env, resize_to);
  setup.restored->exec_was_direct = exec_was_direct;
  setup.restored->stand_in_fd = stand_in_fd;
  auto access = ResolveAccess(setup.options);
  if (setup.control.fd >= 0) {
    KeepControlSocketMode(setup.control, was_widened, Widened(setup.options));
  }
  setup.access = AccessOrOnlyOurs(access);
  return RunMaster(std::move(setup));
}

// `--with-state-fd N` from a Ruby Einhorn master (master/ruby_takeover.h). The exec has
// happened: the Ruby image is gone, so a state this cannot use at all is said loudly and the
// workers are left running, unsupervised (they keep serving on their inherited sockets).
int TakeOverFromRuby(sys::FdBytes bytes, const std::vector<std::string>& env,
                     const char* argv0) {
  SetUpLogging(1);
  const char* path_env = std::getenv("PATH");
  auto setup = RubyTakeoverSetup(std::string(bytes.view()), env,
                                 sys::SelfPath(argv0, path_env ? path_env : ""));
  bytes.Release();
  if (!setup.ok()) {
    spdlog::critical(
        "takeover: cannot take over from Ruby Einhorn: {}. Its workers keep "
        "running and serving, unsupervised; stop them and start the service "
        "again",
        setup.error());
    return core::kExitRuntime;
  }
  MasterSetup& s = setup.value();
  FillRuntimeDefaults(&s.options);
  auto access = ResolveAccess(s.options);
  if (access.ok())
    s.access = access.value();
  else
    s.access.self_uid = getuid();
  return RunMaster(std::move(s));
}

// The command line, and the config file it names (read, then parsed under the flags).
core::FlagsOutcome ReadCommandLine(const std::vector<std::string>& args,
                                   const std::vector<std::string>& env, std::string* config_path) {
  core::FlagsOutcome flags = core::ParseFlags(args, core::EnvMap(env));
  if (flags.kind != core::FlagsOutcome::Kind::kNeedConfig) return flags;
  *config_path = AbsolutePath(flags.config_path);
  auto text = ReadConfigFile(*config_path);
  if (!text.ok()) {
    core::FlagsOutcome usage;
    usage.kind = core::FlagsOutcome::Kind::kExit;
    usage.err = "einhorn-cpp: " + text.error();
    usage.exit_code = core::kExitUsage;
    return usage;
  }
  const core::ConfigSource source{flags.config_path, text.value()};
  return core::ParseFlags(args, core::EnvMap(env), &source);
}

// As PID 1 (a container's entrypoint) orphans come to us anyway; --subreaper asks for them
// elsewhere. Either way the reaper takes every child, and what is not a worker is logged
// and dropped, never mistaken for one.
core::Status BecomeReaper(const core::Options& o) {
  if (o.subreaper && getpid() != 1) {
    if (core::Status st = sys::BecomeSubreaper(); !st.ok()) return st;
    spdlog::info("subreaper: orphans of the workers' subtrees are reaped here");
  } else if (getpid() == 1) {
    spdlog::info("running as PID 1: orphans are reaped here");
  }
  return core::Status::Ok();
}

// As Einhorn: the lockfile is held only while the command socket is checked and created, so
// that two masters starting at once cannot both take a socket for stale. A master already
// serving this socket is refused by the live-socket check in OpenListener.
// The socket file is created with its final mode (0600, or 0666 when other users are allowed
// and the peer credential check decides): never widened, nor changed by path, afterwards.
core::Result<sys::Listener> OpenControlSocket(const core::Options& o) {
  using R = core::Result<sys::Listener>;
  core::BindSpec spec;
  spec.family = core::BindSpec::Family::kUnix;
  spec.path = o.socket_path;
  spec.text = "unix:" + o.socket_path;
  if (core::Status st = sys::CheckPidfile(o.pidfile); !st.ok()) return R::Error(st.message());
  R control = R::Error("");
  {
    auto lock = sys::LockFile::Acquire(o.lockfile);
    if (!lock.ok()) return R::Error(lock.error());
    control = sys::OpenListener(spec, SOMAXCONN, ControlSocketMode(Widened(o)));
  }
  if (!control.ok()) {
    // Another master serves it: this one can have a socket of its own.
    const bool taken = control.error().find(" is in use, ") != std::string::npos;
    return R::Error("command socket: " + control.error() +
                    (taken ? " (this master's own: -c NAME or -d PATH)" : ""));
  }
  spdlog::info("command socket at {}", o.socket_path);
  return control;
}

// The -b listeners, in -b order (fd 3+i in the workers). Socket activation: what the service
// manager bound is used instead of binding again, and sockets no -b asked for are passed on as
// given, under their LISTEN_FDNAMES names; the LISTEN_* variables are then not passed on.
core::Status OpenListeners(const core::Options& o, std::vector<std::string>* env,
                           std::vector<sys::Listener>* listeners) {
  auto activated = sys::TakeActivatedSockets();
  if (!activated.ok()) return core::Status::Error("socket activation: " + activated.error());
  const std::vector<sys::ActivatedSocket>& sockets = activated.value();
  if (!sockets.empty()) {
    std::erase_if(*env, [](const std::string& e) {
      return e.rfind("LISTEN_PID=", 0) == 0 || e.rfind("LISTEN_FDS=", 0) == 0 ||
             e.rfind("LISTEN_FDNAMES=", 0) == 0;
    });
  }
  std::vector<bool> adopted(sockets.size(), false);
  auto add = [&](core::Result<sys::Listener> listener, const std::string& from) {
    if (!listener.ok()) return listener.status();
    spdlog::info("listening on {} for {} (fd {} in workers)", listener.value().bound, from,
                 3 + listeners->size());
    listeners->push_back(std::move(listener).value());
    return core::Status::Ok();
  };
  for (const core::BindSpec& spec : o.binds) {
    std::optional<size_t> match;
    for (size_t i = 0; i < adopted.size() && !match; ++i) {
      if (!adopted[i] && sys::SocketMatches(sockets[i], spec)) match = i;
    }
    core::Result<sys::Listener> listener = match ? sys::AdoptActivated(sockets[*match], spec)
                                                 : sys::OpenListener(spec, o.backlog);
    const std::string from =
        "-b " + spec.text +
        (match ? " (the service manager's fd " + std::to_string(sockets[*match].fd) + ", " +
                     sockets[*match].name + ")"
               : "");
    if (match) adopted[*match] = true;
    if (core::Status st = add(listener, from); !st.ok()) return st;
  }
  for (size_t i = 0; i < adopted.size(); ++i) {
    if (adopted[i]) continue;
    const sys::ActivatedSocket& a = sockets[i];
    const std::string from =
        "the service manager's fd " + std::to_string(a.fd) + " (" + a.name + ")";
    if (core::Status st = add(sys::AdoptActivated(a, std::nullopt), from); !st.ok()) return st;
  }
  return core::Status::Ok();
}

// --metrics-listen (checked by ParseFlags): a UNIX socket gets the umask's mode, and only
// users with write permission on it may connect. A listener with fd -1 when not asked for.
core::Result<sys::Listener> OpenMetricsListener(const core::Options& o) {
  using R = core::Result<sys::Listener>;
  if (o.metrics_listen.empty()) return sys::Listener{};
  auto spec = core::ParseMetricsListen(o.metrics_listen, o.metrics_listen_public);
  auto opened = spec.ok() ? sys::OpenListener(spec.value(), 64) : R::Error(spec.error());
  if (!opened.ok()) return R::Error("--metrics-listen " + o.metrics_listen + ": " + opened.error());
  return opened;
}

// A fresh start (no state carried): every step that can fail runs before any worker exists,
// and a failure is one line and undoes the steps before it (Opened).
int Start(core::Options o, std::vector<std::string> env, const std::vector<std::string>& args,
          const std::string& config_path, const char* argv0) {
  FillRuntimeDefaults(&o);
  SetUpLogging(o.verbosity);
  SetLogFormat(o.log_format);
  if (!config_path.empty()) spdlog::info("settings from {} (flags override them)", config_path);

  const char* path_env = std::getenv("PATH");
  auto command = sys::ResolveCommand(o.command.front(), path_env ? path_env : "");
  if (!command.ok()) return Fail(command.error());
  auto access = ResolveAccess(o);
  if (!access.ok()) return Fail(access.error());
  if (core::Status st = BecomeReaper(o); !st.ok()) return Fail(st.message());

  // From here on the master leaves files behind. A signal sent now (a `kill $(cat PIDFILE)`
  // right after the start) waits for Master::Run's handlers, which unblock it, instead of
  // killing the master with its default action and leaving the socket and pidfile.
  sys::BlockSignals(std::vector<int>(kHandledSignals.begin(), kHandledSignals.end()));
  Opened opened;
  auto control = OpenControlSocket(o);
  if (!control.ok()) return Fail(control.error());
  opened.control = control.value();
  if (core::Status st = OpenListeners(o, &env, &opened.listeners); !st.ok()) {
    return Fail(st.message());
  }
  if (core::Status st = sys::WritePidfile(o.pidfile, getpid()); !st.ok()) {
    return Fail(st.message());
  }
  opened.pidfile = o.pidfile;
  auto metrics = OpenMetricsListener(o);
  if (!metrics.ok()) return Fail(metrics.error());
  opened.metrics = metrics.value();
  if (o.nice.master) {
    if (core::Status st = sys::SetNice(*o.nice.master); !st.ok()) spdlog::warn("{}", st.message());
  }

  MasterSetup setup;
  setup.options = o;
  setup.command_path = command.value();
  opened.MoveInto(&setup);
  setup.access = access.value();
  setup.startup_env = env;
  setup.worker_env = env;
  setup.self_path = sys::SelfPath(argv0, path_env ? path_env : "");
  setup.config_path = config_path;
  if (!config_path.empty()) setup.argv = args;
  return RunMaster(std::move(setup));
}

// `--check-config FILE`: the effective settings on stdout, then whether the worker command
// can run here, found as the master would (ResolveCommand: PATH as execvp searches it, a
// relative path against the current directory). A command that cannot is one line on stderr
// and exit 1, as it would be at startup; the settings are printed either way.
int CheckConfig(const core::FlagsOutcome& flags) {
  std::printf("# einhorn-cpp %s: the effective settings of %s with this command line\n%s",
              core::kVersion, flags.config_path.c_str(),
              core::RenderConfig(flags.options).c_str());
  std::fflush(stdout);
  if (flags.options.command.empty()) return 0;
  const char* path_env = std::getenv("PATH");
  auto command = sys::ResolveCommand(flags.options.command.front(), path_env ? path_env : "");
  if (!command.ok()) {
    std::fprintf(stderr, "einhorn-cpp: %s: command: %s\n", flags.config_path.c_str(),
                 command.error().c_str());
    return core::kExitRuntime;
  }
  std::printf("# command: %s\n", command.value().c_str());
  return 0;
}

int Main(int argc, char** argv) {
  // Nothing the master inherited may reach a worker, and a mask inherited from our parent must
  // not silence the signals we handle. (Master::Run unblocks them once its handlers are in:
  // a re-exec'd image arrives with them blocked.)
  sys::CloexecFrom3();

  const std::vector<std::string> env = CurrentEnvironment();
  const std::vector<std::string> args(argv, argv + argc);
  std::string config_path;
  const core::FlagsOutcome flags = ReadCommandLine(args, env, &config_path);
  switch (flags.kind) {
    case core::FlagsOutcome::Kind::kCheckConfig:
      return CheckConfig(flags);
    case core::FlagsOutcome::Kind::kExit:
      if (!flags.out.empty()) std::fputs(flags.out.c_str(), stdout);
      if (!flags.err.empty()) std::fprintf(stderr, "%s\n", flags.err.c_str());
      return flags.exit_code;
    case core::FlagsOutcome::Kind::kUpgradeCheck:
      return UpgradeCheck(flags.state_fd);
    case core::FlagsOutcome::Kind::kRestore: {
      auto bytes = ReadStateBytes(flags.state_fd);
      if (bytes.ok() && core::LooksLikeRubyState(bytes.value().view())) {
        return TakeOverFromRuby(std::move(bytes.value()), env, argv[0]);
      }
      return Restore(std::move(bytes), env);
    }
    case core::FlagsOutcome::Kind::kNeedConfig:  // ReadCommandLine has read it
    case core::FlagsOutcome::Kind::kRun:
      break;
  }
  sys::ResetSignalMask();
  return Start(flags.options, env, args, config_path, argv[0]);
}

}  // namespace
}  // namespace einhorn::master

int main(int argc, char** argv) { return einhorn::master::Main(argc, argv); }
