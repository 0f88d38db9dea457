#include "core/http_request.h"

#include <algorithm>

namespace einhorn::core {
namespace {

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!(c >= 'A' && c <= 'Z') && !(c >= 'a' && c <= 'z') && c != '-' && c != '_') return false;
  }
  return true;
}

// "METHOD SP TARGET SP HTTP/1.x"; false if it is not shaped so.
bool SplitRequestLine(std::string_view line, std::string_view* method, std::string_view* target) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const size_t a = line.find(' ');
  if (a == std::string_view::npos) return false;
  const size_t b = line.find(' ', a + 1);
  if (b == std::string_view::npos) return false;
  *method = line.substr(0, a);
  *target = line.substr(a + 1, b - a - 1);
  const std::string_view version = line.substr(b + 1);
  if (!IsToken(*method) || target->empty() || (*target)[0] != '/') return false;
  for (char c : *target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F) return false;
  }
  return version == "HTTP/1.0" || version == "HTTP/1.1";
}

}  // namespace

HttpVerdict JudgeHttpRequest(std::string_view received, size_t max_head) {
  using Kind = HttpVerdict::Kind;
  HttpVerdict v;
  const size_t eol = received.find('\n');
  if (eol == std::string_view::npos) {
    // No request line yet: one that cannot become valid is refused at once.
    for (char c : received) {
      if (static_cast<unsigned char>(c) < 0x20 && c != '\r') return {Kind::kBadRequest, false};
    }
    if (received.size() > max_head) return {Kind::kTooLarge, false};
    return v;
  }
  std::string_view method, target;
  if (!SplitRequestLine(received.substr(0, eol), &method, &target)) {
    return {Kind::kBadRequest, false};
  }
  // The end of the head: an empty line (CRLF or a bare LF).
  const size_t crlf = received.find("\r\n\r\n");
  const size_t lf = received.find("\n\n");
  const size_t end = std::min(crlf == std::string_view::npos ? std::string_view::npos : crlf + 4,
                              lf == std::string_view::npos ? std::string_view::npos : lf + 2);
  if (end == std::string_view::npos || end > max_head) {
    if (received.size() > max_head) return {Kind::kTooLarge, false};
    return v;
  }
  if (method != "GET" && method != "HEAD") return {Kind::kBadMethod, false};
  v.head_only = method == "HEAD";
  const std::string_view path = target.substr(0, target.find('?'));
  if (path == "/metrics") {
    v.kind = Kind::kMetrics;
  } else if (path == "/livez") {
    v.kind = Kind::kLive;
  } else if (path == "/readyz") {
    v.kind = Kind::kReady;
  } else {
    v.kind = Kind::kNotFound;
  }
  return v;
}

std::string HttpResponse(const HttpVerdict& verdict, const std::string& body) {
  using Kind = HttpVerdict::Kind;
  const char* status = "200 OK";
  std::string text = body;
  std::string type = "text/plain; version=0.0.4; charset=utf-8";
  std::string extra;
  switch (verdict.kind) {
    case Kind::kMetrics:
    case Kind::kReady:
      break;
    case Kind::kLive:
      text = "ok\n";
      break;
    case Kind::kNotReady:
      status = "503 Service Unavailable";
      break;
    case Kind::kNotFound:
      status = "404 Not Found";
      text = "Not found: the metrics are at /metrics (probes: /livez, /readyz)\n";
      break;
    case Kind::kBadMethod:
      status = "405 Method Not Allowed";
      text = "Only GET and HEAD\n";
      extra = "Allow: GET, HEAD\r\n";
      break;
    case Kind::kTooLarge:
      status = "431 Request Header Fields Too Large";
      text = "Request head too large\n";
      break;
    case Kind::kIncomplete:
    case Kind::kBadRequest:
      status = "400 Bad Request";
      text = "Bad request\n";
      break;
  }
  if (verdict.kind != Kind::kMetrics) type = "text/plain; charset=utf-8";
  std::string out = "HTTP/1.1 ";
  out += status;
  out += "\r\nContent-Type: " + type + "\r\nContent-Length: " + std::to_string(text.size()) +
         "\r\n" + extra + "Connection: close\r\n\r\n";
  if (!verdict.head_only) out += text;
  return out;
}

}  // namespace einhorn::core
