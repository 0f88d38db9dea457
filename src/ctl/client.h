// einhornctl's end of the command socket: one connection to one master, carrying request lines
// out and reply lines back (wire.h does the framing). Every error from here means "cannot talk
// to the master", which einhornctl reports with exit code 3; what the master *says* (including a
// refusal) is the business of commands.h.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/wire.h"

namespace einhorn::ctl {

// The seam between the command logic and the socket: commands.cc talks to this interface, the
// tests give it a scripted fake.
class Connection {
 public:
  virtual ~Connection() = default;
  // Writes one whole request line (as wire::EncodeRequest makes it, '\n' included).
  virtual core::Status Send(const std::string& line) = 0;
  // The next reply line, decoded. Errors: the reply timeout passed, the master closed the
  // connection, or the line is not a reply.
  virtual core::Result<core::wire::Reply> Receive() = 0;
  // How long each later Receive waits: `seconds`, or with no limit for nullopt. Until this is
  // called it is the timeout given when connecting. For streams whose messages may be far
  // apart (`upgrade --wait`); the caller keeps its own deadline for the whole stream.
  virtual void SetReplyTimeout(std::optional<double> seconds) = 0;
  // worker:ack gets no reply: the master closes the connection once it has handled it, so EOF
  // (within the reply timeout) is the acknowledgement. A master that refuses the peer says why
  // before closing: that first reply comes back (nullopt when there was none); anything after
  // it is discarded.
  virtual core::Result<std::optional<core::wire::Reply>> AwaitClose() = 0;
};

// Connects to the UNIX stream socket at `path`. `timeout_seconds` bounds the connect (a master
// whose backlog is full), every write, AwaitClose, and (until SetReplyTimeout) the wait for each
// reply. The error names the path and
// says which failure it was (ConnectFailureText): "no master at PATH (...)" or "permission
// denied on PATH (socket owned by uid U, mode M; ...)".
core::Result<std::unique_ptr<Connection>> ConnectUnix(const std::string& path,
                                                      double timeout_seconds);

// What is known about a failed connect to `path`, gathered by ConnectUnix.
struct ConnectFailure {
  std::string path;
  int err = 0;                     // connect's errno
  bool stat_ok = false;            // lstat(path) worked: owner and mode below are known
  unsigned owner = 0;              // the socket file's uid
  unsigned mode = 0;               // its permission bits (07777)
  bool is_socket = false;
  unsigned self_uid = 0;           // who we are
  // Other sockets named einhorn*.sock beside `path` (file names only), for "did you mean -c".
  std::vector<std::string> neighbours;
};
// One line, without the program name: "no master at PATH (no such file; ...)",
// "no master at PATH (a socket is there, but nothing listens: ...)", "permission denied on
// PATH (socket owned by uid U, mode 0600; you are uid V: ...)", or strerror for the rest. Pure.
std::string ConnectFailureText(const ConnectFailure& f);

// An inherited connection (EINHORN_SOCK_FD, given to workers by `einhorn -g`). It is shared with
// the worker that spawned us, so AwaitClose does not read from it: it returns at once. The fd is
// not closed on destruction (the process is about to exit, and it is not ours alone).
core::Result<std::unique_ptr<Connection>> AdoptFd(int fd, double timeout_seconds);

}  // namespace einhorn::ctl
