// Bedrock's JSON schema of one provider description (ProviderManager.cpp of mochi-bedrock
// 0.16.1): name ^[a-zA-Z_][a-zA-Z0-9_]*$ and type required, provider_id 0..65535, tags
// [string], config object, dependencies {key: string|integer|[string|integer]}, engine >= 0.
// The first violation is worded as json-schema-validator (which Bedrock uses) words it.
#pragma once
#include <string>

#include "config.hpp"

namespace bedrock_engine {

// "" if the description is valid, else Bedrock's message ("Error validating JSON
// (ProviderManager): At /config of \"map\" - unexpected instance type").
std::string provider_schema_error(const json& description);

// ^[a-zA-Z_][a-zA-Z0-9_]*$
bool is_identifier(const std::string& s);

}  // namespace bedrock_engine
