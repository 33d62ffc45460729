// The media flow: one direction of one media stream, keyed by the SBC's local address and
// port that receive it. A flow is a plain struct resolved when the control plane programs
// it (rtpengine's kernel target); the worker does no policy lookups per packet.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>

#include "dataplane/addr.h"
#include "dataplane/packet.h"
#include "dataplane/rtp_stats.h"
#include "dataplane/seq_endpoint.h"
#include "dataplane/srtp_session.h"

namespace veil::dp {

// Hash key: which of the SBC's own addresses (an index into the dataplane's address list,
// which holds at most kMaxPorts x kMaxAddrs entries) and which UDP port the packet arrives
// on. 16 bytes so rte_hash compares keys with one SIMD instruction instead of memcmp; the
// address itself never needs comparing because the worker has already matched it to the
// port's address list.
struct FlowKey {
  uint32_t addr_index;
  uint16_t port;  // host order
  uint16_t pad;
  uint64_t pad2;
};
static_assert(sizeof(FlowKey) == 16);

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
  // SRTP (dataplane/srtp_session.h): unprotect what arrives / protect what leaves. Neither:
  // RTP relay; both: SRTP<->SRTP re-keyed. Chosen per flow; a change of keys re-keys it.
  SrtpKeying srtp_in;
  SrtpKeying srtp_out;
  // ICE-lite (browser side; docs/architecture.md "ICE-lite and DTLS"). A non-empty
  // ice_ufrag makes this an ICE flow: STUN Binding requests on its port are answered by the
  // worker with these credentials, and media is accepted only from the source of the last
  // authenticated check while its consent is fresh (RFC 7675).
  std::string ice_ufrag;         // Veil's a=ice-ufrag
  std::string ice_pwd;           // Veil's a=ice-pwd (signs and verifies MESSAGE-INTEGRITY)
  std::string ice_remote_ufrag;  // the browser's a=ice-ufrag (empty: not checked)
  // Reverse direction of an ICE flow (towards the browser): sends only while the peer flow
  // (the ICE flow) holds consent, so media stops when the browser's checks stop.
  bool ice_consent_from_peer = false;
  // DTLS records (first byte 20..63, RFC 7983) arriving on this flow's port go to the
  // control plane (Dataplane::poll_dtls) instead of being dropped as not RTP.
  bool dtls = false;
  // A browser that muxes RTP and RTCP (RFC 5761) with a PBX that does not. On the ICE flow
  // (browser -> PBX): RTCP (second byte 192-223) leaves from egress_local's port + 1 to the
  // destination's port + 1 (the PBX's RTCP port). On an ice_consent_from_peer flow (the PBX's
  // RTCP port -> browser, its peer the ICE flow): the destination is the peer's ICE-selected
  // source, and latching never writes the peer's destination.
  bool rtcp_split = false;
  // An ice_consent_from_peer flow whose destination is the peer's ICE-selected source (read
  // per packet from the peer's `learned`), and whose latching never writes the peer's
  // destination: the PBX side of a BUNDLE member m-line, sending out of the browser's one
  // bundled 5-tuple. (rtcp_split on an ice_consent_from_peer flow implies it.)
  bool dst_from_peer = false;
  // BUNDLE (RFC 9143; docs/architecture.md "BUNDLE"). On the browser's ICE flow (the bundle
  // head): the RTP payload types of its own m-line (a 128-bit set; all zero: no bundle). On a
  // member (the browser -> PBX direction of another m-line of the same BUNDLE group):
  // bundle_of = the head's id and its m-line's payload types. A member is in the flow table
  // (its own `local`, which keeps the port reserved) but not in the port index: nothing
  // reaches it directly; the head hands it what it demultiplexes (payload type for RTP,
  // first sender SSRC for RTCP) after ICE, consent and SRTP, and the packet leaves through
  // the member's egress with the member's counters. PT sets of one group are disjoint.
  uint32_t bundle_of = 0;
  uint64_t bundle_pts[2] = {0, 0};
  uint32_t clock_rate = 0;     // RTP clock (Hz) for the jitter estimate; 0: from a static payload type
};

// Per-flow drop reasons (a subset of Drop, kept per flow for `veilctl flow`).
enum class FlowDrop : uint8_t {
  src_mismatch, not_rtp, no_destination, no_neighbour, disabled, tx_full,
  srtp_auth_fail, srtp_replay, srtp_no_key, srtp_error,
  ice_unvalidated, ice_consent_expired, stun_auth_fail, bundle_unknown_pt, count_
};
inline constexpr unsigned kFlowDropCount = unsigned(FlowDrop::count_);
inline constexpr Drop kFlowDropGlobal[kFlowDropCount] = {
    Drop::src_mismatch, Drop::not_rtp, Drop::no_destination,
    Drop::no_neighbour, Drop::flow_disabled, Drop::tx_full,
    Drop::srtp_auth_fail, Drop::srtp_replay, Drop::srtp_no_key, Drop::srtp_error,
    Drop::ice_unvalidated, Drop::ice_consent_expired, Drop::stun_auth_fail,
    Drop::bundle_unknown_pt};
