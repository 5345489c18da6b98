// Bedrock's "__if__" filter: objects whose "__if__" is false (or an expression evaluating to
// false) are removed before validation, and array elements with them (JsonUtil.hpp,
// filterIfConditionsInJSON, of mochi-bedrock 0.16.1). Bedrock evaluates the expression with Jx9;
// bedrock-engine evaluates comparisons of $MPI_COMM_WORLD.rank/.size, integers, true and false
// combined with &&, || and !, and refuses anything else naming the difference.
#pragma once
#include <string>

#include "config.hpp"

namespace bedrock_engine {

// Removes objects whose "__if__" is false (or an expression evaluating to false).
json filter_if(const json& in, const ConfigContext& ctx, const std::string& path = "");

// Evaluates an "__if__" expression: comparisons (==, !=, <, <=, >, >=) of
// $MPI_COMM_WORLD.rank / $MPI_COMM_WORLD.size / integers / true / false, combined with
// &&, ||, ! and parentheses. Throws ConfigError (with path) for anything else.
bool evaluate_condition(const std::string& expr, const ConfigContext& ctx,
                        const std::string& path);

}  // namespace bedrock_engine
