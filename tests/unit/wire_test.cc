#include "core/wire.h"

#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace einhorn::core::wire {
namespace {

using Kind = ParseResult::Kind;
using Args = Request::ArgsState;

// Feeds the raw bytes a client writes through the whole inbound path, one byte at a time.
std::vector<ParseResult> Receive(std::string_view bytes) {
  LineBuffer buffer;
  std::vector<ParseResult> out;
  for (char c : bytes) {
    REQUIRE(buffer.Append(std::string_view(&c, 1)));
    while (auto line = buffer.NextLine()) out.push_back(ParseRequest(Unescape(*line)));
  }
  return out;
}

// One request line as a client writes it (escaped, with its '\n').
Request Ok(std::string_view bytes) {
  INFO(bytes);
  auto results = Receive(bytes);
  REQUIRE(results.size() == 1);
  INFO(results[0].detail);
  REQUIRE(results[0].kind == Kind::kOk);
  return results[0].request;
}

Kind KindOf(std::string_view document) { return ParseRequest(document).kind; }

// What Ruby Einhorn 0.8.2+ clients do with a reply line: decode only %25 and %0A.
std::string EinhornUnescape(std::string_view line) {
  std::string out;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line.substr(i, 3) == "%25") {
      out += '%';
      i += 2;
    } else if (line.substr(i, 3) == "%0A") {
      out += '\n';
      i += 2;
    } else {
      out += line[i];
    }
  }
  return out;
}

