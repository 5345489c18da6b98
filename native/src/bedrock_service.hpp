// The Bedrock service's own RPCs, served at bedrock.provider_id in the handler (rpc) pool like
// Bedrock's get_config (ServerImpl.hpp of mochi-bedrock 0.16.1): query (the running config),
// shutdown, ping (an empty RPC, also accepted by every provider), and forward_ping, a test-only
// RPC (off unless bedrock_engine.test_rpcs lists it) that makes a handler call another address.
#pragma once
#include <functional>
#include <string>
#include <string_view>

#include "config.hpp"
#include "engine_settings.hpp"

namespace bedrock_engine {

struct ServiceReply {
  std::string payload;
  bool shutdown = false;  // finalize once the reply is sent
};

// Is this one of the Bedrock service's RPCs (when addressed to bedrock.provider_id)?
bool is_bedrock_service_rpc(uint32_t rpc_id);

// Executes it. running_config: what query returns. Throws RpcError.
ServiceReply execute_bedrock_service_rpc(uint32_t rpc_id, std::string_view payload,
                                         const std::function<json()>& running_config,
                                         const EngineSettings& settings);

}  // namespace bedrock_engine
