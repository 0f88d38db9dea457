// The -b grammar. Einhorn's form is HOST:PORT[,FLAG...] with FLAG one of r/so_reuseaddr,
// n/o_nonblock; we also accept IPv6 literals in brackets ([::1]:8080), UNIX paths
// (unix:/run/app.sock) and the flag `reuseport`. Flags are case-insensitive. Unlike Einhorn,
// unknown flags, ports above 65535 and empty hosts are errors rather than silently ignored or
// wrapped. Parsing is pure; resolving host names and opening sockets is src/sys/listeners.
#pragma once

#include <string>

#include "core/status.h"

namespace einhorn::core {

struct BindSpec {
  enum class Family { kInet, kInet6, kUnix };

  std::string text;   // the spec as the user wrote it, for messages
  Family family = Family::kInet;
  std::string host;   // IPv4 literal, host name, IPv6 literal without brackets, or "*"
  int port = 0;       // 0 means "any free port"
  std::string path;   // kUnix only
  bool reuseaddr = false;
  bool nonblock = false;
  bool reuseport = false;

  // Name given to the fd in LISTEN_FDNAMES: the spec without its flags.
  std::string Name() const;

  bool operator==(const BindSpec&) const = default;
};

Result<BindSpec> ParseBindSpec(const std::string& text);

}  // namespace einhorn::core