// What go-einhorn does with a reply line: url.QueryUnescape ('+' is a space).
std::string QueryUnescape(std::string_view line) {
  std::string out;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '+') {
      out += ' ';
    } else if (line[i] == '%') {
      REQUIRE(i + 2 < line.size());
      out += static_cast<char>(std::stoi(std::string(line.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += line[i];
    }
  }
  return out;
}

std::string WithoutNewline(const std::string& line) {
  REQUIRE(!line.empty());
  REQUIRE(line.back() == '\n');
  return line.substr(0, line.size() - 1);
}

TEST_CASE("Escape touches only '%' and newline") {
  CHECK(Escape("") == "");
  CHECK(Escape("a b:+c/é") == "a b:+c/é");
  CHECK(Escape("100%\n") == "100%25%0A");
  CHECK(Escape("%25") == "%2525");
  CHECK(Escape("\r\t") == "\r\t");
}

TEST_CASE("Unescape decodes every %XX in one pass, either case, and leaves the rest") {
  CHECK(Unescape("---%0Acommand: inc%0A") == "---\ncommand: inc\n");
  CHECK(Unescape("%0a%0D%20") == "\n\r ");
  CHECK(Unescape("%2525") == "%25");  // one pass: not decoded twice
  CHECK(Unescape("%ZZ") == "%ZZ");
  CHECK(Unescape("%4") == "%4");
  CHECK(Unescape("a%") == "a%");
  CHECK(Unescape("%%41") == "%A");
  CHECK(Unescape("%G1%1G") == "%G1%1G");
  CHECK(Unescape("%e2%82%AC") == "€");
  CHECK(Unescape("€%") == "€%");
  CHECK(Unescape("%00") == std::string(1, '\0'));
  for (std::string s : {"", "%", "%25", "%0A%0a", "a\nb%c\n%", "%%%\n\n", "é%ZZ\n"}) {
    CHECK(Unescape(Escape(s)) == s);
  }
}

TEST_CASE("LineBuffer splits lines, drops one '\\r', and keeps partial lines") {
  LineBuffer b;
  CHECK(b.Append("inc\ndec\r\npartial"));
  CHECK(b.NextLine() == "inc");
  CHECK(b.NextLine() == "dec");
  CHECK_FALSE(b.NextLine().has_value());
  CHECK(b.pending_bytes() == 7);
  CHECK(b.Append(" line\r\r\n\n"));
  CHECK(b.NextLine() == "partial line\r");
  CHECK(b.NextLine() == "");
  CHECK_FALSE(b.NextLine().has_value());
  CHECK(b.pending_bytes() == 0);
}

TEST_CASE("LineBuffer byte by byte, many lines") {
  LineBuffer b(100);
  std::string stream;
  for (int i = 0; i < 2000; ++i) stream += "line " + std::to_string(i) + (i % 3 ? "\n" : "\r\n");
  std::vector<std::string> lines;
  for (char c : stream) {
    REQUIRE(b.Append(std::string_view(&c, 1)));
    while (auto line = b.NextLine()) lines.push_back(*line);
  }
  REQUIRE(lines.size() == 2000);
  for (int i = 0; i < 2000; ++i) CHECK(lines[i] == "line " + std::to_string(i));
  CHECK(b.pending_bytes() == 0);
}

TEST_CASE("LineBuffer overflows on a line longer than the limit") {
  SUBCASE("exactly the limit is fine, one more is not") {
    LineBuffer b(4);
    CHECK(b.Append("abcd\n"));
    CHECK(b.NextLine() == "abcd");
    CHECK(b.Append("abcd"));
    CHECK_FALSE(b.Append("e"));
    CHECK(b.overflowed());
    CHECK_FALSE(b.Append("\n"));
    CHECK_FALSE(b.NextLine().has_value());
  }
  SUBCASE("a long complete line in one write overflows too") {
    LineBuffer b(4);
    CHECK_FALSE(b.Append("ok\nabcdef\nlater\n"));
    CHECK(b.NextLine() == "ok");  // the line before the long one is still delivered
    CHECK_FALSE(b.NextLine().has_value());
    CHECK(b.pending_bytes() == 0);
  }
  SUBCASE("1 MB without a newline, in 4 KiB writes and byte by byte") {
    LineBuffer b;
    const std::string chunk(4096, 'x');
    bool ok = true;
    size_t written = 0;
    while (ok && written < (1u << 20)) {
      ok = b.Append(chunk);
      written += chunk.size();
    }
    CHECK_FALSE(ok);
    CHECK(written <= kMaxLineBytes + chunk.size());
    CHECK(b.overflowed());
    CHECK(b.pending_bytes() == 0);

    LineBuffer c;
    size_t n = 0;
    while (c.Append("y")) ++n;
    CHECK(n == kMaxLineBytes);
  }
  SUBCASE("one 1 MB line with its newline") {
    LineBuffer b;
    CHECK_FALSE(b.Append(std::string(1 << 20, 'z') + "\n"));
    CHECK_FALSE(b.NextLine().has_value());
  }
}

TEST_CASE("the four ack shapes clients send in the wild") {
  for (const char* bytes : {
           "---%0Acommand: worker:ack%0Apid: 1234%0A\n",     // Ruby Einhorn::Worker.ack!
           "command: worker:ack%0Apid: 1234%0A\n",           // go-einhorn (yaml.v2)
           "{\"command\": \"worker:ack\", \"pid\": 1234}\n",  // Python baseplate, goji, README
           "{\"command\":\"worker:ack\", \"pid\":1234}\n",    // relic
           "---%0Acommand:%20worker:ack%0Apid:%201234\n",     // node client (needs decode-all)
           "{\"command\":\"worker:ack\",\"pid\":1234}\r\n",   // CRLF
           "---%0D%0Acommand: worker:ack%0D%0Apid: 1234%0D%0A\n",
       }) {
    const Request r = Ok(bytes);
    CHECK(r.command == "worker:ack");
    CHECK(r.has_command);
    CHECK(r.pid_present);
    CHECK(r.pid == 1234);
    CHECK_FALSE(r.id.has_value());
    CHECK(r.args_state == Args::kAbsent);
  }
}

TEST_CASE("pid: only an integer counts, as in Einhorn") {
  CHECK(ParseRequest("{command: worker:ack, pid: \"1234\"}").request.pid == std::nullopt);
  CHECK(ParseRequest("{command: worker:ack, pid: \"1234\"}").request.pid_present);
  CHECK(ParseRequest("{command: worker:ack, pid: '1234'}").request.pid == std::nullopt);
  CHECK(ParseRequest("{command: worker:ack, pid: abc}").request.pid == std::nullopt);
  CHECK(ParseRequest("{command: worker:ack, pid: 1.5}").request.pid == std::nullopt);
  CHECK(ParseRequest("{command: worker:ack, pid: [1]}").request.pid == std::nullopt);
  CHECK(ParseRequest("{command: worker:ack, pid: -7}").request.pid == -7);
  CHECK(ParseRequest("{command: worker:ack, pid: 0}").request.pid == 0);
  CHECK(ParseRequest("{command: worker:ack, pid: +12}").request.pid == 12);
  CHECK(ParseRequest("{command: worker:ack, pid: 0x10}").request.pid == 16);  // Psych: 16
  CHECK(ParseRequest("{command: worker:ack, pid: 010}").request.pid == 8);    // YAML 1.1 octal
  CHECK(ParseRequest("command: worker:ack\npid: 1_234").request.pid == 1234);
  CHECK(ParseRequest("{command: worker:ack, pid: !!int 99}").request.pid == 99);
  CHECK(ParseRequest("{command: worker:ack, pid: 9223372036854775807}").request.pid ==
        INT64_MAX);
  CHECK(ParseRequest("{command: worker:ack, pid: -9223372036854775808}").request.pid ==
        INT64_MIN);
  CHECK(ParseRequest("{command: worker:ack, pid: 9223372036854775808}").request.pid ==
        std::nullopt);
  CHECK(ParseRequest("{command: worker:ack, pid: 99999999999999999999999}").request.pid_present);
  CHECK_FALSE(ParseRequest("{command: worker:ack}").request.pid_present);
  CHECK_FALSE(ParseRequest("{command: worker:ack, pid: ~}").request.pid_present);
  CHECK_FALSE(ParseRequest("{command: worker:ack, pid: false}").request.pid_present);
  CHECK_FALSE(ParseRequest("command: worker:ack\npid:\n").request.pid_present);
  // The first key wins.
  CHECK(ParseRequest("{command: worker:ack, pid: 1, pid: 2}").request.pid == 1);
}

TEST_CASE("worker:ping carries pid and request_id") {
  Request r = Ok("{\"command\":\"worker:ping\",\"pid\":42,\"request_id\":\"r-1\"}\n");
  CHECK(r.command == "worker:ping");
  CHECK(r.pid == 42);
  REQUIRE(r.ping_request_id.has_value());
  CHECK(r.ping_request_id->kind == Id::Kind::kString);
  CHECK(r.ping_request_id->text == "r-1");
  r = Ok("command: worker:ping%0Apid: 42%0Arequest_id: 17%0A\n");
  REQUIRE(r.ping_request_id.has_value());
  CHECK(r.ping_request_id->kind == Id::Kind::kInt);
  CHECK(r.ping_request_id->text == "17");
  CHECK_FALSE(r.id.has_value());  // go-einhorn's request_id is not an id
}

TEST_CASE("einhornsh and the other literal requests of contract section 3.9") {
  Request r = Ok("---%0Aid: 1%0Acommand: inc%0Aargs: []%0A\n");
  CHECK(r.command == "inc");
  REQUIRE(r.id.has_value());
  CHECK(r.id->kind == Id::Kind::kInt);
  CHECK(r.id->text == "1");
  CHECK(r.args_state == Args::kList);
  CHECK(r.args.empty());

  r = Ok("---%0Aid: 2%0Acommand: set_workers%0Aargs:%0A- '4'%0A\n");
  CHECK(r.command == "set_workers");
  CHECK(r.args_state == Args::kList);
  CHECK(r.args == std::vector<std::string>{"4"});

  r = Ok("{\"command\":\"ehlo\",\"user\":\"tester\"}\n");
  CHECK(r.command == "ehlo");
  CHECK(r.user == "tester");
  CHECK_FALSE(r.id.has_value());

  r = Ok("{\"id\": 7, \"command\":\"ehlo\",\"user\":\"tester\"}\n");
  REQUIRE(r.id.has_value());
  CHECK(r.id->kind == Id::Kind::kInt);
  CHECK(r.id->text == "7");

  r = Ok("---%0Acommand: ehlo%0Auser: alice%0A\n");
  CHECK(r.user == "alice");

  r = Ok("command: inc\n");
  CHECK(r.command == "inc");
  CHECK_FALSE(r.id.has_value());

  r = Ok("{\"id\":6,\"command\":\"set_workers\",\"args\":[\"0\"]}\n");
  CHECK(r.args == std::vector<std::string>{"0"});
  CHECK(r.id->text == "6");

  r = Ok("{\"id\":22,\"command\":\"signal\",\"args\":[]}\n");
  CHECK(r.command == "signal");
  CHECK(r.args_state == Args::kList);

  r = Ok("{\"id\":1,\"command\":\"upgrade\"}\n");
  CHECK(r.command == "upgrade");
  CHECK(r.args_state == Args::kAbsent);

  r = Ok("request_id: 1%0Acommand: upgrade%0A\n");  // go-einhorn: an old-style client
  CHECK(r.command == "upgrade");
  CHECK_FALSE(r.id.has_value());

  r = Ok("{\"id\":3,\"command\":\"inc\"}\r\n");
  CHECK(r.id->text == "3");

  auto results = Receive("not: valid: yaml: [\n");
  REQUIRE(results.size() == 1);
  CHECK(results[0].kind == Kind::kNotParsed);

  results = Receive("\n");
  REQUIRE(results.size() == 1);
  CHECK(results[0].kind == Kind::kNotParsed);

  // Several commands in one write, each handled in order.
  results = Receive("command: inc\n{\"command\":\"dec\"}\n---%0Acommand: help%0A\n");
  REQUIRE(results.size() == 3);
  CHECK(results[0].request.command == "inc");
  CHECK(results[1].request.command == "dec");
  CHECK(results[2].request.command == "help");
}

TEST_CASE("every verb round-trips in every request shape") {
  const std::vector<std::pair<std::string, std::vector<std::string>>> verbs = {
      {"ehlo", {}},       {"help", {}},          {"state", {}},       {"status", {}},
      {"inc", {}},        {"dec", {}},           {"set_workers", {"4"}},
      {"die", {}},        {"die", {"TERM"}},     {"quieter", {}},     {"louder", {}},
      {"signal", {"USR2", "HUP"}},               {"config", {"{number: 4}"}},
      {"worker:ack", {}}, {"worker:ping", {}},   {"upgrade", {}},     {"reload", {}},
      {"upgrade_fleet", {}}};
  for (const auto& entry : verbs) {
    const std::string& verb = entry.first;  // not a structured binding: INFO captures it
    const std::vector<std::string>& args = entry.second;
    INFO(verb);
    std::string block_args;
    std::string json_args;
    for (const auto& a : args) {
      block_args += "- '" + a + "'%0A";
      json_args += (json_args.empty() ? "\"" : ", \"") + a + "\"";
    }
    const std::vector<std::string> shapes = {
        EncodeRequest(verb, args, 5),
        "---%0Aid: 5%0Acommand: " + verb + "%0Aargs:" + (args.empty() ? " []%0A" : "%0A" + block_args) +
            "\n",
        "{\"id\": 5, \"command\": \"" + verb + "\", \"args\": [" + json_args + "]}\n",
        "{\"id\":5,\"command\":\"" + verb + "\",\"args\":[" + json_args + "]}\n",
        "id: 5%0Acommand: " + verb + "%0Aargs: [" + json_args + "]%0A\n",
    };
    for (const auto& bytes : shapes) {
      const Request r = Ok(bytes);
      CHECK(r.command == verb);
      REQUIRE(r.id.has_value());
      CHECK(r.id->kind == Id::Kind::kInt);
      CHECK(r.id->text == "5");
      CHECK(r.args_state == Args::kList);
      CHECK(r.args == args);
    }
  }
  // Without an id, EncodeRequest makes an old-style request.
  CHECK_FALSE(Ok(EncodeRequest("inc", {}, std::nullopt)).id.has_value());
}

TEST_CASE("EncodeRequest is one escaped line that Einhorn-style decoding reads too") {
  const std::string line = EncodeRequest("config", {"a: 1\nb: 2", "100%", "+x \"q\" \\"}, 9);
  CHECK(line == "{\"command\": \"config\", \"id\": 9, \"args\": [\"a: 1\\nb: 2\", \"100%25\", "
                "\"\\x2Bx \\\"q\\\" \\\\\"]}\n");
  const Request r = ParseRequest(EinhornUnescape(WithoutNewline(line))).request;
  CHECK(r.args == std::vector<std::string>{"a: 1\nb: 2", "100%", "+x \"q\" \\"});
  CHECK(EncodeRequest("inc", {}, std::nullopt) == "{\"command\": \"inc\", \"args\": []}\n");
  CHECK(EncodeRequest("inc", {}, -3) == "{\"command\": \"inc\", \"id\": -3, \"args\": []}\n");
}

TEST_CASE("EncodeRequest makes einhornctl's ehlo and worker:ack, which the master reads back") {
  const std::string ehlo = EncodeRequest(OutgoingRequest{"ehlo", 1, std::nullopt, "tester", {}});
  CHECK(ehlo == "{\"command\": \"ehlo\", \"id\": 1, \"user\": \"tester\"}\n");
  Request r = Ok(ehlo);
  CHECK(r.command == "ehlo");
  CHECK(r.user == "tester");
  CHECK(r.args_state == Args::kAbsent);
  // A user name is untrusted text: quoted and escaped, it stays one line and one value.
  r = Ok(EncodeRequest(OutgoingRequest{"ehlo", 2, std::nullopt, "a\"b%\nc", {}}));
  CHECK(r.user == "a\"b%\nc");
  OutgoingRequest worker_ack{"worker:ack", std::nullopt, std::nullopt, std::nullopt, 1234};
  worker_ack.compact = true;
  const std::string ack = EncodeRequest(worker_ack);
  CHECK(ack == "{\"command\":\"worker:ack\",\"pid\":1234}\n");
  r = Ok(ack);
  CHECK(r.command == "worker:ack");
  CHECK(r.pid == 1234);
  CHECK_FALSE(r.id.has_value());
  worker_ack.compact = false;
  CHECK(EncodeRequest(worker_ack) == "{\"command\": \"worker:ack\", \"pid\": 1234}\n");
}

TEST_CASE("ids keep their YAML type") {
  struct Case {
    const char* doc;
    std::optional<Id::Kind> kind;
    const char* text;
  };
  const Case cases[] = {
      {"{command: inc, id: 7}", Id::Kind::kInt, "7"},
      {"{command: inc, id: -7}", Id::Kind::kInt, "-7"},
      {"{command: inc, id: 0}", Id::Kind::kInt, "0"},
      {"{command: inc, id: '7'}", Id::Kind::kString, "7"},
      {"{command: inc, id: \"7\"}", Id::Kind::kString, "7"},
      {"{command: inc, id: !!str 7}", Id::Kind::kString, "7"},
      {"{command: inc, id: abc}", Id::Kind::kString, "abc"},
      {"{command: inc, id: \"\"}", Id::Kind::kString, ""},
      {"{command: inc, id: 1.5}", Id::Kind::kFloat, "1.5"},
      {"{command: inc, id: -.5e+3}", Id::Kind::kFloat, "-.5e+3"},
      {"{command: inc, id: .inf}", Id::Kind::kFloat, ".inf"},
      {"{command: inc, id: true}", Id::Kind::kBool, "true"},
      {"{command: inc, id: yes}", Id::Kind::kBool, "true"},
      {"{command: inc, id: 'true'}", Id::Kind::kString, "true"},
      {"{command: inc, id: 1e5}", Id::Kind::kString, "1e5"},  // no '.': a string to Psych
      {"{command: inc, id: false}", std::nullopt, ""},
      {"{command: inc, id: off}", std::nullopt, ""},
      {"{command: inc, id: ~}", std::nullopt, ""},
      {"{command: inc, id: null}", std::nullopt, ""},
      {"command: inc\nid:\n", std::nullopt, ""},
      {"{command: inc}", std::nullopt, ""},
  };
  for (const Case& c : cases) {
    INFO(c.doc);
    const ParseResult p = ParseRequest(c.doc);
    REQUIRE(p.kind == Kind::kOk);
    REQUIRE(p.request.id.has_value() == c.kind.has_value());
    if (!c.kind) continue;
    CHECK(p.request.id->kind == *c.kind);
    CHECK(p.request.id->text == c.text);

    // Echoed as request_id, the id reads back with the same type, in yaml-cpp and in ours.
    Reply reply{"ok", p.request.id, false, false};
    const std::string line = EncodeReply(reply);
    const auto back = ParseReply(WithoutNewline(line));
    REQUIRE(back.has_value());
    REQUIRE(back->request_id.has_value());
    CHECK(back->request_id->kind == *c.kind);
    CHECK(back->request_id->text == c.text);
    const YAML::Node node = YAML::Load(EinhornUnescape(WithoutNewline(line)));
    CHECK(node["request_id"].Tag() == (*c.kind == Id::Kind::kString ? "!" : "?"));
  }
  // A mapping or list id cannot be echoed: refuse the request.
  CHECK(KindOf("{command: inc, id: [1]}") == Kind::kNotParsed);
  CHECK(KindOf("{command: inc, id: {a: 1}}") == Kind::kNotParsed);
}

TEST_CASE("args validation texts match Einhorn's") {
  struct Case {
    const char* doc;
    Args state;
    const char* bad;
  };
  const Case cases[] = {
      {"{command: die}", Args::kAbsent, ""},
      {"{command: die, args: ~}", Args::kAbsent, ""},
      {"{command: die, args: false}", Args::kAbsent, ""},
      {"{command: die, args: USR2}", Args::kNotList, ""},
      {"{command: die, args: {a: b}}", Args::kNotList, ""},
      {"{command: die, args: 5}", Args::kNotList, ""},
      {"{command: die, args: [5]}", Args::kBadElement, "Argument is a Integer, not a string: 5"},
      {"{command: die, args: [a, 010]}", Args::kBadElement,
       "Argument is a Integer, not a string: 8"},
      {"{command: die, args: [1.5]}", Args::kBadElement, "Argument is a Float, not a string: 1.5"},
      {"{command: die, args: [.NaN]}", Args::kBadElement, "Argument is a Float, not a string: NaN"},
      {"{command: die, args: [true]}", Args::kBadElement,
       "Argument is a TrueClass, not a string: true"},
      {"{command: die, args: [no]}", Args::kBadElement,
       "Argument is a FalseClass, not a string: false"},
      {"{command: die, args: [~]}", Args::kBadElement, "Argument is a NilClass, not a string: nil"},
      {"{command: die, args: [null]}", Args::kBadElement,
       "Argument is a NilClass, not a string: nil"},
      {"{command: die, args: [[a, 1]]}", Args::kBadElement,
       "Argument is a Array, not a string: [\"a\", 1]"},
      {"{command: die, args: [{a: 1}]}", Args::kBadElement,
       "Argument is a Hash, not a string: {\"a\"=>1}"},
      {"{command: die, args: [a, '5', \"1.5\", 'true', '~', !!str 7, USR2]}", Args::kList, ""},
      {"command: die\nargs:\n- '4'\n- HUP\n", Args::kList, ""},
      {"command: die\nargs: []", Args::kList, ""},
  };
  for (const Case& c : cases) {
    INFO(c.doc);
    const ParseResult p = ParseRequest(c.doc);
    REQUIRE(p.kind == Kind::kOk);
    CHECK(p.request.args_state == c.state);
    CHECK(p.request.bad_arg == c.bad);
    if (c.state != Args::kList) CHECK(p.request.args.empty());
  }
  CHECK(ParseRequest("{command: die, args: [a, '5', \"1.5\", 'true', '~', !!str 7, USR2]}")
            .request.args == std::vector<std::string>{"a", "5", "1.5", "true", "~", "7", "USR2"});
}

TEST_CASE("command: missing, null, odd or not a mapping") {
  CHECK(KindOf("{id: 3}") == Kind::kNoCommand);
  ParseResult p = ParseRequest("{id: 3, command: ~}");
  CHECK(p.kind == Kind::kNoCommand);
  REQUIRE(p.request.id.has_value());  // still echoed
  CHECK(p.request.id->text == "3");
  CHECK(KindOf("{}") == Kind::kNoCommand);
  CHECK(KindOf("{command: [inc]}") == Kind::kNotParsed);
  CHECK(KindOf("{command: {a: b}}") == Kind::kNotParsed);
  CHECK(ParseRequest("{command: ''}").request.command == "");
  CHECK(ParseRequest("{command: ''}").kind == Kind::kOk);
  CHECK(ParseRequest("{command: inc, command: dec}").request.command == "inc");
  CHECK(ParseRequest("command: inc\r").request.command == "inc");
  CHECK(ParseRequest("{command: \"worker:ack\"}").request.command == "worker:ack");
  CHECK(ParseRequest("{[a]: b, command: inc}").request.command == "inc");
  for (const char* doc : {"", " ", "~", "null", "inc", "'command: inc'", "[inc]", "- inc", "5",
                          "# comment", "---", "...", "--- |\n  text\n", "\r"}) {
    INFO(doc);
    CHECK(KindOf(doc) == Kind::kNotParsed);
  }
}

TEST_CASE("hostile documents are refused, never thrown") {
  SUBCASE("anchors and aliases") {
    CHECK(KindOf("&a [*a, *a]") == Kind::kNotParsed);
    CHECK(KindOf("{command: &c inc, x: *c}") == Kind::kNotParsed);
    CHECK(KindOf("{command: inc, x: &a 1}") == Kind::kNotParsed);
    CHECK(KindOf("{command: inc, <<: *a}") == Kind::kNotParsed);
    std::string laughs = "{a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]";
    for (int i = 1; i < 10; ++i) {
      const std::string prev = "*a" + std::to_string(i - 1);
      laughs += ", a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev;
      for (int k = 0; k < 8; ++k) laughs += ", " + prev;
      laughs += "]";
    }
    laughs += ", command: inc}";
    const ParseResult p = ParseRequest(laughs);
    CHECK(p.kind == Kind::kNotParsed);
    CHECK(p.detail.find("refused") != std::string::npos);
  }
  SUBCASE("deep nesting") {
    for (const std::string& open : {std::string("["), std::string("{a: "), std::string("- ")}) {
      INFO(open);
      std::string doc;
      for (int i = 0; i < 10000; ++i) doc += open;
      CHECK(KindOf(doc) == Kind::kNotParsed);
    }
    std::string flow(10000, '[');
    flow += std::string(10000, ']');
    CHECK(KindOf(flow) == Kind::kNotParsed);
    std::string block;
    for (int i = 0; i < 2000; ++i) block += std::string(i, ' ') + "a:\n";
    CHECK(KindOf(block) == Kind::kNotParsed);

    std::string ok = "{command: inc, x: ";
    for (int i = 0; i < 30; ++i) ok += "[";
    ok += std::string(30, ']') + "}";
    CHECK(KindOf(ok) == Kind::kOk);
    CHECK(ParseRequest(ok, Limits{4096, 8}).kind == Kind::kNotParsed);
  }
  SUBCASE("node count") {
    std::string doc = "{command: inc, x: [";
    for (int i = 0; i < 5000; ++i) doc += "1,";
    doc += "1]}";
    CHECK(KindOf(doc) == Kind::kNotParsed);
    CHECK(ParseRequest(doc, Limits{20000, 32}).kind == Kind::kOk);
  }
  SUBCASE("more than one document") {
    CHECK(KindOf("a: 1\n--- \nb: 2") == Kind::kNotParsed);
    CHECK(KindOf("command: inc\n---\ncommand: dec\n") == Kind::kNotParsed);
    CHECK(KindOf("command: inc\n...\n---\n") == Kind::kNotParsed);
    CHECK(KindOf("command: inc\n...\n") == Kind::kOk);
  }
  SUBCASE("tags") {
    CHECK(KindOf("!!python/object {command: inc}") == Kind::kNotParsed);
    CHECK(KindOf("{command: !!python/object/apply:os.system [ls]}") == Kind::kNotParsed);
    CHECK(KindOf("--- !ruby/object:Gem::Installer\ncommand: inc\n") == Kind::kNotParsed);
    CHECK(KindOf("{command: !foo inc}") == Kind::kNotParsed);
    CHECK(KindOf("{command: !<tag:example.com,2000:x> inc}") == Kind::kNotParsed);
    CHECK(KindOf("{command: !!binary aW5j}") == Kind::kNotParsed);
    CHECK(KindOf("%TAG !e! tag:example.com,2000:\n---\n{command: !e!x inc}") ==
          Kind::kNotParsed);
    CHECK(KindOf("!!map {command: !!str inc, args: !!seq [! x]}") == Kind::kOk);
  }
  SUBCASE("control characters and invalid UTF-8") {
    CHECK(KindOf(std::string("{command: inc\0}", 15)) == Kind::kNotParsed);
    CHECK(KindOf("{command: \"inc\x01\"}") == Kind::kNotParsed);
    CHECK(KindOf("{command: inc\x7f}") == Kind::kNotParsed);
    CHECK(KindOf("{command: \xff}") == Kind::kNotParsed);
    CHECK(KindOf("{command: \xc0\xaf}") == Kind::kNotParsed);     // overlong '/'
    CHECK(KindOf("{command: \xed\xa0\x80}") == Kind::kNotParsed); // a surrogate
    CHECK(KindOf("{command: \xc2\x80}") == Kind::kNotParsed);     // U+0080, a C1 control
    CHECK(KindOf("{command: \"in\\x01c\"}") == Kind::kOk);        // escaped is fine
    CHECK(ParseRequest("{command: inc, user: \"Zoë 日本 🦄\"}").request.user == "Zoë 日本 🦄");
    CHECK(ParseRequest("\xef\xbb\xbf{command: inc}").request.command == "inc");  // BOM
  }
}

TEST_CASE("every single byte as a line") {
  for (int b = 0; b < 256; ++b) {
    const std::string line(1, static_cast<char>(b));
    INFO(b);
    LineBuffer buffer;
    buffer.Append(line + "\n");
    const auto got = buffer.NextLine();
    REQUIRE(got.has_value());
    const ParseResult p = ParseRequest(Unescape(*got));
    // ':' alone is a mapping {null: null}: a request without a command, as to Psych.
    CHECK(p.kind == (b == ':' ? Kind::kNoCommand : Kind::kNotParsed));
    CHECK_FALSE(ParseReply(*got).has_value());
  }
}

TEST_CASE("random garbage from YAML-significant characters never throws") {
  const std::string alphabet = "{}[]:,-?&*!|>'\"%@`#\n\t\r \\=~.0159aez_/+<";
  const std::vector<std::string> words = {
      "command", "id", "args", "pid", "---", "...", "!!str", "!!int", "&a", "*a", "%0A",
      "%25",     "\xc3\xa9", "\xff", "null", "true", "1.5", "worker:ack", "request_id", "wait"};
  std::mt19937 rng(20240601);
  int ok = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    const size_t len = rng() % 40;
    for (size_t k = 0; k < len; ++k) {
      if (rng() % 4 == 0) {
        s += words[rng() % words.size()];
      } else {
        s += alphabet[rng() % alphabet.size()];
      }
    }
    const ParseResult p = ParseRequest(Unescape(s));
    if (p.kind == Kind::kOk) ++ok;
    if (p.kind == Kind::kNotParsed) CHECK_FALSE(p.detail.empty());
    (void)ParseReply(s);
  }
  CHECK(ok < 20000);  // a sanity bound; the point is that nothing above threw or crashed
}

