// The media flow: one direction of one media stream, keyed by the SBC's local address and
// port that receive it. A flow is a plain struct resolved when the control plane programs
// it (rtpengine's kernel target); the worker does no policy lookups per packet.
#pragma once

#include <atomic>
#include <cstdint>

#include "dataplane/addr.h"
#include "dataplane/packet.h"
#include "dataplane/seq_endpoint.h"

namespace veil::dp {

// Hash key: the SBC's own address and UDP port that the packet arrives on. Addresses are
// unique per port, so the port is not part of the key.
struct FlowKey {
  uint8_t addr[16];
  uint16_t port;  // host order
  uint8_t family;
  uint8_t pad;
  static FlowKey from(const Endpoint& e) {
    FlowKey k{};
    std::memcpy(k.addr, e.addr.bytes.data(), 16);
    k.port = e.port;
    k.family = uint8_t(e.addr.family);
    return k;
  }
};
static_assert(sizeof(FlowKey) == 20);

// What the control plane asks for. Validated by FlowTable::install.
struct FlowSpec {
  uint32_t id = 0;             // non-zero, unique; chosen by the control plane
  uint8_t ingress_port = 0;    // logical port (index in the config's port list)
  Endpoint local;              // SBC address + media port that receives this direction
  Endpoint signaled_remote;    // where signaling says packets come from (may be unknown)
  LatchMode latch = LatchMode::Latch;
  uint8_t egress_port = 0;     // logical port packets leave on
  Endpoint egress_local;       // SBC address + port they are sent from
  Endpoint egress_remote;      // where they go until the peer flow latches (may be unknown)
  uint32_t peer_id = 0;        // the reverse flow: its latched source becomes our destination
  bool rtp_check = true;       // drop payloads that are not RTP/RTCP v2
  bool drop = false;           // keep the flow but drop its packets (counted)
};

// Per-flow drop reasons (a subset of Drop, kept per flow for `veilctl flow`).
enum class FlowDrop : uint8_t { src_mismatch, not_rtp, no_destination, no_neighbour, disabled, tx_full, count_ };
inline constexpr unsigned kFlowDropCount = unsigned(FlowDrop::count_);
inline constexpr Drop kFlowDropGlobal[kFlowDropCount] = {
    Drop::src_mismatch, Drop::not_rtp, Drop::no_destination,
    Drop::no_neighbour, Drop::flow_disabled, Drop::tx_full};

struct Flow;

// Immutable once published; an update publishes a new one and frees the old one after an
// RCU grace period.
struct alignas(64) FlowAction {
  uint32_t id = 0;
  uint8_t ingress_port = 0;
  uint8_t egress_port = 0;
  LatchMode latch = LatchMode::Latch;
  bool rtp_check = true;
  bool drop = false;
  Endpoint signaled_remote;
  Endpoint egress_local;
  Flow* peer = nullptr;  // ctl keeps it valid: republished without it before the peer is freed
};

// Counters: written by the worker that handles the flow's packets, read by the control
// plane. RSS keeps one source's packets on one worker; if two workers ever hit the same
// flow at once (two sources), an increment can be lost, never torn (relaxed 64-bit ops).
struct FlowCounters {
  uint64_t packets = 0;
  uint64_t bytes = 0;       // UDP payload bytes relayed
  uint64_t last_seen_tsc = 0;
  uint64_t drops[kFlowDropCount] = {};
  uint32_t last_ssrc = 0;
  uint16_t last_seq = 0;
  uint8_t last_pt = 0;
};

inline void bump(uint64_t& c, uint64_t n = 1) {
  __atomic_store_n(&c, __atomic_load_n(&c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
inline uint64_t peek(const uint64_t& c) { return __atomic_load_n(&c, __ATOMIC_RELAXED); }

struct alignas(64) Flow {
  // Read by every packet of the flow.
  std::atomic<const FlowAction*> action{nullptr};  // ctl: wo (publish), dp: ro
  SeqEndpoint learned;     // dp: rw (latching); ctl: reset on update
  SeqEndpoint egress_dst;  // ctl: wo (install/update); dp of the peer flow: wo (its latch)
  // Next-hop MAC cached per flow; valid while the port's neighbour generation and the
  // egress_dst version are the ones it was resolved for. dp: rw.
  MacAddr nh_mac;
  uint32_t nh_gen = ~0u;
  uint32_t nh_ver = ~0u;
  uint64_t resolve_tsc = 0;  // dp: last resolution request (rate limit)
  FlowCounters c;            // dp: wo, ctl: ro
  // Control plane only.
  FlowKey key{};
  uint32_t id = 0;
  int32_t hash_pos = -1;
  uint64_t created_tsc = 0;
};

}  // namespace veil::dp
