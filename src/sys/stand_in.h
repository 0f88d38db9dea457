// The stand-in: a child the old image forks just before it execs the new one, so that the
// command socket still answers `status` while no image of the master can (the exec, the
// decode of the state: 6 ms at 1000 workers). It shares the listening socket with the master
// and accepts beside it. A request it may answer (`answer` says so) it answers from the old
// image's memory, a copy taken at the fork: the pool as it was when the reload began. Any
// other connection (another verb, a peer `answer` declines, half a line, a second request) it
// hands over, with the bytes it has read, on a SOCK_SEQPACKET channel to the new image, which
// serves it as if it had accepted it (one fd per message, SCM_RIGHTS). It stops at the first
// word from the master's end of the channel (shutdown or close), hands over the connection it
// holds, closes its end and exits; so the new image reads every connection it was handed,
// then EOF. It dies with the master (PR_SET_PDEATHSIG), and gives up by itself after
// kStandInLimit, in case the new image never speaks.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "sys/posix.h"

namespace einhorn::sys {

// The reply to write, or nullopt to hand the connection over. `fd` is the connection (for
// the peer's credentials), `bytes` one whole line and its '\n', nothing after.
using StandInAnswer = std::function<std::optional<std::string>(int fd, std::string_view bytes)>;

struct StandInLimits {
  // Waiting for the rest of a line: a client writes its request as it connects.
  std::chrono::milliseconds read_wait{5};
  size_t max_read = 4096;  // more than this without a line: handed over
  // A reader that does not take its reply in this time is dropped, as a frozen master
  // drops it (master_reload.cc's kFlushTimeout).
  std::chrono::milliseconds write_wait{1000};
  std::chrono::milliseconds give_up{10000};
};

struct StandIn {
  pid_t pid = -1;
  UniqueFd channel;  // the master's end: CLOEXEC, passed to the new image by the caller
};

// Forks the stand-in on `listen_fd` (a listening UNIX stream socket). In the child, `answer`
// runs on the parent's memory as it was at the fork; it must not touch the parent's event
// loop or log. Signals handled by the parent should be blocked by the caller (the child
// keeps the mask and never runs a handler).
core::Result<StandIn> StartStandIn(int listen_fd, const StandInAnswer& answer,
                                   const StandInLimits& limits = {});

// Tells the stand-in to stop (shutdown of the master's end for writing).
void StopStandIn(int channel);

// One handed-over connection: the fd (CLOEXEC, owned) and the bytes already read from it.
struct HandedConnection {
  UniqueFd fd;
  std::string bytes;
};
enum class HandOverRead { kConnection, kNone, kEnd };
// One message from a non-blocking channel: a connection, nothing waiting (kNone), or EOF or
// an error (kEnd). A message without exactly one fd is dropped (its fds closed) and skipped.
HandOverRead ReceiveHanded(int channel, HandedConnection* out);

// Waits until the channel is readable or `limit` has passed.
void WaitForHanded(int channel, std::chrono::nanoseconds limit);
// The new image's check of the fd its state names: an AF_UNIX SOCK_SEQPACKET socket.
bool IsHandOverChannel(int fd);

// For the stand-in and its tests: sends one connection; false on an error.
bool SendHanded(int channel, int fd, std::string_view bytes);

}  // namespace einhorn::sys
