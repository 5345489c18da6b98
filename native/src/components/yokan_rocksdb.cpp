// Yokan's "rocksdb" backend on the system librocksdb (Debian: librocksdb-dev), with the
// options of https://github.com/mochi-hpc/mochi-yokan/blob/
// 9b7c08b74f7dfe9c30b3b318e73e84ca2bda6772/src/backends/rocksdb.cpp that change behaviour here
// (path, create_if_missing, error_if_exists, paranoid_checks, write_buffer_size,
// max_open_files, use_fsync); the others are reported with Yokan's defaults.
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <memory>

#include "log.hpp"
#include "yokan_backend.hpp"

namespace bedrock_engine {

namespace {

class RocksDbBackend : public YokanBackend {
 public:
  explicit RocksDbBackend(rocksdb::DB* db) : db_(db) {}
  void put(std::string_view key, std::string_view value) override {
    check(db_->Put(rocksdb::WriteOptions(), rocksdb::Slice(key.data(), key.size()),
                   rocksdb::Slice(value.data(), value.size())));
  }
  std::optional<std::string> get(std::string_view key) override {
    std::string value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return std::nullopt;
    check(s);
    return value;
  }
  bool erase(std::string_view key) override {
    if (!get(key)) return false;
    check(db_->Delete(rocksdb::WriteOptions(), rocksdb::Slice(key.data(), key.size())));
    return true;
  }
  std::vector<std::string> list(std::string_view prefix, size_t max_keys,
                                size_t max_bytes) override {
    std::vector<std::string> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    size_t total = 0;
    for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size()));
         it->Valid() && it->key().starts_with(rocksdb::Slice(prefix.data(), prefix.size())) &&
         out.size() < max_keys;
         it->Next()) {
      total += it->key().size() + 4;
      if (total > max_bytes) break;
      out.push_back(it->key().ToString());
    }
    check(it->status());
    return out;
  }

 private:
  static void check(const rocksdb::Status& s) {
    if (!s.ok()) throw std::runtime_error("rocksdb: " + s.ToString());
  }
  std::unique_ptr<rocksdb::DB> db_;
};

[[noreturn]] void invalid(const std::string& why) {
  log(LogLevel::error, "[yokan] create: " + why);
  throw ComponentError("Invalid configuration");
}

}  // namespace

std::unique_ptr<YokanBackend> make_yokan_rocksdb(const json& cfg) {
  if (!cfg.is_object() || !cfg.contains("path"))
    invalid("path field not found in database configuration");
  if (!cfg["path"].is_string()) invalid("path field should be a string");
  rocksdb::Options options;
  auto flag = [&](const char* key, bool dflt) {
    if (!cfg.contains(key)) return dflt;
    if (!cfg[key].is_boolean())
      invalid(std::string("Exception when handling field ") + key + " in database configuration");
    return cfg[key].get<bool>();
  };
  auto number = [&](const char* key, long long dflt) {
    if (!cfg.contains(key)) return dflt;
    if (!cfg[key].is_number_integer())
      invalid(std::string("Exception when handling field ") + key + " in database configuration");
    return cfg[key].get<long long>();
  };
  options.create_if_missing = flag("create_if_missing", true);
  options.create_missing_column_families = flag("create_missing_column_families", true);
  options.error_if_exists = flag("error_if_exists", false);
  options.paranoid_checks = flag("paranoid_checks", false);
  options.use_fsync = flag("use_fsync", false);
  options.write_buffer_size = static_cast<size_t>(number("write_buffer_size", 64 << 20));
  options.max_open_files = static_cast<int>(number("max_open_files", 1000));
  rocksdb::DB* db = nullptr;
  rocksdb::Status status = rocksdb::DB::Open(options, cfg["path"].get<std::string>(), &db);
  if (!status.ok()) {
    log(LogLevel::error, std::string("[yokan] create:312: Could not open RocksDB database: ") +
                             (status.getState() ? status.getState() : status.ToString().c_str()));
    throw ComponentError("Invalid configuration");
  }
  return std::make_unique<RocksDbBackend>(db);
}

}  // namespace bedrock_engine
