#include "condition.hpp"

#include <cctype>

namespace bedrock_engine {

// ---------------------------------------------------------------- "__if__" expressions
namespace {

class ConditionParser {
 public:
  ConditionParser(const std::string& text, const ConfigContext& ctx, const std::string& path)
      : s_(text), ctx_(ctx), path_(path) {}

  bool parse() {
    long v = parse_or();
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected \"" + s_.substr(pos_) + "\"");
    return v != 0;
  }

 private:
  [[noreturn]] void fail(const std::string& why) {
    throw ConfigError("Cannot evaluate \"__if__\" expression \"" + s_ + "\": " + why +
                          " (bedrock-engine evaluates comparisons of $MPI_COMM_WORLD.rank, "
                          "$MPI_COMM_WORLD.size, integers, true and false with ==, !=, <, <=, "
                          ">, >=, &&, ||, !; use the Spack-built bedrock for full Jx9)",
                      path_);
  }
  void skip_ws() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool accept(const char* tok) {
    skip_ws();
    size_t n = std::char_traits<char>::length(tok);
    if (s_.compare(pos_, n, tok) == 0) {
      pos_ += n;
      return true;
    }
    return false;
  }
  long parse_or() {
    long v = parse_and();
    while (accept("||")) {
      long r = parse_and();
      v = (v != 0 || r != 0) ? 1 : 0;
    }
    return v;
  }
  long parse_and() {
    long v = parse_cmp();
    while (accept("&&")) {
      long r = parse_cmp();
      v = (v != 0 && r != 0) ? 1 : 0;
    }
    return v;
  }
  long parse_cmp() {
    long l = parse_unary();
    // Longest operators first.
    static const char* ops[] = {"==", "!=", "<=", ">=", "<", ">"};
    for (const char* op : ops) {
      skip_ws();
      if (s_.compare(pos_, std::char_traits<char>::length(op), op) == 0) {
        if (std::string(op) == "<" || std::string(op) == ">") {
          // not the start of "<=" / ">=" (handled above)
        }
        pos_ += std::char_traits<char>::length(op);
        long r = parse_unary();
        std::string o(op);
        if (o == "==") return l == r;
        if (o == "!=") return l != r;
        if (o == "<=") return l <= r;
        if (o == ">=") return l >= r;
        if (o == "<") return l < r;
        return l > r;
      }
    }
    return l;
  }
  long parse_unary() {
    if (accept("!")) return parse_unary() == 0 ? 1 : 0;
    if (accept("-")) return -parse_primary();
    return parse_primary();
  }
  long parse_primary() {
    skip_ws();
    if (accept("(")) {
      long v = parse_or();
      if (!accept(")")) fail("missing \")\"");
      return v;
    }
    if (accept("$MPI_COMM_WORLD.rank")) return ctx_.rank;
    if (accept("$MPI_COMM_WORLD.size")) return ctx_.size;
    if (accept("true")) return 1;
    if (accept("false")) return 0;
    skip_ws();
    size_t start = pos_;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    if (pos_ == start) fail(pos_ < s_.size() ? "unsupported term at \"" + s_.substr(pos_) + "\""
                                             : "unexpected end of expression");
    if (pos_ - start > 9) fail("integer too large");
    return std::stol(s_.substr(start, pos_ - start));
  }

  std::string s_;
  const ConfigContext& ctx_;
  std::string path_;
  size_t pos_ = 0;
};

}  // namespace

bool evaluate_condition(const std::string& expr, const ConfigContext& ctx,
                        const std::string& path) {
  return ConditionParser(expr, ctx, path).parse();
}

namespace {
// Returns true if the object should be kept.
bool keep_object(const json& obj, const ConfigContext& ctx, const std::string& path) {
  auto it = obj.find("__if__");
  if (it == obj.end()) return true;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_string()) return evaluate_condition(it->get<std::string>(), ctx, key_path(path, "__if__"));
  throw ConfigError("__if__ condition should be a string or a boolean",
                    key_path(path, "__if__"));
}
}  // namespace

json filter_if(const json& in, const ConfigContext& ctx, const std::string& path) {
  if (in.is_object()) {
    json out = json::object();
    for (auto it = in.begin(); it != in.end(); ++it) {
      const json& v = it.value();
      std::string p = key_path(path, it.key());
      if (v.is_object() && !keep_object(v, ctx, p)) {
        out[it.key()] = nullptr;  // Bedrock keeps the key with a null value
        continue;
      }
      out[it.key()] = filter_if(v, ctx, p);
    }
    return out;
  }
  if (in.is_array()) {
    json out = json::array();
    for (size_t i = 0; i < in.size(); ++i) {
      const json& v = in[i];
      std::string p = index_path(path, i);
      if (v.is_object() && !keep_object(v, ctx, p)) continue;
      out.push_back(filter_if(v, ctx, p));
    }
    return out;
  }
  return in;
}

}  // namespace bedrock_engine
