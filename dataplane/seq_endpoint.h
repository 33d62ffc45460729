// An endpoint that is written rarely (latching, signaling updates) and read on every
// packet: a sequence lock. Readers never wait and never write; writers (a worker that
// latches, the peer flow's worker, the control plane) take turns with a compare-and-swap
// on the sequence and give up instead of spinning when another write is in progress.
#pragma once

#include <atomic>
#include <cstring>

#include "dataplane/addr.h"

namespace veil::dp {

class SeqEndpoint {
 public:
  // Copies the endpoint into `out` and its version into `ver`. Retries only while a write
  // is in flight (a few instructions).
  void read(Endpoint& out, uint32_t& ver) const {
    for (;;) {
      uint32_t s1 = seq_.load(std::memory_order_acquire);
      if (s1 & 1) continue;
      std::memcpy(static_cast<void*>(&out), static_cast<const void*>(&ep_), sizeof out);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (seq_.load(std::memory_order_relaxed) == s1) {
        ver = s1;
        return;
      }
    }
  }
  // The version alone (odd while a write is in flight): a reader that cached the endpoint
  // with read()'s `ver` knows it is unchanged while this returns the same value.
  uint32_t version() const { return seq_.load(std::memory_order_acquire); }
  // Where the version sits in the object (Flow::valid_word reads it with its neighbour).
  static constexpr size_t kVersionOffset = 0;
  Endpoint get() const {
    Endpoint e;
    uint32_t v;
    read(e, v);
    return e;
  }
  // Returns false if another writer holds it (the caller drops or retries later).
  bool try_write(const Endpoint& e) {
    uint32_t s = seq_.load(std::memory_order_relaxed);
    if ((s & 1) || !seq_.compare_exchange_strong(s, s + 1, std::memory_order_acquire))
      return false;
    std::atomic_thread_fence(std::memory_order_release);
    std::memcpy(static_cast<void*>(&ep_), static_cast<const void*>(&e), sizeof e);
    seq_.store(s + 2, std::memory_order_release);
    return true;
  }
  // The control plane's write: waits out a concurrent dataplane writer (a few ns).
  void write(const Endpoint& e) {
    while (!try_write(e)) {
    }
  }

 private:
  std::atomic<uint32_t> seq_{0};  // first: kVersionOffset
  Endpoint ep_;
};

}  // namespace veil::dp
