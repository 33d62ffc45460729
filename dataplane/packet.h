// Packet code that needs no EAL: parsing, the media rewrite, checksums, ARP/ND/ICMP
// responders and the latching decision. Functions work on a frame in a byte buffer so
// unit tests can feed packets built in memory; the worker calls them on mbuf data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "dataplane/addr.h"
#include "dataplane/drops.h"

namespace veil::dp {

struct MacAddr {
  uint8_t b[6] = {};
  friend bool operator==(const MacAddr&, const MacAddr&) = default;
  bool is_zero() const { return (b[0] | b[1] | b[2] | b[3] | b[4] | b[5]) == 0; }
};

inline constexpr uint16_t kEthHdrLen = 14;
inline constexpr uint16_t kIpv4HdrLen = 20;
inline constexpr uint16_t kIpv6HdrLen = 40;
inline constexpr uint16_t kUdpHdrLen = 8;
inline constexpr uint8_t kProtoIcmp = 1, kProtoTcp = 6, kProtoUdp = 17, kProtoIcmp6 = 58;

// Where the headers of a received frame are. Offsets count from the frame's first byte.
struct Parsed {
  uint16_t ethertype = 0;  // host order
  uint16_t l3 = 0;
  uint16_t l4 = 0;
  uint16_t l4_len = 0;     // L4 header + payload, from the IP header (not the frame: padding)
  uint16_t sport = 0, dport = 0;  // UDP/TCP ports, host order
  uint8_t proto = 0;       // IPv4 protocol / IPv6 final next header
  Family family = Family::None;
  bool fragment = false;
  bool options = false;    // IPv4 options or IPv6 extension headers present
  bool l2_multicast = false;
  const uint8_t* src_ip(const uint8_t* f) const { return f + l3 + (family == Family::V4 ? 12 : 8); }
  const uint8_t* dst_ip(const uint8_t* f) const { return f + l3 + (family == Family::V4 ? 16 : 24); }
};

inline constexpr Drop kNoDrop = Drop::count_;

// Parses Ethernet + ARP or IPv4/IPv6 + UDP/TCP/ICMP headers. Returns kNoDrop or why the
// frame cannot be handled. Checks every length it relies on against `len`.
Drop parse_frame(const uint8_t* frame, uint32_t len, const MacAddr& port_mac, Parsed& out);

// The egress side of a relayed media packet, resolved by the worker from the flow.
struct EgressHeaders {
  MacAddr src_mac, dst_mac;
  Endpoint src, dst;  // same family; may differ from the ingress family (v4 <-> v6)
  uint8_t hop_limit = 64;
};

enum class CsumMode : uint8_t {
  Software,  // full UDP checksum in software (arrivals may carry partial checksums)
  Offload,   // pseudo-header sum only; the NIC completes it (RTE_MBUF_F_TX_UDP_CKSUM)
  // The received checksum adjusted for the changed pseudo-header and ports (RFC 1624, as
  // NAT does), without reading the payload. Only for a payload that is relayed unchanged
  // and arrived with a complete checksum (not a Linux veth's partial one): the result is
  // then the full checksum, bit for bit; a received checksum that was wrong stays wrong.
  // A received checksum of zero (IPv4 "none") falls back to Software.
  Incremental,
};

// Rewrites a parsed UDP frame for egress. The UDP payload stays where it is; new
// Ethernet/IP/UDP headers are written right in front of it, so a family change needs
// at most 20 bytes of headroom in front of `frame`. Returns the new frame start and
// sets `new_len`; nullptr if there is not enough headroom.
uint8_t* rewrite_udp(uint8_t* frame, uint16_t headroom, const Parsed& p, const EgressHeaders& e,
                     CsumMode csum, uint32_t& new_len);

// Checksums (RFC 1071 one's complement). Return values are in network byte order, ready
// to store.
uint16_t ipv4_header_checksum(const uint8_t* ip);
uint16_t l4_checksum(Family f, const uint8_t* ip, const uint8_t* l4, uint16_t l4_len, uint8_t proto);
// Pseudo-header only (for checksum offload).
uint16_t l4_pseudo_checksum(Family f, const uint8_t* ip, uint16_t l4_len, uint8_t proto);
// True when the L4 checksum of a complete packet verifies (tests and traces).
bool l4_checksum_ok(const uint8_t* frame, const Parsed& p);

// RTP and RTCP share version 2 in the first two bits (RFC 3550 5.1, 6.4; RFC 5761 4).
inline bool looks_like_rtp(const uint8_t* payload, uint32_t len) {
  return len >= 8 && (payload[0] >> 6) == 2;
}

// Local neighbour information found in ARP / ND, passed to the control plane.
struct NeighHint {
  IpAddr addr;
  MacAddr mac;
};

enum class Answer : uint8_t {
  Reply,    // frame rewritten in place as the answer; send it back out the same port
  Punt,     // hand the frame to the kernel interface
  Consume,  // nothing to send (hint may be filled)
  Drop,     // drop with `drop`
};

struct AnswerResult {
  AnswerResult() = default;
  AnswerResult(Answer a, Drop d = kNoDrop) : answer(a), drop(d) {}
  Answer answer = Answer::Drop;
  Drop drop = kNoDrop;
  bool has_hint = false;  // `hint` carries a neighbour to learn
  NeighHint hint;
};

// ARP (RFC 826): a request for one of `ours` becomes the reply in place (and its sender is
// learned); a reply addressed to us is learned and punted so the kernel learns it too.
AnswerResult handle_arp(uint8_t* frame, uint32_t len, const MacAddr& port_mac,
                        std::span<const IpAddr> ours);

// ICMPv4/ICMPv6 addressed to one of our addresses: echo requests are answered in place,
// neighbour solicitations for our addresses answered with an advertisement (RFC 4861
// 7.2.4), advertisements learned and punted, errors punted, the rest dropped.
// `len` may change (the NA has a fixed size). `ours` holds the port's addresses.
// `capacity` is the room from `frame` to the end of the buffer (the NA may be longer than the NS).
AnswerResult handle_icmp(uint8_t* frame, uint32_t& len, uint32_t capacity, const Parsed& p,
                         const MacAddr& port_mac, std::span<const IpAddr> ours);

// Builds an ARP request / neighbour solicitation for `target` from `src` into `out`
// (at least 86 bytes). Returns the frame length.
uint32_t build_arp_request(uint8_t* out, const MacAddr& src_mac, const IpAddr& src,
                           const IpAddr& target);
uint32_t build_neighbour_solicitation(uint8_t* out, const MacAddr& src_mac, const IpAddr& src,
                                      const IpAddr& target);

// Whether a frame the kernel sends on an exception interface may go on the wire. The
// kernel announces itself in ways an SBC must not: IGMP and MLD reports (group membership
// of the box), duplicate-address probes (NS from ::), router solicitations. Everything else
// (ARP, NS/NA for resolution, signaling, ICMP errors) goes out unchanged.
bool kernel_may_send(const uint8_t* frame, uint32_t len);

// Symmetric latching (see docs/architecture.md, "Latching").
enum class LatchMode : uint8_t { Strict = 0, Latch = 1 };
enum class LatchVerdict : uint8_t { Accept, Learn, Drop };

// Decides what to do with a media packet from `src`. `learned` is the endpoint latched so
// far (invalid if none), `learned_idle` how long (in the caller's clock units) it has been
// silent, `relatch_after` how long it must be silent before another source may replace it.
inline LatchVerdict latch_decide(LatchMode mode, const Endpoint& signaled, const Endpoint& learned,
                                 uint64_t learned_idle, uint64_t relatch_after,
                                 const Endpoint& src) {
  if (mode == LatchMode::Strict) return src == signaled ? LatchVerdict::Accept : LatchVerdict::Drop;
  if (!learned.valid()) return LatchVerdict::Learn;
  if (src == learned) return LatchVerdict::Accept;
  return learned_idle >= relatch_after ? LatchVerdict::Learn : LatchVerdict::Drop;
}

// Reads the source endpoint of a parsed UDP frame.
Endpoint udp_source(const uint8_t* frame, const Parsed& p);
Endpoint udp_destination(const uint8_t* frame, const Parsed& p);

// udp_source(frame, p) == e, without building the Endpoint: the packet's address and port
// are compared in registers against `e` read as two 8-byte words and one 4-byte word (a
// freshly built Endpoint read back with wide loads that span its narrow stores stalls on
// store forwarding: the worker's per-packet latch check). Endpoint's padding byte is ignored.
inline bool is_udp_source(const Endpoint& e, const uint8_t* f, const Parsed& p) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);
  static_assert(sizeof(Endpoint) == 20 && offsetof(Endpoint, port) == 18 &&
                offsetof(IpAddr, bytes) == 1 && sizeof(Family) == 1);
  const auto* eb = reinterpret_cast<const uint8_t*>(&e);
  uint64_t e0, e1;
  uint32_t e2;
  std::memcpy(&e0, eb, 8);
  std::memcpy(&e1, eb + 8, 8);
  std::memcpy(&e2, eb + 16, 4);
  const uint8_t* s = p.src_ip(f);
  uint64_t w0, w1;
  uint32_t w2;
  if (p.family == Family::V4) {
    uint32_t a;
    std::memcpy(&a, s, 4);
    w0 = uint64_t(Family::V4) | uint64_t(a) << 8;
    w1 = 0;
    w2 = uint32_t(p.sport) << 16;
  } else {
    uint64_t a0, a1;
    std::memcpy(&a0, s, 8);
    std::memcpy(&a1, s + 8, 8);
    w0 = uint64_t(p.family) | a0 << 8;
    w1 = a0 >> 56 | a1 << 8;
    w2 = uint32_t(a1 >> 56) | uint32_t(p.sport) << 16;
  }
  return ((e0 ^ w0) | (e1 ^ w1) | ((e2 ^ w2) & 0xffff00ffu)) == 0;
}

// Solicited-node multicast (RFC 4291 2.7.1) for `a`, and its Ethernet mapping (RFC 2464 7).
IpAddr solicited_node(const IpAddr& a);
MacAddr ipv6_multicast_mac(const IpAddr& group);

}  // namespace veil::dp
