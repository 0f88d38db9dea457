#include "core/text.h"

#include <yaml-cpp/anchor.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>
#include <system_error>
#include <utility>

namespace einhorn::core::text {

// ---------------------------------------------------------------------------------------
// UTF-8

char32_t NextCodePoint(std::string_view s, size_t* i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(*i);
  if (b0 < 0x80) {
    ++*i;
    return b0;
  }
  size_t len = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    ++*i;  // a continuation byte, C0/C1 (always overlong) or F5..FF
    return kInvalidUtf8;
  }
  if (s.size() - *i < len) {
    ++*i;
    return kInvalidUtf8;
  }
  for (size_t k = 1; k < len; ++k) {
    const unsigned char b = byte(*i + k);
    if ((b & 0xC0) != 0x80) {
      ++*i;
      return kInvalidUtf8;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++*i;
    return kInvalidUtf8;
  }
  *i += len;
  return cp;
}

bool IsYamlPrintable(char32_t cp) {
  return cp == 0x09 || cp == 0x0A || cp == 0x0D || (cp >= 0x20 && cp <= 0x7E) || cp == 0x85 ||
         (cp >= 0xA0 && cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD) ||
         (cp >= 0x10000 && cp <= 0x10FFFF);
}

bool IsPrintableAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7E; });
}

// ---------------------------------------------------------------------------------------
// Quoted strings

void AppendUtf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

namespace {

// How the three styles differ; see Quote in the header.
struct Style {
  const char* hex;        // digits, in the style's case
  bool bad_byte_as_hex;   // an invalid byte as \xXX, else U+FFFD
  bool escape_nonchars;   // U+FEFF, U+FFFE, U+FFFF
  bool escape_plus;       // '+'
  bool latin1_as_x;       // code points up to U+00FF as \xXX, else \u00XX
};

constexpr Style kStyles[] = {
    /* kJson */ {"0123456789abcdef", false, false, false, false},
    /* kYaml */ {"0123456789ABCDEF", true, true, false, false},
    /* kWire */ {"0123456789ABCDEF", false, true, true, true},
};

void HexEscape(std::string& out, const Style& style, char kind, unsigned value, int digits) {
  out += '\\';
  out += kind;
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out += style.hex[(value >> shift) & 0xF];
}

bool MustEscape(const Style& style, char32_t cp) {
  return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 ||
         (style.escape_nonchars && (cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF)) ||
         (style.escape_plus && cp == '+');
}

}  // namespace

void AppendQuoted(std::string& out, std::string_view s, Quote quote) {
  const Style& style = kStyles[static_cast<int>(quote)];
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    // The common case, without decoding: a run of printable ASCII that needs nothing (the
    // status reply of 1000 workers is mostly this).
    size_t run = i;
    while (run < s.size()) {
      const auto c = static_cast<unsigned char>(s[run]);
      if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\' || (c == '+' && style.escape_plus)) break;
      ++run;
    }
    out.append(s, i, run - i);
    i = run;
    if (i == s.size()) break;
    const size_t at = i;
    const char32_t cp = NextCodePoint(s, &i);
    switch (cp) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case kInvalidUtf8:
        if (style.bad_byte_as_hex) {
          HexEscape(out, style, 'x', static_cast<unsigned char>(s[at]), 2);
        } else {
          out += "\xEF\xBF\xBD";  // U+FFFD
        }
        continue;
      default:
        break;
    }
    if (!MustEscape(style, cp)) {
      out.append(s, at, i - at);
    } else if (style.latin1_as_x && cp <= 0xFF) {
      HexEscape(out, style, 'x', cp, 2);
    } else {
      HexEscape(out, style, 'u', cp, 4);  // every escaped code point is below U+10000
    }
  }
  out += '"';
}

std::string Quoted(std::string_view s, Quote style) {
  std::string out;
  out.reserve(s.size() + 2);
  AppendQuoted(out, s, style);
  return out;
}

void AppendJsonNumber(std::string& out, double value) {
  if (!std::isfinite(value)) {
    out += "null";
    return;
  }
  char buf[32];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, value).ptr);
}

// ---------------------------------------------------------------------------------------
// Base64

namespace {
constexpr std::string_view kBase64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}  // namespace

