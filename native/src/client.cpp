#include "client.hpp"

#include <fstream>
#include <sstream>

namespace bedrock_engine {

Client::Client(const std::string& protocol) : kind_(protocol_kind(protocol)) {}

std::shared_ptr<ClientConnection> Client::connection(const std::string& address) {
  std::lock_guard<std::mutex> lock(mutex_);
  // A known address was parsed and checked when its connection was made: nothing to redo on
  // every call of a round trip measured in tenths of a microsecond.
  auto it = conns_.find(address);
  if (it != conns_.end() && !it->second->broken()) return it->second;
  Address a = parse_address(address);
  if (a.kind != kind_)
    throw std::invalid_argument("Address \"" + address +
                                "\" does not match the client's protocol");
  auto c = ClientConnection::connect(a);
  conns_[address] = c;
  return c;
}

Response Client::call(const std::string& address, uint16_t provider_id, uint32_t rpc_id,
                      std::string_view payload) {
  if (payload.size() > kMaxPayload)
    throw std::invalid_argument("payload too large (" + std::to_string(payload.size()) +
                                " bytes, limit " + std::to_string(kMaxPayload) + ")");
  FrameHeader h{};
  h.magic = kFrameMagic;
  h.length = static_cast<uint32_t>(payload.size());
  h.kind = static_cast<uint16_t>(FrameKind::request);
  h.provider_id = provider_id;
  h.rpc_id = rpc_id;
  auto conn = connection(address);
  Frame f = conn->call(h, payload, options);
  Response r;
  r.status = f.header.status;
  r.payload = std::move(f.payload);
  r.exec_tid = static_cast<int>(f.header.exec_tid);
  r.exec_cpu = f.header.exec_cpu;
  if (r.status != status_ok) throw RpcError(r.status, r.payload);
  last.status = r.status;  // who ran it, not a copy of the payload
  last.exec_tid = r.exec_tid;
  last.exec_cpu = r.exec_cpu;
  return r;
}

Response Client::ping(const std::string& address, uint16_t provider_id) {
  return call(address, provider_id, rpc_ping, {});
}

std::pair<int, int> Client::forward_ping(const std::string& address, const std::string& target) {
  Writer w;
  w.bytes(target);
  Response r = call(address, 0, rpc_forward_ping, w.take());
  Reader rd(r.payload);
  int inner = static_cast<int>(rd.u32());
  int outer = static_cast<int>(rd.u32());
  return {inner, outer};
}

json Client::query(const std::string& address, uint16_t provider_id) {
  return json::parse(call(address, provider_id, rpc_query, {}).payload);
}

void Client::shutdown(const std::string& address, uint16_t provider_id) {
  call(address, provider_id, rpc_shutdown, {});
  std::lock_guard<std::mutex> lock(mutex_);
  conns_.erase(address);
}

void Client::put(const std::string& address, uint16_t provider_id, std::string_view key,
                 std::string_view value) {
  Writer w;
  w.bytes(key);
  w.bytes(value);
  call(address, provider_id, rpc_yokan_put, w.take());
}

std::optional<std::string> Client::get(const std::string& address, uint16_t provider_id,
                                       std::string_view key) {
  Writer w;
  w.bytes(key);
  try {
    return call(address, provider_id, rpc_yokan_get, w.take()).payload;
  } catch (const RpcError& e) {
    if (e.status == status_not_found) return std::nullopt;
    throw;
  }
}

bool Client::erase(const std::string& address, uint16_t provider_id, std::string_view key) {
  Writer w;
  w.bytes(key);
  try {
    call(address, provider_id, rpc_yokan_erase, w.take());
    return true;
  } catch (const RpcError& e) {
    if (e.status == status_not_found) return false;
    throw;
  }
}

std::vector<std::string> Client::list(const std::string& address, uint16_t provider_id,
                                      std::string_view prefix, uint32_t max_keys) {
  Writer w;
  w.bytes(prefix);
  w.u32(max_keys);
  Response r = call(address, provider_id, rpc_yokan_list, w.take());
  Reader rd(r.payload);
  uint32_t n = rd.u32();
  std::vector<std::string> keys;
  for (uint32_t i = 0; i < n; ++i) keys.emplace_back(rd.bytes());
  return keys;
}

json Client::flock_view(const std::string& address, uint16_t provider_id) {
  return json::parse(call(address, provider_id, rpc_flock_get_view, {}).payload);
}

uint64_t Client::abtio_pwrite(const std::string& address, uint16_t provider_id,
                              const std::string& path, uint64_t offset, std::string_view data) {
  Writer w;
  w.bytes(path);
  w.u64(offset);
  w.bytes(data);
  Response r = call(address, provider_id, rpc_abtio_pwrite, w.take());
  Reader rd(r.payload);
  return rd.u64();
}

std::string Client::abtio_pread(const std::string& address, uint16_t provider_id,
                                const std::string& path, uint64_t offset, uint64_t size) {
  Writer w;
  w.bytes(path);
  w.u64(offset);
  w.u64(size);
  return call(address, provider_id, rpc_abtio_pread, w.take()).payload;
}

void Client::send_raw(const std::string& address, std::string_view bytes) {
  connection(address)->send_raw(bytes);
}

std::vector<std::string> read_group_file_addresses(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("Could not open group file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::parse_error& e) {
    throw std::runtime_error("Group file " + path + " is not valid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("members") || !j["members"].is_array())
    throw std::runtime_error("Group file " + path + " has no \"members\" array");
  std::vector<std::string> out;
  for (const auto& m : j["members"]) {
    if (!m.is_object() || !m.contains("address") || !m["address"].is_string())
      throw std::runtime_error("Group file " + path + ": member without an \"address\" string");
    out.push_back(m["address"]);
  }
  return out;
}

}  // namespace bedrock_engine