// The per-flow reason for an SRTP drop.
inline FlowDrop srtp_flow_drop(SrtpResult r) {
  switch (r) {
    case SrtpResult::AuthFail: return FlowDrop::srtp_auth_fail;
    case SrtpResult::Replay: return FlowDrop::srtp_replay;
    case SrtpResult::NoKey: return FlowDrop::srtp_no_key;
    default: return FlowDrop::srtp_error;
  }
}

namespace stun {
struct IceCreds;
}

struct Flow;

// A bundle head's members (FlowSpec::bundle_pts/bundle_of): immutable once published, in DPDK
// memory, replaced whole by the control plane (the old one freed after an RCU grace period)
// when a member is installed, changed or removed. Entry 0 is the head itself.
inline constexpr unsigned kBundleMax = 4;      // m-lines per BUNDLE group
inline constexpr unsigned kBundleSsrcs = 8;    // learned SSRC -> m-line entries (kSrtpMaxSsrc)
struct BundleMap {
  uint32_t n = 0;                   // entries in use (1 + members)
  Flow* member[kBundleMax] = {};    // [0] nullptr: the head itself
  uint32_t member_id[kBundleMax] = {};
  uint64_t pts[kBundleMax][2] = {};  // payload types of each entry's m-line
};

// What the worker does with a flow's packets. Published whole: the control plane writes the
// flow's inactive slot, flips `Flow::active_gen`, and does not touch the old slot again until an
// RCU grace period has passed (so a reader that loaded the old index still reads a complete,
// unchanging action). Exactly one cache line.
struct alignas(64) FlowAction {
  uint32_t id = 0;
  uint8_t ingress_port = 0;
  uint8_t egress_port = 0;
  LatchMode latch = LatchMode::Latch;
  // One byte of flags, so that the line keeps room for the endpoints and the peer.
  bool rtp_check : 1 = true;
  bool drop : 1 = false;
  bool ice : 1 = false;             // FlowSpec::ice_ufrag set: Flow::ice_creds is valid
  bool dtls : 1 = false;            // FlowSpec::dtls
  bool ice_consent_from_peer : 1 = false;
  bool srtp_in : 1 = false;         // FlowSpec::srtp_in enabled: unprotect (Flow::srtp_in)
  bool srtp_out : 1 = false;        // FlowSpec::srtp_out enabled: protect (Flow::srtp_out)
  bool rtcp_split : 1 = false;      // FlowSpec::rtcp_split
  Endpoint signaled_remote;
  Endpoint egress_local;
  uint32_t rtp_mult = 0;  // TSC -> RTP timestamp units (rtp_clock_mult); 0: by payload type
  // Second flag byte (in what was padding before `peer`).
  bool peer_dst : 1 = false;        // FlowSpec::dst_from_peer (or rtcp_split + consent from peer)
  bool bundle : 1 = false;          // bundle head: demultiplex to members (Flow::bundle)
  Flow* peer = nullptr;  // ctl keeps it valid: republished without it before the peer is freed
};
static_assert(sizeof(FlowAction) == 64);

