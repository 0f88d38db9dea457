#include "core/wire.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <exception>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "core/text.h"

namespace einhorn::core::wire {

std::string RubyStringInspect(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\x1b':
        out += "\\e";
        break;
      case '#':
        if (i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '$' || s[i + 1] == '@')) {
          out += "\\#";
        } else {
          out += '#';
        }
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == '\x7f') {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

namespace {

// ---------------------------------------------------------------------------------------
// Bytes and UTF-8

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Empty if every character may appear in a YAML stream, else why not.
std::string CheckPrintable(std::string_view doc) {
  size_t i = 0;
  while (i < doc.size()) {
    const size_t at = i;
    const char32_t cp = text::NextCodePoint(doc, &i);
    if (cp == text::kInvalidUtf8) return "invalid UTF-8 at byte " + std::to_string(at);
    if (!text::IsYamlPrintable(cp)) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
      return std::string("control character ") + buf + " at byte " + std::to_string(at);
    }
  }
  return {};
}

// YAML reads CR LF and a lone CR as line breaks, but yaml-cpp keeps a CR that ends the input
// or stands alone inside the value ("pid: 1234\r" would not be an integer).
std::string NormalizeBreaks(std::string_view doc) {
  std::string out;
  out.reserve(doc.size());
  for (size_t i = 0; i < doc.size(); ++i) {
    if (doc[i] != '\r') {
      out.push_back(doc[i]);
    } else if (i + 1 >= doc.size() || doc[i + 1] != '\n') {
      out.push_back('\n');
    }
  }
  return out;
}

// A YAML double-quoted scalar that Psych, go-yaml v2 and yaml-cpp read back byte for byte
// (text::Quote::kWire says what it escapes, and why).
void AppendDoubleQuoted(std::string_view s, std::string* out) {
  text::AppendQuoted(*out, s, text::Quote::kWire);
}

// ---------------------------------------------------------------------------------------
// Scalars, typed as Ruby Psych (YAML 1.1) types them: Einhorn's behaviour depends on those
// types (an integer pid is acked, a string one is not; `id: 7` is echoed as 7).

enum class ScalarType { kNull, kBool, kInt, kFloat, kString };

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsDigitIn(char c, int base) {
  const int v = HexValue(c);
  return v >= 0 && v < base;
}

// Psych's INTEGER: [-+]? then 0b[01_,]+ | 0[0-7_,]+ | 0 | [1-9]([0-9]|,[0-9]|_[0-9])* |
// 0x[0-9a-fA-F_,]+. Sets *base and the digits (separators removed) when it matches.
bool MatchPsychInt(std::string_view s, bool* negative, int* base, std::string* digits) {
  size_t i = 0;
  *negative = false;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) *negative = s[i++] == '-';
  const std::string_view body = s.substr(i);
  digits->clear();
  const auto prefixed = [&](size_t skip, int b) {
    if (body.size() <= skip) return false;
    for (char c : body.substr(skip)) {
      if (c == '_' || c == ',') continue;
      if (!IsDigitIn(c, b)) return false;
      digits->push_back(c);
    }
    *base = b;
    if (digits->empty()) digits->push_back('0');  // "0b_" is 0 to Ruby, too
    return true;
  };
  if (body.starts_with("0b")) return prefixed(2, 2);
  if (body.starts_with("0x")) return prefixed(2, 16);
  if (body.size() >= 2 && body[0] == '0') return prefixed(1, 8);
  if (body.empty() || body[0] < '0' || body[0] > '9') return false;
  if (body == "0") {
    *base = 10;
    digits->push_back('0');
    return true;
  }
  for (size_t k = 0; k < body.size(); ++k) {
    const char c = body[k];
    if (c == '_' || c == ',') {
      // A separator must sit between digits ("1,000", not "1,,0" or "1_").
      if (k == 0 || k + 1 >= body.size() || body[k + 1] < '0' || body[k + 1] > '9') return false;
      continue;
    }
    if (c < '0' || c > '9') return false;
    digits->push_back(c);
  }
  *base = 10;
  return true;
}

bool IsPsychInt(std::string_view s) {
  bool negative = false;
  int base = 10;
  std::string digits;
  return MatchPsychInt(s, &negative, &base, &digits);
}

