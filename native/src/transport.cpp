// Addresses and protocols of the transports (transport.hpp), and the client connection
// factory. The transports themselves: transport_sm_* (na+sm), transport_tcp_* (TCP),
// transport_server.cpp (listener + connections + epoll), transport_detail.* (shared helpers).
#include "transport.hpp"

#include <ifaddrs.h>
#include <net/if.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "transport_detail.hpp"
#include "transport_emulated.hpp"
#include "transport_sm_client.hpp"
#include "transport_tcp_client.hpp"

namespace bedrock_engine {

std::string default_ipv4() {
  const std::string found = transport_detail::first_ipv4([](const ifaddrs& i) {
    return !(i.ifa_flags & IFF_LOOPBACK) && (i.ifa_flags & IFF_UP) && (i.ifa_flags & IFF_RUNNING);
  });
  return found.empty() ? "127.0.0.1" : found;
}

TransportKind protocol_kind(const std::string& text) {
  std::string proto = text.substr(0, text.find("://"));
  if (emulated::handles(proto)) return TransportKind::tcp;  // bedrock-deploy rehearse only
  if (proto == "na+sm" || proto == "sm") return TransportKind::sm;
  if (proto == "ofi+tcp" || proto == "tcp" || proto == "ofi+tcp;ofi_rxm" ||
      proto == "ofi+tcp_rxm")
    return TransportKind::tcp;
  static const std::vector<std::string> known = {
      "ofi+verbs", "ofi+shm", "ofi+sockets", "ofi+psm2", "ofi+opx", "ofi+gni", "ofi+cxi",
      "psm+psm", "psm2+psm2", "bmi+tcp", "ucx+tcp", "ucx+rc", "ucx+ud", "ucx+dc", "ucx+all",
      "verbs", "psm2", "cxi", "ofi+verbs;ofi_rxm", "shm"};
  if (std::find(known.begin(), known.end(), proto) != known.end() ||
      proto.rfind("ucx+", 0) == 0 || proto.rfind("ofi+", 0) == 0)
    throw UnsupportedProtocol("Protocol \"" + proto +
                              "\" is not implemented by bedrock-engine (it implements na+sm/sm "
                              "and ofi+tcp/tcp only); use the Spack-built bedrock for this "
                              "fabric");
  throw std::invalid_argument("Unknown protocol \"" + proto +
                              "\" (expected na+sm, sm, ofi+tcp or tcp)");
}

Address parse_address(const std::string& text) {
  if (emulated::handles(text.substr(0, text.find("://")))) return emulated::parse(text);
  Address a;
  size_t sep = text.find("://");
  a.protocol = text.substr(0, sep);
  a.kind = protocol_kind(text);
  std::string rest = sep == std::string::npos ? "" : text.substr(sep + 3);
  if (a.kind == TransportKind::sm) {
    a.sm_id = rest;
    if (!rest.empty()) {
      size_t dash = rest.find('-');
      bool ok = dash != std::string::npos && dash > 0 && dash + 1 < rest.size() &&
                std::all_of(rest.begin(), rest.end(),
                            [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '-'; });
      if (!ok)
        throw std::invalid_argument("Invalid na+sm address \"" + text +
                                    "\" (expected na+sm://<pid>-<id>)");
    }
    return a;
  }
  if (!rest.empty()) {
    size_t colon = rest.rfind(':');
    if (colon == std::string::npos) {
      a.host = rest;
    } else {
      a.host = rest.substr(0, colon);
      std::string port = rest.substr(colon + 1);
      if (port.empty() || port.size() > 5 ||
          !std::all_of(port.begin(), port.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
          std::stoi(port) > 65535)
        throw std::invalid_argument("Invalid port in address \"" + text + "\"");
      a.port = std::stoi(port);
    }
  }
  return a;
}

std::shared_ptr<ClientConnection> ClientConnection::connect(const Address& address) {
  if (emulated::handles(address.protocol)) return emulated::connect(address);
  if (address.kind == TransportKind::sm) {
    if (address.sm_id.empty())
      throw std::invalid_argument("na+sm address needs an id (e.g. na+sm://1234-0)");
    return std::make_shared<transport_detail::SmClientConnection>(address);
  }
  return std::make_shared<transport_detail::TcpClientConnection>(address);
}

}  // namespace bedrock_engine
