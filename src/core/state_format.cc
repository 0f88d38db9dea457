#include "core/state_format.h"

#include <array>
#include <charconv>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <system_error>

namespace einhorn::core::state_format {

// ---------------------------------------------------------------------------------------
// Writing

std::string Str(std::string_view s) {
  if (text::IsPrintableAscii(s)) return text::Quoted(s, text::Quote::kYaml);
  return "!!binary \"" + text::EncodeBase64(s) + '"';
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
  if (text_.empty()) text_.reserve(256);  // a worker's record is about 300 bytes
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

// The reader of the subset EncodeState writes, in one pass over the bytes (yaml-cpp's scanner
// spent about 0.1 s on the state of 1000 workers, the whole of a reload's stall: issue 20). It
// accepts exactly what Block, Flow, Seq and the scalar writers above produce: block mappings
// indented by two per level, `key: value` or `key:` then a nested block or a block list of
// `- value` items, flow mappings `{k: v, ...}` and sequences `[a, b]` with ", " between items,
// plain scalars of [A-Za-z0-9_.+-], double-quoted strings with no escape but \" and \\, and
// `!!binary "..."`. Anything else (other spacing, comments, other escapes, a second document)
// makes it give up, and the document goes to yaml-cpp, which reads it or words the refusal.
// It builds the tree the yaml-cpp reader builds (tests/unit/state_test.cc compares them) and
// gives up where the node count or the depth pass the limits, so that yaml-cpp's reader
// refuses it with its message.
class OursReader {
  // Copied from strings, not assigned from literals: GCC 12's -Wrestrict misreads the inlined
  // literal assignment (its bug 105329), and the build is -Werror.
  inline static const std::string kPlainTag = "?";
  inline static const std::string kQuotedTag = "!";
  inline static const std::string kBinaryTag = "tag:yaml.org,2002:binary";

 public:
  OursReader(std::string_view bytes, const StateLimits& limits) : s_(bytes), limits_(limits) {}

  std::optional<Node> Read() {
    Node root;
    if (!Open(root, Node::Kind::kMap) || !BlockMap(root, 0) || p_ != s_.size()) {
      return std::nullopt;
    }
    return root;
  }

  // For OursPieces: one value, as part of a document nested `depth` deep; the position after
  // it, or nullopt.
  std::optional<size_t> ValueAt(size_t pos, size_t depth, Node& out) {
    p_ = pos;
    depth_ = depth;
    if (!Value(out)) return std::nullopt;
    return p_;
  }
  bool CountMore(size_t n) {
    nodes_ += n;
    return nodes_ <= limits_.max_nodes;
  }

 private:
  static bool KeyChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  }
  static bool PlainChar(char c) { return KeyChar(c) || c == '.' || c == '+' || c == '-'; }
  char At(size_t i) const { return i < s_.size() ? s_[i] : '\0'; }
  size_t IndentAt(size_t i) const {
    size_t k = 0;
    while (At(i + k) == ' ') ++k;
    return k;
  }
  // Every node the yaml-cpp reader would add (keys included) counts against max_nodes.
  bool Count() { return ++nodes_ <= limits_.max_nodes; }
  bool Open(Node& node, Node::Kind kind) {
    node.kind = kind;
    node.tag = kPlainTag;
    return Count() && ++depth_ <= limits_.max_depth;
  }
  void Close() { --depth_; }

  bool Key(Node& map) {
    const size_t start = p_;
    while (KeyChar(At(p_))) ++p_;
    if (p_ == start || At(p_) != ':') return false;
    const std::string_view text = s_.substr(start, p_ - start);
    if (text == "null" || text == "Null" || text == "NULL") return false;  // a null key
    Node& key = map.items.emplace_back();
    key.kind = Node::Kind::kScalar;
    key.tag = kPlainTag;
    key.scalar.assign(text);
    ++p_;
    return Count();
  }

  // Entries at exactly `indent` spaces, until a line indented less (or the end).
  bool BlockMap(Node& map, size_t indent) {
    bool any = false;
    while (p_ < s_.size()) {
      const size_t k = IndentAt(p_);
      if (k < indent && any) break;
      if (k != indent) return false;
      p_ += k;
      if (!Key(map)) return false;
      any = true;
      Node& value = map.items.emplace_back();
      if (At(p_) == ' ') {
        ++p_;
        if (!Value(value) || At(p_) != '\n') return false;
        ++p_;
        continue;
      }
      if (At(p_) != '\n') return false;
      ++p_;
      const size_t next = IndentAt(p_);
      if (p_ >= s_.size() || next <= indent) {
        value.kind = Node::Kind::kNull;  // `key:` and nothing under it
        if (!Count()) return false;
        continue;
      }
      if (next != indent + 2) return false;
      if (At(p_ + next) == '-' && At(p_ + next + 1) == ' ') {
        if (!Open(value, Node::Kind::kSequence) || !BlockList(value, next)) return false;
      } else {
        if (!Open(value, Node::Kind::kMap) || !BlockMap(value, next)) return false;
      }
      Close();
    }
    return any;
  }

  // `- value` lines at exactly `indent` spaces.
  bool BlockList(Node& seq, size_t indent) {
    while (p_ < s_.size()) {
      const size_t k = IndentAt(p_);
      if (k < indent) break;
      if (k != indent || At(p_ + k) != '-' || At(p_ + k + 1) != ' ') return false;
      p_ += k + 2;
      if (!Value(seq.items.emplace_back()) || At(p_) != '\n') return false;
      ++p_;
    }
    return true;
  }

  bool Value(Node& node) {
    switch (At(p_)) {
      case '{':
        return FlowMap(node);
      case '[':
        return FlowSeq(node);
      case '"':
        node.kind = Node::Kind::kScalar;
        node.tag = kQuotedTag;
        return Quoted(node.scalar) && Count();
      case '!': {
        constexpr std::string_view kBinary = "!!binary ";
        if (s_.substr(p_, kBinary.size()) != kBinary) return false;
        p_ += kBinary.size();
        node.kind = Node::Kind::kScalar;
        node.tag = kBinaryTag;
        return At(p_) == '"' && Quoted(node.scalar) && Count();
      }
      default:
        return Plain(node);
    }
  }

  bool Plain(Node& node) {
    const size_t start = p_;
    const char first = At(p_);
    // A leading '-' must start a word or number ("-1", "-inf"), never an indicator.
    if (!KeyChar(first) && !(first == '-' && KeyChar(At(p_ + 1)))) return false;
    while (PlainChar(At(p_))) ++p_;
    const std::string_view text = s_.substr(start, p_ - start);
    if (text == "null" || text == "Null" || text == "NULL") {
      node.kind = Node::Kind::kNull;  // as yaml-cpp: a null event, no tag
    } else {
      node.kind = Node::Kind::kScalar;
      node.tag = kPlainTag;
      node.scalar.assign(text);
    }
    return Count();
  }

  bool Quoted(std::string& out) {
    ++p_;  // the opening quote
    for (;;) {
      const size_t run = p_;
      while (p_ < s_.size() && s_[p_] != '"' && s_[p_] != '\\' && s_[p_] != '\n') ++p_;
      out.append(s_.substr(run, p_ - run));
      const char c = At(p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c != '\\') return false;  // a line break or the end
      const char e = At(p_ + 1);
      if (e != '"' && e != '\\') return false;
      out += e;
      p_ += 2;
    }
  }

  bool FlowMap(Node& map) {
    if (!Open(map, Node::Kind::kMap)) return false;
    ++p_;
    if (At(p_) == '}') {
      ++p_;
      Close();
      return true;
    }
    for (;;) {
      if (!Key(map) || At(p_) != ' ') return false;
      ++p_;
      if (!Value(map.items.emplace_back())) return false;
      if (At(p_) == '}') break;
      if (At(p_) != ',' || At(p_ + 1) != ' ') return false;
      p_ += 2;
    }
    ++p_;
    Close();
    return true;
  }

  bool FlowSeq(Node& seq) {
    if (!Open(seq, Node::Kind::kSequence)) return false;
    ++p_;
    if (At(p_) == ']') {
      ++p_;
      Close();
      return true;
    }
    for (;;) {
      if (!Value(seq.items.emplace_back())) return false;
      if (At(p_) == ']') break;
      if (At(p_) != ',' || At(p_ + 1) != ' ') return false;
      p_ += 2;
    }
    ++p_;
    Close();
    return true;
  }

  std::string_view s_;
  const StateLimits& limits_;
  size_t p_ = 0;
  size_t nodes_ = 0;
  size_t depth_ = 0;
};

OursPieces::OursPieces(std::string_view bytes, const StateLimits& limits)
    : reader_(std::make_unique<OursReader>(bytes, limits)) {}
OursPieces::~OursPieces() = default;
std::optional<size_t> OursPieces::Value(size_t pos, size_t depth, Node* out) {
  return reader_->ValueAt(pos, depth, *out);
}
bool OursPieces::Count(size_t nodes) { return reader_->CountMore(nodes); }

void CheckBytes(std::string_view bytes, const StateLimits& limits) {
  if (bytes.empty()) throw Bad("the state is empty");
  if (bytes.size() > limits.max_bytes) {
    throw Bad("the state is " + std::to_string(bytes.size()) + " bytes, more than the limit of " +
              std::to_string(limits.max_bytes));
  }
  // EncodeState writes printable ASCII and newlines only; anything else is not ours, and
  // yaml-cpp never sees it. Blocks of 64 without a branch, which the compiler vectorizes (a
  // byte at a time was a tenth of a reload's decoding); the first bad byte is then looked for
  // from the block that has one.
  size_t from = 0;
  constexpr size_t kBlock = 64;
  for (; from + kBlock <= bytes.size(); from += kBlock) {
    unsigned bad = 0;
    for (size_t j = 0; j < kBlock; ++j) {
      const auto c = static_cast<unsigned char>(bytes[from + j]);
      bad |= static_cast<unsigned>((c < 0x20 && c != '\n') | (c > 0x7E));
    }
    if (bad != 0) break;
  }
  for (size_t i = from; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if ((c < 0x20 || c > 0x7E) && c != '\n') {
      char buf[96];
      std::snprintf(buf, sizeof buf,
                    "not a state written by einhorn-cpp: byte 0x%02X at offset %zu",
                    static_cast<unsigned>(static_cast<unsigned char>(c)), i);
      throw Bad(buf);
    }
  }
}

std::optional<Node> ParseOurs(std::string_view bytes, const StateLimits& limits) {
  return OursReader(bytes, limits).Read();
}

Node ParseWithYamlCpp(std::string_view bytes, const StateLimits& limits) {
  CheckBytes(bytes, limits);
  // What EncodeState never writes: anchors, aliases, local tags, a second document, deep
  // nesting, too many nodes.
  const text::GuardLimits guard{limits.max_nodes, limits.max_depth,
                                text::GuardLimits::Tags::kAnyCore};
  return text::ParseTree(
      bytes, guard,
      [&](const text::Refusal& r) -> std::string {
        using Kind = text::Refusal::Kind;
        std::string it_has;
        switch (r.kind) {
          case Kind::kSecondDocument:
            return "more than one YAML document";
          case Kind::kAlias:
            it_has = "an alias";
            break;
          case Kind::kAnchor:
            it_has = "an anchor";
            break;
          case Kind::kTag:
            it_has = "the tag " + r.tag;
            break;
          case Kind::kTooManyNodes:
            it_has = "more than " + std::to_string(limits.max_nodes) + " nodes";
            break;
          case Kind::kTooDeep:
            it_has = "nesting deeper than " + std::to_string(limits.max_depth);
            break;
        }
        return "not a state written by einhorn-cpp: it has " + it_has;
      },
      "the state holds no YAML document");
}

Node Parse(std::string_view bytes, const StateLimits& limits) {
  CheckBytes(bytes, limits);
  if (std::optional<Node> ours = ParseOurs(bytes, limits)) return std::move(*ours);
  return ParseWithYamlCpp(bytes, limits);
}

int I32(const In& in) {
  return static_cast<int>(
      Integer(in, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
}
Duration Nanos(const In& in) {
  return Duration(Integer(in, std::numeric_limits<std::int64_t>::min(),
                          std::numeric_limits<std::int64_t>::max()));
}

}  // namespace einhorn::core::state_format