std::optional<std::int64_t> ParsePsychInt(std::string_view s) {
  bool negative = false;
  int base = 10;
  std::string digits;
  if (!MatchPsychInt(s, &negative, &base, &digits)) return std::nullopt;
  // Accumulate towards the negative side, which has room for INT64_MIN.
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  std::int64_t value = 0;
  for (char c : digits) {
    const int d = HexValue(c);
    if (value < (kMin + d) / base) return std::nullopt;
    value = value * base - d;
  }
  if (negative) return value;
  if (value == kMin) return std::nullopt;
  return -value;
}

// Psych's FLOAT: [-+]?([0-9][0-9_,]*)?\.[0-9]*([eE][-+][0-9]+)? (a '.' is required, so
// "1e5" is a string to Ruby), plus .inf, -.inf and .nan in any case.
bool IsPsychFloat(std::string_view s) {
  const std::string lower = AsciiLower(s);
  if (lower == ".inf" || lower == "+.inf" || lower == "-.inf" || lower == ".nan") return true;
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  bool digits = false;
  if (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    while (i < s.size() && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == ',')) ++i;
    digits = true;
  }
  if (i >= s.size() || s[i] != '.') return false;
  ++i;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    ++i;
    digits = true;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i >= s.size() || (s[i] != '-' && s[i] != '+')) return false;
    ++i;
    const size_t exp_start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == exp_start) return false;
  }
  return i == s.size() && digits;  // "." and "+." are strings
}

ScalarType ResolvePlain(std::string_view s) {
  if (s.empty() || s == "~") return ScalarType::kNull;
  const std::string lower = AsciiLower(s);
  if (lower == "null") return ScalarType::kNull;
  if (lower == "yes" || lower == "true" || lower == "on" || lower == "no" || lower == "false" ||
      lower == "off") {
    return ScalarType::kBool;
  }
  if (IsPsychFloat(s)) return ScalarType::kFloat;
  if (IsPsychInt(s)) return ScalarType::kInt;
  return ScalarType::kString;
}

bool PlainBoolValue(std::string_view s) {
  const std::string lower = AsciiLower(s);
  return lower == "yes" || lower == "true" || lower == "on";
}

constexpr std::string_view kCoreTagPrefix = "tag:yaml.org,2002:";

// yaml-cpp reports "?" for a plain scalar or untagged collection, "!" for a quoted scalar (or
// the explicit non-specific tag), and expands "!!x" to the core prefix.
ScalarType TypeOf(const YAML::Node& node) {
  if (node.IsNull()) return ScalarType::kNull;
  const std::string& tag = node.Tag();
  if (tag == "!" || tag == std::string(kCoreTagPrefix) + "str") return ScalarType::kString;
  return ResolvePlain(node.Scalar());
}

// ---------------------------------------------------------------------------------------
// The guard pass: sees every event before any node is built.

// What the guard refuses, in the words ParseRequest's detail uses ("refused: alias").
std::string Phrase(const Limits& limits, const text::Refusal& r) {
  using Kind = text::Refusal::Kind;
  switch (r.kind) {
    case Kind::kSecondDocument:
      return "more than one document";
    case Kind::kAlias:
      return "alias";
    case Kind::kAnchor:
      return "anchor";
    case Kind::kTag:
      return "tag " + r.tag;
    case Kind::kTooManyNodes:
      return "more than " + std::to_string(limits.max_nodes) + " nodes";
    case Kind::kTooDeep:
      return "nested deeper than " + std::to_string(limits.max_depth);
  }
  return "refused";
}

// Checks, guards and loads one document. Throws text::Error or YAML::Exception.
YAML::Node LoadGuarded(std::string_view raw, const Limits& limits) {
  if (std::string why = CheckPrintable(raw); !why.empty()) throw text::Error(why);
  const std::string doc = NormalizeBreaks(raw);
  const text::GuardLimits guard{limits.max_nodes, limits.max_depth,
                                text::GuardLimits::Tags::kPsychTypes};
  if (!text::GuardDocument(doc, guard,
                           [&](const text::Refusal& r) { return Phrase(limits, r); })) {
    throw text::Error("empty document");
  }
  return YAML::Load(doc);
}

