#include "master/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "core/log_line.h"

namespace einhorn::master {
namespace {

constexpr const char* kPattern = "%Y-%m-%dT%H:%M:%S.%e einhorn-cpp[%P] %l: %v";

// The event of the line being logged (LogEvent), for the json formatter. The master logs from
// one thread only.
const core::Event* current_event = nullptr;

core::LogLevel FromSpdlog(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return core::LogLevel::kDebug;
    case spdlog::level::info:
      return core::LogLevel::kInfo;
    case spdlog::level::warn:
      return core::LogLevel::kWarn;
    case spdlog::level::err:
    case spdlog::level::critical:
    case spdlog::level::off:
    case spdlog::level::n_levels:
      return core::LogLevel::kError;
  }
  return core::LogLevel::kInfo;
}

}  // namespace

bool StderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  struct stat st {};
  if (stream == nullptr || fstat(STDERR_FILENO, &st) != 0) return false;
  return core::JournalStreamMatches(stream, static_cast<std::uint64_t>(st.st_dev),
                                    static_cast<std::uint64_t>(st.st_ino));
}

namespace {

class LineFormatter final : public spdlog::formatter {
 public:
  LineFormatter(core::LogFormat format, bool journal)
      : format_(format),
        journal_(journal),
        text_(std::make_unique<spdlog::pattern_formatter>(kPattern)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const core::LogLevel level = FromSpdlog(msg.level);
    if (format_ == core::LogFormat::kJson) {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          msg.time.time_since_epoch())
                          .count();
      std::string line = core::JsonLogLine(
          ns, level, std::string_view(msg.payload.data(), msg.payload.size()), current_event);
      line += '\n';
      dest.append(line.data(), line.data() + line.size());
      return;
    }
    if (journal_) {
      const char* prefix = core::JournalPrefix(level);
      dest.append(prefix, prefix + std::strlen(prefix));
    }
    text_->format(msg, dest);
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<LineFormatter>(format_, journal_);
  }

 private:
  core::LogFormat format_;
  bool journal_;
  std::unique_ptr<spdlog::formatter> text_;
};

}  // namespace

void SetUpLogging(int verbosity) {
  auto logger = spdlog::stderr_logger_st("einhorn-cpp");
  logger->set_pattern(kPattern);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  SetLogLevel(verbosity);
}

void SetLogFormat(core::LogFormat format) {
  const bool journal = StderrIsJournal();
  if (format == core::LogFormat::kText && !journal) return;  // the plain pattern
  spdlog::default_logger()->set_formatter(std::make_unique<LineFormatter>(format, journal));
}

void LogEvent(core::LogLevel level, const std::string& message, const core::Event& event) {
  current_event = &event;
  spdlog::log(ToSpdlog(level), "{}", message);
  current_event = nullptr;
}

void SetLogLevel(int verbosity) {
  spdlog::set_level(verbosity <= 0   ? spdlog::level::debug
                    : verbosity == 1 ? spdlog::level::info
                                     : spdlog::level::err);
}

spdlog::level::level_enum ToSpdlog(core::LogLevel level) {
  switch (level) {
    case core::LogLevel::kDebug:
      return spdlog::level::debug;
    case core::LogLevel::kInfo:
      return spdlog::level::info;
    case core::LogLevel::kWarn:
      return spdlog::level::warn;
    case core::LogLevel::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

}  // namespace einhorn::master
