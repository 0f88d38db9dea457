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
#include <type_traits>
#include <variant>

#include "core/option_table.h"
#include "core/state_format.h"
#include "core/state_stream.h"
#include "core/telemetry_state.h"

namespace einhorn::core {
namespace {

// This file is the format's only user; its helpers read best unqualified.
using namespace state_format;  // NOLINT(build/namespaces)

// ---------------------------------------------------------------------------------------
// Codecs: how one field's value is written and read back. Each has Write(value) -> text (one
// scalar or flow collection) and Read(in, &value).

struct I32C {
  std::string Write(long long v) const { return Int(v); }
  void Read(const In& in, int* v) const { *v = I32(in); }
};
// An int within [lo, hi].
struct RangeC {
  long long lo;
  long long hi;
  std::string Write(long long v) const { return Int(v); }
  void Read(const In& in, int* v) const { *v = static_cast<int>(Integer(in, lo, hi)); }
};
struct I64C {
  std::string Write(std::int64_t v) const { return Int(v); }
  void Read(const In& in, std::int64_t* v) const {
    *v = static_cast<std::int64_t>(Integer(in, std::numeric_limits<long long>::min(),
                                           std::numeric_limits<long long>::max()));
  }
};
struct U64C {
  std::string Write(std::uint64_t v) const { return U64(v); }
  void Read(const In& in, std::uint64_t* v) const { *v = Unsigned(in); }
};
struct NsC {
  std::string Write(Duration v) const { return Ns(v); }
  void Read(const In& in, Duration* v) const { *v = Nanos(in); }
};
struct BoolC {
  std::string Write(bool v) const { return Bool(v); }
  void Read(const In& in, bool* v) const { *v = Boolean(in); }
};
struct DblC {
  std::string Write(double v) const { return Dbl(v); }
  void Read(const In& in, double* v) const { *v = Double(in); }
};
struct StrC {
  std::string Write(const std::string& v) const { return Str(v); }
  void Read(const In& in, std::string* v) const { *v = String(in); }
};
// A path that is empty or absolute: a relative one would resolve against whatever the cwd is
// at the next reload.
struct AbsPathC {
  std::string Write(const std::string& v) const { return Str(v); }
  void Read(const In& in, std::string* v) const {
    *v = String(in);
    if (!v->empty() && v->front() != '/') Fail(in, "not an absolute path");
  }
};
template <typename E>
struct EnumC {
  const Names<E>& names;
  std::string Write(E v) const { return Name(names, v); }
  void Read(const In& in, E* v) const { *v = Enum(in, names); }
};
// Signals: the one table of every signal name (core::kSignalNames), a `die SIG` may be recorded.
struct SignalC {
  std::string Write(Signal v) const { return Name(kSignalNames, v); }
  void Read(const In& in, Signal* v) const { *v = Enum(in, kSignalNames); }
};
template <typename C>
struct OptC {
  C item;
  template <typename T>
  std::string Write(const std::optional<T>& v) const {
    return v ? item.Write(*v) : "null";
  }
  template <typename T>
  void Read(const In& in, std::optional<T>* v) const {
    v->reset();
    if (in.node.kind == Node::Kind::kNull) return;
    item.Read(in, &v->emplace());
  }
};
template <typename C>
std::vector<std::string> WriteEach(const C& item, const auto& items) {
  return Each(items, [&item](const auto& x) { return item.Write(x); });
}
template <typename C, typename T>
void ReadEach(const C& item, const In& in, std::vector<T>* v) {
  *v = List(in, [&item](const In& x) {
    T t{};
    item.Read(x, &t);
    return t;
  });
}
// A flow sequence, [a, b].
template <typename C>
struct SeqC {
  C item;
  template <typename T>
  std::string Write(const std::vector<T>& v) const {
    return Seq(WriteEach(item, v));
  }
  template <typename T>
  void Read(const In& in, std::vector<T>* v) const {
    ReadEach(item, in, v);
  }
};
// The generator's state as operator<< writes it.
struct RngC {
  std::string Write(const std::mt19937_64& v) const;
  void Read(const In& in, std::mt19937_64* v) const;
};

// A struct's fields, once: Schema<T>::Visit(v, x) calls, for each field in the order of the
// format, v.Field (a scalar or flow value), v.List (a block list) or v.Map (a block mapping),
// with the key and the codec; the *If forms name a key written only when `written` (and read
// only when present). The visitors below encode, decode and count with it. A field added to
// one of these structs goes in its Visit, and its count in StateSchemaCoverage.
template <typename T>
struct Schema;

// A struct as a flow mapping ({key: value, ...}), by its Schema.
struct RecC {
  static constexpr bool kRecord = true;  // the canonical reader streams it (state_stream.h)
  template <typename V, typename T>
  static void Stream(V& v, T& x) {
    Schema<T>::Visit(v, x);
  }
  template <typename T>
  std::string Write(const T& v) const;
  template <typename T>
  void Read(const In& in, T* v) const;
};
// A struct as a block mapping, by its Schema.
struct SectionC {
  static constexpr bool kSection = true;
  template <typename V, typename T>
  static void Stream(V& v, T& x) {
    Schema<T>::Visit(v, x);
  }
  template <typename T>
  void Write(const T& v, Block b) const;
  template <typename T>
  void Read(const In& in, T* v) const {
    RecC{}.Read(in, v);
  }
};
struct TelemetryC {
  static constexpr bool kSection = true;
  static void Stream(BlockIn& v, Telemetry::Snapshot& x) { x = StreamTelemetry(v); }
  void Write(const Telemetry::Snapshot& v, Block b) const { EncodeTelemetry(v, b); }
  void Read(const In& in, Telemetry::Snapshot* v) const { *v = DecodeTelemetry(in); }
};

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
const Names<WorkerOutput> kWorkerOutputs = {{WorkerOutput::kInherit, "inherit"},
                                             {WorkerOutput::kPrefix, "prefix"},
                                             {WorkerOutput::kJson, "json"}};
const Names<MemoryMeasure> kMemoryMeasures = {{MemoryMeasure::kRss, "rss"},
                                              {MemoryMeasure::kPss, "pss"}};
const Names<ZygoteState> kZygoteStates = {{ZygoteState::kLoading, "loading"},
                                          {ZygoteState::kReady, "ready"},
                                          {ZygoteState::kClosing, "closing"}};
const Names<OutputStream> kOutputStreams = {{OutputStream::kStdout, "stdout"},
                                            {OutputStream::kStderr, "stderr"}};
const Names<StopKind> kStopKinds = {
    {StopKind::kDrain, "drain"}, {StopKind::kTerminate, "terminate"}, {StopKind::kQuit, "quit"}};
const Names<RecycleCause> kRecycleCauseNames = {{RecycleCause::kMemory, "memory"},
                                                 {RecycleCause::kMemoryHard, "memory_hard"},
                                                 {RecycleCause::kAge, "age"},
                                                 {RecycleCause::kWorker, "worker"},
                                                 {RecycleCause::kOperator, "operator"}};
const Names<StopStep> kStopSteps = {
    {StopStep::kDrain, "drain"}, {StopStep::kTerm, "term"}, {StopStep::kKill, "kill"}};

std::string RngText(const std::mt19937_64& rng) {
  std::ostringstream out;
  out.imbue(std::locale::classic());
  out << rng;
  return out.str();
}

std::string RngC::Write(const std::mt19937_64& v) const { return Str(RngText(v)); }

void RngC::Read(const In& in, std::mt19937_64* v) const {
  const std::string text = String(in);
  std::istringstream stream(text);
  stream.imbue(std::locale::classic());
  std::mt19937_64 rng;
  stream >> rng;
  // Only what operator<< writes: the same text back, so a value has one encoding.
  if (stream.fail() || RngText(rng) != text) Fail(in, "not a std::mt19937_64 state");
  *v = rng;
}

// ---------------------------------------------------------------------------------------
// The schema

template <>
struct Schema<BindSpec> {
  template <typename V, typename T>
  static void Visit(V& v, T& b) {
    v.Field("text", b.text, StrC{});
    v.Field("family", b.family, EnumC<BindSpec::Family>{kFamilies});
    v.Field("host", b.host, StrC{});
    v.Field("port", b.port, RangeC{0, 65535});
    v.Field("path", b.path, StrC{});
    v.Field("reuseaddr", b.reuseaddr, BoolC{});
    v.Field("nonblock", b.nonblock, BoolC{});
    v.Field("reuseport", b.reuseport, BoolC{});
  }
};

template <>
struct Schema<AckMode> {
  template <typename V, typename T>
  static void Visit(V& v, T& a) {
    v.Field("kind", a.kind, EnumC<AckMode::Kind>{kAckKinds});
    v.Field("timer_seconds", a.timer_seconds, DblC{});
  }
};

template <>
struct Schema<NiceSpec> {
  template <typename V, typename T>
  static void Visit(V& v, T& n) {
    v.Field("master", n.master, OptC<I32C>{});
    v.Field("worker", n.worker, OptC<I32C>{});
    v.Field("renice_cmd", n.renice_cmd, StrC{});
  }
};

template <>
struct Schema<MemoryLimit> {
  template <typename V, typename T>
  static void Visit(V& v, T& m) {
    v.Field("soft", m.soft, DblC{});
    v.Field("hard", m.hard, DblC{});
  }
};

// A setting's codec, by the type of its Options member (option_table.h's Field).
I32C CodecOf(int*) { return {}; }
DblC CodecOf(double*) { return {}; }
BoolC CodecOf(bool*) { return {}; }
StrC CodecOf(std::string*) { return {}; }
OptC<I32C> CodecOf(std::optional<int>*) { return {}; }
OptC<DblC> CodecOf(std::optional<double>*) { return {}; }
RecC CodecOf(BindSpec*) { return {}; }
RecC CodecOf(AckMode*) { return {}; }
RecC CodecOf(NiceSpec*) { return {}; }
SignalC CodecOf(Signal*) { return {}; }
EnumC<LogFormat> CodecOf(LogFormat*) { return {kLogFormats}; }
OptC<EnumC<WorkerOutput>> CodecOf(std::optional<WorkerOutput>*) { return {{kWorkerOutputs}}; }
RecC CodecOf(MemoryLimit*) { return {}; }
EnumC<MemoryMeasure> CodecOf(MemoryMeasure*) { return {kMemoryMeasures}; }

template <typename T>
constexpr bool kIsVector = false;
template <typename T>
constexpr bool kIsVector<std::vector<T>> = true;

// The settings: one entry each in the table of settings (core/option_table.h), in the state's
// own order (state_pos); a list is a block list. An entry with state_if_set is written only
// when it is not the default, so that older binaries read the states without it.
template <>
struct Schema<Options> {
  template <typename V, typename T>
  static void Visit(V& v, T& o) {
    static const Options kDefaults{};
    for (const OptionDef* def : OptionsInStateOrder()) {
      std::visit([&](auto m) { VisitSetting(v, *def, o.*m, kDefaults.*m); }, def->field);
    }
  }

