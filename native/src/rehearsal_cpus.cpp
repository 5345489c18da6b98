// libbedrock-rehearsal-cpus.so: the CPU numbering of a site's compute node, emulated on this
// host for `bedrock-deploy rehearse` (docs/rehearse.md). Preloaded (LD_PRELOAD) into every
// process the emulated launchers start, it makes the affinity calls speak the site's CPU
// numbers while the kernel applies them on this host's CPUs through a fixed map:
//
//   BEDROCK_REHEARSAL_CPU_MAP   host CPU of each site CPU, in site order ("0,1,0,1,...");
//                               its length is the number of CPUs of the site's node
//   BEDROCK_REHEARSAL_SITE_CPUS the site CPUs the launcher bound this process to (cpulist);
//                               kept up to date when the process re-binds itself (taskset)
//
// sched_setaffinity / pthread_setaffinity_np(site CPUs): like the kernel, CPUs the node does
// not have are ignored and a set without any CPU of the node fails with EINVAL
// (sched_setaffinity(2)); the host CPUs the map gives are applied for real.
// sched_getaffinity / pthread_getaffinity_np: the site CPUs last set for that thread, as long
// as the kernel still applies exactly their image; otherwise every site CPU whose image the
// kernel applies. Only callers whose CPU set is large enough for the site's node speak its
// numbering (a plain cpu_set_t: the engine, taskset); a caller that sized its set from this
// host's CPUs (hwloc inside MPI, sized from /sys) gets the host's own view, unchanged: an MPI
// library that saw site CPUs outside its topology would re-bind the process. Without
// BEDROCK_REHEARSAL_CPU_MAP every call passes through unchanged.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cpu_list.hpp"

namespace {

using SetAffinity = int (*)(pid_t, size_t, const cpu_set_t*);
using GetAffinity = int (*)(pid_t, size_t, cpu_set_t*);
using PthreadSet = int (*)(pthread_t, size_t, const cpu_set_t*);
using PthreadGet = int (*)(pthread_t, size_t, cpu_set_t*);

template <typename F>
F next_symbol(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

std::vector<int> parse_list(const char* text) {  // "0-3,8" or "0,1,0,1"
  std::vector<int> out;
  if (!text) return out;
  std::string s(text);
  size_t i = 0;
  while (i < s.size()) {
    size_t end = s.find(',', i);
    if (end == std::string::npos) end = s.size();
    std::string item = s.substr(i, end - i);
    size_t dash = item.find('-');
    char* stop = nullptr;
    if (!item.empty()) {
      long a = std::strtol(item.c_str(), &stop, 10);
      long b = dash == std::string::npos ? a : std::strtol(item.c_str() + dash + 1, &stop, 10);
      for (long c = a; c <= b && c - a < 65536; ++c) out.push_back(static_cast<int>(c));
    }
    i = end + 1;
  }
  return out;
}

class CpuMap {
 public:
  static CpuMap& get() {
    static CpuMap instance;
    return instance;
  }
  bool active() const { return !host_of_.empty(); }
  // Does a caller with a CPU set of `size` bytes speak the site's numbering?
  bool speaks_site(size_t size) const {
    return active() && size * 8 >= static_cast<size_t>(site_cpus());
  }
  int site_cpus() const { return static_cast<int>(host_of_.size()); }

  // Site CPUs of `set` that the node has (CPUs beyond it are ignored, as by the kernel).
  std::vector<int> site_members(size_t size, const cpu_set_t* set) const {
    std::vector<int> out;
    for (int c = 0; c < site_cpus(); ++c)
      if (static_cast<size_t>(c) / 8 < size && CPU_ISSET_S(c, size, set)) out.push_back(c);
    return out;
  }
  cpu_set_t host_image(const std::vector<int>& site) const {
    cpu_set_t out;
    CPU_ZERO(&out);
    for (int c : site) CPU_SET(host_of_[static_cast<size_t>(c)], &out);
    return out;
  }
  std::vector<int> preimage(const cpu_set_t& host) const {
    std::vector<int> out;
    for (int c = 0; c < site_cpus(); ++c)
      if (CPU_ISSET(host_of_[static_cast<size_t>(c)], &host)) out.push_back(c);
    return out;
  }
  void remember(pid_t tid, const std::vector<int>& site) {
    std::lock_guard<std::mutex> lock(mutex_);
    by_tid_[tid] = site;
  }
  bool recalled(pid_t tid, std::vector<int>& site) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = by_tid_.find(tid);
    if (it != by_tid_.end()) {
      site = it->second;
      return true;
    }
    site = parse_list(std::getenv("BEDROCK_REHEARSAL_SITE_CPUS"));
    return !site.empty();
  }

 private:
  CpuMap() {
    std::vector<int> map = parse_list(std::getenv("BEDROCK_REHEARSAL_CPU_MAP"));
    for (int h : map)
      if (h < 0 || h >= CPU_SETSIZE) return;  // malformed: pass every call through
    host_of_ = std::move(map);
  }
  std::vector<int> host_of_;
  std::mutex mutex_;
  std::unordered_map<pid_t, std::vector<int>> by_tid_;
};

pid_t own_tid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// The site view of the host set `host` of thread `tid`, written into `out` (size bytes).
int site_view(pid_t tid, const cpu_set_t& host, size_t size, cpu_set_t* out) {
  CpuMap& map = CpuMap::get();
  std::vector<int> site;
  bool known = map.recalled(tid, site);
  if (known) {
    cpu_set_t image = map.host_image(site);
    known = CPU_EQUAL(&host, &image);
  }
  if (!known) site = map.preimage(host);
  std::memset(out, 0, size);
  for (int c : site) CPU_SET_S(c, size, out);
  return 0;
}

// Applies the site set through `apply` (the real call, given host CPUs); records it.
template <typename Apply>
int set_site(size_t size, const cpu_set_t* set, pid_t tid, bool own_process, Apply apply) {
  CpuMap& map = CpuMap::get();
  std::vector<int> site = map.site_members(size, set);
  if (site.empty()) return EINVAL;
  cpu_set_t host = map.host_image(site);
  int rc = apply(host);
  if (rc != 0) return rc;
  if (tid > 0) map.remember(tid, site);
  if (own_process) {  // survives exec (taskset -c LIST program)
    std::string text = bedrock_engine::format_cpu_list(site);
    setenv("BEDROCK_REHEARSAL_SITE_CPUS", text.c_str(), 1);
  }
  return 0;
}

}  // namespace

