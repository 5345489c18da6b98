#include "info.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "config.hpp"
#include "transport.hpp"

namespace bedrock_engine {

namespace {
struct KnownAddress {
  const char* addr;
  const char* xport;
  const char* proto;
  const char* desc;
};
// Margo's MARGO_KNOWN_HG_PLUGINS, in its order (including its typos).
const KnownAddress kKnown[] = {
    {"ofi+tcp://", "ofi", "tcp", "libfabric tcp provider (TCP/IP)"},
    {"ofi+verbs://", "ofi", "verbs", "libfabric Verbs provider (InfiniBand or RoCE)"},
    {"ofi+shm://", "ofi", "shm", "libfabric shm provider (shared memory)"},
    {"ofi+sockets://", "ofi", "shm", "libfabric sockets provider (TCP/IP)"},
    {"ofi+psm2://", "ofi", "psm2", "libfabric PSM2 provider (OmniPath"},
    {"ofi+opx://", "ofi", "opx", "libfabric OPX provide (OmniPath)"},
    {"ofi+gni://", "ofi", "gni", "libfabric GNI provider (Cray Aries)"},
    {"ofi+cxi://", "ofi", "cxi", "libfabric CXI provider (HPE Cassini/Slingshot 11)"},
    {"psm+psm://", "psm", "psm", "integrated PSM plugin (OmniPath)"},
    {"psm2+psm2://", "psm2", "psm2", "integrated PSM2 plugin (OmniPath)"},
    {"na+sm://", "na", "sm", "integrated sm plugin (shared memory)"},
    {"bmi+tcp://", "bmi", "tcp", "BMI tcp module (TCP/IP)"},
    {"ucx+tcp://", "ucx", "tcp", "UCX TCP/IP over SOCK_STREAM sockets"},
    {"ucx+rc://", "ucx", "rc", "UCX RC (reliable connection)"},
    {"ucx+ud://", "ucx", "ud", "UCX UD (unreliable datagram)"},
    {"ucx+dc://", "ucx", "dc", "UCX DC (dynamic connection, only available on Mellanox adapters)"},
    {"ucx+all://", "ucx", "<any>", "UCX default/automatic transport selection"},
    {"tcp://", "<any>", "tcp", "TCP/IP protocol, transport not specified"},
    {"verbs://", "<any>", "verbs", "Verbs protocol, transport not specified"},
    {"sm://", "<any>", "sm", "shared memory protocol, transport not specified"},
    {"psm2://", "<any>", "psm2", "PSM2 protocol, transport not specified"},
};

const char* kRule = "####################################################################";

struct Result {
  int index;
  const KnownAddress* k;
  std::string addr;  // as asked
  bool ok;
  std::string example;
};

Result try_address(int index, const KnownAddress* k, const std::string& addr, std::FILE* log) {
  Result r{index, k, addr, false, "N/A"};
  try {
    auto server = TransportServer::create(addr, [](const std::shared_ptr<ServerConnection>&, Frame&&) {});
    r.ok = true;
    r.example = server->address();
  } catch (const std::exception& e) {
    if (log) std::fprintf(log, "[error] Could not initialize transport with protocol %s: %s\n",
                          addr.c_str(), e.what());
  }
  return r;
}
}  // namespace

int print_transport_info(const std::string& only) {
  char log_path[] = "/tmp/margo-info-stderr-XXXXXX";
  char json_path[] = "/tmp/margo-info-json-XXXXXX";
  int log_fd = mkstemp(log_path);
  int json_fd = mkstemp(json_path);
  std::FILE* log = log_fd >= 0 ? fdopen(log_fd, "w") : nullptr;
  if (json_fd >= 0) close(json_fd);

  std::vector<Result> results;
  if (!only.empty()) {
    const KnownAddress* match = nullptr;
    int idx = 0;
    for (const auto& k : kKnown) {
      if (only == k.addr) {
        match = &k;
        break;
      }
      ++idx;
    }
    static KnownAddress custom{nullptr, "<unknown>", "<unknown>", "user-specified address"};
    if (!match) {
      std::printf("# WARNING: \"%s\" not supported by margo-info...\n", only.c_str());
      custom.addr = only.c_str();
      match = &custom;
      idx = 0;
    }
    results.push_back(try_address(idx, match, only, log));
  } else {
    int idx = 0;
    for (const auto& k : kKnown) results.push_back(try_address(idx++, &k, k.addr, log));
  }
  if (log) std::fclose(log);

  char host[256] = "unknown";
  gethostname(host, sizeof host - 1);
  std::printf("\n%s\n", kRule);
  std::printf("# Available Margo (Mercury) network transports on host \x1b[35m%s\x1b[0m\n", host);
  std::printf("# - GREEN indicates that it can be initialized successfully.\n");
  std::printf("# - RED indicates that it cannot.\n");
  std::printf("%s\n\n", kRule);
  std::printf("# <address> <transport> <protocol> <results> <example runtime address>\n\n");
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& r : results) {
      if (r.ok != (pass == 0)) continue;
      std::printf("### %s ###\n", r.k->desc);
      std::printf("%s%s\t%s\t%s\t%s\t%s\x1b[0m\n", r.ok ? "\x1b[32m" : "\x1b[31m", r.addr.c_str(),
                  r.k->xport, r.k->proto, r.ok ? "YES" : "NO", r.example.c_str());
    }
  }
  std::printf("\n");
  if (only.empty()) {
    std::printf("%s\n", kRule);
    std::printf("# Notes on interpretting margo-info output:\n");
    std::printf("# - This utility queries software stack capability, not hardware availability.\n");
    std::printf("# - This is bedrock-engine's built-in transport list: it implements na+sm and\n");
    std::printf("#   TCP only. Use the Spack-built margo-info/bedrock for other fabrics.\n");
    std::printf("# \n");
    std::printf("%s\n", kRule);
    std::printf("# Suggested transport-level diagnostic tools:\n");
    std::printf("# - libfabric:\t`fi_info -t FI_EP_RDM`\n");
    std::printf("# - UCX:\t`ucx_info -d`\n");
    std::printf("# - verbs:\t`ibstat`\n");
    std::printf("# - TCP/IP:\t`ifconfig`\n");
    std::printf("# - CXI:\t`cxi_stat`\n");
    std::printf("# \n");
    std::printf("%s\n", kRule);
    std::printf("# Verbose margo-info information:\n");
    std::printf("# - debug log output:\n");
    std::printf("#   \x1b[35m%s\x1b[0m\n", log_path);
    std::printf("# - results in JSON format:\n");
    std::printf("#   \x1b[35m%s\x1b[0m\n", json_path);
    std::printf("# \n");
    std::printf("%s\n\n", kRule);
  }
  // Keep margo-info's key order in the side file.
  std::string text = "[\n";
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    nlohmann::ordered_json e;
    e["index"] = r.index;
    e["addr"] = r.addr;
    e["xport"] = r.k->xport;
    e["proto"] = r.k->proto;
    e["desc"] = r.k->desc;
    e["result"] = r.ok;
    e["example_runtime_addr"] = r.example;
    std::string item = e.dump(2);
    std::string indented = "  ";
    for (char c : item) {
      indented += c;
      if (c == '\n') indented += "  ";
    }
    text += indented + (i + 1 < results.size() ? ",\n" : "\n");
  }
  text += "]\n";
  std::ofstream(json_path) << text;
  std::fflush(stdout);
  if (!only.empty()) {
    // The single-protocol form prints no file paths: do not leave unreferenced files behind.
    unlink(json_path);
    unlink(log_path);
    return results.front().ok ? 0 : 255;
  }
  return 0;
}

}  // namespace bedrock_engine
