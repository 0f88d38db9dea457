#include "core/state_format.h"

#include <array>
#include <charconv>
#include <cstdio>
#include <limits>
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

int I32(const In& in) {
  return static_cast<int>(
      Integer(in, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
}
Duration Nanos(const In& in) {
  return Duration(Integer(in, std::numeric_limits<std::int64_t>::min(),
                          std::numeric_limits<std::int64_t>::max()));
}

}  // namespace einhorn::core::state_format