TEST_CASE("mutated valid requests: never throws, and what parses re-encodes the same") {
  const std::vector<std::string> seeds = {
      "---\nid: 1\ncommand: inc\nargs: []\n",
      "---\nid: 2\ncommand: set_workers\nargs:\n- '4'\n",
      "{\"command\": \"worker:ack\", \"pid\": 1234}",
      "{\"id\":6,\"command\":\"signal\",\"args\":[\"USR2\",\"HUP\"]}",
      "command: ehlo\nuser: tester\n",
      "{id: abc, command: die, args: [TERM]}",
  };
  const std::string alphabet = "{}[]:,-?&*!|>'\"%#\n\t \\.0159az_";
  std::mt19937 rng(7);
  int ok = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const size_t at = rng() % s.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          s[at] = c;
          break;
        case 1:
          s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), c);
          break;
        default:
          s.erase(at, 1);
      }
    }
    const ParseResult p = ParseRequest(s);
    if (p.kind != Kind::kOk) continue;
    ++ok;
    const Request& r = p.request;
    const std::vector<std::string> args =
        r.args_state == Args::kList ? r.args : std::vector<std::string>{};
    const Request back = ParseRequest(Unescape(WithoutNewline(EncodeRequest(r.command, args, 3))))
                             .request;
    INFO(s);
    CHECK(back.command == r.command);
    CHECK(back.args == args);
  }
  CHECK(ok > 1000);  // the walk and the round trip were exercised, not just the refusals
}

