// Packet capture for `veilctl capture` (issue #4): the control plane arms a capture of one
// flow or one port; the workers copy matching packets into a small dedicated mempool and
// put them on a ring that the control plane drains. dpdk-dumpcap needs a secondary process
// (hugepage mode only); this works in every mode.
//
// Cost when nothing is armed: the workers test `on` (one relaxed load of a line nobody
// writes, one well-predicted branch) once per received burst, once per relayed packet and
// once per transmitted burst. When armed, a matching packet costs an mbuf copy (snaplen
// bytes) and a ring enqueue; a full ring or an empty pool drops the copy (counted in
// `dropped`), never the packet, and the worker never waits.
#pragma once

#include <rte_mbuf.h>
#include <rte_ring.h>

#include <atomic>
#include <cstdint>

namespace veil::dp {

enum CapDir : uint8_t { kCapIn = 1, kCapOut = 2 };

// One captured packet on the ring (workers: multi-producer; control: single consumer).
struct CapRecord {
  rte_mbuf* m;        // the copy (at most snaplen bytes), from CaptureArm::pool
  uint64_t tsc;       // when the worker saw it
  uint32_t wire_len;  // length of the original frame
  uint8_t port;       // logical port it arrived on (kCapIn) or left by (kCapOut)
  uint8_t dir;        // kCapIn or kCapOut
  uint16_t pad;
};
static_assert(sizeof(CapRecord) == 24);

struct alignas(64) CaptureArm {
  // The one flag the workers test. The control plane writes the other fields while it is
  // false, then sets it with release order; workers read them after an acquire load.
  std::atomic<bool> on{false};
  uint32_t flow_id = 0;  // non-zero: capture this flow; 0: capture `port`
  uint8_t port = 0;      // logical port (port captures)
  uint8_t dir = kCapIn;  // kCapIn | kCapOut
  uint16_t snaplen = 0;
  // Copies still to take; the worker that takes the last one clears `on`.
  alignas(64) std::atomic<int64_t> left{0};
  std::atomic<uint64_t> captured{0};
  std::atomic<uint64_t> dropped{0};  // ring full or pool empty
  rte_ring* ring = nullptr;
  rte_mempool* pool = nullptr;

  static constexpr unsigned kRingSize = 2048;  // records; the pool holds kRingSize - 1 mbufs

  bool armed() const { return on.load(std::memory_order_acquire); }
};

}  // namespace veil::dp
