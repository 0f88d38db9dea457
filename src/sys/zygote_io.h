// The master's end of the zygote protocol (ZYGOTE-PROTOCOL v1, core/zygote.h), as thin
// wrappers: the SOCK_SEQPACKET pair, one packet out with its fds, one packet in with a
// deadline, and the parent of a pid (the subreaper bit is sys/process.h's). No policy. The
// pair, SendPacket and PassedFds also carry the reload's stand-in (sys/stand_in.h), and
// PassedFds reads the fds a notify datagram brings (sys/notify.h).
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace einhorn::sys {

// socketpair(AF_UNIX, SOCK_SEQPACKET), both ends CLOEXEC: {master's, zygote's}.
core::Result<std::pair<int, int>> SeqpacketPair();

// One packet carrying `fds` (1 to kMaxPacketFds) in SCM_RIGHTS (MSG_NOSIGNAL; blocking).
inline constexpr size_t kMaxPacketFds = 16;
core::Status SendPacket(int fd, std::string_view bytes, std::span<const int> fds);

// The fds a received message carries (SCM_RIGHTS), in order; the caller owns them.
std::vector<int> PassedFds(const msghdr& msg);

struct Received {
  enum class Kind { kPacket, kEof, kNothing, kTooBig, kError };
  Kind kind = Kind::kNothing;
  std::string bytes;  // kPacket
  std::string error;  // kError: the errno text; kTooBig: the size
};
// One packet, waiting at most timeout_ms (0: only what is there now; kNothing when none came).
// A packet larger than max_bytes is kTooBig; fds sent along with it are closed.
Received ReceivePacket(int fd, size_t max_bytes, int timeout_ms);

// The parent pid of `pid` from /proc/PID/stat; nullopt when it is gone or unreadable.
std::optional<pid_t> ParentOf(pid_t pid);

}  // namespace einhorn::sys