TEST_CASE("EncodeReply: exact bytes") {
  CHECK(EncodeReply({"Incrementing number of workers from 3 -> 4", std::nullopt, false, false}) ==
        "---%0Amessage: \"Incrementing number of workers from 3 -> 4\"%0A\n");
  CHECK(EncodeReply({"Upgrading smoothly, as commanded", Id{Id::Kind::kInt, "1"}, true, false}) ==
        "---%0Amessage: \"Upgrading smoothly, as commanded\"%0Arequest_id: 1%0Await: true%0A\n");
  CHECK(EncodeReply({"", Id{Id::Kind::kString, "abc"}, false, true}) ==
        "---%0Amessage: \"\"%0Arequest_id: \"abc\"%0Aerror: true%0A\n");
  CHECK(EncodeReply({"Welcome, tester!\nThis is 100% \"it\"\t\\\n", std::nullopt, false, false}) ==
        "---%0Amessage: \"Welcome, tester!\\nThis is 100%25 \\\"it\\\"\\t\\\\\\n\"%0A\n");
  CHECK(EncodeReply({"1+1", std::nullopt, false, false}) == "---%0Amessage: \"1\\x2B1\"%0A\n");
  // A caller-made id whose text is not what its kind says degrades to a string.
  CHECK(EncodeReply({"x", Id{Id::Kind::kInt, "7: x"}, false, false}) ==
        "---%0Amessage: \"x\"%0Arequest_id: \"7: x\"%0A\n");
}

