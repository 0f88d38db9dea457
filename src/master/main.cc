// einhorn-cpp: parse the command line, open everything that can fail before any worker
// exists (lockfile, listeners, pidfile), then hand over to the loop. A startup failure is one
// line on stderr, exit 1 (2 for usage), and leaves nothing behind.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/flags.h"
#include "core/metrics.h"
#include "core/state.h"
#include "master/logging.h"
#include "master/master.h"
#include "sys/activation.h"
#include "sys/files.h"
#include "sys/listeners.h"
#include "sys/peer.h"
#include "sys/process.h"
#include "sys/reexec.h"
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

core::Result<core::MasterState> ReadState(int fd) {
  auto bytes = sys::ReadWholeFd(fd, core::kMaxStateBytes + 1);
  close(fd);
  if (!bytes.ok()) return core::Result<core::MasterState>::Error(bytes.error());
  return core::DecodeState(bytes.value());
}

// `--upgrade-check`: run by the old master before it execs us. Succeeds only if this binary
// can take over the state it passes.
int UpgradeCheck(int state_fd) {
  std::printf("einhorn-cpp %s: upgrade check\n", core::kVersion);
  if (state_fd < 0) return 0;
  auto state = ReadState(state_fd);
  if (!state.ok()) {
    std::fprintf(stderr, "einhorn-cpp %s cannot take over this master: %s\n", core::kVersion,
                 state.error().c_str());
    return core::kExitRuntime;
  }
  std::printf("state of einhorn-cpp %s with %zu workers: readable\n",
              state.value().written_by.c_str(), state.value().supervisor.workers.size());
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
int Restore(int state_fd, const std::vector<std::string>& env) {
  auto decoded = ReadState(state_fd);
  if (!decoded.ok()) {
    std::fprintf(stderr, "einhorn-cpp: cannot take over from the previous master image: %s\n",
                 decoded.error().c_str());
    return core::kExitRuntime;
  }
  core::MasterState& state = decoded.value();
  SetUpLogging(state.verbosity);
  SetLogFormat(state.options.log_format);

  MasterSetup setup;
  setup.options = state.options;
  setup.command_path = state.command_path;
  for (const auto& l : state.listeners) setup.listeners.push_back(ToListener(l));
  setup.control = ToListener(state.control);
  setup.lock_fd = state.lock_fd;
  auto access = ResolveAccess(state.options);
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
  restored.telemetry = std::move(state.telemetry);
  if (state.metrics.fd >= 0) setup.metrics = ToListener(state.metrics);
  setup.restored = std::move(restored);
  // The lock is the open file's: adopting its fd keeps it held, and released at exit.
  sys::LockFile lock = sys::LockFile::Adopt(state.lock_fd);
  return RunMaster(std::move(setup));
}

int Main(int argc, char** argv) {
  // Nothing the master inherited may reach a worker, and a mask inherited from our parent must
  // not silence the signals we handle. (Master::Run unblocks them once its handlers are in:
  // a re-exec'd image arrives with them blocked.)
  sys::CloexecFrom3();

  std::vector<std::string> env = CurrentEnvironment();
  const core::FlagsOutcome flags =
      core::ParseFlags(std::vector<std::string>(argv, argv + argc), EnvMap(env));
  if (flags.kind == core::FlagsOutcome::Kind::kExit) {
    if (!flags.out.empty()) std::fputs(flags.out.c_str(), stdout);
    if (!flags.err.empty()) std::fprintf(stderr, "%s\n", flags.err.c_str());
    return flags.exit_code;
  }
  if (flags.kind == core::FlagsOutcome::Kind::kUpgradeCheck) return UpgradeCheck(flags.state_fd);
  if (flags.kind == core::FlagsOutcome::Kind::kRestore) return Restore(flags.state_fd, env);
  sys::ResetSignalMask();

  core::Options o = flags.options;
  // Einhorn's default: one unready new worker per CPU during an upgrade.
  if (!o.max_unacked) o.max_unacked = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  SetUpLogging(o.verbosity);
  SetLogFormat(o.log_format);

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

  auto lock = sys::LockFile::Acquire(o.lockfile);
  if (!lock.ok()) return Fail(lock.error());

  // The command socket is created 0600 whatever the umask: the umask is tightened around the
  // bind so no other user can connect even for an instant, then the mode is set explicitly.
  core::BindSpec control_spec;
  control_spec.family = core::BindSpec::Family::kUnix;
  control_spec.path = o.socket_path;
  control_spec.text = "unix:" + o.socket_path;
  const mode_t old_umask = umask(0177);
  auto control = sys::OpenListener(control_spec, 128);
  umask(old_umask);
  if (!control.ok()) return Fail("command socket: " + control.error());
  // With --control-allow-uid/gid other users must be able to connect at all; the peer
  // credential check is then what lets them in or not.
  const bool widened = !access.value().allow_uids.empty() || !access.value().allow_gids.empty();
  chmod(o.socket_path.c_str(), widened ? 0666 : 0600);
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
  setup.lock_fd = lock.value().fd();
  setup.access = access.value();
  setup.startup_env = env;
  setup.worker_env = env;
  setup.self_path = sys::SelfPath(argv[0], path_env ? path_env : "");
  setup.metrics = metrics;
  return RunMaster(std::move(setup));
}

}  // namespace
}  // namespace einhorn::master

int main(int argc, char** argv) { return einhorn::master::Main(argc, argv); }
