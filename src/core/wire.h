// The Einhorn command-socket wire format, both directions (EINHORN-CONTRACT.md section 3).
//
// Framing: one message per line ended by '\n'. Inside a line the document is escaped: '%'
// becomes "%25", then '\n' becomes "%0A". On input we decode every %XX (hex, either case) in
// one pass, a superset that old clients (node's encodeURI) need; on output we escape only '%'
// and '\n' (go-einhorn runs QueryUnescape on replies, so '+' and friends must stay literal).
//
// Requests are one YAML or JSON document that must be a mapping. Every byte is untrusted:
// lines are capped before parsing, and a guard pass over the YAML events rejects aliases and
// anchors, tags, more than one document, deep nesting and large node counts before anything
// is built.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace einhorn::core::wire {

inline constexpr size_t kMaxLineBytes = 64 * 1024;

std::string Escape(std::string_view payload);
// Ruby's String#inspect, near enough for error messages quoting what a client sent
// (Einhorn's replies are built with it: `Invalid signal: "FOO"`).
std::string RubyStringInspect(std::string_view s);
std::string Unescape(std::string_view line);

// Splits a byte stream into lines. A line longer than the limit (without its '\n') puts the
// buffer in the overflowed state: the caller replies with an error and closes. Each byte is
// scanned a bounded number of times however the stream is split, so a peer that trickles one
// byte per write costs linear time.
class LineBuffer {
 public:
  explicit LineBuffer(size_t max_line = kMaxLineBytes) : max_line_(max_line) {}
  // Returns false once overflowed (then and on every later call). The overflowing line is
  // dropped; complete lines that arrived before it can still be taken with NextLine.
  bool Append(std::string_view bytes);
  // The next complete line, without '\n' and without one trailing '\r'.
  std::optional<std::string> NextLine();
  bool overflowed() const { return overflowed_; }
  size_t pending_bytes() const { return buffer_.size() - start_; }
  // The bytes not yet returned by NextLine (a master re-exec carries them over).
  std::string_view pending() const { return std::string_view(buffer_).substr(start_); }

 private:
  size_t max_line_;
  std::string buffer_;
  size_t start_ = 0;         // first byte not yet returned by NextLine
  size_t complete_end_ = 0;  // bytes before this end in '\n' (all scanned by Append)
  bool overflowed_ = false;
};

// A request `id`, echoed back as `request_id` with the same YAML type (go-einhorn decodes an
// integer id into an int, so 7 must come back as 7, not "7").
struct Id {
  enum class Kind { kInt, kFloat, kBool, kString };
  Kind kind = Kind::kString;
  std::string text;  // the scalar as written (kString: the decoded value; kBool: "true")

  bool operator==(const Id&) const = default;
};

struct Request {
  std::string command;  // empty if missing (see has_command)
  bool has_command = false;
  std::optional<Id> id;  // absent, null or false: an old-style client (no request_id, no stream)

  // `args`: absent, not a list, or a list whose elements must all be strings.
  enum class ArgsState { kAbsent, kNotList, kBadElement, kList };
  ArgsState args_state = ArgsState::kAbsent;
  std::vector<std::string> args;
  std::string bad_arg;  // kBadElement: Einhorn's text, e.g. "Argument is a Integer, not a string: 5"

  // worker:ack / worker:ping: only an integer pid counts (as Einhorn, "1234" as a string does not).
  std::optional<std::int64_t> pid;
  bool pid_present = false;  // present and neither null nor false (Ruby truthiness), integer or not
  std::optional<Id> ping_request_id;  // worker:ping's `request_id` key
  std::string user;                   // ehlo
};

struct ParseResult {
  enum class Kind {
    kOk,
    kNotParsed,   // not YAML, not a mapping, or refused by the guard: "Could not parse command"
    kNoCommand,   // a mapping without `command`
  };
  Kind kind = Kind::kOk;
  Request request;  // kOk, and kNoCommand (its id is still echoed)
  std::string detail;  // why it was not parsed, for the log (never sent verbatim to peers)
};

struct Limits {
  size_t max_nodes = 4096;
  size_t max_depth = 32;
};

// Parses one unescaped line. Never throws.
ParseResult ParseRequest(std::string_view document, const Limits& limits = Limits{});

struct Reply {
  std::string message;
  std::optional<Id> request_id;
  bool wait = false;  // only on non-final streamed messages
  // Our own key, `error: true` after `wait`/`request_id`, on replies that report a failure, so
  // einhornctl can exit 1 without matching texts. Einhorn's clients ignore unknown keys.
  bool error = false;
};

// An Id as a YAML scalar that reads back as the same type (7, 1.5, true, "abc").
std::string IdYaml(const Id& id);

// The full line to write: an escaped YAML document and the terminating '\n'.
std::string EncodeReply(const Reply& reply);
// What einhornctl sends: the keys present, in this order. `args` is always sent with a verb
// (`die` requires it); ehlo carries `user` instead, worker:ack `pid` and no id (the shape every
// Einhorn client sends; it gets no reply).
struct OutgoingRequest {
  std::string command;
  std::optional<std::int64_t> id;
  std::optional<std::vector<std::string>> args;
  std::optional<std::string> user;
  std::optional<std::int64_t> pid;
  // {"command":"worker:ack","pid":N}: no space after ':' and ',', the bytes einhornctl ack has
  // always sent (a worker's ack line, in the JSON shape).
  bool compact = false;
};
// The full line for a request: a JSON-style flow mapping on one line, escaped, '\n'-ended.
std::string EncodeRequest(const OutgoingRequest& request);
// {command, id, args}: a verb with its arguments.
std::string EncodeRequest(const std::string& command, const std::vector<std::string>& args,
                          std::optional<std::int64_t> id);

// Decodes one reply line (escaped, without '\n') into a Reply; nullopt if it is not a YAML
// mapping with a string `message`.
// O(size of the line): a reply as EncodeReply writes it has its message decoded without
// yaml-cpp (see wire.cc); ParseReplySlow is yaml-cpp alone, for the tests that compare them.
std::optional<Reply> ParseReply(std::string_view line);
std::optional<Reply> ParseReplySlow(std::string_view line);

}  // namespace einhorn::core::wire
