// Wire format shared by the na+sm and TCP transports: a fixed 40-byte header + payload.
// Payload fields are encoded with Writer/Reader (little-endian integers, u32-length-prefixed
// byte strings). Every read is bounds-checked; a malformed frame closes its connection.
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace bedrock_engine {

constexpr uint32_t kFrameMagic = 0x314b5242;   // "BRK1"
constexpr uint32_t kMaxPayload = 1u << 20;      // 1 MiB per frame payload

enum class FrameKind : uint16_t { request = 1, response = 2 };

struct FrameHeader {
  uint32_t magic;
  uint32_t length;       // payload bytes following the header
  uint64_t request_id;
  uint16_t kind;         // FrameKind
  uint16_t provider_id;
  uint32_t rpc_id;
  int32_t status;        // responses: 0 = success, else payload is an error message
  uint32_t exec_tid;     // responses: OS thread id that executed the handler
  int32_t exec_cpu;      // responses: CPU the handler ran on (sched_getcpu)
  uint32_t reserved;
};
static_assert(sizeof(FrameHeader) == 40, "FrameHeader must be 40 bytes");

struct Frame {
  FrameHeader header{};
  std::string payload;
};

// Validates a header received from a peer. Returns an empty string if valid, else the reason.
inline std::string check_header(const FrameHeader& h) {
  if (h.magic != kFrameMagic) return "bad magic";
  if (h.length > kMaxPayload) return "payload too large";
  if (h.kind != static_cast<uint16_t>(FrameKind::request) &&
      h.kind != static_cast<uint16_t>(FrameKind::response))
    return "bad frame kind";
  return {};
}

// RPC identifiers.
enum RpcId : uint32_t {
  rpc_ping = 1,
  rpc_query = 2,
  rpc_shutdown = 3,
  rpc_forward_ping = 4,  // handler pings another address (nested RPC from inside a handler)
  rpc_flock_get_view = 20,
  rpc_flock_join = 21,
  rpc_yokan_put = 30,
  rpc_yokan_get = 31,
  rpc_yokan_erase = 32,
  rpc_yokan_list = 33,
  rpc_abtio_pwrite = 40,
  rpc_abtio_pread = 41,
  rpc_warabi_create = 50,  // memory target: u64 size -> u64 region id
  rpc_warabi_write = 51,   // region, offset, bytes
  rpc_warabi_read = 52,    // region, offset, size -> bytes
  rpc_warabi_erase = 53,   // region
};

enum RpcStatus : int32_t {
  status_ok = 0,
  status_error = 1,
  status_no_provider = 2,
  status_no_rpc = 3,
  status_not_found = 4,
  status_bad_request = 5,
};

struct DecodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Writer {
 public:
  void u32(uint32_t v) { raw(&v, sizeof v); }
  void u64(uint64_t v) { raw(&v, sizeof v); }
  void bytes(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    out_.append(s.data(), s.size());
  }
  std::string take() { return std::move(out_); }

 private:
  void raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  uint32_t u32() {
    uint32_t v;
    raw(&v, sizeof v);
    return v;
  }
  uint64_t u64() {
    uint64_t v;
    raw(&v, sizeof v);
    return v;
  }
  std::string_view bytes() {
    uint32_t n = u32();
    if (n > in_.size() - pos_) throw DecodeError("truncated field");
    auto s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  void expect_end() const {
    if (pos_ != in_.size()) throw DecodeError("trailing bytes in payload");
  }

 private:
  void raw(void* p, size_t n) {
    if (n > in_.size() - pos_) throw DecodeError("truncated payload");
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
  }
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace bedrock_engine
