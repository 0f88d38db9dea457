// The little HTTP the --metrics-listen endpoint speaks (master/metrics_server.h): one request
// per connection, HTTP/1.0 or 1.1, GET or HEAD of /metrics, /livez or /readyz, answered and
// closed. Every byte is
// untrusted; this decides, from the bytes received so far, whether the request head is
// complete and what to answer. Pure.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace einhorn::core {

inline constexpr size_t kMaxHttpRequestHead = 8192;

struct HttpVerdict {
  enum class Kind {
    kIncomplete,  // wait for more bytes
    kMetrics,     // 200 with the exposition text (body left out for HEAD)
    kLive,        // /livez: 200 "ok" (the loop answering is the proof that it turns)
    kReady,       // /readyz: 200 with the readiness line (core/readiness.h)
    kNotReady,    // /readyz: 503 with the readiness line; JudgeHttpRequest says kReady, the
                  // server turns it into this when the decision is "not ready"
    kNotFound,    // 404: another path
    kBadMethod,   // 405: not GET or HEAD
    kBadRequest,  // 400: not an HTTP/1.x request line
    kTooLarge,    // 431: no end of the head within the limit
  };
  Kind kind = Kind::kIncomplete;
  bool head_only = false;  // HEAD: headers without the body
};

// `received`: every byte so far. The head ends at the first empty line ("\r\n\r\n" or
// "\n\n"); what follows it (a body, a second request) is ignored. A request line that is
// already wrong is answered without waiting for the rest.
HttpVerdict JudgeHttpRequest(std::string_view received, size_t max_head = kMaxHttpRequestHead);

// The whole response: status line, Content-Type, Content-Length, Connection: close, and the
// body unless head_only. For kMetrics `body` is the exposition text, for kReady and kNotReady
// the readiness line; the others carry a short text of their own.
std::string HttpResponse(const HttpVerdict& verdict, const std::string& body);

}  // namespace einhorn::core
