// The one table of the master's settings (OptionTable(), option_table.cc).
//
// Why one table: a setting used to be written down five times (the Options member, its CLI11
// registration and post-processing in ParseFlags, the config file's key table, the re-exec
// state's schema, and reload's live-or-restart rule), and the copies had started to drift.
// Now a setting is described once, by one OptionDef, and every user walks the table:
//   - ParseFlags (flags.cc) registers each entry's flag, with its help and its default, and
//     applies what the command line gave;
//   - LoadConfig/RenderConfig (config.cc) read and print each entry's config key
//     (--check-config's output is the table's order);
//   - ReconcileReload (config.cc) compares the entries' values and refuses a change to one
//     that is not `live`;
//   - Schema<Options> (state.cc) encodes and decodes each entry under its state key, in the
//     state's frozen order (`state_pos`).
// By default an entry is handled by the C++ type of its Options member (Field below: an int
// reads as an integer, a std::optional<double> as seconds or null, a vector as a list...);
// the hooks (`read`, `show`, `from_flag`) are for the settings whose text is their own
// (-b specs, -m, --nice, a signal name...).
//
// Adding a setting: a member in Options (options.h), one entry here (in the place --help and
// --check-config should show it; `state_pos` the next free number, `state_if_set` true so that
// older states still read), its range check in FindProblem (options.cc) if it has one, and the
// code that uses it. The build then asks for one more thing: the member count of Options in
// state.cc's Members() (a tripwire for a member left out of this table).
//
// Porting a setting written the old way: its Keys() entry {name, live, flag, read, show} in
// config.cc becomes .key, .live, .flag and, unless its type does it, .read/.show (a reader
// takes a ConfigValue instead of (Ctx, node, path)); its line in Schema<Options>::Visit gives
// .state_key (when not the key), .state_pos (the line's place) and .state_if_set (FieldIf);
// its post-processing in ParseFlags becomes .from_flag (an error line as a Status).
//
// Format of an entry (designated initializers, in this order; omitted ones are zero):
//   {.key = "number",                       config key; the long flag is it with '-' for '_'
//    .field = &Options::number,             the member it sets (a type of Field)
//    .live = true,                          reload may change it without a restart
//    .flag = {"-n,--number", "Workers to run", nullptr},  CLI11 names, help, value name
//    .shown_default = nullptr,              --help's default when the value's own text is not
//                                           it (a path made from TMPDIR, "none"...)
//    .state_pos = 0,                        its place in the re-exec state (frozen)
//    .state_key = nullptr,                  its key there, when not the config key
//    .state_if_set = false,                 written only when not the default
//    .read = nullptr, .show = nullptr,      the config file's reader and printer, when not by type
//    .from_flag = nullptr}                  the flag's text into Options, when not by type
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/options.h"
#include "core/status.h"

namespace YAML {
class Node;
}

namespace einhorn::core {

// A setting's flag on the command line: CLI11's names ("-n,--number"), the --help line, and the
// value's name in the help (nullptr: from the type, INT, FLOAT or TEXT). Its long name is the
// key with '-' for '_', except --no-canary (canary) and -q/-v (log_level, relative). Empty
// (names nullptr) for a key that has no flag of its own (command, log_level).
struct FlagSpec {
  const char* names = nullptr;
  const char* help = nullptr;
  const char* type_name = nullptr;
  // The value may be left out (the next word is another flag, `--` or nothing): from_flag then
  // gets kBareFlag. An empty value given as such (-p "") is not bare.
  bool value_optional = false;
};

// What from_flag gets for a flag of value_optional given without its value.
inline constexpr const char* kBareFlag = "\x01" "bare";

// One value of the config file, where it stands (for messages "FILE:LINE: PATH: ...").
// Implemented in config.cc, the file's reader; the readers throw the loader's error.
class ConfigValue {
 public:
  ConfigValue(const std::string& file, int key_line, const YAML::Node& node, std::string path);

  bool IsNull() const;
  bool IsSequence() const;
  size_t Size() const;
  ConfigValue Item(size_t i) const;  // a list's item, path "PATH[i]"
  const YAML::Node& node() const { return *node_; }
  const std::string& path() const { return path_; }

  // A scalar (`expected` names what it should be in the error), with no NUL byte.
  const std::string& Scalar(const char* expected) const;
  int Int() const;
  double Seconds() const;  // a finite number
  bool Bool() const;       // true/false, yes/no, on/off
  std::string String() const;
  std::vector<std::string> Strings() const;  // a scalar or a list of scalars
  std::vector<std::string> Words() const;    // a list of words, or one string split as a shell
  [[noreturn]] void Fail(const std::string& what) const;

 private:
  const std::string* file_;
  int key_line_;
  const YAML::Node* node_;
  std::string path_;
  std::shared_ptr<const YAML::Node> item_;  // Item()'s node, which node_ points at
};

// For the hooks: a config value as --check-config prints it (config.cc).
YAML::Node ConfigNumber(double v);  // shortest text that reads back
YAML::Node ConfigList(const std::vector<std::string>& items);
YAML::Node ConfigNull();
std::string ConfigShown(const std::string& s);  // 'text', cut at 60 bytes, for messages

// The Options members a setting may be; a new type is one more here, and its handling by type
// in flags.cc (FlagValue), config.cc (ReadByType, ShowByType) and state.cc (CodecOf).
using Field =
    std::variant<int Options::*, double Options::*, bool Options::*, std::string Options::*,
                 std::vector<std::string> Options::*, std::optional<int> Options::*,
                 std::optional<double> Options::*, std::vector<BindSpec> Options::*,
                 AckMode Options::*, NiceSpec Options::*, Signal Options::*, LogFormat Options::*,
                 std::optional<WorkerOutput> Options::*, MemoryLimit Options::*,
                 MemoryMeasure Options::*>;

struct OptionDef {
  const char* key;
  Field field;
  bool live = false;
  FlagSpec flag = {};
  const char* shown_default = nullptr;
  int state_pos = 0;
  const char* state_key = nullptr;
  bool state_if_set = false;
  void (*read)(const ConfigValue& value, Options* o) = nullptr;
  YAML::Node (*show)(const Options& o) = nullptr;
  // A repeatable flag's hook is called once per value, after the setting was cleared.
  Status (*from_flag)(const std::string& text, Options* o) = nullptr;

  const char* StateKey() const { return state_key ? state_key : key; }
};

// Every setting, in the order of --help and --check-config.
const std::vector<OptionDef>& OptionTable();
// The same entries in the order of the re-exec state (by state_pos).
const std::vector<const OptionDef*>& OptionsInStateOrder();
// The entry of a config key, or nullptr.
const OptionDef* FindOption(const std::string& key);

}  // namespace einhorn::core
