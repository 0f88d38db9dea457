// The text codecs every format in src/core shares, in the manner of leveldb's util/coding.h:
// UTF-8 decoding, quoted strings (JSON and the two YAML double-quoted dialects we write),
// base64, the guard pass that sees every yaml-cpp event before a node is built, a strict reader
// that builds a plain tree and walks it with key paths, and the one error type the readers
// throw. Pure functions of their arguments, no state between calls.
//
// Users: wire.cc (requests and replies), pool_status.cc, json_text.h (JSON log lines and the
// events reply), state_format.cc (the re-exec state), config.cc (the config file), events.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace einhorn::core::text {

// What every reader in this module (and its callers' own checks) throws: one line saying what
// is wrong and where. Callers turn it into a Result at their module boundary.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------
// UTF-8

// Returned for a byte that does not start a valid sequence.
inline constexpr char32_t kInvalidUtf8 = 0xFFFFFFFF;

// Decodes the code point at s[*i] (i < s.size()) and advances past it. Bad continuation bytes,
// truncated sequences, overlong forms, surrogates (U+D800..U+DFFF) and values above U+10FFFF
// are invalid (libyaml, hence Ruby, refuses them): those give kInvalidUtf8 and advance one
// byte, so a caller can replace or escape the byte and go on.
char32_t NextCodePoint(std::string_view s, size_t* i);

// Appends code point cp (at most U+FFFF: the \xXX and \uXXXX escapes the readers decode) as
// UTF-8.
void AppendUtf8(std::string& out, char32_t cp);

// The characters libyaml accepts raw in a stream (YAML 1.1 c-printable).
bool IsYamlPrintable(char32_t cp);

// Printable ASCII (0x20..0x7E) only.
bool IsPrintableAscii(std::string_view s);

// ---------------------------------------------------------------------------------------
// Suggestions for a mistyped name: the config loader's unknown keys and the command line's
// unknown flags.
// Levenshtein distance (insertions, deletions, substitutions), bytewise.
size_t EditDistance(std::string_view a, std::string_view b);
// The candidate nearest to `word` at a distance under `below`, the first of equals; "" if none.
std::string Nearest(std::string_view word, const std::vector<std::string>& candidates,
                    size_t below = 3);
// einhornctl's rule for its commands and options: as Nearest within `max_distance` edits, else
// a candidate that `word` (2 characters at least) is a prefix of (`stat` -> status); "" for an
// unrelated word.
std::string NearestWord(std::string_view word, const std::vector<std::string>& candidates,
                        size_t max_distance = 2);

// ---------------------------------------------------------------------------------------
// Quoted strings. Each style is one double-quoted literal, quotes included, that its readers
// take back; all of them escape '"', '\\', '\n', '\r' and '\t' by name, and pass printable
// ASCII and valid UTF-8 outside the sets below through unchanged.
enum class Quote {
  // JSON (and so a YAML 1.2 double-quoted scalar): other C0 controls, DEL, C1 controls, U+2028
  // and U+2029 as \u00xx (lower-case hex); a byte that is not valid UTF-8 becomes U+FFFD.
  kJson,
  // YAML, JSON-compatible escapes (the status reply): as kJson, upper-case hex, and also U+FEFF,
  // U+FFFE and U+FFFF escaped; a byte that is not valid UTF-8 is written \xXX (U+00XX to a YAML
  // reader, so the string reads back as its Latin-1 reading).
  kYaml,
  // YAML for the command socket, read back byte for byte by Psych, go-yaml v2 and yaml-cpp:
  // as kYaml but code points up to U+00FF escaped \xXX, '+' escaped (go-einhorn runs
  // url.QueryUnescape over replies), and invalid UTF-8 becomes U+FFFD.
  kWire,
};
void AppendQuoted(std::string& out, std::string_view s, Quote style);
std::string Quoted(std::string_view s, Quote style);

// The shortest decimal that reads back as the same double ("0.25", "3", "1e+21"); "null" for
// NaN and the infinities, which JSON cannot hold.
void AppendJsonNumber(std::string& out, double value);

// ---------------------------------------------------------------------------------------
// Base64 (RFC 4648, with padding), for YAML's !!binary. The decoder is strict (padding bits
// zero, no whitespace), so each value has exactly one encoding; nullopt when not base64.
std::string EncodeBase64(std::string_view bytes);
std::optional<std::string> DecodeBase64(std::string_view text);

