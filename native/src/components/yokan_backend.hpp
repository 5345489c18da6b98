// A Yokan database backend of the embedded engine ("database.type" of a yokan provider):
// map (in memory) and rocksdb (the system librocksdb). Keys and values are bytes.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "component.hpp"

namespace bedrock_engine {

class YokanBackend {
 public:
  virtual ~YokanBackend() = default;
  virtual void put(std::string_view key, std::string_view value) = 0;
  virtual std::optional<std::string> get(std::string_view key) = 0;
  virtual bool erase(std::string_view key) = 0;
  // Keys starting with prefix, in order, at most max_keys of them and at most max_bytes of
  // key bytes in total.
  virtual std::vector<std::string> list(std::string_view prefix, size_t max_keys,
                                        size_t max_bytes) = 0;
};

// config: the database's "config" object. Throw ComponentError (after logging Yokan's line).
std::unique_ptr<YokanBackend> make_yokan_map(const json& config);
std::unique_ptr<YokanBackend> make_yokan_rocksdb(const json& config);

}  // namespace bedrock_engine
