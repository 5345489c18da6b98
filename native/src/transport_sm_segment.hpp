// na+sm shared memory: the segment layout (a header with two ring control blocks, then two
// SPSC byte rings), the Ring each side reads or writes, the mapping, and the socket name the
// server listens on. Shared by the server and client sides of na+sm.
#pragma once
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

#include "transport_detail.hpp"
#include "wire.hpp"

namespace bedrock_engine::transport_detail {

constexpr uint32_t kSegmentMagic = 0x4d534542;  // "BESM"
constexpr uint32_t kSegmentVersion = 2;
constexpr uint64_t kRingCapacity = 4u << 20;

struct alignas(64) RingCtl {
  std::atomic<uint64_t> head;  // written by the writer
  char pad1[56];
  std::atomic<uint64_t> tail;  // written by the reader
  char pad2[56];
  std::atomic<uint32_t> reader_sleeping;
  std::atomic<uint32_t> writer_waiting;  // the writer found the ring full: reader, wake it
  char pad3[56];
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "need lock-free 64-bit atomics");

struct SegmentHeader {
  uint32_t magic;
  uint32_t version;
  uint64_t capacity;
  char pad[48];
  RingCtl to_server;
  RingCtl to_client;
};
constexpr size_t kDataOffset = 4096;
static_assert(sizeof(SegmentHeader) <= kDataOffset, "segment header too large");
constexpr size_t kSegmentSize = kDataOffset + 2 * kRingCapacity;

// One direction of a connection. Positions are kept privately; the shared copies are only
// published for the peer, and everything read from shared memory is validated.
//
// A writer that finds the ring empty starts its frame at the beginning of the next lap (a skip
// record covers the rest of the current one), so request/response traffic keeps using the
// first page of each ring instead of walking through all of its pages: the first touch of a
// shared page costs each process a page fault (8-12 us here, once per ~100 small round trips
// before this), and an idle connection keeps only the pages it used.
class Ring {
 public:
  Ring(RingCtl* ctl, char* data) : ctl_(ctl), data_(data) {}
  enum Result { ok = 0, empty = 1, full = 2, corrupt = 3 };

  Result write(const FrameHeader& h, std::string_view payload) {
    uint64_t need = sizeof(FrameHeader) + payload.size();
    Result r = reserve(need);
    if (r != ok) return r;
    copy_in(head_, &h, sizeof h);
    if (!payload.empty()) copy_in(head_ + sizeof h, payload.data(), payload.size());
    head_ += need;
    ctl_->head.store(head_, std::memory_order_release);
    return ok;
  }
  Result write_raw(std::string_view bytes) {
    Result r = reserve(bytes.size());
    if (r != ok) return r;
    copy_in(head_, bytes.data(), bytes.size());
    head_ += bytes.size();
    ctl_->head.store(head_, std::memory_order_release);
    return ok;
  }
  Result read(Frame& out) {
    uint64_t head = ctl_->head.load(std::memory_order_acquire);
    uint64_t avail = head - tail_;
    if (avail == 0) return empty;
    if (avail > kRingCapacity || avail < sizeof(FrameHeader)) return corrupt;
    FrameHeader h;
    copy_out(tail_, &h, sizeof h);
    if (h.magic == kFrameMagic && h.kind == kSkipKind) {
      // Valid only as written by reserve(): from inside a lap to exactly its end.
      uint64_t to_lap_end = kRingCapacity - tail_ % kRingCapacity;
      if (tail_ % kRingCapacity == 0 || h.length != to_lap_end - sizeof h || avail < to_lap_end)
        return corrupt;
      tail_ += to_lap_end;
      avail -= to_lap_end;
      if (avail == 0) {
        ctl_->tail.store(tail_, std::memory_order_release);
        return empty;
      }
      if (avail < sizeof(FrameHeader)) return corrupt;
      copy_out(tail_, &h, sizeof h);
    }
    if (!check_header(h).empty()) return corrupt;
    if (sizeof(FrameHeader) + h.length > avail) return corrupt;
    out.header = h;
    out.payload.resize(h.length);
    if (h.length) copy_out(tail_ + sizeof h, out.payload.data(), h.length);
    tail_ += sizeof(FrameHeader) + h.length;
    ctl_->tail.store(tail_, std::memory_order_release);
    return ok;
  }
  bool has_data() const { return ctl_->head.load(std::memory_order_acquire) != tail_; }
  void set_sleeping(bool s) { ctl_->reader_sleeping.store(s ? 1 : 0, std::memory_order_seq_cst); }
  bool reader_sleeping() const {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return ctl_->reader_sleeping.load(std::memory_order_seq_cst) != 0;
  }
  // Writer: the ring was full; ask the reader to signal once it made room.
  void set_writer_waiting(bool w) {
    ctl_->writer_waiting.store(w ? 1 : 0, std::memory_order_seq_cst);
  }
  // Reader, after consuming: true (once) if the writer waits for room.
  bool take_writer_waiting() {
    if (ctl_->writer_waiting.load(std::memory_order_relaxed) == 0) return false;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return ctl_->writer_waiting.exchange(0, std::memory_order_seq_cst) != 0;
  }
  // Maps the first page of the ring into this process now rather than on the first message.
  void prefault() const {
    volatile char* p = data_;
    (void)*p;
  }