  template <typename V, typename X, typename D>
  static void VisitSetting(V& v, const OptionDef& def, X& x, const D& initial) {
    using Value = std::remove_cvref_t<X>;
    const std::string_view key = def.StateKey();
    if constexpr (kIsVector<Value>) {
      const auto codec = CodecOf(static_cast<typename Value::value_type*>(nullptr));
      if (def.state_if_set) {
        v.ListIf(x != initial, key, x, codec);
      } else {
        v.List(key, x, codec);
      }
    } else {
      const auto codec = CodecOf(static_cast<Value*>(nullptr));
      if (def.state_if_set) {
        v.FieldIf(x != initial, key, x, codec);
      } else {
        v.Field(key, x, codec);
      }
    }
  }
};

template <>
struct Schema<UpgradePolicy> {
  template <typename V, typename T>
  static void Visit(V& v, T& p) {
    v.Field("max_unacked", p.max_unacked, I32C{});
    // Written only when set (the default since --max-unacked scales with the pool), so a
    // state with an explicit value reads in older binaries as before.
    v.FieldIf(p.scale_unacked, "scale_unacked", p.scale_unacked, BoolC{});
    v.Field("max_additional", p.max_additional, OptC<I32C>{});
    v.Field("canary", p.canary, BoolC{});
    v.Field("ack_timeout", p.ack_timeout, OptC<NsC>{});
    v.Field("upgrade_timeout", p.upgrade_timeout, OptC<NsC>{});
    v.Field("max_failures", p.max_failures, I32C{});
  }
};

template <>
struct Schema<SupervisorConfig> {
  template <typename V, typename T>
  static void Visit(V& v, T& c) {
    v.Field("target", c.target, I32C{});
    v.Field("ack_mode", c.ack_mode, RecC{});
    v.Field("backoff_base", c.backoff_base, NsC{});
    v.Field("backoff_cap", c.backoff_cap, NsC{});
    v.Field("signal_timeout", c.signal_timeout, OptC<NsC>{});
    v.Field("drain_signal", c.drain_signal, SignalC{});
    v.Field("kill_children_on_exit", c.kill_children_on_exit, BoolC{});
    v.Field("jitter_seed", c.jitter_seed, U64C{});
    v.Field("jitter", c.jitter, DblC{});
    v.Field("worker_watchdog", c.worker_watchdog, OptC<NsC>{});
    // Written only when set: older binaries read states without them.
    v.FieldIf(c.max_worker_lifetime.has_value(), "max_worker_lifetime", c.max_worker_lifetime,
              OptC<NsC>{});
    v.FieldIf(c.lifetime_jitter != SupervisorConfig{}.lifetime_jitter, "lifetime_jitter",
              c.lifetime_jitter, DblC{});
    v.Field("upgrade", c.upgrade, RecC{});
    v.Field("rollback_kill_after", c.rollback_kill_after, NsC{});
  }
};

template <>
struct Schema<Worker> {
  template <typename V, typename T>
  static void Visit(V& v, T& w) {
    v.Field("pid", w.pid, I32C{});
    v.Field("slot", w.slot, I32C{});
    v.Field("index", w.index, I32C{});
    v.Field("generation", w.generation, I32C{});
    v.Field("spawned_at", w.spawned_at, NsC{});
    v.Field("ready_at", w.ready_at, OptC<NsC>{});
    v.Field("state", w.state, EnumC<WorkerState>{kWorkerStates});
    v.Field("signaled_at", w.signaled_at, OptC<NsC>{});
    v.Field("kill_at", w.kill_at, OptC<NsC>{});
    v.Field("killed", w.killed, BoolC{});
    v.Field("pinged_at", w.pinged_at, OptC<NsC>{});
    // Absent in the state of images older than these fields: never pinged since, no signal known.
    v.FieldIf(true, "pinged_wall_ns", w.pinged_wall_ns, OptC<I64C>{});
    v.FieldIf(true, "pinged_request_id", w.pinged_request_id, OptC<RecC>{});
    v.FieldIf(true, "signals_sent", w.signals_sent, SeqC<SignalC>{});
    v.Field("notify_status", w.notify_status, StrC{});
    v.Field("watchdog_at", w.watchdog_at, OptC<NsC>{});
    // Written only when set (older binaries read states without it); a draining worker of an
    // older state gets its signaled_at (DecodeOrThrow).
    v.FieldIf(w.draining_since.has_value(), "draining_since", w.draining_since, OptC<NsC>{});
    // Written only when set, as draining_since.
    v.FieldIf(w.recycle.has_value(), "recycle", w.recycle, OptC<EnumC<RecycleCause>>{{kRecycleCauseNames}});
    v.FieldIf(w.recycle_asked_at.has_value(), "recycle_asked_at", w.recycle_asked_at, OptC<NsC>{});
    v.FieldIf(w.recycle_due.has_value(), "recycle_due", w.recycle_due, OptC<NsC>{});
  }
};

template <>
struct Schema<ExitStatus> {
  template <typename V, typename T>
  static void Visit(V& v, T& e) {
    v.Field("signaled", e.signaled, BoolC{});
    v.Field("code", e.code, I32C{});
  }
};

template <>
struct Schema<Slot> {
  template <typename V, typename T>
  static void Visit(V& v, T& s) {
    v.Field("pid", s.pid, OptC<I32C>{});
    v.Field("starts", s.starts, I32C{});
    v.Field("restarts", s.restarts, I32C{});
    v.Field("consecutive_failures", s.consecutive_failures, I32C{});
    v.Field("respawn_at", s.respawn_at, OptC<NsC>{});
    v.Field("last_exit", s.last_exit, OptC<RecC>{});
  }
};

template <>
struct Schema<UpgradeProgress> {
  template <typename V, typename T>
  static void Visit(V& v, T& u) {
    v.Field("strategy", u.strategy, EnumC<UpgradeStrategy>{kStrategies});
    v.Field("from_generation", u.from_generation, I32C{});
    v.Field("to_generation", u.to_generation, I32C{});
    v.Field("started_at", u.started_at, NsC{});
    v.Field("failures", u.failures, I32C{});
    v.Field("last_failure", u.last_failure, StrC{});
    v.Field("old_at_start", u.old_at_start, I32C{});
    v.Field("reported_ready", u.reported_ready, I32C{});
    v.Field("reported_drained", u.reported_drained, I32C{});
  }
};

template <>
struct Schema<UpgradeResult> {
  template <typename V, typename T>
  static void Visit(V& v, T& r) {
    v.Field("ok", r.ok, BoolC{});
    v.Field("generation", r.generation, I32C{});
    v.Field("reason", r.reason, StrC{});
    v.Field("finished_at", r.finished_at, NsC{});
  }
};

template <>
struct Schema<SupervisorSnapshot> {
  template <typename V, typename T>
  static void Visit(V& v, T& s) {
    v.Map("config", s.config, SectionC{});
    v.Field("rng", s.rng, RngC{});
    v.List("workers", s.workers, RecC{});
    v.List("slots", s.slots, RecC{});
    v.Field("generation", s.generation, I32C{});
    v.Field("next_generation", s.next_generation, I32C{});
    v.Field("upgrade", s.upgrade, OptC<RecC>{});
    v.Field("last_upgrade", s.last_upgrade, OptC<RecC>{});
    v.Field("stopping", s.stopping, OptC<EnumC<StopKind>>{{kStopKinds}});
    // Written only when set: older binaries read states without them.
    v.FieldIf(s.stop_step.has_value(), "stop_step", s.stop_step,
              OptC<EnumC<StopStep>>{{kStopSteps}});
    v.FieldIf(s.drain_reminder.has_value(), "drain_reminder", s.drain_reminder, OptC<NsC>{});
    v.Field("finished", s.finished, BoolC{});
    v.Field("exit_code", s.exit_code, I32C{});
    v.Field("watchdog_timeouts", s.watchdog_timeouts, I32C{});
    v.FieldIf(!s.recycles.empty(), "recycles", s.recycles, SeqC<I32C>{});
  }
};

template <>
struct Schema<MasterState::Listener> {
  template <typename V, typename T>
  static void Visit(V& v, T& l) {
    v.Field("spec", l.spec, RecC{});
    v.Field("fd", l.fd, I32C{});
    v.Field("bound", l.bound, StrC{});
    v.Field("owns_path", l.owns_path, BoolC{});
    v.Field("path_dev", l.path_dev, U64C{});
    v.Field("path_ino", l.path_ino, U64C{});
  }
};

constexpr long long kMaxId = std::numeric_limits<int>::max();

template <>
struct Schema<Peer> {
  template <typename V, typename T>
  static void Visit(V& v, T& p) {
    v.Field("pid", p.pid, RangeC{0, kMaxId});  // 0: unknown
    v.Field("uid", p.uid, RangeC{-1, kMaxId});
    v.Field("gid", p.gid, RangeC{-1, kMaxId});
    v.Field("lineage", p.lineage, SeqC<RangeC>{{1, kMaxId}});
    v.Field("bound_worker", p.bound_worker, OptC<RangeC>{{1, kMaxId}});
  }
};

template <>
struct Schema<wire::Id> {
  template <typename V, typename T>
  static void Visit(V& v, T& id) {
    v.Field("kind", id.kind, EnumC<wire::Id::Kind>{kIdKinds});
    v.Field("text", id.text, StrC{});
  }
};

template <>
struct Schema<MasterState::Client> {
  template <typename V, typename T>
  static void Visit(V& v, T& c) {
    v.Field("fd", c.fd, I32C{});
    v.Field("peer", c.peer, RecC{});
    v.Field("pending_input", c.pending_input, StrC{});
    v.Field("upgrade_id", c.upgrade_id, OptC<RecC>{});
  }
};

template <>
struct Schema<MasterState::NotifySocket> {
  template <typename V, typename T>
  static void Visit(V& v, T& n) {
    v.Field("worker", n.worker, I32C{});
    v.Field("fd", n.fd, I32C{});
  }
};

template <>
struct Schema<WorkerTag> {
  template <typename V, typename T>
  static void Visit(V& v, T& t) {
    v.Field("pid", t.pid, RangeC{1, kMaxId});
    v.Field("slot", t.slot, RangeC{0, kMaxId});
    v.Field("generation", t.generation, RangeC{0, kMaxId});
    v.Field("stream", t.stream, EnumC<OutputStream>{kOutputStreams});
  }
};

template <>
struct Schema<MasterState::WorkerPipe> {
  template <typename V, typename T>
  static void Visit(V& v, T& w) {
    v.Field("tag", w.tag, RecC{});
    v.Field("fd", w.fd, I32C{});
    v.Field("pending", w.pending, StrC{});
    v.Field("dropping", w.dropping, BoolC{});
  }
};

template <>
struct Schema<Zygote> {
  template <typename V, typename T>
  static void Visit(V& v, T& z) {
    v.Field("pid", z.pid, RangeC{1, kMaxId});
    v.Field("generation", z.generation, RangeC{1, kMaxId});
    v.Field("state", z.state, EnumC<ZygoteState>{kZygoteStates});
    v.Field("started_at", z.started_at, NsC{});
    v.Field("ready_at", z.ready_at, OptC<NsC>{});
    v.Field("closed_at", z.closed_at, OptC<NsC>{});
    v.Field("spawns", z.spawns, RangeC{0, kMaxId});
    v.Field("gates", z.gates, OptC<EnumC<UpgradeStrategy>>{{kStrategies}});
    v.Field("fault", z.fault, StrC{});
  }
};

template <>
struct Schema<MasterState::ZygoteLink> {
  template <typename V, typename T>
  static void Visit(V& v, T& l) {
    v.Field("zygote", l.zygote, RecC{});
    v.Field("fd", l.fd, I32C{});
    v.Field("next_id", l.next_id, I64C{});
  }
};

// After `format` and `version` (format_version), which EncodeState and DecodeOrThrow write and
// check first; before `end`.
template <>
struct Schema<MasterState> {
  template <typename V, typename T>
  static void Visit(V& v, T& s) {
    v.Header(s.format_version);
    v.Field("written_by", s.written_by, StrC{});
    v.Map("options", s.options, SectionC{});
    v.Field("command_path", s.command_path, StrC{});
    v.Field("self_path", s.self_path, AbsPathC{});
    v.Map("supervisor", s.supervisor, SectionC{});
    v.Field("verbosity", s.verbosity, I32C{});
    v.List("listeners", s.listeners, RecC{});
    v.Field("control", s.control, RecC{});
    v.List("clients", s.clients, RecC{});
    v.List("notify_sockets", s.notify_sockets, RecC{});
    v.Field("lock_fd", s.lock_fd, I32C{});
    v.List("startup_env", s.startup_env, StrC{});
    v.Field("then_upgrades", s.then_upgrades, SeqC<EnumC<UpgradeStrategy>>{{kStrategies}});
    v.Field("reloads", s.reloads, RangeC{0, kMaxId});
    // Optional: a state written before --config existed has neither.
    v.FieldIf(!s.config_path.empty(), "config_path", s.config_path, AbsPathC{});
    v.ListIf(!s.argv.empty(), "argv", s.argv, StrC{});
    // Optional: a state written before events and metrics existed has neither.
    v.MapIf(s.telemetry != Telemetry::Snapshot{}, "telemetry", s.telemetry, TelemetryC{});
    v.FieldIf(s.metrics.fd >= 0, "metrics", s.metrics, RecC{});
    // Optional: a state written before --worker-output existed, or without pipes, has none.
    v.ListIf(!s.worker_pipes.empty(), "worker_pipes", s.worker_pipes, RecC{});
    // Optional: --preload only.
    v.ListIf(!s.zygotes.empty(), "zygotes", s.zygotes, RecC{});
    v.FieldIf(s.zygote_failures != 0, "zygote_failures", s.zygote_failures, RangeC{0, kMaxId});
    v.FieldIf(s.zygote_respawn_at.has_value(), "zygote_respawn_at", s.zygote_respawn_at,
              OptC<NsC>{});
    // Optional: only to a binary whose upgrade check offered to take a stand-in.
    v.FieldIf(s.stand_in_fd >= 0, "stand_in_fd", s.stand_in_fd, I32C{});
  }
};

// ---------------------------------------------------------------------------------------
// The visitors

// Writes a block mapping.
class BlockOut {
 public:
  explicit BlockOut(Block b) : b_(b) {}
  void Header(int) {}
  template <typename T, typename C>
  void FieldIf(bool written, std::string_view key, const T& x, const C& c) {
    if (written) b_.Scalar(key, c.Write(x));
  }
  template <typename T, typename C>
  void ListIf(bool written, std::string_view key, const std::vector<T>& x, const C& c) {
    if (written) b_.List(key, WriteEach(c, x));
  }
  template <typename T, typename C>
  void MapIf(bool written, std::string_view key, const T& x, const C& c) {
    if (written) c.Write(x, b_.Map(key));
  }
  template <typename T, typename C>
  void Field(std::string_view key, const T& x, const C& c) {
    FieldIf(true, key, x, c);
  }
  template <typename T, typename C>
  void List(std::string_view key, const T& x, const C& c) {
    ListIf(true, key, x, c);
  }
  template <typename T, typename C>
  void Map(std::string_view key, const T& x, const C& c) {
    MapIf(true, key, x, c);
  }

