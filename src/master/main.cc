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
#include "master/logging.h"
#include "master/master.h"
#include "sys/files.h"
#include "sys/listeners.h"
#include "sys/peer.h"
#include "sys/process.h"
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

int Main(int argc, char** argv) {
  // Nothing the master inherited may reach a worker, and a mask inherited from our parent must
  // not silence the signals we handle.
  sys::CloexecFrom3();
  sys::ResetSignalMask();

  const std::vector<std::string> env = CurrentEnvironment();
  const core::FlagsOutcome flags =
      core::ParseFlags(std::vector<std::string>(argv, argv + argc), EnvMap(env));
  if (flags.kind == core::FlagsOutcome::Kind::kExit) {
    if (!flags.out.empty()) std::fputs(flags.out.c_str(), stdout);
    if (!flags.err.empty()) std::fprintf(stderr, "%s\n", flags.err.c_str());
    return flags.exit_code;
  }
  core::Options o = flags.options;
  // Einhorn's default: one unready new worker per CPU during an upgrade.
  if (!o.max_unacked) o.max_unacked = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  SetUpLogging(o.verbosity);

  const char* path_env = std::getenv("PATH");
  auto command = sys::ResolveCommand(o.command.front(), path_env ? path_env : "");
  if (!command.ok()) return Fail(command.error());

  AccessPolicy access;
  access.self_uid = getuid();
  for (const std::string& u : o.control_allow_uids) {
    auto uid = sys::ResolveUser(u);
    if (!uid.ok()) return Fail("--control-allow-uid: " + uid.error());
    access.allow_uids.insert(uid.value());
  }
  for (const std::string& g : o.control_allow_gids) {
    auto gid = sys::ResolveGroup(g);
    if (!gid.ok()) return Fail("--control-allow-gid: " + gid.error());
    access.allow_gids.insert(gid.value());
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
  const bool widened = !access.allow_uids.empty() || !access.allow_gids.empty();
  chmod(o.socket_path.c_str(), widened ? 0666 : 0600);
  spdlog::info("command socket at {}", o.socket_path);

  std::vector<sys::Listener> listeners;
  for (const core::BindSpec& spec : o.binds) {
    auto listener = sys::OpenListener(spec, o.backlog);
    if (!listener.ok()) {
      CloseAll(listeners);
      sys::CloseListener(control.value());
      return Fail(listener.error());
    }
    spdlog::info("listening on {} for -b {} (fd {} in workers)", listener.value().bound,
                 spec.text, 3 + listeners.size());
    listeners.push_back(std::move(listener).value());
  }

  const pid_t self = getpid();
  if (core::Status st = sys::WritePidfile(o.pidfile, self); !st.ok()) {
    CloseAll(listeners);
    sys::CloseListener(control.value());
    return Fail(st.message());
  }
  if (o.nice.master) {
    if (core::Status st = sys::SetNice(*o.nice.master); !st.ok()) spdlog::warn("{}", st.message());
  }

  int code = 0;
  {
    MasterSetup setup{o, command.value(), listeners, control.value().fd, access, env};
    // The server owns the fd from here; only the path is ours to remove.
    control.value().fd = -1;
    Master master(std::move(setup));
    code = master.Run();
  }
  CloseAll(listeners);
  sys::CloseListener(control.value());
  sys::RemovePidfile(o.pidfile, self);
  spdlog::info("exiting with status {}", code);
  return code;
}

}  // namespace
}  // namespace einhorn::master

int main(int argc, char** argv) { return einhorn::master::Main(argc, argv); }
