// The per-lcore run-to-completion loop (DPDK l3fwd's shape): every pass receives a burst
// from each port, classifies it, relays media through the flow table, answers ARP/ND/echo,
// punts the rest to the exception path, transmits, then reports an RCU quiescent state.
// Nothing in it allocates, locks, makes a system call or logs (an optional idle sleep
// after many empty passes is the one exception, and it only runs when there is no traffic).
#pragma once

#include <rte_mbuf.h>

#include "dataplane/dataplane.h"

namespace veil::dp {

inline constexpr unsigned kMaxBurst = 64;
inline constexpr unsigned kTxCap = 256;
static_assert(kTxCap >= 2 * kMaxBurst, "process_burst makes room for a burst before its plain loop");

struct TxBuf {
  uint16_t n = 0;
  rte_mbuf* m[kTxCap];
};

struct alignas(64) WorkerCtx {
  Dataplane* dp = nullptr;
  unsigned index = 0;   // worker number = queue index on every port
  unsigned lcore = 0;   // RCU thread id
  uint16_t burst = 32;
  WorkerCounters cnt;
  rte_ring* ctl_tx = nullptr;  // control plane -> this worker: frames to send (m->port = logical port)

  // Exception-path policer (token bucket, refilled per pass from the TSC).
  uint64_t punt_tokens = 0;
  uint64_t punt_max = 0;
  uint64_t punt_last_tsc = 0;
  uint64_t cycles_per_token = 1;

  // Per-source exception-path policer: 4096 token buckets per worker, indexed by a hash of
  // the source (IPv4 address or IPv6 /64); colliding sources share a bucket, which can only
  // make the limit stricter for them. Worker-private: no sharing, no atomics.
  static constexpr unsigned kSrcBuckets = 4096;
  struct SrcBucket {
    uint32_t tokens;
    uint32_t last_tsc_hi;  // TSC >> 16 at the last refill
  };
  SrcBucket src_buckets[kSrcBuckets] = {};
  uint32_t src_max = 0;            // bucket depth (0: per-source policing off)
  uint64_t src_cycles_per_token = 1;

  // TSC -> RTP timestamp units for each static payload type (0: dynamic, rate unknown).
  uint32_t pt_mult[128] = {};

  uint64_t relatch_cycles = 0;
  uint64_t resolve_cycles = 0;
  uint64_t consent_cycles = 0;  // ICE consent freshness (RFC 7675)
  uint32_t idle_sleep_us = 0;
  uint32_t empty_passes = 0;
  // NeighTable::generations(): the egress cache's next hop is valid while its port's is unchanged.
  const std::atomic<uint32_t>* nh_gens = nullptr;
  // PortInfo::rx_csum_complete of the port whose burst process_burst is relaying.
  bool rx_csum_complete = false;

  TxBuf nic_tx[kMaxPorts];
  TxBuf exc_tx[kMaxPorts];

  [[gnu::always_inline]] void count(Drop d) { bump(cnt.drops[unsigned(d)]); }
  [[gnu::always_inline]] void count(Event e, uint64_t n = 1) { bump(cnt.events[unsigned(e)], n); }
  void drop(rte_mbuf* m, Drop d) {
    count(d);
    rte_pktmbuf_free(m);
  }

  // Handles `n` (at most kMaxBurst) packets received on logical port `pi`. Output goes to the
  // tx buffers; packets of different flows may leave in another order than they came, each
  // flow's own in theirs.
  void process_burst(uint8_t pi, rte_mbuf** pkts, uint16_t n, uint64_t now);
  // Sends what the tx buffers hold; frees (and counts) what the queues refuse.
  void flush();
  // One pass of the loop; returns packets received.
  unsigned pass(uint64_t now);
  int loop();

