// The schema of the re-exec state: which key holds which field. The format's building blocks
// (writer, strict reader) are in state_format.cc.
#include "core/state.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/exceptions.h>

#include <exception>
#include <limits>
#include <locale>
#include <map>
#include <sstream>

#include "core/state_format.h"
#include "core/telemetry_state.h"

namespace einhorn::core {
namespace {

// This file is the format's only user; its helpers read best unqualified.
using namespace state_format;  // NOLINT(build/namespaces)

// Compile-time reminder: a field added to one of these structs breaks the build here (a
// structured binding must name every field) until the codec below carries it, and a test
// sets it.
[[maybe_unused]] void EveryFieldIsCarried(const MasterState& m) {
  [[maybe_unused]] const auto& [m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14,
                                m15, m16, m17, m18, m19] = m;
  [[maybe_unused]] const auto& [ns1, ns2] = MasterState::NotifySocket{};
  [[maybe_unused]] const auto& [l1, l2, l3, l4, l5, l6] = m.control;
  [[maybe_unused]] const auto& [k1, k2, k3, k4] = MasterState::Client{};
  [[maybe_unused]] const auto& [q1, q2, q3, q4, q5] = Peer{};
  [[maybe_unused]] const auto& [i1, i2] = wire::Id{};
  [[maybe_unused]] const auto& [o1, o2, o3, o4, o5, o6, o7, o8, o9, o10, o11, o12, o13, o14, o15,
                                o16, o17, o18, o19, o20, o21, o22, o23, o24, o25, o26, o27,
                                o28, o29, o30] = m.options;
  [[maybe_unused]] const auto& [b1, b2, b3, b4, b5, b6, b7, b8] = BindSpec{};
  [[maybe_unused]] const auto& [a1, a2] = m.options.ack_mode;
  [[maybe_unused]] const auto& [n1, n2, n3] = m.options.nice;
  const SupervisorSnapshot& s = m.supervisor;
  [[maybe_unused]] const auto& [s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12] = s;
  [[maybe_unused]] const auto& [c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12] = s.config;
  [[maybe_unused]] const auto& [p1, p2, p3, p4, p5, p6] = s.config.upgrade;
  [[maybe_unused]] const auto& [w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11, w12,
                                w13] = Worker{};
  [[maybe_unused]] const auto& [t1, t2, t3, t4, t5, t6] = Slot{};
  [[maybe_unused]] const auto& [e1, e2] = ExitStatus{};
  [[maybe_unused]] const auto& [u1, u2, u3, u4, u5, u6, u7, u8, u9] = UpgradeProgress{};
  [[maybe_unused]] const auto& [r1, r2, r3, r4] = UpgradeResult{};
}

// ---------------------------------------------------------------------------------------
// Enums by name

const Names<BindSpec::Family> kFamilies = {{BindSpec::Family::kInet, "inet"},
                                           {BindSpec::Family::kInet6, "inet6"},
                                           {BindSpec::Family::kUnix, "unix"}};
const Names<AckMode::Kind> kAckKinds = {{AckMode::Kind::kTimer, "timer"},
                                        {AckMode::Kind::kManual, "manual"},
                                        {AckMode::Kind::kNotify, "notify"}};
const Names<WorkerState> kWorkerStates = {{WorkerState::kBooting, "booting"},
                                          {WorkerState::kReady, "ready"},
                                          {WorkerState::kDraining, "draining"}};
const Names<UpgradeStrategy> kStrategies = {{UpgradeStrategy::kSmooth, "smooth"},
                                            {UpgradeStrategy::kFleet, "fleet"}};
const Names<wire::Id::Kind> kIdKinds = {{wire::Id::Kind::kInt, "int"},
                                         {wire::Id::Kind::kFloat, "float"},
                                         {wire::Id::Kind::kBool, "bool"},
                                         {wire::Id::Kind::kString, "string"}};
const Names<LogFormat> kLogFormats = {{LogFormat::kText, "text"}, {LogFormat::kJson, "json"}};
const Names<StopKind> kStopKinds = {
    {StopKind::kDrain, "drain"}, {StopKind::kTerminate, "terminate"}, {StopKind::kQuit, "quit"}};
const Names<Signal> kSignals = {{Signal::kHup, "SIGHUP"},   {Signal::kInt, "SIGINT"},
                                {Signal::kQuit, "SIGQUIT"}, {Signal::kKill, "SIGKILL"},
                                {Signal::kUsr1, "SIGUSR1"}, {Signal::kUsr2, "SIGUSR2"},
                                {Signal::kTerm, "SIGTERM"}, {Signal::kTtin, "SIGTTIN"},
                                {Signal::kTtou, "SIGTTOU"}, {Signal::kAbrt, "SIGABRT"}};

// ---------------------------------------------------------------------------------------
// Encoding

std::string EncodeBind(const BindSpec& b) {
  return Flow()
      .Add("text", Str(b.text))
      .Add("family", Name(kFamilies, b.family))
      .Add("host", Str(b.host))
      .Add("port", Int(b.port))
      .Add("path", Str(b.path))
      .Add("reuseaddr", Bool(b.reuseaddr))
      .Add("nonblock", Bool(b.nonblock))
      .Add("reuseport", Bool(b.reuseport))
      .Done();
}

std::string EncodeAckMode(const AckMode& a) {
  return Flow()
      .Add("kind", Name(kAckKinds, a.kind))
      .Add("timer_seconds", Dbl(a.timer_seconds))
      .Done();
}

void EncodeOptions(const Options& o, Block b) {
  b.Scalar("number", Int(o.number));
  b.List("binds", Each(o.binds, EncodeBind));
  b.Scalar("command_name", Str(o.command_name));
  b.Scalar("socket_path", Str(o.socket_path));
  b.Scalar("pidfile", Str(o.pidfile));
  b.Scalar("lockfile", Str(o.lockfile));
  b.Scalar("kill_children_on_exit", Bool(o.kill_children_on_exit));
  b.Scalar("backlog", Int(o.backlog));
  b.Scalar("ack_mode", EncodeAckMode(o.ack_mode));
  b.Scalar("verbosity", Int(o.verbosity));
  b.Scalar("seconds", Dbl(o.seconds));
  b.Scalar("signal_timeout", Opt(o.signal_timeout, Dbl));
  b.List("drop_env_vars", Each(o.drop_env_vars, Str));
  b.Scalar("nice", Flow()
                       .Add("master", Opt(o.nice.master, Int))
                       .Add("worker", Opt(o.nice.worker, Int))
                       .Add("renice_cmd", Str(o.nice.renice_cmd))
                       .Done());
  b.Scalar("command_socket_as_fd", Bool(o.command_socket_as_fd));
  b.List("control_allow_uids", Each(o.control_allow_uids, Str));
  b.List("control_allow_gids", Each(o.control_allow_gids, Str));
  b.List("command", Each(o.command, Str));
  b.List("reexec_as", Each(o.reexec_as, Str));
  b.Scalar("subreaper", Bool(o.subreaper));
  b.Scalar("worker_watchdog", Opt(o.worker_watchdog, Dbl));
  b.Scalar("max_unacked", Opt(o.max_unacked, Int));
  b.Scalar("max_upgrade_additional", Opt(o.max_upgrade_additional, Int));
  b.Scalar("ack_timeout", Dbl(o.ack_timeout));
  b.Scalar("upgrade_timeout", Dbl(o.upgrade_timeout));
  b.Scalar("upgrade_max_failures", Int(o.upgrade_max_failures));
  b.Scalar("canary", Bool(o.canary));
  b.Scalar("drain_signal", Name(kSignals, o.drain_signal));
  // Written only when set: older binaries read states without them.
  if (o.log_format != LogFormat::kText) b.Scalar("log_format", Name(kLogFormats, o.log_format));
  if (!o.metrics_listen.empty()) b.Scalar("metrics_listen", Str(o.metrics_listen));
}

void EncodeConfig(const SupervisorConfig& c, Block b) {
  b.Scalar("target", Int(c.target));
  b.Scalar("ack_mode", EncodeAckMode(c.ack_mode));
  b.Scalar("backoff_base", Ns(c.backoff_base));
  b.Scalar("backoff_cap", Ns(c.backoff_cap));
  b.Scalar("signal_timeout", Opt(c.signal_timeout, Ns));
  b.Scalar("drain_signal", Name(kSignals, c.drain_signal));
  b.Scalar("kill_children_on_exit", Bool(c.kill_children_on_exit));
  b.Scalar("jitter_seed", U64(c.jitter_seed));
  b.Scalar("jitter", Dbl(c.jitter));
  b.Scalar("worker_watchdog", Opt(c.worker_watchdog, Ns));
  const UpgradePolicy& p = c.upgrade;
  b.Scalar("upgrade", Flow()
                          .Add("max_unacked", Int(p.max_unacked))
                          .Add("max_additional", Opt(p.max_additional, Int))
                          .Add("canary", Bool(p.canary))
                          .Add("ack_timeout", Opt(p.ack_timeout, Ns))
                          .Add("upgrade_timeout", Opt(p.upgrade_timeout, Ns))
                          .Add("max_failures", Int(p.max_failures))
                          .Done());
  b.Scalar("rollback_kill_after", Ns(c.rollback_kill_after));
}

std::string EncodeWorker(const Worker& w) {
  return Flow()
      .Add("pid", Int(w.pid))
      .Add("slot", Int(w.slot))
      .Add("index", Int(w.index))
      .Add("generation", Int(w.generation))
      .Add("spawned_at", Ns(w.spawned_at))
      .Add("ready_at", Opt(w.ready_at, Ns))
      .Add("state", Name(kWorkerStates, w.state))
      .Add("signaled_at", Opt(w.signaled_at, Ns))
      .Add("kill_at", Opt(w.kill_at, Ns))
      .Add("killed", Bool(w.killed))
      .Add("pinged_at", Opt(w.pinged_at, Ns))
      .Add("notify_status", Str(w.notify_status))
      .Add("watchdog_at", Opt(w.watchdog_at, Ns))
      .Done();
}

std::string EncodeExit(const ExitStatus& e) {
  return Flow().Add("signaled", Bool(e.signaled)).Add("code", Int(e.code)).Done();
}

std::string EncodeSlot(const Slot& s) {
  return Flow()
      .Add("pid", Opt(s.pid, Int))
      .Add("starts", Int(s.starts))
      .Add("restarts", Int(s.restarts))
      .Add("consecutive_failures", Int(s.consecutive_failures))
      .Add("respawn_at", Opt(s.respawn_at, Ns))
      .Add("last_exit", Opt(s.last_exit, EncodeExit))
      .Done();
}

std::string EncodeProgress(const UpgradeProgress& u) {
  return Flow()
      .Add("strategy", Name(kStrategies, u.strategy))
      .Add("from_generation", Int(u.from_generation))
      .Add("to_generation", Int(u.to_generation))
      .Add("started_at", Ns(u.started_at))
      .Add("failures", Int(u.failures))
      .Add("last_failure", Str(u.last_failure))
      .Add("old_at_start", Int(u.old_at_start))
      .Add("reported_ready", Int(u.reported_ready))
      .Add("reported_drained", Int(u.reported_drained))
      .Done();
}

std::string EncodeResult(const UpgradeResult& r) {
  return Flow()
      .Add("ok", Bool(r.ok))
      .Add("generation", Int(r.generation))
      .Add("reason", Str(r.reason))
      .Add("finished_at", Ns(r.finished_at))
      .Done();
}

std::string RngText(const std::mt19937_64& rng) {
  std::ostringstream out;
  out.imbue(std::locale::classic());
  out << rng;
  return out.str();
}

void EncodeSupervisor(const SupervisorSnapshot& s, Block b) {
  EncodeConfig(s.config, b.Map("config"));
  b.Scalar("rng", Str(RngText(s.rng)));
  b.List("workers", Each(s.workers, EncodeWorker));
  b.List("slots", Each(s.slots, EncodeSlot));
  b.Scalar("generation", Int(s.generation));
  b.Scalar("next_generation", Int(s.next_generation));
  b.Scalar("upgrade", Opt(s.upgrade, EncodeProgress));
  b.Scalar("last_upgrade", Opt(s.last_upgrade, EncodeResult));
  b.Scalar("stopping", Opt(s.stopping, [](StopKind k) { return Name(kStopKinds, k); }));
  b.Scalar("finished", Bool(s.finished));
  b.Scalar("exit_code", Int(s.exit_code));
  b.Scalar("watchdog_timeouts", Int(s.watchdog_timeouts));
}

std::string EncodeListener(const MasterState::Listener& l) {
  return Flow()
      .Add("spec", EncodeBind(l.spec))
      .Add("fd", Int(l.fd))
      .Add("bound", Str(l.bound))
      .Add("owns_path", Bool(l.owns_path))
      .Add("path_dev", U64(l.path_dev))
      .Add("path_ino", U64(l.path_ino))
      .Done();
}

std::string EncodeClient(const MasterState::Client& c) {
  const Peer& p = c.peer;
  return Flow()
      .Add("fd", Int(c.fd))
      .Add("peer", Flow()
                       .Add("pid", Int(p.pid))
                       .Add("uid", Int(p.uid))
                       .Add("gid", Int(p.gid))
                       .Add("lineage", Seq(Each(p.lineage, [](Pid pid) { return Int(pid); })))
                       .Add("bound_worker", Opt(p.bound_worker, [](Pid pid) { return Int(pid); }))
                       .Done())
      .Add("pending_input", Str(c.pending_input))
      .Add("upgrade_id", Opt(c.upgrade_id, [](const wire::Id& id) {
             return Flow().Add("kind", Name(kIdKinds, id.kind)).Add("text", Str(id.text)).Done();
           }))
      .Done();
}

// ---------------------------------------------------------------------------------------
// Decoding (errors are thrown as Bad, with the key path, and become a Result at DecodeState)

BindSpec DecodeBind(const In& in) {
  MapIn m(in);
  BindSpec b;
  b.text = String(m.Get("text"));
  b.family = Enum(m.Get("family"), kFamilies);
  b.host = String(m.Get("host"));
  b.port = static_cast<int>(Integer(m.Get("port"), 0, 65535));
  b.path = String(m.Get("path"));
  b.reuseaddr = Boolean(m.Get("reuseaddr"));
  b.nonblock = Boolean(m.Get("nonblock"));
  b.reuseport = Boolean(m.Get("reuseport"));
  m.Done();
  return b;
}

AckMode DecodeAckMode(const In& in) {
  MapIn m(in);
  AckMode a;
  a.kind = Enum(m.Get("kind"), kAckKinds);
  a.timer_seconds = Double(m.Get("timer_seconds"));
  m.Done();
  return a;
}

Options DecodeOptions(const In& in) {
  MapIn m(in);
  Options o;
  o.number = I32(m.Get("number"));
  o.binds = List(m.Get("binds"), DecodeBind);
  o.command_name = String(m.Get("command_name"));
  o.socket_path = String(m.Get("socket_path"));
  o.pidfile = String(m.Get("pidfile"));
  o.lockfile = String(m.Get("lockfile"));
  o.kill_children_on_exit = Boolean(m.Get("kill_children_on_exit"));
  o.backlog = I32(m.Get("backlog"));
  o.ack_mode = DecodeAckMode(m.Get("ack_mode"));
  o.verbosity = I32(m.Get("verbosity"));
  o.seconds = Double(m.Get("seconds"));
  o.signal_timeout = Opt(m.Get("signal_timeout"), Double);
  o.drop_env_vars = List(m.Get("drop_env_vars"), String);
  {
    MapIn n(m.Get("nice"));
    o.nice.master = Opt(n.Get("master"), I32);
    o.nice.worker = Opt(n.Get("worker"), I32);
    o.nice.renice_cmd = String(n.Get("renice_cmd"));
    n.Done();
  }
  o.command_socket_as_fd = Boolean(m.Get("command_socket_as_fd"));
  o.control_allow_uids = List(m.Get("control_allow_uids"), String);
  o.control_allow_gids = List(m.Get("control_allow_gids"), String);
  o.command = List(m.Get("command"), String);
  o.reexec_as = List(m.Get("reexec_as"), String);
  o.subreaper = Boolean(m.Get("subreaper"));
  o.worker_watchdog = Opt(m.Get("worker_watchdog"), Double);
  o.max_unacked = Opt(m.Get("max_unacked"), I32);
  o.max_upgrade_additional = Opt(m.Get("max_upgrade_additional"), I32);
  o.ack_timeout = Double(m.Get("ack_timeout"));
  o.upgrade_timeout = Double(m.Get("upgrade_timeout"));
  o.upgrade_max_failures = I32(m.Get("upgrade_max_failures"));
  o.canary = Boolean(m.Get("canary"));
  o.drain_signal = Enum(m.Get("drain_signal"), kSignals);
  if (m.Has("log_format")) o.log_format = Enum(m.Get("log_format"), kLogFormats);
  if (m.Has("metrics_listen")) o.metrics_listen = String(m.Get("metrics_listen"));
  m.Done();
  return o;
}

SupervisorConfig DecodeConfig(const In& in) {
  MapIn m(in);
  SupervisorConfig c;
  c.target = I32(m.Get("target"));
  c.ack_mode = DecodeAckMode(m.Get("ack_mode"));
  c.backoff_base = Nanos(m.Get("backoff_base"));
  c.backoff_cap = Nanos(m.Get("backoff_cap"));
  c.signal_timeout = Opt(m.Get("signal_timeout"), Nanos);
  c.drain_signal = Enum(m.Get("drain_signal"), kSignals);
  c.kill_children_on_exit = Boolean(m.Get("kill_children_on_exit"));
  c.jitter_seed = Unsigned(m.Get("jitter_seed"));
  c.jitter = Double(m.Get("jitter"));
  c.worker_watchdog = Opt(m.Get("worker_watchdog"), Nanos);
  {
    MapIn u(m.Get("upgrade"));
    UpgradePolicy& p = c.upgrade;
    p.max_unacked = I32(u.Get("max_unacked"));
    p.max_additional = Opt(u.Get("max_additional"), I32);
    p.canary = Boolean(u.Get("canary"));
    p.ack_timeout = Opt(u.Get("ack_timeout"), Nanos);
    p.upgrade_timeout = Opt(u.Get("upgrade_timeout"), Nanos);
    p.max_failures = I32(u.Get("max_failures"));
    u.Done();
  }
  c.rollback_kill_after = Nanos(m.Get("rollback_kill_after"));
  m.Done();
  return c;
}

Worker DecodeWorker(const In& in) {
  MapIn m(in);
  Worker w;
  w.pid = I32(m.Get("pid"));
  w.slot = I32(m.Get("slot"));
  w.index = I32(m.Get("index"));
  w.generation = I32(m.Get("generation"));
  w.spawned_at = Nanos(m.Get("spawned_at"));
  w.ready_at = Opt(m.Get("ready_at"), Nanos);
  w.state = Enum(m.Get("state"), kWorkerStates);
  w.signaled_at = Opt(m.Get("signaled_at"), Nanos);
  w.kill_at = Opt(m.Get("kill_at"), Nanos);
  w.killed = Boolean(m.Get("killed"));
  w.pinged_at = Opt(m.Get("pinged_at"), Nanos);
  w.notify_status = String(m.Get("notify_status"));
  w.watchdog_at = Opt(m.Get("watchdog_at"), Nanos);
  m.Done();
  return w;
}

ExitStatus DecodeExit(const In& in) {
  MapIn m(in);
  ExitStatus e;
  e.signaled = Boolean(m.Get("signaled"));
  e.code = I32(m.Get("code"));
  m.Done();
  return e;
}

Slot DecodeSlot(const In& in) {
  MapIn m(in);
  Slot s;
  s.pid = Opt(m.Get("pid"), I32);
  s.starts = I32(m.Get("starts"));
  s.restarts = I32(m.Get("restarts"));
  s.consecutive_failures = I32(m.Get("consecutive_failures"));
  s.respawn_at = Opt(m.Get("respawn_at"), Nanos);
  s.last_exit = Opt(m.Get("last_exit"), DecodeExit);
  m.Done();
  return s;
}

UpgradeProgress DecodeProgress(const In& in) {
  MapIn m(in);
  UpgradeProgress u;
  u.strategy = Enum(m.Get("strategy"), kStrategies);
  u.from_generation = I32(m.Get("from_generation"));
  u.to_generation = I32(m.Get("to_generation"));
  u.started_at = Nanos(m.Get("started_at"));
  u.failures = I32(m.Get("failures"));
  u.last_failure = String(m.Get("last_failure"));
  u.old_at_start = I32(m.Get("old_at_start"));
  u.reported_ready = I32(m.Get("reported_ready"));
  u.reported_drained = I32(m.Get("reported_drained"));
  m.Done();
  return u;
}

UpgradeResult DecodeResult(const In& in) {
  MapIn m(in);
  UpgradeResult r;
  r.ok = Boolean(m.Get("ok"));
  r.generation = I32(m.Get("generation"));
  r.reason = String(m.Get("reason"));
  r.finished_at = Nanos(m.Get("finished_at"));
  m.Done();
  return r;
}

std::mt19937_64 DecodeRng(const In& in) {
  const std::string text = String(in);
  std::istringstream stream(text);
  stream.imbue(std::locale::classic());
  std::mt19937_64 rng;
  stream >> rng;
  // Only what operator<< writes: the same text back, so a value has one encoding.
  if (stream.fail() || RngText(rng) != text) Fail(in, "not a std::mt19937_64 state");
  return rng;
}

SupervisorSnapshot DecodeSupervisor(const In& in) {
  MapIn m(in);
  SupervisorSnapshot s;
  s.config = DecodeConfig(m.Get("config"));
  s.rng = DecodeRng(m.Get("rng"));
  s.workers = List(m.Get("workers"), DecodeWorker);
  s.slots = List(m.Get("slots"), DecodeSlot);
  s.generation = I32(m.Get("generation"));
  s.next_generation = I32(m.Get("next_generation"));
  s.upgrade = Opt(m.Get("upgrade"), DecodeProgress);
  s.last_upgrade = Opt(m.Get("last_upgrade"), DecodeResult);
  s.stopping = Opt(m.Get("stopping"), [](const In& k) { return Enum(k, kStopKinds); });
  s.finished = Boolean(m.Get("finished"));
  s.exit_code = I32(m.Get("exit_code"));
  s.watchdog_timeouts = I32(m.Get("watchdog_timeouts"));
  m.Done();
  return s;
}

MasterState::Listener DecodeListener(const In& in) {
  MapIn m(in);
  MasterState::Listener l;
  l.spec = DecodeBind(m.Get("spec"));
  l.fd = I32(m.Get("fd"));
  l.bound = String(m.Get("bound"));
  l.owns_path = Boolean(m.Get("owns_path"));
  l.path_dev = Unsigned(m.Get("path_dev"));
  l.path_ino = Unsigned(m.Get("path_ino"));
  m.Done();
  return l;
}

wire::Id DecodeId(const In& in) {
  MapIn m(in);
  wire::Id id;
  id.kind = Enum(m.Get("kind"), kIdKinds);
  id.text = String(m.Get("text"));
  m.Done();
  return id;
}

Peer DecodePeer(const In& in) {
  MapIn m(in);
  Peer p;
  constexpr long long kMaxId = std::numeric_limits<int>::max();
  const auto pid = [](const In& p_in) { return static_cast<Pid>(Integer(p_in, 1, kMaxId)); };
  p.pid = static_cast<Pid>(Integer(m.Get("pid"), 0, kMaxId));  // 0: unknown
  p.uid = static_cast<int>(Integer(m.Get("uid"), -1, kMaxId));
  p.gid = static_cast<int>(Integer(m.Get("gid"), -1, kMaxId));
  p.lineage = List(m.Get("lineage"), pid);
  p.bound_worker = Opt(m.Get("bound_worker"), pid);
  m.Done();
  return p;
}

std::string EncodeNotifySocket(const MasterState::NotifySocket& n) {
  return Flow().Add("worker", Int(n.worker)).Add("fd", Int(n.fd)).Done();
}

MasterState::NotifySocket DecodeNotifySocket(const In& in) {
  MapIn m(in);
  MasterState::NotifySocket n;
  n.worker = I32(m.Get("worker"));
  n.fd = I32(m.Get("fd"));
  m.Done();
  return n;
}

MasterState::Client DecodeClient(const In& in) {
  MapIn m(in);
  MasterState::Client c;
  c.fd = I32(m.Get("fd"));
  c.peer = DecodePeer(m.Get("peer"));
  c.pending_input = String(m.Get("pending_input"));
  c.upgrade_id = Opt(m.Get("upgrade_id"), DecodeId);
  m.Done();
  return c;
}

// Every fd the new master inherits, once each (CarriedFds); then the owners of -g channels and
// notify sockets.
void CheckFds(const MasterState& s) {
  std::map<int, std::string> seen;
  for (const CarriedFd& c : CarriedFds(s)) {
    if (c.fd == -1 && c.optional) continue;
    if (c.fd < 0) throw Bad(c.where + ": " + std::to_string(c.fd) + " is not an fd");
    const auto [it, inserted] = seen.emplace(c.fd, c.where);
    if (!inserted) throw Bad(c.where + ": fd " + std::to_string(c.fd) + " is also " + it->second);
  }
  std::map<Pid, size_t> channel_of;
  for (size_t i = 0; i < s.clients.size(); ++i) {
    const std::string at = "clients[" + std::to_string(i) + "]";
    // A -g channel is the one place a worker's acks count: two would be ambiguous.
    if (const std::optional<Pid> worker = s.clients[i].peer.bound_worker) {
      if (!channel_of.emplace(*worker, i).second) {
        throw Bad(at + ".peer.bound_worker: worker " + std::to_string(*worker) +
                  " has another channel");
      }
    }
  }
  std::map<Pid, size_t> notify_of;
  for (size_t i = 0; i < s.notify_sockets.size(); ++i) {
    const std::string at = "notify_sockets[" + std::to_string(i) + "]";
    if (s.notify_sockets[i].worker <= 0) {
      throw Bad(at + ".worker: " + std::to_string(s.notify_sockets[i].worker) + " is not a pid");
    }
    if (!notify_of.emplace(s.notify_sockets[i].worker, i).second) {
      throw Bad(at + ".worker: worker " + std::to_string(s.notify_sockets[i].worker) +
                " has another notify socket");
    }
  }
}

MasterState DecodeOrThrow(std::string_view bytes, const StateLimits& limits) {
  const Node root_node = Parse(bytes, limits);
  const In root{root_node};
  if (root_node.kind != Node::Kind::kMap) {
    throw Bad("not an einhorn-cpp state (not a YAML mapping)");
  }
  MapIn top(root);
  if (!top.Has("format")) throw Bad("not an einhorn-cpp state (no format key)");
  const In format = top.Get("format");
  if (format.node.kind != Node::Kind::kScalar || format.node.scalar != kStateFormat) {
    throw Bad("not an einhorn-cpp state (format: " +
              (format.node.kind == Node::Kind::kScalar ? format.node.scalar.substr(0, 64)
                                                       : std::string("not a string")) +
              ")");
  }
  (void)String(format);
  const In version_in = top.Get("version");
  const int version = I32(version_in);
  if (version > kStateVersion) {
    throw Bad("state version " + std::to_string(version) +
              " is newer than this binary understands (" + std::to_string(kStateVersion) + ")");
  }
  if (version < 1) Fail(version_in, std::to_string(version) + " is not a state version");
  // The key written last: without it the state was cut short (a short write, a full disk).
  if (!top.Has("end")) throw Bad("the state is truncated (it does not end with end: true)");
  const In end = top.Get("end");
  if (!Boolean(end)) Fail(end, "expected true");

  MasterState s;
  s.format_version = version;
  s.written_by = String(top.Get("written_by"));
  s.options = DecodeOptions(top.Get("options"));
  s.command_path = String(top.Get("command_path"));
  {
    const In self_path = top.Get("self_path");
    s.self_path = String(self_path);
    // A relative path would resolve against whatever the cwd is at the next reload.
    if (!s.self_path.empty() && s.self_path.front() != '/') {
      Fail(self_path, "not an absolute path");
    }
  }
  s.supervisor = DecodeSupervisor(top.Get("supervisor"));
  s.verbosity = I32(top.Get("verbosity"));
  s.listeners = List(top.Get("listeners"), DecodeListener);
  s.control = DecodeListener(top.Get("control"));
  s.clients = List(top.Get("clients"), DecodeClient);
  s.notify_sockets = List(top.Get("notify_sockets"), DecodeNotifySocket);
  s.lock_fd = I32(top.Get("lock_fd"));
  s.startup_env = List(top.Get("startup_env"), String);
  s.then_upgrades =
      List(top.Get("then_upgrades"), [](const In& k) { return Enum(k, kStrategies); });
  s.reloads = static_cast<int>(Integer(top.Get("reloads"), 0, std::numeric_limits<int>::max()));
  // Optional: a state written before --config existed has neither.
  if (top.Has("config_path")) {
    const In config_path = top.Get("config_path");
    s.config_path = String(config_path);
    if (!s.config_path.empty() && s.config_path.front() != '/') {
      Fail(config_path, "not an absolute path");
    }
  }
  if (top.Has("argv")) s.argv = List(top.Get("argv"), String);
  // Optional: a state written before events and metrics existed has neither.
  if (top.Has("telemetry")) s.telemetry = DecodeTelemetry(top.Get("telemetry"));
  if (top.Has("metrics")) s.metrics = DecodeListener(top.Get("metrics"));
  top.Done();

  if (Status st = Validate(s.options); !st.ok()) throw Bad("options: " + st.message());
  if (Status st = CheckSnapshot(s.supervisor); !st.ok()) {
    throw Bad("supervisor." + st.message());
  }
  CheckFds(s);
  return s;
}

}  // namespace

std::vector<CarriedFd> CarriedFds(const MasterState& s) {
  std::vector<CarriedFd> fds;
  const auto indexed = [](const char* field, size_t i) {
    return std::string(field) + "[" + std::to_string(i) + "]";
  };
  for (size_t i = 0; i < s.listeners.size(); ++i) {
    fds.push_back({s.listeners[i].fd, indexed("listeners", i) + ".fd", false});
  }
  fds.push_back({s.control.fd, "control.fd", true});
  for (size_t i = 0; i < s.clients.size(); ++i) {
    fds.push_back({s.clients[i].fd, indexed("clients", i) + ".fd", false});
  }
  for (size_t i = 0; i < s.notify_sockets.size(); ++i) {
    fds.push_back({s.notify_sockets[i].fd, indexed("notify_sockets", i) + ".fd", false});
  }
  fds.push_back({s.lock_fd, "lock_fd", true});
  fds.push_back({s.metrics.fd, "metrics.fd", true});
  return fds;
}

std::string EncodeState(const MasterState& s) {
  std::string out;
  Block b(&out, 0);
  b.Scalar("format", Str(kStateFormat));
  b.Scalar("version", Int(s.format_version));
  b.Scalar("written_by", Str(s.written_by));
  EncodeOptions(s.options, b.Map("options"));
  b.Scalar("command_path", Str(s.command_path));
  b.Scalar("self_path", Str(s.self_path));
  EncodeSupervisor(s.supervisor, b.Map("supervisor"));
  b.Scalar("verbosity", Int(s.verbosity));
  b.List("listeners", Each(s.listeners, EncodeListener));
  b.Scalar("control", EncodeListener(s.control));
  b.List("clients", Each(s.clients, EncodeClient));
  b.List("notify_sockets", Each(s.notify_sockets, EncodeNotifySocket));
  b.Scalar("lock_fd", Int(s.lock_fd));
  b.List("startup_env", Each(s.startup_env, Str));
  b.Scalar("then_upgrades",
           Seq(Each(s.then_upgrades, [](UpgradeStrategy k) { return Name(kStrategies, k); })));
  b.Scalar("reloads", Int(s.reloads));
  if (!s.config_path.empty()) b.Scalar("config_path", Str(s.config_path));
  if (!s.argv.empty()) b.List("argv", Each(s.argv, Str));
  if (s.telemetry != Telemetry::Snapshot{}) EncodeTelemetry(s.telemetry, b.Map("telemetry"));
  if (s.metrics.fd >= 0) b.Scalar("metrics", EncodeListener(s.metrics));
  b.Scalar("end", "true");
  return out;
}

Result<MasterState> DecodeState(std::string_view bytes, const StateLimits& limits) {
  try {
    return DecodeOrThrow(bytes, limits);
  } catch (const Bad& e) {
    return Result<MasterState>::Error(e.what());
  } catch (const YAML::DeepRecursion& e) {
    return Result<MasterState>::Error(std::string("not a state written by einhorn-cpp: ") +
                                      e.what());
  } catch (const YAML::Exception& e) {
    return Result<MasterState>::Error(std::string("not valid YAML: ") + e.what());
  } catch (const std::exception& e) {
    return Result<MasterState>::Error(std::string("cannot read the state: ") + e.what());
  }
}

}  // namespace einhorn::core
