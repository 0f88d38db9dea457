#include "master/control_server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "sys/peer.h"
#include "sys/posix.h"

namespace einhorn::master {

namespace wire = core::wire;

struct ControlServer::Connection {
  ControlServer* server = nullptr;
  uv_pipe_t pipe{};
  uv_timer_t idle{};
  wire::LineBuffer lines;
  core::Peer peer;
  bool closing = false;    // uv_close called: no more reads, writes or requests
  bool finishing = false;  // flushing the last replies before closing
  std::optional<wire::Id> upgrade_id;  // subscribed to the upgrade's messages
  size_t skipped_notes = 0;            // progress lines not sent: it read too slowly
  int open_handles = 2;

  explicit Connection(size_t max_line) : lines(max_line) {}
  std::string Name() const { return PeerName(peer); }
  static std::string PeerName(const core::Peer& peer) {
    return peer.bound_worker ? "the -g channel of worker " + std::to_string(*peer.bound_worker)
                             : "uid " + std::to_string(peer.uid) + " pid " +
                                   std::to_string(peer.pid);
  }
};

namespace {

struct WriteRequest {
  uv_write_t req;
  std::string bytes;
};

wire::Reply ErrorReply(std::string message) {
  wire::Reply r;
  r.message = std::move(message);
  r.error = true;
  return r;
}

// The command socket's backlog: as Einhorn (Ruby's default), the most the kernel allows, so a
// burst of clients connecting at once all get in (connect on a full UNIX backlog fails with
// EAGAIN at once, it does not wait).
constexpr int kBacklog = SOMAXCONN;
// Connections taken per wake-up: at most a full queue's worth (the kernel queues backlog + 1),
// and for at most a slice of the turn, as the master's spawns and exits are: a peer that
// connects without pause takes half of the loop, not all of it. (With only the count, 4097
// connections were 25 ms a turn, and such a peer slowed a start of 300 workers from 0.16 s to
// 3.4-3.6 s: tests/bench/flood_start.sh.) What is left waits in the backlog for the next turn.
constexpr int kAcceptBatch = kBacklog + 1;
constexpr std::chrono::nanoseconds kAcceptSlice = std::chrono::milliseconds(1);
// How long accepting pauses when not even a refusal is possible (no reserve fd left).
constexpr uint64_t kAcceptRetryMs = 100;

int AcceptOne(int listen_fd) {
  return accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
}

int OpenReserve() { return open("/dev/null", O_RDONLY | O_CLOEXEC); }

// Turns a peer away at once, without a libuv handle: the reply goes into the fresh socket's
// buffer, what the peer already sent is read and dropped (so the close does not reset the
// connection before the peer reads the reply), and the fd is closed before the next accept.
// A burst that the accept loop drains in one turn so never holds more fds than the
// connections it keeps.
void RefuseNow(int fd, const wire::Reply& reply) {
  const std::string line = wire::EncodeReply(reply);
  // A fresh socket's buffer takes one short line; if not, the peer only misses the reason.
  [[maybe_unused]] const ssize_t sent =
      send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  shutdown(fd, SHUT_WR);
  char drop[4096];
  for (int i = 0; i < 16 && recv(fd, drop, sizeof drop, MSG_DONTWAIT) > 0; ++i) {
  }
  close(fd);
}

bool IsPowerOfTen(uint64_t n) {
  while (n >= 10 && n % 10 == 0) n /= 10;
  return n == 1;
}

// The peer's credentials as a core::Peer (pid 0, uid and gid -1 when they cannot be read).
core::Peer PeerFrom(const core::Result<sys::PeerCred>& cred) {
  core::Peer peer;
  if (cred.ok()) {
    peer.pid = cred.value().pid;
    peer.uid = static_cast<int>(cred.value().uid);
    peer.gid = static_cast<int>(cred.value().gid);
  }
  return peer;
}

}  // namespace

ControlServer::ControlServer(uv_loop_t* loop, core::Control& control, AccessPolicy policy,
                             std::function<core::Time()> now, std::function<void()> after,
                             ServerLimits limits)
    : loop_(loop),
      control_(control),
      policy_(std::move(policy)),
      now_(std::move(now)),
      after_(std::move(after)),
      limits_(limits),
      read_buffer_(new char[64 * 1024]) {}

ControlServer::~ControlServer() = default;

void ControlServer::Listen(int fd) {
  int err = listen(fd, kBacklog) == 0 ? 0 : uv_translate_sys_error(errno);
  // uv_poll_init makes the fd non-blocking, which accept4 below relies on.
  if (err == 0) err = uv_poll_init(loop_, &listener_, fd);
  if (err != 0) {
    spdlog::error("command socket: cannot listen: {}", uv_strerror(err));
    close(fd);
    return;
  }
  listener_.data = this;
  uv_timer_init(loop_, &accept_retry_);
  accept_retry_.data = this;
  uv_timer_init(loop_, &refusal_summary_);
  refusal_summary_.data = this;
  listen_fd_ = fd;
  reserve_fd_ = OpenReserve();
  listening_ = true;
  uv_poll_start(&listener_, UV_READABLE, &OnListenerReadable);
}

void ControlServer::OnListenerReadable(uv_poll_t* poll, int status, int) noexcept {
  auto* self = static_cast<ControlServer*>(poll->data);
  try {
    if (status != 0) {
      spdlog::warn("command socket: cannot wait for connections: {}", uv_strerror(status));
      self->PauseAccepting();
      return;
    }
    self->AcceptPending();
  } catch (const std::exception& e) {
    spdlog::error("command socket: internal error while accepting: {}", e.what());
  }
}

void ControlServer::OnAcceptRetry(uv_timer_t* timer) noexcept {
  auto* self = static_cast<ControlServer*>(timer->data);
  if (!self->listening_) return;
  if (self->reserve_fd_ < 0) self->reserve_fd_ = OpenReserve();
  uv_poll_start(&self->listener_, UV_READABLE, &OnListenerReadable);
}

void ControlServer::PauseAccepting() {
  uv_poll_stop(&listener_);
  uv_timer_start(&accept_retry_, &OnAcceptRetry, kAcceptRetryMs, 0);
}

void ControlServer::AcceptPending() {
  const core::Time started = now_();
  for (int i = 0; i < kAcceptBatch && listening_; ++i) {
    if (i > 0 && now_() - started >= kAcceptSlice) return;
    const int fd = AcceptOne(listen_fd_);
    if (fd >= 0) {
      paused_in_a_row_ = 0;
      Accept(fd);
      continue;
    }
    const int err = errno;
    if (err == EINTR || err == ECONNABORTED) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) return;
    if (err == EMFILE || err == ENFILE) {
      if (RefuseForLackOfFds(err)) continue;
      return;
    }
    spdlog::warn("{}", sys::PosixError("command socket: accept failed", err));
    PauseAccepting();
    return;
  }
}

