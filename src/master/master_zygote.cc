// --preload: the master's side of the zygotes (ZYGOTE-PROTOCOL v1). The decisions (which
// zygote should exist, timeouts, backoff, what an end means) are core::ZygoteBook's; this file
// starts zygotes, reads what they say, asks them for workers and checks the answers.
//
// Why a double fork and a subreaper: a worker must be the master's own child, so that the one
// reaper sees its exit status, pidfds and signals work as for an exec'd worker, and a reload
// (same pid) keeps it. The zygote forks an intermediate child that forks the worker and exits;
// the worker is orphaned and, the master being PR_SET_CHILD_SUBREAPER, reparented to it. The
// master then checks /proc/PID/stat before it adopts the pid the zygote names.
//
// A spawn is one synchronous round trip inside the Spawn effect, with a short deadline
// (kReplyTimeout): the loop waits for one fork (about a millisecond), not for a worker's
// start. Asynchronous spawns are left for later.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "core/preload.h"
#include "core/json_text.h"
#include "master/logging.h"
#include "master/master.h"
#include "sys/preload_program.h"
#include "sys/posix.h"
#include "sys/process.h"
#include "sys/zygote_io.h"

namespace einhorn::master {
namespace {

// A fork takes a millisecond; a zygote that needs seconds to answer is stuck.
constexpr int kReplyTimeoutMs = 5000;
// Test-only overrides (1 to 600000 ms), as EINHORN_CPP_TEST_CHECK_TIMEOUT_MS: not settings.
int TestMs(const char* name, int fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr) return fallback;
  char* end = nullptr;
  errno = 0;
  const long ms = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || ms < 1 || ms > 600000) return fallback;
  return static_cast<int>(ms);
}

core::ZygotePolicy PolicyFrom(const core::Options& o) {
  core::ZygotePolicy p;
  p.backoff_base = core::Seconds(o.seconds);
  p.load_timeout = std::chrono::milliseconds(TestMs("EINHORN_CPP_TEST_ZYGOTE_LOAD_MS", 60000));
  return p;
}

// What a zygote says goes into log lines cut to this.
std::string Clip(const std::string& s) { return s.size() > 300 ? s.substr(0, 300) + "..." : s; }

}  // namespace

struct Master::ZygoteLink {
  uv_poll_t poll{};
  Master* master = nullptr;
  pid_t pid = 0;
  int fd = -1;
  std::int64_t next_id = 1;
};

core::ZygotePolicy Master::ZygotePolicyFor(const core::Options& o) { return PolicyFrom(o); }

void Master::SetUpZygotes() {
  if (!core::ZygoteMode(setup_.options)) return;
  if (const core::Status st = sys::BecomeSubreaper(); !st.ok()) {
    spdlog::error("--preload: {}; workers forked by a zygote would not be the master's "
                  "children",
                  st.message());
  }
  if (!setup_.restored) {
    started_ = false;
    spdlog::info("preload: starting the zygote of generation {}; the workers start once it "
                 "has loaded",
                 supervisor_.generation());
    return;
  }
  for (const core::MasterState::ZygoteLink& l : setup_.restored->zygotes) {
    WatchZygote(l.zygote.pid, l.fd, l.next_id);
  }
}

core::ZygoteFacts Master::ZygoteFactsNow() const {
  core::ZygoteFacts f;
  f.generation = supervisor_.generation();
  for (const auto& [pid, w] : supervisor_.workers()) f.live_generations.insert(w.generation);
  f.stopping = supervisor_.Stopping() || supervisor_.Finished();
  f.started = started_;
  return f;
}

void Master::ApplyZygotes() {
  if (!core::ZygoteMode(setup_.options)) return;
  const core::Time now = Now();
  for (const core::ZygoteAction& a : zygotes_.Decide(ZygoteFactsNow(), now)) {
    switch (a.kind) {
      case core::ZygoteAction::Kind::kStart:
        StartZygote(a.generation, a.gates);
        break;
      case core::ZygoteAction::Kind::kClose:
        spdlog::info("preload: closing zygote {} ({})", a.pid, a.reason);
        CloseZygoteLink(a.pid);
        break;
      case core::ZygoteAction::Kind::kKill:
        spdlog::warn("preload: killing zygote {}: {}", a.pid, a.reason);
        CloseZygoteLink(a.pid);
        sys::SendSignal(a.pid, core::Signal::kKill);
        break;
    }
  }
}

