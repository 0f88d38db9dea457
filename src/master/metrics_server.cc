#include "master/metrics_server.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>

namespace einhorn::master {

struct MetricsServer::Connection {
  MetricsServer* server = nullptr;
  Stream stream{};
  uv_timer_t timer{};
  std::string received;
  bool answered = false;  // the response is written or on its way; what follows is dropped
  size_t dropped = 0;     // bytes read and dropped after the answer
  bool closing = false;
  int open_handles = 2;

  uv_stream_t* s() { return reinterpret_cast<uv_stream_t*>(&stream); }
  uv_handle_t* h() { return reinterpret_cast<uv_handle_t*>(&stream); }
};

namespace {

constexpr std::uint64_t kLingerMs = 1'000;
constexpr size_t kMaxDropped = 4 << 20;

struct Write {
  uv_write_t req;
  std::string bytes;
};

}  // namespace

MetricsServer::MetricsServer(uv_loop_t* loop, std::function<std::string()> render,
                             std::function<core::Readiness()> readiness, MetricsServerLimits limits)
    : loop_(loop), render_(std::move(render)), readiness_(std::move(readiness)), limits_(limits) {}

MetricsServer::~MetricsServer() = default;

bool MetricsServer::Listen(int fd, bool unix_socket) {
  unix_ = unix_socket;
  int err = unix_ ? uv_pipe_init(loop_, &listener_.pipe, 0) : uv_tcp_init(loop_, &listener_.tcp);
  if (err != 0) return false;
  listener()->data = this;
  err = unix_ ? uv_pipe_open(&listener_.pipe, fd) : uv_tcp_open(&listener_.tcp, fd);
  if (err != 0) close(fd);  // not adopted: closing the handle leaves it open
  if (err == 0) err = uv_listen(listener(), 64, &OnConnection);
  if (err != 0) {
    spdlog::error("metrics: cannot serve: {}", uv_strerror(err));
    uv_close(reinterpret_cast<uv_handle_t*>(listener()), nullptr);
    return false;
  }
  listening_ = true;
  return true;
}

int MetricsServer::listener_fd() const {
  if (!listening_) return -1;
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<const uv_handle_t*>(&listener_), &fd) != 0) return -1;
  return fd;
}

void MetricsServer::OnConnection(uv_stream_t* server, int status) noexcept {
  auto* self = static_cast<MetricsServer*>(server->data);
  if (status != 0) {
    spdlog::debug("metrics: accept failed: {}", uv_strerror(status));
    return;
  }
  try {
    self->Accept();
  } catch (const std::exception& e) {
    spdlog::error("metrics: internal error while accepting: {}", e.what());
  }
}

void MetricsServer::Accept() {
  auto* c = new Connection;
  c->server = this;
  if (unix_) {
    uv_pipe_init(loop_, &c->stream.pipe, 0);
  } else {
    uv_tcp_init(loop_, &c->stream.tcp);
  }
  uv_timer_init(loop_, &c->timer);
  c->s()->data = c;
  c->timer.data = c;
  connections_.insert(c);
  if (uv_accept(listener(), c->s()) != 0) {
    Destroy(c);
    return;
  }
  if (connections_.size() > limits_.max_connections) {
    // Taken off the backlog and closed: a flood cannot hold the queue, nor the loop.
    spdlog::debug("metrics: too many connections ({}); closing one", limits_.max_connections);
    Destroy(c);
    return;
  }
  DestroyAfter(c, limits_.timeout_ms);
  uv_read_start(
      c->s(),
      [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
        buf->base = new char[suggested];
        buf->len = suggested;
      },
      &OnRead);
}

void MetricsServer::OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* c = static_cast<Connection*>(stream->data);
  try {
    if (nread < 0) {
      c->server->Destroy(c);
    } else if (nread > 0) {
      c->server->Received(c, buf->base, static_cast<size_t>(nread));
    }
  } catch (const std::exception& e) {
    spdlog::error("metrics: internal error: {}", e.what());
    c->server->Destroy(c);
  }
  delete[] buf->base;
}

void MetricsServer::Received(Connection* c, const char* data, size_t len) {
  if (c->closing) return;
  if (c->answered) {
    c->dropped += len;
    if (c->dropped > kMaxDropped) Destroy(c);
    return;
  }
  // Never more than one byte past the limit: enough to tell it was exceeded.
  const size_t room = limits_.max_head + 1 - std::min(c->received.size(), limits_.max_head + 1);
  c->received.append(data, std::min(len, room));
  const core::HttpVerdict verdict = core::JudgeHttpRequest(c->received, limits_.max_head);
  if (verdict.kind == core::HttpVerdict::Kind::kIncomplete) return;
  Answer(c, verdict);
}

void MetricsServer::Answer(Connection* c, core::HttpVerdict verdict) {
  using Kind = core::HttpVerdict::Kind;
  c->answered = true;
  std::string body;
  if (verdict.kind == Kind::kMetrics) {
    body = render_();
  } else if (verdict.kind == Kind::kReady) {
    core::Readiness r = readiness_();
    if (!r.ready) verdict.kind = Kind::kNotReady;
    body = std::move(r.body);
  }
  auto* w = new Write;
  w->bytes = core::HttpResponse(verdict, body);
  w->req.data = w;
  uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
  const int err = uv_write(&w->req, c->s(), &buf, 1, [](uv_write_t* req, int) {
    delete static_cast<Write*>(req->data);
  });
  if (err != 0) {
    delete w;
    Destroy(c);
    return;
  }
  // Our side ends once the answer is written. What the peer still sends (the rest of a huge
  // head) is read and dropped until it closes too: closing with unread bytes would make the
  // kernel reset the connection, and the peer could lose the answer. The linger is short.
  auto* shutdown = new uv_shutdown_t;
  if (uv_shutdown(shutdown, c->s(), [](uv_shutdown_t* req, int) { delete req; }) != 0) {
    delete shutdown;
    Destroy(c);
    return;
  }
  DestroyAfter(c, kLingerMs);
}

void MetricsServer::DestroyAfter(Connection* c, uint64_t ms) {
  uv_timer_start(
      &c->timer,
      [](uv_timer_t* t) {
        auto* conn = static_cast<Connection*>(t->data);
        conn->server->Destroy(conn);
      },
      ms, 0);
}

void MetricsServer::Destroy(Connection* c) {
  if (c->closing) return;
  c->closing = true;
  connections_.erase(c);
  auto on_closed = [](uv_handle_t* h) {
    auto* conn = static_cast<Connection*>(h->data);
    if (--conn->open_handles == 0) delete conn;
  };
  uv_close(c->h(), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&c->timer), on_closed);
}

void MetricsServer::Close() {
  if (listening_) {
    uv_close(reinterpret_cast<uv_handle_t*>(listener()), nullptr);
    listening_ = false;
  }
  while (!connections_.empty()) Destroy(*connections_.begin());
}

}  // namespace einhorn::master