bool ControlServer::RefuseForLackOfFds(int accept_errno) {
  const std::string why =
      "the master is out of file descriptors (" + sys::ErrnoText(accept_errno) + ")";
  if (reserve_fd_ < 0) {
    // Not even a refusal is possible: the peers wait in the backlog, and polling now would
    // wake us for them again at once.
    if (IsPowerOfTen(++paused_in_a_row_)) {
      spdlog::warn("command socket: out of file descriptors ({}) even to turn a peer away: "
                   "peers wait in the backlog; accepting again every {} ms ({} in a row)",
                   sys::ErrnoText(accept_errno), kAcceptRetryMs, paused_in_a_row_);
    }
    PauseAccepting();
    return false;
  }
  paused_in_a_row_ = 0;
  close(reserve_fd_);
  const int fd = AcceptOne(listen_fd_);
  const int err = fd < 0 ? errno : 0;
  std::string who = "a peer";
  if (fd >= 0) {
    if (auto cred = sys::GetPeerCred(fd); cred.ok()) {
      who = "uid " + std::to_string(cred.value().uid) + " pid " + std::to_string(cred.value().pid);
    }
    const std::string line = wire::EncodeReply(ErrorReply(
        "The master is out of file descriptors (" + sys::ErrnoText(accept_errno) +
        "); try again later"));
    // A fresh socket's buffer takes one short line; if not, the peer only misses the reason.
    [[maybe_unused]] const ssize_t n =
        send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
    NoteRefusal(who, why);
    control_.Refused(core::Peer{}, "out_of_fds", now_());
  }
  reserve_fd_ = OpenReserve();
  if (fd < 0) {
    if (err != EAGAIN && err != EWOULDBLOCK) PauseAccepting();
    return false;
  }
  return true;  // without a reserve now, the next EMFILE pauses
}