void Master::StartZygote(int generation, std::optional<core::UpgradeStrategy> gates) {
  const core::Time now = Now();
  auto fail = [&](const std::string& error) {
    const core::ZygoteEnd end =
        zygotes_.StartFailed(generation, gates, error, supervisor_.generation(), now);
    LogEvent(end.level, "preload: " + end.line, end.event);
    if (end.failed_upgrade) supervisor_.UpgradeFailedEarly(*end.failed_upgrade, end.why, now);
  };
  auto pair = sys::SeqpacketPair();
  if (!pair.ok()) return fail(pair.error());
  const auto [ours, theirs] = pair.value();
  sys::SpawnPlan plan = plan_template_;
  plan.env.clear();  // the template's is a worker's: rebuilt below without EINHORN_CHILD_INDEX
  if (core::RubyPreload(setup_.options)) {
    // -p: Einhorn's Ruby preload, run by einhorn-preload.rb in place of the command.
    auto program = sys::FindPreloadProgram();
    if (!program.ok()) return fail(program.error());
    plan.argv = core::PreloadZygoteCommand(setup_.options, program.value());
    const char* path_env = getenv("PATH");
    auto resolved = sys::ResolveCommand(plan.argv[0], path_env ? path_env : "");
    if (!resolved.ok()) return fail(resolved.error());
    plan.path = resolved.value();
  }
  env_input_.child_index = 0;
  for (std::string& e : core::BuildWorkerEnv(env_input_)) {
    if (e.rfind("EINHORN_CHILD_INDEX=", 0) != 0) plan.env.push_back(std::move(e));
  }
  plan.env.push_back("EINHORN_ZYGOTE_FD=" +
                     std::to_string(core::kFirstListenFd + plan.pass_fds.size()));
  plan.pass_fds.push_back(theirs);
  // Exec'd at once (one per generation): a missing command is a clear start failure.
  auto started = sys::Spawn(plan);
  close(theirs);
  if (!started.ok()) {
    close(ours);
    return fail(started.error());
  }
  const pid_t pid = started.value();
  zygotes_.Started(pid, generation, gates, now);
  WatchZygote(pid, ours, 1);
  core::Event e = core::EventAt(core::EventKind::kZygote, now);
  e.pid = pid;
  e.generation = generation;
  e.detail = "start";
  LogEvent(core::LogLevel::kInfo,
           "preload: zygote " + std::to_string(pid) + " of generation " +
               std::to_string(generation) + " started" +
               (gates ? "; the upgrade begins once it has loaded" : ""),
           e);
  if (gates) {
    UpgradeNote(core::UpgradeNoteKind::kProgress,
                "Loading the new code in zygote " + std::to_string(pid) + " (generation " +
                    std::to_string(generation) + ") before the upgrade begins...");
  }
}

void Master::WatchZygote(pid_t pid, int fd, std::int64_t next_id) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  auto* link = new ZygoteLink;
  link->master = this;
  link->pid = pid;
  link->fd = fd;
  link->next_id = next_id;
  link->poll.data = link;
  if (uv_poll_init(&loop_, &link->poll, fd) != 0) {
    spdlog::error("preload: cannot watch zygote {}'s socket; killing it", pid);
    close(fd);
    delete link;
    zygotes_.Fault(pid, "its socket could not be watched", Now());
    sys::SendSignal(pid, core::Signal::kKill);
    return;
  }
  uv_poll_start(&link->poll, UV_READABLE | UV_DISCONNECT, [](uv_poll_t* h, int, int) {
    auto* l = static_cast<ZygoteLink*>(h->data);
    Master* m = l->master;
    try {
      m->ReadZygote(l->pid);
      m->AfterEvent();
    } catch (const std::exception& e) {
      spdlog::error("internal error while reading a zygote: {}", e.what());
    }
  });
  zygote_links_[pid] = link;
}

