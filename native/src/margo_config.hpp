// Margo 0.24's reading of the "margo" section, in small named steps: the mercury section, the
// argobots pools and xstreams (generated names, the implicit __primary__), the progress and
// rpc pools (use_progress_thread / rpc_thread_count expansion), Margo's sanity-check warnings,
// and the effective section bedrock-query reports. Messages are Margo's own (margo-init.c,
// margo-abt-config.c, margo-hg-config.c of mochi-margo 0.24.0).
#pragma once
#include <string>
#include <vector>

#include "config.hpp"

namespace bedrock_engine {

// Key of each effective xstream holding what the config asked for ({"affinity": [..]|null,
// "cpubind": n}); the server places its threads from it, prepare_config removes it.
constexpr const char* kPlacementKey = "__placement__";

// The effective margo section of one engine (throws ConfigError with Margo's message; its
// error_lines() are what Margo logs). Xstreams carry cpubind/affinity as Argobots would place
// them in this process (placement.hpp); the server replaces them with what its threads got.
json prepare_margo(const json& margo_in, std::vector<std::string>* warnings);

// Mercury's real eager sizes for a transport (what it reports, whatever was requested).
void apply_transport_eager_sizes(json& mercury, bool tcp);

}  // namespace bedrock_engine
