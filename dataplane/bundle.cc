// BUNDLE (RFC 9143) demultiplexing on the browser's one 5-tuple (docs/architecture.md,
// "BUNDLE"). Called by WorkerCtx::relay_slow() for a flow whose action says `bundle`, after the
// ICE source/consent checks, the latch decision and SRTP unprotect: the packet is
// authenticated plain RTP/RTCP. RTP picks its m-line by payload type (the PT sets of one
// group are disjoint, the control plane checks that) and teaches the SSRC -> m-line map;
// RTCP goes by its first sender SSRC (an unknown one: the head's own m-line).
// No allocation, lock, system call or log: a few compares on lines of the head flow.
#include "dataplane/worker.h"

namespace veil::dp {

namespace {
inline uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
constexpr uint64_t kSsrcUsed = uint64_t(1) << 63;
}  // namespace

Flow* WorkerCtx::bundle_member(rte_mbuf* m, Flow* head, const uint8_t* payload, uint32_t plen) {
  const BundleMap* b = head->bundle.load(std::memory_order_acquire);
  if (!b) return head;  // no map published (out of memory at install): the head's own m-line
  unsigned e = 0;
  if (is_rtcp(payload)) {
    // RFC 3550 6.4: SR/RR (and every RTCP packet type here) carry the sender SSRC at 4..7.
    if (plen >= 8) {
      uint32_t ssrc = be32(payload + 4);
      for (unsigned i = 0; i < kBundleSsrcs; ++i) {
        uint64_t v = __atomic_load_n(&head->bundle_ssrc[i], __ATOMIC_RELAXED);
        if ((v & kSsrcUsed) && uint32_t(v) == ssrc) {
          e = unsigned(v >> 32) & 0xff;
          break;
        }
      }
    }
  } else {
    uint8_t pt = payload[1] & 0x7f;
    unsigned n = b->n < kBundleMax ? b->n : kBundleMax;
    for (e = 0; e < n; ++e)
      if ((b->pts[e][pt >> 6] >> (pt & 63)) & 1) break;
    if (e == n) {
      bump(head->drops[unsigned(FlowDrop::bundle_unknown_pt)]);
      drop(m, Drop::bundle_unknown_pt);
      return nullptr;
    }
    if (plen >= 12) {
      // Learn SSRC -> m-line (for its RTCP). An SSRC seen before keeps its slot (updated if
      // it moved); a new one takes a free slot, else the slot its value hashes to.
      uint32_t ssrc = be32(payload + 8);
      uint64_t want = kSsrcUsed | uint64_t(e) << 32 | ssrc;
      int free_slot = -1;
      unsigned i = 0;
      for (; i < kBundleSsrcs; ++i) {
        uint64_t v = __atomic_load_n(&head->bundle_ssrc[i], __ATOMIC_RELAXED);
        if ((v & kSsrcUsed) && uint32_t(v) == ssrc) break;
        if (!(v & kSsrcUsed) && free_slot < 0) free_slot = int(i);
      }
      if (i == kBundleSsrcs) i = free_slot >= 0 ? unsigned(free_slot) : ssrc % kBundleSsrcs;
      if (__atomic_load_n(&head->bundle_ssrc[i], __ATOMIC_RELAXED) != want)
        __atomic_store_n(&head->bundle_ssrc[i], want, __ATOMIC_RELAXED);
    }
  }
  if (e == 0 || e >= b->n) return head;
  Flow* mf = b->member[e];
  return mf ? mf : head;
}

}  // namespace veil::dp