void Master::CloseZygoteLink(pid_t pid) {
  const auto it = zygote_links_.find(pid);
  if (it == zygote_links_.end()) return;
  ZygoteLink* link = it->second;
  zygote_links_.erase(it);
  uv_poll_stop(&link->poll);
  // The fd closes only once libuv is done with the handle; EOF reaches the zygote then (the
  // same loop turn).
  uv_close(reinterpret_cast<uv_handle_t*>(&link->poll), [](uv_handle_t* h) {
    auto* l = static_cast<ZygoteLink*>(h->data);
    close(l->fd);
    delete l;
  });
}

void Master::ZygoteBroken(pid_t pid, const std::string& why) {
  // At most one line per zygote: a broken one is replaced only after the backoff.
  spdlog::error("preload: zygote {} is broken: {}; killing it", pid, Clip(why));
  zygotes_.Fault(pid, why, Now());
  CloseZygoteLink(pid);
  sys::SendSignal(pid, core::Signal::kKill);
}

void Master::ZygoteHungUp(pid_t pid) {
  // Mostly a zygote that died (its fds close just before it becomes a zombie): wait a moment
  // for its exit, so that its end says how it died rather than "it closed its socket".
  for (int i = 0; i < 50; ++i) {
    const sys::ChildProbe probe = sys::ProbeChild(pid);
    if (probe.kind == sys::ChildProbe::Kind::kExited) return ChildEnded(pid, probe.status);
    if (probe.kind == sys::ChildProbe::Kind::kNotOurs) break;
    usleep(1000);
  }
  ZygoteBroken(pid, "it closed its socket");
}

void Master::ReadZygote(pid_t pid) {
  for (;;) {
    const auto it = zygote_links_.find(pid);
    if (it == zygote_links_.end()) return;
    const sys::Received r = sys::ReceivePacket(it->second->fd, core::kMaxZygotePacket, 0);
    switch (r.kind) {
      case sys::Received::Kind::kNothing:
        return;
      case sys::Received::Kind::kEof:
        return ZygoteHungUp(pid);
      case sys::Received::Kind::kError:
        return ZygoteBroken(pid, "reading its socket: " + r.error);
      case sys::Received::Kind::kTooBig:
        return ZygoteBroken(pid, "protocol error: a message of " + r.error + " (at most " +
                                     std::to_string(core::kMaxZygotePacket) + ")");
      case sys::Received::Kind::kPacket:
        break;
    }
    auto parsed = core::ParseZygoteMessage(r.bytes);
    if (!parsed.ok()) return ZygoteBroken(pid, "protocol error: " + parsed.error());
    const core::ZygoteMessage& m = parsed.value();
    const core::Zygote* z = zygotes_.Find(pid);
    if (z == nullptr) return;
    const bool loading = z->state == core::ZygoteState::kLoading;
    if (m.kind == core::ZygoteMessage::Kind::kError && loading) {
      return ZygoteBroken(pid, "it failed to load: " + core::JsonString(m.error));
    }
    if (m.kind != core::ZygoteMessage::Kind::kReady || !loading) {
      return ZygoteBroken(pid, loading ? "protocol error: a reply while it was loading"
                                       : "protocol error: a message nobody asked for");
    }
    ZygoteReady(pid);
  }
}

void Master::ZygoteReady(pid_t pid) {
  const core::Time now = Now();
  const core::Zygote* z = zygotes_.Find(pid);
  const int generation = z->generation;
  const double took = core::ToSeconds(now - z->started_at);
  const std::optional<core::UpgradeStrategy> gated = zygotes_.Ready(pid, now);
  core::Event e = core::EventAt(core::EventKind::kZygote, now);
  e.pid = pid;
  e.generation = generation;
  e.seconds = took;
  e.detail = "ready";
  LogEvent(core::LogLevel::kInfo,
           "preload: zygote " + std::to_string(pid) + " of generation " +
               std::to_string(generation) + " is ready after " + core::LogSeconds(took),
           e);
  if (!started_) {
    started_ = true;
    supervisor_.Start(now);
    return;
  }
  if (!gated) return;
  if (generation != supervisor_.next_generation()) {
    // Generations moved on meanwhile (cannot happen while every upgrade goes through here).
    spdlog::error("preload: zygote {} loaded generation {}, but the next one is {}", pid,
                  generation, supervisor_.next_generation());
    return;
  }
  const core::UpgradeStart start = supervisor_.Upgrade(*gated, now);
  if (!start.started) {
    spdlog::warn("not upgrading: {}", start.message);
    UpgradeNote(core::UpgradeNoteKind::kFailed, "Upgrade failed: " + start.message);
  }
}

