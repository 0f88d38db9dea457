// The canonical reader of the re-exec state (issue 20): it reads the exact layout EncodeState
// writes, key by key in the schema's order, straight into the structs. The general reader
// first builds a tree of the whole document (11 MB at 1000 workers, most of the new image's
// 10 ms decode, while the command socket waits). This one builds only a small node per value,
// reused.
//
// It declines (throws Decline, or lets a codec's error out) at the first byte that is not that
// layout: another order, an unknown or repeated key, other spacing, a value its codec refuses,
// too many nodes. The caller then reads the same bytes with the general reader, which decides
// and words the message. So it accepts a subset of what the general reader accepts, and must
// give the same state for it: tests/unit/state_test.cc and tests/fuzz/state_fuzz.cc check that.
//
// The visitors below are Schema<T>::Visit's (core/state.cc): a codec marked as a record
// (flow mapping) or a section (block mapping) has a static Stream(visitor, value) that reads
// its struct (by its Schema, or telemetry_state.cc's ReadTelemetry); any other codec reads its
// value from the small node.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/state_format.h"

namespace einhorn::core::state_format {

struct Decline {};

template <typename C>
concept RecordCodec = requires { C::kRecord; };
template <typename C>
concept SectionCodec = requires { C::kSection; };

// A position in the bytes, and the pieces of ParseOurs.
class Cursor {
 public:
  Cursor(std::string_view bytes, const StateLimits& limits);

  void Expect(std::string_view literal);  // consumes it, or declines
  bool Peek(std::string_view literal) const { return s_.substr(p_).starts_with(literal); }
  bool AtEnd() const { return p_ == s_.size(); }
  // At a line's start: exactly `indent` spaces, then `key:`.
  bool AtKey(size_t indent, std::string_view key) const;
  void Key(size_t indent, std::string_view key);  // consumes `<indent spaces>key:`
  // At a line's start: exactly `indent` spaces, then "- ".
  bool AtItem(size_t indent) const;
  // The indent of the line that starts here (0 at the end).
  size_t Indent() const;
  // In a flow mapping, after `{` (first) or a value: is `key:` next (after ", ")?
  bool AtFlowKey(bool first, std::string_view key) const;
  // The scalar or flow collection here, nested `depth` deep, in a node that the next call
  // reuses.
  const Node& Value(size_t depth);
  // Nodes this reader read itself (keys, lists, records), against the limit; and the depth.
  void Count(size_t nodes);
  void Deeper(size_t depth) const;

 private:
  std::string_view s_;
  size_t p_ = 0;
  size_t max_depth_;
  OursPieces pieces_;
  Node scratch_;
};

// One value of a field or a list, by its codec.
template <typename T, typename C>
void ReadValue(Cursor& c, size_t depth, std::string_view key, T& x, const C& codec);

// A record: {key: value, ...}. Records hold no block lists or mappings (FlowOut).
class FlowIn {
 public:
  FlowIn(Cursor& c, size_t depth) : c_(c), depth_(depth) {
    c_.Deeper(depth);
    c_.Expect("{");
    c_.Count(1);
  }
  void Header(int) {}
  template <typename T, typename C>
  void Field(std::string_view key, T& x, const C& codec) {
    if (!first_) c_.Expect(", ");
    first_ = false;
    c_.Expect(key);
    c_.Expect(": ");
    c_.Count(1);
    ReadValue(c_, depth_ + 1, key, x, codec);
  }
  template <typename T, typename C>
  void FieldIf(bool, std::string_view key, T& x, const C& codec) {
    if (c_.AtFlowKey(first_, key)) Field(key, x, codec);
  }
  void Close() { c_.Expect("}"); }

  // For decoders written against a node (telemetry_state.cc's ReadEvent).
  template <typename F>
  void Get(std::string_view key, F decode) {
    if (!first_) c_.Expect(", ");
    first_ = false;
    c_.Expect(key);
    c_.Expect(": ");
    c_.Count(1);
    decode(In{c_.Value(depth_ + 1), nullptr, key});
  }
  void Done() { Close(); }
  [[noreturn]] void Fail(const std::string&) const { throw Decline{}; }