TEST_CASE("EncodeReply round-trips through every client's decoding") {
  std::vector<std::string> messages = {
      "",
      "yes",
      "123",
      "~",
      "null",
      "-",
      "- item",
      "? key",
      "   leading spaces",
      "trailing spaces   ",
      "a: b",
      "key: value # not a comment",
      "#hash",
      "100%",
      "%25 literal",
      "%0a %0A %ZZ %",
      "'single' \"double\" \\back\\",
      "line one\nline two\n",
      "\n\n",
      "tab\there\r\n",
      "Invalid count: '0'. Must be an integer in [1,1000).",
      "===> Launched 12388 (index: 3)",
      "Can't decrease number of workers (already at 1).  Run kill <pid> if you really want to.",
      "Einhorn is going down! ",
      "Zoë, 日本語, 🦄, €",
      "a+b c=d&e",
      "{\"json\": [1, 2]}",
      "&anchor *alias !tag |literal >folded @at `tick`",
      std::string("nul\0byte", 8),
      "\x01\x02\x1b\x7f",
      "\xc2\x85 NEL, \xe2\x80\xa8 LS, \xe2\x80\xa9 PS, \xef\xbb\xbf BOM, \xc2\x9f C1",
      "\xef\xbf\xbe \xef\xbf\xbf nonchars",
      std::string(5000, 'x') + " long",
  };
  std::string all_bytes;
  for (int b = 1; b < 128; ++b) all_bytes += static_cast<char>(b);
  messages.push_back(all_bytes);

  for (const auto& message : messages) {
    INFO(message);
    for (bool wait : {false, true}) {
      const Reply reply{message, Id{Id::Kind::kInt, "7"}, wait, false};
      const std::string line = EncodeReply(reply);
      // One line, and only %25 and %0A escapes: clients that decode less see the same text.
      REQUIRE(line.find('\n') == line.size() - 1);
      const std::string body = WithoutNewline(line);
      for (size_t i = body.find('%'); i != std::string::npos; i = body.find('%', i + 1)) {
        const std::string esc = body.substr(i, 3);
        CHECK((esc == "%25" || esc == "%0A"));
      }
      CHECK(body.find('+') == std::string::npos);
      CHECK(body.find('\r') == std::string::npos);

      const auto back = ParseReply(body);
      REQUIRE(back.has_value());
      CHECK(back->message == message);
      CHECK(back->wait == wait);
      REQUIRE(back->request_id.has_value());
      CHECK(back->request_id->text == "7");

      for (const std::string& decoded : {EinhornUnescape(body), QueryUnescape(body)}) {
        const YAML::Node node = YAML::Load(decoded);
        REQUIRE(node.IsMap());
        CHECK(node["message"].as<std::string>() == message);
        CHECK(node["request_id"].as<int>() == 7);
        CHECK(node["wait"].IsDefined() == wait);
      }
    }
  }
}

