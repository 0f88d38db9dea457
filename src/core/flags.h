// Einhorn's command line: `einhorn-cpp [options] [--] CMD [ARGS...]`. Option parsing stops at
// the first positional word; it and everything after it are the worker's argv.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/options.h"

namespace einhorn::core {

struct FlagsOutcome {
  enum class Kind { kRun, kExit };
  Kind kind = Kind::kRun;
  Options options;   // kRun
  int exit_code = 0;  // kExit: 0 for --help/--version, 2 for usage errors
  std::string out;    // kExit: text for stdout (help, version)
  std::string err;    // kExit: one error line for stderr
};

// argv[0] is the program name. env supplies TMPDIR for the default paths.
FlagsOutcome ParseFlags(const std::vector<std::string>& argv,
                        const std::map<std::string, std::string>& env);

inline constexpr int kExitUsage = 2;
inline constexpr int kExitRuntime = 1;
extern const char* const kVersion;

}  // namespace einhorn::core