 private:
  Block b_;
};

// Writes a flow mapping: records hold neither block lists nor block mappings.
class FlowOut {
 public:
  template <typename T, typename C>
  void Field(std::string_view key, const T& x, const C& c) {
    flow_.Add(key, c.Write(x));
  }
  template <typename T, typename C>
  void FieldIf(bool written, std::string_view key, const T& x, const C& c) {
    if (written) Field(key, x, c);
  }
  std::string Done() const { return flow_.Done(); }

 private:
  Flow flow_;
};

// Reads a mapping, block or flow: every key the schema names once (an *If key only when
// present), in the schema's order, so that the first error is the first field's.
class MapReader {
 public:
  explicit MapReader(MapIn& m) : m_(m) {}
  void Header(int) {}
  template <typename T, typename C>
  void FieldIf(bool, std::string_view key, T& x, const C& c) {
    if (m_.Has(key)) Field(key, x, c);
  }
  template <typename T, typename C>
  void ListIf(bool, std::string_view key, T& x, const C& c) {
    if (m_.Has(key)) List(key, x, c);
  }
  template <typename T, typename C>
  void MapIf(bool, std::string_view key, T& x, const C& c) {
    if (m_.Has(key)) Map(key, x, c);
  }
  template <typename T, typename C>
  void Field(std::string_view key, T& x, const C& c) {
    c.Read(m_.Get(key), &x);
  }
  template <typename T, typename C>
  void List(std::string_view key, std::vector<T>& x, const C& c) {
    ReadEach(c, m_.Get(key), &x);
  }
  template <typename T, typename C>
  void Map(std::string_view key, T& x, const C& c) {
    c.Read(m_.Get(key), &x);
  }

