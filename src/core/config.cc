#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <memory>
#include <sstream>
#include <variant>

#include "core/metrics.h"
#include "core/shell_words.h"
#include "core/text.h"

namespace einhorn::core {
namespace {

// Thrown inside the loader only; LoadConfig turns it into the error line.
using Bad = text::Error;

int LineOf(const YAML::Node& n, int fallback);

}  // namespace

// ---------------------------------------------------------------------------------------
// One value of the file, with the readers the settings' entries use (option_table.h).

ConfigValue::ConfigValue(const std::string& file, int key_line, const YAML::Node& node,
                         std::string path)
    : file_(&file), key_line_(key_line), node_(&node), path_(std::move(path)) {}

bool ConfigValue::IsNull() const { return node_->IsNull(); }
bool ConfigValue::IsSequence() const { return node_->IsSequence(); }
size_t ConfigValue::Size() const { return node_->size(); }

ConfigValue ConfigValue::Item(size_t i) const {
  auto item = std::make_shared<const YAML::Node>((*node_)[i]);
  ConfigValue v(*file_, key_line_, *item, path_ + "[" + std::to_string(i) + "]");
  v.item_ = std::move(item);  // yaml-cpp makes the item's handle: it lives as long as v
  return v;
}

void ConfigValue::Fail(const std::string& what) const {
  // A missing value's mark is where the next token starts: the key's line is the one to show.
  const int line = node_->IsNull() ? key_line_ : LineOf(*node_, key_line_);
  throw Bad{*file_ + ":" + std::to_string(line) + ": " + path_ + ": " + what};
}

const std::string& ConfigValue::Scalar(const char* expected) const {
  if (!node_->IsScalar()) {
    Fail(std::string("expected ") + expected + ", got " +
         (node_->IsSequence() ? "a list"
          : node_->IsMap()    ? "a map"
                              : "no value"));
  }
  // From a "\0" escape: no path, word or name can hold one.
  if (node_->Scalar().find('\0') != std::string::npos) Fail("contains a NUL byte");
  return node_->Scalar();
}

int ConfigValue::Int() const {
  const std::string& s = Scalar("an integer");
  int v = 0;
  const char* begin = s.data() + (!s.empty() && s[0] == '+' ? 1 : 0);
  const auto [end, ec] = std::from_chars(begin, s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
    Fail("expected an integer, got " + ConfigShown(s));
  }
  return v;
}

double ConfigValue::Seconds() const {
  const std::string& s = Scalar("a number of seconds");
  double v = 0;
  const char* begin = s.data() + (!s.empty() && s[0] == '+' ? 1 : 0);
  const auto [end, ec] = std::from_chars(begin, s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) {
    Fail("expected a number of seconds, got " + ConfigShown(s));
  }
  return v;
}

bool ConfigValue::Bool() const {
  std::string s = Scalar("true or false");
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  Fail("expected true or false, got " + ConfigShown(node_->Scalar()));
}

std::string ConfigValue::String() const { return Scalar("a string"); }

std::vector<std::string> ConfigValue::Strings() const {
  if (!node_->IsSequence()) return {Scalar("a string or a list of strings")};
  std::vector<std::string> out;
  for (size_t i = 0; i < node_->size(); ++i) out.push_back(Item(i).Scalar("a string"));
  return out;
}

std::vector<std::string> ConfigValue::Words() const {
  if (node_->IsSequence()) return Strings();
  auto words = ShellSplit(Scalar("a command line or a list of words"));
  if (!words.ok()) Fail(words.error());
  if (words.value().empty()) Fail("expected a command, got an empty one");
  return std::move(words).value();
}

YAML::Node ConfigNumber(double v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return YAML::Node(ec == std::errc() ? std::string(buf, end) : "0");
}

YAML::Node ConfigList(const std::vector<std::string>& items) {
  YAML::Node n(YAML::NodeType::Sequence);
  for (const std::string& s : items) n.push_back(s);
  return n;
}

YAML::Node ConfigNull() { return YAML::Node(YAML::NodeType::Null); }

std::string ConfigShown(const std::string& s) {
  return "'" + (s.size() > 60 ? s.substr(0, 60) + "..." : s) + "'";
}

namespace {

int LineOf(const YAML::Node& n, int fallback) {
  const YAML::Mark m = n.Mark();
  return m.is_null() || m.line < 0 ? fallback : m.line + 1;
}

// A setting's value by the type of its Options member (option_table.h's Field): what an entry
// without its own `read` and `show` gets.
void ReadByType(const ConfigValue& v, int Options::*m, Options* o) { o->*m = v.Int(); }
void ReadByType(const ConfigValue& v, double Options::*m, Options* o) { o->*m = v.Seconds(); }
void ReadByType(const ConfigValue& v, bool Options::*m, Options* o) { o->*m = v.Bool(); }
void ReadByType(const ConfigValue& v, std::string Options::*m, Options* o) { o->*m = v.String(); }
void ReadByType(const ConfigValue& v, std::vector<std::string> Options::*m, Options* o) {
  o->*m = v.Strings();
}
// Null ("key:" or "key: ~") means "not set", for the settings that are not set by default.
void ReadByType(const ConfigValue& v, std::optional<int> Options::*m, Options* o) {
  (o->*m).reset();
  if (!v.IsNull()) o->*m = v.Int();
}
void ReadByType(const ConfigValue& v, std::optional<double> Options::*m, Options* o) {
  (o->*m).reset();
  if (!v.IsNull()) o->*m = v.Seconds();
}
template <typename M>
void ReadByType(const ConfigValue&, M, Options*) {
  // A type with no reading of its own: the entry must give `read` (option_table_test checks).
}

YAML::Node ShowByType(const Options& o, int Options::*m) { return YAML::Node(o.*m); }
YAML::Node ShowByType(const Options& o, double Options::*m) { return ConfigNumber(o.*m); }
YAML::Node ShowByType(const Options& o, bool Options::*m) { return YAML::Node(o.*m); }
YAML::Node ShowByType(const Options& o, std::string Options::*m) { return YAML::Node(o.*m); }
YAML::Node ShowByType(const Options& o, std::vector<std::string> Options::*m) {
  return ConfigList(o.*m);
}
YAML::Node ShowByType(const Options& o, std::optional<int> Options::*m) {
  return o.*m ? YAML::Node(*(o.*m)) : ConfigNull();
}
YAML::Node ShowByType(const Options& o, std::optional<double> Options::*m) {
  return o.*m ? ConfigNumber(*(o.*m)) : ConfigNull();
}
template <typename M>
YAML::Node ShowByType(const Options&, M) {
  return ConfigNull();  // the entry must give `show` (option_table_test checks)
}

void Read(const OptionDef& d, const ConfigValue& v, Options* o) {
  if (d.read) return d.read(v, o);
  std::visit([&](auto m) { ReadByType(v, m, o); }, d.field);
}

YAML::Node Show(const OptionDef& d, const Options& o) {
  if (d.show) return d.show(o);
  return std::visit([&](auto m) { return ShowByType(o, m); }, d.field);
}

std::string UnknownKey(const std::string& name) {
  std::string normalized = name;
  std::replace(normalized.begin(), normalized.end(), '-', '_');
  std::vector<std::string> keys;
  for (const OptionDef& d : OptionTable()) keys.emplace_back(d.key);
  const std::string best = text::Nearest(normalized, keys);
  return "unknown key" + (best.empty() ? std::string(" (see man einhorn-cpp.yaml)")
                                       : " (did you mean " + best + "?)");
}

std::string OneLine(const YAML::Node& n) {
  YAML::Emitter out;
  out.SetSeqFormat(YAML::Flow);
  out.SetMapFormat(YAML::Flow);
  out << n;
  return out.c_str();
}

// What the guard (text::GuardDocument) refuses, with its line: anchors and aliases (a cycle,
// or an exponential walk), tags, a second document, deep nesting and huge node counts.
constexpr text::GuardLimits kConfigGuard{
    100000,  // values: the sample with every key has under 100
    8,       // nesting: the format needs 3 (map, list, scalar)
    text::GuardLimits::Tags::kNone};

std::string GuardPhrase(const std::string& file, const text::Refusal& r) {
  using Kind = text::Refusal::Kind;
  std::string why;
  switch (r.kind) {
    case Kind::kSecondDocument:
      why = "more than one YAML document; put every setting in one map";
      break;
    case Kind::kAlias:
    case Kind::kAnchor:
      why = "anchors and aliases (&x, *x) are not allowed here";
      break;
    case Kind::kTag:
      // "?" plain, "!" quoted; explicit tags (!!binary, !custom) mean nothing to a setting.
      why = "tags (" + r.tag + ") are not allowed here";
      break;
    case Kind::kTooManyNodes:
      why = "more than " + std::to_string(kConfigGuard.max_nodes) + " values";
      break;
    case Kind::kTooDeep:
      why = "nested deeper than a config file needs";
      break;
  }
  return file + ":" + std::to_string(r.line) + ": " + why;
}

// The line of the first byte that is not UTF-8 or is a control character YAML does not allow
// in a stream, or 0. A setting holding such bytes could not be printed back by --check-config
// as the same value. A carriage return only ends a line before a line feed (CRLF): yaml-cpp
// kept a lone one in the value (`control_allow_uid: s\r` at the end of the file, found by
// config_fuzz), which --check-config then printed as a line break.
int FirstNonUtf8Line(std::string_view bytes) {
  int line = 1;
  for (size_t i = 0; i < bytes.size();) {
    const char32_t cp = text::NextCodePoint(bytes, &i);
    if (cp == text::kInvalidUtf8 || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') ||
        cp == 0x7f || (cp == '\r' && (i == bytes.size() || bytes[i] != '\n'))) {
      return line;
    }
    if (cp == '\n') ++line;
  }
  return 0;
}

// yaml-cpp decodes the escapes \N and \_ (U+0085, U+00A0) to the single bytes 0x85 and 0xA0,
// which are not UTF-8 (config_fuzz: `command: "\N"` loaded, and --check-config printed a file
// that did not). A decoded value must be text as much as the file is.
void CheckDecodedText(const YAML::Node& node, const std::string& file) {
  if (node.IsScalar()) {
    const std::string& value = node.Scalar();
    for (size_t i = 0; i < value.size();) {
      if (text::NextCodePoint(value, &i) == text::kInvalidUtf8) {
        throw Bad{file + ":" + std::to_string(LineOf(node, 1)) +
                  ": a value that is not UTF-8 text (yaml-cpp decodes the escapes \\N and \\_ "
                  "to single bytes; write the character itself, or \\x85 or \\xA0)"};
      }
    }
    return;
  }
  for (const auto& item : node) {
    if (node.IsMap()) {
      CheckDecodedText(item.first, file);
      CheckDecodedText(item.second, file);
    } else {
      CheckDecodedText(item, file);
    }
  }
}

LoadedConfig LoadOrThrow(const ConfigSource& source) {
  const std::string& file = source.path;
  if (source.text.size() > kMaxConfigBytes) {
    throw Bad{file + ": larger than " + std::to_string(kMaxConfigBytes >> 20) +
              " MiB; this is not a config file"};
  }
  if (const int line = FirstNonUtf8Line(source.text)) {
    throw Bad{file + ":" + std::to_string(line) + ": not UTF-8 text (or a control character)"};
  }
  YAML::Node root;
  try {
    // Never YAML::LoadAll: on some malformed input its document loop does not end.
    text::GuardDocument(source.text, kConfigGuard,
                        [&](const text::Refusal& r) { return GuardPhrase(file, r); });
    root = YAML::Load(source.text);
  } catch (const YAML::Exception& e) {
    throw Bad{file + ":" + std::to_string(e.mark.is_null() ? 1 : e.mark.line + 1) +
              ": not valid YAML: " + e.msg};
  }
  LoadedConfig loaded;
  if (!root.IsDefined() || root.IsNull()) return loaded;
  CheckDecodedText(root, file);
  if (!root.IsMap()) {
    throw Bad{file + ":" + std::to_string(LineOf(root, 1)) +
              ": expected a map of settings (key: value), got " +
              (root.IsSequence() ? "a list" : "a scalar")};
  }
  std::map<std::string, int> seen;  // key -> line
  for (const auto& entry : root) {
    const YAML::Node& key_node = entry.first;
    const int line = LineOf(key_node, 1);
    if (!key_node.IsScalar()) {
      throw Bad{file + ":" + std::to_string(line) + ": a key must be a name, not " +
                (key_node.IsSequence() ? "a list"
                 : key_node.IsMap()    ? "a map"
                                       : "empty")};
    }
    const std::string& name = key_node.Scalar();
    const ConfigValue at_key(file, line, key_node, name);
    const OptionDef* def = FindOption(name);
    if (!def) at_key.Fail(UnknownKey(name));
    if (auto [it, fresh] = seen.emplace(name, line); !fresh) {
      at_key.Fail("set twice (first on line " + std::to_string(it->second) + ")");
    }
    const ConfigValue value(file, line, entry.second, name);
    // Null ("key:" or "key: ~") means "not set", for the settings that are not set by default.
    if (value.IsNull() && !Show(*def, Options{}).IsNull()) value.Fail("has no value");
    Read(*def, value, &loaded.options);
    loaded.keys.insert(name);
  }
  // As the flags do: a long timer ack leaves the default ack timeout a minute of room.
  if (!loaded.keys.contains("ack_timeout")) FitAckTimeout(&loaded.options);
  // Ranges: checked now with a stand-in for what the command line may still give.
  Options probe = loaded.options;
  if (!loaded.keys.contains("command")) probe.command = {"command"};
  if (!loaded.keys.contains("socket_path")) probe.socket_path.clear();
  if (auto problem = FindProblem(probe)) {
    const auto at = seen.find(problem->key);
    throw Bad{file + ":" + std::to_string(at == seen.end() ? 1 : at->second) + ": " + problem->key +
              ": " + problem->message};
  }
  return loaded;
}

}  // namespace

Result<LoadedConfig> LoadConfig(const ConfigSource& source) {
  std::string error;
  try {
    return LoadOrThrow(source);
  } catch (const Bad& e) {
    error = e.what();
  } catch (const YAML::Exception& e) {
    error = source.path + ": not valid YAML: " + e.msg;
  }
  // One line, whatever the parser or the file put in it.
  for (char& ch : error) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  return Result<LoadedConfig>::Error(error);
}

std::string RenderConfig(const Options& o) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const OptionDef& d : OptionTable()) {
    out << YAML::Key << d.key << YAML::Value << Show(d, o);
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string SettingText(const OptionDef& def, const Options& o) { return OneLine(Show(def, o)); }

FlagSpec FlagOf(const std::string& key) {
  const OptionDef* d = FindOption(key);
  return d ? d->flag : FlagSpec{};
}

bool IsLiveKey(const std::string& key) {
  const OptionDef* d = FindOption(key);
  return d && d->live;
}

std::vector<std::string> ConfigKeys() {
  std::vector<std::string> names;
  for (const OptionDef& d : OptionTable()) names.emplace_back(d.key);
  return names;
}

Result<ReloadedOptions> ReconcileReload(const Options& running, const Options& reread) {
  ReloadedOptions r;
  r.options = reread;
  std::vector<std::string> restart;
  for (const OptionDef& d : OptionTable()) {
    const std::string before = SettingText(d, running);
    const std::string after = SettingText(d, reread);
    if (before == after) continue;
    if (d.live) {
      r.changed.push_back(std::string(d.key) + ": " + before + " -> " + after);
    } else {
      restart.push_back(std::string(d.key) + " (" + before + " -> " + after + ")");
    }
  }
  if (!restart.empty()) {
    std::string list;
    for (const std::string& s : restart) list += (list.empty() ? "" : ", ") + s;
    return Result<ReloadedOptions>::Error(
        "the config changes what only a restart of the master can change: " + list +
        "; nothing was changed");
  }
  return r;
}

}  // namespace einhorn::core
