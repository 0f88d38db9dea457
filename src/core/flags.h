// Einhorn's command line: `einhorn-cpp [options] [--] CMD [ARGS...]`. Option parsing stops at
// the first positional word; it and everything after it are the worker's argv. Two internal
// forms, used by reload and hidden from --help, are described at FlagsOutcome::Kind.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/options.h"

namespace einhorn::core {

struct FlagsOutcome {
  enum class Kind {
    kRun,
    kExit,
    // `--with-state-fd N [--] [CMD...]`: this is the new image of a reloading master; the
    // state at fd N holds everything (options included), so no other flag is allowed.
    kRestore,
    // `--upgrade-check [--with-state-fd N] [--] [CMD...]`: reload's pre-flight child; it
    // decodes the state at N (if given) and exits 0 if this binary can take over.
    kUpgradeCheck,
    // `--config FILE` or `--check-config FILE` without the file's text: the caller reads
    // config_path and calls ParseFlags again with it.
    kNeedConfig,
    // `--check-config FILE`: options hold the effective settings (file, then flags) to print.
    kCheckConfig,
  };
  Kind kind = Kind::kRun;
  Options options;    // kRun only
  int exit_code = 0;  // kExit: 0 for --help/--version, 2 for usage errors
  std::string out;    // kExit: text for stdout (help, version)
  std::string err;    // kExit: one error line for stderr
  int state_fd = -1;  // kRestore: >= 0; kUpgradeCheck: >= 0, or -1 without --with-state-fd
  std::string config_path;  // kNeedConfig, and kRun/kCheckConfig when a file was read
};

// argv[0] is the program name. env supplies TMPDIR for the default paths. config: the text of
// the file that --config/--check-config names (see kNeedConfig); flags override its settings.
FlagsOutcome ParseFlags(const std::vector<std::string>& argv,
                        const std::map<std::string, std::string>& env,
                        const ConfigSource* config = nullptr);

inline constexpr int kExitUsage = 2;
inline constexpr int kExitRuntime = 1;
extern const char* const kVersion;

}  // namespace einhorn::core