extern "C" {

int sched_setaffinity(pid_t pid, size_t size, const cpu_set_t* set) {
  static SetAffinity real = next_symbol<SetAffinity>("sched_setaffinity");
  if (!real) {
    errno = ENOSYS;
    return -1;
  }
  if (!CpuMap::get().speaks_site(size) || !set) return real(pid, size, set);
  pid_t self = own_tid();
  pid_t tid = pid == 0 ? self : pid;
  int rc = set_site(size, set, tid, tid == self && self == getpid(), [&](const cpu_set_t& host) {
    return real(pid, sizeof host, &host) == 0 ? 0 : errno;
  });
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  return 0;
}

int sched_getaffinity(pid_t pid, size_t size, cpu_set_t* set) {
  static GetAffinity real = next_symbol<GetAffinity>("sched_getaffinity");
  if (!real) {
    errno = ENOSYS;
    return -1;
  }
  if (!CpuMap::get().speaks_site(size) || !set) return real(pid, size, set);
  cpu_set_t host;
  CPU_ZERO(&host);
  if (real(pid, sizeof host, &host) != 0) return -1;
  int rc = site_view(pid == 0 ? own_tid() : pid, host, size, set);
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  return 0;
}

int pthread_setaffinity_np(pthread_t thread, size_t size, const cpu_set_t* set) {
  static PthreadSet real = next_symbol<PthreadSet>("pthread_setaffinity_np");
  if (!real) return ENOSYS;
  if (!CpuMap::get().speaks_site(size)) return real(thread, size, set);
  bool self = pthread_equal(thread, pthread_self()) != 0;
  pid_t tid = self ? own_tid() : -1;
  return set_site(size, set, tid, self && tid == getpid(), [&](const cpu_set_t& host) {
    return real(thread, sizeof host, &host);
  });
}

int pthread_getaffinity_np(pthread_t thread, size_t size, cpu_set_t* set) {
  static PthreadGet real = next_symbol<PthreadGet>("pthread_getaffinity_np");
  if (!real) return ENOSYS;
  if (!CpuMap::get().speaks_site(size)) return real(thread, size, set);
  cpu_set_t host;
  CPU_ZERO(&host);
  int rc = real(thread, sizeof host, &host);
  if (rc != 0) return rc;
  return site_view(pthread_equal(thread, pthread_self()) ? own_tid() : -1, host, size, set);
}

}  // extern "C"
