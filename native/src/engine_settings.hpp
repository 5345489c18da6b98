// The optional top-level "bedrock_engine" section: settings only this engine reads (the real
// Bedrock ignores unknown top-level sections, so a config keeps running there). Each limit is
// documented in native/README.md.
//
//   "bedrock_engine": {
//     "test_rpcs": ["forward_ping", "abt_io"],   // off unless listed
//     "abt_io_directory": "/scratch/dir",        // abt_io's file RPCs stay beneath it
//     "flock_max_members": 1024                  // flock join refuses a larger group
//   }
#pragma once
#include <cstddef>
#include <string>

#include "config.hpp"

namespace bedrock_engine {

struct EngineSettings {
  bool forward_ping = false;       // the test RPC that makes a handler call another address
  bool abt_io_files = false;       // abt_io's pwrite/pread RPCs (real abt_io has none)
  std::string abt_io_directory;    // absolute; required with abt_io_files
  size_t flock_max_members = 1024;

  json to_json() const;
};

// Reads the section (null/absent: the defaults); throws ConfigError naming the key.
EngineSettings read_engine_settings(const json& section);

}  // namespace bedrock_engine