TEST_CASE("invalid UTF-8 in a reply becomes U+FFFD rather than an unreadable document") {
  const std::string line = EncodeReply({"bad \xff\xc3 end", std::nullopt, false, false});
  const auto back = ParseReply(WithoutNewline(line));
  REQUIRE(back.has_value());
  CHECK(back->message == "bad \xef\xbf\xbd\xef\xbf\xbd end");
}

TEST_CASE("ParseReply reads what a Ruby master writes (contract section 3.9)") {
  struct Case {
    const char* line;
    const char* message;
    std::optional<std::string> request_id;
    bool wait;
  };
  const Case cases[] = {
      {"---%0Amessage: |%0A  Welcome, tester! You are speaking to Einhorn Master Process 8655.%0A"
       "  This is Einhorn 0.8.2.%0A",
       "Welcome, tester! You are speaking to Einhorn Master Process 8655.\nThis is Einhorn "
       "0.8.2.\n",
       std::nullopt, false},
      {"---%0Amessage: |%0A  Welcome, tester! ... 8655.%0A  This is Einhorn 0.8.2.%0Arequest_id: "
       "7%0A",
       "Welcome, tester! ... 8655.\nThis is Einhorn 0.8.2.\n", "7", false},
      {"---%0Amessage: Incrementing number of workers from 3 -> 4%0A",
       "Incrementing number of workers from 3 -> 4", std::nullopt, false},
      {"---%0Amessage: Incrementing number of workers from 5 -> 6%0Arequest_id: 1%0A",
       "Incrementing number of workers from 5 -> 6", "1", false},
      {"---%0Amessage: 'Invalid count: ''0''. Must be an integer in [1,1000).'%0Arequest_id: 6%0A",
       "Invalid count: '0'. Must be an integer in [1,1000).", "6", false},
      {"---%0Amessage: ''%0Arequest_id: 22%0A", "", "22", false},
      {"---%0Amessage: Upgrading smoothly, as commanded%0Arequest_id: 1%0Await: true%0A",
       "Upgrading smoothly, as commanded", "1", true},
      {"---%0Amessage: \"===> Launched 12388 (index: 3)\"%0Arequest_id: 1%0Await: true%0A",
       "===> Launched 12388 (index: 3)", "1", true},
      {"---%0Amessage: Upgrade done%0Arequest_id: 1%0A", "Upgrade done", "1", false},
      {"---%0Amessage: Could not parse command%0A", "Could not parse command", std::nullopt,
       false},
      {"---%0Amessage: Last spinup was 1s ago, and spinup_interval is 1s, so spinning%0A  up a "
       "new process.%0A",
       "Last spinup was 1s ago, and spinup_interval is 1s, so spinning up a new process.",
       std::nullopt, false},
      {"---%0Amessage: abc%0Arequest_id: abc%0A", "abc", "abc", false},
      {"---%0Amessage: x%0D", "x", std::nullopt, false},
  };
  for (const Case& c : cases) {
    INFO(c.line);
    const auto reply = ParseReply(c.line);
    REQUIRE(reply.has_value());
    CHECK(reply->message == c.message);
    CHECK(reply->wait == c.wait);
    REQUIRE(reply->request_id.has_value() == c.request_id.has_value());
    if (c.request_id) CHECK(reply->request_id->text == *c.request_id);
  }
  const auto typed = ParseReply("---%0Amessage: x%0Arequest_id: 7%0A");
  CHECK(typed->request_id->kind == Id::Kind::kInt);
  CHECK(ParseReply("---%0Amessage: x%0Arequest_id: abc%0A")->request_id->kind ==
        Id::Kind::kString);
  CHECK(ParseReply("---%0Amessage: x%0Await: false%0A")->wait == false);
  CHECK(ParseReply("{message: x, error: true}")->error);

  for (const char* bad : {"", "---", "message", "- message: x", "{request_id: 1}",
                          "{message: [a]}", "{message: ~}", "&a {message: *a}",
                          "{message: !!python/object x}", "message: x%0A---%0Amessage: y"}) {
    INFO(bad);
    CHECK_FALSE(ParseReply(bad).has_value());
  }
}

