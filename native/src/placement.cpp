#include "placement.hpp"

#include <sched.h>
#include <strings.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace bedrock_engine {

namespace {

std::vector<int> online_cpus() {
  std::vector<int> out;
  std::ifstream in("/sys/devices/system/cpu/online");
  std::string text;
  if (!(in >> text)) return thread_cpus(0);
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    size_t dash = part.find('-');
    int a = std::atoi(part.substr(0, dash).c_str());
    int b = dash == std::string::npos ? a : std::atoi(part.substr(dash + 1).c_str());
    for (int c = a; c <= b; ++c) out.push_back(c);
  }
  return out;
}

bool is_false(const char* s) {
  return strcasecmp(s, "n") == 0 || strcasecmp(s, "no") == 0 || strcasecmp(s, "false") == 0 ||
         strcasecmp(s, "off") == 0;
}

// sched_setaffinity with the ids in range; returns 0 or the errno.
int set_cpus(int tid, const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus)
    if (c >= 0 && c < CPU_SETSIZE) CPU_SET(c, &set);
  if (CPU_COUNT(&set) == 0) return EINVAL;
  return sched_setaffinity(tid, sizeof set, &set) == 0 ? 0 : errno;
}

std::string list(const std::vector<int>& cpus) {
  std::string out;
  for (int c : cpus) out += (out.empty() ? "" : ",") + std::to_string(c);
  return "[" + out + "]";
}

}  // namespace

std::vector<int> thread_cpus(int tid) {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (sched_getaffinity(tid, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

ArgobotsPlacement ArgobotsPlacement::for_this_process() {
  ArgobotsPlacement p;
  p.initial_ = thread_cpus(0);
  p.online_ = online_cpus();
  const char* env = std::getenv("ABT_SET_AFFINITY");
  if (!env) env = std::getenv("ABT_ENV_SET_AFFINITY");
  if (env && is_false(env)) {
    p.enabled_ = false;
    p.note_ = "default pinning off (ABT_SET_AFFINITY=" + std::string(env) + ")";
  } else if (env && *env) {
    p.note_ = "ABT_SET_AFFINITY=\"" + std::string(env) + "\": affinity lists are not " +
              "implemented by bedrock-engine, default pinning (rank r -> CPU r mod N) used";
  }
  if (p.initial_.empty()) p.enabled_ = false;
  return p;
}

std::vector<int> ArgobotsPlacement::default_cpus(int es_rank) const {
  if (!enabled_ || initial_.empty()) return {};
  return {initial_[static_cast<size_t>(es_rank) % initial_.size()]};
}

std::vector<int> ArgobotsPlacement::predict(int es_rank, const XstreamPlacement& req) const {
  std::vector<int> cpus = enabled_ ? default_cpus(es_rank) : initial_;
  if (req.has_affinity) {
    std::vector<int> ok;
    for (int c : req.affinity)
      if (std::find(online_.begin(), online_.end(), c) != online_.end()) ok.push_back(c);
    std::sort(ok.begin(), ok.end());
    ok.erase(std::unique(ok.begin(), ok.end()), ok.end());
    if (!ok.empty()) cpus = ok;
  }
  if (req.cpubind >= 0 &&
      std::find(online_.begin(), online_.end(), req.cpubind) != online_.end())
    cpus = {req.cpubind};
  return cpus;
}

std::vector<std::string> ArgobotsPlacement::apply(int tid, int es_rank,
                                                  const XstreamPlacement& req,
                                                  const std::string& name) const {
  std::vector<std::string> notes;
  if (enabled_) set_cpus(tid, default_cpus(es_rank));
  if (req.has_affinity) {
    int rc = set_cpus(tid, req.affinity);
    if (rc != 0)
      notes.push_back("xstream \"" + name + "\": affinity " + list(req.affinity) +
                      " could not be applied (" + std::strerror(rc) +
                      "); like Argobots, it keeps its previous placement");
  }
  if (req.cpubind >= 0) {
    int rc = set_cpus(tid, {req.cpubind});
    if (rc != 0)
      notes.push_back("xstream \"" + name + "\": cpubind " + std::to_string(req.cpubind) +
                      " could not be applied (" + std::strerror(rc) +
                      "); like Argobots, it keeps its previous placement");
  }
  return notes;
}

void report_cpus(json& xstream, const std::vector<int>& cpus) {
  if (cpus.empty()) return;
  xstream["affinity"] = cpus;
  xstream["cpubind"] = cpus.front();
}

}  // namespace bedrock_engine
