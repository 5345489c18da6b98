#pragma once
#include <string>

namespace bedrock_engine {
// Prints the transport table in margo-info's stdout format (all rows, or only `only` if given)
// and writes the JSON side file. Returns the process exit status (margo-info's conventions).
int print_transport_info(const std::string& only);
}  // namespace bedrock_engine
