#include "config.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

namespace bedrock_engine {

ConfigError::ConfigError(const std::string& message, const std::string& path)
    : std::runtime_error(path.empty() ? message : message + " (in \"" + path + "\")"),
      message_(message),
      path_(path) {}

std::string json_type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "int";
    case json::value_t::number_float: return "double";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    default: return "unknown";
  }
}

json parse_config_text(const std::string& text) {
  bool blank = std::all_of(text.begin(), text.end(),
                           [](unsigned char c) { return std::isspace(c) != 0; });
  if (blank) return json::object();
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw ConfigError(std::string("Could not parse JSON configuration: ") + e.what(), "");
  }
}

namespace {

void merge_into(json& target, const json& value) {
  if (target.is_object() && value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it) merge_into(target[it.key()], it.value());
  } else {
    target = value;
  }
}

std::string index_path(const std::string& base, size_t i) {
  return base + "[" + std::to_string(i) + "]";
}
std::string key_path(const std::string& base, const std::string& key) {
  return base.empty() ? key : base + "." + key;
}

}  // namespace

json expand_dotted_keys(const json& in) {
  if (in.is_array()) {
    json out = json::array();
    for (const auto& e : in) out.push_back(expand_dotted_keys(e));
    return out;
  }
  if (!in.is_object()) return in;
  json out = json::object();
  for (auto it = in.begin(); it != in.end(); ++it) {
    json value = expand_dotted_keys(it.value());
    const std::string& key = it.key();
    if (key.find('.') == std::string::npos || key.front() == '.' || key.back() == '.') {
      merge_into(out[key], value);
      continue;
    }
    json nested = value;
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', start)) {
      parts.push_back(key.substr(start, dot - start));
      start = dot + 1;
    }
    parts.push_back(key.substr(start));
    for (size_t i = parts.size(); i-- > 1;) nested = json{{parts[i], nested}};
    merge_into(out[parts[0]], nested);
  }
  return out;
}

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
  throw ConfigError("\"__if__\" field should be a boolean or a string (got " +
                        json_type_name(*it) + ")",
                    key_path(path, "__if__"));
}
}  // namespace

