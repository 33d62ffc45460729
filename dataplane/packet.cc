#include "dataplane/packet.h"

#include <arpa/inet.h>

#include <cstring>

#include "dataplane/csum.h"

namespace veil::dp {
namespace {

inline uint16_t rd16(const uint8_t* p) {
  return uint16_t(p[0] << 8 | p[1]);
}
inline void wr16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
inline void copy_mac(uint8_t* dst, const MacAddr& m) {
  std::memcpy(dst, m.b, 6);
}

inline uint64_t pseudo_sum(Family f, const uint8_t* ip, uint16_t l4_len, uint8_t proto) {
  uint64_t acc = 0;
  if (f == Family::V4)
    acc = sum_bytes(ip + 12, 8, 0);
  else
    acc = sum_bytes(ip + 8, 32, 0);
  uint8_t tail[4] = {uint8_t(l4_len >> 8), uint8_t(l4_len), 0, proto};
  return sum_bytes(tail, 4, acc);
}

// ICMPv4 has no pseudo-header (RFC 792); UDP, TCP and ICMPv6 (RFC 4443 2.3) do.
inline uint64_t l4_initial_sum(Family f, const uint8_t* ip, uint16_t l4_len, uint8_t proto) {
  return f == Family::V4 && proto == kProtoIcmp ? 0 : pseudo_sum(f, ip, l4_len, proto);
}

inline bool addr_in(std::span<const IpAddr> ours, Family f, const uint8_t* a) {
  for (const auto& o : ours)
    if (o.family == f && std::memcmp(o.bytes.data(), a, o.len()) == 0) return true;
  return false;
}

inline bool is_ipv6_ext(uint8_t nh) {
  return nh == 0 || nh == 43 || nh == 60 || nh == 44;
}

}  // namespace

uint16_t ipv4_header_checksum(const uint8_t* ip) {
  unsigned ihl = (ip[0] & 0x0f) * 4u;
  // Everything but the checksum field (bytes 10-11), summed in place.
  uint16_t c = uint16_t(~fold(sum_bytes(ip + 12, ihl - 12, sum_bytes(ip, 10, 0))));
  return c;
}

uint16_t l4_pseudo_checksum(Family f, const uint8_t* ip, uint16_t l4_len, uint8_t proto) {
  return fold(pseudo_sum(f, ip, l4_len, proto));
}

uint16_t l4_checksum(Family f, const uint8_t* ip, const uint8_t* l4, uint16_t l4_len,
                     uint8_t proto) {
  uint16_t c = uint16_t(~fold(sum_bytes(l4, l4_len, l4_initial_sum(f, ip, l4_len, proto))));
  // RFC 768: a computed UDP checksum of zero is sent as all ones (zero means "none").
  if (proto == kProtoUdp && c == 0) c = 0xffff;
  return c;
}

bool l4_checksum_ok(const uint8_t* frame, const Parsed& p) {
  const uint8_t* ip = frame + p.l3;
  const uint8_t* l4 = frame + p.l4;
  if (p.proto == kProtoUdp && p.family == Family::V4 && rd16(l4 + 6) == 0) return true;
  return fold(sum_bytes(l4, p.l4_len, l4_initial_sum(p.family, ip, p.l4_len, p.proto))) == 0xffff;
}

Drop parse_frame(const uint8_t* f, uint32_t len, const MacAddr& port_mac, Parsed& out) {
  out = Parsed{};
  if (len < kEthHdrLen) return Drop::runt;
  if (std::memcmp(f, port_mac.b, 6) != 0) {
    if (!(f[0] & 1)) return Drop::bad_l2;  // unicast to another MAC
    out.l2_multicast = true;
  }
  out.ethertype = rd16(f + 12);
  out.l3 = kEthHdrLen;
  const uint8_t* ip = f + kEthHdrLen;
  uint32_t l3_room = len - kEthHdrLen;
  if (out.ethertype == 0x0806) return kNoDrop;  // ARP: handle_arp validates the rest
  if (out.ethertype == 0x0800) {
    if (l3_room < kIpv4HdrLen) return Drop::runt;
    unsigned ihl = (ip[0] & 0x0f) * 4u;
    unsigned total = rd16(ip + 2);
    if ((ip[0] >> 4) != 4 || ihl < kIpv4HdrLen || total < ihl) return Drop::bad_ip;
    if (total > l3_room || ihl > l3_room) return Drop::runt;
    out.family = Family::V4;
    out.options = ihl > kIpv4HdrLen;
    uint16_t frag = rd16(ip + 6);
    out.fragment = (frag & 0x3fff) != 0;  // MF set or offset non-zero
    out.proto = ip[9];
    out.l4 = uint16_t(kEthHdrLen + ihl);
    out.l4_len = uint16_t(total - ihl);
    if (frag & 0x1fff) return kNoDrop;  // not the first fragment: no L4 header here
  } else if (out.ethertype == 0x86dd) {
    if (l3_room < kIpv6HdrLen) return Drop::runt;
    if ((ip[0] >> 4) != 6) return Drop::bad_ip;
    unsigned payload = rd16(ip + 4);
    if (payload > l3_room - kIpv6HdrLen) return Drop::runt;
    out.family = Family::V6;
    uint8_t nh = ip[6];
    unsigned off = kIpv6HdrLen;
    for (int i = 0; i < 8 && is_ipv6_ext(nh); ++i) {
      out.options = true;
      if (off + 8 > kIpv6HdrLen + payload) return Drop::runt;
      const uint8_t* ext = ip + off;
      if (nh == 44) {  // fragment header (RFC 8200 4.5)
        out.fragment = true;
        uint16_t offset = rd16(ext + 2) & 0xfff8;
        nh = ext[0];
        off += 8;
        if (offset != 0) {
          out.proto = nh;
          out.l4 = uint16_t(kEthHdrLen + off);
          out.l4_len = uint16_t(kIpv6HdrLen + payload - off);
          return kNoDrop;
        }
        continue;
      }
      nh = ext[0];
      off += (ext[1] + 1u) * 8u;
    }
    if (off > kIpv6HdrLen + payload) return Drop::runt;
    out.proto = nh;
    out.l4 = uint16_t(kEthHdrLen + off);
    out.l4_len = uint16_t(kIpv6HdrLen + payload - off);
  } else {
    return Drop::unknown_ethertype;
  }
  const uint8_t* l4 = f + out.l4;
  switch (out.proto) {
    case kProtoUdp: {
      if (out.l4_len < kUdpHdrLen) return Drop::runt;
      uint16_t ulen = rd16(l4 + 4);
      if (ulen < kUdpHdrLen || ulen > out.l4_len) {
        // A first fragment carries the whole datagram's length: only check the header.
        if (!out.fragment) return Drop::bad_ip;
      } else {
        out.l4_len = ulen;
      }
      out.sport = rd16(l4);
      out.dport = rd16(l4 + 2);
      break;
    }
    case kProtoTcp:
      if (out.l4_len < 20) return Drop::runt;
      out.sport = rd16(l4);
      out.dport = rd16(l4 + 2);
      break;
    case kProtoIcmp:
    case kProtoIcmp6:
      if (out.l4_len < 4) return Drop::runt;
      break;
    default:
      break;
  }
  return kNoDrop;
}

Endpoint udp_source(const uint8_t* f, const Parsed& p) {
  Endpoint e;
  e.addr = p.family == Family::V4 ? IpAddr::v4_raw(p.src_ip(f)) : IpAddr::v6_raw(p.src_ip(f));
  e.port = p.sport;
  return e;
}

Endpoint udp_destination(const uint8_t* f, const Parsed& p) {
  Endpoint e;
  e.addr = p.family == Family::V4 ? IpAddr::v4_raw(p.dst_ip(f)) : IpAddr::v6_raw(p.dst_ip(f));
  e.port = p.dport;
  return e;
}

uint8_t* rewrite_udp(uint8_t* frame, uint16_t headroom, const Parsed& p, const EgressHeaders& e,
                     CsumMode csum, uint32_t& new_len) {
  const uint8_t* in_ip = frame + p.l3;
  uint8_t* payload = frame + p.l4 + kUdpHdrLen;
  uint16_t payload_len = uint16_t(p.l4_len - kUdpHdrLen);
  bool v4 = e.dst.addr.is_v4();
  uint16_t hdr_len = uint16_t(kEthHdrLen + (v4 ? kIpv4HdrLen : kIpv6HdrLen) + kUdpHdrLen);
  if (payload - hdr_len < frame - headroom) return nullptr;

  // Carry DSCP/ECN and (IPv4 to IPv4) the identification and DF bit; read them before the
  // new headers overwrite the old ones.
  uint8_t tclass;
  uint16_t ip_id = 0, df = 0x4000;
  if (p.family == Family::V4) {
    tclass = in_ip[1];
    ip_id = rd16(in_ip + 4);
    df = rd16(in_ip + 6) & 0x4000;
  } else {
    tclass = uint8_t((in_ip[0] & 0x0f) << 4 | in_ip[1] >> 4);
  }

  // Checksums are summed from the values, not read back from the headers written below: a
  // load spanning several just-written narrow stores cannot be store-forwarded and stalls
  // until they retire (most of this function's cost when it read them back).
  uint16_t udp_len = uint16_t(payload_len + kUdpHdrLen);
  uint64_t addr_sum = addr_words(e.src.addr.bytes.data(), v4) + addr_words(e.dst.addr.bytes.data(), v4);
  uint64_t pseudo = addr_sum + be_word(udp_len) + be_word(kProtoUdp);
  uint16_t udp_csum;
  uint16_t old_csum = 0;
  if (csum == CsumMode::Incremental) std::memcpy(&old_csum, frame + p.l4 + 6, 2);
  if (old_csum != 0) {
    // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), m the old pseudo-header addresses and ports,
    // m' the new ones (length and protocol are the same on both sides and cancel). ~m is
    // kOnesZero - m: a multiple of 0xffff is zero in one's complement (2^16 = 1 mod 0xffff),
    // so nothing is folded but the total. That total is never zero, so it folds into
    // 1..0xffff exactly as the full sum does, and the two agree bit for bit.
    constexpr uint64_t kOnesZero = 0xffffull << 32;  // > any m (< 2^36)
    bool in4 = p.family == Family::V4;
    uint64_t old_sum = addr_words(in_ip + (in4 ? 12 : 8), in4) +
                       addr_words(in_ip + (in4 ? 16 : 24), in4) + be_word(p.sport) +
                       be_word(p.dport);
    uint64_t acc = uint16_t(~old_csum) + (kOnesZero - old_sum) + addr_sum +
                   be_word(e.src.port) + be_word(e.dst.port);
    udp_csum = uint16_t(~fold(acc));
    if (udp_csum == 0) udp_csum = 0xffff;  // RFC 768: zero means "no checksum"
  } else if (csum != CsumMode::Offload) {
    uint64_t acc = sum_bytes(payload, payload_len,
                             pseudo + be_word(e.src.port) + be_word(e.dst.port) + be_word(udp_len));
    udp_csum = uint16_t(~fold(acc));
    if (udp_csum == 0) udp_csum = 0xffff;  // RFC 768: zero means "no checksum"
  } else {
    udp_csum = fold(pseudo);
  }

  uint8_t* out = payload - hdr_len;
  copy_mac(out, e.dst_mac);
  copy_mac(out + 6, e.src_mac);
  uint8_t* ip = out + kEthHdrLen;
  uint8_t* udp;
  if (v4) {
    uint16_t total = uint16_t(kIpv4HdrLen + udp_len);
    uint16_t ip_csum = uint16_t(~fold(addr_sum + be_word(uint16_t(0x4500 | tclass)) +
                                      be_word(total) + be_word(ip_id) + be_word(df) +
                                      be_word(uint16_t(e.hop_limit << 8 | kProtoUdp))));
    wr16(out + 12, 0x0800);
    ip[0] = 0x45;
    ip[1] = tclass;
    wr16(ip + 2, total);
    wr16(ip + 4, ip_id);
    wr16(ip + 6, df);
    ip[8] = e.hop_limit;
    ip[9] = kProtoUdp;
    std::memcpy(ip + 10, &ip_csum, 2);
    std::memcpy(ip + 12, e.src.addr.bytes.data(), 4);
    std::memcpy(ip + 16, e.dst.addr.bytes.data(), 4);
    udp = ip + kIpv4HdrLen;
  } else {
    wr16(out + 12, 0x86dd);
    ip[0] = uint8_t(0x60 | tclass >> 4);
    ip[1] = uint8_t(tclass << 4);
    ip[2] = ip[3] = 0;  // flow label: a new flow, ours
    wr16(ip + 4, udp_len);
    ip[6] = kProtoUdp;
    ip[7] = e.hop_limit;
    std::memcpy(ip + 8, e.src.addr.bytes.data(), 16);
    std::memcpy(ip + 24, e.dst.addr.bytes.data(), 16);
    udp = ip + kIpv6HdrLen;
  }
  wr16(udp, e.src.port);
  wr16(udp + 2, e.dst.port);
  wr16(udp + 4, udp_len);
  std::memcpy(udp + 6, &udp_csum, 2);
  new_len = uint32_t(hdr_len) + payload_len;
  return out;
}

AnswerResult handle_arp(uint8_t* f, uint32_t len, const MacAddr& port_mac,
                        std::span<const IpAddr> ours) {
  AnswerResult r;
  if (len < kEthHdrLen + 28) return {Answer::Drop, Drop::runt};
  uint8_t* a = f + kEthHdrLen;
  if (rd16(a) != 1 || rd16(a + 2) != 0x0800 || a[4] != 6 || a[5] != 4)
    return {Answer::Drop, Drop::arp_invalid};
  uint16_t op = rd16(a + 6);
  uint8_t* sha = a + 8;
  uint8_t* spa = a + 14;
  uint8_t* tha = a + 18;
  uint8_t* tpa = a + 24;
  if (sha[0] & 1) return {Answer::Drop, Drop::arp_invalid};  // RFC 1812 3.3.2: no multicast senders
  if (!addr_in(ours, Family::V4, tpa)) return {Answer::Drop, Drop::not_for_us};
  uint32_t sender;
  std::memcpy(&sender, spa, 4);
  if (sender != 0) {
    r.has_hint = true;
    r.hint.addr = IpAddr::v4_raw(spa);
    std::memcpy(r.hint.mac.b, sha, 6);
  }
  if (op == 1) {
    // Reply in place: target <- sender, sender <- us (RFC 826 "Packet Reception").
    uint8_t our_ip[4];
    std::memcpy(our_ip, tpa, 4);
    std::memcpy(tha, sha, 6);
    std::memcpy(tpa, spa, 4);
    copy_mac(sha, port_mac);
    std::memcpy(spa, our_ip, 4);
    wr16(a + 6, 2);
    std::memcpy(f, tha, 6);
    copy_mac(f + 6, port_mac);
    r.answer = Answer::Reply;
    return r;
  }
  if (op == 2) {
    if (std::memcmp(f, port_mac.b, 6) != 0 && !(f[0] & 1)) return {Answer::Drop, Drop::bad_l2};
    r.answer = Answer::Punt;  // the kernel asked (its neighbour cache waits for this)
    return r;
  }
  return {Answer::Drop, Drop::arp_invalid};
}

IpAddr solicited_node(const IpAddr& a) {
  IpAddr s;
  s.family = Family::V6;
  const uint8_t prefix[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
  std::memcpy(s.bytes.data(), prefix, 13);
  std::memcpy(s.bytes.data() + 13, a.bytes.data() + 13, 3);
  return s;
}

MacAddr ipv6_multicast_mac(const IpAddr& g) {
  MacAddr m;
  m.b[0] = m.b[1] = 0x33;
  std::memcpy(m.b + 2, g.bytes.data() + 12, 4);
  return m;
}

namespace {

// Finds a link-layer address option (type 1 source, 2 target) in an ND message's options.
// Walks every option (RFC 4861 7.1.1: all must have a non-zero length, even after the one
// we want).
bool find_lla(const uint8_t* opts, uint32_t n, uint8_t type, MacAddr& mac, bool& bad) {
  bad = false;
  bool found = false;
  while (n >= 2) {
    uint32_t olen = opts[1] * 8u;
    if (olen == 0 || olen > n) {  // RFC 4861 4.6: length 0 is invalid
      bad = true;
      return false;
    }
    if (!found && opts[0] == type && olen >= 8) {
      std::memcpy(mac.b, opts + 2, 6);
      found = true;
    }
    opts += olen;
    n -= olen;
  }
  return found;
}

void swap_eth_to_sender(uint8_t* f, const MacAddr& port_mac) {
  std::memcpy(f, f + 6, 6);
  copy_mac(f + 6, port_mac);
}

}  // namespace

AnswerResult handle_icmp(uint8_t* f, uint32_t& len, uint32_t capacity, const Parsed& p,
                         const MacAddr& port_mac, std::span<const IpAddr> ours) {
  AnswerResult r;
  uint8_t* ip = f + p.l3;
  uint8_t* icmp = f + p.l4;
  if (p.fragment) return {Answer::Punt};
  if (p.family == Family::V4) {
    uint8_t type = icmp[0];
    if (type == 8) {  // echo request (RFC 792)
      if (p.l2_multicast) return {Answer::Drop, Drop::icmp_unhandled};
      uint8_t tmp[4];
      std::memcpy(tmp, ip + 12, 4);
      std::memcpy(ip + 12, ip + 16, 4);
      std::memcpy(ip + 16, tmp, 4);
      ip[8] = 64;
      uint16_t c = ipv4_header_checksum(ip);
      std::memcpy(ip + 10, &c, 2);
      icmp[0] = 0;
      icmp[2] = icmp[3] = 0;
      c = uint16_t(~fold(sum_bytes(icmp, p.l4_len, 0)));
      std::memcpy(icmp + 2, &c, 2);
      swap_eth_to_sender(f, port_mac);
      return {Answer::Reply};
    }
    // Errors, and echo replies to pings the kernel sent, belong to the kernel.
    if (type == 0 || type == 3 || type == 11 || type == 12) return {Answer::Punt};
    return {Answer::Drop, Drop::icmp_unhandled};
  }

  uint8_t type = icmp[0];
  if (type == 128) {  // echo request (RFC 4443 4.1)
    if (p.l2_multicast) return {Answer::Drop, Drop::icmp_unhandled};
    if (!addr_in(ours, Family::V6, ip + 24)) return {Answer::Punt};  // the kernel's link-local
    uint8_t tmp[16];
    std::memcpy(tmp, ip + 8, 16);
    std::memcpy(ip + 8, ip + 24, 16);
    std::memcpy(ip + 24, tmp, 16);
    ip[7] = 64;
    icmp[0] = 129;
    icmp[2] = icmp[3] = 0;
    uint16_t c = l4_checksum(Family::V6, ip, icmp, p.l4_len, kProtoIcmp6);
    std::memcpy(icmp + 2, &c, 2);
    swap_eth_to_sender(f, port_mac);
    return {Answer::Reply};
  }
  if (type == 135 || type == 136) {
    // RFC 4861 7.1.1 / 7.1.2 validity: hop limit 255, code 0, length >= 24, checksum.
    if (ip[7] != 255 || icmp[1] != 0 || p.l4_len < 24 || p.options)
      return {Answer::Drop, Drop::nd_invalid};
    if (!l4_checksum_ok(f, p)) return {Answer::Drop, Drop::nd_invalid};
    const uint8_t* target = icmp + 8;
    if (target[0] == 0xff) return {Answer::Drop, Drop::nd_invalid};
    MacAddr lla;
    bool bad = false;
    bool have_lla = find_lla(icmp + 24, p.l4_len - 24u, type == 135 ? 1 : 2, lla, bad);
    if (bad) return {Answer::Drop, Drop::nd_invalid};
    static const uint8_t unspecified[16] = {};
    bool src_unspecified = std::memcmp(ip + 8, unspecified, 16) == 0;
    if (type == 136) {
      if (have_lla) {
        r.has_hint = true;
        r.hint.addr = IpAddr::v6_raw(target);
        r.hint.mac = lla;
      }
      r.answer = Answer::Punt;
      return r;
    }
    // Neighbour solicitation.
    if (!addr_in(ours, Family::V6, target)) return {Answer::Punt};  // e.g. the kernel's link-local
    if (have_lla && !src_unspecified) {
      r.has_hint = true;
      r.hint.addr = IpAddr::v6_raw(ip + 8);
      r.hint.mac = lla;
    }
    const uint32_t na_len = kEthHdrLen + kIpv6HdrLen + 32;
    if (capacity < na_len) return {Answer::Drop, Drop::runt};
    uint8_t tgt[16], dst[16];
    std::memcpy(tgt, target, 16);
    if (src_unspecified) {  // DAD probe: answer to all-nodes (RFC 4861 7.2.4)
      const uint8_t all_nodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
      std::memcpy(dst, all_nodes, 16);
      MacAddr m = ipv6_multicast_mac(IpAddr::v6_raw(dst));
      copy_mac(f, m);
    } else {
      std::memcpy(dst, ip + 8, 16);
      std::memcpy(f, f + 6, 6);
    }
    copy_mac(f + 6, port_mac);
    ip[0] = 0x60;
    ip[1] = ip[2] = ip[3] = 0;
    wr16(ip + 4, 32);
    ip[6] = kProtoIcmp6;
    ip[7] = 255;
    std::memcpy(ip + 8, tgt, 16);
    std::memcpy(ip + 24, dst, 16);
    icmp = ip + kIpv6HdrLen;
    icmp[0] = 136;
    icmp[1] = 0;
    icmp[2] = icmp[3] = 0;
    icmp[4] = src_unspecified ? 0x20 : 0x60;  // S (solicited) unless DAD, O (override)
    icmp[5] = icmp[6] = icmp[7] = 0;
    std::memcpy(icmp + 8, tgt, 16);
    icmp[24] = 2;  // target link-layer address option
    icmp[25] = 1;
    copy_mac(icmp + 26, port_mac);
    uint16_t c = l4_checksum(Family::V6, ip, icmp, 32, kProtoIcmp6);
    std::memcpy(icmp + 2, &c, 2);
    len = na_len;
    r.answer = Answer::Reply;
    return r;
  }
  if ((type >= 1 && type <= 4) || type == 129) return {Answer::Punt};  // errors, echo replies
  return {Answer::Drop, Drop::icmp_unhandled};  // RS/RA/redirect/MLD: not for an SBC
}

bool kernel_may_send(const uint8_t* f, uint32_t len) {
  if (len < kEthHdrLen) return false;
  uint16_t type = rd16(f + 12);
  if (type == 0x0800) {
    return len < kEthHdrLen + kIpv4HdrLen || f[kEthHdrLen + 9] != 2;  // IGMP
  }
  if (type != 0x86dd || len < kEthHdrLen + kIpv6HdrLen) return true;
  const uint8_t* ip = f + kEthHdrLen;
  uint8_t nh = ip[6];
  uint32_t off = kIpv6HdrLen;
  if (nh == 0) {  // MLD reports carry a hop-by-hop router alert (RFC 3810 5)
    if (len < kEthHdrLen + off + 8) return true;
    nh = ip[off];
    off += (ip[off + 1] + 1u) * 8u;
  }
  if (nh != kProtoIcmp6 || len < kEthHdrLen + off + 4) return true;
  uint8_t icmp_type = ip[off];
  if (icmp_type == 130 || icmp_type == 131 || icmp_type == 132 || icmp_type == 143) return false;
  if (icmp_type == 133) return false;  // router solicitation
  static const uint8_t unspecified[16] = {};
  if (icmp_type == 135 && std::memcmp(ip + 8, unspecified, 16) == 0) return false;  // DAD
  return true;
}

uint32_t build_arp_request(uint8_t* out, const MacAddr& src_mac, const IpAddr& src,
                           const IpAddr& target) {
  std::memset(out, 0, 60);
  std::memset(out, 0xff, 6);
  copy_mac(out + 6, src_mac);
  wr16(out + 12, 0x0806);
  uint8_t* a = out + kEthHdrLen;
  wr16(a, 1);
  wr16(a + 2, 0x0800);
  a[4] = 6;
  a[5] = 4;
  wr16(a + 6, 1);
  copy_mac(a + 8, src_mac);
  std::memcpy(a + 14, src.bytes.data(), 4);
  std::memcpy(a + 24, target.bytes.data(), 4);
  return 60;  // minimum Ethernet frame without FCS
}

uint32_t build_neighbour_solicitation(uint8_t* out, const MacAddr& src_mac, const IpAddr& src,
                                      const IpAddr& target) {
  IpAddr group = solicited_node(target);
  copy_mac(out, ipv6_multicast_mac(group));
  copy_mac(out + 6, src_mac);
  wr16(out + 12, 0x86dd);
  uint8_t* ip = out + kEthHdrLen;
  ip[0] = 0x60;
  ip[1] = ip[2] = ip[3] = 0;
  wr16(ip + 4, 32);
  ip[6] = kProtoIcmp6;
  ip[7] = 255;
  std::memcpy(ip + 8, src.bytes.data(), 16);
  std::memcpy(ip + 24, group.bytes.data(), 16);
  uint8_t* icmp = ip + kIpv6HdrLen;
  std::memset(icmp, 0, 32);
  icmp[0] = 135;
  std::memcpy(icmp + 8, target.bytes.data(), 16);
  icmp[24] = 1;  // source link-layer address option
  icmp[25] = 1;
  copy_mac(icmp + 26, src_mac);
  uint16_t c = l4_checksum(Family::V6, ip, icmp, 32, kProtoIcmp6);
  std::memcpy(icmp + 2, &c, 2);
  return kEthHdrLen + kIpv6HdrLen + 32;
}

}  // namespace veil::dp