std::string EncodeBase64(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(in[k]); };
  for (; i + 3 <= in.size(); i += 3) {
    const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    for (int shift : {18, 12, 6, 0}) out += kBase64[(v >> shift) & 63];
  }
  if (in.size() - i == 1) {
    const unsigned v = byte(i) << 16;
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += "==";
  } else if (in.size() - i == 2) {
    const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += kBase64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> DecodeBase64(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    unsigned v = 0;
    int pad = 0;
    for (size_t k = 0; k < 4; ++k) {
      const char c = in[i + k];
      if (c == '=' && last && k >= 2) {
        ++pad;
        v <<= 6;
        continue;
      }
      const size_t d = kBase64.find(c);
      if (d == std::string_view::npos || pad > 0) return std::nullopt;
      v = (v << 6) | static_cast<unsigned>(d);
    }
    // The bits padding throws away must be zero, or two texts would decode alike.
    if ((pad == 1 && (v & 0xFF) != 0) || (pad == 2 && (v & 0xFFFF) != 0)) return std::nullopt;
    out += static_cast<char>((v >> 16) & 0xFF);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(v & 0xFF);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The guard, and the tree it builds when asked

namespace {

constexpr std::string_view kCoreTagPrefix = "tag:yaml.org,2002:";

bool IsAllowedTag(const std::string& tag, GuardLimits::Tags tags) {
  if (tag.empty() || tag == "?" || tag == "!") return true;
  if (tags == GuardLimits::Tags::kNone || !std::string_view(tag).starts_with(kCoreTagPrefix)) {
    return false;
  }
  if (tags == GuardLimits::Tags::kAnyCore) return true;
  const std::string_view name = std::string_view(tag).substr(kCoreTagPrefix.size());
  return name == "str" || name == "int" || name == "float" || name == "bool" || name == "null" ||
         name == "seq" || name == "map";
}

class Guard : public YAML::EventHandler {
 public:
  // With a root, also builds the tree there.
  Guard(const GuardLimits& limits, const Phrase& phrase, Node* root)
      : limits_(limits), phrase_(phrase), root_(root) {}

  void OnDocumentStart(const YAML::Mark& m) override {
    if (++documents_ > 1) Refuse(m, Refusal::Kind::kSecondDocument);
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t anchor) override {
    Add(m, anchor, "", Node::Kind::kNull);
  }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { Refuse(m, Refusal::Kind::kAlias); }
  void OnScalar(const YAML::Mark& m, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    if (Node* node = Add(m, anchor, tag, Node::Kind::kScalar)) node->scalar = value;
  }
  void OnSequenceStart(const YAML::Mark& m, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(m, Add(m, anchor, tag, Node::Kind::kSequence));
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapStart(const YAML::Mark& m, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(m, Add(m, anchor, tag, Node::Kind::kMap));
  }
  void OnMapEnd() override { Close(); }
  void OnAnchor(const YAML::Mark& m, const std::string&) override {
    Refuse(m, Refusal::Kind::kAnchor);
  }

 private:
  [[noreturn]] void Refuse(const YAML::Mark& m, Refusal::Kind kind, std::string tag = {}) const {
    throw Error(phrase_(Refusal{kind, std::move(tag), m.is_null() ? 1 : m.line + 1}));
  }
  Node* Add(const YAML::Mark& m, YAML::anchor_t anchor, const std::string& tag,
            Node::Kind kind) {
    if (anchor != YAML::NullAnchor) Refuse(m, Refusal::Kind::kAnchor);
    if (!IsAllowedTag(tag, limits_.tags)) Refuse(m, Refusal::Kind::kTag, tag);
    if (++nodes_ > limits_.max_nodes) Refuse(m, Refusal::Kind::kTooManyNodes);
    if (root_ == nullptr) return nullptr;
    // Only the innermost open collection grows, so the pointers to its ancestors in stack_
    // stay valid.
    Node* node = stack_.empty() ? root_ : &stack_.back()->items.emplace_back();
    node->kind = kind;
    node->tag = tag;
    return node;
  }
  void Open(const YAML::Mark& m, Node* node) {
    if (++depth_ > limits_.max_depth) Refuse(m, Refusal::Kind::kTooDeep);
    if (root_ != nullptr) stack_.push_back(node);
  }
  void Close() {
    --depth_;
    if (root_ != nullptr) stack_.pop_back();
  }

  const GuardLimits& limits_;
  const Phrase& phrase_;
  Node* root_;
  std::vector<Node*> stack_;  // the open collections, outermost first
  size_t documents_ = 0;
  size_t nodes_ = 0;
  size_t depth_ = 0;
};

// Runs the guard over the first document and looks for a second one.
bool RunGuard(std::string_view doc, const GuardLimits& limits, const Phrase& phrase,
              Node* root) {
  std::istringstream in{std::string(doc)};
  YAML::Parser parser(in);
  Guard guard(limits, phrase, root);
  if (!parser.HandleNextDocument(guard)) return false;
  if (parser.HandleNextDocument(guard)) {
    throw Error(phrase(Refusal{Refusal::Kind::kSecondDocument, {}, 1}));
  }
  return true;
}

}  // namespace

bool GuardDocument(std::string_view doc, const GuardLimits& limits, const Phrase& phrase) {
  return RunGuard(doc, limits, phrase, nullptr);
}

Node ParseTree(std::string_view doc, const GuardLimits& limits, const Phrase& phrase,
               const std::string& no_document) {
  Node root;
  if (!RunGuard(doc, limits, phrase, &root)) throw Error(no_document);
  return root;
}

// ---------------------------------------------------------------------------------------
// The strict reader

std::string In::Path() const {
  if (parent == nullptr) return {};
  std::string path = parent->Path();
  if (key.empty()) return path + "[" + std::to_string(index) + "]";
  // Keys come from the input: a long one is cut, so that a message stays one short line.
  const std::string name =
      key.size() > 64 ? std::string(key.substr(0, 64)) + "..." : std::string(key);
  return path.empty() ? name : path + "." + name;
}

void Fail(const In& in, const std::string& what) {
  const std::string path = in.Path();
  if (!path.empty()) throw Error(path + ": " + what);
  const In* root = &in;
  while (root->parent != nullptr) root = root->parent;
  throw Error((root->key.empty() ? std::string("the document") : std::string(root->key)) + ": " +
              what);
}

const std::string& PlainText(const In& in, const char* expected) {
  if (in.node.kind != Node::Kind::kScalar || in.node.tag != "?") {
    Fail(in, std::string("expected ") + expected);
  }
  return in.node.scalar;
}

long long Integer(const In& in, long long lo, long long hi) {
  const std::string& text = PlainText(in, "an integer");
  // Decimal only, no sign but '-', no leading zeros: yaml-cpp would read "010" as 8.
  const size_t digits = !text.empty() && text[0] == '-' ? 1 : 0;
  const bool canonical =
      text.size() > digits && (text[digits] != '0' || text.size() == digits + 1) && text != "-0";
  long long v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (!canonical || ec == std::errc::invalid_argument || end != text.data() + text.size()) {
    Fail(in, "expected an integer");
  }
  if (ec == std::errc::result_out_of_range || v < lo || v > hi) {
    Fail(in, text + " is out of range (" + std::to_string(lo) + ".." + std::to_string(hi) + ")");
  }
  return v;
}

std::uint64_t Unsigned(const In& in) {
  const std::string& text = PlainText(in, "an unsigned integer");
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() ||
      (text.size() > 1 && text[0] == '0')) {
    Fail(in, "expected an unsigned 64-bit integer");
  }
  return v;
}

bool Boolean(const In& in) {
  const std::string& text = PlainText(in, "true or false");
  if (text == "true") return true;
  if (text == "false") return false;
  Fail(in, "expected true or false");
}

double Double(const In& in) {
  const std::string& text = PlainText(in, "a number");
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v)) {
    Fail(in, "expected a finite number");
  }
  return v;
}

