#include "core/state_format.h"

#include <yaml-cpp/anchor.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <system_error>

namespace einhorn::core::state_format {
namespace {

constexpr std::string_view kBinaryTag = "tag:yaml.org,2002:binary";

// Base64 (RFC 4648, with padding). The decoder is strict, so each value has one encoding.
constexpr std::string_view kBase64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

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

bool IsPrintableAscii(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7E) return false;
  }
  return true;
}

// One pass over the parser's events refuses what EncodeState never writes (anchors, aliases,
// local tags, a second document, deep nesting, too many nodes) and builds the tree.
class Builder : public YAML::EventHandler {
 public:
  explicit Builder(const StateLimits& limits) : limits_(limits) {}
  Node& root() { return root_; }

  void OnDocumentStart(const YAML::Mark&) override {
    if (++documents_ > 1) throw Bad("more than one YAML document");
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t anchor) override {
    Add(anchor, "", Node::Kind::kNull);
  }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { Refuse("an alias"); }
  void OnScalar(const YAML::Mark&, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    Add(anchor, tag, Node::Kind::kScalar)->scalar = value;
  }
  void OnSequenceStart(const YAML::Mark&, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(Add(anchor, tag, Node::Kind::kSequence));
  }
  void OnSequenceEnd() override { stack_.pop_back(); }
  void OnMapStart(const YAML::Mark&, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(Add(anchor, tag, Node::Kind::kMap));
  }
  void OnMapEnd() override { stack_.pop_back(); }
  void OnAnchor(const YAML::Mark&, const std::string&) override { Refuse("an anchor"); }

 private:
  [[noreturn]] static void Refuse(const std::string& what) {
    throw Bad("not a state written by einhorn-cpp: it has " + what);
  }
  Node* Add(YAML::anchor_t anchor, const std::string& tag, Node::Kind kind) {
    if (anchor != YAML::NullAnchor) Refuse("an anchor");
    const bool core_tag = std::string_view(tag).starts_with("tag:yaml.org,2002:");
    if (!tag.empty() && tag != "?" && tag != "!" && !core_tag) Refuse("the tag " + tag);
    if (++nodes_ > limits_.max_nodes) {
      Refuse("more than " + std::to_string(limits_.max_nodes) + " nodes");
    }
    // Only the innermost open collection grows, so the pointers to its ancestors in stack_
    // stay valid.
    Node* node = &root_;
    if (!stack_.empty()) node = &stack_.back()->items.emplace_back();
    node->kind = kind;
    node->tag = tag;
    return node;
  }
  void Open(Node* node) {
    if (stack_.size() >= limits_.max_depth) {
      Refuse("nesting deeper than " + std::to_string(limits_.max_depth));
    }
    stack_.push_back(node);
  }

  const StateLimits& limits_;
  Node root_;
  std::vector<Node*> stack_;  // the open collections, outermost first
  size_t documents_ = 0;
  size_t nodes_ = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// Writing

std::string Str(std::string_view s) {
  std::string out;
  if (!IsPrintableAscii(s)) {
    out = "!!binary \"";
    out += EncodeBase64(s);
    out += '"';
    return out;
  }
  out.reserve(s.size() + 2);
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

std::string Int(long long v) { return std::to_string(v); }
std::string U64(std::uint64_t v) { return std::to_string(v); }
std::string Bool(bool v) { return v ? "true" : "false"; }
std::string Ns(Duration d) { return std::to_string(d.count()); }
std::string Dbl(double v) {
  std::array<char, 64> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  return ec == std::errc() ? std::string(buf.data(), end) : "nan";
}

std::string Seq(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    out += items[i];
  }
  return out + "]";
}

Flow& Flow::Add(std::string_view key, const std::string& value) {
  text_ += text_.empty() ? "{" : ", ";
  text_ += key;
  text_ += ": ";
  text_ += value;
  return *this;
}

std::string Flow::Done() const { return text_.empty() ? "{}" : text_ + "}"; }

void Block::Scalar(std::string_view key, const std::string& value) {
  Key(key);
  *out_ += ' ';
  *out_ += value;
  *out_ += '\n';
}

Block Block::Map(std::string_view key) {
  Key(key);
  *out_ += '\n';
  return Block(out_, indent_ + 2);
}

void Block::List(std::string_view key, const std::vector<std::string>& items) {
  if (items.empty()) return Scalar(key, "[]");
  Key(key);
  *out_ += '\n';
  for (const std::string& item : items) {
    out_->append(static_cast<size_t>(indent_) + 2, ' ');
    *out_ += "- ";
    *out_ += item;
    *out_ += '\n';
  }
}

void Block::Key(std::string_view key) {
  out_->append(static_cast<size_t>(indent_), ' ');
  *out_ += key;
  *out_ += ':';
}

// ---------------------------------------------------------------------------------------
// Reading

Node Parse(std::string_view bytes, const StateLimits& limits) {
  if (bytes.empty()) throw Bad("the state is empty");
  if (bytes.size() > limits.max_bytes) {
    throw Bad("the state is " + std::to_string(bytes.size()) + " bytes, more than the limit of " +
              std::to_string(limits.max_bytes));
  }
  // EncodeState writes printable ASCII and newlines only; anything else is not ours, and
  // yaml-cpp never sees it.
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if ((c < 0x20 || c > 0x7E) && c != '\n') {
      char buf[96];
      std::snprintf(buf, sizeof buf,
                    "not a state written by einhorn-cpp: byte 0x%02X at offset %zu",
                    static_cast<unsigned>(static_cast<unsigned char>(c)), i);
      throw Bad(buf);
    }
  }
  std::istringstream in{std::string(bytes)};
  YAML::Parser parser(in);
  Builder builder(limits);
  if (!parser.HandleNextDocument(builder)) throw Bad("the state holds no YAML document");
  if (parser.HandleNextDocument(builder)) throw Bad("more than one YAML document");
  return std::move(builder.root());
}

std::string In::Path() const {
  // Keys come from the input: a long one is cut, so that a message stays one short line.
  const std::string name =
      key.size() > 64 ? std::string(key.substr(0, 64)) + "..." : std::string(key);
  if (parent == nullptr) return name;
  std::string path = parent->Path();
  if (key.empty()) return path + "[" + std::to_string(index) + "]";
  return path.empty() ? name : path + "." + name;
}

void Fail(const In& in, const std::string& what) {
  const std::string path = in.Path();
  throw Bad((path.empty() ? std::string("the state") : path) + ": " + what);
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

int I32(const In& in) {
  return static_cast<int>(
      Integer(in, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
}
Duration Nanos(const In& in) {
  return Duration(Integer(in, std::numeric_limits<std::int64_t>::min(),
                          std::numeric_limits<std::int64_t>::max()));
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
    if (tag == kBinaryTag) {
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

}  // namespace einhorn::core::state_format
