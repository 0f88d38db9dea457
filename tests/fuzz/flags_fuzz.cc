// libFuzzer target for the command line (src/core/flags). Built only with -DEINHORN_FUZZ=ON and
// clang++; run it with scripts/fuzz. The input is the argument words separated by NUL bytes
// (which no argv word can hold), after a fixed argv[0] and with a fixed environment.
// ParseFlags must never crash or let an exception out (CLI11 throws; a bad command line is
// a usage error, exit 2, never an abort); what it runs must pass Validate and hand the worker
// exactly the words after the options, and every deadline its durations give lies ahead
// (deadlines.h); every usage error is one line that says who speaks. The same words are also
// systemd's variables (core/systemd_env): LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, then
// WATCHDOG_USEC and WATCHDOG_PID, then NOTIFY_SOCKET.
// A broken invariant calls __builtin_trap(), which libFuzzer reports as a crash and saves.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/flags.h"
#include "core/systemd_env.h"
#include "deadlines.h"

namespace core = einhorn::core;
using Kind = core::FlagsOutcome::Kind;

namespace {

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "flags_fuzz: invariant broken: %s\n", what);
    __builtin_trap();
  }
}

std::vector<std::string> Argv(std::string_view in) {
  std::vector<std::string> argv{"einhorn-cpp"};
  if (in.empty()) return argv;
  size_t start = 0;
  while (true) {
    const size_t nul = in.find('\0', start);
    argv.emplace_back(in.substr(start, nul == std::string_view::npos ? nul : nul - start));
    if (nul == std::string_view::npos) return argv;
    start = nul + 1;
  }
}

void CheckRun(const core::Options& o, const std::vector<std::string>& argv) {
  const core::Status valid = core::Validate(o);
  Require(valid.ok(), "what runs passes Validate");
  // Einhorn's rule: the worker gets the words after the options, unchanged.
  Require(!o.command.empty() && o.command.size() < argv.size(), "a worker command is given");
  Require(std::equal(o.command.begin(), o.command.end(), argv.end() - o.command.size()),
          "the worker command is the tail of argv");
  Require(!o.command.front().empty() && o.command.front()[0] != '-',
          "the worker command is not an option");
  Require(!o.socket_path.empty() && !o.pidfile.empty() && !o.lockfile.empty(),
          "default paths are filled in");
  Require(o.verbosity >= 0 && o.verbosity <= 2, "verbosity in 0..2");
  // Every duration accepted is one whose deadlines do not wrap (-t 1e10 once did).
  einhorn::fuzz::DriveWithoutWrapping(o);
  for (const core::BindSpec& b : o.binds) {
    const auto again = core::ParseBindSpec(b.text);
    Require(again.ok() && again.value() == b, "a bind is what its text parses to");
  }
}

void CheckExit(const core::FlagsOutcome& out) {
  if (out.exit_code == 0) {
    Require(!out.out.empty() && out.err.empty(), "help/version: text on stdout only");
    return;
  }
  if (out.exit_code == 1) {
    // No worker command: Einhorn's usage on stdout, exit 1, nothing on stderr.
    Require(out.out.rfind("## Usage\n", 0) == 0 && out.err.empty(),
            "exit 1 is the usage without a command, on stdout only");
    return;
  }
  Require(out.exit_code == core::kExitUsage, "kExit is 0, 1 (no command) or the usage code");
  Require(out.out.empty(), "a usage error prints nothing on stdout");
  static constexpr std::string_view kPrefix = "einhorn-cpp: ";
  Require(out.err.size() > kPrefix.size() && out.err.compare(0, kPrefix.size(), kPrefix) == 0,
          "a usage error starts with 'einhorn-cpp: ' and says something");
  Require(out.err.find('\n') == std::string::npos, "a usage error is one line");
}

// The words as systemd's variables; a missing word is an unset variable.
void CheckSystemdEnv(const std::vector<std::string>& argv) {
  auto word = [&](size_t i) { return i < argv.size() ? argv[i].c_str() : nullptr; };
  constexpr std::int64_t kSelf = 4242;
  const auto fds = core::ParseListenFds(word(1), word(2), word(3), kSelf);
  if (fds.ok()) {
    const core::ListenFds& f = fds.value();
    Require(f.count >= 0 && f.count <= 2147483647 - core::kListenFdsStart, "a count of fds");
    Require(f.names.empty() || f.names.size() == static_cast<size_t>(f.count),
            "a name for every fd, or none");
    Require(f.count == 0 || std::string(word(1)) == "4242", "fds only for this pid");
    if (f.count > 0) {
      Require(f.Name(f.count - 1) == (f.names.empty() ? "unknown" : f.names.back()),
              "the last fd's name");
    }
  } else {
    Require(!fds.error().empty(), "an error says something");
  }
  const auto usec = core::ParseWatchdog(word(1), word(2), kSelf);
  Require(!usec || (*usec > 0 && *usec != UINT64_MAX), "a watchdog period is finite and > 0");
  const auto path = core::NotifySocketPath(word(1), 108);
  Require(!path || (path->size() >= 2 && path->size() <= 108 &&
                    ((*path)[0] == '/' || (*path)[0] == '\0')),
          "a notify address is a path or an abstract name within sun_path");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string> argv = Argv(in);
  CheckSystemdEnv(argv);
  static const std::map<std::string, std::string> env{{"TMPDIR", "/tmp/fuzz"}};
  core::FlagsOutcome out;
  try {
    out = core::ParseFlags(argv, env);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flags_fuzz: ParseFlags threw: %s\n", e.what());
    __builtin_trap();
  } catch (...) {
    std::fprintf(stderr, "flags_fuzz: ParseFlags threw a non-std exception\n");
    __builtin_trap();
  }
  // Not a switch: the config loader adds kinds of its own, which its fuzzer checks.
  if (out.kind == Kind::kRun) {
    CheckRun(out.options, argv);
  } else if (out.kind == Kind::kExit) {
    CheckExit(out);
  } else if (out.kind == Kind::kRestore) {
    Require(out.state_fd >= 0, "a restore has an fd");
  } else if (out.kind == Kind::kUpgradeCheck) {
    Require(out.state_fd >= -1, "an upgrade check has an fd or none");
  }
  return 0;
}