 private:
  Cursor& c_;
  size_t depth_;
  bool first_ = true;
};

// A block mapping, its entries at `indent`, none missing its line.
class BlockIn {
 public:
  BlockIn(Cursor& c, size_t indent, size_t depth) : c_(c), indent_(indent), depth_(depth) {
    c_.Deeper(depth);
    c_.Count(1);
  }
  void Header(int) {}
  template <typename T, typename C>
  void Field(std::string_view key, T& x, const C& codec) {
    c_.Key(indent_, key);
    c_.Expect(" ");
    c_.Count(1);
    ReadValue(c_, depth_ + 1, key, x, codec);
    c_.Expect("\n");
  }
  template <typename T, typename C>
  void FieldIf(bool, std::string_view key, T& x, const C& codec) {
    if (c_.AtKey(indent_, key)) Field(key, x, codec);
  }
  template <typename T, typename C>
  void List(std::string_view key, std::vector<T>& x, const C& codec) {
    x.clear();
    Items(key, [&] { ReadValue(c_, depth_ + 2, {}, x.emplace_back(), codec); });
  }
  template <typename T, typename C>
  void ListIf(bool, std::string_view key, std::vector<T>& x, const C& codec) {
    if (c_.AtKey(indent_, key)) List(key, x, codec);
  }
  template <typename T, typename C>
  void Map(std::string_view key, T& x, const C& codec) {
    c_.Key(indent_, key);
    c_.Expect("\n");
    c_.Count(1);
    // An empty section is null to the general reader, and refused there.
    if (c_.Indent() != indent_ + 2) throw Decline{};
    static_assert(SectionCodec<C>, "a block mapping's codec streams it");
    (void)codec;
    x = T{};
    BlockIn inner(c_, indent_ + 2, depth_ + 1);
    C::Stream(inner, x);
    inner.Close();
  }
  template <typename T, typename C>
  void MapIf(bool, std::string_view key, T& x, const C& codec) {
    if (c_.AtKey(indent_, key)) Map(key, x, codec);
  }
  // Nothing more at this indent: a key the schema does not name is the general reader's to
  // refuse.
  void Close() const {
    if (!c_.AtEnd() && c_.Indent() >= indent_) throw Decline{};
  }

  // For decoders written against a node (telemetry_state.cc): a value, and each item of a
  // list, handed to `decode`; or each record of a list, as a FlowIn.
  template <typename F>
  void Get(std::string_view key, F decode) {
    c_.Key(indent_, key);
    c_.Expect(" ");
    c_.Count(1);
    decode(In{c_.Value(depth_ + 1), nullptr, key});
    c_.Expect("\n");
  }
  template <typename F>
  void Each(std::string_view key, F decode) {
    Items(key, [&] { decode(In{c_.Value(depth_ + 2), nullptr, {}}); });
  }
  template <typename F>
  void Records(std::string_view key, F decode) {
    Items(key, [&] {
      FlowIn record(c_, depth_ + 2);
      decode(record);
    });
  }
  [[noreturn]] void FailAt(std::string_view, const std::string&) const { throw Decline{}; }
  void Done() const { Close(); }

 private:
  // `key: []`, or `key:` and its `- item` lines, each read by read_item.
  template <typename F>
  void Items(std::string_view key, F read_item) {
    c_.Key(indent_, key);
    c_.Count(2);
    if (c_.Peek(" []\n")) {
      c_.Expect(" []\n");
      return;
    }
    c_.Expect("\n");
    c_.Deeper(depth_ + 1);
    const std::string dash = std::string(indent_ + 2, ' ') + "- ";
    bool any = false;
    while (c_.AtItem(indent_ + 2)) {
      c_.Expect(dash);
      read_item();
      c_.Expect("\n");
      any = true;
    }
    if (!any) throw Decline{};  // `key:` and nothing under it: null, not a list
  }

  Cursor& c_;
  size_t indent_;
  size_t depth_;
};

template <typename T, typename C>
void ReadValue(Cursor& c, size_t depth, std::string_view key, T& x, const C& codec) {
  if constexpr (RecordCodec<C>) {
    x = T{};
    FlowIn record(c, depth);
    C::Stream(record, x);
    record.Close();
  } else {
    const Node& node = c.Value(depth);
    codec.Read(In{node, nullptr, key}, &x);
  }
}

}  // namespace einhorn::core::state_format