void Master::RequestPreloadUpgrade(core::UpgradeStrategy strategy) {
  const int generation = supervisor_.next_generation();
  if (const auto superseded = zygotes_.RequestUpgrade(strategy, generation, Now())) {
    spdlog::info("preload: zygote {} was loading for an earlier upgrade; superseded, killing it",
                 *superseded);
    CloseZygoteLink(*superseded);
    sys::SendSignal(*superseded, core::Signal::kKill);
  }
}

bool Master::ZygoteEnded(pid_t pid, const core::ExitStatus& status) {
  if (zygotes_.Find(pid) == nullptr) return false;
  CloseZygoteLink(pid);
  const core::Time now = Now();
  const core::ZygoteEnd end = zygotes_.Ended(pid, status.ToString(), supervisor_.generation(), now);
  LogEvent(end.level, "preload: " + end.line, end.event);
  if (end.failed_upgrade) supervisor_.UpgradeFailedEarly(*end.failed_upgrade, end.why, now);
  return true;
}

core::Result<pid_t> Master::ForkFromZygote(const core::SpawnRequest& request,
                                           const sys::SpawnPlan& plan) {
  using R = core::Result<pid_t>;
  const core::Zygote* z = zygotes_.ReadyFor(request.generation);
  if (z == nullptr) {
    const core::Zygote* live = zygotes_.LiveFor(request.generation);
    return R::Error("the zygote of generation " + std::to_string(request.generation) +
                    (live ? " is still loading" : " is not running (it is being restarted)"));
  }
  const pid_t zpid = z->pid;
  const auto it = zygote_links_.find(zpid);
  if (it == zygote_links_.end()) return R::Error("the zygote's socket is closed");
  ZygoteLink* link = it->second;
  // The worker's stdin is the master's (as for an exec'd one); stdout and stderr are the
  // master's or --worker-output's pipes. An fd the master does not have becomes /dev/null.
  std::vector<int> fds{0, plan.stdout_fd >= 0 ? plan.stdout_fd : 1,
                       plan.stderr_fd >= 0 ? plan.stderr_fd : 2};
  sys::UniqueFd null_fd;
  for (int& fd : fds) {
    if (fcntl(fd, F_GETFD) >= 0) continue;
    if (!null_fd.valid()) null_fd.reset(open("/dev/null", O_RDWR | O_CLOEXEC));
    fd = null_fd.get();
  }
  // The fds this spawn added after the listeners (-g's channel): the zygote has the listeners
  // already, at the same numbers; these travel with the request, to the numbers an exec'd
  // worker would have them at (the one after the listeners is the zygote socket's in the
  // zygote, closed in the worker).
  std::vector<int> fd_targets;
  for (size_t i = setup_.listeners.size(); i < plan.pass_fds.size(); ++i) {
    fds.push_back(plan.pass_fds[i]);
    fd_targets.push_back(core::kFirstListenFd + static_cast<int>(i));
  }
  std::vector<std::string> self_pid_vars;
  if (plan.set_listen_pid) self_pid_vars.push_back("LISTEN_PID");
  if (plan.set_watchdog_pid) self_pid_vars.push_back("WATCHDOG_PID");
  const std::int64_t id = link->next_id++;
  // -k: a fork clears the parent-death signal, so the worker sets it itself once reparented.
  const std::string request_bytes =
      core::EncodeSpawnRequest(id, plan.env, self_pid_vars, plan.pdeath_signal, fd_targets);
  if (request_bytes.size() > core::kMaxZygotePacket) {
    return R::Error("the worker's environment is too big for one zygote message (" +
                    std::to_string(request_bytes.size()) + " bytes)");
  }
  fcntl(link->fd, F_SETFL, fcntl(link->fd, F_GETFL) & ~O_NONBLOCK);
  const core::Status sent = sys::SendPacket(link->fd, request_bytes, fds);
  fcntl(link->fd, F_SETFL, fcntl(link->fd, F_GETFL) | O_NONBLOCK);
  auto broken = [&](const std::string& why) {
    ZygoteBroken(zpid, why);
    return R::Error("zygote " + std::to_string(zpid) + ": " + Clip(why));
  };
  if (!sent.ok()) return broken(sent.message());
  const int timeout = TestMs("EINHORN_CPP_TEST_ZYGOTE_REPLY_MS", kReplyTimeoutMs);
  const sys::Received r = sys::ReceivePacket(link->fd, core::kMaxZygotePacket, timeout);
  switch (r.kind) {
    case sys::Received::Kind::kNothing:
      return broken("no reply to spawn request " + std::to_string(id) + " within " +
                    core::LogSeconds(timeout / 1000.0));
    case sys::Received::Kind::kEof:
      ZygoteHungUp(zpid);
      return R::Error("zygote " + std::to_string(zpid) + " went away during a spawn request");
    case sys::Received::Kind::kError:
      return broken("reading its socket: " + r.error);
    case sys::Received::Kind::kTooBig:
      return broken("protocol error: a message of " + r.error);
    case sys::Received::Kind::kPacket:
      break;
  }
  auto parsed = core::ParseZygoteMessage(r.bytes);
  if (!parsed.ok()) return broken("protocol error: " + parsed.error());
  const core::ZygoteMessage& m = parsed.value();
  const bool reply = m.kind == core::ZygoteMessage::Kind::kSpawned ||
                     m.kind == core::ZygoteMessage::Kind::kFailed;
  if (!reply || m.id != id) {
    return broken("protocol error: expected the reply to spawn request " + std::to_string(id));
  }
  if (m.kind == core::ZygoteMessage::Kind::kFailed) {
    // Its own fork failed (EAGAIN, ENOMEM): the zygote is fine, the spawn is not.
    return R::Error("zygote " + std::to_string(zpid) + " could not fork the worker: " +
                    core::JsonString(m.error));
  }
  // Only the master's own, new child is adopted: never pid 1, the master, the zygote, a known
  // worker, or a process some other parent owns.
  const pid_t pid = static_cast<pid_t>(m.pid);
  const std::string named = "replied with pid " + std::to_string(m.pid);
  if (m.pid <= 1 || m.pid > INT32_MAX || pid == getpid() || pid == zpid ||
      zygotes_.Find(pid) != nullptr) {
    return broken(named + ", which cannot be a new worker (forged?)");
  }
  if (supervisor_.workers().count(pid) > 0) {
    return broken(named + ", which is already a worker (forged?)");
  }
  const std::optional<pid_t> parent = sys::ParentOf(pid);
  if (!parent || *parent != getpid()) {
    return broken(named + ", which is not a child of the master (" +
                  (parent ? "its parent is " + std::to_string(*parent) : std::string("no such process")) +
                  "; forged, or it did not wait for the intermediate child)");
  }
  zygotes_.CountSpawn(zpid);
  return pid;
}

std::vector<core::MasterState::ZygoteLink> Master::ExportZygotes() const {
  std::vector<core::MasterState::ZygoteLink> out;
  for (const core::Zygote& z : zygotes_.zygotes()) {
    const auto it = zygote_links_.find(z.pid);
    // A zygote told to go has no socket left: it is only waited for.
    if (it == zygote_links_.end()) continue;
    out.push_back({z, it->second->fd, it->second->next_id});
  }
  return out;
}

std::vector<core::ZygoteStatus> Master::Zygotes(core::Time now) const {
  std::vector<core::ZygoteStatus> out;
  for (const core::Zygote& z : zygotes_.zygotes()) {
    out.push_back({z.pid, z.generation, core::ZygoteStateName(z.state), z.spawns,
                   core::ToSeconds(now - z.started_at)});
  }
  return out;
}

void Master::CloseZygotes() {
  while (!zygote_links_.empty()) CloseZygoteLink(zygote_links_.begin()->first);
}

}  // namespace einhorn::master