// ---------------------------------------------------------------------------------------
// Requests

// Ruby's #inspect of what Psych would have built, for "Argument is a X, not a string: Y".
// Bounded by the guard (depth and node count).
std::string RubyInspect(const YAML::Node& node) {
  if (node.IsSequence()) {
    std::string out = "[";
    for (size_t i = 0; i < node.size(); ++i) {
      if (i > 0) out += ", ";
      out += RubyInspect(node[i]);
    }
    return out + "]";
  }
  if (node.IsMap()) {
    std::string out = "{";
    bool first = true;
    for (const auto& kv : node) {
      if (!first) out += ", ";
      first = false;
      out += RubyInspect(kv.first) + "=>" + RubyInspect(kv.second);
    }
    return out + "}";
  }
  switch (TypeOf(node)) {
    case ScalarType::kNull:
      return "nil";
    case ScalarType::kBool:
      return PlainBoolValue(node.Scalar()) ? "true" : "false";
    case ScalarType::kInt:
      if (auto v = ParsePsychInt(node.Scalar())) return std::to_string(*v);
      return node.Scalar();
    case ScalarType::kFloat: {
      const std::string lower = AsciiLower(node.Scalar());
      if (lower == ".nan") return "NaN";
      if (lower == "-.inf") return "-Infinity";
      if (lower == ".inf" || lower == "+.inf") return "Infinity";
      return node.Scalar();
    }
    case ScalarType::kString:
      return RubyStringInspect(node.Scalar());
  }
  return node.Scalar();
}

std::string RubyClassName(const YAML::Node& node) {
  if (node.IsSequence()) return "Array";
  if (node.IsMap()) return "Hash";
  switch (TypeOf(node)) {
    case ScalarType::kNull:
      return "NilClass";
    case ScalarType::kBool:
      return PlainBoolValue(node.Scalar()) ? "TrueClass" : "FalseClass";
    case ScalarType::kInt:
      return "Integer";
    case ScalarType::kFloat:
      return "Float";
    case ScalarType::kString:
      return "String";
  }
  return "Object";
}

// Ruby truthiness: nil and false are "not given".
bool IsFalsy(const YAML::Node& node) {
  if (!node.IsScalar() && !node.IsNull()) return false;
  const ScalarType t = TypeOf(node);
  return t == ScalarType::kNull || (t == ScalarType::kBool && !PlainBoolValue(node.Scalar()));
}

// An id-like scalar, or nullopt when absent to Ruby (null or false).
std::optional<Id> ToId(const YAML::Node& node) {
  if (IsFalsy(node)) return std::nullopt;
  switch (TypeOf(node)) {
    case ScalarType::kBool:
      return Id{Id::Kind::kBool, "true"};
    case ScalarType::kInt:
      return Id{Id::Kind::kInt, node.Scalar()};
    case ScalarType::kFloat:
      return Id{Id::Kind::kFloat, node.Scalar()};
    case ScalarType::kNull:
    case ScalarType::kString:
      break;
  }
  return Id{Id::Kind::kString, node.Scalar()};
}

void ReadArgs(const YAML::Node& node, Request* request) {
  if (IsFalsy(node)) return;  // Einhorn: "No args provided"
  if (!node.IsSequence()) {
    request->args_state = Request::ArgsState::kNotList;
    return;
  }
  for (const YAML::Node& element : node) {
    if (!element.IsScalar() || TypeOf(element) != ScalarType::kString) {
      request->args_state = Request::ArgsState::kBadElement;
      request->bad_arg = "Argument is a " + RubyClassName(element) +
                         ", not a string: " + RubyInspect(element);
      request->args.clear();
      return;
    }
    request->args.push_back(element.Scalar());
  }
  request->args_state = Request::ArgsState::kList;
}

ParseResult NotParsed(std::string detail) {
  ParseResult result;
  result.kind = ParseResult::Kind::kNotParsed;
  result.detail = std::move(detail);
  return result;
}