void ControlServer::NoteRefusal(const std::string& who, const std::string& why) {
  const core::LogLimiter::Verdict v = capacity_refusals_.Note(now_());
  if (v.ended && v.ended->unlogged > 0) {
    spdlog::warn("command socket: refused {} connections in all in that run", v.ended->count);
  }
  if (v.log) {
    if (v.count == 1) {
      spdlog::warn("command socket: refused {}: {}", who, why);
    } else {
      spdlog::warn("command socket: refused {}: {} ({} refused in a row; the next accepted "
                   "connection says how many in all)",
                   who, why, v.count);
    }
  }
  ArmRefusalSummary();
}

void ControlServer::NotePermissionRefusal(const std::string& who) {
  const core::LogLimiter::Verdict v = permission_refusals_.Note(now_());
  if (v.ended && v.ended->unlogged > 0) {
    spdlog::warn("command socket: refused {} peers without permission in all in that run",
                 v.ended->count);
  }
  if (v.log) {
    spdlog::warn("command socket: refused {}: not root, not uid {} and not allowed by "
                 "--control-allow-uid/--control-allow-gid{}",
                 who, policy_.self_uid,
                 v.count == 1 ? std::string()
                              : " (" + std::to_string(v.count) +
                                    " refused in this run; a sum follows when they stop)");
  }
  ArmRefusalSummary();
}

void ControlServer::NoteClosedPeer(const std::string& line) {
  const core::LogLimiter::Verdict v = closed_peers_.Note(now_());
  if (v.ended && v.ended->unlogged > 0) {
    spdlog::warn("command socket: closed {} misbehaving peers in all in that run",
                 v.ended->count);
  }
  if (v.log) {
    spdlog::warn("{}{}", line,
                 v.count == 1 ? std::string()
                              : " (" + std::to_string(v.count) +
                                    " peers closed in this run; a sum follows when they stop)");
  }
  ArmRefusalSummary();
}

void ControlServer::ArmRefusalSummary() {
  if (!listening_) return;
  std::optional<core::Time> at = capacity_refusals_.settle_at();
  for (const core::LogLimiter* l : {&permission_refusals_, &closed_peers_}) {
    if (const auto p = l->settle_at(); p && (!at || *p < *at)) at = p;
  }
  if (!at) {
    uv_timer_stop(&refusal_summary_);
    return;
  }
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(*at - now_()).count();
  uv_timer_start(&refusal_summary_, &OnRefusalSummary,
                 static_cast<uint64_t>(std::max<long long>(ms, 1)), 0);
}

void ControlServer::OnRefusalSummary(uv_timer_t* timer) noexcept {
  auto* self = static_cast<ControlServer*>(timer->data);
  try {
    self->SummarizeRefusals(/*force_capacity=*/false);
    self->ArmRefusalSummary();
  } catch (const std::exception& e) {
    spdlog::error("command socket: internal error while summing up refusals: {}", e.what());
  }
}

void ControlServer::SummarizeRefusals(bool force_capacity) {
  const core::Time now = now_();
  // Only what was not logged needs a sum; a good connection ends a run of the other kind in
  // any case (as it always has: "accepting again").
  if (const auto s = capacity_refusals_.Settle(now, force_capacity)) {
    if (force_capacity) {
      spdlog::info("command socket: accepting connections again after refusing {}", s->count);
    } else if (s->unlogged > 0) {
      spdlog::warn("command socket: refused {} connections in all over {:.3f}s (too many "
                   "connections or no file descriptors); {} of them not logged one by one",
                   s->count, core::ToSeconds(s->lasted), s->unlogged);
    }
  }
  if (const auto s = permission_refusals_.Settle(now)) {
    if (s->unlogged > 0) {
      spdlog::warn("command socket: refused {} peers without permission in all over {:.3f}s; "
                   "{} of them not logged one by one",
                   s->count, core::ToSeconds(s->lasted), s->unlogged);
    }
  }
  if (const auto s = closed_peers_.Settle(now)) {
    if (s->unlogged > 0) {
      spdlog::warn("command socket: closed {} misbehaving peers in all over {:.3f}s; {} of "
                   "them not logged one by one",
                   s->count, core::ToSeconds(s->lasted), s->unlogged);
    }
  }
}

ControlServer::Connection* ControlServer::Adopt(core::Peer peer) {
  auto* c = new Connection(limits_.max_line);
  c->server = this;
  c->peer = peer;
  uv_pipe_init(loop_, &c->pipe, 0);
  uv_timer_init(loop_, &c->idle);
  c->pipe.data = c;
  c->idle.data = c;
  connections_.insert(c);
  return c;
}

