// core/http_request.h: what the --metrics-listen endpoint answers to every shape of request,
// complete or not, valid or hostile.
#include "core/http_request.h"

#include <doctest/doctest.h>

#include <random>
#include <string>

namespace einhorn::core {
namespace {

using Kind = HttpVerdict::Kind;

Kind Judge(const std::string& received) { return JudgeHttpRequest(received).kind; }

TEST_CASE("http: GET and HEAD /metrics over HTTP/1.0 and 1.1") {
  CHECK(Judge("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n") == Kind::kMetrics);
  CHECK(Judge("GET /metrics HTTP/1.0\r\n\r\n") == Kind::kMetrics);
  CHECK(Judge("GET /metrics?name[]=x HTTP/1.1\r\n\r\n") == Kind::kMetrics);
  CHECK(Judge("GET /metrics HTTP/1.1\n\n") == Kind::kMetrics);  // bare LFs
  const HttpVerdict head = JudgeHttpRequest("HEAD /metrics HTTP/1.1\r\n\r\n");
  CHECK(head.kind == Kind::kMetrics);
  CHECK(head.head_only);
  // A body or a second request after the head is not read.
  CHECK(Judge("GET /metrics HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\n\r\n") == Kind::kMetrics);
}

TEST_CASE("http: a head arrives in pieces") {
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
  for (size_t n = 0; n < request.size(); ++n) {
    CAPTURE(n);
    CHECK(Judge(request.substr(0, n)) == Kind::kIncomplete);
  }
  CHECK(Judge(request) == Kind::kMetrics);
}

TEST_CASE("http: other paths, methods and garbage") {
  CHECK(Judge("GET / HTTP/1.1\r\n\r\n") == Kind::kNotFound);
  CHECK(Judge("GET /metricsx HTTP/1.1\r\n\r\n") == Kind::kNotFound);
  CHECK(Judge("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc") == Kind::kBadMethod);
  CHECK(Judge("GET /metrics HTTP/2.0\r\n\r\n") == Kind::kBadRequest);
  CHECK(Judge("GET metrics HTTP/1.1\r\n\r\n") == Kind::kBadRequest);
  CHECK(Judge("GET /met rics HTTP/1.1\r\n\r\n") == Kind::kBadRequest);
  CHECK(Judge("\r\n\r\n") == Kind::kBadRequest);
  CHECK(Judge("hello\n") == Kind::kBadRequest);
  // Refused before the line ends: no valid request line holds a NUL or other control byte.
  CHECK(Judge(std::string("GET /\0", 6)) == Kind::kBadRequest);
  CHECK(Judge("\x16\x03\x01\x02") == Kind::kBadRequest);  // a TLS ClientHello
}

TEST_CASE("http: heads beyond the limit") {
  CHECK(Judge(std::string(kMaxHttpRequestHead + 1, 'G')) == Kind::kTooLarge);
  CHECK(Judge(std::string(kMaxHttpRequestHead, 'G')) == Kind::kIncomplete);
  const std::string line = "GET /metrics HTTP/1.1\r\n";
  const std::string header = "X-Pad: " + std::string(100, 'a') + "\r\n";
  std::string big = line;
  while (big.size() <= kMaxHttpRequestHead) big += header;
  CHECK(Judge(big) == Kind::kTooLarge);
  CHECK(Judge(big + "\r\n") == Kind::kTooLarge);
  CHECK(JudgeHttpRequest("GET /metrics HTTP/1.1\r\n\r\n", 10).kind == Kind::kTooLarge);
}

TEST_CASE("http: random bytes never crash the judge and never ask for the metrics") {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string bytes(rng() % 300, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    CHECK(Judge(bytes) != Kind::kMetrics);
  }
}

TEST_CASE("http: responses close the connection and carry their length") {
  HttpVerdict ok{Kind::kMetrics, false};
  CHECK(HttpResponse(ok, "a 1\n") ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        "Content-Length: 4\r\nConnection: close\r\n\r\na 1\n");
  HttpVerdict head{Kind::kMetrics, true};
  CHECK(HttpResponse(head, "a 1\n") ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        "Content-Length: 4\r\nConnection: close\r\n\r\n");
  CHECK(HttpResponse(HttpVerdict{Kind::kNotFound, false}, "").rfind("HTTP/1.1 404 Not Found\r\n", 0) ==
        0);
  const std::string method = HttpResponse(HttpVerdict{Kind::kBadMethod, false}, "");
  CHECK(method.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0) == 0);
  CHECK(method.find("\r\nAllow: GET, HEAD\r\n") != std::string::npos);
  CHECK(HttpResponse(HttpVerdict{Kind::kTooLarge, false}, "").rfind("HTTP/1.1 431 ", 0) == 0);
  CHECK(HttpResponse(HttpVerdict{Kind::kBadRequest, false}, "").rfind("HTTP/1.1 400 ", 0) == 0);
}

TEST_CASE("http: the probes /livez and /readyz") {
  CHECK(Judge("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n") == Kind::kLive);
  CHECK(Judge("GET /readyz HTTP/1.0\r\n\r\n") == Kind::kReady);
  CHECK(Judge("GET /readyz?verbose HTTP/1.1\r\n\r\n") == Kind::kReady);
  const HttpVerdict head = JudgeHttpRequest("HEAD /livez HTTP/1.1\r\n\r\n");
  CHECK(head.kind == Kind::kLive);
  CHECK(head.head_only);
  CHECK(Judge("GET /livez/ HTTP/1.1\r\n\r\n") == Kind::kNotFound);
  CHECK(Judge("GET /readyzz HTTP/1.1\r\n\r\n") == Kind::kNotFound);
  CHECK(Judge("GET /healthz HTTP/1.1\r\n\r\n") == Kind::kNotFound);
  CHECK(Judge("POST /readyz HTTP/1.1\r\n\r\n") == Kind::kBadMethod);
  CHECK(Judge("DELETE /livez HTTP/1.1\r\n\r\n") == Kind::kBadMethod);

  CHECK(HttpResponse(HttpVerdict{Kind::kLive, false}, "") ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 3\r\nConnection: close\r\n\r\nok\n");
  CHECK(HttpResponse(HttpVerdict{Kind::kLive, true}, "") ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 3\r\nConnection: close\r\n\r\n");
  CHECK(HttpResponse(HttpVerdict{Kind::kReady, false}, "ready 2/2\n") ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 10\r\nConnection: close\r\n\r\nready 2/2\n");
  CHECK(HttpResponse(HttpVerdict{Kind::kNotReady, false}, "not ready: ready 1/2, need 2\n") ==
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 29\r\nConnection: close\r\n\r\nnot ready: ready 1/2, need 2\n");
  CHECK(HttpResponse(HttpVerdict{Kind::kNotReady, true}, "x\n") ==
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 2\r\nConnection: close\r\n\r\n");
}

}  // namespace
}  // namespace einhorn::core
