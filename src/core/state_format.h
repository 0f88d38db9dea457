// The building blocks of the re-exec state (core/state.h), apart from its schema: a writer for
// the small YAML subset EncodeState emits, and a strict reader that builds a plain tree from
// yaml-cpp's events and refuses anything outside that subset. Internal to state.cc: the
// reader reports errors by throwing Bad, which DecodeState turns into its Result.
//
// The subset: block mappings for sections, one flow mapping per record (which may nest flow
// mappings and flow sequences of scalars), block sequences of records or strings, and scalars that are plain (decimal integers, shortest-form doubles,
// true/false, enum names, null), double-quoted printable ASCII, or `!!binary` base64 for a
// string with any other byte.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/state.h"
#include "core/text.h"
#include "core/types.h"

namespace einhorn::core::state_format {

// An enum's values and their names in the format.
template <typename E>
using Names = std::initializer_list<std::pair<E, std::string_view>>;

// ---------------------------------------------------------------------------------------
// Writing: each function returns one scalar or flow collection as text.

std::string Str(std::string_view s);  // double-quoted, or !!binary when not printable ASCII
std::string Int(long long v);
std::string U64(std::uint64_t v);
std::string Bool(bool v);
std::string Ns(Duration d);  // integer nanoseconds
std::string Dbl(double v);   // shortest text that reads back as the same double

// `names` is a Names<E>, or any table of such pairs (core::kSignalNames).
template <typename Table, typename E>
std::string Name(const Table& names, E value) {
  for (const auto& [v, name] : names) {
    if (v == value) return std::string(name);
  }
  return "?";  // an enumerator missing from its table: the reader refuses it, tests catch it
}
template <typename T, typename F>
std::string Opt(const std::optional<T>& v, F encode) {
  return v ? encode(*v) : "null";
}
template <typename T, typename F>
std::vector<std::string> Each(const std::vector<T>& items, F encode) {
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const T& item : items) out.push_back(encode(item));
  return out;
}

// A flow sequence, [a, b, ...], of values already written.
std::string Seq(const std::vector<std::string>& items);

// A flow mapping, {key: value, ...}, from values already written.
class Flow {
 public:
  Flow& Add(std::string_view key, const std::string& value);
  std::string Done() const;

 private:
  std::string text_;
};

// A block mapping at some indent, appended straight to one string.
class Block {
 public:
  Block(std::string* out, int indent) : out_(out), indent_(indent) {}
  void Scalar(std::string_view key, const std::string& value);
  Block Map(std::string_view key);  // the nested mapping's entries go to the Block returned
  void List(std::string_view key, const std::vector<std::string>& items);

 private:
  void Key(std::string_view key);
  std::string* out_;
  int indent_;
};

// ---------------------------------------------------------------------------------------
// Reading, with core/text.h's strict reader; the names below are the ones state.cc and
// telemetry_state.cc use.

using Bad = text::Error;
using text::Boolean;
using text::Double;
using text::Fail;
using text::In;
using text::Integer;
using text::MapIn;
using text::Node;
using text::PlainText;
using text::String;
using text::Unsigned;

// Checks the size and the bytes (printable ASCII and '\n' only), then parses one document in a
// single pass over yaml-cpp's events that refuses anchors, aliases, local tags, a second
// document, nesting deeper or nodes more than the limits allow, and builds the tree.
// Throws Bad or YAML::Exception. The root In of the tree should be named "the state".
// A document in exactly the layout EncodeState writes is read by ParseOurs instead, about
// fifty times faster (a reload's stall at 1000 workers was this parse); the tree is the same.
Node Parse(std::string_view bytes, const StateLimits& limits);
// The two readers Parse uses, for the tests that compare them: ParseOurs gives up (nullopt) on
// anything outside the layout EncodeState writes, or past the limits; ParseWithYamlCpp reads
// any YAML (after Parse's checks of the bytes) and throws as Parse does.
std::optional<Node> ParseOurs(std::string_view bytes, const StateLimits& limits);
Node ParseWithYamlCpp(std::string_view bytes, const StateLimits& limits);
// Parse's checks of the size and the bytes; throws Bad.
void CheckBytes(std::string_view bytes, const StateLimits& limits);

// ParseOurs in pieces, for the canonical reader (core/state_stream.h): the value (a scalar or a
// flow collection) at `pos`, as part of a document nested `depth` deep. It gives the position
// after the value, or nullopt where ParseOurs would give up. Nodes count against the limits
// across all the values, with those Count adds (what the caller read itself: keys, lists,
// records).
class OursReader;
class OursPieces {
 public:
  OursPieces(std::string_view bytes, const StateLimits& limits);
  ~OursPieces();
  OursPieces(const OursPieces&) = delete;
  OursPieces& operator=(const OursPieces&) = delete;
  std::optional<size_t> Value(size_t pos, size_t depth, Node* out);
  bool Count(size_t nodes);  // false once past the limit

 private:
  std::unique_ptr<OursReader> reader_;
};

int I32(const In& in);
Duration Nanos(const In& in);

template <typename Table, typename E = std::remove_cvref_t<
                              decltype(std::begin(std::declval<const Table&>())->first)>>
E Enum(const In& in, const Table& names) {
  const std::string& text = PlainText(in, "a name");
  std::string all;
  for (const auto& [value, name] : names) {
    if (text == name) return value;
    all += all.empty() ? "" : ", ";
    all += name;
  }
  Fail(in, "expected one of " + all);
}
template <typename F>
auto Opt(const In& in, F decode) -> std::optional<decltype(decode(in))> {
  if (in.node.kind == Node::Kind::kNull) return std::nullopt;
  return decode(in);
}
template <typename F>
auto List(const In& in, F decode) {
  if (in.node.kind != Node::Kind::kSequence) Fail(in, "expected a list");
  std::vector<decltype(decode(in))> out;
  out.reserve(in.node.items.size());
  for (size_t i = 0; i < in.node.items.size(); ++i) {
    out.push_back(decode(In{in.node.items[i], &in, {}, i}));
  }
  return out;
}

}  // namespace einhorn::core::state_format
