#include "core/bind_spec.h"

#include <doctest/doctest.h>

namespace einhorn::core {
namespace {

BindSpec Ok(const std::string& text) {
  auto r = ParseBindSpec(text);
  INFO(text, " -> ", r.ok() ? "" : r.error());
  REQUIRE(r.ok());
  return r.value();
}

std::string Err(const std::string& text) {
  auto r = ParseBindSpec(text);
  INFO(text);
  REQUIRE_FALSE(r.ok());
  return r.error();
}

TEST_CASE("IPv4 host and port, Einhorn's flags") {
  BindSpec s = Ok("127.0.0.1:8080,r,n");
  CHECK(s.family == BindSpec::Family::kInet);
  CHECK(s.host == "127.0.0.1");
  CHECK(s.port == 8080);
  CHECK(s.reuseaddr);
  CHECK(s.nonblock);
  CHECK_FALSE(s.reuseport);
  CHECK(s.Name() == "127.0.0.1_8080");

  s = Ok("0.0.0.0:0,SO_REUSEADDR,O_NONBLOCK,reuseport");
  CHECK(s.port == 0);
  CHECK(s.reuseaddr);
  CHECK(s.nonblock);
  CHECK(s.reuseport);
  CHECK(Ok("localhost:65535").host == "localhost");
  CHECK(Ok("*:80").host == "*");
  CHECK_FALSE(Ok("127.0.0.1:1").reuseaddr);
}

TEST_CASE("IPv6 literals in brackets") {
  BindSpec s = Ok("[::1]:8080,r");
  CHECK(s.family == BindSpec::Family::kInet6);
  CHECK(s.host == "::1");
  CHECK(s.port == 8080);
  CHECK(s.reuseaddr);
  CHECK(s.Name() == "[__1]_8080");
  CHECK(Ok("[::]:0").host == "::");
  CHECK(Ok("[fe80::1%lo]:9").host == "fe80::1%lo");
}

TEST_CASE("UNIX paths") {
  BindSpec s = Ok("unix:/run/app.sock");
  CHECK(s.family == BindSpec::Family::kUnix);
  CHECK(s.path == "/run/app.sock");
  s = Ok("unix:relative/x:y.sock,r");
  CHECK(s.path == "relative/x:y.sock");
  CHECK(s.reuseaddr);
  CHECK(Ok("UNIX:/a").path == "/a");
}

TEST_CASE("bad specs are errors that name the spec") {
  CHECK(Err("127.0.0.1").find("invalid bind '127.0.0.1'") == 0);
  CHECK(Err(":80").find("empty host") != std::string::npos);
  CHECK(Err("127.0.0.1:").find("port") != std::string::npos);
  CHECK(Err("127.0.0.1:99999").find("above 65535") != std::string::npos);
  CHECK(Err("127.0.0.1:123456").find("port") != std::string::npos);
  CHECK(Err("127.0.0.1:-1").find("port") != std::string::npos);
  CHECK(Err("127.0.0.1:80x").find("port") != std::string::npos);
  CHECK(Err("127.0.0.1:80,").find("flag") != std::string::npos);
  CHECK(Err("127.0.0.1:80,,r").find("flag") != std::string::npos);
  CHECK(Err("127.0.0.1:80,foo").find("unknown flag 'foo'") != std::string::npos);
  CHECK(Err("127.0.0.1:80,re-use").find("flag") != std::string::npos);
  CHECK(Err("::1:80").find("brackets") != std::string::npos);
  CHECK(Err("[::1:80").find("]") != std::string::npos);
  CHECK(Err("[::1]80").find("PORT") != std::string::npos);
  CHECK(Err("[]:80").find("empty") != std::string::npos);
  CHECK(Err("unix:").find("empty") != std::string::npos);
  CHECK(Err("unix:,r").find("empty") != std::string::npos);
  CHECK(Err("unix:/a,bogus").find("unknown flag") != std::string::npos);
  CHECK(Err("").find("expected") != std::string::npos);
}

// Found by bind_fuzz: "127.0.0.1\0x:80" was accepted with host "127.0.0.1\0x", which
// getaddrinfo reads as 127.0.0.1 and LISTEN_FDNAMES cuts short.
TEST_CASE("a NUL byte anywhere in a spec is an error") {
  using namespace std::string_literals;
  CHECK(Err("127.0.0.1\0x:80"s).find("NUL") != std::string::npos);
  CHECK(Err("[::1\0]:80"s).find("NUL") != std::string::npos);
  CHECK(Err("unix:/a\0b"s).find("NUL") != std::string::npos);
  CHECK(Err("127.0.0.1:80,r\0"s).find("NUL") != std::string::npos);
}

TEST_CASE("every single byte string is handled without crashing") {
  for (int c = 0; c < 256; ++c) {
    const std::string one(1, static_cast<char>(c));
    (void)ParseBindSpec(one);
    (void)ParseBindSpec("127.0.0.1:80," + one);
    (void)ParseBindSpec("[" + one + "]:1");
    (void)ParseBindSpec("unix:" + one);
  }
}

}  // namespace
}  // namespace einhorn::core
