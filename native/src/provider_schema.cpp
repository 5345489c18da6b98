#include "provider_schema.hpp"

#include <cctype>

namespace bedrock_engine {

namespace {

std::string at(const std::string& pointer, const json& instance, const std::string& what) {
  return "Error validating JSON (ProviderManager): At " + pointer + " of " + instance.dump() +
         " - " + what;
}

bool string_or_int(const json& v) { return v.is_string() || is_int(v); }

}  // namespace

bool is_identifier(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

namespace {

}  // namespace

std::string provider_schema_error(const json& d) {
  if (!d.is_object()) return at("", d, "unexpected instance type");
  for (const char* key : {"name", "type"})
    if (!d.contains(key))
      return at("", d, std::string("required property '") + key + "' not found in object");
  for (auto it = d.begin(); it != d.end(); ++it) {  // keys in order, as the validator visits them
    const std::string& key = it.key();
    const json& v = it.value();
    const std::string ptr = "/" + key;
    if (key == "name") {
      if (!v.is_string()) return at(ptr, v, "unexpected instance type");
      if (!is_identifier(v.get<std::string>()))
        return at(ptr, v, "instance does not match regex pattern: ^[a-zA-Z_][a-zA-Z0-9_]*$");
    } else if (key == "provider_id") {
      if (!is_int(v)) return at(ptr, v, "unexpected instance type");
      if (v.is_number_unsigned() ? v.get<unsigned long long>() > 65535 : v.get<long long>() > 65535)
        return at(ptr, v, "instance exceeds maximum of 65535");
      if (v.is_number_integer() && v.get<long long>() < 0)
        return at(ptr, v, "instance is below minimum of 0");
    } else if (key == "type") {
      if (!v.is_string()) return at(ptr, v, "unexpected instance type");
    } else if (key == "tags") {
      if (!v.is_array()) return at(ptr, v, "unexpected instance type");
      for (size_t i = 0; i < v.size(); ++i)
        if (!v[i].is_string()) return at(ptr + "/" + std::to_string(i), v[i],
                                          "unexpected instance type");
    } else if (key == "dependencies") {
      if (!v.is_object()) return at(ptr, v, "unexpected instance type");
      for (auto d2 = v.begin(); d2 != v.end(); ++d2) {
        const json& dv = d2.value();
        bool ok = string_or_int(dv);
        if (dv.is_array()) {
          ok = true;
          for (const auto& e : dv) ok = ok && string_or_int(e);
        }
        if (!ok)
          return at(ptr, v, "validation failed for additional property '" + d2.key() +
                                "': no subschema has succeeded, but one of them is required "
                                "to validate. Type: anyOf, number of failed subschemas: 3");
      }
    } else if (key == "config") {
      if (!v.is_object()) return at(ptr, v, "unexpected instance type");
    } else if (key == "engine") {
      if (!is_int(v)) return at(ptr, v, "unexpected instance type");
      if (v.is_number_integer() && v.get<long long>() < 0)
        return at(ptr, v, "instance is below minimum of 0");
    }
  }
  return {};
}

}  // namespace bedrock_engine
