// libFuzzer target for the command-socket codec (src/core/wire). Built only with
// -DEINHORN_FUZZ=ON and clang++; run it with scripts/fuzz. Every byte on the command socket is
// untrusted, so the codec must never crash, throw or disagree with itself whatever arrives.
// A broken invariant calls __builtin_trap(), which libFuzzer reports as a crash and saves.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/wire.h"

namespace wire = einhorn::core::wire;

namespace {

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "wire_fuzz: invariant broken: %s\n", what);
    __builtin_trap();
  }
}

// An independent strict UTF-8 check (not the codec's own), to know when a message must
// round-trip byte for byte; EncodeReply replaces invalid sequences with U+FFFD.
bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    uint32_t cp = 0;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      len = 2, cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3, cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4, cp = b & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

// The lines a trivially correct splitter finds before the first overlong line.
std::vector<std::string> NaiveLines(std::string_view in, size_t max_line, bool* overflow) {
  std::vector<std::string> lines;
  *overflow = false;
  size_t start = 0;
  while (true) {
    const size_t nl = in.find('\n', start);
    const size_t end = nl == std::string_view::npos ? in.size() : nl;
    if (end - start > max_line) {
      *overflow = true;
      return lines;
    }
    if (nl == std::string_view::npos) return lines;
    std::string line(in.substr(start, nl - start));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = nl + 1;
  }
}

std::vector<std::string> Split(std::string_view in, size_t max_line, size_t chunk,
                               bool* overflow) {
  wire::LineBuffer buffer(max_line);
  std::vector<std::string> lines;
  bool ok = true;
  for (size_t at = 0; at < in.size(); at += chunk) {
    ok = buffer.Append(in.substr(at, chunk)) && ok;
    while (auto line = buffer.NextLine()) lines.push_back(*line);
  }
  Require(ok == !buffer.overflowed(), "Append's result agrees with overflowed()");
  *overflow = buffer.overflowed();
  return lines;
}

void CheckRequest(std::string_view document) {
  const wire::ParseResult result = wire::ParseRequest(document);
  if (result.kind == wire::ParseResult::Kind::kNotParsed) {
    Require(!result.detail.empty(), "a refusal says why");
    return;
  }
  const wire::Request& r = result.request;
  Require(r.has_command == (result.kind == wire::ParseResult::Kind::kOk), "kNoCommand iff no command");
  Require(!r.pid || r.pid_present, "a pid implies pid_present");
  Require((r.args_state == wire::Request::ArgsState::kBadElement) == !r.bad_arg.empty(),
          "bad_arg set iff kBadElement");

  if (r.has_command && IsValidUtf8(r.command)) {
    // What we parsed, einhornctl can say again.
    const std::vector<std::string> args =
        r.args_state == wire::Request::ArgsState::kList ? r.args : std::vector<std::string>{};
    bool args_utf8 = true;
    for (const auto& a : args) args_utf8 = args_utf8 && IsValidUtf8(a);
    if (args_utf8) {
      const std::string line = wire::EncodeRequest(r.command, args, 42);
      Require(line.find('\n') == line.size() - 1, "EncodeRequest is one line");
      const wire::ParseResult again =
          wire::ParseRequest(wire::Unescape(std::string_view(line).substr(0, line.size() - 1)));
      Require(again.kind == wire::ParseResult::Kind::kOk, "EncodeRequest output parses");
      Require(again.request.command == r.command, "command round-trips");
      Require(again.request.args == args, "args round-trip");
      Require(again.request.id && again.request.id->text == "42", "id round-trips");
    }
  }

  if (r.id && IsValidUtf8(r.id->text)) {
    // The echo of an id reads back with the same type and text.
    const std::string line = wire::EncodeReply({"ok", r.id, true, false});
    const auto reply = wire::ParseReply(std::string_view(line).substr(0, line.size() - 1));
    Require(reply.has_value(), "an echoed id parses");
    Require(reply->request_id.has_value(), "request_id is kept");
    Require(reply->request_id->kind == r.id->kind, "request_id keeps its kind");
    Require(reply->request_id->text == r.id->text, "request_id keeps its text");
    Require(reply->wait, "wait is kept");
  }
}

void CheckReply(std::string_view message) {
  for (int variant = 0; variant < 2; ++variant) {
    wire::Reply reply;
    reply.message = std::string(message);
    if (variant == 1) {
      reply.request_id = wire::Id{wire::Id::Kind::kString, std::string(message)};
      reply.error = true;
    }
    const std::string line = wire::EncodeReply(reply);
    Require(line.find('\n') == line.size() - 1, "EncodeReply has exactly one '\\n', at the end");
    const std::string_view body = std::string_view(line).substr(0, line.size() - 1);
    for (size_t i = body.find('%'); i != std::string_view::npos; i = body.find('%', i + 1)) {
      const std::string_view esc = body.substr(i, 3);
      Require(esc == "%25" || esc == "%0A", "only %25 and %0A appear in a reply");
    }
    Require(body.find('+') == std::string_view::npos, "no '+' for go-einhorn's QueryUnescape");
    const auto back = wire::ParseReply(body);
    Require(back.has_value(), "EncodeReply output parses");
    if (IsValidUtf8(message)) {
      Require(back->message == message, "the message round-trips");
      if (variant == 1) {
        Require(back->request_id && back->request_id->kind == wire::Id::Kind::kString &&
                    back->request_id->text == message,
                "a string request_id round-trips");
      }
    }
    Require(back->error == reply.error && !back->wait, "flags round-trip");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  Require(wire::Unescape(wire::Escape(in)) == in, "Unescape(Escape(x)) == x");
  Require(wire::Escape(in).find('\n') == std::string::npos, "Escape removes every '\\n'");

  // Framing: any chunking gives the lines a naive splitter finds.
  const size_t max_line = 1 + (size > 0 ? data[0] % 64 : 0);
  bool naive_overflow = false;
  const std::vector<std::string> expected = NaiveLines(in, max_line, &naive_overflow);
  for (size_t chunk : {size_t{1}, size_t{3}, size_t{17}, size + 1}) {
    bool overflow = false;
    Require(Split(in, max_line, chunk, &overflow) == expected, "LineBuffer agrees with a naive split");
    Require(overflow == naive_overflow, "LineBuffer overflows when a naive split does");
  }

  // The inbound path with the real limit, then the whole input as one document too.
  bool overflow = false;
  for (const std::string& line : Split(in, wire::kMaxLineBytes, 4096, &overflow)) {
    CheckRequest(wire::Unescape(line));
    (void)wire::ParseReply(line);
  }
  CheckRequest(in);
  (void)wire::ParseReply(in);
  CheckReply(in);
  return 0;
}
