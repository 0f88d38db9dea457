// --metrics-listen: GET /metrics over HTTP/1.0 or 1.1 from the master's libuv loop, for a
// Prometheus scraper on the same host, and the orchestrator's probes: GET /livez (answered by
// the loop itself, so an answer proves it turns) and GET /readyz (core/readiness.h). Deliberately small: one request per connection, answered
// (core/http_request.h decides what) and closed. Every byte is untrusted: request heads are
// capped, slow or silent peers time out, connections beyond a limit are closed at once, and
// nothing a peer sends reaches the supervisor; the text is only rendered for a valid request.
// No authentication: the address is loopback or a UNIX socket (core/metrics.h
// ParseMetricsListen), whose file mode decides who may connect.
#pragma once

#include <uv.h>

#include <functional>
#include <set>
#include <string>

#include "core/http_request.h"
#include "core/readiness.h"

namespace einhorn::master {

struct MetricsServerLimits {
  size_t max_connections = 32;
  size_t max_head = core::kMaxHttpRequestHead;
  std::uint64_t timeout_ms = 5'000;  // for the whole exchange
};

class MetricsServer {
 public:
  // `render` produces the exposition text when a valid request for /metrics arrives,
  // `readiness` the decision for /readyz.
  MetricsServer(uv_loop_t* loop, std::function<std::string()> render,
                std::function<core::Readiness()> readiness,
                MetricsServerLimits limits = MetricsServerLimits{});
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Serves on a bound, listening socket (TCP or UNIX stream); the server owns the fd from
  // here, and has closed it if this returns false.
  bool Listen(int fd, bool unix_socket);
  int listener_fd() const;
  // Closes the listener and every connection; the loop must run once more to finish.
  void Close();
  size_t connections() const { return connections_.size(); }

 private:
  struct Connection;
  union Stream {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  };
  static void OnConnection(uv_stream_t* server, int status) noexcept;
  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  void Accept();
  void Received(Connection* c, const char* data, size_t len);
  void Answer(Connection* c, core::HttpVerdict verdict);
  void Destroy(Connection* c);
  void DestroyAfter(Connection* c, uint64_t ms);  // in `ms` ms, unless it is gone by then
  uv_stream_t* listener() { return reinterpret_cast<uv_stream_t*>(&listener_); }

  uv_loop_t* loop_;
  std::function<std::string()> render_;
  std::function<core::Readiness()> readiness_;
  MetricsServerLimits limits_;
  Stream listener_{};
  bool unix_ = false;
  bool listening_ = false;
  std::set<Connection*> connections_;
};

}  // namespace einhorn::master
