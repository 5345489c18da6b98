#include "log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <stdexcept>

namespace bedrock_engine {

namespace {
std::atomic<LogLevel> g_level{LogLevel::info};
std::mutex g_mutex;
const char* level_name(LogLevel l) {
  switch (l) {
    case LogLevel::trace: return "trace";
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
    case LogLevel::critical: return "critical";
    case LogLevel::off: return "off";
  }
  return "?";
}
}  // namespace

void set_log_level(LogLevel level) { g_level.store(level); }
LogLevel log_level() { return g_level.load(); }

LogLevel parse_log_level(const std::string& text) {
  for (int i = 0; i <= static_cast<int>(LogLevel::off); ++i) {
    auto l = static_cast<LogLevel>(i);
    if (text == level_name(l)) return l;
  }
  throw std::invalid_argument("invalid log level \"" + text +
                              "\" (expected trace, debug, info, warning, error, critical, off)");
}

void log(LogLevel level, const std::string& message) {
  if (level < g_level.load() || level == LogLevel::off) return;
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
            1000;
  std::tm tm{};
  localtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fprintf(stderr, "[%s.%03lld] [%s] %s\n", stamp, static_cast<long long>(ms),
               level_name(level), message.c_str());
  std::fflush(stderr);
}

}  // namespace bedrock_engine