std::string String(const In& in) {
  if (in.node.kind == Node::Kind::kScalar) {
    const std::string& tag = in.node.tag;
    if (tag == "!" || tag == "tag:yaml.org,2002:str") return in.node.scalar;
    if (tag == "tag:yaml.org,2002:binary") {
      if (auto bytes = DecodeBase64(in.node.scalar)) return *std::move(bytes);
      Fail(in, "not valid base64");
    }
  }
  Fail(in, "expected a string (double-quoted, or !!binary)");
}

MapIn::MapIn(const In& in) : in_(in) {
  if (in.node.kind != Node::Kind::kMap) Fail(in, "expected a mapping");
  const std::vector<Node>& items = in.node.items;
  entries_.reserve(items.size() / 2);
  for (size_t i = 0; i + 1 < items.size(); i += 2) {
    if (items[i].kind != Node::Kind::kScalar) Fail(in, "a key is not a scalar");
    entries_.push_back(Entry{items[i].scalar, &items[i + 1], false});
  }
  sorted_.reserve(entries_.size());
  for (size_t i = 0; i < entries_.size(); ++i) sorted_.push_back(i);
  std::sort(sorted_.begin(), sorted_.end(),
            [this](size_t a, size_t b) { return entries_[a].key < entries_[b].key; });
  for (size_t i = 1; i < sorted_.size(); ++i) {
    const Entry& e = entries_[sorted_[i]];
    if (e.key == entries_[sorted_[i - 1]].key) Fail(Child(e), "appears twice");
  }
}

In MapIn::Get(std::string_view key) {
  const Entry* e = Find(key);
  if (e == nullptr) Fail(In{in_.node, &in_, key}, "missing");
  e->used = true;
  return Child(*e);
}

void MapIn::Done() const {
  for (const Entry& e : entries_) {
    if (!e.used) Fail(Child(e), "unknown key");
  }
}

const MapIn::Entry* MapIn::Find(std::string_view key) const {
  const auto it =
      std::lower_bound(sorted_.begin(), sorted_.end(), key,
                       [this](size_t i, std::string_view k) { return entries_[i].key < k; });
  if (it == sorted_.end() || entries_[*it].key != key) return nullptr;
  return &entries_[*it];
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string Nearest(std::string_view word, const std::vector<std::string>& candidates,
                    size_t below) {
  std::string best;
  for (const std::string& c : candidates) {
    // The distance is at least the difference in length: a 100 kB word costs no more than a
    // short one.
    if (word.size() >= c.size() + below) continue;
    const size_t d = EditDistance(word, c);
    if (d < below) best = c, below = d;
  }
  return best;
}

std::string NearestWord(std::string_view word, const std::vector<std::string>& candidates,
                        size_t max_distance) {
  if (word.empty()) return {};
  for (const std::string& c : candidates) {
    if (c == word) return c;
  }
  if (std::string best = Nearest(word, candidates, max_distance + 1); !best.empty()) return best;
  if (word.size() >= 2) {
    for (const std::string& c : candidates) {
      if (c.starts_with(word)) return c;
    }
  }
  return {};
}

}  // namespace einhorn::core::text
