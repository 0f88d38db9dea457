#include "core/state_stream.h"

namespace einhorn::core::state_format {

Cursor::Cursor(std::string_view bytes, const StateLimits& limits)
    : s_(bytes), max_depth_(limits.max_depth), pieces_(bytes, limits) {}

void Cursor::Expect(std::string_view literal) {
  if (!Peek(literal)) throw Decline{};
  p_ += literal.size();
}

bool Cursor::AtKey(size_t indent, std::string_view key) const {
  const std::string_view rest = s_.substr(p_);
  if (rest.size() < indent + key.size() + 1) return false;
  for (size_t i = 0; i < indent; ++i) {
    if (rest[i] != ' ') return false;
  }
  return rest.substr(indent, key.size()) == key && rest[indent + key.size()] == ':';
}

void Cursor::Key(size_t indent, std::string_view key) {
  if (!AtKey(indent, key)) throw Decline{};
  p_ += indent + key.size() + 1;
}

bool Cursor::AtItem(size_t indent) const {
  return Indent() == indent && s_.substr(p_ + indent).starts_with("- ");
}

size_t Cursor::Indent() const {
  size_t k = 0;
  while (p_ + k < s_.size() && s_[p_ + k] == ' ') ++k;
  return k;
}

bool Cursor::AtFlowKey(bool first, std::string_view key) const {
  size_t q = p_;
  if (!first) {
    if (!Peek(", ")) return false;
    q += 2;
  }
  const std::string_view rest = s_.substr(q);
  return rest.size() > key.size() && rest.starts_with(key) && rest[key.size()] == ':';
}

const Node& Cursor::Value(size_t depth) {
  // As a fresh node: the parse sets what it reads and appends to the rest.
  scratch_.kind = Node::Kind::kNull;
  scratch_.tag.clear();
  scratch_.scalar.clear();
  scratch_.items.clear();
  const std::optional<size_t> end = pieces_.Value(p_, depth, &scratch_);
  if (!end) throw Decline{};
  p_ = *end;
  return scratch_;
}

void Cursor::Count(size_t nodes) {
  if (!pieces_.Count(nodes)) throw Decline{};
}

void Cursor::Deeper(size_t depth) const {
  if (depth > max_depth_) throw Decline{};
}

}  // namespace einhorn::core::state_format