json filter_if(const json& in, const ConfigContext& ctx, const std::string& path) {
  if (in.is_object()) {
    json out = json::object();
    for (auto it = in.begin(); it != in.end(); ++it) {
      const json& v = it.value();
      std::string p = key_path(path, it.key());
      if (v.is_object() && !keep_object(v, ctx, p)) continue;
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

std::string builtin_module_for_library(const std::string& library) {
  std::string base = library.substr(library.find_last_of('/') == std::string::npos
                                        ? 0
                                        : library.find_last_of('/') + 1);
  if (base == "libflock-bedrock-module.so") return "flock";
  if (base == "libyokan-bedrock-module.so") return "yokan";
  if (base == "libabt-io-bedrock-module.so") return "abt_io";
  if (base == "libwarabi-bedrock-module.so") return "warabi";
  return {};
}

// ---------------------------------------------------------------- margo
namespace {

// Margo's type-check message (verbatim, including its unbalanced quote).
[[noreturn]] void type_error(const std::string& key, const std::string& ctx_name,
                             const std::string& expected, const json& got,
                             const std::string& path) {
  throw ConfigError("Invalid type for \"" + key + " in " + ctx_name +
                        " configuration (expected " + expected + ", got " +
                        json_type_name(got) + ")",
                    path);
}

bool is_int(const json& v) { return v.is_number_integer() || v.is_number_unsigned(); }

void check_optional(const json& obj, const std::string& key, const std::string& expected,
                    const std::string& ctx_name, const std::string& path) {
  auto it = obj.find(key);
  if (it == obj.end()) return;
  bool ok = (expected == "int" && is_int(*it)) || (expected == "boolean" && it->is_boolean()) ||
            (expected == "string" && it->is_string()) ||
            (expected == "object" && it->is_object()) || (expected == "array" && it->is_array());
  if (!ok) type_error(key, ctx_name, expected, *it, path);
}

void check_non_negative(const json& obj, const std::string& key, const std::string& path) {
  auto it = obj.find(key);
  if (it != obj.end() && it->get<long long>() < 0)
    throw ConfigError("\"" + key + "\" must not be negative (got " + it->dump() + ")",
                      key_path(path, key));
}

bool valid_name(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

struct PoolSpec {
  std::string name, kind, access;
};
struct XstreamSpec {
  std::string name, sched_type;
  std::vector<std::string> pools;
  int cpubind = -1;
  std::vector<int> affinity;
};

const std::set<std::string> kPoolKinds = {"fifo", "fifo_wait", "prio_wait", "earliest_first"};
const std::set<std::string> kPoolAccess = {"private", "spsc", "mpsc", "spmc", "mpmc"};
const std::set<std::string> kSchedTypes = {"default", "basic", "prio", "randws", "basic_wait"};

json mercury_defaults() {
  return json{{"auto_sm", false},
              {"checksum_level", "none"},
              {"input_eager_size", 4076},
              {"listening", true},
              {"log_level", "warning"},
              {"log_subsys", "hg,na"},
              {"max_contexts", 0},
              {"na_addr_format", "unspec"},
              {"na_max_expected_size", 0},
              {"na_max_unexpected_size", 0},
              {"na_no_block", false},
              {"na_no_retry", false},
              {"na_request_mem_device", false},
              {"no_bulk_eager", false},
              {"no_loopback", false},
              {"output_eager_size", 4076},
              {"request_post_incr", 256},
              {"request_post_init", 256},
              {"stats", false},
              {"version", "2.4.1"}};
}

json prepare_mercury(const json& margo, const std::string& path) {
  json out = mercury_defaults();
  auto it = margo.find("mercury");
  if (it == margo.end()) return out;
  if (!it->is_object()) type_error("mercury", "margo", "object", *it, path);
  std::string mpath = key_path(path, "mercury");
  static const std::vector<std::string> bools = {
      "listening", "auto_sm", "no_bulk_eager", "no_loopback", "stats", "na_no_block",
      "na_no_retry", "na_request_mem_device"};
  static const std::vector<std::string> ints = {
      "request_post_init", "request_post_incr", "max_contexts", "input_eager_size",
      "output_eager_size", "na_max_unexpected_size", "na_max_expected_size"};
  static const std::vector<std::string> strings = {
      "address", "version", "ip_subnet", "auth_key", "log_level", "log_subsys", "sm_info_string",
      "checksum_level", "na_addr_format"};
  for (const auto& k : bools) check_optional(*it, k, "boolean", "mercury", mpath);
  for (const auto& k : ints) check_optional(*it, k, "int", "mercury", mpath);
  for (const auto& k : strings) check_optional(*it, k, "string", "mercury", mpath);
  if (it->contains("checksum_level")) {
    std::string v = (*it)["checksum_level"];
    if (v != "none" && v != "rpc_headers" && v != "rpc_payload")
      throw ConfigError("Invalid enum value for \"checksum_level\" (\"" + v + "\")", mpath);
  }
  if (it->contains("na_addr_format")) {
    std::string v = (*it)["na_addr_format"];
    if (v != "unspec" && v != "ipv4" && v != "ipv6" && v != "native")
      throw ConfigError("Invalid enum value for \"na_addr_format\" (\"" + v + "\")", mpath);
  }
  for (auto m = it->begin(); m != it->end(); ++m) {
    if (m.key() == "version") continue;  // filled in by the engine
    out[m.key()] = m.value();
  }
  return out;
}

}  // namespace

namespace {

json prepare_margo(const json& margo_in, std::vector<std::string>* warnings) {
  const std::string root = "margo";
  if (!margo_in.is_object()) type_error("margo", "bedrock", "object", margo_in, root);
  const json& m = margo_in;
  for (const char* k : {"progress_timeout_ub_msec", "progress_spindown_msec", "handle_cache_size",
                        "rpc_thread_count"})
    check_optional(m, k, "int", "margo", key_path(root, k));
  for (const char* k : {"enable_abt_profiling", "use_progress_thread"})
    check_optional(m, k, "boolean", "margo", key_path(root, k));
  for (const char* k : {"progress_timeout_ub_msec", "progress_spindown_msec", "handle_cache_size"})
    check_non_negative(m, k, root);
  if (m.contains("plumber") && !m["plumber"].is_object())
    type_error("plumber", "margo", "object", m["plumber"], key_path(root, "plumber"));

  json argobots = json::object();
  if (m.contains("argobots")) {
    if (!m["argobots"].is_object())
      type_error("argobots", "margo", "object", m["argobots"], key_path(root, "argobots"));
    argobots = m["argobots"];
  }
  const std::string apath = key_path(root, "argobots");
  for (const char* k : {"abt_mem_max_num_stacks", "abt_thread_stacksize"})
    check_optional(argobots, k, "int", "argobots", key_path(apath, k));
  check_optional(argobots, "profiling_dir", "string", "argobots", key_path(apath, "profiling_dir"));
  check_optional(argobots, "lazy_stack_alloc", "boolean", "argobots",
                 key_path(apath, "lazy_stack_alloc"));
  check_optional(argobots, "pools", "array", "argobots", key_path(apath, "pools"));
  check_optional(argobots, "xstreams", "array", "argobots", key_path(apath, "xstreams"));

  // --- pools
  std::vector<PoolSpec> pools;
  json pools_in = argobots.value("pools", json::array());
  for (size_t i = 0; i < pools_in.size(); ++i) {
    const json& p = pools_in[i];
    std::string ppath = index_path("argobots.pools", i);
    std::string full = index_path(key_path(apath, "pools"), i);
    if (!p.is_object()) type_error("pools[" + std::to_string(i) + "]", "argobots", "object", p, full);
    check_optional(p, "name", "string", "pool", full);
    check_optional(p, "kind", "string", "pool", full);
    check_optional(p, "access", "string", "pool", full);
    PoolSpec s;
    s.name = p.value("name", "__pool_" + std::to_string(i) + "__");
    if (!valid_name(s.name))
      throw ConfigError("Invalid name \"" + s.name +
                            "\" for pool (names must not be empty, must not start with a digit, "
                            "and may only contain letters, digits and '_')",
                        full);
    s.kind = p.value("kind", "fifo_wait");
    if (s.kind == "external" || !kPoolKinds.count(s.kind))
      throw ConfigError("Invalid enum value for pool kind (\"" + s.kind + "\")", full);
    s.access = p.value("access", "mpmc");
    if (!kPoolAccess.count(s.access))
      throw ConfigError("Invalid enum value for pool access (\"" + s.access + "\")", full);
    for (const auto& other : pools)
      if (other.name == s.name)
        throw ConfigError("Found two elements with the same name (\"" + s.name +
                              "\") in \"argobots.pools\"",
                          full);
    (void)ppath;
    pools.push_back(s);
  }
  const size_t json_pool_count = pools.size();
  auto pool_exists = [&](const std::string& n) {
    return std::any_of(pools.begin(), pools.end(), [&](const PoolSpec& p) { return p.name == n; });
  };

  // --- xstreams
  std::vector<XstreamSpec> xstreams;
  json xs_in = argobots.value("xstreams", json::array());
  for (size_t i = 0; i < xs_in.size(); ++i) {
    const json& x = xs_in[i];
    std::string full = index_path(key_path(apath, "xstreams"), i);
    if (!x.is_object())
      type_error("xstreams[" + std::to_string(i) + "]", "argobots", "object", x, full);
    check_optional(x, "name", "string", "xstream", full);
    check_optional(x, "cpubind", "int", "xstream", full);
    check_optional(x, "affinity", "array", "xstream", full);
    check_optional(x, "scheduler", "object", "xstream", full);
    XstreamSpec s;
    s.name = x.value("name", "__xstream_" + std::to_string(i) + "__");
    if (!valid_name(s.name))
      throw ConfigError("Invalid name \"" + s.name +
                            "\" for xstream (names must not be empty, must not start with a "
                            "digit, and may only contain letters, digits and '_')",
                        full);
    if (x.contains("cpubind")) s.cpubind = x["cpubind"].get<int>();
    if (x.contains("affinity")) {
      for (const auto& a : x["affinity"]) {
        if (!is_int(a)) throw ConfigError("Invalid type found in affinity array", full);
        s.affinity.push_back(a.get<int>());
      }
    }
    if (!x.contains("scheduler"))
      throw ConfigError("\"scheduler\" field missing in xstream configuration (every xstream "
                        "needs a scheduler with at least one pool)",
                        full);
    const json& sched = x["scheduler"];
    check_optional(sched, "type", "string", "scheduler", full);
    check_optional(sched, "pools", "array", "scheduler", full);
    s.sched_type = sched.value("type", "basic_wait");
    if (!kSchedTypes.count(s.sched_type))
      throw ConfigError("Invalid enum value for scheduler.type (\"" + s.sched_type + "\")", full);
    json refs = sched.value("pools", json::array());
    if (refs.empty())
      throw ConfigError("Scheduler must have at least one pool", full);
    for (const auto& r : refs) {
      if (is_int(r)) {
        long long idx = r.get<long long>();
        if (idx < 0 || idx >= static_cast<long long>(json_pool_count))
          throw ConfigError("Invalid pool index (" + std::to_string(idx) +
                                ") in scheduler configuration",
                            full);
        s.pools.push_back(pools[static_cast<size_t>(idx)].name);
      } else if (r.is_string()) {
        std::string n = r.get<std::string>();
        if (!pool_exists(n) && n != "__primary__")
          throw ConfigError("Invalid reference to pool \"" + n + "\" in scheduler configuration",
                            full);
        s.pools.push_back(n);
      } else {
        throw ConfigError("Invalid type for pool reference in scheduler configuration "
                          "(expected int or string, got " + json_type_name(r) + ")",
                          full);
      }
    }
    for (const auto& other : xstreams)
      if (other.name == s.name)
        throw ConfigError("Found two elements with the same name (\"" + s.name +
                              "\") in \"argobots.xstreams\"",
                          full);
    xstreams.push_back(s);
  }

  // --- __primary__
  auto primary_it = std::find_if(xstreams.begin(), xstreams.end(),
                                 [](const XstreamSpec& x) { return x.name == "__primary__"; });
  if (primary_it == xstreams.end()) {
    if (!pool_exists("__primary__")) pools.push_back({"__primary__", "fifo_wait", "mpmc"});
    XstreamSpec p;
    p.name = "__primary__";
    p.sched_type = "basic_wait";
    p.pools = {"__primary__"};
    xstreams.push_back(p);
  } else {
    if (!pool_exists("__primary__"))
      throw ConfigError("Could not find __primary__ pool after initialization from configuration",
                        key_path(apath, "pools"));
    if (primary_it->pools.front() != "__primary__")
      throw ConfigError("Pool with name \"__primary__\" should be the first pool of the primary "
                        "xstream",
                        index_path(key_path(apath, "xstreams"),
                                   static_cast<size_t>(primary_it - xstreams.begin())));
  }
  // Scheduler references to an implicit __primary__ pool are valid only if it now exists.
  for (size_t i = 0; i < xstreams.size(); ++i)
    for (const auto& n : xstreams[i].pools)
      if (!pool_exists(n))
        throw ConfigError("Invalid reference to pool \"" + n + "\" in scheduler configuration",
                          index_path(key_path(apath, "xstreams"), i));

  auto resolve_pool_ref = [&](const char* key, const json& ref) -> std::string {
    std::string kpath = key_path(root, key);
    if (is_int(ref)) {
      long long idx = ref.get<long long>();
      if (idx < 0 || idx >= static_cast<long long>(json_pool_count)) {
        if (std::string(key) == "rpc_pool") throw ConfigError("Invalid rpc pool index", kpath);
        throw ConfigError("Invalid \"" + std::string(key) + "\" index (" + std::to_string(idx) +
                              ")",
                          kpath);
      }
      return pools[static_cast<size_t>(idx)].name;
    }
    if (ref.is_string()) {
      std::string n = ref.get<std::string>();
      if (n != "__primary__" && !std::any_of(pools.begin(),
                                             pools.begin() + static_cast<long>(json_pool_count),
                                             [&](const PoolSpec& p) { return p.name == n; }))
        throw ConfigError("Could not find element named \"" + n + "\" in \"argobots.pools\" array",
                          kpath);
      return n;
    }
    type_error(key, "margo", "int or string", ref, kpath);
  };

  auto add_pool_with_xstreams = [&](int count) {
    std::string pname = "__pool_" + std::to_string(pools.size()) + "__";
    pools.push_back({pname, "fifo_wait", "mpmc"});
    for (int i = 0; i < count; ++i) {
      XstreamSpec x;
      x.name = "__xstream_" + std::to_string(xstreams.size()) + "__";
      x.sched_type = "basic_wait";
      x.pools = {pname};
      xstreams.push_back(x);
    }
    return pname;
  };

  // --- progress pool
  std::string progress_pool;
  bool use_progress_thread = m.value("use_progress_thread", false);
  if (m.contains("progress_pool")) {
    progress_pool = resolve_pool_ref("progress_pool", m["progress_pool"]);
    if (m.contains("use_progress_thread") && warnings)
      warnings->push_back("\"use_progress_thread\" ignored since \"progress_pool\" is specified");
  } else if (use_progress_thread) {
    progress_pool = add_pool_with_xstreams(1);
  } else {
    progress_pool = "__primary__";
  }

  // --- rpc pool
  std::string rpc_pool;
  int rpc_thread_count = m.value("rpc_thread_count", 0);
  if (m.contains("rpc_pool")) {
    rpc_pool = resolve_pool_ref("rpc_pool", m["rpc_pool"]);
    if (m.contains("rpc_thread_count") && warnings)
      warnings->push_back("\"rpc_thread_count\" ignored since \"rpc_pool\" is specified");
  } else if (rpc_thread_count > 0) {
    rpc_pool = add_pool_with_xstreams(rpc_thread_count);
  } else if (rpc_thread_count < 0) {
    rpc_pool = progress_pool;
  } else {
    rpc_pool = "__primary__";
  }

  // --- warnings (Margo's sanity check)
  for (size_t i = 0; i < pools.size(); ++i) {
    bool used = std::any_of(xstreams.begin(), xstreams.end(), [&](const XstreamSpec& x) {
      return std::find(x.pools.begin(), x.pools.end(), pools[i].name) != x.pools.end();
    });
    if (!used && warnings)
      warnings->push_back("Pool \"" + pools[i].name + "\" at index " + std::to_string(i) +
                          " is not currently associated with any ES. ULT pushed into that pool "
                          "will not get executed.");
  }

  // --- effective config
  json out = json::object();
  json abt = json::object();
  abt["abt_mem_max_num_stacks"] = argobots.value("abt_mem_max_num_stacks", 8);
  abt["abt_thread_stacksize"] = argobots.value("abt_thread_stacksize", 2097152);
  abt["lazy_stack_alloc"] = argobots.value("lazy_stack_alloc", false);
  abt["profiling_dir"] = argobots.value("profiling_dir", ".");
  abt["pools"] = json::array();
  for (const auto& p : pools)
    abt["pools"].push_back({{"name", p.name}, {"kind", p.kind}, {"access", p.access}});
  abt["xstreams"] = json::array();
  for (const auto& x : xstreams) {
    json j = {{"name", x.name}, {"scheduler", {{"type", x.sched_type}, {"pools", x.pools}}}};
    if (x.cpubind >= 0) {
      j["cpubind"] = x.cpubind;
      j["affinity"] = json::array({x.cpubind});
    } else if (!x.affinity.empty()) {
      j["affinity"] = x.affinity;
    }
    abt["xstreams"].push_back(j);
  }
  out["argobots"] = abt;
  out["enable_abt_profiling"] = m.value("enable_abt_profiling", false);
  out["handle_cache_size"] = m.value("handle_cache_size", 256);
  out["mercury"] = prepare_mercury(m, root);
  out["progress_pool"] = progress_pool;
  out["rpc_pool"] = rpc_pool;
  out["progress_spindown_msec"] = m.value("progress_spindown_msec", 10);
  out["progress_timeout_ub_msec"] = m.value("progress_timeout_ub_msec", 100);
  if (m.contains("plumber")) out["plumber"] = m["plumber"];
  out["version"] = "0.24.0";
  return out;
}

json prepare_provider(const json& p, size_t i) {
  std::string path = index_path("providers", i);
  if (!p.is_object())
    throw ConfigError("Invalid provider configuration: expected an object, got " +
                          json_type_name(p),
                      path);
  auto need = [&](const char* key) {
    if (!p.contains(key))
      throw ConfigError(std::string("Invalid provider configuration: required field \"") + key +
                            "\" is missing",
                        path);
  };
  need("name");
  need("type");
  if (!p["name"].is_string())
    throw ConfigError("Invalid provider configuration: \"name\" should be a string", key_path(path, "name"));
  std::string name = p["name"];
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_') ||
      !std::all_of(name.begin(), name.end(),
                   [](unsigned char c) { return std::isalnum(c) || c == '_'; }))
    throw ConfigError("Invalid provider configuration: name \"" + name +
                          "\" does not match ^[a-zA-Z_][a-zA-Z0-9_]*$",
                      key_path(path, "name"));
  if (!p["type"].is_string())
    throw ConfigError("Invalid provider configuration: \"type\" should be a string", key_path(path, "type"));
  if (p.contains("provider_id")) {
    const json& id = p["provider_id"];
    if (!is_int(id) || id.get<long long>() < 0 || id.get<long long>() > 65535)
      throw ConfigError("Invalid provider configuration: \"provider_id\" should be an integer "
                        "between 0 and 65535 (got " + id.dump() + ")",
                        key_path(path, "provider_id"));
  }
  if (p.contains("tags")) {
    const json& t = p["tags"];
    if (!t.is_array() || !std::all_of(t.begin(), t.end(), [](const json& e) { return e.is_string(); }))
      throw ConfigError("Invalid provider configuration: \"tags\" should be an array of strings",
                        key_path(path, "tags"));
  }
  if (p.contains("config") && !p["config"].is_object())
    throw ConfigError("Invalid provider configuration: \"config\" should be an object",
                      key_path(path, "config"));
  if (p.contains("dependencies")) {
    const json& d = p["dependencies"];
    if (!d.is_object())
      throw ConfigError("Invalid provider configuration: \"dependencies\" should be an object",
                        key_path(path, "dependencies"));
    for (auto it = d.begin(); it != d.end(); ++it) {
      auto ok = [](const json& v) { return v.is_string() || is_int(v); };
      bool good = ok(it.value()) ||
                  (it.value().is_array() &&
                   std::all_of(it.value().begin(), it.value().end(), ok));
      if (!good)
        throw ConfigError("Invalid provider configuration: dependency \"" + it.key() +
                              "\" should be a string, an integer, or an array of them",
                          key_path(key_path(path, "dependencies"), it.key()));
    }
  }
  if (p.contains("engine")) {
    if (!is_int(p["engine"]) || p["engine"].get<long long>() != 0)
      throw ConfigError("Invalid engine index", key_path(path, "engine"));
  }
  json out = {{"name", name},
              {"type", p["type"]},
              {"config", p.value("config", json::object())},
              {"dependencies", p.value("dependencies", json::object())},
              {"tags", p.value("tags", json::array())},
              {"engine", 0}};
  if (p.contains("provider_id")) out["provider_id"] = p["provider_id"];
  return out;
}

}  // namespace

json prepare_config(const json& input, const ConfigContext& ctx, std::vector<std::string>* warnings) {
  if (!input.is_object())
    throw ConfigError("Bedrock configuration should be a JSON object (got " +
                          json_type_name(input) + ")",
                      "");
  json cfg = filter_if(expand_dotted_keys(input), ctx);

  json margo_in = cfg.value("margo", json::object());
  if (margo_in.is_array()) {
    if (margo_in.size() != 1)
      throw ConfigError("bedrock-engine runs a single Margo engine (got " +
                            std::to_string(margo_in.size()) +
                            " in the \"margo\" array); use the Spack-built bedrock for multiple "
                            "Margo instances",
                        "margo");
    margo_in = margo_in[0];
  }
  json out = json::object();
  out["margo"] = prepare_margo(margo_in, warnings);

  out["libraries"] = json::array();
  if (cfg.contains("libraries")) {
    const json& libs = cfg["libraries"];
    if (!libs.is_array()) throw ConfigError("\"libraries\" field needs to be an array", "libraries");
    for (size_t i = 0; i < libs.size(); ++i) {
      if (!libs[i].is_string())
        throw ConfigError("Module library should be a string", index_path("libraries", i));
      std::string lib = libs[i];
      if (builtin_module_for_library(lib).empty())
        throw ConfigError("Could not dlopen library " + lib + ": bedrock-engine has no built-in "
                              "module for it (built-in: libflock-bedrock-module.so, "
                              "libyokan-bedrock-module.so, libabt-io-bedrock-module.so, "
                              "libwarabi-bedrock-module.so); use the "
                              "Spack-built bedrock to load other modules",
                          index_path("libraries", i));
      out["libraries"].push_back(lib);
    }
  }

  out["providers"] = json::array();
  if (cfg.contains("providers")) {
    const json& ps = cfg["providers"];
    if (!ps.is_array()) throw ConfigError("\"providers\" field should be an array", "providers");
    for (size_t i = 0; i < ps.size(); ++i) out["providers"].push_back(prepare_provider(ps[i], i));
  }

  json bedrock = cfg.value("bedrock", json::object());
  if (!bedrock.is_object())
    throw ConfigError("\"bedrock\" field should be an object", "bedrock");
  json b = json::object();
  const json& abt_pools = out["margo"]["argobots"]["pools"];
  if (bedrock.contains("pool")) {
    const json& ref = bedrock["pool"];
    if (is_int(ref)) {
      long long idx = ref.get<long long>();
      if (idx < 0 || idx >= static_cast<long long>(abt_pools.size()))
        throw ConfigError("Could not find pool at index " + std::to_string(idx), "bedrock.pool");
      b["pool"] = abt_pools[static_cast<size_t>(idx)]["name"];
    } else if (ref.is_string()) {
      std::string n = ref;
      if (!std::any_of(abt_pools.begin(), abt_pools.end(), [&](const json& p) { return p["name"] == n; }))
        throw ConfigError("Could not find pool with name \"" + n + "\"", "bedrock.pool");
      b["pool"] = n;
    } else {
      throw ConfigError("\"pool\" field in \"bedrock\" should be a string or an integer",
                        "bedrock.pool");
    }
  } else {
    b["pool"] = out["margo"]["rpc_pool"];
  }
  b["provider_id"] = 0;
  if (bedrock.contains("provider_id")) {
    const json& id = bedrock["provider_id"];
    if (!is_int(id) || id.get<long long>() < 0 || id.get<long long>() > 65535)
      throw ConfigError("\"provider_id\" in \"bedrock\" should be an integer between 0 and 65535",
                        "bedrock.provider_id");
    b["provider_id"] = id;
  }
  if (bedrock.contains("dependency_resolution_timeout")) {
    if (!bedrock["dependency_resolution_timeout"].is_number())
      throw ConfigError("\"dependency_resolution_timeout\" in \"bedrock\" should be a number",
                        "bedrock.dependency_resolution_timeout");
  }
  out["bedrock"] = b;
  return out;
}

json load_config(const std::string& text, const ConfigContext& ctx, std::vector<std::string>* warnings) {
  return prepare_config(parse_config_text(text), ctx, warnings);
}

}  // namespace bedrock_engine
