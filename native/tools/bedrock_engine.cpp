// bedrock-engine <address> [-c config] [-o out.json] [-v level] [--stdin] | --info [address]
// Mirrors Bedrock's `bedrock` daemon CLI, but exits non-zero on failure.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "info.hpp"
#include "log.hpp"
#include "rank_variables.hpp"
#include "server.hpp"

using namespace bedrock_engine;

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "USAGE:\n"
               "   bedrock-engine [-c <config-file>] [--stdin] [-o <config-file>] [-v <level>] "
               "[--rank N --size N] <address>\n"
               "   bedrock-engine --info [<address specifier>]\n\n"
               "   <address>  Protocol (na+sm, ofi+tcp, tcp) or address (e.g. "
               "ofi+tcp://127.0.0.1:1234). If not provided, it is inferred from the "
               "mercury.address field in the configuration.\n"
               "   -c, --config         JSON configuration file\n"
               "   --stdin              Read the configuration from standard input\n"
               "   -o, --output-config  JSON file to write after deployment\n"
               "   -v, --verbose        Log level (trace, debug, info, warning, error, "
               "critical, off)\n"
               "   --rank/--size        $MPI_COMM_WORLD.rank/size for \"__if__\" (default: from "
               "the launcher's environment, else 0/1)\n"
               "   --info               Print the transports this engine can initialize "
               "(margo-info format)\n");
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  return (end && *end == '\0') ? static_cast<int>(x) : fallback;
}

// Rank/size from the launcher: the first rank variable set, with the size of the same launcher
// (share/launch/rank-variables.json, compiled in as rank_variables.hpp).
void launcher_rank_size(int& rank, int& size) {
  for (const auto& v : kRankVariables) {
    int r = env_int(v.rank, -1);
    if (r >= 0) {
      rank = r;
      size = env_int(v.size, 1);
      return;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string address, config_file, output_file;
  bool use_stdin = false;
  int rank = 0, size = 1;
  launcher_rank_size(rank, size);
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument("missing value after " + a);
        return argv[++i];
      };
      if (a == "--info") {
        return print_transport_info(i + 1 < argc ? argv[i + 1] : "");
      } else if (a == "-h" || a == "--help") {
        usage(stdout);
        return 0;
      } else if (a == "--version") {
        std::printf("\nbedrock-engine  version: %s\n\n", kEngineVersion);
        return 0;
      } else if (a == "-c" || a == "--config") {
        config_file = next();
      } else if (a == "-o" || a == "--output-config") {
        output_file = next();
      } else if (a == "-v" || a == "--verbose") {
        set_log_level(parse_log_level(next()));
      } else if (a == "--stdin") {
        use_stdin = true;
      } else if (a == "--rank") {
        rank = std::stoi(next());
      } else if (a == "--size") {
        size = std::stoi(next());
      } else if (a == "-j" || a == "--jx9" || a == "-t" || a == "--toml" || a == "--jx9-context") {
        throw std::invalid_argument(a + " is not supported by bedrock-engine (JSON only); use the "
                                        "Spack-built bedrock for Jx9/TOML configurations");
      } else if (!a.empty() && a[0] == '-') {
        throw std::invalid_argument("unknown option " + a);
      } else if (address.empty()) {
        address = a;
      } else {
        throw std::invalid_argument("unexpected argument " + a);
      }
    }
    if (use_stdin && !config_file.empty())
      throw std::invalid_argument("--stdin and -c/--config are mutually exclusive");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bedrock-engine: %s\n", e.what());
    usage(stderr);
    return 2;
  }

  std::string text;
  if (use_stdin) {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  } else if (!config_file.empty()) {
    std::ifstream in(config_file);
    if (!in) {
      log(LogLevel::critical, "Could not open configuration file " + config_file);
      return 1;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }

  // Block SIGTERM/SIGINT in every thread; a dedicated thread turns them into a clean finalize.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  std::unique_ptr<Server> server;
  try {
    ServerOptions opts;
    opts.context.rank = rank;
    opts.context.size = size;
    server = std::make_unique<Server>(address, text, opts);
    if (!output_file.empty()) {
      std::ofstream out(output_file);
      out << server->config().dump();
      if (!out) throw std::runtime_error("Could not write " + output_file);
    }
  } catch (const std::exception& e) {
    log(LogLevel::critical, e.what());
    return 1;
  }
  Server* srv = server.get();
  std::thread signal_thread([srv, sigs]() {
    pthread_setname_np(pthread_self(), "be-signal");  // not an xstream: named for thread lists
    int sig = 0;
    while (!srv->finalize_requested()) {
      timespec ts{0, 200 * 1000 * 1000};
      sig = sigtimedwait(&sigs, nullptr, &ts);
      if (sig > 0) {
        log(LogLevel::info, std::string("Received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") +
                                ", finalizing");
        srv->request_finalize();
      }
    }
  });
  log(LogLevel::info, "Bedrock daemon now running at " + server->address());
  try {
    server->run_primary();
  } catch (const std::exception& e) {
    log(LogLevel::critical, e.what());
    server->request_finalize();
    signal_thread.join();
    return 1;
  }
  server->finalize();
  signal_thread.join();
  log(LogLevel::info, "Bedrock daemon finalized");
  return 0;
}
