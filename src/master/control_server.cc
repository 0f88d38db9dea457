#include "master/control_server.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "sys/peer.h"

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
  int open_handles = 2;

  explicit Connection(size_t max_line) : lines(max_line) {}
  std::string Name() const {
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
  uv_pipe_init(loop_, &listener_, 0);
  listener_.data = this;
  int err = uv_pipe_open(&listener_, fd);
  if (err == 0) err = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 128, &OnConnection);
  if (err != 0) {
    spdlog::error("command socket: cannot listen: {}", uv_strerror(err));
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    return;
  }
  listening_ = true;
}

void ControlServer::OnConnection(uv_stream_t* server, int status) noexcept {
  auto* self = static_cast<ControlServer*>(server->data);
  if (status != 0) {
    spdlog::warn("command socket: accept failed: {}", uv_strerror(status));
    return;
  }
  try {
    self->Accept();
  } catch (const std::exception& e) {
    spdlog::error("command socket: internal error while accepting: {}", e.what());
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

void ControlServer::Accept() {
  Connection* c = Adopt(core::Peer{});
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener_),
                reinterpret_cast<uv_stream_t*>(&c->pipe)) != 0) {
    Destroy(c);
    return;
  }
  uv_os_fd_t fd = -1;
  uv_fileno(reinterpret_cast<uv_handle_t*>(&c->pipe), &fd);
  auto cred = sys::GetPeerCred(fd);
  if (cred.ok()) {
    c->peer.pid = cred.value().pid;
    c->peer.uid = static_cast<int>(cred.value().uid);
    c->peer.gid = static_cast<int>(cred.value().gid);
    for (pid_t p : sys::Lineage(cred.value().pid)) c->peer.lineage.push_back(p);
  }
  if (!cred.ok() || !Allowed(c->peer)) {
    spdlog::warn("command socket: refused {}: not root, not uid {} and not allowed by "
                 "--control-allow-uid/--control-allow-gid",
                 cred.ok() ? c->Name() : cred.error(), policy_.self_uid);
    Send(c, ErrorReply("Permission denied: uid " + std::to_string(c->peer.uid) +
                       " may not use this command socket"));
    CloseAfterWrites(c);
    return;
  }
  // connections_ includes this one and the workers' -g channels, which do not count.
  if (connections_.size() - worker_channels_.size() > limits_.max_connections) {
    spdlog::warn("command socket: refused {}: too many connections ({})", c->Name(),
                 limits_.max_connections);
    Send(c, ErrorReply("Too many connections to the command socket; try again later"));
    CloseAfterWrites(c);
    return;
  }
  if (!frozen_) uv_read_start(reinterpret_cast<uv_stream_t*>(&c->pipe), &OnAlloc, &OnRead);
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
  try {
    if (nread < 0) {
      // EOF or an error: bytes after the last newline are dropped, as Einhorn does.
      self->Destroy(c);
      return;
    }
    if (nread > 0) self->HandleBytes(c, buf->base, static_cast<size_t>(nread));
  } catch (const std::exception& e) {
    spdlog::error("command socket: internal error on {}: {}", c->Name(), e.what());
    self->Destroy(c);
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
    spdlog::warn("command socket: {} sent a line over {} bytes; closing it", c->Name(),
                 limits_.max_line);
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
  spdlog::warn("command socket: {} left a line unfinished for {} ms; closing it", c->Name(),
               c->server->limits_.half_line_timeout_ms);
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
    spdlog::warn("command socket: {} does not read its replies; closing it", c->Name());
    Destroy(c);
  }
}

void ControlServer::BroadcastUpgrade(core::UpgradeNoteKind kind, const std::string& text) {
  std::vector<Connection*> subscribed;
  for (Connection* c : connections_) {
    if (c->upgrade_id && !c->closing && !c->finishing) subscribed.push_back(c);
  }
  for (Connection* c : subscribed) {
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

int ControlServer::listener_fd() const {
  if (!listening_) return -1;
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<const uv_handle_t*>(&listener_), &fd) != 0) return -1;
  return fd;
}

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
