// The YAML config file (`--config FILE`, man einhorn-cpp.yaml(5)): one top-level map whose
// keys are the long flag names with '_' for '-' (plus `command`, `log_level` and `canary`).
// Flags given on the command line override the file; ParseFlags (flags.h) does the merge.
// Pure: the shell reads the file (at most kMaxConfigBytes) and passes its text.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "core/options.h"
#include "core/status.h"

namespace einhorn::core {

inline constexpr size_t kMaxConfigBytes = size_t{1} << 20;

struct ConfigSource {
  std::string path;  // for messages: "PATH:LINE: ..."
  std::string text;
};

struct LoadedConfig {
  Options options;             // defaults, with what the file sets
  std::set<std::string> keys;  // the keys the file sets
};

// Unknown keys, duplicate keys, wrong types and out-of-range values are errors of one line
// naming the file, the line and the key path ("einhorn.yaml:4: bind[1]: ..."). The file need
// not name a command (the command line may); ranges that involve the command line are
// checked again after the merge.
Result<LoadedConfig> LoadConfig(const ConfigSource& source);

// The effective settings as a config file that LoadConfig reads back to the same options
// (what `--check-config` prints).
std::string RenderConfig(const Options& o);

// A key's flag on the command line: CLI11's names ("-n,--number"), the --help line, and the
// value's name in the help (nullptr: CLI11's own). Its long name is the key with '-' for '_',
// except --no-canary (canary) and -q/-v (log_level, relative). Empty (names nullptr) for a key
// that has no flag of its own (command, log_level). ParseFlags (flags.cc) defines the flags,
// with their parsing, by key; the names and help come from here, one table with the keys.
struct FlagSpec {
  const char* names = nullptr;
  const char* help = nullptr;
  const char* type_name = nullptr;
};
FlagSpec FlagOf(const std::string& key);  // an unknown key: empty

// Whether a key can change on `reload` or needs a restart of the master.
bool IsLiveKey(const std::string& key);
std::vector<std::string> ConfigKeys();

// What a reload does with the options read again from the file (and the original command
// line): the settings that may change live are taken, and `changed` names them; a change to a
// setting that needs a restart refuses the reload, naming every such key.
struct ReloadedOptions {
  Options options;
  std::vector<std::string> changed;  // "key: old -> new", in key order
};
Result<ReloadedOptions> ReconcileReload(const Options& running, const Options& reread);

}  // namespace einhorn::core
