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
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/flags.h"
#include "core/metrics.h"
#include "core/reload.h"
#include "core/ruby_state.h"
#include "core/state.h"
#include "master/logging.h"
#include "master/master.h"
#include "master/ruby_takeover.h"
#include "sys/activation.h"
#include "sys/files.h"
#include "sys/listeners.h"
#include "sys/peer.h"
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

std::map<std::string, std::string> EnvMap(const std::vector<std::string>& env) {
  std::map<std::string, std::string> m;
  for (const std::string& e : env) {
    const size_t eq = e.find('=');
    if (eq != std::string::npos) m.emplace(e.substr(0, eq), e.substr(eq + 1));
  }
  return m;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "einhorn-cpp: %s\n", message.c_str());
  return core::kExitRuntime;
}

void CloseAll(std::vector<sys::Listener>& listeners) {
  for (sys::Listener& l : listeners) sys::CloseListener(l);
}

// A relative --config is made absolute now, so that every reload reads the same file (through
// a symlink like current/, the one it then points to) whatever the cwd.
std::string AbsolutePath(const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd)) return path;
  return std::string(cwd) + "/" + path;
}

core::Result<std::string> ReadConfigFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    return core::Result<std::string>::Error("cannot read the config file " + path + ": " +
                                            std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
    close(fd);
    return core::Result<std::string>::Error("the config file " + path + " is not a regular file");
  }
  if (static_cast<size_t>(st.st_size) > core::kMaxConfigBytes) {
    close(fd);
    return core::Result<std::string>::Error(path + ": larger than 1 MiB; this is not a config file");
  }
  auto text = sys::ReadWholeFd(fd, core::kMaxConfigBytes + 1);
  close(fd);
  if (!text.ok()) {
    return core::Result<std::string>::Error("cannot read the config file " + path + ": " +
                                            text.error());
  }
  return text;
}

// Einhorn's default: one unready new worker per CPU during an upgrade.
void FillRuntimeDefaults(core::Options* o) {
  if (!o->max_unacked) {
    o->max_unacked = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }
}

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
  core::FlagsOutcome flags = core::ParseFlags(state.argv, EnvMap(state.startup_env), &source);
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
  std::vector<sys::Listener> listeners = setup.listeners;
  sys::Listener control = setup.control;
  sys::Listener metrics = setup.metrics;
  const std::string pidfile = setup.options.pidfile;
  int code = 0;
  {
    Master master(std::move(setup));
    code = master.Run();
  }
  CloseAll(listeners);
  // The server closed the command socket's fd; only the path is ours to remove.
  control.fd = -1;
  sys::CloseListener(control);
  metrics.fd = -1;  // closed by the metrics server, as the command socket's
  sys::CloseListener(metrics);
  sys::RemovePidfile(pidfile, getpid());
  spdlog::info("exiting with status {}", code);
  return code;
}

core::Result<std::string> ReadStateBytes(int fd) {
  auto bytes = sys::ReadWholeFd(fd, core::kMaxStateBytes + 1);
  close(fd);
  return bytes;
}