void ControlServer::Accept(int fd, std::string_view already_read) {
  auto cred = sys::GetPeerCred(fd);
  const core::Peer peer = PeerFrom(cred);
  if (!cred.ok() || !Allowed(peer)) {
    NotePermissionRefusal(cred.ok() ? Connection::PeerName(peer) : cred.error());
    control_.Refused(peer, "permission", now_());
    RefuseNow(fd, ErrorReply("Permission denied: uid " + std::to_string(peer.uid) +
                             " may not use this command socket"));
    return;
  }
  // The workers' -g channels do not count.
  size_t max_connections = limits_.max_connections;
  if (limits_.live_workers) {
    max_connections = std::max(max_connections, limits_.live_workers() + kConnectionsBeyondWorkers);
  }
  if (connections_.size() - worker_channels_.size() >= max_connections) {
    NoteRefusal(Connection::PeerName(peer),
                "too many connections (" + std::to_string(max_connections) + ")");
    control_.Refused(peer, "too_many_connections", now_());
    RefuseNow(fd, ErrorReply("Too many connections to the command socket; try again later"));
    return;
  }
  Connection* c = Adopt(peer);
  if (uv_pipe_open(&c->pipe, fd) != 0) {
    close(fd);
    Destroy(c);
    return;
  }
  if (capacity_refusals_.count() > 0) {
    SummarizeRefusals(/*force_capacity=*/true);
    ArmRefusalSummary();
  }
  // Only now, for a peer that stays: the ancestry costs a few /proc reads.
  for (pid_t p : sys::Lineage(c->peer.pid)) c->peer.lineage.push_back(p);
  if (frozen_) return;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c->pipe), &OnAlloc, &OnRead);
  if (!already_read.empty()) {
    Feed(c, already_read.data(), already_read.size());
    return;
  }
  // A client writes its request as it connects (einhornctl, Einhorn's clients, a health
  // check): what is there already is read now. libuv would read it in the next turn of the
  // loop, after that turn's slice of spawns (issue 20).
  char first[4096];
  const ssize_t n = recv(fd, first, sizeof first, MSG_DONTWAIT);
  if (n <= 0) return;  // nothing yet, or EOF: libuv's read sees it
  Feed(c, first, static_cast<size_t>(n));
}

void ControlServer::AddWorkerChannel(int fd, core::Pid worker) {
  core::Peer peer;
  peer.pid = worker;
  peer.uid = static_cast<int>(policy_.self_uid);
  peer.bound_worker = worker;
  Connection* c = Adopt(peer);
  if (uv_pipe_open(&c->pipe, fd) != 0) {
    close(fd);
    Destroy(c);
    return;
  }
  worker_channels_[worker] = c;
  if (!frozen_) uv_read_start(reinterpret_cast<uv_stream_t*>(&c->pipe), &OnAlloc, &OnRead);
}

void ControlServer::DropWorkerChannel(core::Pid worker) {
  auto it = worker_channels_.find(worker);
  if (it != worker_channels_.end()) Destroy(it->second);
}

std::optional<std::string> ControlServer::StandInReply(int fd, std::string_view bytes) {
  const core::Peer peer = PeerFrom(sys::GetPeerCred(fd));
  // Unreadable credentials (uid -1) are not allowed either: the new image refuses and logs.
  if (!Allowed(peer)) return std::nullopt;
  wire::LineBuffer lines(limits_.max_line);
  if (!lines.Append(bytes)) return std::nullopt;
  const std::optional<std::string> line = lines.NextLine();
  if (!line || lines.pending_bytes() != 0) return std::nullopt;
  const wire::ParseResult parsed = wire::ParseRequest(wire::Unescape(*line));
  if (parsed.kind != wire::ParseResult::Kind::kOk || parsed.request.command != "status") {
    return std::nullopt;
  }
  std::string reply;
  for (const wire::Reply& r : control_.Handle(parsed, peer, now_()).replies) {
    reply += wire::EncodeReply(r);
  }
  return reply;
}

bool ControlServer::Allowed(const core::Peer& peer) const {
  if (peer.uid < 0) return false;
  const auto uid = static_cast<uid_t>(peer.uid);
  return uid == 0 || uid == policy_.self_uid || policy_.allow_uids.count(uid) > 0 ||
         (peer.gid >= 0 && policy_.allow_gids.count(static_cast<gid_t>(peer.gid)) > 0);
}

void ControlServer::OnAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
  auto* c = static_cast<Connection*>(handle->data);
  // One buffer serves every connection: OnRead consumes it before the next allocation.
  buf->base = c->server->read_buffer_.get();
  buf->len = 64 * 1024;
}