ParseResult ParseRequestOrThrow(std::string_view document, const Limits& limits) {
  const YAML::Node root = LoadGuarded(document, limits);
  if (!root.IsMap()) return NotParsed("not a mapping");

  ParseResult result;
  Request& request = result.request;
  bool seen_command = false, seen_id = false, seen_args = false, seen_pid = false,
       seen_request_id = false, seen_user = false;
  // Duplicate keys: the first wins (Psych keeps the last; a client that sends two cannot rely
  // on either, and taking the first means a later key cannot override what a log shows first).
  for (const auto& kv : root) {
    if (!kv.first.IsScalar()) continue;
    const std::string& key = kv.first.Scalar();
    const YAML::Node& value = kv.second;
    if (key == "command" && !std::exchange(seen_command, true)) {
      if (value.IsNull()) continue;
      if (!value.IsScalar()) return NotParsed("command is not a scalar");
      request.command = value.Scalar();
      request.has_command = true;
    } else if (key == "id" && !std::exchange(seen_id, true)) {
      if (!value.IsScalar() && !value.IsNull()) return NotParsed("id is not a scalar");
      request.id = ToId(value);
    } else if (key == "args" && !std::exchange(seen_args, true)) {
      ReadArgs(value, &request);
    } else if (key == "pid" && !std::exchange(seen_pid, true)) {
      request.pid_present = !IsFalsy(value);
      if (value.IsScalar() && TypeOf(value) == ScalarType::kInt) {
        request.pid = ParsePsychInt(value.Scalar());
      }
    } else if (key == "request_id" && !std::exchange(seen_request_id, true)) {
      if (value.IsScalar()) request.ping_request_id = ToId(value);
    } else if (key == "user" && !std::exchange(seen_user, true)) {
      if (value.IsScalar()) request.user = value.Scalar();
    }
  }
  if (!request.has_command) result.kind = ParseResult::Kind::kNoCommand;
  return result;
}

// A value for `request_id`: plain when it reads back as the same kind, else double-quoted
// (a caller-made Id with odd text degrades to a string rather than breaking the document).
void AppendIdValue(const Id& id, std::string* out) {
  ScalarType want = ScalarType::kString;
  switch (id.kind) {
    case Id::Kind::kInt:
      want = ScalarType::kInt;
      break;
    case Id::Kind::kFloat:
      want = ScalarType::kFloat;
      break;
    case Id::Kind::kBool:
      want = ScalarType::kBool;
      break;
    case Id::Kind::kString:
      break;
  }
  if (want != ScalarType::kString && ResolvePlain(id.text) == want) {
    out->append(id.text);
  } else {
    AppendDoubleQuoted(id.text, out);
  }
}

std::optional<Reply> ParseReplyDocOrThrow(const std::string& doc) {
  const YAML::Node root = LoadGuarded(doc, Limits{});
  if (!root.IsMap()) return std::nullopt;
  Reply reply;
  bool seen_message = false, seen_request_id = false, seen_wait = false, seen_error = false;
  for (const auto& kv : root) {
    if (!kv.first.IsScalar()) continue;
    const std::string& key = kv.first.Scalar();
    const YAML::Node& value = kv.second;
    const auto is_true = [&] {
      return value.IsScalar() && TypeOf(value) == ScalarType::kBool &&
             PlainBoolValue(value.Scalar());
    };
    if (key == "message" && !std::exchange(seen_message, true)) {
      // A Ruby master quotes strings that look like other types; take any scalar's text.
      if (!value.IsScalar()) return std::nullopt;
      reply.message = value.Scalar();
    } else if (key == "request_id" && !std::exchange(seen_request_id, true)) {
      if (value.IsScalar()) reply.request_id = ToId(value);
    } else if (key == "wait" && !std::exchange(seen_wait, true)) {
      reply.wait = is_true();
    } else if (key == "error" && !std::exchange(seen_error, true)) {
      reply.error = is_true();
    }
  }
  if (!seen_message) return std::nullopt;
  return reply;
}

