// Emulated fabrics over TCP for `bedrock-deploy rehearse`; see transport_emulated.hpp.
//
// CXI authorization, as libfabric's CXI provider does it (ofiwg/libfabric@7943a1b
// prov/cxi/src/cxip_info.c, cxip_gen_auth_key_ss_env): the VNI comes from SLINGSHOT_VNIS
// ("Index/token zero is the per job-step VNI"), the service id from SLINGSHOT_SVC_IDS at the
// index of the device in SLINGSHOT_DEVICES; without SLINGSHOT_VNIS the provider falls back to a
// CXI service usable by the user, which the machines we rehearse keep disabled for jobs
// (mochi-doc docs/source/misc/06_cxi.rst: launch every process with srun --network
// job_vni,single_node_vni or mpiexec --single-node-vni). Margo >= 0.21 uses the second VNI
// (the job-level one) when SLINGSHOT_VNIS lists two or more (mochi-hpc/mochi-margo#305), so
// that processes of different launches of one job reach each other.
#include "transport_emulated.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

namespace bedrock_engine::emulated {

namespace {

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, sep)) out.push_back(item);
  return out;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// "ofi+cxi" -> "cxi", "ofi+verbs;ofi_rxm" -> "verbs", "psm2+psm2" -> "psm2".
std::string fabric_of(std::string protocol) {
  if (protocol.rfind("ofi+", 0) == 0) protocol = protocol.substr(4);
  size_t semi = protocol.find(';');
  if (semi != std::string::npos) protocol = protocol.substr(0, semi);
  size_t plus = protocol.find('+');
  if (plus != std::string::npos) protocol = protocol.substr(0, plus);
  return protocol;
}

bool is_cxi(const std::string& protocol) { return fabric_of(protocol) == "cxi"; }

constexpr const char* kFix =
    "Only processes the launcher starts get the job's VNI: start this one through it, "
    "with 'mpiexec --single-node-vni' (PBS Pro + PALS, and PALS_LOCAL_LAUNCH=0 for the local "
    "node) or 'srun --network=job_vni,single_node_vni' (Slurm)";

struct CxiAuth {
  int vni = -1;
  int svc_id = -1;
  std::string device;
};

int parse_number(const std::string& text, const char* variable) {
  if (text.empty() || text.size() > 9 ||
      text.find_first_not_of("0123456789") != std::string::npos)
    throw std::runtime_error(std::string("cxi: ") + variable + " holds \"" + text +
                             "\", not a list of numbers");
  return std::stoi(text);
}

// The authorization key this process may open a CXI endpoint with, or an error naming why not.
CxiAuth cxi_auth() {
  std::string vnis = env("SLINGSHOT_VNIS");
  if (vnis.empty())
    throw std::runtime_error(
        "cxi: cannot open an endpoint: SLINGSHOT_VNIS is not set, so this process received no "
        "VNI from the launcher (libfabric's CXI provider takes its authorization key from "
        "SLINGSHOT_VNIS, SLINGSHOT_DEVICES and SLINGSHOT_SVC_IDS; the default CXI service is "
        "not open to jobs). " + std::string(kFix) + " [emulated by bedrock-deploy rehearse]");
  std::vector<std::string> list = split(vnis, ',');
  CxiAuth a;
  // Margo >= 0.21: the job-level VNI (second entry) when there are two or more.
  a.vni = parse_number(list.size() >= 2 ? list[1] : list[0], "SLINGSHOT_VNIS");
  std::vector<std::string> devices = split(env("SLINGSHOT_DEVICES"), ',');
  if (devices.empty() || devices[0].empty())
    throw std::runtime_error(
        "cxi: cannot open an endpoint: SLINGSHOT_VNIS is set but SLINGSHOT_DEVICES names no "
        "CXI device (libfabric: \"Failed to find cxi0 in SLINGSHOT_DEVICES\"). " +
        std::string(kFix) + " [emulated by bedrock-deploy rehearse]");
  a.device = devices[0];
  std::vector<std::string> svc = split(env("SLINGSHOT_SVC_IDS"), ',');
  if (svc.empty() || svc[0].empty())
    throw std::runtime_error(
        "cxi: cannot open an endpoint on " + a.device + ": SLINGSHOT_SVC_IDS has no service "
        "id for it (libfabric: \"Failed to find service ID in SLINGSHOT_SVC_IDS\"). " +
        std::string(kFix) + " [emulated by bedrock-deploy rehearse]");
  a.svc_id = parse_number(svc[0], "SLINGSHOT_SVC_IDS");
  return a;
}

std::string iface_ipv4(const std::string& iface) {
  ifaddrs* ifa = nullptr;
  if (getifaddrs(&ifa) != 0) return {};
  std::string out;
  for (ifaddrs* i = ifa; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || iface != i->ifa_name) continue;
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
    out = buf;
    break;
  }
  freeifaddrs(ifa);
  return out;
}