// `--upgrade-check`: run by the old master before it execs us. Succeeds only if this binary
// can take over the state it passes.
int UpgradeCheck(int state_fd) {
  // stdout and stderr share one memfd whose last line the old master reports: line buffering
  // keeps them in the order they were written.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("einhorn-cpp %s: upgrade check\n", core::kVersion);
  if (state_fd < 0) return 0;
  auto bytes = sys::ReadWholeFd(state_fd, core::kMaxStateBytes + 1);
  close(state_fd);
  auto state = bytes.ok() ? core::DecodeState(bytes.value())
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
  // Last, once everything passed: the old master execs us only if it sees this line.
  std::printf("%s\n", core::Reload::ProofLine(bytes.value()).c_str());
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

// `--with-state-fd N`: this image replaces a master that re-exec'd itself. Nothing may fail
// from here without losing the workers, so everything that can fail was checked by the old
// image's --upgrade-check of this same binary.
int Restore(core::Result<std::string> bytes, const std::vector<std::string>& env) {
  auto decoded = bytes.ok() ? core::DecodeState(bytes.value())
                            : core::Result<core::MasterState>::Error(bytes.error());
  if (!decoded.ok()) {
    std::fprintf(stderr, "einhorn-cpp: cannot take over from the previous master image: %s\n",
                 decoded.error().c_str());
    return core::kExitRuntime;
  }
  core::MasterState& state = decoded.value();
  SetUpLogging(state.verbosity);
  SetLogFormat(state.options.log_format);

  // The check read the same file a moment ago; if it has changed into something that cannot
  // be used since, the running settings stay.
  const bool was_widened = Widened(state.options);
  std::string command_path;
  auto config = RereadConfig(state, &command_path);
  std::optional<int> resize_to;
  if (!config.ok()) {
    spdlog::error("reload: config {}: {}; the settings stay as they were", state.config_path,
                  config.error());
  } else if (!config.value().changed.empty()) {
    for (const std::string& change : config.value().changed) {
      spdlog::info("reload: config {}: {}", state.config_path, change);
    }
    const core::Options& now = config.value().options;
    if (now.verbosity != state.options.verbosity) {
      state.verbosity = now.verbosity;
      SetLogLevel(now.verbosity);
    }
    if (now.log_format != state.options.log_format) SetLogFormat(now.log_format);
    if (now.number != state.options.number) resize_to = now.number;
    core::SupervisorConfig& live = state.supervisor.config;
    const core::SupervisorConfig fresh = core::ConfigFromOptions(now, live.jitter_seed);
    const int target = live.target;
    live = fresh;
    live.target = target;
    if (now.nice.master && now.nice.master != state.options.nice.master) {
      if (core::Status st = sys::SetNice(*now.nice.master); !st.ok()) {
        spdlog::warn("{}", st.message());
      }
    }
    state.options = now;
    state.command_path = command_path;
  }

  MasterSetup setup;
  setup.options = state.options;
  setup.command_path = state.command_path;
  setup.config_path = state.config_path;
  setup.argv = state.argv;
  for (const auto& l : state.listeners) setup.listeners.push_back(ToListener(l));
  setup.control = ToListener(state.control);
  // An image from before einhorn-cpp followed Einhorn's -f held the lock for its whole life
  // and passed it on; the lock is only for the socket's creation, long done.
  if (state.lock_fd >= 0) close(state.lock_fd);
  auto access = ResolveAccess(state.options);
  if (setup.control.fd >= 0) {
    KeepControlSocketMode(setup.control, was_widened, Widened(state.options));
  }
  if (access.ok()) {
    setup.access = access.value();
  } else {
    // A user or group deleted since the start: keep only root and our own uid.
    spdlog::error("{}; the command socket now admits only root and uid {}", access.error(),
                  getuid());
    setup.access.self_uid = getuid();
  }
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
  restored.reloads = state.reloads;
  restored.previous_version = state.written_by;
  restored.resize_to = resize_to;
  restored.telemetry = std::move(state.telemetry);
  if (state.metrics.fd >= 0) setup.metrics = ToListener(state.metrics);
  setup.restored = std::move(restored);
  return RunMaster(std::move(setup));
}

// `--with-state-fd N` from a Ruby Einhorn master (master/ruby_takeover.h). The exec has
// happened: the Ruby image is gone, so a state this cannot use at all is said loudly and the
// workers are left running, unsupervised (they keep serving on their inherited sockets).
int TakeOverFromRuby(const std::string& bytes, const std::vector<std::string>& env,
                     const char* argv0) {
  SetUpLogging(1);
  const char* path_env = std::getenv("PATH");
  auto setup = RubyTakeoverSetup(bytes, env, sys::SelfPath(argv0, path_env ? path_env : ""));
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

int Main(int argc, char** argv) {
  // Nothing the master inherited may reach a worker, and a mask inherited from our parent must
  // not silence the signals we handle. (Master::Run unblocks them once its handlers are in:
  // a re-exec'd image arrives with them blocked.)
  sys::CloexecFrom3();

  std::vector<std::string> env = CurrentEnvironment();
  const std::vector<std::string> args(argv, argv + argc);
  core::FlagsOutcome flags = core::ParseFlags(args, EnvMap(env));
  std::string config_path;
  if (flags.kind == core::FlagsOutcome::Kind::kNeedConfig) {
    config_path = AbsolutePath(flags.config_path);
    auto text = ReadConfigFile(config_path);
    if (!text.ok()) {
      std::fprintf(stderr, "einhorn-cpp: %s\n", text.error().c_str());
      return core::kExitUsage;
    }
    const core::ConfigSource source{flags.config_path, text.value()};
    flags = core::ParseFlags(args, EnvMap(env), &source);
  }
  if (flags.kind == core::FlagsOutcome::Kind::kCheckConfig) {
    std::printf("# einhorn-cpp %s: the effective settings of %s with this command line\n%s",
                core::kVersion, flags.config_path.c_str(),
                core::RenderConfig(flags.options).c_str());
    return 0;
  }
  if (flags.kind == core::FlagsOutcome::Kind::kExit) {
    if (!flags.out.empty()) std::fputs(flags.out.c_str(), stdout);
    if (!flags.err.empty()) std::fprintf(stderr, "%s\n", flags.err.c_str());
    return flags.exit_code;
  }
  if (flags.kind == core::FlagsOutcome::Kind::kUpgradeCheck) return UpgradeCheck(flags.state_fd);
  if (flags.kind == core::FlagsOutcome::Kind::kRestore) {
    auto bytes = ReadStateBytes(flags.state_fd);
    if (bytes.ok() && core::LooksLikeRubyState(bytes.value())) {
      return TakeOverFromRuby(bytes.value(), env, argv[0]);
    }
    return Restore(std::move(bytes), env);
  }
  sys::ResetSignalMask();

  core::Options o = flags.options;
  FillRuntimeDefaults(&o);
  SetUpLogging(o.verbosity);
  SetLogFormat(o.log_format);
  if (!config_path.empty()) spdlog::info("settings from {} (flags override them)", config_path);

  const char* path_env = std::getenv("PATH");
  auto command = sys::ResolveCommand(o.command.front(), path_env ? path_env : "");
  if (!command.ok()) return Fail(command.error());

  auto access = ResolveAccess(o);
  if (!access.ok()) return Fail(access.error());

  // As PID 1 (a container's entrypoint) orphans come to us anyway; --subreaper asks for them
  // elsewhere. Either way the reaper takes every child, and what is not a worker is logged
  // and dropped, never mistaken for one.
  if (o.subreaper && getpid() != 1) {
    if (core::Status st = sys::BecomeSubreaper(); !st.ok()) return Fail(st.message());
    spdlog::info("subreaper: orphans of the workers' subtrees are reaped here");
  } else if (getpid() == 1) {
    spdlog::info("running as PID 1: orphans are reaped here");
  }

  // As Einhorn: the lockfile is held only while the command socket is checked and created, so
  // that two masters starting at once cannot both take a socket for stale. A master already
  // serving this socket is refused by the live-socket check in OpenListener.
  // The socket file is created with its final mode (0600, or 0666 when other users are allowed
  // and the peer credential check decides): never widened, nor changed by path, afterwards.
  core::BindSpec control_spec;
  control_spec.family = core::BindSpec::Family::kUnix;
  control_spec.path = o.socket_path;
  control_spec.text = "unix:" + o.socket_path;
  core::Result<sys::Listener> control = core::Result<sys::Listener>::Error("");
  if (core::Status st = sys::CheckPidfile(o.pidfile); !st.ok()) return Fail(st.message());
  {
    auto lock = sys::LockFile::Acquire(o.lockfile);
    if (!lock.ok()) return Fail(lock.error());
    control = sys::OpenListener(control_spec, SOMAXCONN, ControlSocketMode(Widened(o)));
  }
  if (!control.ok()) return Fail("command socket: " + control.error());
  spdlog::info("command socket at {}", o.socket_path);

  // Socket activation: what the service manager bound is used instead of binding again.
  auto activated = sys::TakeActivatedSockets();
  if (!activated.ok()) {
    sys::CloseListener(control.value());
    return Fail("socket activation: " + activated.error());
  }
  if (!activated.value().empty()) {
    std::erase_if(env, [](const std::string& e) {
      return e.rfind("LISTEN_PID=", 0) == 0 || e.rfind("LISTEN_FDS=", 0) == 0 ||
             e.rfind("LISTEN_FDNAMES=", 0) == 0;
    });
  }
  std::vector<bool> adopted(activated.value().size(), false);
  std::vector<sys::Listener> listeners;
  auto add = [&](core::Result<sys::Listener> listener, const std::string& from) {
    if (!listener.ok()) return false;
    spdlog::info("listening on {} for {} (fd {} in workers)", listener.value().bound, from,
                 3 + listeners.size());
    listeners.push_back(std::move(listener).value());
    return true;
  };
  for (const core::BindSpec& spec : o.binds) {
    std::optional<size_t> match;
    for (size_t i = 0; i < adopted.size() && !match; ++i) {
      if (!adopted[i] && sys::SocketMatches(activated.value()[i], spec)) match = i;
    }
    core::Result<sys::Listener> listener =
        match ? sys::AdoptActivated(activated.value()[*match], spec)
              : sys::OpenListener(spec, o.backlog);
    const std::string from =
        "-b " + spec.text +
        (match ? " (the service manager's fd " + std::to_string(activated.value()[*match].fd) +
                     ", " + activated.value()[*match].name + ")"
               : "");
    if (match) adopted[*match] = true;
    if (!add(listener, from)) {
      CloseAll(listeners);
      sys::CloseListener(control.value());
      return Fail(listener.error());
    }
  }
  // Sockets no -b asked for are passed on as given, under their LISTEN_FDNAMES names.
  for (size_t i = 0; i < adopted.size(); ++i) {
    if (adopted[i]) continue;
    const sys::ActivatedSocket& a = activated.value()[i];
    auto listener = sys::AdoptActivated(a, std::nullopt);
    if (!add(listener, "the service manager's fd " + std::to_string(a.fd) + " (" + a.name + ")")) {
      CloseAll(listeners);
      sys::CloseListener(control.value());
      return Fail(listener.error());
    }
  }

  if (core::Status st = sys::WritePidfile(o.pidfile, getpid()); !st.ok()) {
    CloseAll(listeners);
    sys::CloseListener(control.value());
    return Fail(st.message());
  }
  // --metrics-listen (checked by ParseFlags): a UNIX socket gets the umask's mode, and only
  // users with write permission on it may connect.
  sys::Listener metrics;
  if (!o.metrics_listen.empty()) {
    auto spec = core::ParseMetricsListen(o.metrics_listen);
    auto opened = spec.ok() ? sys::OpenListener(spec.value(), 64)
                            : core::Result<sys::Listener>::Error(spec.error());
    if (!opened.ok()) {
      CloseAll(listeners);
      sys::CloseListener(control.value());
      sys::RemovePidfile(o.pidfile, getpid());
      return Fail("--metrics-listen " + o.metrics_listen + ": " + opened.error());
    }
    metrics = opened.value();
  }
  if (o.nice.master) {
    if (core::Status st = sys::SetNice(*o.nice.master); !st.ok()) spdlog::warn("{}", st.message());
  }

  MasterSetup setup;
  setup.options = o;
  setup.command_path = command.value();
  setup.listeners = std::move(listeners);
  setup.control = control.value();
  setup.access = access.value();
  setup.startup_env = env;
  setup.worker_env = env;
  setup.self_path = sys::SelfPath(argv[0], path_env ? path_env : "");
  setup.metrics = metrics;
  setup.config_path = config_path;
  if (!config_path.empty()) setup.argv = args;
  return RunMaster(std::move(setup));
}

}  // namespace
}  // namespace einhorn::master

int main(int argc, char** argv) { return einhorn::master::Main(argc, argv); }
