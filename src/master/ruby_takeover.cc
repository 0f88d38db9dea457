#include "master/ruby_takeover.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "core/flags.h"
#include "core/ruby_state.h"
#include "master/logging.h"
#include "sys/activation.h"
#include "sys/peer.h"
#include "sys/posix.h"
#include "sys/process.h"

namespace einhorn::master {
namespace {

std::int64_t ClockNanos(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Which of Ruby's workers still live. The Ruby master did not reap a child that died while
// it exec'd, so the exit is waiting here; a pid that is not our child is not a worker of ours.
std::set<core::Pid> LiveWorkers(const core::RubyState& state) {
  std::set<core::Pid> alive;
  for (const core::RubyWorker& w : state.workers) {
    const sys::ChildProbe probe = sys::ProbeChild(w.pid);
    switch (probe.kind) {
      case sys::ChildProbe::Kind::kAlive:
        alive.insert(w.pid);
        break;
      case sys::ChildProbe::Kind::kExited:
        spdlog::warn("takeover: Ruby's worker {} exited during the exec ({})", w.pid,
                     sys::DescribeExit(probe.status));
        break;
      case sys::ChildProbe::Kind::kNotOurs:
        spdlog::error("takeover: Ruby's worker {} is not a child of this master ({}); dropped",
                      w.pid, sys::ErrnoText(ECHILD));
        break;
    }
  }
  return alive;
}

// The -b listeners, in -b order: each spec's fd is the one among :bind_fds that is bound to
// that address (port 0 as Ruby resolved it), whatever its position.
std::vector<sys::Listener> AdoptListeners(const core::RubyState& state, core::Options* o) {
  std::vector<sys::Listener> out;
  std::vector<bool> used(state.bind_fds.size(), false);
  std::vector<core::BindSpec> kept;
  for (size_t i = 0; i < o->binds.size(); ++i) {
    const core::BindSpec& spec = o->binds[i];
    if (spec.text.empty()) continue;  // unreadable; named by the parser
    core::BindSpec want = spec;
    if (want.port == 0 && i < state.bound_ports.size()) want.port = state.bound_ports[i];
    bool found = false;
    for (size_t j = 0; j < state.bind_fds.size() && !found; ++j) {
      if (used[j] || state.bind_fds[j] < 0) continue;
      auto socket = sys::DescribeInheritedSocket(state.bind_fds[j]);
      if (!socket.ok() || !sys::SocketMatches(socket.value(), want)) continue;
      auto listener = sys::AdoptActivated(socket.value(), spec);
      if (!listener.ok()) {
        spdlog::error("takeover: -b {}: {}", spec.text, listener.error());
        continue;
      }
      used[j] = true;
      found = true;
      spdlog::info("takeover: listening on {} for -b {} (Ruby's fd {}; fd {} in workers)",
                   listener.value().bound, spec.text, state.bind_fds[j], 3 + out.size());
      out.push_back(listener.value());
      kept.push_back(spec);
    }
    if (!found) {
      spdlog::error(
          "takeover: -b {}: no fd among Ruby's :bind_fds listens on {}:{}; that "
          "address is no longer served by new workers",
          spec.text, want.host, want.port);
    }
  }
  o->binds = kept;
  return out;
}

sys::Listener AdoptCommandSocket(const core::RubyState& state, const core::Options& o) {
  sys::Listener l;
  if (!state.command_server_fd) {
    spdlog::error(
        "takeover: Ruby's state has no command server: the command socket {} is not "
        "served; restart the master to get it back",
        o.socket_path);
    return l;
  }
  const int fd = *state.command_server_fd;
  auto socket = sys::DescribeInheritedSocket(fd);
  if (!socket.ok() || socket.value().address.family != core::BindSpec::Family::kUnix ||
      socket.value().address.path != o.socket_path) {
    spdlog::error(
        "takeover: Ruby's command server fd {} is not the socket at {} ({}); the "
        "command socket is not served",
        fd, o.socket_path, socket.ok() ? "it is " + socket.value().bound : socket.error());
    return l;
  }
  l.spec.family = core::BindSpec::Family::kUnix;
  l.spec.path = o.socket_path;
  l.spec.text = "unix:" + o.socket_path;
  l.fd = fd;
  l.bound = socket.value().bound;
  struct stat st {};
  if (lstat(o.socket_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    l.owns_path = true;  // Ruby would have unlinked it at exit; so do we
    l.path_dev = st.st_dev;
    l.path_ino = st.st_ino;
  }
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  return l;
}

std::vector<ControlServer::Carried> AdoptConnections(const core::RubyState& state) {
  std::vector<ControlServer::Carried> out;
  for (const core::RubyConnection& c : state.connections) {
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(c.fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) {
      spdlog::error("takeover: Ruby's connection fd {} is not an open stream socket; dropped",
                    c.fd);
      continue;
    }
    fcntl(c.fd, F_SETFD, FD_CLOEXEC);
    ControlServer::Carried k;
    k.fd = c.fd;
    if (auto cred = sys::GetPeerCred(c.fd); cred.ok()) {
      k.peer.pid = cred.value().pid;
      k.peer.uid = static_cast<int>(cred.value().uid);
      k.peer.gid = static_cast<int>(cred.value().gid);
      for (pid_t p : sys::Lineage(k.peer.pid)) k.peer.lineage.push_back(p);
    }
    k.pending_input = c.read_buffer;
    k.upgrade_id = c.upgrade_id;
    if (!c.write_buffer.empty()) {
      // Ruby's unsent replies: whatever the socket takes now; the rest is lost, and said.
      const ssize_t n =
          send(c.fd, c.write_buffer.data(), c.write_buffer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < static_cast<ssize_t>(c.write_buffer.size())) {
        spdlog::warn("takeover: {} of {} bytes of Ruby's pending reply on fd {} were lost",
                     c.write_buffer.size() - static_cast<size_t>(std::max<ssize_t>(n, 0)),
                     c.write_buffer.size(), c.fd);
      }
    }
    out.push_back(std::move(k));
  }
  return out;
}

}  // namespace

core::Result<MasterSetup> RubyTakeoverSetup(const std::string& bytes,
                                            const std::vector<std::string>& env,
                                            const std::string& self_path) {
  using R = core::Result<MasterSetup>;
  auto parsed = core::ParseRubyState(bytes);
  if (!parsed.ok()) return R::Error(parsed.error());
  core::RubyState& state = parsed.value();
  SetLogLevel(state.options.verbosity);
  spdlog::info(
      "takeover: einhorn-cpp {} takes over from Ruby Einhorn (pid {}): {} workers, "
      "{} listeners, {} command connections{}",
      core::kVersion, getpid(), state.workers.size(), state.bind_fds.size(),
      state.connections.size(),
      state.reloading_for_upgrade ? "; then the upgrade it was asked for"
      : state.upgrading           ? "; then the upgrade it was in the middle of"
                                  : "");
  for (const std::string& p : state.problems) {
    spdlog::error("takeover: Ruby Einhorn's state: {}", p);
  }

  core::Options o = state.options;
  core::ApplyDefaultPaths(&o, core::EnvMap(env));
  MasterSetup setup;
  setup.listeners = AdoptListeners(state, &o);
  setup.control = AdoptCommandSocket(state, o);
  setup.options = o;
  setup.command_path = o.command.front();
  setup.startup_env = env;
  setup.worker_env = env;
  setup.self_path = self_path;

  std::uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed) {
    seed = static_cast<std::uint64_t>(ClockNanos(CLOCK_REALTIME));
  }
  const std::set<core::Pid> alive = LiveWorkers(state);
  core::RubyTakeover plan = core::PlanRubyTakeover(
      state, alive, core::Time(ClockNanos(CLOCK_MONOTONIC)), ClockNanos(CLOCK_REALTIME), seed);
  for (const std::string& note : plan.notes) spdlog::warn("takeover: {}", note);
  if (core::Status st = core::CheckSnapshot(plan.supervisor); !st.ok()) {
    return R::Error("the adopted pool is inconsistent: " + st.message());
  }

  MasterSetup::Restored restored;
  restored.supervisor = std::move(plan.supervisor);
  restored.verbosity = o.verbosity;
  restored.clients = AdoptConnections(state);
  if (plan.then_upgrade) restored.then_upgrades.push_back(*plan.then_upgrade);
  restored.reloads = 1;
  restored.previous_version = "Ruby Einhorn";
  restored.drain_now = plan.drain_now;
  setup.restored = std::move(restored);
  return setup;
}

}  // namespace einhorn::master
