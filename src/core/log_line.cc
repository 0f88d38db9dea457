#include "core/log_line.h"

#include <charconv>

#include "core/json_text.h"

namespace einhorn::core {

const char* JournalPrefix(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "<7>";
    case LogLevel::kInfo:
      return "<6>";
    case LogLevel::kWarn:
      return "<4>";
    case LogLevel::kError:
      return "<3>";
  }
  return "<6>";
}

const char* LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

std::string JsonLogLine(std::int64_t wall_ns, LogLevel level, std::string_view message,
                        const Event* event) {
  std::string out = "{\"time\": ";
  out.reserve(96 + message.size() + (event ? 160 : 0));
  AppendJsonString(out, FormatUtc(wall_ns));
  out += ", \"level\": \"";
  out += LogLevelName(level);
  out += "\", \"message\": ";
  AppendJsonString(out, message);
  if (event != nullptr) {
    out += ", ";
    AppendEventJsonFields(out, *event, /*with_nulls=*/false, /*with_times=*/false);
  }
  out += '}';
  return out;
}

bool JournalStreamMatches(std::string_view value, std::uint64_t dev, std::uint64_t ino) {
  const size_t colon = value.find(':');
  if (colon == std::string_view::npos) return false;
  std::uint64_t want_dev = 0, want_ino = 0;
  const auto a = std::from_chars(value.data(), value.data() + colon, want_dev);
  const auto b = std::from_chars(value.data() + colon + 1, value.data() + value.size(), want_ino);
  if (a.ec != std::errc() || a.ptr != value.data() + colon || colon == 0) return false;
  if (b.ec != std::errc() || b.ptr != value.data() + value.size() || colon + 1 == value.size()) {
    return false;
  }
  return want_dev == dev && want_ino == ino;
}

}  // namespace einhorn::core
