// Durations from untrusted input (issue 14.4), as a property over many values: whatever number
// reaches a duration setting through the flags, the config file or the state a reload carries,
// it is either refused with one error line, or every deadline the supervisor computes from it
// lies at or after the time it was computed (nothing wraps: `-s 1e10` once gave "respawning in
// -9223372036.855s" and `-t 1e10` a loop timer that never fired). No command-socket verb takes
// a duration; the one number of seconds that arrives over the wire, an event's `mono` in an
// `events` reply, must parse to an event or an error, never undefined behaviour (UBSan watches).
#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/events.h"
#include "core/flags.h"
#include "core/state.h"
#include "core/supervisor.h"
#include "fake_effects.h"

namespace einhorn::core {
namespace {

using test::FakeEffects;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

// Zero both ways, negatives, denormals, the cap and just past it, the int64-nanosecond edge
// (9.22e9 s), huge and infinite values and NaN.
std::vector<double> Values() {
  return {0.0,
          -0.0,
          std::numeric_limits<double>::denorm_min(),
          1e-310,
          DBL_MIN,
          -std::numeric_limits<double>::denorm_min(),
          1e-10,
          1e-9,
          0.001,
          0.5,
          1,
          2.5,
          60,
          86400,
          kMaxSettingSeconds - 60,
          kMaxSettingSeconds - 1,
          kMaxSettingSeconds,
          std::nextafter(kMaxSettingSeconds, kInf),
          kMaxSettingSeconds + 1,
          1e7,
          9.2233720368e9,
          9.3e9,
          1e10,
          1e18,
          1e300,
          DBL_MAX,
          -1e-9,
          -1,
          -1e10,
          -1e300,
          -DBL_MAX,
          kInf,
          -kInf,
          kNan,
          -kNan};
}

// Every spelling a user or a file could give a value: shortest exact, and C's.
std::vector<std::string> Spellings(double v) {
  char exact[64];
  std::snprintf(exact, sizeof exact, "%.17g", v);
  char hex[64];
  std::snprintf(hex, sizeof hex, "%a", v);
  return {exact, hex};
}

// Words no number formatting produces but a hostile user types.
const std::vector<std::string> kOddWords = {
    "inf",   "-inf", "+inf",  "infinity", "nan",    "-nan",      "NaN",  ".inf",
    "-.inf", ".nan", "1e400", "-1e400",   "1e-400", "0x1p-1074", "1e10", "  1",
    "1 ",    "",     "0.0e0", "-0",       "+0",     "1_000",     "0x10"};

struct Setting {
  const char* flag;  // also "" when the setting has no flag of its own
  const char* key;   // config file key
};
const Setting kSettings[] = {
    {"-s", "seconds"},
    {"-t", "signal_timeout"},
    {"-m", "ack_mode"},
    {"--ack-timeout", "ack_timeout"},
    {"--upgrade-timeout", "upgrade_timeout"},
    {"--worker-watchdog", "worker_watchdog"},
};

bool OneLine(const std::string& s) { return !s.empty() && s.find('\n') == std::string::npos; }

// The deadlines a worker and a slot hold are never before `now`.
void CheckDeadlines(const Supervisor& s, Time now) {
  for (const auto& [pid, w] : s.workers()) {
    if (w.kill_at) CHECK(*w.kill_at >= now);
    if (w.kill_at) CHECK(*w.kill_at >= w.signaled_at.value_or(Time::min()));
  }
  for (const Slot& slot : s.slots()) {
    if (slot.respawn_at) CHECK(*slot.respawn_at >= now);
  }
  if (const auto next = s.NextDeadline()) CHECK(*next >= Time{0});
}

// Drives a supervisor through every path that turns a setting into a deadline (timer ack,
// respawn backoff, watchdog, upgrade and ack timeouts, stop and kill), at a time far into the
// monotonic clock, and checks that no deadline lies in the past and no delay logged is negative.
void DriveWithoutWrapping(Supervisor& s, FakeEffects& fx, Time t0) {
  s.Start(t0);
  CheckDeadlines(s, t0);
  if (const auto next = s.NextDeadline()) CHECK(*next >= t0);
  s.Tick(t0);
  Time now = After(t0, Seconds(1));
  if (!s.workers().empty()) {
    const Pid first = s.workers().begin()->first;
    s.Ack(first, now);
    s.WorkerWatchdog(first, now);
    s.ChildExited(first, ExitStatus{false, 1}, now);  // a crash: a backoff from -s
  }
  CheckDeadlines(s, now);
  if (const auto next = s.NextDeadline()) CHECK(*next >= now);
  s.Upgrade(UpgradeStrategy::kSmooth, now);
  CheckDeadlines(s, now);
  if (const auto next = s.NextDeadline()) CHECK(*next >= now);
  now = After(now, Seconds(1));
  s.Tick(now);
  s.Stop(StopKind::kTerminate, now);
  CheckDeadlines(s, now);
  if (const auto next = s.NextDeadline()) {
    CHECK(*next >= now);
    s.Tick(*next);
  }
  for (const auto& [level, line] : fx.logs) {
    INFO(line);
    CHECK(line.find(" in -") == std::string::npos);
    CHECK(line.find("after -") == std::string::npos);
  }
}

// The largest time a carried state may hold is 2^61 ns (CheckSnapshot); a fresh master's is
// about the uptime. Both must work.
const Time kTimes[] = {Time{0}, Seconds(86400 * 365.0), Time{std::int64_t{1} << 61}};

void DriveOptions(const Options& o) {
  CHECK(Validate(o).ok());
  for (const Time t0 : kTimes) {
    FakeEffects fx;
    Supervisor s(ConfigFromOptions(o, 7), fx);
    DriveWithoutWrapping(s, fx, t0);
  }
}

TEST_CASE("durations: Seconds() saturates and After() never wraps, for any double") {
  for (const double v : Values()) {
    INFO(v);
    const Duration d = Seconds(v);
    if (std::isnan(v)) CHECK(d == Duration::zero());
    if (v >= 9.3e9) CHECK(d == Duration::max());
    if (v <= -9.3e9) CHECK(d == Duration::min());
    if (v >= 0) CHECK(d >= Duration::zero());
    if (v <= 0) CHECK(d <= Duration::zero());
    for (const Time t : {Time{0}, Time{std::int64_t{1} << 61}, Time::max(), Time::min()}) {
      const Time at = After(t, d);
      if (d >= Duration::zero()) CHECK(at >= t);
      if (d <= Duration::zero()) CHECK(at <= t);
    }
  }
  CHECK(Seconds(1.5) == std::chrono::milliseconds(1500));
  CHECK(Seconds(-2) == std::chrono::seconds(-2));
  CHECK(After(Time::max() - Duration(5), Duration(10)) == Time::max());
  CHECK(After(Time::min() + Duration(5), Duration(-10)) == Time::min());
  CHECK(After(Time(7), Duration(-3)) == Time(4));
}

TEST_CASE("durations: every value of every duration flag is refused in one line or runs safely") {
  int refused = 0;
  int ran = 0;
  for (const Setting& setting : kSettings) {
    std::vector<std::string> words = kOddWords;
    for (const double v : Values()) {
      for (const std::string& w : Spellings(v)) words.push_back(w);
    }
    for (const std::string& word : words) {
      INFO(setting.flag, " ", word);
      const FlagsOutcome out =
          ParseFlags({"einhorn-cpp", setting.flag, word, "w"}, {{"TMPDIR", "/tmp"}});
      if (out.kind == FlagsOutcome::Kind::kExit) {
        ++refused;
        CHECK(out.exit_code == kExitUsage);
        CHECK(OneLine(out.err));
        CHECK(out.err.rfind("einhorn-cpp: ", 0) == 0);
        continue;
      }
      REQUIRE(out.kind == FlagsOutcome::Kind::kRun);
      ++ran;
      DriveOptions(out.options);
    }
  }
  CHECK(refused > 0);
  CHECK(ran > 0);
}

TEST_CASE("durations: the documented range, and Einhorn's acceptances, on the command line") {
  auto runs = [](std::vector<std::string> args) {
    args.insert(args.begin(), "einhorn-cpp");
    args.push_back("w");
    return ParseFlags(args, {{"TMPDIR", "/tmp"}}).kind == FlagsOutcome::Kind::kRun;
  };
  auto error = [](std::vector<std::string> args) {
    args.insert(args.begin(), "einhorn-cpp");
    args.push_back("w");
    return ParseFlags(args, {{"TMPDIR", "/tmp"}}).err;
  };
  // Einhorn takes these (EINHORN-CONTRACT.md section 1).
  CHECK(runs({"-m", "0"}));
  CHECK(runs({"-t", "0"}));
  CHECK(runs({"-m", "1e3"}));
  // Up to the cap, and not beyond.
  for (const char* flag :
       {"-s", "-t", "-m", "--ack-timeout", "--upgrade-timeout", "--worker-watchdog"}) {
    INFO(flag);
    CHECK(runs({flag, "1000000"}));
    const std::string err = error({flag, "1000000.5"});
    const bool names_cap = err.find("at most 1000000") != std::string::npos ||
                           err.find("from 0 to 1000000") != std::string::npos;
    CHECK(names_cap);
    CHECK(err.find("(got 1000000.5)") != std::string::npos);
    CHECK(OneLine(error({flag, "1e10"})));
    CHECK_FALSE(runs({flag, "1e10"}));
    CHECK_FALSE(runs({flag, "nan"}));
    CHECK_FALSE(runs({flag, "inf"}));
  }
  CHECK(error({"-t", "1e10"}) ==
        "einhorn-cpp: -t/--signal-timeout must be a number of seconds from 0 to 1000000 (got "
        "10000000000)");
  CHECK(error({"-s", "1e10"}) ==
        "einhorn-cpp: -s/--seconds must be a number of seconds above 0, at most 1000000 (got "
        "10000000000)");
  // A long timer ack moves the default ack timeout a minute past it, within the cap: right
  // at the cap, no ack timeout is left (0, no limit) rather than one past the cap.
  const FlagsOutcome at_cap =
      ParseFlags({"einhorn-cpp", "-m", "1000000", "w"}, {{"TMPDIR", "/tmp"}});
  REQUIRE(at_cap.kind == FlagsOutcome::Kind::kRun);
  CHECK(at_cap.options.ack_timeout == 0);
  const FlagsOutcome near_cap =
      ParseFlags({"einhorn-cpp", "-m", "999000", "w"}, {{"TMPDIR", "/tmp"}});
  REQUIRE(near_cap.kind == FlagsOutcome::Kind::kRun);
  CHECK(near_cap.options.ack_timeout == 999060);
}

TEST_CASE(
    "durations: every value of every duration key in a config file is refused in one "
    "line or runs safely") {
  int refused = 0;
  int ran = 0;
  for (const Setting& setting : kSettings) {
    std::vector<std::string> words = kOddWords;
    for (const double v : Values()) {
      for (const std::string& w : Spellings(v)) words.push_back(w);
    }
    for (const std::string& word : words) {
      INFO(setting.key, ": ", word);
      const std::string text = "command: [w]\n" + std::string(setting.key) + ": \"" + word + "\"\n";
      const auto loaded = LoadConfig(ConfigSource{"app.yaml", text});
      if (!loaded.ok()) {
        ++refused;
        CHECK(OneLine(loaded.error()));
        CHECK(loaded.error().rfind("app.yaml:", 0) == 0);
        continue;
      }
      ++ran;
      Options o = loaded.value().options;
      ApplyDefaultPaths(&o, {{"TMPDIR", "/tmp"}});
      DriveOptions(o);
      // And through the flags' path, which reads the same file.
      const ConfigSource source{"/app.yaml", text};
      const FlagsOutcome out =
          ParseFlags({"einhorn-cpp", "--config", "/app.yaml"}, {{"TMPDIR", "/tmp"}}, &source);
      CHECK(out.kind == FlagsOutcome::Kind::kRun);
    }
  }
  CHECK(refused > 0);
  CHECK(ran > 0);
}

// A state as a master that just started would carry.
MasterState FreshState(const Options& o) {
  MasterState m;
  m.written_by = "test";
  m.options = o;
  m.command_path = "/bin/w";
  FakeEffects fx;
  Supervisor s(ConfigFromOptions(o, 3), fx);
  s.Start(Seconds(1000));
  m.supervisor = s.Snapshot();
  m.control.fd = -1;
  return m;
}

TEST_CASE(
    "durations: every value of every duration in a carried state is refused in one line "
    "or runs safely") {
  Options base;
  base.command = {"w"};
  ApplyDefaultPaths(&base, {{"TMPDIR", "/tmp"}});
  base.signal_timeout = 5;
  base.worker_watchdog = 30;
  REQUIRE(Validate(base).ok());
  REQUIRE(DecodeState(EncodeState(FreshState(base))).ok());

  // An option and the supervisor's copy of it, set together (a hostile or corrupt state), or
  // only the supervisor's (nanoseconds, which no option limits).
  using Edit = void (*)(MasterState&, double);
  const std::vector<std::pair<const char*, Edit>> edits = {
      {"seconds",
       [](MasterState& m, double v) {
         m.options.seconds = v;
         m.supervisor.config.backoff_base = Seconds(v);
       }},
      {"signal_timeout",
       [](MasterState& m, double v) {
         m.options.signal_timeout = v;
         m.supervisor.config.signal_timeout = Seconds(v);
       }},
      {"ack_mode",
       [](MasterState& m, double v) {
         m.options.ack_mode.timer_seconds = v;
         m.supervisor.config.ack_mode.timer_seconds = v;
       }},
      {"ack_timeout",
       [](MasterState& m, double v) {
         m.options.ack_timeout = v;
         m.supervisor.config.upgrade.ack_timeout = Seconds(v);
       }},
      {"upgrade_timeout",
       [](MasterState& m, double v) {
         m.options.upgrade_timeout = v;
         m.supervisor.config.upgrade.upgrade_timeout = Seconds(v);
       }},
      {"worker_watchdog",
       [](MasterState& m, double v) {
         m.options.worker_watchdog = v;
         m.supervisor.config.worker_watchdog = Seconds(v);
       }},
      {"config.backoff_cap",
       [](MasterState& m, double v) { m.supervisor.config.backoff_cap = Seconds(v); }},
      {"config.rollback_kill_after",
       [](MasterState& m, double v) { m.supervisor.config.rollback_kill_after = Seconds(v); }},
      {"config.signal_timeout only",
       [](MasterState& m, double v) { m.supervisor.config.signal_timeout = Seconds(v); }},
      {"config.upgrade.ack_timeout only",
       [](MasterState& m, double v) { m.supervisor.config.upgrade.ack_timeout = Seconds(v); }},
  };
  int refused = 0;
  int ran = 0;
  for (const auto& [name, edit] : edits) {
    for (const double v : Values()) {
      INFO(name, " = ", v);
      MasterState m = FreshState(base);
      edit(m, v);
      const auto decoded = DecodeState(EncodeState(m));
      if (!decoded.ok()) {
        ++refused;
        CHECK(OneLine(decoded.error()));
        continue;
      }
      ++ran;
      FakeEffects fx;
      Supervisor s = Supervisor::Restore(decoded.value().supervisor, fx);
      CheckDeadlines(s, Seconds(1000));
      Time now = Seconds(1000);
      for (int round = 0; round < 3; ++round) {
        if (const auto next = s.NextDeadline()) {
          CHECK(*next >= now);
          now = std::max(now, *next);
        }
        s.Tick(now);
        CheckDeadlines(s, now);
      }
    }
  }
  CHECK(refused > 0);
  CHECK(ran > 0);
  // Where the old binary wrote an out-of-range value (`-t 1e10` before the cap), the new image
  // refuses the state and names the key: the reload fails and the old master keeps running.
  MasterState m = FreshState(base);
  m.options.signal_timeout = 1e10;
  const auto decoded = DecodeState(EncodeState(m));
  REQUIRE_FALSE(decoded.ok());
  CHECK(decoded.error() ==
        "options: -t/--signal-timeout must be a number of seconds from 0 to 1000000 (got "
        "10000000000)");
}

TEST_CASE("durations: an event's mono from the wire parses or is refused, for any number") {
  Event e;
  e.seq = 1;
  e.kind = EventKind::kSpawn;
  e.mono = Seconds(12.5);
  EventsReply reply;
  reply.first_seq = 1;
  reply.last_seq = 1;
  reply.events = {e};
  const std::string text = EventsReplyToYaml(reply);
  const size_t at = text.find("\"mono\": 12.5");
  REQUIRE(at != std::string::npos);
  std::vector<std::string> words = kOddWords;
  for (const double v : Values()) {
    for (const std::string& w : Spellings(v)) words.push_back(w);
  }
  for (const std::string& word : words) {
    INFO(word);
    std::string edited = text;
    edited.replace(at, std::string("\"mono\": 12.5").size(), "\"mono\": " + word);
    const auto parsed = EventsReplyFromYaml(edited);
    if (!parsed.ok()) {
      CHECK(OneLine(parsed.error()));
      continue;
    }
    // Seconds() is total: whatever the number, mono is some duration, rendered as some text.
    for (const Event& got : parsed.value().events) (void)EventSummary(got);
  }
}

}  // namespace
}  // namespace einhorn::core
