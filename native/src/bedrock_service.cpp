#include "bedrock_service.hpp"

#include "client.hpp"
#include "log.hpp"
#include "runtime.hpp"
#include "wire.hpp"

namespace bedrock_engine {

bool is_bedrock_service_rpc(uint32_t rpc_id) {
  return rpc_id == rpc_query || rpc_id == rpc_shutdown || rpc_id == rpc_ping ||
         rpc_id == rpc_forward_ping;
}

ServiceReply execute_bedrock_service_rpc(uint32_t rpc_id, std::string_view payload,
                                         const std::function<json()>& running_config,
                                         const EngineSettings& settings) {
  ServiceReply reply;
  switch (rpc_id) {
    case rpc_query:
      log(LogLevel::trace, "query of the running configuration");
      reply.payload = running_config().dump();
      break;
    case rpc_shutdown:
      reply.shutdown = true;
      break;
    case rpc_ping:
      break;
    case rpc_forward_ping: {
      if (!settings.forward_ping)
        throw RpcError(status_no_rpc, "forward_ping is a test RPC and is off (enable it with "
                                      "\"bedrock_engine\": {\"test_rpcs\": [\"forward_ping\"]})");
      // Nested RPC made by a handler: while it waits, this xstream keeps running its pools
      // (including, on a single-xstream engine, the progress loop that receives the ping).
      Reader r(payload);
      std::string target(r.bytes());
      r.expect_end();
      Client nested(target);  // own connection: a nested call never contends for a lock
      Response inner = nested.ping(target);
      Writer w;
      w.u32(static_cast<uint32_t>(inner.exec_tid));
      w.u32(static_cast<uint32_t>(current_tid()));
      reply.payload = w.take();
      break;
    }
    default:
      throw RpcError(status_no_rpc, "no Bedrock RPC " + std::to_string(rpc_id));
  }
  return reply;
}

}  // namespace bedrock_engine