// The TCP engine underneath, seen as an endpoint of the emulated fabric.
class EmulatedServer : public TransportServer {
 public:
  EmulatedServer(std::unique_ptr<TransportServer> tcp, std::string protocol, int vni)
      : tcp_(std::move(tcp)) {
    std::string inner = tcp_->address();  // "ofi+tcp://ip:port"
    address_ = protocol + inner.substr(inner.find("://"));
    if (vni >= 0) address_ += "?vni=" + std::to_string(vni);
  }
  std::string address() const override { return address_; }
  int progress(int timeout_ms, int wake_fd) override { return tcp_->progress(timeout_ms, wake_fd); }
  int poll_fast() override { return tcp_->poll_fast(); }
  size_t connection_count() const override { return tcp_->connection_count(); }

 private:
  std::unique_ptr<TransportServer> tcp_;
  std::string address_;
};

}  // namespace

bool handles(const std::string& protocol) {
  std::string enabled = env("BEDROCK_ENGINE_EMULATED_FABRICS");
  if (enabled.empty()) return false;
  std::string fabric = fabric_of(protocol.substr(0, protocol.find("://")));
  for (const auto& f : split(enabled, ','))
    if (f == fabric && f != "tcp" && f != "sm") return true;
  return false;
}

Address parse(const std::string& text) {
  size_t sep = text.find("://");
  Address a;
  a.kind = TransportKind::tcp;
  a.protocol = text.substr(0, sep);
  if (sep == std::string::npos) return a;
  std::string rest = text.substr(sep + 3);
  size_t query = rest.find('?');
  if (query != std::string::npos) {
    std::string q = rest.substr(query + 1);
    rest = rest.substr(0, query);
    if (q.rfind("vni=", 0) != 0 || q.size() == 4 ||
        q.find_first_not_of("0123456789", 4) != std::string::npos || q.size() > 13)
      throw std::invalid_argument("Invalid emulated address \"" + text +
                                  "\" (expected <protocol>://<ip>:<port>[?vni=<n>])");
    a.vni = std::stoi(q.substr(4));
  }
  if (rest.empty()) return a;
  size_t colon = rest.rfind(':');
  std::string port = colon == std::string::npos ? "" : rest.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) > 65535)
    throw std::invalid_argument("Invalid emulated address \"" + text +
                                "\" (expected <protocol>://<ip>:<port>[?vni=<n>])");
  a.host = rest.substr(0, colon);
  a.port = std::stoi(port);
  return a;
}

std::unique_ptr<TransportServer> create_server(const std::string& address_spec,
                                               FrameHandler on_frame, TransportLimits limits) {
  std::string protocol = address_spec.substr(0, address_spec.find("://"));
  int vni = -1;
  if (is_cxi(protocol)) vni = cxi_auth().vni;
  std::string iface = env("BEDROCK_ENGINE_EMULATED_IFACE");
  std::string ip = iface.empty() ? std::string("127.0.0.1") : iface_ipv4(iface);
  if (ip.empty())
    throw std::runtime_error(fabric_of(protocol) + " (emulated): BEDROCK_ENGINE_EMULATED_IFACE=" +
                             iface + " names no interface with an IPv4 address on this node");
  auto tcp = TransportServer::create("ofi+tcp://" + ip + ":0", std::move(on_frame),
                                     std::move(limits));
  return std::make_unique<EmulatedServer>(std::move(tcp), protocol, vni);
}

std::shared_ptr<ClientConnection> connect(const Address& address) {
  if (is_cxi(address.protocol)) {
    CxiAuth own = cxi_auth();
    if (address.vni < 0)
      throw std::runtime_error("cxi: the address " + address.host + ":" +
                               std::to_string(address.port) + " carries no VNI");
    if (address.vni != own.vni)
      throw std::runtime_error(
          "cxi: cannot reach the endpoint at " + address.host + ":" +
          std::to_string(address.port) + " on VNI " + std::to_string(address.vni) +
          " from VNI " + std::to_string(own.vni) + ": a VNI isolates traffic, endpoints reach "
          "each other only on the same VNI (on the real machine the request times out). Both "
          "sides must use the job-level VNI: start every process with 'srun --network="
          "job_vni,single_node_vni' or 'mpiexec --single-node-vni' inside one job "
          "[emulated by bedrock-deploy rehearse]");
  }
  Address tcp = address;
  tcp.protocol = "ofi+tcp";
  tcp.kind = TransportKind::tcp;
  tcp.vni = -1;
  return ClientConnection::connect(tcp);
}

}  // namespace bedrock_engine::emulated
