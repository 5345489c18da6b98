// Yokan's "map" backend: an ordered map in memory.
#include <map>
#include <mutex>

#include "yokan_backend.hpp"

namespace bedrock_engine {

namespace {

class MapBackend : public YokanBackend {
 public:
  void put(std::string_view key, std::string_view value) override {
    std::lock_guard<std::mutex> lock(mutex_);
    map_[std::string(key)] = std::string(value);
  }
  std::optional<std::string> get(std::string_view key) override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = map_.find(std::string(key));
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }
  bool erase(std::string_view key) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return map_.erase(std::string(key)) > 0;
  }
  std::vector<std::string> list(std::string_view prefix, size_t max_keys,
                                size_t max_bytes) override {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> out;
    size_t total = 0;
    for (auto it = map_.lower_bound(std::string(prefix));
         it != map_.end() && it->first.compare(0, prefix.size(), prefix) == 0 &&
         out.size() < max_keys;
         ++it) {
      total += it->first.size() + 4;
      if (total > max_bytes) break;
      out.push_back(it->first);
    }
    return out;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::string> map_;
};

}  // namespace

std::unique_ptr<YokanBackend> make_yokan_map(const json&) {
  return std::make_unique<MapBackend>();
}

}  // namespace bedrock_engine