// ParseReply decodes the message of the master's own replies without yaml-cpp (the status of
// 5000 workers is an 800 KB message); it must read every line exactly as yaml-cpp does.
TEST_CASE("ParseReply: the fast message path reads as yaml-cpp, whatever the bytes") {
  std::mt19937_64 rng(7);
  const std::string alphabet[] = {"a", "Z", " ", "\"", "\\", "\n", "\r", "\t", "%", "+", "#",
                                  "\x01", "\x7f", "\xc3\xa9", "\xc2\x85", "\xe2\x80\xa8",
                                  "\xef\xbb\xbf", "\xff", "\x80", "---", ": ", "\xf0\x9f\x98\x80"};
  for (int i = 0; i < 3000; ++i) {
    std::string message;
    for (auto n = rng() % 40; n > 0; --n) message += alphabet[rng() % std::size(alphabet)];
    Reply reply;
    reply.message = message;
    if (rng() % 2) reply.request_id = Id{Id::Kind::kInt, std::to_string(rng() % 1000)};
    if (rng() % 3 == 0) reply.request_id = Id{Id::Kind::kString, message.substr(0, 5)};
    reply.wait = rng() % 2;
    reply.error = rng() % 2;
    const std::string line = WithoutNewline(EncodeReply(reply));
    CAPTURE(line);
    const std::optional<Reply> fast = ParseReply(line);
    const std::optional<Reply> slow = ParseReplySlow(line);
    REQUIRE(fast.has_value() == slow.has_value());
    if (!fast) continue;
    CHECK(fast->message == slow->message);
    CHECK(fast->wait == slow->wait);
    CHECK(fast->error == slow->error);
    REQUIRE(fast->request_id.has_value() == slow->request_id.has_value());
    if (fast->request_id) {
      CHECK(fast->request_id->kind == slow->request_id->kind);
      CHECK(fast->request_id->text == slow->request_id->text);
    }
  }
  // Lines that are not EncodeReply's: the fast path steps aside.
  for (const std::string& line :
       {std::string("---%0Amessage: \"a\\qb\"%0A"), std::string("---%0Amessage: \"open"),
        std::string("---%0Amessage: \"a\"%0Amessage: \"b\"%0A"),
        std::string("---%0Amessage: \"a\" # c%0A"), std::string("{message: x}"),
        std::string("---%0Amessage: \"a\"%0Await: yes%0A")}) {
    CAPTURE(line);
    const std::optional<Reply> fast = ParseReply(line);
    const std::optional<Reply> slow = ParseReplySlow(line);
    REQUIRE(fast.has_value() == slow.has_value());
    if (fast) {
      CHECK(fast->message == slow->message);
      CHECK(fast->wait == slow->wait);
    }
  }
}

}  // namespace
}  // namespace einhorn::core::wire