[[gnu::always_inline]] inline void bump(uint64_t& c, uint64_t n = 1) {
  __atomic_store_n(&c, __atomic_load_n(&c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
[[gnu::always_inline]] inline uint64_t peek(const uint64_t& c) { return __atomic_load_n(&c, __ATOMIC_RELAXED); }

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
  uint32_t last_ts = 0;             // RTP timestamp of the last packet
  uint64_t ice_checks = 0;          // authenticated STUN checks answered with success
  uint64_t ice_consent_tsc = 0;     // last authenticated check from the selected source (0: none)
  RtpStats rtp;  // RFC 3550 loss and jitter state of the current SSRC
};

// The worker's egress cache of a flow (Flow line 2): everything the fast path needs to
// relay a packet without reading the action, resolved once by the slow path from the
// action, the destination, the latch and the next hop, and valid while none of them changed:
// `action_gen` (Flow::active_gen), `src_ver` (Flow::learned's version), `dst_ver`
// (Flow::egress_dst's version) and `nh_gen` (the egress port's neighbour generation) must
// still match. The slow path also keeps its
// next-hop MAC here (kTxNh). Written by the worker that relays the flow (a sequence lock:
// a second worker that finds it being written goes on without it), never by the control
// plane. docs/architecture.md "The relay's fast path".
inline constexpr uint8_t kTxNh = 1;         // dst_mac/self valid for (action_gen, dst_ver, nh_gen)
inline constexpr uint8_t kTxSelf = 2;       // the destination is our own endpoint (hairpin)
inline constexpr uint8_t kTxFast = 4;       // IPv4 -> IPv4 fast path: the fields below are valid
// Relayed unchanged (no SRTP, software checksums) from a port whose checksums arrive complete:
// the UDP checksum is adjusted (RFC 1624) when the packet's own is present and verified.
inline constexpr uint8_t kTxIncremental = 8;
inline constexpr uint8_t kTxRtpCheck = 16;  // FlowAction::rtp_check
inline constexpr uint8_t kTxOffload = 32;   // the egress port completes UDP checksums
inline constexpr uint8_t kTxSrtpIn = 64;    // FlowAction::srtp_in
inline constexpr uint8_t kTxSrtpOut = 128;  // FlowAction::srtp_out
// Media only while ICE consent is fresh (an ICE flow, or one that sends to the browser):
// Flow::consent_hi must be recent.
inline constexpr uint8_t kTx2Consent = 1;
// A BUNDLE head (FlowAction::bundle): the fast path takes it only while its group has no other
// m-line (BundleMap::n == 1) and the packet's RTP payload type is the head's own.
inline constexpr uint8_t kTx2Bundle = 2;
// The browser's muxed RTCP goes to the PBX's RTCP port (FlowAction::rtcp_split on the ICE
// flow): RTP takes the fast path, RTCP the slow one.
inline constexpr uint8_t kTx2RtcpSplit = 4;
struct alignas(64) TxPlan {
  std::atomic<uint32_t> seq{0};  // odd while a worker writes it
  // action_gen and src_ver as Flow's first 8 bytes (active_gen, learned's version): the fast
  // path compares both with one load (valid_word).
  uint32_t action_gen = 0;
  uint32_t src_ver = 0;          // Flow::learned's version when built (also for strict flows)
  uint32_t dst_ver = 0;
  uint32_t nh_gen = 0;
  uint8_t flags = 0;             // kTx*
  uint8_t egress_port = 0;       // logical
  uint16_t spare = 0;
  uint8_t macs[12] = {};         // destination, source: the Ethernet header's first 12 bytes
  uint8_t ip_addrs[8] = {};      // IPv4 source, destination as on the wire
  uint8_t udp_ports[4] = {};     // UDP source, destination port as on the wire
  uint32_t src_ip = 0;           // the one source accepted (wire order) ...
  uint16_t src_port = 0;         // ... and its port (wire order)
  // The IPv4 header checksum's change (RFC 1624 eqn. 3, folded): the accepted source's and the
  // flow's own address out, ip_addrs and TTL 64 in (the packet's own TTL goes out per packet).
  uint16_t ip_sum = 0;
  // kTxIncremental: the UDP checksum's change (RFC 1624 eqn. 3, folded: the accepted source's
  // and the flow's own address and port out, ip_addrs and udp_ports in), fixed for the flow
  // because the fast path only takes packets from that source to that endpoint. Otherwise
  // the one's complement sum of ip_addrs and udp_ports (the new pseudo-header's).
  uint16_t udp_sum = 0;
  uint8_t flags2 = 0;            // kTx2*
  uint8_t pad = 0;
  uint32_t rtp_mult = 0;         // FlowAction::rtp_mult
};
static_assert(sizeof(TxPlan) == 64);

// Laid out by access: a packet on the fast path touches line 0 (latching and destination
// versions), line 1 (counters) and line 2 (the egress cache); the slow path reads the
// active action slot (line 3 or 4) as well. The worker prefetches the first three for the
// whole burst right after the index lookup, and the action when the index says the flow
// needs it (FlowTable::kSlotSlow). Measured cost: docs/performance.md.
struct alignas(64) Flow {
  // Line 0.
  // Which action slot is published (bit 0) and how many times the action was replaced
  // (the rest: the egress cache is keyed by it). ctl: wo (+1 per flip), dp: ro.
  std::atomic<uint32_t> active_gen{0};
  SeqEndpoint learned;     // latched source. dp: rw; ctl: reset on update
  SeqEndpoint egress_dst;  // ctl: wo (install/update); dp of the peer flow: wo (its latch)
  // ICE consent for the fast path: TSC >> 16 of the last authenticated check from the selected
  // pair of the ICE flow this flow's media depends on (its own, or its peer's for a flow that
  // sends to the browser), 0: none. Written with ice_consent_tsc by the ICE flow's worker
  // (for itself and its peer); reset by the control plane on an ICE restart. The slow path
  // reads the full ice_consent_tsc.
  uint32_t consent_hi = 0;
  // SRTP sessions (nullptr: plain on that side), read only when the action (and the egress
  // cache) says srtp_in / srtp_out; in the two lines every packet touches, so that an SRTP
  // packet's first dependent step is the session itself. ctl: wo (install, re-key; the old
  // one freed after a grace period), dp: ro pointer, the session itself used by one worker
  // at a time.
  SrtpSession* srtp_in = nullptr;
  // Line 1: per-packet counters. dp: wo, ctl: ro.
  alignas(64) uint64_t packets = 0;
  uint64_t bytes = 0;  // UDP payload bytes relayed
  uint64_t last_seen_tsc = 0;
  SrtpSession* srtp_out = nullptr;  // as srtp_in
  // The last RTP packet's header as received (wire order, copied whole: no field is
  // extracted for it): bytes 0-7 (V/P/X/CC, M/PT, sequence number, timestamp) and the SSRC.
  // Decoded by the control plane (last_pt(), FlowTable::snapshot). dp: wo, ctl: ro.
  uint64_t last_rtp = 0;
  uint32_t last_ssrc_wire = 0;
  RtpStats rtp;  // loss/jitter (rtp_stats.h): fills the rest of line 1, dp: wo, ctl: ro
  // Line 2: the worker's egress cache.
  TxPlan tx;
  // Lines 3-4: the two action slots.
  FlowAction slots[2];
  // Cold: drop counters (dp: wo on drops only) and the control plane's bookkeeping.
  alignas(64) uint64_t drops[kFlowDropCount] = {};
  FlowKey key{};
  uint32_t id = 0;
  int32_t hash_pos = -1;
  uint64_t created_tsc = 0;
  uint64_t slot_token = 0;       // RCU token of the last flip; the old slot is free once done
  bool slot_token_valid = false;
  // ICE-lite (only read when the action says `ice`). Credentials: ctl writes (install, or
  // update with new credentials: the old block is freed after an RCU grace period), dp reads.
  std::atomic<const stun::IceCreds*> ice_creds{nullptr};
  uint64_t resolve_tsc = 0;  // last next-hop resolution request (rate limit). dp: rw
  // TSC of the last authenticated check from the selected (latched) source. dp: wo, ctl: ro.
  uint64_t ice_consent_tsc = 0;
  uint64_t ice_checks = 0;  // authenticated checks answered with success. dp: wo, ctl: ro
  // BUNDLE head only (action `bundle`). The members (ctl: wo, replaced whole; dp: ro), and
  // the SSRCs learned from RTP: (1 << 63) | entry << 32 | SSRC, 0 = unused (dp: rw, relaxed;
  // read by the worker that owns the flow's source, like the counters).
  std::atomic<const BundleMap*> bundle{nullptr};
  uint64_t bundle_ssrc[kBundleSsrcs] = {};

  const FlowAction& action() const { return slots[active_gen.load(std::memory_order_acquire) & 1]; }
  // The last RTP packet's fields, from last_rtp / last_ssrc_wire (little-endian host).
  uint8_t last_pt() const { return uint8_t(__atomic_load_n(&last_rtp, __ATOMIC_RELAXED) >> 8) & 0x7f; }
  uint16_t last_seq() const { return __builtin_bswap16(uint16_t(__atomic_load_n(&last_rtp, __ATOMIC_RELAXED) >> 16)); }
  uint32_t last_ts() const { return __builtin_bswap32(uint32_t(__atomic_load_n(&last_rtp, __ATOMIC_RELAXED) >> 32)); }
  uint32_t last_ssrc() const { return __builtin_bswap32(__atomic_load_n(&last_ssrc_wire, __ATOMIC_RELAXED)); }
  // active_gen and learned's version in one acquire load (the fast path's validity check,
  // against TxPlan::action_gen/src_ver); a write in flight on learned makes it odd, never equal.
  uint64_t valid_word() const {
    using Word [[gnu::may_alias]] = uint64_t;
    return __atomic_load_n(reinterpret_cast<const Word*>(this), __ATOMIC_ACQUIRE);
  }
};
static_assert(offsetof(Flow, packets) == 64);
static_assert(offsetof(Flow, srtp_in) + sizeof(SrtpSession*) <= 64 && offsetof(Flow, srtp_out) < 128);
static_assert(offsetof(Flow, tx) == 128);
static_assert(offsetof(Flow, active_gen) == 0 && offsetof(Flow, learned) == 4 && SeqEndpoint::kVersionOffset == 0);
static_assert(offsetof(TxPlan, src_ver) == offsetof(TxPlan, action_gen) + 4);
static_assert(offsetof(Flow, slots) == 192);
static_assert(offsetof(Flow, rtp) + sizeof(RtpStats) <= 128, "RTP stats must stay on the counter line");
static_assert(std::endian::native == std::endian::little, "Flow::last_rtp is decoded as little-endian");

}  // namespace veil::dp
