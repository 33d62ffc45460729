// Fuzz target for everything the dataplane does to a received frame before it trusts it:
// parse_frame, handle_arp, handle_icmp, rewrite_udp (to both address families), the
// latching decision. Built for libFuzzer when clang is used (-fsanitize=fuzzer), and always
// as a deterministic mutation run under AddressSanitizer (driver.cc) in the unit suite.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "dataplane/packet.h"

using namespace veil;
using namespace veil::dp;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

const MacAddr kPortMac{{0x02, 0, 0, 0, 0, 1}};

}  // namespace

// How far inputs got: parsed, ARP handled, ICMP handled, UDP rewritten (the driver prints it
// so a run that never reaches the deep paths is visible).
unsigned long g_fuzz_reached[4];

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 2048) return 0;
  // Frame at offset 128 of a 2048+128+64 buffer, like an mbuf with headroom and tailroom.
  static uint8_t buf[128 + 2048 + 128];
  uint8_t* frame = buf + 128;
  std::memcpy(frame, data, size);
  const IpAddr ours[] = {*IpAddr::parse("203.0.113.1"), *IpAddr::parse("2001:db8:1::1")};
  // Accept the frame's own destination MAC as ours half the time, to get past the L2 check.
  MacAddr mac = kPortMac;
  if (size >= 6 && (data[size - 1] & 1)) std::memcpy(mac.b, data, 6);

  Parsed p;
  Drop d = parse_frame(frame, uint32_t(size), mac, p);
  if (d != kNoDrop) return 0;
  ++g_fuzz_reached[0];
  check(p.l3 <= size);
  if (p.ethertype == 0x0806) {
    ++g_fuzz_reached[1];
    AnswerResult r = handle_arp(frame, uint32_t(size), mac, ours);
    if (r.answer == Answer::Reply) check(size >= 42);
    return 0;
  }
  check(p.family == Family::V4 || p.family == Family::V6);
  check(size_t(p.l4) <= size);
  if (!p.fragment || p.sport || p.dport) check(size_t(p.l4) + p.l4_len <= size);
  if (p.proto == kProtoIcmp || p.proto == kProtoIcmp6) {
    ++g_fuzz_reached[2];
    uint32_t len = uint32_t(size);
    AnswerResult r = handle_icmp(frame, len, 2048 + 128, p, mac, ours);
    if (r.answer == Answer::Reply) check(len <= 2048 + 128);
    return 0;
  }
  if (p.proto == kProtoUdp && !p.fragment && p.l4_len >= kUdpHdrLen) {
    Endpoint src = udp_source(frame, p);
    (void)latch_decide(LatchMode::Latch, src, Endpoint{}, 0, 1, src);
    (void)looks_like_rtp(frame + p.l4 + kUdpHdrLen, p.l4_len - kUdpHdrLen);
    EgressHeaders e;
    e.src_mac = kPortMac;
    bool to_v6 = size & 2;
    e.src = *Endpoint::parse(to_v6 ? "[2001:db8:2::1]:30000" : "198.51.100.1:30000");
    e.dst = *Endpoint::parse(to_v6 ? "[2001:db8:2::10]:4000" : "198.51.100.10:4000");
    uint32_t payload = p.l4_len - kUdpHdrLen;
    // The incremental checksum (RFC 1624) on a copy: a datagram that arrives with a valid
    // checksum must leave as the very frame the full computation gives. Half the inputs get
    // their checksum made valid first (the software path ignores the one that arrived).
    if (size & 4) {
      frame[p.l4 + 6] = frame[p.l4 + 7] = 0;
      uint16_t c = l4_checksum(p.family, frame + p.l3, frame + p.l4, p.l4_len, kProtoUdp);
      std::memcpy(frame + p.l4 + 6, &c, 2);
    }
    static uint8_t inc_buf[sizeof buf];
    std::memcpy(inc_buf, buf, sizeof buf);
    bool csum_valid = l4_checksum_ok(frame, p) && (frame[p.l4 + 6] | frame[p.l4 + 7]) != 0;
    uint32_t inc_len = 0;
    uint8_t* inc = rewrite_udp(inc_buf + 128, 128, p, e, CsumMode::Incremental, inc_len);
    uint32_t new_len = 0;
    uint8_t* out = rewrite_udp(frame, 128, p, e, CsumMode::Software, new_len);
    check(inc != nullptr && inc_len == new_len && inc - inc_buf == out - buf);
    if (csum_valid) check(std::memcmp(inc, out, new_len) == 0);
    check(out != nullptr);
    check(new_len == 14u + (to_v6 ? 40u : 20u) + 8u + payload);
    check(out >= buf && out + new_len <= buf + sizeof buf);
    Parsed q;
    check(parse_frame(out, new_len, MacAddr{}, q) == kNoDrop || true);
    MacAddr dst;
    std::memcpy(dst.b, out, 6);
    check(parse_frame(out, new_len, dst, q) == kNoDrop);
    check(l4_checksum_ok(out, q));
    ++g_fuzz_reached[3];
  }
  return 0;
}