void ControlServer::OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* c = static_cast<Connection*>(stream->data);
  ControlServer* self = c->server;
  if (nread < 0) {
    // EOF or an error: bytes after the last newline are dropped, as Einhorn does.
    self->Destroy(c);
    return;
  }
  if (nread > 0) self->Feed(c, buf->base, static_cast<size_t>(nread));
}

void ControlServer::Feed(Connection* c, const char* data, size_t len) noexcept {
  try {
    HandleBytes(c, data, len);
  } catch (const std::exception& e) {
    spdlog::error("command socket: internal error on {}: {}", c->Name(), e.what());
    Destroy(c);
  }
}

void ControlServer::HandleBytes(Connection* c, const char* data, size_t len) {
  if (c->closing || c->finishing) return;
  const bool fits = c->lines.Append(std::string_view(data, len));
  while (auto line = c->lines.NextLine()) {
    const wire::ParseResult parsed = wire::ParseRequest(wire::Unescape(*line));
    const core::ControlOutcome out = control_.Handle(parsed, c->peer, now_());
    for (const wire::Reply& reply : out.replies) Send(c, reply);
    if (out.subscribe_upgrade) c->upgrade_id = out.subscribe_upgrade;
    after_();
    if (c->closing) return;
    // Einhorn closes after worker:ack and worker:ping; a -g channel is the worker's for life,
    // so it stays open for the next ping.
    if (out.close && !c->peer.bound_worker) {
      CloseAfterWrites(c);
      return;
    }
  }
  if (!fits) {
    NoteClosedPeer(fmt::format("command socket: {} sent a line over {} bytes; closing it",
                               c->Name(), limits_.max_line));
    Send(c, ErrorReply("Line too long: the limit is " + std::to_string(limits_.max_line) +
                       " bytes"));
    CloseAfterWrites(c);
    return;
  }
  if (c->lines.pending_bytes() > 0) {
    if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&c->idle))) {
      uv_timer_start(&c->idle, &OnIdle, limits_.half_line_timeout_ms, 0);
    }
  } else {
    uv_timer_stop(&c->idle);
  }
}

void ControlServer::OnIdle(uv_timer_t* timer) noexcept {
  auto* c = static_cast<Connection*>(timer->data);
  c->server->NoteClosedPeer(
      fmt::format("command socket: {} left a line unfinished for {} ms; closing it", c->Name(),
                  c->server->limits_.half_line_timeout_ms));
  c->server->Destroy(c);
}

void ControlServer::Send(Connection* c, const wire::Reply& reply) {
  if (c->closing) return;
  auto* w = new WriteRequest;
  w->bytes = wire::EncodeReply(reply);
  w->req.data = w;
  uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
  const int err = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c->pipe), &buf, 1,
                           [](uv_write_t* req, int) { delete static_cast<WriteRequest*>(req->data); });
  if (err != 0) {
    delete w;
    Destroy(c);
    return;
  }
  if (uv_stream_get_write_queue_size(reinterpret_cast<uv_stream_t*>(&c->pipe)) >
      limits_.max_write_queue) {
    NoteClosedPeer(
        fmt::format("command socket: {} does not read its replies; closing it", c->Name()));
    Destroy(c);
  }
}

void ControlServer::BroadcastUpgrade(core::UpgradeNoteKind kind, const std::string& text) {
  std::vector<Connection*> subscribed;
  for (Connection* c : connections_) {
    if (c->upgrade_id && !c->closing && !c->finishing) subscribed.push_back(c);
  }
  for (Connection* c : subscribed) {
    // An upgrade of thousands of workers streams tens of thousands of lines: a subscriber that
    // reads slower than that (a loaded machine) skips progress lines once half its write queue
    // is full, and is told how many, rather than being dropped as a peer that reads nothing.
    const size_t queued = uv_stream_get_write_queue_size(reinterpret_cast<uv_stream_t*>(&c->pipe));
    if (kind == core::UpgradeNoteKind::kProgress && queued > limits_.max_write_queue / 2) {
      ++c->skipped_notes;
      continue;
    }
    if (c->skipped_notes > 0) {
      wire::Reply skipped;
      skipped.message = "(" + std::to_string(c->skipped_notes) +
                        " progress lines skipped: this client reads slower than they come)";
      skipped.request_id = c->upgrade_id;
      skipped.wait = true;
      c->skipped_notes = 0;
      Send(c, skipped);  // cannot overflow: the queue is at most half full
    }
    wire::Reply r;
    r.message = text;
    r.request_id = c->upgrade_id;
    r.wait = kind == core::UpgradeNoteKind::kProgress;
    r.error = kind == core::UpgradeNoteKind::kFailed;
    if (!r.wait) c->upgrade_id.reset();
    Send(c, r);  // may destroy c (a peer that does not read)
  }
}

