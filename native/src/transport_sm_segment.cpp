#include "transport_sm_segment.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

namespace bedrock_engine::transport_detail {

namespace {
constexpr int kRequiredSeals = F_SEAL_SHRINK | F_SEAL_GROW;
}

Fd create_sealed_segment() {
  Fd memfd(memfd_create("bedrock-engine-na-sm", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!memfd) throw_errno("memfd_create");
  if (ftruncate(memfd.get(), static_cast<off_t>(kSegmentSize)) != 0) throw_errno("ftruncate");
  if (fcntl(memfd.get(), F_ADD_SEALS, kRequiredSeals | F_SEAL_SEAL) != 0)
    throw_errno("fcntl(F_ADD_SEALS)");
  return memfd;
}

std::string check_segment_fd(int fd) {
  // Seals first: once present they cannot be removed, so the size checked next stays.
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) return "segment is not a sealable memfd";
  if ((seals & kRequiredSeals) != kRequiredSeals) return "segment is not sealed against resizing";
  struct statfs fs{};
  if (fstatfs(fd, &fs) != 0 || fs.f_type != TMPFS_MAGIC) return "segment is not a tmpfs memfd";
  struct stat st{};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return "segment is not a regular memfd";
  if (static_cast<size_t>(st.st_size) != kSegmentSize) return "segment has the wrong size";
  return {};
}

}  // namespace bedrock_engine::transport_detail
