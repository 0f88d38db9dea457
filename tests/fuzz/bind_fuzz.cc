// libFuzzer target for the -b grammar (src/core/bind_spec). Built only with -DEINHORN_FUZZ=ON
// and clang++; run it with scripts/fuzz. A spec comes from the command line and (later) from
// the config file, so ParseBindSpec must never crash or throw; and what it accepts must be
// something the listener code can use as it is: a port in range, a host or path a C string
// holds whole, only known flags, and a fd name fit for LISTEN_FDNAMES (':'-separated).
// There is no formatter in the core, so this file writes specs back itself and checks the
// parser reads them as the same socket.
// A broken invariant calls __builtin_trap(), which libFuzzer reports as a crash and saves.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "core/bind_spec.h"

namespace core = einhorn::core;
using Family = core::BindSpec::Family;

namespace {

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "bind_fuzz: invariant broken: %s\n", what);
    __builtin_trap();
  }
}

// The socket a spec names, in one spelling: what a round trip must preserve (not `text`).
std::string Format(const core::BindSpec& s) {
  std::string out;
  switch (s.family) {
    case Family::kUnix: out = "unix:" + s.path; break;
    case Family::kInet6: out = "[" + s.host + "]:" + std::to_string(s.port); break;
    case Family::kInet: out = s.host + ":" + std::to_string(s.port); break;
  }
  if (s.reuseaddr) out += ",r";
  if (s.nonblock) out += ",n";
  if (s.reuseport) out += ",reuseport";
  return out;
}

bool SameSocket(const core::BindSpec& a, const core::BindSpec& b) {
  core::BindSpec x = a;
  x.text = b.text;
  return x == b;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Reads the flags from the text independently of the parser: they follow the first comma
// (neither an address nor a UNIX path may hold one), and each must be a known name.
void CheckFlags(const core::BindSpec& s) {
  const size_t comma = s.text.find(',');
  bool reuseaddr = false, nonblock = false, reuseport = false;
  if (comma != std::string::npos) {
    size_t start = comma + 1;
    while (true) {
      const size_t end = std::min(s.text.find(',', start), s.text.size());
      const std::string flag = Lower(std::string_view(s.text).substr(start, end - start));
      if (flag == "r" || flag == "so_reuseaddr") {
        reuseaddr = true;
      } else if (flag == "n" || flag == "o_nonblock") {
        nonblock = true;
      } else if (flag == "reuseport" || flag == "so_reuseport") {
        reuseport = true;
      } else {
        Require(false, "only known flags are accepted");
      }
      if (end == s.text.size()) break;
      start = end + 1;
    }
  }
  Require(s.reuseaddr == reuseaddr && s.nonblock == nonblock && s.reuseport == reuseport,
          "the flags set are the flags written");
}

void CheckAccepted(const core::BindSpec& s, std::string_view in) {
  Require(s.text == in, "text is the input");
  Require(s.port >= 0 && s.port <= 65535, "port in 0..65535");
  // c_str() goes to getaddrinfo/bind, Name() to the environment: a NUL would cut either.
  Require(s.host.find('\0') == std::string::npos, "no NUL in the host");
  Require(s.path.find('\0') == std::string::npos, "no NUL in the path");
  switch (s.family) {
    case Family::kUnix:
      Require(!s.path.empty() && s.host.empty() && s.port == 0, "a UNIX spec has only a path");
      Require(s.path.find(',') == std::string::npos, "a path stops at the first comma");
      Require(Lower(in.substr(0, 5)) == "unix:", "a UNIX spec starts with unix:");
      break;
    case Family::kInet6:
      Require(!s.host.empty() && s.path.empty(), "an IPv6 spec has a host, no path");
      Require(s.host.find(']') == std::string::npos, "an IPv6 host stops at ']'");
      Require(!in.empty() && in[0] == '[', "an IPv6 spec starts with '['");
      break;
    case Family::kInet:
      Require(!s.host.empty() && s.path.empty(), "an IPv4 spec has a host, no path");
      Require(s.host.find(':') == std::string::npos, "an IPv4/name host has no ':'");
      Require(s.host[0] != '[', "a '[' host is IPv6");
      break;
  }
  Require(s.host.find(',') == std::string::npos, "a host stops at the first comma");
  CheckFlags(s);

  const std::string name = s.Name();
  Require(!name.empty(), "a fd name is never empty");
  Require(name.find(':') == std::string::npos, "a fd name has no ':' (LISTEN_FDNAMES separator)");
  Require(name.find(',') == std::string::npos, "a fd name has no flags");

  // Written back, the spec reads as the same socket; writing that again changes nothing.
  const std::string canonical = Format(s);
  const core::Result<core::BindSpec> again = core::ParseBindSpec(canonical);
  Require(again.ok(), "the canonical form of an accepted spec parses");
  Require(SameSocket(again.value(), s), "the canonical form names the same socket");
  Require(Format(again.value()) == canonical, "one canonical form per socket");

  // Flags are case-insensitive and additive.
  const size_t comma = s.text.find(',');
  if (comma != std::string::npos) {
    std::string upper = s.text;
    for (size_t i = comma; i < upper.size(); ++i) {
      upper[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(upper[i])));
    }
    const core::Result<core::BindSpec> shouted = core::ParseBindSpec(upper);
    Require(shouted.ok() && SameSocket(shouted.value(), s), "flags are case-insensitive");
  }
  const core::Result<core::BindSpec> more = core::ParseBindSpec(s.text + ",N");
  Require(more.ok(), "adding a known flag keeps a spec valid");
  core::BindSpec expected = s;
  expected.nonblock = true;
  Require(SameSocket(more.value(), expected), "adding ,N sets nonblock and nothing else");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  const core::Result<core::BindSpec> parsed = core::ParseBindSpec(in);
  if (!parsed.ok()) {
    // The error becomes a usage line: it names the spec.
    Require(parsed.error().rfind("invalid bind '" + in + "': ", 0) == 0,
            "a refusal names the spec and says why");
    Require(parsed.error().size() > in.size() + 17, "a refusal says why");
    return 0;
  }
  CheckAccepted(parsed.value(), in);
  return 0;
}