 private:
  static constexpr uint16_t kSkipKind = 0x5350;  // ring-internal, never on the wire

  // Room for `need` bytes at head_; when the ring is empty, first moves head_ to the start of
  // the next lap behind a skip record (if the frame still fits).
  Result reserve(uint64_t need) {
    uint64_t tail = ctl_->tail.load(std::memory_order_acquire);
    uint64_t used = head_ - tail;
    if (used > kRingCapacity) return corrupt;
    uint64_t off = head_ % kRingCapacity;
    uint64_t to_lap_end = kRingCapacity - off;
    if (used == 0 && off != 0 && to_lap_end >= sizeof(FrameHeader) && need <= off) {
      FrameHeader skip{};
      skip.magic = kFrameMagic;
      skip.kind = kSkipKind;
      skip.length = static_cast<uint32_t>(to_lap_end - sizeof skip);
      copy_in(head_, &skip, sizeof skip);
      head_ += to_lap_end;
      return ok;
    }
    if (kRingCapacity - used < need) return full;
    return ok;
  }
  void copy_in(uint64_t pos, const void* src, size_t n) {
    size_t off = pos % kRingCapacity;
    size_t first = std::min<size_t>(n, kRingCapacity - off);
    std::memcpy(data_ + off, src, first);
    if (n > first) std::memcpy(data_, static_cast<const char*>(src) + first, n - first);
  }
  void copy_out(uint64_t pos, void* dst, size_t n) const {
    size_t off = pos % kRingCapacity;
    size_t first = std::min<size_t>(n, kRingCapacity - off);
    std::memcpy(dst, data_ + off, first);
    if (n > first) std::memcpy(static_cast<char*>(dst) + first, data_, n - first);
  }
  RingCtl* ctl_;
  char* data_;
  uint64_t head_ = 0;  // private (writer side)
  uint64_t tail_ = 0;  // private (reader side)
};

// A shared mapping of a whole segment (unmapped on destruction).
class Mapping {
 public:
  Mapping() = default;
  Mapping(int fd, size_t size) : size_(size) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw_errno("mmap");
    ptr_ = static_cast<char*>(p);
  }
  ~Mapping() {
    if (ptr_) munmap(ptr_, size_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  char* get() const { return ptr_; }

 private:
  char* ptr_ = nullptr;
  size_t size_ = 0;
};

// Client: a memfd of kSegmentSize bytes sealed against shrinking and growing (F_SEAL_SHRINK,
// F_SEAL_GROW, F_SEAL_SEAL), so no process holding it can make the engine's reads fault
// (memfd_create(2), fcntl(2) "File Sealing").
Fd create_sealed_segment();
// Server: the fd the client passed is a sealed memfd of exactly kSegmentSize bytes (tmpfs,
// regular, seals SHRINK and GROW present). Returns "" if so, else why not.
std::string check_segment_fd(int fd);

inline std::string sm_socket_name(const std::string& id) { return "bedrock-engine/na+sm/" + id; }

inline sockaddr_un abstract_addr(const std::string& name, socklen_t& len) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (name.size() + 1 > sizeof(sa.sun_path)) throw std::invalid_argument("socket name too long");
  sa.sun_path[0] = '\0';
  std::memcpy(sa.sun_path + 1, name.data(), name.size());
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  return sa;
}

}  // namespace bedrock_engine::transport_detail
