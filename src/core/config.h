// The YAML config file (`--config FILE`, man einhorn-cpp.yaml(5)): one top-level map whose
// keys are the long flag names with '_' for '-' (plus `command`, `log_level` and `canary`).
// Flags given on the command line override the file; ParseFlags (flags.h) does the merge.
// Pure: the shell reads the file (at most kMaxConfigBytes) and passes its text.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "core/option_table.h"
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

// A key's flag (option_table.h), from the table of settings.
FlagSpec FlagOf(const std::string& key);  // an unknown key: empty

// Whether a key can change on `reload` or needs a restart of the master.
bool IsLiveKey(const std::string& key);
std::vector<std::string> ConfigKeys();

// A setting's value as one line of YAML, as --check-config prints it ("1", "~", "[a, b]"):
// what reload compares, and --help's default.
std::string SettingText(const OptionDef& def, const Options& o);

// What a reload does with the options read again from the file (and the original command
// line): the settings that may change live are taken, and `changed` names them; a change to a
// setting that needs a restart refuses the reload, naming every such key.
struct ReloadedOptions {
  Options options;
  std::vector<std::string> changed;  // "key: old -> new", in key order
};
Result<ReloadedOptions> ReconcileReload(const Options& running, const Options& reread);

}  // namespace einhorn::core
