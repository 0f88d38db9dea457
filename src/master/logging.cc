#include "master/logging.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace einhorn::master {

void SetUpLogging(int verbosity) {
  auto logger = spdlog::stderr_logger_st("einhorn-cpp");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e einhorn-cpp[%P] %l: %v");
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  SetLogLevel(verbosity);
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
