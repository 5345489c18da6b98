// Minimal leveled logger printing Bedrock-style lines: "[2026-11-21 19:15:02.264] [info] ...".
#pragma once
#include <string>

namespace bedrock_engine {

enum class LogLevel { trace = 0, debug, info, warning, error, critical, off };

void set_log_level(LogLevel level);
LogLevel log_level();
// Parses "trace|debug|info|warning|error|critical|off"; throws std::invalid_argument otherwise.
LogLevel parse_log_level(const std::string& text);
void log(LogLevel level, const std::string& message);

}  // namespace bedrock_engine
