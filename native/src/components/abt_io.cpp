// ABT-IO (mochi-abt-io 0.9.0) as a Bedrock component: its config (reported with ABT-IO's
// defaults) and, for num_urings > 0, one execution stream per ring, created like ABT-IO creates
// them (ABT_xstream_create: placed as the next Argobots ES). Real ABT-IO has no remote RPCs;
// the engine's pwrite/pread RPCs exist for tests only: off unless "bedrock_engine.test_rpcs"
// lists "abt_io", and confined beneath "bedrock_engine.abt_io_directory" (openat2 with
// RESOLVE_BENEATH: no absolute paths, no "..", no symlink leaving it).
// Source: https://github.com/mochi-hpc/mochi-abt-io/blob/24219f20e950ccb92aaf68a19124cce7af10a511/
// src/abt-io.c.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "client.hpp"
#include "component.hpp"
#include "runtime.hpp"
#include "wire.hpp"

namespace bedrock_engine {

namespace {

// A file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

class AbtIoComponent : public Component {
 public:
  explicit AbtIoComponent(ComponentArgs& args) : host_(*args.host) {
    json cfg = args.config.is_object() ? args.config : json::object();
    if (cfg.contains("liburing_flags") && !cfg["liburing_flags"].is_array())
      throw ComponentError("Could not initialize instance of ABT-IO (\"liburing_flags\" is in "
                           "configuration but is not an array)");
    long long urings = 0;
    if (cfg.contains("num_urings") && cfg["num_urings"].is_number_integer())
      urings = cfg["num_urings"].get<long long>();
    config_ = reported_config(*args.entry, cfg);
    for (long long i = 0; i < urings; ++i) {
      pools_.push_back(std::make_unique<Pool>("__abt_io_uring_" + std::to_string(i) + "__",
                                              "fifo_wait", "private"));
      threads_.push_back(host_.start_component_xstream(
          args.name + "_uring_" + std::to_string(i), pools_.back().get()));
    }
  }

  json config() const override { return config_; }
  std::vector<Xstream*> threads() const override { return threads_; }

  std::string handle(uint32_t rpc, std::string_view payload) override {
    if (rpc != rpc_abtio_pwrite && rpc != rpc_abtio_pread)
      throw RpcError(status_no_rpc, "abt_io provider has no RPC " + std::to_string(rpc));
    const EngineSettings& s = host_.settings();
    if (!s.abt_io_files)
      throw RpcError(status_no_rpc, "abt_io file RPCs are test-only and off (enable them with "
                                    "\"bedrock_engine\": {\"test_rpcs\": [\"abt_io\"], "
                                    "\"abt_io_directory\": \"/dir\"})");
    Reader r(payload);
    std::string path(r.bytes());
    uint64_t offset = r.u64();
    if (rpc == rpc_abtio_pwrite) {
      std::string_view data = r.bytes();
      r.expect_end();
      Fd fd(open_beneath(s.abt_io_directory, path, O_WRONLY | O_CREAT));
      ssize_t n = ::pwrite(fd.get(), data.data(), data.size(), static_cast<off_t>(offset));
      if (n < 0) throw RpcError(status_error, "pwrite(" + path + "): " + std::strerror(errno));
      Writer w;
      w.u64(static_cast<uint64_t>(n));
      return w.take();
    }
    uint64_t size = r.u64();
    r.expect_end();
    if (size > kMaxPayload) throw RpcError(status_bad_request, "read size too large");
    Fd fd(open_beneath(s.abt_io_directory, path, O_RDONLY));
    std::string buf(size, '\0');
    ssize_t n = ::pread(fd.get(), buf.data(), size, static_cast<off_t>(offset));
    if (n < 0) throw RpcError(status_error, "pread(" + path + "): " + std::strerror(errno));
    buf.resize(static_cast<size_t>(n));
    return buf;
  }

 private:
  // Opens `path` (relative) beneath `directory`; refuses anything that resolves outside it.
  static int open_beneath(const std::string& directory, const std::string& path, int flags) {
    if (path.empty() || path[0] == '/' || path.find('\0') != std::string::npos)
      throw RpcError(status_bad_request, "abt_io paths are relative to "
                                         "bedrock_engine.abt_io_directory");
    Fd dir(::open(directory.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0)
      throw RpcError(status_error, "abt_io_directory " + directory + ": " + std::strerror(errno));
    struct open_how how {};
    how.flags = static_cast<uint64_t>(flags | O_CLOEXEC | O_NOFOLLOW);
    how.mode = (flags & O_CREAT) ? 0600 : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS;
    long fd = ::syscall(SYS_openat2, dir.get(), path.c_str(), &how, sizeof how);
    if (fd < 0) {
      int err = errno;
      if (err == EXDEV || err == ELOOP)
        throw RpcError(status_bad_request, "abt_io path \"" + path + "\" leaves "
                                           "bedrock_engine.abt_io_directory");
      throw RpcError(status_error, "open(" + path + "): " + std::strerror(err));
    }
    return static_cast<int>(fd);
  }

  ComponentHost& host_;
  json config_;
  std::vector<std::unique_ptr<Pool>> pools_;
  std::vector<Xstream*> threads_;
};

}  // namespace

std::unique_ptr<Component> make_abt_io(ComponentArgs& args) {
  return std::make_unique<AbtIoComponent>(args);
}

}  // namespace bedrock_engine
