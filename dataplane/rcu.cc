#include "dataplane/rcu.h"

#include <rte_malloc.h>

namespace veil::dp {

std::unique_ptr<Rcu> Rcu::create(uint32_t max_threads) {
  std::unique_ptr<Rcu> r(new Rcu());
  size_t sz = rte_rcu_qsbr_get_memsize(max_threads);
  r->v_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("veil_rcu", sz, RTE_CACHE_LINE_SIZE));
  if (!r->v_ || rte_rcu_qsbr_init(r->v_, max_threads) != 0) return nullptr;
  return r;
}

Rcu::~Rcu() {
  drain();
  rte_free(v_);
}

void Rcu::defer(std::function<void()> fn) {
  pending_.push_back({rte_rcu_qsbr_start(v_), std::move(fn)});
}

size_t Rcu::reclaim() {
  while (!pending_.empty() && rte_rcu_qsbr_check(v_, pending_.front().token, false) == 1) {
    auto fn = std::move(pending_.front().fn);
    pending_.pop_front();
    fn();
  }
  return pending_.size();
}

void Rcu::drain() {
  while (!pending_.empty()) {
    rte_rcu_qsbr_check(v_, pending_.front().token, true);
    reclaim();
  }
}

}  // namespace veil::dp
