// Argobots-like runtime: pools of tasks, execution streams (OS threads, optionally pinned),
// schedulers pulling from their ordered pool lists. No user-level context switching: a task
// that must wait (e.g. for a nested RPC) calls Xstream::run_one() on its own xstream while
// it waits, so other work of that xstream's pools keeps running (see client.cpp).
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cpu_list.hpp"

namespace bedrock_engine {

using Task = std::function<void()>;
class Xstream;

class Pool {
 public:
  Pool(std::string name, std::string kind, std::string access);
  const std::string& name() const { return name_; }
  const std::string& kind() const { return kind_; }
  const std::string& access() const { return access_; }

  void push(Task task);
  bool try_pop(Task& out);
  size_t size() const { return size_.load(std::memory_order_acquire); }
  void subscribe(Xstream* xs) { subscribers_.push_back(xs); }  // setup time only

 private:
  std::string name_, kind_, access_;
  mutable std::mutex mutex_;
  std::deque<Task> tasks_;
  std::atomic<size_t> size_{0};
  std::vector<Xstream*> subscribers_;
};

class Xstream {
 public:
  Xstream(std::string name, std::string sched_type, std::vector<Pool*> pools,
          std::vector<int> cpus);
  ~Xstream();
  Xstream(const Xstream&) = delete;
  Xstream& operator=(const Xstream&) = delete;

  const std::string& name() const { return name_; }
  const std::string& sched_type() const { return sched_type_; }
  const std::vector<Pool*>& pools() const { return pools_; }
  const std::vector<int>& requested_cpus() const { return cpus_; }

  // Starts an OS thread running the scheduler loop. Throws if pinning fails.
  void start();
  // Runs the scheduler loop on the calling thread (the process's main thread for
  // __primary__) until stop() is called. Pins the calling thread first (throws on failure).
  void run_on_current_thread();
  void pin_current_thread();  // applies requested_cpus to the calling thread
  void stop();
  void join();

  // Runs one task from this xstream's pools (in order). Returns false if none was ready.
  bool run_one();
  bool has_pending() const;
  // Both are pinned and their CPU sets intersect (unpinned xstreams share nothing for sure).
  bool shares_cpu_with(const Xstream& other) const;
  // Wakes the xstream if it is sleeping (called by Pool::push).
  void notify();
  // Blocks until notified or timeout_ms elapsed. extra_fd (if >= 0) also wakes it up; returns
  // true if extra_fd became readable.
  bool wait(int timeout_ms, int extra_fd = -1);
  // For a progress loop that blocks elsewhere (epoll): marks the xstream sleeping and returns
  // the fd a Pool::push will signal, or -1 if work is already pending (do not block then).
  int begin_sleep();
  void end_sleep();
  bool stopping() const { return stop_.load(std::memory_order_acquire); }
  // How many run_one() calls are active on the calling thread (1 = scheduler loop, >1 =
  // nested inside a task that waits).
  static int run_depth();

  int os_thread_id() const { return tid_.load(); }
  std::vector<int> actual_cpus() const;  // sched_getaffinity of the thread

  static Xstream* current();  // the xstream running on the calling thread, or nullptr

 private:
  void loop();
  std::string name_, sched_type_;
  std::vector<Pool*> pools_;
  std::vector<int> cpus_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> sleeping_{false};
  std::atomic<int> tid_{0};
  int wake_fd_ = -1;
};

// CPUs this process may run on (sched_getaffinity of the process at call time).
std::vector<int> allowed_cpus();
int current_tid();

}  // namespace bedrock_engine
