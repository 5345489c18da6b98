// Emulated fabrics for `bedrock-deploy rehearse` (docs/rehearse.md): the HPC fabrics this engine
// does not implement (Slingshot CXI, InfiniBand verbs, Omni-Path PSM2) carried over TCP between
// the nodes of the test cluster, enabled only when the rehearsal's environment asks for them:
//
//   BEDROCK_ENGINE_EMULATED_FABRICS=cxi,verbs,psm2   fabrics to emulate (anything else: unset)
//   BEDROCK_ENGINE_EMULATED_IFACE=bdc0               the interface that carries them
//
// Addresses: "<protocol>://<ipv4>:<port>", for CXI "<protocol>://<ipv4>:<port>?vni=<VNI>".
// CXI keeps the rule of libfabric's CXI provider that matters to a job script: an endpoint is
// opened only with an authorization key (VNI, service id, device) from the launcher's
// SLINGSHOT_VNIS / SLINGSHOT_SVC_IDS / SLINGSHOT_DEVICES, and endpoints reach each other only
// on the same VNI. Without them the process gets an error naming the cause and the fix.
#pragma once
#include <memory>
#include <string>

#include "transport.hpp"

namespace bedrock_engine::emulated {

// Is `protocol` ("cxi", "ofi+cxi", "verbs", "ofi+psm2", ...) a fabric emulated in this process?
bool handles(const std::string& protocol);

// "<protocol>://<ip>:<port>[?vni=N]" -> Address (kind tcp). Throws std::invalid_argument.
Address parse(const std::string& text);

// A listening endpoint of the emulated fabric (address_spec: "cxi", "cxi://", ...).
// Throws std::runtime_error when the fabric refuses to open one (CXI without a VNI).
std::unique_ptr<TransportServer> create_server(const std::string& address_spec,
                                               FrameHandler on_frame, TransportLimits limits);

// A connection from this process's own endpoint to `address`. Throws std::runtime_error when
// this process may not open an endpoint or cannot reach that one (another VNI).
std::shared_ptr<ClientConnection> connect(const Address& address);

}  // namespace bedrock_engine::emulated
