#include "dataplane/worker.h"

#include <rte_cycles.h>
#include <rte_hash_crc.h>
#include <rte_prefetch.h>

#include <ctime>

#include "dataplane/csum.h"
#include "dataplane/stun.h"

namespace veil::dp {

void WorkerCtx::to_ctl(const CtlMsg& msg) {
  if (rte_ring_mp_enqueue_elem(dp->ctl_ring_, const_cast<CtlMsg*>(&msg), sizeof msg) != 0)
    count(Drop::ctl_ring_full);
}

void WorkerCtx::push_full(TxBuf& b, uint16_t port_id) {
  // Cannot happen with kTxCap >= ports * burst; flush rather than lose the packet.
  uint16_t sent = rte_eth_tx_burst(port_id, uint16_t(index), b.m, b.n);
  for (uint16_t i = sent; i < b.n; ++i) drop(b.m[i], Drop::tx_full);
  count(Event::tx, sent);
  b.n = 0;
}

void WorkerCtx::push_full_nic(uint8_t pi) { push_full(nic_tx[pi], dp->ports_[pi].nic); }

bool WorkerCtx::source_allows(const uint8_t* src, Family fam, uint64_t now) {
  uint32_t key[2] = {0, 0};
  std::memcpy(key, src, fam == Family::V4 ? 4 : 8);  // IPv4 address, or the IPv6 /64
  uint32_t h = rte_hash_crc_8byte(uint64_t(key[0]) | uint64_t(key[1]) << 32, 0x5eed);
  SrcBucket& b = src_buckets[h & (kSrcBuckets - 1)];
  uint32_t now_hi = uint32_t(now >> 16);
  if (b.last_tsc_hi == 0) {  // first use
    b.tokens = src_max;
    b.last_tsc_hi = now_hi;
  } else if (b.tokens == 0) {
    uint64_t add = (uint64_t(uint32_t(now_hi - b.last_tsc_hi)) << 16) / src_cycles_per_token;
    if (add) {
      b.tokens = uint32_t(add > src_max ? src_max : add);
      b.last_tsc_hi = now_hi;
    }
  }
  if (b.tokens == 0) return false;
  --b.tokens;
  return true;
}

void WorkerCtx::punt(uint8_t pi, rte_mbuf* m, uint64_t now, const uint8_t* src_ip, Family fam) {
  const PortInfo& port = dp->ports_[pi];
  if (!port.has_exc) return drop(m, Drop::punt_full);
  if (src_max && src_ip && !source_allows(src_ip, fam, now))
    return drop(m, Drop::punt_source_policed);
  if (punt_tokens == 0) {
    if (punt_last_tsc == 0) punt_last_tsc = now;  // first refill counts from the first punt
    uint64_t add = (now - punt_last_tsc) / cycles_per_token;
    if (add) {
      punt_tokens = add > punt_max ? punt_max : add;
      punt_last_tsc = now;
    }
    if (punt_tokens == 0) return drop(m, Drop::punt_policed);
  }
  --punt_tokens;
  count(Event::punted);
  push(exc_tx[pi], port.exc, m);
}

namespace {
// How many packets ahead of its relay the flow's lines are brought into L1 (process_burst);
// the whole burst was fetched towards L2 before. Measured (docs/performance.md): 4, 8 and
// 12 within noise of each other.
constexpr unsigned kNearAhead = 8;

// SRTP flows only (FlowTable::kSlotSrtp in the flow's index slot; the flow's first two
// lines, which hold the session pointers, were prefetched kNearAhead packets before):
// stage 1 fetches the sessions, stage 2 their libsrtp2 contexts and first streams.
inline void srtp_prefetch(const Flow* f, int stage) {
  for (SrtpSession* s : {__atomic_load_n(&f->srtp_in, __ATOMIC_RELAXED), __atomic_load_n(&f->srtp_out, __ATOMIC_RELAXED)}) {
    if (!s) continue;
    if (stage == 2) {
      rte_prefetch0(s->ctx);
      if (const char* st = static_cast<const char*>(s->stream0)) {
        rte_prefetch0(st);
        rte_prefetch0(st + 64);
        rte_prefetch0(st + 128);
      }
    } else {
      rte_prefetch0(s);
    }
  }
}

// sum_bytes out of line for process_burst (the full UDP checksum, on ports whose NIC does not
// verify it): inlined, its AVX-512 registers made GCC realign process_burst's stack frame to
// 64 bytes, which takes %rbp as a frame pointer for every packet (docs/performance.md
// change 27). A call per packet costs nothing beside a sum over the whole payload.
[[gnu::noinline]] uint64_t payload_sum(const uint8_t* p, size_t n, uint64_t acc) { return sum_bytes(p, n, acc); }

// The one's complement sum of two IPv4 addresses as loaded (8 bytes, native words), folded.
inline uint32_t addr_sum(uint64_t addrs) { return fold(halves_sum(addrs)); }

inline uint16_t ld16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t ld32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t ld64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// What parse_frame finds in media that process_burst's first check accepted: IPv4 without
// options, not a fragment, UDP, unicast to our MAC.
Parsed media_parsed(const rte_mbuf* m) {
  const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
  Parsed p;
  p.ethertype = 0x0800;
  p.l3 = kEthHdrLen;
  p.l4 = kEthHdrLen + kIpv4HdrLen;
  p.l4_len = __builtin_bswap16(ld16(f + p.l4 + 4));
  p.sport = __builtin_bswap16(ld16(f + p.l4));
  p.dport = __builtin_bswap16(ld16(f + p.l4 + 2));
  p.proto = kProtoUdp;
  p.family = Family::V4;
  return p;
}
}  // namespace

void WorkerCtx::process_burst(uint8_t pi, rte_mbuf** pkts, uint16_t n, uint64_t now) {
  const PortInfo& port = dp->ports_[pi];
  Flow* const* slots[kMaxBurst];
  rte_mbuf* media[kMaxBurst];
  // The Parsed of media the general classification below found (bit k of `general` set);
  // the rest is IPv4/UDP of the usual shape, which the packet's own bytes describe
  // (media_parsed). Not zeroed (Parsed's member initializers would zero 64 per burst).
  union ParsedBuf {
    ParsedBuf() {}
    Parsed p[kMaxBurst];
  } media_buf;
  Parsed* const media_p = media_buf.p;
  uint64_t general = 0;
  unsigned nm = 0;
  std::span<const IpAddr> ours(port.addrs, port.n_addrs);
  // Read once: the loop's stores through byte pointers would make the compiler reload them.
  const uint64_t mac_word = ld32(port.mac.b) | uint64_t(ld16(port.mac.b + 4)) << 32;
  const uint32_t media_first = port.media.first, media_span = uint32_t(port.media.last - port.media.first);

  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
    uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
    uint32_t len = m->data_len;
    // Media's usual shape first, classified with a few loads and no Parsed built: one
    // segment, to our MAC, IPv4 without options, not a fragment, UDP with sane lengths, to
    // one of our addresses on a media port, checksum not known bad. The same checks and
    // result as parse_frame and the classification below (media_parsed rebuilds its Parsed
    // when the slow path needs one); anything else (and every drop) goes that way.
    if (__builtin_expect(m->nb_segs == 1 && len >= kEthHdrLen + kIpv4HdrLen + kUdpHdrLen, 1) &&
        ((ld64(f) ^ mac_word) << 16) == 0 &&        // destination MAC (6 bytes)
        (ld32(f + 12) & 0xffffff) == 0x450008 &&     // IPv4, header length 20
        (ld32(f + 20) & 0xff00ffbf) == 0x11000000 &&  // no flag but DF, offset 0; UDP
        (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) != RTE_MBUF_F_RX_L4_CKSUM_BAD) {
      const uint32_t total = __builtin_bswap16(ld16(f + 16));
      const uint32_t ulen = __builtin_bswap16(ld16(f + 38));
      const uint32_t dport = __builtin_bswap16(ld16(f + 36));
      const unsigned hit = port.match_v4(ld32(f + 30));
      // 28 <= total <= len - 14, 8 <= ulen <= total - 20 and the port in the media range, as
      // unsigned differences.
      if (total - (kIpv4HdrLen + kUdpHdrLen) <= len - (kEthHdrLen + kIpv4HdrLen + kUdpHdrLen) &&
          ulen - kUdpHdrLen <= total - (kIpv4HdrLen + kUdpHdrLen) && hit && dport - media_first <= media_span) {
        slots[nm] = port.flow_index[__builtin_ctz(hit)] + dport;
        rte_prefetch0(slots[nm]);
        media[nm++] = m;
        continue;
      }
    }
    Parsed p;
    Drop d = m->nb_segs == 1 ? parse_frame(f, len, port.mac, p) : Drop::runt;
    if (d != kNoDrop) {
      drop(m, d);
      continue;
    }
    if (p.ethertype == 0x0806) {
      AnswerResult r = handle_arp(f, len, port.mac, ours);
      if (r.has_hint) to_ctl(CtlMsg{CtlMsg::Learn, pi, r.hint.mac, r.hint.addr, {}});
      if (r.answer == Answer::Reply) {
        count(Event::arp_replies);
        push(nic_tx[pi], port.nic, m);
      } else if (r.answer == Answer::Punt) {
        count(Event::neigh_learned);
        punt(pi, m, now);
      } else {
        drop(m, r.drop);
      }
      continue;
    }
    const uint8_t* dst = p.dst_ip(f);
    int addr_i = port.find_addr(p.family, dst);
    bool ours_unicast = addr_i >= 0;
    if (!ours_unicast) {
      // IPv6: neighbour discovery arrives on solicited-node multicast, and the kernel's
      // link-local address (fe80::/10) is reachable through the exception path.
      bool nd_multicast = p.family == Family::V6 && p.proto == kProtoIcmp6 && port.is_nd_group(dst);
      bool link_local = p.family == Family::V6 && dst[0] == 0xfe && (dst[1] & 0xc0) == 0x80;
      if (!nd_multicast && !link_local) {
        drop(m, Drop::not_for_us);
        continue;
      }
    } else if (p.l2_multicast) {
      drop(m, Drop::bad_l2);
      continue;
    }
    bool first_fragment_or_whole = !p.fragment || p.sport || p.dport;
    if (p.proto == kProtoUdp && ours_unicast && first_fragment_or_whole &&
        port.media.contains(p.dport)) {
      if (p.fragment) {
        drop(m, Drop::fragment);
        continue;
      }
      if (p.options) {
        drop(m, Drop::ip_options);
        continue;
      }
      if (__builtin_expect((m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_BAD, 0)) {
        drop(m, Drop::udp_checksum_bad);
        continue;
      }
      // The port index slot: prefetched now, read once the whole burst is parsed.
      slots[nm] = port.flow_index[addr_i] + p.dport;
      rte_prefetch0(slots[nm]);
      media_p[nm] = p;
      general |= uint64_t(1) << nm;
      media[nm++] = m;
      continue;
    }
    if (p.proto == kProtoIcmp || p.proto == kProtoIcmp6) {
      uint32_t new_len = len;
      AnswerResult r =
          handle_icmp(f, new_len, uint32_t(rte_pktmbuf_tailroom(m)) + len, p, port.mac, ours);
      if (r.has_hint) to_ctl(CtlMsg{CtlMsg::Learn, pi, r.hint.mac, r.hint.addr, {}});
      if (r.answer == Answer::Reply) {
        m->data_len = uint16_t(new_len);
        m->pkt_len = new_len;
        count(p.family == Family::V6 && f[p.l4] == 136 ? Event::nd_replies : Event::echo_replies);
        push(nic_tx[pi], port.nic, m);
      } else if (r.answer == Answer::Punt) {
        if (r.has_hint) count(Event::neigh_learned);
        punt(pi, m, now, p.src_ip(f), p.family);
      } else {
        drop(m, r.drop);
      }
      continue;
    }
    if (p.proto == kProtoUdp || p.proto == kProtoTcp || p.fragment) {
      punt(pi, m, now, p.src_ip(f), p.family);  // signaling, management, fragments
      continue;
    }
    drop(m, Drop::l4_unsupported);
  }

  if (nm == 0) return;
  rx_csum_complete = port.rx_csum_complete;
  Flow* flows[kMaxBurst];
  uint8_t tags[kMaxBurst];  // FlowTable::kSlotHint | kSlotSlow | kSlotSrtp of each flow's index slot
  // Every line the relay reads or writes (Flow: line 0 state, line 1 counters, line 2 the
  // egress cache; the active action slot only for a flow the index marks kSlotSlow),
  // prefetched in two steps. First, right after each index slot is read (the slots were
  // prefetched while the burst was parsed), the whole burst with PREFETCHT1, which on this
  // Zen 4 fills L2 without holding the core's L1 miss buffers: the 3 x 32 misses overlap,
  // and the core goes on. Then, kNearAhead packets before the relay, the same lines into L1
  // (for writing where the relay writes). The earlier one-step forms stalled: all 96 into L1
  // at once filled the miss buffers before the first packet was relayed, and a few packets
  // ahead gave DRAM misses too little lead (docs/performance.md).
  auto action_line = [&](unsigned k) {
    return reinterpret_cast<const char*>(flows[k]) + offsetof(Flow, slots) +
           (tags[k] & FlowTable::kSlotHint) * sizeof(FlowAction);
  };
  // any_tags: every flow's tags or-ed; a burst without SRTP (kSlotSrtp) tests it once.
  uintptr_t any_tags = 0;
  for (unsigned k = 0; k < nm; ++k) {
    uintptr_t v = FlowTable::load_tagged_nonnull(slots[k]);
    flows[k] = FlowTable::untag(v);
    tags[k] = uint8_t(v & FlowTable::kSlotTags);
    any_tags |= v;
    if (!flows[k]) continue;
    const char* fp = reinterpret_cast<const char*>(flows[k]);
    __builtin_prefetch(fp, 0, 2);
    __builtin_prefetch(fp + 64, 0, 2);
    __builtin_prefetch(fp + offsetof(Flow, tx), 0, 2);
    if (tags[k] & FlowTable::kSlotSlow) __builtin_prefetch(action_line(k), 0, 2);
  }
  auto near = [&](unsigned k) {
    if (!flows[k]) return;
    const char* fp = reinterpret_cast<const char*>(flows[k]);
    __builtin_prefetch(fp, 1);
    __builtin_prefetch(fp + 64, 1);
    rte_prefetch0(fp + offsetof(Flow, tx));
    if (tags[k] & FlowTable::kSlotSlow) rte_prefetch0(action_line(k));
  };
  for (unsigned k = 0; k < kNearAhead && k < nm; ++k) near(k);
  unsigned relayed = 0;  // by the fast path (Event::relayed, added once per burst)
  // Read once per burst (a capture armed meanwhile starts with the next one).
  const bool capturing = __builtin_expect(dp->cap_.armed(), 0);
  if (__builtin_expect(!(any_tags & FlowTable::kSlotSrtp) && !capturing, 1)) {
    // No SRTP flow in the burst, no capture: the plain fast path, inline and without a single
    // call, so that GCC keeps its values in registers (a call anywhere in the loop made it
    // spill them around the call on every packet; docs/performance.md change 26). Every
    // packet it does not relay (no flow, media of another shape than the first
    // classification's, the egress cache not valid for it) is handled after the loop, in
    // order: packets of one flow keep their order whichever way they go, since a flow whose
    // cache is not valid for one packet sends its later ones of that source the slow way too.
    // Its pushes need no room check: each buffer is given room for a whole burst first.
    for (size_t p = 0; p < dp->ports_.size(); ++p)
      if (__builtin_expect(nic_tx[p].n > kTxCap - kMaxBurst, 0)) push_full_nic(uint8_t(p));
    uint64_t deferred = general;
    for (unsigned j = 0; j < nm; ++j) {
      if (j + kNearAhead < nm) near(j + kNearAhead);
      if ((deferred >> j & 1) || !flows[j] || !relay_fast<false>(media[j], flows[j], now, relayed))
        deferred |= uint64_t(1) << j;
    }
    relayed = nm - unsigned(__builtin_popcountll(deferred));
    for (uint64_t d = deferred; d; d &= d - 1) {
      const unsigned j = unsigned(__builtin_ctzll(d));
      if (!flows[j])
        drop(media[j], Drop::media_no_flow);
      else
        relay_slow(media[j], (general >> j & 1) ? media_p[j] : media_parsed(media[j]), flows[j], now);
    }
  } else {
    for (unsigned j = 0; j < nm; ++j) {
      if (j + kNearAhead < nm) near(j + kNearAhead);
      // SRTP flows: libsrtp2's state is a chain of dependent lines per session; fetch the
      // sessions two packets ahead, their libsrtp2 contexts and first streams one ahead.
      static_assert(kNearAhead > 2);
      if (j + 2 < nm && (tags[j + 2] & FlowTable::kSlotSrtp)) srtp_prefetch(flows[j + 2], 1);
      if (j + 1 < nm && (tags[j + 1] & FlowTable::kSlotSrtp)) srtp_prefetch(flows[j + 1], 2);
      // A capture copies every packet on the slow path.
      if (!flows[j])
        drop(media[j], Drop::media_no_flow);
      else if (capturing || (general >> j & 1) || !relay_fast_full(media[j], flows[j], now, relayed))
        relay_slow(media[j], (general >> j & 1) ? media_p[j] : media_parsed(media[j]), flows[j], now);
    }
  }
  count(Event::relayed, relayed);
}

bool WorkerCtx::relay_fast_full(rte_mbuf* m, Flow* fl, uint64_t now, unsigned& relayed) {
  return relay_fast<true>(m, fl, now, relayed);
}

template <bool kFull>
[[gnu::always_inline]] inline bool WorkerCtx::relay_fast(rte_mbuf* m, Flow* fl, uint64_t now, unsigned& relayed) {
  // The egress cache, read under its sequence lock: valid for this action, destination,
  // next hop and (latching) latched source, and this packet from the one source accepted.
  // (A flow only ever receives its key's address family, and kTxFast is set from an IPv4
  // packet: no family test here. Every IPv4 media packet reaching the relay has a 20-byte
  // header, a UDP length within the IP packet's and is no fragment: both classifications
  // drop the rest.)
  const TxPlan& t = fl->tx;
  uint32_t seq = t.seq.load(std::memory_order_acquire);
  uint8_t flags = t.flags;
  // The plain instance calls nothing: SRTP (a flip the burst's index tags did not show yet)
  // is the full one's.
  if (!kFull && (flags & (kTxSrtpIn | kTxSrtpOut))) return false;
  if ((seq & 1) || !(flags & kTxFast) || ld64(reinterpret_cast<const uint8_t*>(&t.action_gen)) != fl->valid_word() ||
      t.dst_ver != fl->egress_dst.version())
    return false;
  const uint8_t egress = t.egress_port;
  if (t.nh_gen != nh_gens[egress].load(std::memory_order_acquire)) return false;
  uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
  uint8_t* ip = f + kEthHdrLen;  // IPv4 without options (process_burst dropped the rest)
  if (ld32(ip + 12) != t.src_ip || ld16(ip + 20) != t.src_port) return false;
  const uint64_t mac_lo = ld64(t.macs), new_addrs = ld64(t.ip_addrs);
  const uint32_t mac_hi = ld32(t.macs + 8), new_ports = ld32(t.udp_ports);
  const uint16_t ip_sum = t.ip_sum, udp_sum = t.udp_sum;
  const uint8_t flags2 = t.flags2;
  std::atomic_thread_fence(std::memory_order_acquire);
  if (t.seq.load(std::memory_order_relaxed) != seq) return false;

  uint8_t* payload = ip + kIpv4HdrLen + kUdpHdrLen;
  uint32_t plen = uint32_t(__builtin_bswap16(ld16(ip + 24))) - kUdpHdrLen;
  if ((flags & kTxRtpCheck) && !looks_like_rtp(payload, plen)) return false;  // dropped there
  // Browser flows (kTx2*): one test for plain RTP.
  if (__builtin_expect(flags2 != 0, 0)) {
    if ((flags2 & kTx2Consent) && !consent_fresh_hi(__atomic_load_n(&fl->consent_hi, __ATOMIC_RELAXED), now))
      return false;  // the slow path drops it (ice_consent_expired)
    const bool rtcp = plen >= 2 && is_rtcp(payload);
    if ((flags2 & kTx2RtcpSplit) && rtcp) return false;  // to the PBX's RTCP port: the slow path
    if (flags2 & kTx2Bundle) {
      // A one-m-line BUNDLE group: RTP of the head's payload types, and any RTCP, is the
      // head's own. Checked before SRTP: the slow path must not unprotect a packet twice.
      const BundleMap* b = fl->bundle.load(std::memory_order_acquire);
      if (b) {
        if (b->n != 1 || plen < 2) return false;
        if (!rtcp) {
          const uint8_t pt = payload[1] & 0x7f;
          if (!((b->pts[0][pt >> 6] >> (pt & 63)) & 1)) return false;  // dropped there
        }
      }
    }
  }
  auto flow_drop = [this, fl, m](FlowDrop why) {
    drop_flow(fl, m, why);
    return true;
  };
  // SRTP as on the slow path: the tag verified before anything is forwarded; the trailer
  // goes after the payload, inside the mbuf's own buffer.
  if (kFull && (flags & kTxSrtpIn)) {
    SrtpSession* in = __atomic_load_n(&fl->srtp_in, __ATOMIC_ACQUIRE);
    SrtpResult r = in ? srtp_session_unprotect(*in, payload, plen) : SrtpResult::NoKey;
    if (r != SrtpResult::Ok) return flow_drop(srtp_flow_drop(r));
  }
  if (kFull && (flags & kTxSrtpOut)) {
    SrtpSession* out = __atomic_load_n(&fl->srtp_out, __ATOMIC_ACQUIRE);
    if (!out) return flow_drop(FlowDrop::srtp_no_key);
    const uint8_t* buf_end = static_cast<const uint8_t*>(m->buf_addr) + m->buf_len;
    SrtpResult r = srtp_session_protect(*out, payload, plen, uint32_t(buf_end - (payload + plen)));
    if (r != SrtpResult::Ok) return flow_drop(srtp_flow_drop(r));
  }

  // Headers in place (the same bytes rewrite_udp writes for IPv4 -> IPv4): version, DSCP/ECN
  // and identification stay, DF stays and the other flag bits are cleared, TTL 64. Locals
  // are full-width: GCC spilled a 16-bit one and reloaded it as 64 bits, a store-forwarding
  // stall per packet (docs/performance.md change 21).
  const uint32_t udp_len = plen + kUdpHdrLen;
  const uint32_t total = kIpv4HdrLen + udp_len;
  // The IPv4 header checksum adjusted (RFC 1624 eqn. 3), not recomputed: the addresses'
  // change is the flow's (TxPlan::ip_sum, with TTL 64 in), the packet's own TTL goes out,
  // and the total length changes only with SRTP. Version, DSCP/ECN, identification and the
  // flags stay as they are (both classifications send a packet with any flag but DF set
  // to the slow path). A checksum that arrived wrong stays wrong, as through a router.
  const uint32_t ttl_csum = ~ld32(ip + 8);  // TTL, protocol, checksum: complemented
  uint32_t ip_acc = (ttl_csum & 0xffff) + (ttl_csum >> 16) + ip_sum;
  if (kFull && (flags & (kTxSrtpIn | kTxSrtpOut))) {
    ip_acc += (~uint32_t(ld16(ip + 2)) & 0xffff) + be_word(uint16_t(total));
    const uint16_t total_be = __builtin_bswap16(uint16_t(total));
    std::memcpy(ip + 2, &total_be, 2);
  }
  const uint32_t ip_word = uint32_t(64 | kProtoUdp << 8) | uint32_t(uint16_t(~fold32(ip_acc))) << 16;
  uint32_t udp_csum;
  const uint32_t old_csum = ld16(ip + 26);
  if ((flags & kTxIncremental) && old_csum != 0 &&
      (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) != RTE_MBUF_F_RX_L4_CKSUM_NONE) {
    // RFC 1624 eqn. 3 with the flow's fixed change (TxPlan::udp_sum): as rewrite_udp's
    // CsumMode::Incremental.
    udp_csum = uint16_t(~fold32((~old_csum & 0xffff) + udp_sum));
    if (udp_csum == 0) udp_csum = 0xffff;  // RFC 768: zero means "no checksum"
  } else if (flags & kTxOffload) {
    udp_csum = fold32(addr_sum(new_addrs) + uint32_t(be_word(kProtoUdp)) + uint32_t(be_word(uint16_t(udp_len))));
    m->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_UDP_CKSUM;
    m->l2_len = kEthHdrLen;
    m->l3_len = kIpv4HdrLen;
  } else {
    // The new pseudo-header: udp_sum, or for an incremental flow (a packet without a
    // checksum, or one the NIC did not verify) the same from the addresses and ports.
    const uint64_t pseudo = (flags & kTxIncremental) ? uint64_t(addr_sum(new_addrs)) + new_ports : udp_sum;
    udp_csum = uint16_t(
        ~fold(payload_sum(payload, plen, pseudo + be_word(kProtoUdp) + 2 * be_word(uint16_t(udp_len)))));
    if (udp_csum == 0) udp_csum = 0xffff;
  }
  std::memcpy(f, &mac_lo, 8);
  std::memcpy(f + 8, &mac_hi, 4);
  std::memcpy(ip + 8, &ip_word, 4);
  std::memcpy(ip + 12, &new_addrs, 8);
  // The UDP length as it was (plain) or as SRTP made it.
  const uint64_t len_field = kFull ? uint64_t(__builtin_bswap16(uint16_t(udp_len))) << 32
                                   : ld64(ip + 20) & (uint64_t(0xffff) << 32);
  const uint64_t udp_word = new_ports | len_field | uint64_t(udp_csum) << 48;
  std::memcpy(ip + 20, &udp_word, 8);
  const uint32_t new_len = kEthHdrLen + total;
  m->data_len = uint16_t(new_len);
  m->pkt_len = new_len;
  if constexpr (kFull) {
    push_nic(egress, m);
  } else {
    TxBuf& b = nic_tx[egress];  // room made before the loop
    const uint32_t n = b.n;
    b.m[n] = m;
    b.n = uint16_t(n + 1);
  }
  if (kFull) ++relayed;  // the plain loop counts the packets it did not defer

  // The flow's counters and RTP statistics last, with the packet already queued (fewer
  // values live across them).
  bump(fl->packets);
  bump(fl->bytes, plen);
  __atomic_store_n(&fl->last_seen_tsc, now, __ATOMIC_RELAXED);
  // The payload type's clock rate is no part of the packet's rewrite: read outside the lock.
  if (plen >= 12 && (payload[1] < 192 || payload[1] > 223))
    rtp_seen(fl, __atomic_load_n(&t.rtp_mult, __ATOMIC_RELAXED), payload, now);
  return true;
}

void WorkerCtx::drop_flow(Flow* fl, rte_mbuf* m, FlowDrop why) {
  bump(fl->drops[unsigned(why)]);
  drop(m, kFlowDropGlobal[unsigned(why)]);
}

void WorkerCtx::tx_build(Flow* fl, uint32_t gen, uint32_t dver, uint32_t nh_gen, const MacAddr& dmac,
                         bool self, const FlowAction& a, const Endpoint& dst, const Endpoint* src,
                         uint32_t src_ver, const uint8_t* in_ip) {
  TxPlan& t = fl->tx;
  uint32_t seq = t.seq.load(std::memory_order_relaxed);
  // Another worker writing it (two sources of one flow on two workers): leave it to that one.
  if ((seq & 1) || !t.seq.compare_exchange_strong(seq, seq + 1, std::memory_order_acquire)) return;
  std::atomic_thread_fence(std::memory_order_release);
  const PortInfo& out = dp->ports_[a.egress_port];
  // ICE and DTLS flows: only RTP/RTCP on the fast path (STUN and DTLS records fail the check
  // and take the slow path, which answers or hands them over).
  const bool rtp_check = a.rtp_check | a.ice | a.dtls;
  // The flow's own ingress port decides (not the burst's: a hairpin's second pass).
  const bool incremental = !out.tx_csum_offload && !a.srtp_in && !a.srtp_out &&
                           dp->ports_[a.ingress_port].rx_csum_complete;
  uint8_t flags = uint8_t(kTxNh | (self ? kTxSelf : 0) | (rtp_check ? kTxRtpCheck : 0) |
                          (out.tx_csum_offload ? kTxOffload : 0) | (a.srtp_in ? kTxSrtpIn : 0) |
                          (a.srtp_out ? kTxSrtpOut : 0) | (incremental ? kTxIncremental : 0));
  t.action_gen = gen;
  t.dst_ver = dver;
  t.nh_gen = nh_gen;
  t.egress_port = a.egress_port;
  std::memcpy(t.macs, dmac.b, 6);
  std::memcpy(t.macs + 6, out.mac.b, 6);
  __atomic_store_n(&t.rtp_mult, a.rtp_mult, __ATOMIC_RELAXED);  // read outside the lock too
  t.flags2 = uint8_t(((a.ice | a.ice_consent_from_peer) ? kTx2Consent : 0) | (a.bundle ? kTx2Bundle : 0) |
                     (a.rtcp_split && !a.ice_consent_from_peer ? kTx2RtcpSplit : 0));
  t.src_ver = src_ver;  // checked for every flow (a strict flow's learned does not change)
  if (src) {
    flags |= kTxFast;
    std::memcpy(t.ip_addrs, a.egress_local.addr.bytes.data(), 4);
    std::memcpy(t.ip_addrs + 4, dst.addr.bytes.data(), 4);
    const uint16_t ports[2] = {uint16_t(a.egress_local.port << 8 | a.egress_local.port >> 8),
                               uint16_t(dst.port << 8 | dst.port >> 8)};
    std::memcpy(t.udp_ports, ports, 4);
    std::memcpy(&t.src_ip, src->addr.bytes.data(), 4);
    t.src_port = uint16_t(src->port << 8 | src->port >> 8);
    const uint64_t a_sum = halves_sum(ld64(t.ip_addrs));
    const uint64_t new_sum = a_sum + ld32(t.udp_ports);
    // The old fields as this packet carries them (the accepted source, the flow's own
    // endpoint): what every packet the fast path takes carries. kOnesZero - m is ~m, as
    // in rewrite_udp's CsumMode::Incremental.
    constexpr uint64_t kOnesZero = 0xffffull << 32;
    const uint64_t old_a_sum = halves_sum(ld64(in_ip + 12));
    t.ip_sum = fold((kOnesZero - old_a_sum) + a_sum + be_word(uint16_t(64 << 8 | kProtoUdp)));
    if (incremental) {
      const uint64_t old_sum = old_a_sum + ld32(in_ip + 20);
      t.udp_sum = fold((kOnesZero - old_sum) + new_sum);
    } else {
      t.udp_sum = fold(new_sum);
    }
  }
  t.flags = flags;
  t.seq.store(seq + 2, std::memory_order_release);
}

void WorkerCtx::relay_slow(rte_mbuf* m, const Parsed& p, Flow* fl, uint64_t now) {
  count(Event::relay_slow);
  const bool capturing = __builtin_expect(dp->cap_.armed(), 0);
  uint32_t gen = fl->active_gen.load(std::memory_order_acquire);
  const FlowAction* a = &fl->slots[gen & 1];
  if (capturing) capture_flow(a, m, kCapIn, now);
  auto flow_drop = [&](FlowDrop why) {
    bump(fl->drops[unsigned(why)]);
    drop(m, kFlowDropGlobal[unsigned(why)]);
  };
  if (a->drop) return flow_drop(FlowDrop::disabled);
  if ((a->ice | a->dtls | a->ice_consent_from_peer) && ice_demux(m, p, fl, *a, now)) return;
  uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
  uint8_t* payload = f + p.l4 + kUdpHdrLen;
  uint32_t plen = p.l4_len - kUdpHdrLen;
  if (a->rtp_check && !looks_like_rtp(payload, plen)) return flow_drop(FlowDrop::not_rtp);

  Endpoint learned;
  uint32_t lver;
  fl->learned.read(learned, lver);
  // latch_decide's answer; the common cases (from the latched source, or a strict flow)
  // compare the packet's source in place (is_udp_source), the rest builds it.
  Endpoint src;
  LatchVerdict verdict;
  if (a->latch == LatchMode::Strict) {
    verdict = is_udp_source(a->signaled_remote, f, p) ? LatchVerdict::Accept : LatchVerdict::Drop;
  } else if (learned.valid() && is_udp_source(learned, f, p)) {
    verdict = LatchVerdict::Accept;
  } else {
    src = udp_source(f, p);
    uint64_t last = peek(fl->last_seen_tsc);
    verdict = latch_decide(a->latch, a->signaled_remote, learned, now - last, relatch_cycles, src);
  }
  if (verdict == LatchVerdict::Drop) return flow_drop(FlowDrop::src_mismatch);
  // SRTP in: the tag (and replay window) verified before the packet may latch or go anywhere.
  // No session yet under an action that wants one (keys being installed): never forwarded.
  const bool unprotected = a->srtp_in;  // the payload changes (also for a BUNDLE member's packet)
  if (unprotected) {
    SrtpSession* srtp_in = __atomic_load_n(&fl->srtp_in, __ATOMIC_ACQUIRE);
    SrtpResult r = srtp_in ? srtp_session_unprotect(*srtp_in, payload, plen) : SrtpResult::NoKey;
    if (r != SrtpResult::Ok) return flow_drop(srtp_flow_drop(r));
  }
  // The source the egress cache may accept on the fast path: the strict flow's signaled
  // one, or the latched one this packet matched (after a new latch, the next packet's).
  const Endpoint* fast_src = nullptr;
  switch (verdict) {
    case LatchVerdict::Drop:
      return flow_drop(FlowDrop::src_mismatch);
    case LatchVerdict::Learn:
      // Two workers may race to latch different sources; one wins, the other's packet is
      // treated as a mismatch.
      if (!fl->learned.try_write(src)) return flow_drop(FlowDrop::src_mismatch);
      // Symmetric RTP: answer where it came from (not a split RTCP flow: its peer is the
      // browser's ICE flow, whose destination is the PBX's RTP port).
      if (a->peer && !a->peer_dst) a->peer->egress_dst.write(src);
      count(Event::latched);
      break;
    case LatchVerdict::Accept:
      fast_src = a->latch == LatchMode::Strict ? &a->signaled_remote : &learned;
      break;
  }
  // BUNDLE head (browser's 5-tuple): the m-line's member flow relays it from here on.
  if (__builtin_expect(a->bundle, 0)) {
    Flow* head = fl;
    if (!(fl = bundle_member(m, fl, payload, plen))) return;
    if (fl != head) {
      gen = fl->active_gen.load(std::memory_order_acquire);
      a = &fl->slots[gen & 1];
      fast_src = nullptr;  // a member is reached through its head only
      if (a->drop) return flow_drop(FlowDrop::disabled);  // a member disabled by hand
    } else if (const BundleMap* b = head->bundle.load(std::memory_order_acquire); b && b->n != 1) {
      fast_src = nullptr;  // a group with other m-lines: every packet is demultiplexed here
    }
  }
  if (p.family != Family::V4) fast_src = nullptr;

  Endpoint dst;
  uint32_t dver;
  fl->egress_dst.read(dst, dver);
  // Towards a browser from a flow that is not the ICE flow's own peer (the PBX's RTCP port,
  // a BUNDLE member's m-line): to the source the ICE flow's checks selected.
  if (__builtin_expect(a->peer_dst, 0) && a->peer)
    a->peer->learned.read(dst, dver);
  if (!dst.valid() || dst.addr.family != a->egress_local.addr.family)
    return flow_drop(FlowDrop::no_destination);
  const PortInfo& out = dp->ports_[a->egress_port];
  MacAddr dmac;
  bool self = false;
  const uint32_t nh_gen = dp->neigh_->generation(a->egress_port);
  // The next hop from the egress cache when it is still valid for this action, destination
  // and neighbour generation.
  bool cached = false;
  {
    const TxPlan& t = fl->tx;
    uint32_t seq = t.seq.load(std::memory_order_acquire);
    if (!(seq & 1) && (t.flags & kTxNh) && t.action_gen == gen && t.dst_ver == dver && t.nh_gen == nh_gen) {
      std::memcpy(dmac.b, t.macs, 6);
      self = t.flags & kTxSelf;
      std::atomic_thread_fence(std::memory_order_acquire);
      cached = t.seq.load(std::memory_order_relaxed) == seq;
    }
  }
  if (!cached) {
    // Our own endpoint (a hairpin): no next hop, relayed again below. Decided here, once
    // per destination, so the fast path only tests the cached byte.
    self = out.is_ours(dst.addr.family, dst.addr.bytes.data());
    IpAddr nh = out.next_hop(dst.addr);
    if (self) {
      dmac = out.mac;
    } else if (!dp->neigh_->lookup(a->egress_port, nh, dmac)) {
      if (now - fl->resolve_tsc >= resolve_cycles) {
        fl->resolve_tsc = now;
        count(Event::resolve_requests);
        to_ctl(CtlMsg{CtlMsg::Resolve, a->egress_port, MacAddr{}, nh, {}});
      }
      return flow_drop(FlowDrop::no_neighbour);
    }
  }
  // (Re)build the cache: a new next hop, or a flow the fast path could take that missed it
  // (first packet from a newly latched source, action or destination changed). The fast
  // path: IPv4 both ways, a known source, nothing the action wants per packet.
  if (fast_src && (self || !fast_src->addr.is_v4() || !dst.addr.is_v4() || FlowTable::slow_action(*a)))
    fast_src = nullptr;
  if (!cached || fast_src) tx_build(fl, gen, dver, nh_gen, dmac, self, *a, dst, fast_src, lver, f + p.l3);

  // SRTP out: the trailer goes after the payload, inside the mbuf's own buffer.
  SrtpSession* srtp_out = a->srtp_out ? __atomic_load_n(&fl->srtp_out, __ATOMIC_ACQUIRE) : nullptr;
  if (a->srtp_out && !srtp_out) return flow_drop(FlowDrop::srtp_no_key);
  if (srtp_out) {
    const uint8_t* buf_end = static_cast<const uint8_t*>(m->buf_addr) + m->buf_len;
    SrtpResult r = srtp_session_protect(*srtp_out, payload, plen, uint32_t(buf_end - (payload + plen)));
    if (r != SrtpResult::Ok) return flow_drop(srtp_flow_drop(r));
  }
  Parsed q = p;  // the payload may have shrunk (unprotect) or grown (protect)
  q.l4_len = uint16_t(plen + kUdpHdrLen);

  EgressHeaders e{out.mac, dmac, a->egress_local, dst, 64};
  if (__builtin_expect(a->rtcp_split, 0) && !a->ice_consent_from_peer && is_rtcp(payload)) {
    // The browser's muxed RTCP to a PBX that does not mux: RTCP port to RTCP port.
    e.src.port = uint16_t(e.src.port + 1);
    e.dst.port = uint16_t(e.dst.port + 1);
  }
  // A payload relayed unchanged that arrived with a complete checksum: adjust that checksum
  // (RFC 1624) instead of summing the payload. Not after SRTP (the payload changed), nor
  // for a packet the NIC says it did not verify and may carry a partial checksum
  // (RX_L4_CKSUM_NONE: virtio's offload).
  // A hairpinned packet is parsed and relayed again: its checksums must be complete.
  self = __builtin_expect(self, 0);
  CsumMode csum = out.tx_csum_offload && !self ? CsumMode::Offload : CsumMode::Software;
  if (csum == CsumMode::Software && rx_csum_complete && !unprotected && !a->srtp_out &&
      (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) != RTE_MBUF_F_RX_L4_CKSUM_NONE)
    csum = CsumMode::Incremental;
  uint32_t new_len = 0;
  uint8_t* nf = rewrite_udp(f, rte_pktmbuf_headroom(m), q, e, csum, new_len);
  if (!nf) return drop(m, Drop::bad_ip);
  m->data_off = uint16_t(nf - static_cast<uint8_t*>(m->buf_addr));
  m->data_len = uint16_t(new_len);
  m->pkt_len = new_len;
  if (csum == CsumMode::Offload) {
    bool v4 = dst.addr.is_v4();
    m->ol_flags = (v4 ? RTE_MBUF_F_TX_IPV4 : RTE_MBUF_F_TX_IPV6) | RTE_MBUF_F_TX_UDP_CKSUM;
    m->l2_len = kEthHdrLen;
    m->l3_len = v4 ? kIpv4HdrLen : kIpv6HdrLen;
  }
  if (capturing) capture_flow(a, m, kCapOut, now);
  bump(fl->packets);
  bump(fl->bytes, plen);
  __atomic_store_n(&fl->last_seen_tsc, now, __ATOMIC_RELAXED);
  if (plen >= 12 && (payload[1] < 192 || payload[1] > 223)) rtp_seen(fl, a->rtp_mult, payload, now);
  count(Event::relayed);
  if (self) return hairpin(m, a->egress_port, now);
  push(nic_tx[a->egress_port], out.nic, m);
}

void WorkerCtx::hairpin(rte_mbuf* m, uint8_t pi, uint64_t now) {
  if (in_hairpin) return drop(m, Drop::hairpin_loop);
  const PortInfo& port = dp->ports_[pi];
  const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
  Parsed p;
  Drop d = parse_frame(f, m->data_len, port.mac, p);
  if (d != kNoDrop) return drop(m, d);
  int ai = port.find_addr(p.family, p.dst_ip(f));
  if (ai < 0 || p.proto != kProtoUdp || !port.media.contains(p.dport)) return drop(m, Drop::media_no_flow);
  m->ol_flags = 0;
  count(Event::hairpinned);
  Flow* fl = FlowTable::load(dp->flows_->slot(port.addr_index[ai], p.dport));
  if (!fl) return drop(m, Drop::media_no_flow);
  in_hairpin = true;
  relay_slow(m, p, fl, now);  // the second pass always takes the slow path
  in_hairpin = false;
}

bool WorkerCtx::ice_demux(rte_mbuf* m, const Parsed& p, Flow* fl, const FlowAction& a,
                          uint64_t now) {
  auto flow_drop = [&](FlowDrop why) {
    bump(fl->drops[unsigned(why)]);
    drop(m, kFlowDropGlobal[unsigned(why)]);
    return true;
  };
  if (a.ice_consent_from_peer) {
    // Towards the browser: only while the ICE flow (our peer) holds consent (RFC 7675 5.1).
    if (!consent_fresh(a.peer ? peek(a.peer->ice_consent_tsc) : 0, now))
      return flow_drop(FlowDrop::ice_consent_expired);
    if (!a.ice && !a.dtls) return false;
  }
  const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
  const uint8_t* payload = f + p.l4 + kUdpHdrLen;
  uint32_t plen = p.l4_len - kUdpHdrLen;
  uint8_t b0 = plen ? payload[0] : 255;
  // RFC 7983 5: 0-3 STUN, 20-63 DTLS, 128-191 RTP/RTCP; anything else is dropped.
  if (b0 < 4) {
    if (!a.ice) return flow_drop(FlowDrop::not_rtp);
    ice_check(m, p, fl, a, now);
    return true;
  }
  if (a.ice) {
    // Only the source selected by an authenticated check, and only while checks keep coming.
    Endpoint src = udp_source(f, p);
    Endpoint sel;
    uint32_t ver;
    fl->learned.read(sel, ver);
    if (!sel.valid() || !(sel == src)) return flow_drop(FlowDrop::ice_unvalidated);
    if (!consent_fresh(peek(fl->ice_consent_tsc), now))
      return flow_drop(FlowDrop::ice_consent_expired);
  }
  if (b0 >= 20 && b0 <= 63) {
    if (!a.dtls) return flow_drop(FlowDrop::not_rtp);
    m->hash.usr = a.id;
    m->port = a.ingress_port;  // logical port, as on the ctl_tx ring
    if (rte_ring_mp_enqueue(dp->dtls_ring_, m) != 0) {
      drop(m, Drop::dtls_ring_full);
    } else {
      count(Event::dtls_to_control);
    }
    return true;
  }
  if (b0 < 128 || b0 > 191) return flow_drop(FlowDrop::not_rtp);
  return false;
}

void WorkerCtx::ice_check(rte_mbuf* m, const Parsed& p, Flow* fl, const FlowAction& a,
                          uint64_t now) {
  const stun::IceCreds* creds = fl->ice_creds.load(std::memory_order_acquire);
  if (!creds) return drop(m, Drop::stun_invalid);  // ICE turned off under us
  uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
  uint8_t* payload = f + p.l4 + kUdpHdrLen;
  uint32_t plen = p.l4_len - kUdpHdrLen;
  uint32_t cap = uint32_t(static_cast<uint8_t*>(m->buf_addr) + m->buf_len - payload);
  Endpoint src = udp_source(f, p);
  uint32_t out_len = 0;
  bool use_candidate = false;
  switch (stun::answer_binding(payload, plen, cap, src, *creds, out_len, use_candidate)) {
    case stun::CheckVerdict::Invalid:
    case stun::CheckVerdict::Ignore:
      return drop(m, Drop::stun_invalid);
    case stun::CheckVerdict::Unauthorized:
      // Answered with 401 (RFC 8489 9.1.3), counted, never selected.
      bump(fl->drops[unsigned(FlowDrop::stun_auth_fail)]);
      count(Drop::stun_auth_fail);
      count(Event::stun_errors);
      break;
    case stun::CheckVerdict::BadRequest:
    case stun::CheckVerdict::ErrorSigned:
      count(Event::stun_errors);
      break;
    case stun::CheckVerdict::Success: {
      Endpoint sel;
      uint32_t ver;
      fl->learned.read(sel, ver);
      bool selected = sel.valid() && sel == src;
      bool sel_expired = !sel.valid() || !consent_fresh(peek(fl->ice_consent_tsc), now);
      // A nominated pair (USE-CANDIDATE), or any checked pair while none is usable, becomes
      // the one media is accepted from and sent to; checks on other pairs are answered only.
      if (!selected && (use_candidate || sel_expired) && fl->learned.try_write(src)) {
        if (a.peer) a.peer->egress_dst.write(src);
        count(Event::latched);
        selected = true;
      }
      if (selected) {
        __atomic_store_n(&fl->ice_consent_tsc, now, __ATOMIC_RELAXED);
        // The fast path's copies: this flow's, and its peer's (which sends to the browser).
        __atomic_store_n(&fl->consent_hi, uint32_t(now >> 16), __ATOMIC_RELAXED);
        if (a.peer) __atomic_store_n(&a.peer->consent_hi, uint32_t(now >> 16), __ATOMIC_RELAXED);
      }
      bump(fl->ice_checks);
      count(Event::stun_answered);
      break;
    }
  }
  const PortInfo& port = dp->ports_[a.ingress_port];
  uint32_t len = stun::udp_reply_in_place(f, p, out_len, port.mac);
  m->data_len = uint16_t(len);
  m->pkt_len = len;
  m->ol_flags = 0;  // checksums complete in software
  push(nic_tx[a.ingress_port], port.nic, m);
}

[[gnu::always_inline]] inline void WorkerCtx::rtp_seen(Flow* fl, uint32_t flow_mult, const uint8_t* rtp, uint64_t now) {
  const uint64_t head = ld64(rtp);  // V/P/X/CC, M/PT, sequence number, timestamp
  const uint32_t ssrc_wire = ld32(rtp + 8);
  const uint32_t mult = flow_mult ? flow_mult : pt_mult[(head >> 8) & 0x7f];
  rtp_track(fl->rtp, ssrc_wire != fl->last_ssrc_wire, __builtin_bswap16(uint16_t(head >> 16)),
            __builtin_bswap32(uint32_t(head >> 32)), rtp_arrival(now, mult), mult != 0);
  __atomic_store_n(&fl->last_rtp, head, __ATOMIC_RELAXED);
  __atomic_store_n(&fl->last_ssrc_wire, ssrc_wire, __ATOMIC_RELAXED);
}

void WorkerCtx::capture_copy(const rte_mbuf* m, uint8_t port, uint8_t dir, uint64_t now) {
  CaptureArm& c = dp->cap_;
  int64_t left = c.left.fetch_sub(1, std::memory_order_relaxed);
  if (left <= 0) return;  // another worker took the last one and is clearing `on`
  if (left == 1) c.on.store(false, std::memory_order_relaxed);
  rte_mbuf* copy = rte_pktmbuf_copy(m, c.pool, 0, c.snaplen);
  if (!copy) {
    c.dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  CapRecord r{copy, now, m->pkt_len, port, dir, 0};
  if (rte_ring_mp_enqueue_elem(c.ring, &r, sizeof r) != 0) {
    rte_pktmbuf_free(copy);
    c.dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  c.captured.fetch_add(1, std::memory_order_relaxed);
}

void WorkerCtx::capture_port(uint8_t pi, rte_mbuf* const* pkts, uint16_t n, uint8_t dir, uint64_t now) {
  const CaptureArm& c = dp->cap_;
  if (c.flow_id != 0 || c.port != pi || !(c.dir & dir)) return;
  for (uint16_t i = 0; i < n && c.armed(); ++i) capture_copy(pkts[i], pi, dir, now);
}

void WorkerCtx::capture_flow(const FlowAction* a, const rte_mbuf* m, uint8_t dir, uint64_t now) {
  const CaptureArm& c = dp->cap_;
  if (c.flow_id != a->id || !(c.dir & dir)) return;
  capture_copy(m, dir == kCapIn ? a->ingress_port : a->egress_port, dir, now);
}

void WorkerCtx::flush() {
  const auto& ports = dp->ports_;
  for (size_t pi = 0; pi < ports.size(); ++pi) {
    TxBuf& b = nic_tx[pi];
    if (b.n) {
      if (__builtin_expect(dp->cap_.armed(), 0)) capture_port(uint8_t(pi), b.m, b.n, kCapOut, rte_rdtsc());
      uint16_t sent = rte_eth_tx_burst(ports[pi].nic, uint16_t(index), b.m, b.n);
      count(Event::tx, sent);
      for (uint16_t i = sent; i < b.n; ++i) drop(b.m[i], Drop::tx_full);
      b.n = 0;
    }
    TxBuf& x = exc_tx[pi];
    if (x.n) {
      uint16_t sent = rte_eth_tx_burst(ports[pi].exc, uint16_t(index), x.m, x.n);
      for (uint16_t i = sent; i < x.n; ++i) drop(x.m[i], Drop::punt_full);
      x.n = 0;
    }
  }
}

unsigned WorkerCtx::pass(uint64_t now) {
  rte_mbuf* pkts[kMaxBurst];
  unsigned total = 0;
  const auto& ports = dp->ports_;
  for (size_t pi = 0; pi < ports.size(); ++pi) {
    uint16_t n = rte_eth_rx_burst(ports[pi].nic, uint16_t(index), pkts, burst);
    if (n) {
      count(Event::rx, n);
      if (__builtin_expect(dp->cap_.armed(), 0)) capture_port(uint8_t(pi), pkts, n, kCapIn, now);
      process_burst(uint8_t(pi), pkts, n, now);
      total += n;
    }
    if (ports[pi].has_exc) {
      // Kernel -> wire: signaling and the kernel's own ARP/ND, sent as they are, except
      // the announcements an SBC must not make (kernel_may_send).
      n = rte_eth_rx_burst(ports[pi].exc, uint16_t(index), pkts, burst);
      for (uint16_t i = 0; i < n; ++i) {
        if (kernel_may_send(rte_pktmbuf_mtod(pkts[i], const uint8_t*), pkts[i]->data_len)) {
          count(Event::from_kernel);
          push(nic_tx[pi], ports[pi].nic, pkts[i]);
        } else {
          drop(pkts[i], Drop::kernel_filtered);
        }
      }
      total += n;
    }
  }
  unsigned k = rte_ring_sc_dequeue_burst(ctl_tx, reinterpret_cast<void**>(pkts), burst, nullptr);
  for (unsigned i = 0; i < k; ++i) {
    uint16_t pi = pkts[i]->port;
    if (pi < ports.size())
      push(nic_tx[pi], ports[pi].nic, pkts[i]);
    else
      rte_pktmbuf_free(pkts[i]);
  }
  flush();
  return total + k;
}

int WorkerCtx::loop() {
  dp->rcu_->online(lcore);
  punt_last_tsc = rte_rdtsc();
  while (!dp->stop_.load(std::memory_order_relaxed)) {
    uint64_t now = rte_rdtsc();
    unsigned got = pass(now);
    dp->rcu_->quiescent(lcore);
    if (got) {
      empty_passes = 0;
    } else if (idle_sleep_us && ++empty_passes > 1024) {
      // Idle (no packet for >1024 passes): yield the core for a moment. Off by default on
      // dedicated cores ([dataplane] idle_sleep_us = 0).
      timespec ts{0, long(idle_sleep_us) * 1000};
      nanosleep(&ts, nullptr);
    }
  }
  flush();
  dp->rcu_->offline(lcore);
  return 0;
}

}  // namespace veil::dp
