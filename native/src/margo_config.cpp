#include "margo_config.hpp"

#include <algorithm>
#include <cctype>
#include <set>

#include "placement.hpp"

namespace bedrock_engine {

namespace {

const std::set<std::string> kPoolKinds = {"fifo", "fifo_wait", "prio_wait", "earliest_first"};
const std::set<std::string> kPoolAccess = {"private", "spsc", "mpsc", "spmc", "mpmc"};
const std::set<std::string> kSchedTypes = {"default", "basic", "prio", "randws", "basic_wait"};

// A Margo error: its message, and the "^ in" pointer Margo logs for pool/xstream entries.
[[noreturn]] void margo_error(const std::string& message, const std::string& path,
                              const std::string& abt_path = "") {
  std::vector<std::string> lines = {message};
  if (!abt_path.empty()) lines.push_back("^ in \"" + abt_path + "\"");
  throw ConfigError(message, path, lines);
}

// Margo's type-check message (verbatim, including its unbalanced quote).
[[noreturn]] void type_error(const std::string& key, const std::string& ctx_name,
                             const std::string& expected, const json& got,
                             const std::string& path, const std::string& abt_path = "") {
  margo_error("Invalid type for \"" + key + " in " + ctx_name + " configuration (expected " +
                  expected + ", got " + json_type_name(got) + ")",
              path, abt_path);
}

// json-c has no null values: a key whose value is null is absent for Margo.
const json* field(const json& obj, const std::string& key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

void check_optional(const json& obj, const std::string& key, const std::string& expected,
                    const std::string& ctx_name, const std::string& path,
                    const std::string& abt_path = "") {
  const json* v = field(obj, key);
  if (!v) return;
  bool ok = (expected == "int" && is_int(*v)) || (expected == "boolean" && v->is_boolean()) ||
            (expected == "string" && v->is_string()) ||
            (expected == "object" && v->is_object()) || (expected == "array" && v->is_array());
  if (!ok) type_error(key, ctx_name, expected, *v, path, abt_path);
}

void check_non_negative(const json& obj, const std::string& key, const std::string& path) {
  const json* v = field(obj, key);
  if (v && v->get<long long>() < 0)
    margo_error("\"" + key + "\" must not be negative", key_path(path, key));
}

bool valid_name(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(),
                     [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

struct PoolSpec {
  std::string name, kind, access;
};
struct XstreamSpec {
  std::string name, sched_type;
  std::vector<std::string> pools;
  int cpubind = -1;
  std::vector<int> affinity;
  bool has_affinity = false;
};

struct ArgobotsModel {
  std::vector<PoolSpec> pools;
  size_t declared_pools = 0;  // pools written in the config (before __primary__ and expansions)
  std::vector<XstreamSpec> xstreams;
  std::string progress_pool, rpc_pool;

  bool pool_exists(const std::string& n) const {
    return std::any_of(pools.begin(), pools.end(), [&](const PoolSpec& p) { return p.name == n; });
  }
  bool declared_pool(const std::string& n) const {
    return std::any_of(pools.begin(), pools.begin() + static_cast<long>(declared_pools),
                       [&](const PoolSpec& p) { return p.name == n; });
  }
};

// ---- step 1: the mercury section -------------------------------------------------------------
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

json prepare_mercury(const json& margo, const std::string& root) {
  json out = mercury_defaults();
  const json* merc = field(margo, "mercury");
  if (!merc) return out;
  if (!merc->is_object())
    margo_error("\"mercury\" field in configuration must be an object", key_path(root, "mercury"));
  std::string mpath = key_path(root, "mercury");
  static const std::vector<std::string> bools = {
      "listening", "auto_sm", "no_bulk_eager", "no_loopback", "stats", "na_no_block",
      "na_no_retry", "na_request_mem_device"};
  static const std::vector<std::string> ints = {
      "request_post_init", "request_post_incr", "max_contexts", "input_eager_size",
      "output_eager_size", "na_max_unexpected_size", "na_max_expected_size"};
  static const std::vector<std::string> strings = {
      "address", "version", "ip_subnet", "auth_key", "log_level", "log_subsys", "sm_info_string",
      "checksum_level", "na_addr_format"};
  for (const auto& k : bools) check_optional(*merc, k, "boolean", "mercury", mpath);
  for (const auto& k : ints) check_optional(*merc, k, "int", "mercury", mpath);
  for (const auto& k : strings) check_optional(*merc, k, "string", "mercury", mpath);
  if (const json* v = field(*merc, "checksum_level")) {
    std::string s = *v;
    if (s != "none" && s != "rpc_headers" && s != "rpc_payload")
      margo_error("Invalid enum value for \"checksum_level\" (\"" + s + "\")", mpath);
  }
  if (const json* v = field(*merc, "na_addr_format")) {
    std::string s = *v;
    if (s != "unspec" && s != "ipv4" && s != "ipv6" && s != "native")
      margo_error("Invalid enum value for \"na_addr_format\" (\"" + s + "\")", mpath);
  }
  // Only the keys Margo knows are reported (it rebuilds the section); version is Mercury's.
  for (const auto* list : {&bools, &ints, &strings})
    for (const auto& k : *list)
      if (const json* v = field(*merc, k); v && k != "version") out[k] = *v;
  return out;
}

// ---- step 2: scalar fields of the margo section ----------------------------------------------
void check_margo_fields(const json& m, const std::string& root) {
  if (const json* p = field(m, "plumber"); p && !p->is_object())
    type_error("plumber", "margo", "object", *p, key_path(root, "plumber"));
  for (const char* k : {"progress_spindown_msec", "progress_timeout_ub_msec", "handle_cache_size"}) {
    check_optional(m, k, "int", "margo", key_path(root, k));
    check_non_negative(m, k, root);
  }
  for (const char* k : {"progress_pool", "rpc_pool"}) {
    const json* v = field(m, k);
    if (v && !is_int(*v) && !v->is_string())
      margo_error("\"" + std::string(k) + "\" field in configuration should be an integer or a "
                  "string", key_path(root, k));
  }
  check_optional(m, "use_progress_thread", "boolean", "margo",
                 key_path(root, "use_progress_thread"));
  check_optional(m, "rpc_thread_count", "int", "margo", key_path(root, "rpc_thread_count"));
  check_optional(m, "enable_abt_profiling", "boolean", "margo",
                 key_path(root, "enable_abt_profiling"));
}

// ---- step 3: pools -----------------------------------------------------------------------------
void read_pools(const json& argobots, const std::string& apath, ArgobotsModel& abt) {
  const json* pools_in = field(argobots, "pools");
  if (!pools_in) return;
  for (size_t i = 0; i < pools_in->size(); ++i) {
    const json& p = (*pools_in)[i];
    std::string full = index_path(key_path(apath, "pools"), i);
    std::string abt_path = index_path("argobots.pools", i);
    if (!p.is_object())
      type_error("pools[" + std::to_string(i) + "]", "argobots", "object", p, full, abt_path);
    check_optional(p, "name", "string", "pool", full, abt_path);
    check_optional(p, "kind", "string", "pool", full, abt_path);
    check_optional(p, "access", "string", "pool", full, abt_path);
    PoolSpec s;
    s.name = field(p, "name") ? p["name"].get<std::string>() : "__pool_" + std::to_string(i) + "__";
    if (!valid_name(s.name))
      margo_error("Invalid name \"" + s.name + "\" for pool (names must not be empty, must not "
                  "start with a digit, and may only contain letters, digits and '_')",
                  full, abt_path);
    s.kind = field(p, "kind") ? p["kind"].get<std::string>() : "fifo_wait";
    if (s.kind == "external" || !kPoolKinds.count(s.kind))
      margo_error("Invalid enum value for pool kind (\"" + s.kind + "\")", full, abt_path);
    s.access = field(p, "access") ? p["access"].get<std::string>() : "mpmc";
    if (!kPoolAccess.count(s.access))
      margo_error("Invalid enum value for pool access (\"" + s.access + "\")", full, abt_path);
    abt.pools.push_back(s);
  }
  for (size_t i = 0; i < abt.pools.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (abt.pools[i].name == abt.pools[j].name)
        margo_error("Found two elements with the same name (\"" + abt.pools[i].name +
                        "\") in \"argobots.pools\"",
                    index_path(key_path(apath, "pools"), i));
  abt.declared_pools = abt.pools.size();
}

// ---- step 4: xstreams --------------------------------------------------------------------------
void read_xstreams(const json& argobots, const std::string& apath, ArgobotsModel& abt) {
  const json* xs_in = field(argobots, "xstreams");
  if (!xs_in) return;
  for (size_t i = 0; i < xs_in->size(); ++i) {
    const json& x = (*xs_in)[i];
    std::string full = index_path(key_path(apath, "xstreams"), i);
    std::string abt_path = index_path("argobots.xstreams", i);
    if (!x.is_object())
      type_error("xstreams[" + std::to_string(i) + "]", "argobots", "object", x, full, abt_path);
    check_optional(x, "name", "string", "xstream", full, abt_path);
    check_optional(x, "cpubind", "int", "xstream", full, abt_path);
    check_optional(x, "affinity", "array", "xstream", full, abt_path);
    check_optional(x, "scheduler", "object", "xstream", full, abt_path);
    XstreamSpec s;
    s.name = field(x, "name") ? x["name"].get<std::string>()
                              : "__xstream_" + std::to_string(i) + "__";
    if (!valid_name(s.name))
      margo_error("Invalid name \"" + s.name + "\" for xstream (names must not be empty, must "
                  "not start with a digit, and may only contain letters, digits and '_')",
                  full, abt_path);
    if (field(x, "cpubind")) s.cpubind = static_cast<int>(x["cpubind"].get<long long>());
    if (const json* aff = field(x, "affinity")) {
      s.has_affinity = true;
      for (const auto& a : *aff) {
        if (!is_int(a)) margo_error("Invalid type found in affinity array", full, abt_path);
        s.affinity.push_back(static_cast<int>(a.get<long long>()));
      }
    }
    const json* sched = field(x, "scheduler");
    if (!sched)
      margo_error("\"scheduler\" field missing in xstream configuration (every xstream needs a "
                  "scheduler with at least one pool)", full, abt_path);
    check_optional(*sched, "type", "string", "scheduler", full, abt_path);
    check_optional(*sched, "pools", "array", "scheduler", full, abt_path);
    s.sched_type = field(*sched, "type") ? (*sched)["type"].get<std::string>() : "basic_wait";
    if (!kSchedTypes.count(s.sched_type))
      margo_error("Invalid enum value for scheduler.type (\"" + s.sched_type + "\")", full,
                  abt_path);
    const json* refs = field(*sched, "pools");
    if (!refs || refs->empty()) margo_error("Scheduler must have at least one pool", full, abt_path);
    for (const auto& r : *refs) {
      if (is_int(r)) {
        long long idx = r.get<long long>();
        if (idx < 0 || idx >= static_cast<long long>(abt.declared_pools))
          margo_error("Invalid pool index (" + std::to_string(idx) + ") in scheduler "
                      "configuration", full, abt_path);
        s.pools.push_back(abt.pools[static_cast<size_t>(idx)].name);
      } else if (r.is_string()) {
        std::string n = r.get<std::string>();
        if (!abt.declared_pool(n) && n != "__primary__")
          margo_error("Invalid reference to pool \"" + n + "\" in scheduler configuration",
                      full, abt_path);
        s.pools.push_back(n);
      } else {
        margo_error("Invalid type for pool reference in scheduler configuration (expected int "
                    "or string, got " + json_type_name(r) + ")", full, abt_path);
      }
    }
    for (const auto& other : abt.xstreams)
      if (other.name == s.name)
        margo_error("Found two elements with the same name (\"" + s.name +
                        "\") in \"argobots.xstreams\"",
                    full);
    abt.xstreams.push_back(s);
  }
}

// ---- step 5: the __primary__ pool and xstream --------------------------------------------------
void add_primary(const std::string& apath, ArgobotsModel& abt) {
  auto primary = std::find_if(abt.xstreams.begin(), abt.xstreams.end(),
                              [](const XstreamSpec& x) { return x.name == "__primary__"; });
  if (primary == abt.xstreams.end()) {
    if (!abt.pool_exists("__primary__")) abt.pools.push_back({"__primary__", "fifo_wait", "mpmc"});
    XstreamSpec p;
    p.name = "__primary__";
    p.sched_type = "basic_wait";
    p.pools = {"__primary__"};
    abt.xstreams.push_back(p);
  } else {
    if (!abt.pool_exists("__primary__"))
      margo_error("Could not find __primary__ pool after initialization from configuration",
                  key_path(apath, "pools"));
    if (primary->pools.front() != "__primary__")
      margo_error("Pool with name \"__primary__\" should be the first pool of the primary "
                  "xstream",
                  index_path(key_path(apath, "xstreams"),
                             static_cast<size_t>(primary - abt.xstreams.begin())));
  }
  // Scheduler references to an implicit __primary__ pool are valid only if it now exists.
  for (size_t i = 0; i < abt.xstreams.size(); ++i)
    for (const auto& n : abt.xstreams[i].pools)
      if (!abt.pool_exists(n))
        margo_error("Invalid reference to pool \"" + n + "\" in scheduler configuration",
                    index_path(key_path(apath, "xstreams"), i),
                    index_path("argobots.xstreams", i));
}

// ---- step 6: progress and rpc pools ------------------------------------------------------------
std::string resolve_pool_ref(const ArgobotsModel& abt, const char* key, const json& ref,
                             const std::string& root) {
  std::string kpath = key_path(root, key);
  if (is_int(ref)) {
    long long idx = ref.get<long long>();
    if (idx < 0 || idx >= static_cast<long long>(abt.declared_pools))
      margo_error("Invalid \"" + std::string(key) + "\" index (" + std::to_string(idx) + ")",
                  kpath);
    return abt.pools[static_cast<size_t>(idx)].name;
  }
  std::string n = ref.get<std::string>();
  if (n != "__primary__" && !abt.declared_pool(n))
    margo_error("Could not find element named \"" + n + "\" in \"argobots.pools\" array", kpath);
  return n;
}

std::string add_pool_with_xstreams(ArgobotsModel& abt, long long count) {
  std::string pname = "__pool_" + std::to_string(abt.pools.size()) + "__";
  abt.pools.push_back({pname, "fifo_wait", "mpmc"});
  for (long long i = 0; i < count; ++i) {
    XstreamSpec x;
    x.name = "__xstream_" + std::to_string(abt.xstreams.size()) + "__";
    x.sched_type = "basic_wait";
    x.pools = {pname};
    abt.xstreams.push_back(x);
  }
  return pname;
}

void choose_progress_and_rpc_pools(const json& m, const std::string& root, ArgobotsModel& abt,
                                   std::vector<std::string>* warnings) {
  const json* progress = field(m, "progress_pool");
  const json* use_thread = field(m, "use_progress_thread");
  if (use_thread && progress && warnings)
    warnings->push_back("\"use_progress_thread\" will be ignored because \"progress_pool\" "
                        "field was specified");
  const json* rpc = field(m, "rpc_pool");
  const json* count = field(m, "rpc_thread_count");
  if (count && rpc && warnings)
    warnings->push_back("\"rpc_thread_count\" will be ignored because \"rpc_pool\" field was "
                        "specified");
  if (progress)
    abt.progress_pool = resolve_pool_ref(abt, "progress_pool", *progress, root);
  if (rpc) abt.rpc_pool = resolve_pool_ref(abt, "rpc_pool", *rpc, root);
  if (!progress)
    abt.progress_pool = (use_thread && use_thread->get<bool>()) ? add_pool_with_xstreams(abt, 1)
                                                                : "__primary__";
  if (!rpc) {
    long long n = count ? count->get<long long>() : 0;
    abt.rpc_pool = n > 0 ? add_pool_with_xstreams(abt, n)
                         : (n < 0 ? abt.progress_pool : "__primary__");
  }
}

// ---- step 7: Margo's sanity check (warnings only) -----------------------------------------------
void sanity_check(const ArgobotsModel& abt, std::vector<std::string>* warnings) {
  if (!warnings) return;
  const std::string& progress = abt.progress_pool;
  std::set<std::string> first, with_progress, after, before;
  for (const auto& x : abt.xstreams) {
    bool has_progress = false;
    for (size_t j = 0; j < x.pools.size(); ++j) {
      const std::string& p = x.pools[j];
      if (p == progress) has_progress = true;
      if (j == 0) first.insert(p);
      if (p != progress) (has_progress ? after : before).insert(p);
    }
    if (has_progress) with_progress.insert(x.pools.begin(), x.pools.end());
  }
  for (size_t i = 0; i < abt.pools.size(); ++i) {
    const std::string& name = abt.pools[i].name;
    std::string at = "Pool \"" + name + "\" at index " + std::to_string(i);
    bool used = first.count(name) || with_progress.count(name) || after.count(name) ||
                before.count(name);
    if (!used) {
      warnings->push_back(at + " is not currently associated with any ES. ULT pushed into that "
                          "pool will not get executed.");
      continue;
    }
    if (!first.count(name))
      warnings->push_back(at + " is not the first pool of any ES. This could cause starvation "
                          "for ULTs pushed in that pool.");
    if (name == progress) continue;
    if (!before.count(name))
      warnings->push_back(at + " does not appear before the progress pool in any ES. Depending "
                          "on the type of scheduler used, this may cause ULTs pushed in that pool "
                          "to never execute because the progress pool will keep the ES busy.");
    if (after.count(name))
      warnings->push_back(at + " appears after the progress pool in at least one ES. Depending "
                          "on the type of scheduler used, this ES may never pull ULTs from that "
                          "pool because the progress pool will keep the ES busy.");
    if (with_progress.count(name))
      warnings->push_back(at + " is used by an ES that is also associated with the progress "
                          "pool. This may cause ULTs pushed into that pool to get unnecessarily "
                          "delayed.");
  }
}

// ---- step 8: the effective section -----------------------------------------------------------
json effective_argobots(const json& argobots, const ArgobotsModel& abt) {
  json out = json::object();
  out["abt_mem_max_num_stacks"] =
      field(argobots, "abt_mem_max_num_stacks") ? argobots["abt_mem_max_num_stacks"] : json(8);
  out["abt_thread_stacksize"] =
      field(argobots, "abt_thread_stacksize") ? argobots["abt_thread_stacksize"] : json(2097152);
  out["lazy_stack_alloc"] = false;  // Argobots without lazy stacks reports false, as requested or not
  out["profiling_dir"] = field(argobots, "profiling_dir") ? argobots["profiling_dir"] : json(".");
  out["pools"] = json::array();
  for (const auto& p : abt.pools)
    out["pools"].push_back({{"name", p.name}, {"kind", p.kind}, {"access", p.access}});
  out["xstreams"] = json::array();
  ArgobotsPlacement placement = ArgobotsPlacement::for_this_process();
  int rank = 1;  // __primary__ is Argobots' ES 0; the others are created in order
  for (const auto& x : abt.xstreams) {
    int es_rank = x.name == "__primary__" ? 0 : rank++;
    json j = {{"name", x.name}, {"scheduler", {{"type", x.sched_type}, {"pools", x.pools}}}};
    XstreamPlacement requested{x.has_affinity, x.affinity, x.cpubind};
    report_cpus(j, placement.predict(es_rank, requested));
    j[kPlacementKey] = {{"affinity", x.has_affinity ? json(x.affinity) : json()},
                        {"cpubind", x.cpubind}};
    out["xstreams"].push_back(j);
  }
  return out;
}

}  // namespace

json prepare_margo(const json& margo_in, std::vector<std::string>* warnings) {
  const std::string root = "margo";
  const json m = margo_in.is_null() ? json::object() : margo_in;
  if (!m.is_object()) type_error("margo", "bedrock", "object", m, root);
  json mercury = prepare_mercury(m, root);
  json argobots = json::object();
  if (const json* a = field(m, "argobots")) {
    if (!a->is_object()) type_error("argobots", "margo", "object", *a, key_path(root, "argobots"));
    argobots = *a;
  }
  const std::string apath = key_path(root, "argobots");
  for (const char* k : {"abt_mem_max_num_stacks", "abt_thread_stacksize"})
    check_optional(argobots, k, "int", "argobots", key_path(apath, k));
  check_optional(argobots, "profiling_dir", "string", "argobots", key_path(apath, "profiling_dir"));
  check_optional(argobots, "lazy_stack_alloc", "boolean", "argobots",
                 key_path(apath, "lazy_stack_alloc"));
  check_optional(argobots, "pools", "array", "argobots", key_path(apath, "pools"));
  check_optional(argobots, "xstreams", "array", "argobots", key_path(apath, "xstreams"));

  ArgobotsModel abt;
  read_pools(argobots, apath, abt);
  read_xstreams(argobots, apath, abt);
  add_primary(apath, abt);
  check_margo_fields(m, root);
  choose_progress_and_rpc_pools(m, root, abt, warnings);
  sanity_check(abt, warnings);

  json out = json::object();
  out["argobots"] = effective_argobots(argobots, abt);
  out["enable_abt_profiling"] =
      field(m, "enable_abt_profiling") ? m["enable_abt_profiling"] : json(false);
  out["handle_cache_size"] = field(m, "handle_cache_size") ? m["handle_cache_size"] : json(256);
  out["mercury"] = mercury;
  out["progress_pool"] = abt.progress_pool;
  out["rpc_pool"] = abt.rpc_pool;
  out["progress_spindown_msec"] =
      field(m, "progress_spindown_msec") ? m["progress_spindown_msec"] : json(10);
  out["progress_timeout_ub_msec"] =
      field(m, "progress_timeout_ub_msec") ? m["progress_timeout_ub_msec"] : json(100);
  if (const json* p = field(m, "plumber")) out["plumber"] = *p;
  out["version"] = "0.24.0";
  return out;
}

void apply_transport_eager_sizes(json& mercury, bool tcp) {
  // What Mercury 2.4.1 reports on this machine's na+sm and ofi+tcp (libfabric 1.17).
  mercury["input_eager_size"] = tcp ? 4060 : 4076;
  mercury["output_eager_size"] = 4076;
}

}  // namespace bedrock_engine
