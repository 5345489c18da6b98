// bedrock-engine-query <protocol> -a ADDR... | -f GROUPFILE [-i provider_id] [-p]
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
  bool pretty = false;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument("missing value after " + a);
        return argv[++i];
      };
      if (a == "-a" || a == "--addresses") addresses.push_back(next());
      else if (a == "-f" || a == "--flock-file") group_file = next();
      else if (a == "-i" || a == "--provider-id") provider_id = std::stoi(next());
      else if (a == "-p" || a == "--pretty") pretty = true;
      else if (a == "-v" || a == "--verbose") set_log_level(parse_log_level(next()));
      else if (a == "-h" || a == "--help") {
        std::printf("USAGE: bedrock-engine-query <protocol> [-a <address>]... [-f <flock-file>] "
                    "[-i <provider-id>] [-p] [-v <level>]\n");
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
    std::fprintf(stderr, "bedrock-engine-query: %s\n", e.what());
    return 2;
  }
  try {
    Client client(protocol);
    client.options.timeout = std::chrono::milliseconds(30000);
    json out = json::object();
    for (const auto& a : addresses) out[a] = client.query(a, static_cast<uint16_t>(provider_id));
    std::printf("%s\n", pretty ? out.dump(4).c_str() : out.dump().c_str());
  } catch (const std::exception& e) {
    log(LogLevel::critical, e.what());
    return 1;
  }
  return 0;
}