void ControlServer::CloseAfterWrites(Connection* c) {
  if (c->closing || c->finishing) return;
  c->finishing = true;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->pipe));
  uv_timer_stop(&c->idle);
  auto* req = new uv_shutdown_t;
  req->data = c;
  const int err = uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&c->pipe),
                              [](uv_shutdown_t* r, int) {
                                auto* conn = static_cast<Connection*>(r->data);
                                delete r;
                                conn->server->Destroy(conn);
                              });
  if (err != 0) {
    delete req;
    Destroy(c);
  }
}

void ControlServer::Destroy(Connection* c) {
  if (c->closing) return;
  c->closing = true;
  connections_.erase(c);
  if (c->peer.bound_worker) {
    auto it = worker_channels_.find(*c->peer.bound_worker);
    if (it != worker_channels_.end() && it->second == c) worker_channels_.erase(it);
  }
  auto on_closed = [](uv_handle_t* h) {
    auto* conn = static_cast<Connection*>(h->data);
    if (--conn->open_handles == 0) delete conn;
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&c->pipe), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&c->idle), on_closed);
}

void ControlServer::Close() {
  if (listening_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&accept_retry_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&refusal_summary_), nullptr);
    close(listen_fd_);  // closing the poll handle has already taken it out of epoll
    listen_fd_ = -1;
    if (reserve_fd_ >= 0) close(reserve_fd_);
    reserve_fd_ = -1;
    listening_ = false;
  }
  while (!connections_.empty()) Destroy(*connections_.begin());
}

void ControlServer::Freeze() {
  frozen_ = true;
  for (Connection* c : connections_) {
    if (c->closing || c->finishing) continue;
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->pipe));
    uv_timer_stop(&c->idle);
  }
}

void ControlServer::Thaw() {
  frozen_ = false;
  for (Connection* c : connections_) {
    if (c->closing || c->finishing) continue;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&c->pipe), &OnAlloc, &OnRead);
    if (c->lines.pending_bytes() > 0) {
      uv_timer_start(&c->idle, &OnIdle, limits_.half_line_timeout_ms, 0);
    }
  }
}

bool ControlServer::Flushed() const {
  for (const Connection* c : connections_) {
    if (c->finishing) return false;
    if (uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&c->pipe)) > 0) {
      return false;
    }
  }
  return true;
}

void ControlServer::DropUnflushed() {
  std::vector<Connection*> slow;
  for (Connection* c : connections_) {
    if (c->finishing ||
        uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&c->pipe)) > 0) {
      slow.push_back(c);
    }
  }
  for (Connection* c : slow) {
    spdlog::warn("command socket: {} has not read its replies; closing it before the reload",
                 c->Name());
    Destroy(c);
  }
}

std::vector<ControlServer::Carried> ControlServer::Export() const {
  std::vector<Carried> out;
  for (const Connection* c : connections_) {
    if (c->closing || c->finishing) continue;
    uv_os_fd_t fd = -1;
    if (uv_fileno(reinterpret_cast<const uv_handle_t*>(&c->pipe), &fd) != 0 || fd < 0) continue;
    Carried k;
    k.fd = fd;
    k.peer = c->peer;
    k.pending_input = std::string(c->lines.pending());
    k.upgrade_id = c->upgrade_id;
    out.push_back(std::move(k));
  }
  return out;
}

int ControlServer::listener_fd() const { return listening_ ? listen_fd_ : -1; }

void ControlServer::Restore(const Carried& carried) {
  Connection* c = Adopt(carried.peer);
  if (uv_pipe_open(&c->pipe, carried.fd) != 0) {
    close(carried.fd);
    Destroy(c);
    return;
  }
  c->upgrade_id = carried.upgrade_id;
  if (carried.peer.bound_worker) worker_channels_[*carried.peer.bound_worker] = c;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c->pipe), &OnAlloc, &OnRead);
  if (!carried.pending_input.empty()) {
    HandleBytes(c, carried.pending_input.data(), carried.pending_input.size());
  }
}

}  // namespace einhorn::master
