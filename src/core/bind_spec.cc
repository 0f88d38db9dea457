#include "core/bind_spec.h"

#include <algorithm>
#include <cctype>
#include <vector>

namespace einhorn::core {
namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool IsWordChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
}

Status ApplyFlag(const std::string& raw, BindSpec* spec) {
  const std::string flag = Lower(raw);
  if (flag.empty() || !std::all_of(flag.begin(), flag.end(), IsWordChar)) {
    return Status::Error("empty or malformed flag '" + raw + "'");
  }
  if (flag == "r" || flag == "so_reuseaddr") {
    spec->reuseaddr = true;
  } else if (flag == "n" || flag == "o_nonblock") {
    spec->nonblock = true;
  } else if (flag == "reuseport" || flag == "so_reuseport") {
    spec->reuseport = true;
  } else {
    return Status::Error("unknown flag '" + raw + "' (known: r, so_reuseaddr, n, o_nonblock, reuseport)");
  }
  return Status::Ok();
}

Result<int> ParsePort(const std::string& s) {
  if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), [](unsigned char c) {
        return std::isdigit(c) != 0;
      })) {
    return Result<int>::Error("port '" + s + "' is not a number from 0 to 65535");
  }
  const int port = std::stoi(s);
  if (port > 65535) return Result<int>::Error("port " + s + " is above 65535");
  return port;
}

}  // namespace

std::string BindSpec::Name() const {
  std::string base = text.substr(0, text.find(','));
  std::replace(base.begin(), base.end(), ':', '_');
  return base;
}

Result<BindSpec> ParseBindSpec(const std::string& text) {
  auto fail = [&](const std::string& why) {
    return Result<BindSpec>::Error("invalid bind '" + text + "': " + why);
  };
  // A NUL would cut the host at getaddrinfo and the fd name in LISTEN_FDNAMES; argv cannot
  // hold one, but a config file's "\0" can.
  if (text.find('\0') != std::string::npos) return fail("NUL byte in the spec");
  BindSpec spec;
  spec.text = text;

  std::vector<std::string> parts;
  std::string address;
  std::string rest = text;
  if (Lower(text.substr(0, 5)) == "unix:") {
    // A path may contain anything but a comma; the flags follow the first comma.
    const size_t comma = text.find(',');
    spec.family = BindSpec::Family::kUnix;
    spec.path = text.substr(5, comma == std::string::npos ? std::string::npos : comma - 5);
    if (spec.path.empty()) return fail("empty UNIX socket path");
    rest = comma == std::string::npos ? "" : text.substr(comma);
  } else {
    const size_t comma = text.find(',');
    address = text.substr(0, comma);
    rest = comma == std::string::npos ? "" : text.substr(comma);
    std::string port_text;
    if (!address.empty() && address[0] == '[') {
      const size_t close = address.find(']');
      if (close == std::string::npos) return fail("missing ']' after the IPv6 address");
      spec.family = BindSpec::Family::kInet6;
      spec.host = address.substr(1, close - 1);
      if (spec.host.empty()) return fail("empty IPv6 address");
      if (close + 1 >= address.size() || address[close + 1] != ':') {
        return fail("expected ':PORT' after ']'");
      }
      port_text = address.substr(close + 2);
    } else {
      const size_t colon = address.rfind(':');
      if (colon == std::string::npos) return fail("expected HOST:PORT, [IPV6]:PORT or unix:/PATH");
      spec.host = address.substr(0, colon);
      port_text = address.substr(colon + 1);
      if (spec.host.empty()) return fail("empty host (use 0.0.0.0 or * for every address)");
      if (spec.host.find(':') != std::string::npos) {
        return fail("IPv6 addresses must be written in brackets, e.g. [::1]:8080");
      }
    }
    auto port = ParsePort(port_text);
    if (!port.ok()) return fail(port.error());
    spec.port = port.value();
  }

  // rest is empty or ",flag,flag"
  size_t pos = 0;
  while (pos < rest.size()) {
    const size_t next = rest.find(',', pos + 1);
    const std::string flag =
        rest.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
    Status st = ApplyFlag(flag, &spec);
    if (!st.ok()) return fail(st.message());
    if (next == std::string::npos) break;
    pos = next;
  }
  return spec;
}

}  // namespace einhorn::core
