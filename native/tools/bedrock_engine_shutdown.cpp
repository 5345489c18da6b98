// bedrock-engine-shutdown <protocol> -a ADDR... | -f GROUPFILE [-i provider_id]
#include <cstdio>
#include <string>
#include <vector>

#include "client.hpp"
#include "log.hpp"

using namespace bedrock_engine;

int main(int argc, char** argv) {
  std::string protocol, group_file;
  std::vector<std::string> addresses;
  int provider_id = 0;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument("missing value after " + a);
        return argv[++i];
      };
      if (a == "-a" || a == "--addresses") addresses.push_back(next());
      else if (a == "-f" || a == "--flock-file") group_file = next();
      else if (a == "-i" || a == "--provider-id") {
        std::string v = next();
        size_t used = 0;
        int id = std::stoi(v, &used);
        if (used != v.size() || id < 0 || id > 65535)
          throw std::invalid_argument("-i takes a provider id (0..65535), got " + v);
        provider_id = id;
      }
      else if (a == "-v" || a == "--verbose") set_log_level(parse_log_level(next()));
      else if (a == "-h" || a == "--help") {
        std::printf("USAGE: bedrock-engine-shutdown <protocol> [-a <address>]... [-f <flock-file>] "
                    "[-i <provider-id>] [-v <level>]\n"
                    "   -i  the Bedrock provider id of the daemons (their bedrock.provider_id, "
                    "default 0)\n");
        return 0;
      } else if (!a.empty() && a[0] == '-') throw std::invalid_argument("unknown option " + a);
      else if (protocol.empty()) protocol = a;
      else throw std::invalid_argument("unexpected argument " + a);
    }
    if (protocol.empty()) throw std::invalid_argument("missing <protocol>");
    if (!group_file.empty())
      for (auto& a : read_group_file_addresses(group_file)) addresses.push_back(a);
    if (addresses.empty()) throw std::invalid_argument("no address given (use -a or -f)");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bedrock-engine-shutdown: %s\n", e.what());
    return 2;
  }
  int failures = 0;
  Client client(protocol);
  client.options.timeout = std::chrono::milliseconds(30000);
  for (const auto& a : addresses) {
    try {
      client.shutdown(a, static_cast<uint16_t>(provider_id));
    } catch (const std::exception& e) {
      log(LogLevel::error, "Could not shut down " + a + ": " + e.what());
      ++failures;
    }
  }
  return failures ? 1 : 0;
}