 private:
  // Everything: ICE/DTLS demultiplexing, latching, SRTP, BUNDLE, next-hop resolution, any
  // address family, captures; (re)builds the egress cache.
  void relay_slow(rte_mbuf* m, const Parsed& p, Flow* fl, uint64_t now);
  // Counts a drop against the flow and the worker, frees the packet.
  void drop_flow(Flow* fl, rte_mbuf* m, FlowDrop why);
  // The fast path (docs/architecture.md "The relay's fast path"): an IPv4 packet from the
  // accepted source of a flow whose egress cache (Flow::tx) is valid, relayed without
  // reading the action. False when it did nothing: process_burst calls relay_slow, which
  // (re)builds the cache (tx_build). kFull: with SRTP (calls libsrtp2) and a room check per
  // push, and adds the packet it relayed to `relayed` (the caller counts them once per
  // burst); the other instance, inline in process_burst's plain loop, calls nothing, leaves
  // SRTP to the full one (returns false) and counts nothing (the loop counts what it did not
  // hand to the slow path).
  template <bool kFull>
  [[gnu::always_inline]] inline bool relay_fast(rte_mbuf* m, Flow* fl, uint64_t now, unsigned& relayed);
  [[gnu::noinline]] bool relay_fast_full(rte_mbuf* m, Flow* fl, uint64_t now, unsigned& relayed);
  // Writes the flow's egress cache: the next hop always, the fast path's fields when `src`
  // (the one source to accept, read from Flow::learned at `src_ver` or the strict flow's
  // signaled one) is given and the flow qualifies; `in_ip` is then the IPv4 header of the
  // packet from that source (to the flow's own endpoint) being relayed.
  void tx_build(Flow* fl, uint32_t gen, uint32_t dver, uint32_t nh_gen, const MacAddr& dmac,
                bool self, const FlowAction& a, const Endpoint& dst, const Endpoint* src,
                uint32_t src_ver, const uint8_t* in_ip);
  // A relayed packet addressed to one of this SBC's own media endpoints on port `pi` (both
  // calls of a hairpin anchored here): parsed again and relayed through the flow that owns
  // that endpoint, once (a second hairpin is dropped: hairpin_loop).
  void hairpin(rte_mbuf* m, uint8_t pi, uint64_t now);
  bool in_hairpin = false;
  // BUNDLE (dataplane/bundle.cc): the flow of the m-line an unprotected packet on a bundle
  // head belongs to (the head itself or a member); nullptr when it was dropped and counted.
  Flow* bundle_member(rte_mbuf* m, Flow* head, const uint8_t* payload, uint32_t plen);
  // ICE-lite / DTLS flows: RFC 7983 demux, checks answered, media gated on an authenticated
  // source with fresh consent. True when the packet was consumed (answered, handed to the
  // control plane, or dropped); false when it is RTP/RTCP to relay.
  bool ice_demux(rte_mbuf* m, const Parsed& p, Flow* fl, const FlowAction& a, uint64_t now);
  void ice_check(rte_mbuf* m, const Parsed& p, Flow* fl, const FlowAction& a, uint64_t now);
  // Consent last refreshed at TSC `c` (0: never) still holds at `now`. Signed: another
  // worker's TSC may be a little ahead of ours.
  bool consent_fresh(uint64_t c, uint64_t now) const {
    return c != 0 && int64_t(now - c) <= int64_t(consent_cycles);
  }
  // The same from Flow::consent_hi (TSC >> 16; wraps after about 30 hours at 2.6 GHz, so
  // the difference is taken modulo 2^32 and signed).
  bool consent_fresh_hi(uint32_t c, uint64_t now) const {
    return c != 0 && int32_t(uint32_t(now >> 16) - c) < int32_t(consent_cycles >> 16);
  }
  void punt(uint8_t pi, rte_mbuf* m, uint64_t now, const uint8_t* src_ip = nullptr,
            Family fam = Family::None);
  bool source_allows(const uint8_t* src_ip, Family fam, uint64_t now);
  void to_ctl(const CtlMsg& msg);
  void push(TxBuf& b, uint16_t port_id, rte_mbuf* m) {
    uint32_t n = b.n;
    if (__builtin_expect(n == kTxCap, 0)) {
      push_full(b, port_id);
      n = 0;
    }
    b.m[n] = m;
    b.n = uint16_t(n + 1);
  }
  void push_full(TxBuf& b, uint16_t port_id);
  // push() to logical port `pi`'s NIC queue, its DPDK port id looked up only when full.
  void push_nic(uint8_t pi, rte_mbuf* m) {
    TxBuf& b = nic_tx[pi];
    uint32_t n = b.n;
    if (__builtin_expect(n == kTxCap, 0)) {
      push_full_nic(pi);
      n = 0;
    }
    b.m[n] = m;
    b.n = uint16_t(n + 1);
  }
  [[gnu::noinline, gnu::cold]] void push_full_nic(uint8_t pi);
  // Every relayed RTP packet: the flow's RFC 3550 loss/jitter state (rtp_stats.h) and its
  // last SSRC, sequence number and payload type. `flow_mult`: FlowAction::rtp_mult.
  void rtp_seen(Flow* fl, uint32_t flow_mult, const uint8_t* rtp, uint64_t now);
  // veilctl capture (dataplane/capture.h): called only while a capture is armed.
  void capture_port(uint8_t pi, rte_mbuf* const* pkts, uint16_t n, uint8_t dir, uint64_t now);
  void capture_flow(const FlowAction* a, const rte_mbuf* m, uint8_t dir, uint64_t now);
  void capture_copy(const rte_mbuf* m, uint8_t port, uint8_t dir, uint64_t now);
};

}  // namespace veil::dp