 private:
  MapIn& m_;
};

template <typename T>
std::string RecC::Write(const T& v) const {
  FlowOut out;
  Schema<T>::Visit(out, v);
  return out.Done();
}

template <typename T>
void RecC::Read(const In& in, T* v) const {
  MapIn m(in);
  MapReader reader(m);
  *v = T{};
  Schema<T>::Visit(reader, *v);
  m.Done();
}

template <typename T>
void SectionC::Write(const T& v, Block b) const {
  BlockOut out(b);
  Schema<T>::Visit(out, v);
}

// Counts the fields a Schema visits, for StateSchemaCoverage.
struct Counter {
  size_t n = 0;
  void Header(int) { ++n; }
  template <typename... A>
  void Field(A&&...) {
    ++n;
  }
  template <typename... A>
  void List(A&&...) {
    ++n;
  }
  template <typename... A>
  void Map(A&&...) {
    ++n;
  }
  template <typename... A>
  void FieldIf(A&&...) {
    ++n;
  }
  template <typename... A>
  void ListIf(A&&...) {
    ++n;
  }
  template <typename... A>
  void MapIf(A&&...) {
    ++n;
  }
};

// How many members each struct has, by structured binding: a member added to one of them
// breaks the build here until its count is raised, and then state_test's coverage check
// until its Schema visits it.
// clang-format off
size_t Members(const BindSpec& x) { [[maybe_unused]] const auto& [a1, a2, a3, a4, a5, a6, a7, a8] = x; return 8; }
size_t Members(const AckMode& x) { [[maybe_unused]] const auto& [a1, a2] = x; return 2; }
size_t Members(const NiceSpec& x) { [[maybe_unused]] const auto& [a1, a2, a3] = x; return 3; }
size_t Members(const MemoryLimit& x) { [[maybe_unused]] const auto& [a1, a2] = x; return 2; }
size_t Members(const Options& x) {
  [[maybe_unused]] const auto& [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15,
                                a16, a17, a18, a19, a20, a21, a22, a23, a24, a25, a26, a27, a28,
                                a29, a30, a31, a32, a33, a34, a35, a36, a37, a38, a39, a40, a41] = x;
  return 41;
}
size_t Members(const UpgradePolicy& x) { [[maybe_unused]] const auto& [a1, a2, a3, a4, a5, a6, a7] = x; return 7; }
size_t Members(const SupervisorConfig& x) {
  [[maybe_unused]] const auto& [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14] = x;
  return 14;
}
size_t Members(const Worker& x) {
  [[maybe_unused]] const auto& [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15,
                                a16, a17, a18, a19, a20] = x;
  return 20;
}
size_t Members(const ExitStatus& x) { [[maybe_unused]] const auto& [a1, a2] = x; return 2; }
size_t Members(const Slot& x) { [[maybe_unused]] const auto& [a1, a2, a3, a4, a5, a6] = x; return 6; }
size_t Members(const UpgradeProgress& x) {
  [[maybe_unused]] const auto& [a1, a2, a3, a4, a5, a6, a7, a8, a9] = x;
  return 9;
}
size_t Members(const UpgradeResult& x) { [[maybe_unused]] const auto& [a1, a2, a3, a4] = x; return 4; }
size_t Members(const SupervisorSnapshot& x) {
  [[maybe_unused]] const auto& [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14,
                                a15] = x;
  return 15;
}
size_t Members(const MasterState::Listener& x) { [[maybe_unused]] const auto& [a1, a2, a3, a4, a5, a6] = x; return 6; }
size_t Members(const Peer& x) { [[maybe_unused]] const auto& [a1, a2, a3, a4, a5] = x; return 5; }
size_t Members(const wire::Id& x) { [[maybe_unused]] const auto& [a1, a2] = x; return 2; }
size_t Members(const MasterState::Client& x) { [[maybe_unused]] const auto& [a1, a2, a3, a4] = x; return 4; }
size_t Members(const MasterState::NotifySocket& x) { [[maybe_unused]] const auto& [a1, a2] = x; return 2; }
size_t Members(const MasterState::WorkerPipe& x) { [[maybe_unused]] const auto& [a1, a2, a3, a4] = x; return 4; }
size_t Members(const WorkerTag& x) { [[maybe_unused]] const auto& [a1, a2, a3, a4] = x; return 4; }
size_t Members(const MasterState& x) {
  [[maybe_unused]] const auto& [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15,
                                a16, a17, a18, a19, a20, a21, a22, a23, a24] = x;
  return 24;
}
size_t Members(const Zygote& x) { [[maybe_unused]] const auto& [a1, a2, a3, a4, a5, a6, a7, a8, a9] = x; return 9; }
size_t Members(const MasterState::ZygoteLink& x) { [[maybe_unused]] const auto& [a1, a2, a3] = x; return 3; }
// clang-format on

template <typename T>
StateSchemaCoverage CoverageOf(const char* name) {
  const T x{};
  Counter counter;
  Schema<T>::Visit(counter, x);
  return {name, Members(x), counter.n};
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

// The layout EncodeState writes, in one pass (core/state_stream.h); nullopt for anything else,
// which ReadGeneral then reads or refuses.
std::optional<MasterState> ReadCanonical(std::string_view bytes, const StateLimits& limits) {
  try {
    Cursor c(bytes, limits);
    c.Expect("format: " + Str(kStateFormat) + "\n");
    c.Key(0, "version");
    c.Expect(" ");
    const int version = I32(In{c.Value(1), nullptr, "version"});
    if (version < 1 || version > kStateVersion) return std::nullopt;
    c.Expect("\n");
    c.Count(6);  // format, version and end: keys and values
    MasterState s;
    s.format_version = version;
    BlockIn top(c, 0, 1);
    Schema<MasterState>::Visit(top, s);
    c.Expect("end: true\n");
    if (!c.AtEnd()) return std::nullopt;
    return s;
  } catch (...) {  // Decline, or a value the general reader will refuse with its message
    return std::nullopt;
  }
}

// Any document: the tree, then each key looked up, in any order.
MasterState ReadGeneral(std::string_view bytes, const StateLimits& limits) {
  const Node root_node = Parse(bytes, limits);
  const In root{root_node, nullptr, "the state"};
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
  MapReader reader(top);
  Schema<MasterState>::Visit(reader, s);
  top.Done();
  return s;
}

MasterState DecodeOrThrow(std::string_view bytes, const StateLimits& limits) {
  CheckBytes(bytes, limits);
  std::optional<MasterState> canonical = ReadCanonical(bytes, limits);
  MasterState s = canonical ? std::move(*canonical) : ReadGeneral(bytes, limits);
  // An image older than draining_since: its draining workers have drained since their signal.
  for (Worker& w : s.supervisor.workers) {
    if (w.state == WorkerState::kDraining && !w.draining_since) w.draining_since = w.signaled_at;
  }

  if (Status st = Validate(s.options); !st.ok()) throw Bad("options: " + st.message());
  if (Status st = CheckSnapshot(s.supervisor); !st.ok()) {
    throw Bad("supervisor." + st.message());
  }
  // The recycle counters without trailing zeros, as Snapshot() gives them (an image older
  // than a cause carried fewer, and those it lacks are 0): one form per state.
  std::vector<int>& recycles = s.supervisor.recycles;
  while (!recycles.empty() && recycles.back() == 0) recycles.pop_back();
  ZygoteBookSnapshot book;
  for (const MasterState::ZygoteLink& l : s.zygotes) book.zygotes.push_back(l.zygote);
  book.failures = s.zygote_failures;
  if (Status st = CheckZygotes(book); !st.ok()) throw Bad(st.message());
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
  for (size_t i = 0; i < s.worker_pipes.size(); ++i) {
    fds.push_back({s.worker_pipes[i].fd, indexed("worker_pipes", i) + ".fd", false});
  }
  for (size_t i = 0; i < s.zygotes.size(); ++i) {
    fds.push_back({s.zygotes[i].fd, indexed("zygotes", i) + ".fd", false});
  }
  fds.push_back({s.stand_in_fd, "stand_in_fd", true});
  return fds;
}

std::string EncodeState(const MasterState& s) {
  std::string out;
  // Grown by doubling, the text of 1000 workers (620 KB) was copied and faulted in again at
  // each step, in the old image's share of a reload's silence. A worker takes about 300 bytes,
  // its slot 200, an event 300.
  out.reserve(64 * 1024 + 320 * s.supervisor.workers.size() + 220 * s.supervisor.slots.size() +
              320 * s.telemetry.events.size());
  Block b(&out, 0);
  b.Scalar("format", Str(kStateFormat));
  b.Scalar("version", Int(s.format_version));
  BlockOut fields(b);
  Schema<MasterState>::Visit(fields, s);
  b.Scalar("end", "true");
  return out;
}

std::vector<StateSchemaCoverage> StateSchemaCoverages() {
  return {CoverageOf<BindSpec>("BindSpec"),
          CoverageOf<AckMode>("AckMode"),
          CoverageOf<NiceSpec>("NiceSpec"),
          CoverageOf<MemoryLimit>("MemoryLimit"),
          CoverageOf<Options>("Options"),
          CoverageOf<UpgradePolicy>("UpgradePolicy"),
          CoverageOf<SupervisorConfig>("SupervisorConfig"),
          CoverageOf<Worker>("Worker"),
          CoverageOf<ExitStatus>("ExitStatus"),
          CoverageOf<Slot>("Slot"),
          CoverageOf<UpgradeProgress>("UpgradeProgress"),
          CoverageOf<UpgradeResult>("UpgradeResult"),
          CoverageOf<SupervisorSnapshot>("SupervisorSnapshot"),
          CoverageOf<MasterState::Listener>("MasterState::Listener"),
          CoverageOf<Peer>("Peer"),
          CoverageOf<wire::Id>("wire::Id"),
          CoverageOf<MasterState::Client>("MasterState::Client"),
          CoverageOf<MasterState::NotifySocket>("MasterState::NotifySocket"),
          CoverageOf<WorkerTag>("WorkerTag"),
          CoverageOf<MasterState::WorkerPipe>("MasterState::WorkerPipe"),
          CoverageOf<Zygote>("Zygote"),
          CoverageOf<MasterState::ZygoteLink>("MasterState::ZygoteLink"),
          CoverageOf<MasterState>("MasterState")};
}

namespace {

// A reader's exceptions as DecodeState words them.
template <typename F>
Result<MasterState> Catching(F decode) {
  try {
    return decode();
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

}  // namespace

Result<MasterState> DecodeState(std::string_view bytes, const StateLimits& limits) {
  return Catching([&] { return DecodeOrThrow(bytes, limits); });
}

std::optional<MasterState> ReadStateCanonical(std::string_view bytes, const StateLimits& limits) {
  try {
    CheckBytes(bytes, limits);
  } catch (const Bad&) {
    return std::nullopt;
  }
  return ReadCanonical(bytes, limits);
}

Result<MasterState> ReadStateGeneral(std::string_view bytes, const StateLimits& limits) {
  return Catching([&] {
    CheckBytes(bytes, limits);
    return ReadGeneral(bytes, limits);
  });
}

}  // namespace einhorn::core