// ---------------------------------------------------------------------------------------
// The YAML guard: one pass over yaml-cpp's parser events that refuses, before any node is
// built, what no format of ours uses and what makes naive walks blow up: anchors and aliases
// (a cycle, or an exponential walk), tags outside a set, a second document, more nodes or
// deeper nesting than the limits.

struct GuardLimits {
  size_t max_nodes = 0;
  size_t max_depth = 0;  // nesting of collections; a top-level map is depth 1
  enum class Tags {
    kNone,        // only untagged, plain ("?") or quoted ("!") nodes
    kPsychTypes,  // also !!str !!int !!float !!bool !!null !!seq !!map
    kAnyCore,     // also any other tag:yaml.org,2002: tag (!!binary...)
  } tags = Tags::kNone;
};

// What the guard refused, for the caller to phrase in its own words.
struct Refusal {
  enum class Kind { kSecondDocument, kAlias, kAnchor, kTag, kTooManyNodes, kTooDeep } kind;
  std::string tag;  // kTag: the tag refused
  int line = 1;     // 1-based; 1 when yaml-cpp gives no position
};
using Phrase = std::function<std::string(const Refusal&)>;

// Runs the guard over the first document of `doc`, throwing Error(phrase(refusal)) on the
// first refusal (yaml-cpp's own YAML::Exception passes through). Returns whether there was a
// document at all; a second document is refused as kSecondDocument.
bool GuardDocument(std::string_view doc, const GuardLimits& limits, const Phrase& phrase);

// ---------------------------------------------------------------------------------------
// The strict reader: a document as a plain tree (yaml-cpp's own node graph takes several times
// longer to build and is larger), built in the guard's pass.

struct Node {
  enum class Kind : unsigned char { kNull, kScalar, kSequence, kMap };
  Kind kind = Kind::kNull;
  std::string tag;  // "?" for a plain scalar, "!" for a quoted one, or a tag such as !!binary's
  std::string scalar;
  std::vector<Node> items;  // kSequence: the elements; kMap: key, value, key, value, ...

  bool operator==(const Node&) const = default;
};

// Guards and builds the first document of `doc`. Throws Error(phrase(...)) as GuardDocument
// does, Error(no_document) when there is none, or YAML::Exception.
Node ParseTree(std::string_view doc, const GuardLimits& limits, const Phrase& phrase,
               const std::string& no_document);

// A node and where it is ("supervisor.workers[3].ready_at"); the path is only spelled out for
// a message. Parents outlive their children: decoding descends the call stack. The root's key
// names the whole document in messages about it ("the state"); it is not part of paths.
struct In {
  const Node& node;
  const In* parent = nullptr;
  std::string_view key{};  // the key in the parent mapping, or empty in a list
  size_t index = 0;        // the index in the parent list

  std::string Path() const;
};

// Throws Error("PATH: what"), or "ROOT: what" at the root.
[[noreturn]] void Fail(const In& in, const std::string& what);

// Typed scalars. Numbers, booleans and names must be plain (a quoted "5" is a string);
// integers are canonical decimal (no "010", "0x10", "+1" or "-0").
const std::string& PlainText(const In& in, const char* expected);
long long Integer(const In& in, long long lo, long long hi);
std::uint64_t Unsigned(const In& in);
bool Boolean(const In& in);
double Double(const In& in);       // finite only
std::string String(const In& in);  // double-quoted, or !!binary with canonical base64

// A mapping whose keys must each be taken with Get once; Done() refuses any left over, and a
// key that appears twice is refused at once.
class MapIn {
 public:
  explicit MapIn(const In& in);
  MapIn(const MapIn&) = delete;  // the Ins it hands out point at in_
  MapIn& operator=(const MapIn&) = delete;

  bool Has(std::string_view key) const { return Find(key) != nullptr; }
  In Get(std::string_view key);  // a missing key is refused
  void Done() const;

 private:
  struct Entry {
    std::string_view key;
    const Node* value;
    mutable bool used;
  };
  In Child(const Entry& e) const { return In{*e.value, &in_, e.key}; }
  const Entry* Find(std::string_view key) const;

  In in_;
  std::vector<Entry> entries_;  // in document order
  std::vector<size_t> sorted_;  // indexes into entries_, by key
};

}  // namespace einhorn::core::text
