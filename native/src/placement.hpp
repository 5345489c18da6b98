// Where Argobots puts an execution stream. Argobots built with affinity support (as our Spack
// environments ask: argobots+affinity) pins ES number r to the r-th CPU (mod N) of the CPUs the
// process had when Argobots started, unless ABT_SET_AFFINITY (or ABT_ENV_SET_AFFINITY) is
// n/no/false/off; Margo then applies an xstream's "affinity" and then its "cpubind", ignoring
// failures (a CPU the kernel refuses leaves the previous placement). __primary__ is ES 0, the
// other xstreams get ranks 1, 2, ... in the order they are created.
// Sources: https://github.com/pmodels/argobots/blob/bffdf56916879f9321a1d7983fa486736cd1d722/
// src/arch/abtd_affinity.c and src/arch/abtd_env.c; https://github.com/mochi-hpc/mochi-margo/
// blob/3dfd93d194866030f8502dbcf44283eff8194441/src/margo-abt-config.c.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace bedrock_engine {

using json = nlohmann::json;

struct XstreamPlacement {
  bool has_affinity = false;
  std::vector<int> affinity;
  int cpubind = -1;
};

class ArgobotsPlacement {
 public:
  // The calling thread's CPUs and the ABT_SET_AFFINITY switch, read now (call it before any
  // thread is pinned, like Argobots reads them in ABT_init).
  static ArgobotsPlacement for_this_process();

  bool enabled() const { return enabled_; }
  const std::vector<int>& initial_cpus() const { return initial_; }
  const std::string& note() const { return note_; }  // why the switch was read as it was
  std::vector<int> default_cpus(int es_rank) const;  // empty when default pinning is off

  // The CPUs an ES ends up on (predicted, for configs checked without starting threads).
  std::vector<int> predict(int es_rank, const XstreamPlacement& requested) const;
  // Places thread tid as Argobots and Margo do. Returns what could not be applied (Margo is
  // silent about it; the engine logs it as a warning).
  std::vector<std::string> apply(int tid, int es_rank, const XstreamPlacement& requested,
                                 const std::string& name) const;

 private:
  bool enabled_ = true;
  std::vector<int> initial_;
  std::vector<int> online_;
  std::string note_;
};

// sched_getaffinity of a thread (tid 0: the calling thread).
std::vector<int> thread_cpus(int tid);
// The running config's "cpubind" (first CPU) and "affinity" (all CPUs), as Margo reports
// them from ABT_xstream_get_cpubind/get_affinity; nothing if cpus is empty.
void report_cpus(json& xstream, const std::vector<int>& cpus);

}  // namespace bedrock_engine
