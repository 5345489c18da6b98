#include "runtime.hpp"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>
#include <stdexcept>

namespace bedrock_engine {

namespace {
thread_local Xstream* t_current = nullptr;
thread_local int t_depth = 0;
}

int Xstream::run_depth() { return t_depth; }

int Xstream::begin_sleep() {
  sleeping_.store(true, std::memory_order_seq_cst);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (has_pending() || stop_.load()) {
    sleeping_.store(false, std::memory_order_seq_cst);
    return -1;
  }
  return wake_fd_;
}

void Xstream::end_sleep() {
  sleeping_.store(false, std::memory_order_seq_cst);
  uint64_t v;
  while (read(wake_fd_, &v, sizeof v) > 0) {
  }
}

int current_tid() {
  // Every response carries the handler's thread id: a syscall each time cost ~0.1-0.3 us of a
  // ~0.5 us round trip here. The engine never forks, so a thread's id never changes.
  thread_local int tid = static_cast<int>(syscall(SYS_gettid));
  return tid;
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

Pool::Pool(std::string name, std::string kind, std::string access)
    : name_(std::move(name)), kind_(std::move(kind)), access_(std::move(access)) {}

void Pool::push(Task task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    tasks_.push_back(std::move(task));
    size_.fetch_add(1, std::memory_order_release);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (Xstream* xs : subscribers_) xs->notify();
  // Handing work to an xstream pinned to our own CPU (a packed layout): it runs only when we
  // give the CPU up, so do it now rather than at the next idle yield of our spin loop (up to
  // a few hundred microseconds later on TCP, where each spin is an epoll_wait).
  Xstream* me = Xstream::current();
  if (me && std::find(subscribers_.begin(), subscribers_.end(), me) == subscribers_.end() &&
      std::any_of(subscribers_.begin(), subscribers_.end(),
                  [me](const Xstream* xs) { return me->shares_cpu_with(*xs); }))
    sched_yield();
}

bool Pool::try_pop(Task& out) {
  if (size_.load(std::memory_order_acquire) == 0) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  if (tasks_.empty()) return false;
  out = std::move(tasks_.front());
  tasks_.pop_front();
  size_.fetch_sub(1, std::memory_order_release);
  return true;
}

Xstream::Xstream(std::string name, std::string sched_type, std::vector<Pool*> pools,
                 std::vector<int> cpus)
    : name_(std::move(name)),
      sched_type_(std::move(sched_type)),
      pools_(std::move(pools)),
      cpus_(std::move(cpus)) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  for (Pool* p : pools_) p->subscribe(this);
}

Xstream::~Xstream() {
  stop();
  join();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void Xstream::pin_current_thread() {
  tid_.store(current_tid());
  if (cpus_.empty()) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus_) {
    if (c < 0 || c >= CPU_SETSIZE)
      throw std::runtime_error("xstream \"" + name_ + "\": CPU " + std::to_string(c) +
                               " is out of range");
    CPU_SET(c, &set);
  }
  int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  if (rc != 0)
    throw std::runtime_error("xstream \"" + name_ + "\": could not pin thread to CPUs " +
                             format_cpu_list(cpus_) + ": " + std::strerror(rc));
}

void Xstream::start() {
  std::promise<void> started;
  auto fut = started.get_future();
  thread_ = std::thread([this, &started] {
    try {
      pin_current_thread();
    } catch (...) {
      started.set_exception(std::current_exception());
      return;
    }
    started.set_value();
    loop();
  });
  try {
    fut.get();
  } catch (...) {
    thread_.join();
    throw;
  }
}

void Xstream::run_on_current_thread() {
  pin_current_thread();
  loop();
}

void Xstream::stop() {
  stop_.store(true);
  uint64_t one = 1;
  if (wake_fd_ >= 0) {
    ssize_t rc = write(wake_fd_, &one, sizeof one);
    (void)rc;
  }
}

void Xstream::join() {
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

Xstream* Xstream::current() { return t_current; }

bool Xstream::run_one() {
  Task task;
  for (Pool* p : pools_) {
    if (p->try_pop(task)) {
      Xstream* saved = t_current;
      t_current = this;
      ++t_depth;
      try {
        task();
      } catch (...) {
        --t_depth;
        t_current = saved;
        throw;
      }
      --t_depth;
      t_current = saved;
      return true;
    }
  }
  return false;
}

bool Xstream::shares_cpu_with(const Xstream& other) const {
  for (int c : cpus_)
    if (std::find(other.cpus_.begin(), other.cpus_.end(), c) != other.cpus_.end()) return true;
  return false;
}

bool Xstream::has_pending() const {
  for (Pool* p : pools_)
    if (p->size() > 0) return true;
  return false;
}

void Xstream::notify() {
  if (sleeping_.load(std::memory_order_seq_cst)) {
    uint64_t one = 1;
    ssize_t rc = write(wake_fd_, &one, sizeof one);
    (void)rc;
  }
}

bool Xstream::wait(int timeout_ms, int extra_fd) {
  sleeping_.store(true, std::memory_order_seq_cst);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  bool extra_ready = false;
  if (!has_pending() && !stop_.load()) {
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {extra_fd, POLLIN, 0}};
    int n = poll(fds, extra_fd >= 0 ? 2 : 1, timeout_ms);
    if (n > 0 && extra_fd >= 0 && (fds[1].revents & POLLIN)) extra_ready = true;
  }
  sleeping_.store(false, std::memory_order_seq_cst);
  uint64_t v;
  while (read(wake_fd_, &v, sizeof v) > 0) {
  }
  return extra_ready;
}

void Xstream::loop() {
  t_current = this;
  const bool waits = sched_type_ == "basic_wait" || sched_type_ == "default" ||
                     sched_type_ == "prio" || sched_type_ == "randws";
  unsigned idle = 0;
  while (!stop_.load(std::memory_order_acquire)) {
    if (run_one()) {
      idle = 0;
      continue;
    }
    // Spin briefly before sleeping: a hand-off between xstreams stays in the microseconds.
    if (++idle < 2000) {
      // Yield now and then: on an oversubscribed node the peer we wait for may need this CPU.
      if ((idle & 15) == 0) sched_yield(); else __builtin_ia32_pause();
      continue;
    }
    if (waits) {
      wait(100);
    } else {
      sched_yield();
    }
  }
  // Drain nothing: remaining tasks are dropped at finalize.
  t_current = nullptr;
}

std::vector<int> Xstream::actual_cpus() const {
  std::vector<int> out;
  int tid = tid_.load();
  if (tid == 0) return out;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(tid, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

}  // namespace bedrock_engine
