// The command socket's server side: accepts connections on the -d socket (and owns each
// worker's -g channel), checks peer credentials, frames lines, hands requests to core::Control
// and writes the replies. Every byte from a peer is untrusted: lines are capped, half-sent lines
// time out, slow readers and excess connections are dropped; nothing a client does can stop the
// master or reach the workers except through a valid command. Out of file descriptors, it
// answers the peers it cannot serve instead of dropping them silently, and never spins.
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/control.h"
#include "core/log_limit.h"
#include "core/wire.h"

namespace einhorn::master {

struct AccessPolicy {
  uid_t self_uid = 0;
  std::set<uid_t> allow_uids;  // besides root and self_uid
  std::set<gid_t> allow_gids;
};

struct ServerLimits {
  // At least; with live_workers, at least that many plus kConnectionsBeyondWorkers: every
  // worker of a large pool may ack (or ping) at the same moment, and a refused ack is lost
  // (Einhorn's clients send it once), which left 1000 workers half unready.
  size_t max_connections = 256;
  std::function<size_t()> live_workers;
  size_t max_line = core::wire::kMaxLineBytes;
  uint64_t half_line_timeout_ms = 10'000;
  size_t max_write_queue = 1 << 20;  // a peer that reads nothing is dropped past this
};

inline constexpr size_t kConnectionsBeyondWorkers = 64;

class ControlServer {
 public:
  // `after` runs after every handled request (the master re-arms its timers there).
  ControlServer(uv_loop_t* loop, core::Control& control, AccessPolicy policy,
                std::function<core::Time()> now, std::function<void()> after,
                ServerLimits limits = ServerLimits{});
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Starts accepting on a bound, listening UNIX socket fd (ownership passes to the server).
  void Listen(int fd);
  // A worker's -g channel: the master's end of its socketpair (ownership passes).
  void AddWorkerChannel(int fd, core::Pid worker);
  void DropWorkerChannel(core::Pid worker);
  // An upgrade's message to every connection subscribed to it; the final one ends the
  // subscriptions.
  void BroadcastUpgrade(core::UpgradeNoteKind kind, const std::string& text);
  // Closes the listener and every connection; the loop must run once more to finish.
  void Close();

  // A master re-exec. Freeze stops reading requests (what clients send meanwhile waits in the
  // kernel for the new image) and Thaw resumes after a failed exec. Flushed says every reply
  // has been written, so nothing is lost with the old image's buffers; DropUnflushed closes
  // the connections that will not read theirs in time.
  struct Carried {
    int fd = -1;
    core::Peer peer;
    std::string pending_input;  // half a line
    std::optional<core::wire::Id> upgrade_id;
  };
  void Freeze();
  void Thaw();
  bool Flushed() const;
  void DropUnflushed();
  // The connections and -g channels to keep open across the exec (their fds stay owned here).
  std::vector<Carried> Export() const;
  int listener_fd() const;
  // In the new image: a connection or -g channel the old one had.
  void Restore(const Carried& carried);
  // A connection the reload's stand-in (sys/stand_in.h) accepted, with what it read: served
  // as if accepted here, the peer checked afresh.
  void AcceptHanded(int fd, std::string_view bytes) { Accept(fd, bytes); }
  // In the stand-in: the reply to `bytes` (one line) from `fd`'s peer if it is a `status`
  // from an allowed peer, else nullopt (the connection is handed over instead).
  std::optional<std::string> StandInReply(int fd, std::string_view bytes);
  size_t connections() const { return connections_.size(); }

 private:
  struct Connection;
  static void OnListenerReadable(uv_poll_t* poll, int status, int events) noexcept;
  static void OnAcceptRetry(uv_timer_t* timer) noexcept;
  static void OnAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) noexcept;
  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void OnIdle(uv_timer_t* timer) noexcept;

  void AcceptPending();
  // `already_read`: what the stand-in read from it; without, what is there now is read.
  void Accept(int fd, std::string_view already_read = {});
  // EMFILE/ENFILE: gives up the reserve fd to accept one peer, answers it and closes it. False
  // if that was not possible (accepting is then paused for a moment instead of spinning).
  bool RefuseForLackOfFds(int accept_errno);
  void PauseAccepting();
  // Refusals are logged through a core::LogLimiter (the 1st, 10th, 100th... of a run), so that
  // a flood cannot flood the log. A run of refusals for want of room (too many connections,
  // no fds) is summed up by the next accepted connection; any run, once it has stopped, by the
  // summary timer.
  void NoteRefusal(const std::string& who, const std::string& why);
  void NotePermissionRefusal(const std::string& who);
  // An allowed peer that is closed for misbehaving (an over-long line, a line left unfinished,
  // replies left unread): the same limiter, since any local user on the allow list can repeat
  // it as fast as it connects.
  void NoteClosedPeer(const std::string& line);
  void ArmRefusalSummary();
  static void OnRefusalSummary(uv_timer_t* timer) noexcept;
  void SummarizeRefusals(bool force_capacity);
  Connection* Adopt(core::Peer peer);
  void HandleBytes(Connection* c, const char* data, size_t len);
  // HandleBytes for what a peer sent (read by libuv, or as it was accepted): an internal error
  // closes that connection, never the master.
  void Feed(Connection* c, const char* data, size_t len) noexcept;
  void Send(Connection* c, const core::wire::Reply& reply);
  void CloseAfterWrites(Connection* c);
  void Destroy(Connection* c);
  bool Allowed(const core::Peer& peer) const;

  uv_loop_t* loop_;
  core::Control& control_;
  AccessPolicy policy_;
  std::function<core::Time()> now_;
  std::function<void()> after_;
  ServerLimits limits_;
  // Polled and accepted by hand: uv_listen closes, unanswered and unlogged, the connections it
  // cannot accept at EMFILE.
  uv_poll_t listener_{};
  uv_timer_t accept_retry_{};
  int listen_fd_ = -1;
  int reserve_fd_ = -1;  // /dev/null, closed to make room for one refusal at EMFILE
  bool listening_ = false;
  core::LogLimiter capacity_refusals_;    // too many connections, out of fds
  core::LogLimiter permission_refusals_;  // peers that may not use the socket at all
  core::LogLimiter closed_peers_;         // allowed peers closed for misbehaving
  uv_timer_t refusal_summary_{};
  uint64_t paused_in_a_row_ = 0;  // out of fds even for the reserve, logged like refusals
  bool frozen_ = false;
  std::set<Connection*> connections_;
  std::map<core::Pid, Connection*> worker_channels_;
  std::unique_ptr<char[]> read_buffer_;
};

}  // namespace einhorn::master
