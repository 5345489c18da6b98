// TransportLimits from the environment (BEDROCK_ENGINE_*), validated; see native/README.md.
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>

#include "transport.hpp"

namespace bedrock_engine {

namespace {

// An unsigned decimal in [lo, hi], or the fallback when the variable is unset or empty.
unsigned long long env_number(const char* name, unsigned long long fallback,
                              unsigned long long lo, unsigned long long hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  std::string text(v);
  bool digits = text.find_first_not_of("0123456789") == std::string::npos && text.size() <= 19;
  unsigned long long x = digits ? std::strtoull(text.c_str(), nullptr, 10) : 0;
  if (!digits || x < lo || x > hi)
    throw std::invalid_argument(std::string(name) + "=\"" + text + "\": expected an integer from " +
                                std::to_string(lo) + " to " + std::to_string(hi));
  return x;
}

}  // namespace

TransportLimits TransportLimits::from_environment() {
  TransportLimits l;
  l.max_connections = static_cast<size_t>(
      env_number("BEDROCK_ENGINE_MAX_CONNECTIONS", l.max_connections, 1, 1u << 20));
  l.max_inflight = static_cast<uint32_t>(
      env_number("BEDROCK_ENGINE_MAX_INFLIGHT", l.max_inflight, 1, 1u << 16));
  l.max_queued_bytes = static_cast<size_t>(
      env_number("BEDROCK_ENGINE_MAX_QUEUED_BYTES", l.max_queued_bytes, 4096, 1ull << 34));
  l.accept_backoff_ms = static_cast<int>(
      env_number("BEDROCK_ENGINE_ACCEPT_BACKOFF_MS", static_cast<unsigned>(l.accept_backoff_ms),
                 1, 60000));
  if (const char* v = std::getenv("BEDROCK_ENGINE_SM_ALLOWED_UIDS"); v && *v) {
    std::string text(v);
    if (text == "*") {
      l.sm_allow_any_uid = true;
    } else {
      size_t pos = 0;
      while (pos <= text.size()) {
        size_t comma = text.find(',', pos);
        std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos
                                                                        : comma - pos);
        bool ok = !item.empty() && item.size() <= 10 &&
                  item.find_first_not_of("0123456789") == std::string::npos &&
                  std::strtoull(item.c_str(), nullptr, 10) <=
                      std::numeric_limits<unsigned>::max();
        if (!ok)
          throw std::invalid_argument("BEDROCK_ENGINE_SM_ALLOWED_UIDS=\"" + text +
                                      "\": expected \"*\" or comma-separated numeric uids");
        l.sm_allowed_uids.push_back(static_cast<unsigned>(std::strtoull(item.c_str(), nullptr, 10)));
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
    }
  }
  return l;
}

}  // namespace bedrock_engine
