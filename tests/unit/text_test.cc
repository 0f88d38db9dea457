#include "core/text.h"

#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace einhorn::core::text {
namespace {

// ---------------------------------------------------------------------------------------
// Oracles: the writers as they were before core/text.h (2ec1c8d), frozen here so that the one
// quoting loop is checked against all four, byte for byte, on every short input.

// UTF-8 encoding of any value up to 0x1FFFFF, surrogates included (to build invalid input).
std::string Encode(char32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

// The old decoder, as json_text.cc and pool_status.cc had it: length and code point, or 0.
size_t OldUtf8At(std::string_view s, size_t i, unsigned* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned lead = b(0);
  size_t len;
  unsigned min;
  if (lead >= 0xC2 && lead <= 0xDF) {
    len = 2, min = 0x80, *cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    len = 3, min = 0x800, *cp = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    len = 4, min = 0x10000, *cp = lead & 0x07;
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    *cp = (*cp << 6) | (b(k) & 0x3F);
  }
  if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return 0;
  return len;
}

std::string Hex(const char* format, unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// json_text.cc's AppendJsonString, pool_status.cc's Str and wire.cc's AppendDoubleQuoted.
enum class Old { kJson, kStatus, kWire };
std::string OldQuote(std::string_view s, Old style) {
  std::string out = "\"";
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      if (c == '"') {
        out += "\\\"";
      } else if (c == '\\') {
        out += "\\\\";
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c == '\t') {
        out += "\\t";
      } else if (c < 0x20 || c == 0x7F || (c == '+' && style == Old::kWire)) {
        out += style == Old::kJson     ? Hex("\\u%04x", c)
               : style == Old::kStatus ? Hex("\\u%04X", c)
                                       : Hex("\\x%02X", c);
      } else {
        out += static_cast<char>(c);
      }
      continue;
    }
    unsigned cp = 0;
    const size_t len = OldUtf8At(s, i, &cp);
    if (len == 0) {
      out += style == Old::kStatus ? Hex("\\x%02X", c) : "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    const bool c1 = cp >= 0x80 && cp <= 0x9F;
    const bool lines = cp == 0x2028 || cp == 0x2029;
    const bool nonchars = cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF;
    if (style == Old::kJson && (c1 || lines)) {
      out += Hex("\\u%04x", cp);
    } else if (style == Old::kStatus && (c1 || lines || nonchars)) {
      out += Hex("\\u%04X", cp);
    } else if (style == Old::kWire && (c1 || lines || nonchars)) {
      out += cp <= 0xFF ? Hex("\\x%02X", cp) : Hex("\\u%04X", cp);
    } else {
      out.append(s, i, len);
    }
    i += len;
  }
  return out + "\"";
}

// state_format.cc's Str, for printable ASCII (anything else went to !!binary).
std::string OldStateStr(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

void CheckAllStyles(std::string_view s) {
  CAPTURE(s);
  CHECK(Quoted(s, Quote::kJson) == OldQuote(s, Old::kJson));
  CHECK(Quoted(s, Quote::kYaml) == OldQuote(s, Old::kStatus));
  CHECK(Quoted(s, Quote::kWire) == OldQuote(s, Old::kWire));
  if (IsPrintableAscii(s)) CHECK(Quoted(s, Quote::kYaml) == OldStateStr(s));
}

// Decodes the whole string: the code points, with kInvalidUtf8 for each bad byte.
std::vector<char32_t> Decode(std::string_view s) {
  std::vector<char32_t> out;
  for (size_t i = 0; i < s.size();) out.push_back(NextCodePoint(s, &i));
  return out;
}

using V = std::vector<char32_t>;

// Whether every byte of s is refused on its own (without allocating: run 1.1 million times).
bool AllBad(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t at = i;
    if (NextCodePoint(s, &i) != kInvalidUtf8 || i != at + 1) return false;
  }
  return true;
}
constexpr char32_t kBad = kInvalidUtf8;

// ---------------------------------------------------------------------------------------
// UTF-8

TEST_CASE("every scalar value decodes from its encoding, and nothing else decodes as it") {
  // One CHECK per failure, not per code point: 1.1 million of them would dominate the run.
  size_t failures = 0;
  for (char32_t cp = 0; cp <= 0x10FFFF && failures < 5; ++cp) {
    const std::string bytes = Encode(cp);
    size_t i = 0;
    const char32_t got = NextCodePoint(bytes, &i);
    bool ok;
    if (cp >= 0xD800 && cp <= 0xDFFF) {
      // A surrogate: refused at its lead byte, and each byte after it is refused alone.
      ok = got == kBad && i == 1 && AllBad(bytes);
    } else {
      ok = got == cp && i == bytes.size();
    }
    // Every proper prefix of a multi-byte sequence is truncated: one kBad per byte.
    for (size_t n = 1; n < bytes.size(); ++n) {
      ok = ok && AllBad(std::string_view(bytes).substr(0, n));
    }
    if (!ok) {
      ++failures;
      CAPTURE(static_cast<unsigned>(cp));
      CHECK(ok);
    }
  }
  CHECK(failures == 0);
}

TEST_CASE("overlong forms, bytes that never start a sequence and values past U+10FFFF") {
  CHECK(Decode("\xC0\x80") == V{kBad, kBad});          // NUL, overlong
  CHECK(Decode("\xC1\xBF") == V{kBad, kBad});          // U+007F, overlong
  CHECK(Decode("\xE0\x80\x80") == V{kBad, kBad, kBad});  // NUL in three bytes
  CHECK(Decode("\xE0\x9F\xBF") == V{kBad, kBad, kBad});  // U+07FF in three bytes
  CHECK(Decode("\xF0\x8F\xBF\xBF") == V{kBad, kBad, kBad, kBad});  // U+FFFF in four
  CHECK(Decode("\xF4\x90\x80\x80") == V{kBad, kBad, kBad, kBad});  // U+110000
  CHECK(Decode("\xF5\x80\x80\x80") == V{kBad, kBad, kBad, kBad});
  CHECK(Decode("\xFE\xFF") == V{kBad, kBad});
  CHECK(Decode("\x80") == V{kBad});  // a lone continuation byte
  CHECK(Decode("\xBF") == V{kBad});
  // A bad continuation costs one byte: what follows is read again from the next byte.
  CHECK(Decode("\xC3" "A") == V{kBad, 'A'});
  CHECK(Decode("\xE2\x82" "A") == V{kBad, kBad, 'A'});
  CHECK(Decode("\xE2\xC3\xA9") == V{kBad, 0xE9});
  // The limits themselves.
  CHECK(Decode("\xC2\x80") == V{0x80});
  CHECK(Decode("\xE0\xA0\x80") == V{0x800});
  CHECK(Decode("\xED\x9F\xBF") == V{0xD7FF});
  CHECK(Decode("\xEE\x80\x80") == V{0xE000});
  CHECK(Decode("\xF0\x90\x80\x80") == V{0x10000});
  CHECK(Decode("\xF4\x8F\xBF\xBF") == V{0x10FFFF});
}

TEST_CASE("YAML-printable and printable ASCII") {
  CHECK(IsYamlPrintable('\t'));
  CHECK(IsYamlPrintable('\n'));
  CHECK(IsYamlPrintable('\r'));
  CHECK_FALSE(IsYamlPrintable(0x00));
  CHECK_FALSE(IsYamlPrintable(0x7F));
  CHECK(IsYamlPrintable(0x85));
  CHECK_FALSE(IsYamlPrintable(0x86));
  CHECK(IsYamlPrintable(0xA0));
  CHECK_FALSE(IsYamlPrintable(0xFFFE));
  CHECK(IsYamlPrintable(0x10FFFF));
  CHECK_FALSE(IsYamlPrintable(kBad));
  CHECK(IsPrintableAscii(""));
  CHECK(IsPrintableAscii(" ~"));
  CHECK_FALSE(IsPrintableAscii("\x7F"));
  CHECK_FALSE(IsPrintableAscii("\n"));
  CHECK_FALSE(IsPrintableAscii("\xC3\xA9"));
}

// ---------------------------------------------------------------------------------------
// Quoting

TEST_CASE("each style, on the characters that tell them apart") {
  const struct {
    std::string in, json, yaml, wire;
  } cases[] = {
      {"", R"("")", R"("")", R"("")"},
      {"a+b", R"("a+b")", R"("a+b")", R"("a\x2Bb")"},
      {"\"\\\n\r\t", R"("\"\\\n\r\t")", R"("\"\\\n\r\t")", R"("\"\\\n\r\t")"},
      {"\x01\x1f\x7f", R"("\u0001\u001f\u007f")", R"("\u0001\u001F\u007F")",
       R"("\x01\x1F\x7F")"},
      {"\xC2\x85\xC2\x9F", R"("\u0085\u009f")", R"("\u0085\u009F")", R"("\x85\x9F")"},
      {"\xC2\xA0\xC3\xA9", "\"\xC2\xA0\xC3\xA9\"", "\"\xC2\xA0\xC3\xA9\"", "\"\xC2\xA0\xC3\xA9\""},
      {"\xE2\x80\xA8\xE2\x80\xA9", R"("\u2028\u2029")", R"("\u2028\u2029")", R"("\u2028\u2029")"},
      {"\xEF\xBB\xBF", "\"\xEF\xBB\xBF\"", R"("\uFEFF")", R"("\uFEFF")"},
      {"\xEF\xBF\xBE\xEF\xBF\xBF", "\"\xEF\xBF\xBE\xEF\xBF\xBF\"", R"("\uFFFE\uFFFF")",
       R"("\uFFFE\uFFFF")"},
      {"\xF0\x9F\x98\x80", "\"\xF0\x9F\x98\x80\"", "\"\xF0\x9F\x98\x80\"",
       "\"\xF0\x9F\x98\x80\""},
      {"a\xFFz", "\"a\xEF\xBF\xBDz\"", R"("a\xFFz")", "\"a\xEF\xBF\xBDz\""},
      {"\xED\xA0\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"", R"("\xED\xA0\x80")",
       "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},
      {"\xC0\xAF", "\"\xEF\xBF\xBD\xEF\xBF\xBD\"", R"("\xC0\xAF")",
       "\"\xEF\xBF\xBD\xEF\xBF\xBD\""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    CHECK(Quoted(c.in, Quote::kJson) == c.json);
    CHECK(Quoted(c.in, Quote::kYaml) == c.yaml);
    CHECK(Quoted(c.in, Quote::kWire) == c.wire);
    CheckAllStyles(c.in);
  }
}

TEST_CASE("byte for byte the writers it replaced, on every string of up to two bytes") {
  std::string s;
  CheckAllStyles(s);
  for (int a = 0; a < 256; ++a) {
    CheckAllStyles(std::string(1, static_cast<char>(a)));
    for (int b = 0; b < 256; ++b) {
      s = {static_cast<char>(a), static_cast<char>(b)};
      // REQUIRE-style early stop: one mismatch is enough to read.
      if (Quoted(s, Quote::kJson) != OldQuote(s, Old::kJson) ||
          Quoted(s, Quote::kYaml) != OldQuote(s, Old::kStatus) ||
          Quoted(s, Quote::kWire) != OldQuote(s, Old::kWire)) {
        CheckAllStyles(s);
        FAIL("differs");
      }
    }
  }
}

TEST_CASE("byte for byte the writers it replaced, on random UTF-8 and corrupted UTF-8") {
  std::mt19937 rng(20261206);
  const char32_t interesting[] = {0,      '"',    '\\',   '+',    '\n',   0x7F,    0x80,
                                  0x85,   0x9F,   0xA0,   0xFF,   0x100,  0x7FF,   0x800,
                                  0x2028, 0x2029, 0xD7FF, 0xE000, 0xFEFF, 0xFFFD,  0xFFFE,
                                  0xFFFF, 0x10000, 0x10FFFF, 0xD800, 0xDFFF, 0x1F600, 'a'};
  for (int round = 0; round < 20000; ++round) {
    std::string s;
    const int n = static_cast<int>(rng() % 8);
    for (int k = 0; k < n; ++k) {
      s += Encode(rng() % 4 == 0 ? static_cast<char32_t>(rng() % 0x110000)
                                 : interesting[rng() % std::size(interesting)]);
    }
    // Corrupt some: flip a byte, cut the end, or drop one from the middle.
    if (!s.empty() && rng() % 2 == 0) {
      const size_t at = rng() % s.size();
      switch (rng() % 3) {
        case 0:
          s[at] = static_cast<char>(rng());
          break;
        case 1:
          s.resize(at);
          break;
        default:
          s.erase(at, 1);
          break;
      }
    }
    if (Quoted(s, Quote::kJson) != OldQuote(s, Old::kJson) ||
        Quoted(s, Quote::kYaml) != OldQuote(s, Old::kStatus) ||
        Quoted(s, Quote::kWire) != OldQuote(s, Old::kWire)) {
      CheckAllStyles(s);
      FAIL("differs");
    }
  }
}

TEST_CASE("every quoted string is valid UTF-8, and YAML reads the wire style back") {
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; b += 7) {
      const std::string s = {static_cast<char>(a), static_cast<char>(b), 'x'};
      for (Quote q : {Quote::kJson, Quote::kYaml, Quote::kWire}) {
        const std::string quoted = Quoted(s, q);
        const auto decoded = Decode(quoted);
        REQUIRE(std::find(decoded.begin(), decoded.end(), kBad) == decoded.end());
      }
      // Valid UTF-8 comes back byte for byte through yaml-cpp.
      bool valid = true;
      for (char32_t cp : Decode(s)) valid = valid && cp != kBad;
      if (valid) {
        const std::string quoted = Quoted(s, Quote::kWire);
        CAPTURE(quoted);
        REQUIRE(YAML::Load(quoted).Scalar() == s);
      }
    }
  }
}

TEST_CASE("AppendQuoted appends, and JSON numbers") {
  std::string out = "x: ";
  AppendQuoted(out, "a", Quote::kJson);
  CHECK(out == "x: \"a\"");
  out.clear();
  AppendJsonNumber(out, 0.25);
  out += ' ';
  AppendJsonNumber(out, 3);
  out += ' ';
  AppendJsonNumber(out, 1e21);
  out += ' ';
  AppendJsonNumber(out, std::numeric_limits<double>::quiet_NaN());
  out += ' ';
  AppendJsonNumber(out, -std::numeric_limits<double>::infinity());
  CHECK(out == "0.25 3 1e+21 null null");
}

// ---------------------------------------------------------------------------------------
// Base64

TEST_CASE("base64 round-trips every length, and the decoder accepts one text per value") {
  std::string bytes;
  for (int n = 0; n < 300; ++n) {
    const std::string text = EncodeBase64(bytes);
    CHECK(text.size() == (bytes.size() + 2) / 3 * 4);
    REQUIRE(DecodeBase64(text) == bytes);
    bytes += static_cast<char>(n * 37);
  }
  CHECK(EncodeBase64("\xFF") == "/w==");
  CHECK(EncodeBase64("ab") == "YWI=");
  CHECK(DecodeBase64("/x==") == std::nullopt);  // padding bits set
  CHECK(DecodeBase64("YWJ=") == std::nullopt);
  CHECK(DecodeBase64("YW=I") == std::nullopt);  // '=' before a digit
  CHECK(DecodeBase64("=AAA") == std::nullopt);
  CHECK(DecodeBase64("YWI") == std::nullopt);   // not a multiple of 4
  CHECK(DecodeBase64("YW I") == std::nullopt);  // whitespace
  CHECK(DecodeBase64("YWI=YWI=") == std::nullopt);  // padding in the middle
  CHECK(DecodeBase64("") == std::string());
}

// ---------------------------------------------------------------------------------------
// The guard

std::string Say(const Refusal& r) {
  const char* names[] = {"second", "alias", "anchor", "tag", "nodes", "deep"};
  return std::string(names[static_cast<int>(r.kind)]) + (r.tag.empty() ? "" : " " + r.tag) +
         " @" + std::to_string(r.line);
}

std::string GuardSays(std::string_view doc, GuardLimits limits = {100, 4,
                                                                   GuardLimits::Tags::kNone}) {
  try {
    return GuardDocument(doc, limits, Say) ? "ok" : "empty";
  } catch (const Error& e) {
    return e.what();
  } catch (const YAML::Exception& e) {
    return "yaml";
  }
}

TEST_CASE("the guard refuses what no format of ours uses, with its line") {
  CHECK(GuardSays("a: 1") == "ok");
  CHECK(GuardSays("") == "empty");
  CHECK(GuardSays("a: [1, 2]\n--- b") == "second @2");
  CHECK(GuardSays("a: &x 1\nb: *x") == "anchor @1");
  CHECK(GuardSays("a: !!str 1") == "tag tag:yaml.org,2002:str @1");
  CHECK(GuardSays("a:\n  - !local 1") == "tag !local @2");
  CHECK(GuardSays("[[[[[1]]]]]") == "deep @1");
  CHECK(GuardSays("[[[[1]]]]") == "ok");
  CHECK(GuardSays("a: [") == "yaml");
  std::string many = "[";
  for (int i = 0; i < 100; ++i) many += "1, ";
  CHECK(GuardSays(many + "]") == "nodes @1");  // 100 scalars and the sequence
  many.resize(many.size() - 3);
  CHECK(GuardSays(many + "]") == "ok");

  const GuardLimits psych{100, 4, GuardLimits::Tags::kPsychTypes};
  CHECK(GuardSays("a: !!str 1", psych) == "ok");
  CHECK(GuardSays("a: !!binary aGk=", psych) == "tag tag:yaml.org,2002:binary @1");
  const GuardLimits core{100, 4, GuardLimits::Tags::kAnyCore};
  CHECK(GuardSays("a: !!binary aGk=", core) == "ok");
  CHECK(GuardSays("a: !local x", core) == "tag !local @1");
}

TEST_CASE("an alias alone is refused as an alias") {
  // yaml-cpp reports the anchor first when both appear; an alias to nothing is its own error.
  CHECK(GuardSays("a: *x") != "ok");
}

// ---------------------------------------------------------------------------------------
// The strict reader

Node Tree(std::string_view doc) {
  return ParseTree(doc, {1000, 8, GuardLimits::Tags::kAnyCore}, Say, "nothing");
}

std::string Fails(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST_CASE("ParseTree builds the document as a plain tree") {
  const Node n = Tree("a: [1, \"x\", ~]\nb: {c: !!binary aGk=}\n");
  REQUIRE(n.kind == Node::Kind::kMap);
  REQUIRE(n.items.size() == 4);
  CHECK(n.items[0].scalar == "a");
  const Node& list = n.items[1];
  REQUIRE(list.kind == Node::Kind::kSequence);
  REQUIRE(list.items.size() == 3);
  CHECK(list.items[0].tag == "?");
  CHECK(list.items[1].tag == "!");
  CHECK(list.items[2].kind == Node::Kind::kNull);
  CHECK(n.items[3].items[1].tag == "tag:yaml.org,2002:binary");
  CHECK(Fails([] { Tree(""); }) == "nothing");
  CHECK(Fails([] { Tree("a: &x 1"); }) == "anchor @1");
}

TEST_CASE("In and MapIn: typed scalars, paths and the root's name in messages") {
  const Node n = Tree(
      "n: 5\nneg: -3\nq: \"5\"\nbig: 010\nu: 18446744073709551615\nt: true\nd: 0.5\n"
      "s: \"hi\"\nb: !!binary aGk=\nbad: !!binary aGk\nl: [{k: x}]\n");
  const In root{n, nullptr, "the doc"};
  MapIn m(root);
  CHECK(Integer(m.Get("n"), 0, 10) == 5);
  CHECK(Integer(m.Get("neg"), -5, 0) == -3);
  CHECK(Fails([&] { Integer(m.Get("n"), 0, 4); }) == "n: 5 is out of range (0..4)");
  CHECK(Fails([&] { Integer(m.Get("q"), 0, 9); }) == "q: expected an integer");
  CHECK(Fails([&] { Integer(m.Get("big"), 0, 99); }) == "big: expected an integer");
  CHECK(Unsigned(m.Get("u")) == 18446744073709551615ULL);
  CHECK(Boolean(m.Get("t")));
  CHECK(Double(m.Get("d")) == 0.5);
  CHECK(String(m.Get("s")) == "hi");
  CHECK(String(m.Get("b")) == "hi");
  CHECK(Fails([&] { String(m.Get("bad")); }) == "bad: not valid base64");
  const In l = m.Get("l");
  REQUIRE(l.node.items.size() == 1);
  const In first{l.node.items[0], &l, {}, 0};
  MapIn e(first);
  CHECK(Fails([&] { e.Get("nope"); }) == "l[0].nope: missing");
  CHECK(Fails([&] { e.Done(); }) == "l[0].k: unknown key");
  CHECK(Fails([&] { MapIn{m.Get("n")}; }) == "n: expected a mapping");
  m.Done();
  CHECK(Fails([&] { Fail(root, "whole"); }) == "the doc: whole");
  const In unnamed{n};
  CHECK(Fails([&] { Fail(unnamed, "whole"); }) == "the document: whole");

  const Node dup = Tree("a: 1\nb: 2\na: 3\n");
  CHECK(Fails([&] { MapIn{In{dup}}; }) == "a: appears twice");
  const std::string long_key(100, 'k');
  const Node lk = Tree(long_key + ": 1\n");
  CHECK(Fails([&] {
          MapIn x{In{lk}};
          x.Done();
        }) == std::string(64, 'k') + "...: unknown key");
}

}  // namespace
}  // namespace einhorn::core::text