// The double-quoted scalar at doc[*pos] (after its opening quote) as yaml-cpp decodes it, for
// the escapes EncodeReply writes (\" \\ \n \r \t \xXX \uXXXX) over printable ASCII; nullopt
// for anything else (a raw non-ASCII or control byte, another escape, a surrogate), which the
// caller leaves to yaml-cpp and its guards. *pos ends after the closing quote.
std::optional<std::string> FastQuoted(std::string_view doc, size_t* pos) {
  std::string out;
  size_t i = *pos;
  const auto hex = [&](int digits, unsigned* value) {
    if (i + static_cast<size_t>(digits) > doc.size()) return false;
    *value = 0;
    for (int k = 0; k < digits; ++k) {
      const int v = HexValue(doc[i++]);
      if (v < 0) return false;
      *value = *value * 16 + static_cast<unsigned>(v);
    }
    return true;
  };
  while (i < doc.size()) {
    const size_t run = i;
    while (i < doc.size() && doc[i] >= 0x20 && doc[i] < 0x7F && doc[i] != '"' && doc[i] != '\\') {
      ++i;
    }
    out.append(doc, run, i - run);
    if (i >= doc.size()) return std::nullopt;
    const char c = doc[i++];
    if (c == '"') {
      *pos = i;
      return out;
    }
    if (c != '\\' || i >= doc.size()) return std::nullopt;
    unsigned cp = 0;
    switch (doc[i++]) {
      case '"':
        out += '"';
        continue;
      case '\\':
        out += '\\';
        continue;
      case 'n':
        out += '\n';
        continue;
      case 'r':
        out += '\r';
        continue;
      case 't':
        out += '\t';
        continue;
      case 'x':
        if (!hex(2, &cp)) return std::nullopt;
        break;
      case 'u':
        if (!hex(4, &cp) || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
        break;
      default:
        return std::nullopt;
    }
    text::AppendUtf8(out, cp);
  }
  return std::nullopt;
}

// A reply as EncodeReply writes it has its message first: that string (800 KB for the status
// of 5000 workers, which took yaml-cpp ~0.3 s of CPU) is decoded by FastQuoted, and the
// rest of the document, with an empty message in its place, by yaml-cpp as before. Any doubt
// and the whole line goes to yaml-cpp.
std::optional<Reply> ParseReplyOrThrow(std::string_view line) {
  const std::string doc = Unescape(line);
  constexpr std::string_view kHead = "---\nmessage: \"";
  if (doc.starts_with(kHead)) {
    size_t end = kHead.size();
    std::optional<std::string> message = FastQuoted(doc, &end);
    if (message && end < doc.size() && doc[end] == '\n') {
      std::optional<Reply> reply =
          ParseReplyDocOrThrow("---\nmessage: \"\"\n" + doc.substr(end + 1));
      if (reply) {
        reply->message = std::move(*message);
        return reply;
      }
    }
  }
  return ParseReplyDocOrThrow(doc);
}

}  // namespace

std::optional<Reply> ParseReplySlow(std::string_view line) {
  try {
    return ParseReplyDocOrThrow(Unescape(line));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string Escape(std::string_view payload) {
  std::string out;
  // Room for a few escapes and the framing newline callers append (a status reply of 1000
  // workers is 155 KB: one copy, appended in runs, not a byte at a time).
  out.reserve(payload.size() + payload.size() / 8 + 1);
  size_t i = 0;
  while (i < payload.size()) {
    size_t run = i;
    while (run < payload.size() && payload[run] != '%' && payload[run] != '\n') ++run;
    out.append(payload, i, run - i);
    if (run == payload.size()) break;
    out.append(payload[run] == '%' ? "%25" : "%0A");
    i = run + 1;
  }
  return out;
}

std::string Unescape(std::string_view line) {
  std::string out;
  out.reserve(line.size());
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '%' && i + 2 < line.size() && HexValue(line[i + 1]) >= 0 &&
        HexValue(line[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(line[i + 1]) * 16 + HexValue(line[i + 2])));
      i += 2;
    } else {
      out.push_back(line[i]);
    }
  }
  return out;
}

