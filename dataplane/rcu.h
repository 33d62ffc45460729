// RCU (DPDK's QSBR) for everything the control plane frees while workers may still read
// it: flow actions, flows, hash key slots. Workers report a quiescent state once per loop
// pass; the control plane defers frees until every worker has passed one since.
#pragma once

#include <rte_rcu_qsbr.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>

namespace veil::dp {

class Rcu {
 public:
  static std::unique_ptr<Rcu> create(uint32_t max_threads);
  ~Rcu();
  rte_rcu_qsbr* qsbr() const { return v_; }

  // Worker side.
  void online(uint32_t thread_id) {
    rte_rcu_qsbr_thread_register(v_, thread_id);
    rte_rcu_qsbr_thread_online(v_, thread_id);
  }
  void offline(uint32_t thread_id) {
    rte_rcu_qsbr_thread_offline(v_, thread_id);
    rte_rcu_qsbr_thread_unregister(v_, thread_id);
  }
  void quiescent(uint32_t thread_id) { rte_rcu_qsbr_quiescent(v_, thread_id); }

  // Control plane side: run `fn` once all readers have passed a quiescent state.
  void defer(std::function<void()> fn);
  // Runs what is due; non-blocking. Returns how many remain.
  size_t reclaim();
  // Blocks until everything deferred so far has run (shutdown, tests).
  void drain();
  size_t pending() const { return pending_.size(); }

 private:
  Rcu() = default;
  rte_rcu_qsbr* v_ = nullptr;
  struct Deferred {
    uint64_t token;
    std::function<void()> fn;
  };
  std::deque<Deferred> pending_;
};

}  // namespace veil::dp