bool LineBuffer::Append(std::string_view bytes) {
  if (overflowed_) return false;
  // Drop what NextLine has consumed once it is most of the buffer: amortized O(1) per byte.
  if (start_ > 0 && (start_ == buffer_.size() || start_ >= buffer_.size() / 2)) {
    buffer_.erase(0, start_);
    complete_end_ -= start_;
    start_ = 0;
  }
  size_t line_start = complete_end_;
  size_t scan = buffer_.size();
  buffer_.append(bytes);
  while (true) {
    const size_t nl = buffer_.find('\n', scan);
    const size_t end = nl == std::string::npos ? buffer_.size() : nl;
    if (end - line_start > max_line_) {
      overflowed_ = true;
      complete_end_ = line_start;
      buffer_.resize(line_start);  // keep the complete lines before it, drop the rest
      return false;
    }
    if (nl == std::string::npos) break;
    line_start = nl + 1;
    scan = line_start;
  }
  complete_end_ = line_start;
  return true;
}

std::optional<std::string> LineBuffer::NextLine() {
  if (start_ >= complete_end_) return std::nullopt;
  const size_t nl = buffer_.find('\n', start_);  // exists: Append saw it before complete_end_
  size_t end = nl;
  if (end > start_ && buffer_[end - 1] == '\r') --end;
  std::string line = buffer_.substr(start_, end - start_);
  start_ = nl + 1;
  return line;
}

ParseResult ParseRequest(std::string_view document, const Limits& limits) {
  try {
    return ParseRequestOrThrow(document, limits);
  } catch (const YAML::DeepRecursion& e) {
    return NotParsed(std::string("too deep: ") + e.what());
  } catch (const YAML::Exception& e) {
    return NotParsed(std::string("YAML: ") + e.what());
  } catch (const text::Error& e) {
    return NotParsed(std::string("refused: ") + e.what());
  } catch (const std::exception& e) {
    return NotParsed(std::string("error: ") + e.what());
  }
}

std::string IdYaml(const Id& id) {
  std::string out;
  AppendIdValue(id, &out);
  return out;
}

std::string EncodeReply(const Reply& reply) {
  std::string doc;
  // One allocation for a big message (status: 155 KB at 1000 workers, quoted in runs).
  doc.reserve(reply.message.size() + reply.message.size() / 8 + 96);
  doc += "---\nmessage: ";
  AppendDoubleQuoted(reply.message, &doc);
  doc += '\n';
  if (reply.request_id) {
    doc += "request_id: ";
    AppendIdValue(*reply.request_id, &doc);
    doc += '\n';
  }
  if (reply.wait) doc += "wait: true\n";
  if (reply.error) doc += "error: true\n";
  std::string line = Escape(doc);
  line += '\n';
  return line;
}

std::string EncodeRequest(const OutgoingRequest& request) {
  // Einhorn (Psych), our master and a human reading a capture all agree on this shape.
  const std::string colon = request.compact ? ":" : ": ";
  const std::string comma = request.compact ? "," : ", ";
  const auto key = [&](const char* name, std::string* doc) {
    if (doc->size() > 1) *doc += comma;
    *doc += '"';
    *doc += name;
    *doc += '"';
    *doc += colon;
  };
  std::string doc = "{";
  key("command", &doc);
  AppendDoubleQuoted(request.command, &doc);
  if (request.id) {
    key("id", &doc);
    doc += std::to_string(*request.id);
  }
  if (request.args) {
    key("args", &doc);
    doc += "[";
    for (size_t i = 0; i < request.args->size(); ++i) {
      if (i > 0) doc += comma;
      AppendDoubleQuoted((*request.args)[i], &doc);
    }
    doc += "]";
  }
  if (request.user) {
    key("user", &doc);
    AppendDoubleQuoted(*request.user, &doc);
  }
  if (request.pid) {
    key("pid", &doc);
    doc += std::to_string(*request.pid);
  }
  doc += "}";
  std::string line = Escape(doc);
  line += '\n';
  return line;
}

std::string EncodeRequest(const std::string& command, const std::vector<std::string>& args,
                          std::optional<std::int64_t> id) {
  return EncodeRequest(OutgoingRequest{command, id, args, std::nullopt, std::nullopt});
}

std::optional<Reply> ParseReply(std::string_view line) {
  try {
    return ParseReplyOrThrow(line);
  } catch (const std::exception&) {
    // YAML::Exception, text::Error and allocation failures alike: not a reply we can read.
    return std::nullopt;
  }
}

}  // namespace einhorn::core::wire
