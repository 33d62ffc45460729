// Dataplane tests on DPDK virtual ports: each NIC and each exception path is a net_ring
// port whose rings the test feeds and drains. EAL runs once for the binary (--no-huge).
// Time is injected: WorkerCtx::pass() takes the TSC value to use, so latching and
// policing are tested without sleeping.
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_ring.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/dataplane.h"
#include "dataplane/packet.h"
#include "dataplane/worker.h"
#include "tests/dataplane/ring_lab.h"

using namespace veil;
using namespace veil::dp;
using namespace veil::dptest;

namespace {

// Three lcores on the machine's two CPUs: the test thread, and up to two workers.
const auto* g_env = ::testing::AddGlobalTestEnvironment(
    new EalEnv("relay_test", "veil-dptest", "0@0,1@1,2@1", "512"));

const MacAddr kIntHost2Mac{{0x02, 0x11, 0, 0, 0, 0x20}};

struct Lab : RingLab {
  explicit Lab(uint32_t punt_pps = 20000, std::vector<unsigned> workers = {},
               uint32_t punt_pps_per_source = 0,
               config::PortConfig::RxChecksums rx_checksums = config::PortConfig::RxChecksums::Auto) {
    unsigned q = workers.size() > 1 ? unsigned(workers.size()) : 1;
    ext = make_ring_port("e", q, 4096);
    intp = make_ring_port("i", q, 4096);
    ext_exc = make_ring_port("ex", q, 4096);
    int_exc = make_ring_port("ix", q, 4096);
    cfg.ports = {
        port_config("ext0", config::Role::External, ext,
                    {*IpPrefix::parse("203.0.113.1/24"), *IpPrefix::parse("2001:db8:1::1/64")}),
        port_config("int0", config::Role::Internal, intp,
                    {*IpPrefix::parse("198.51.100.1/24"), *IpPrefix::parse("2001:db8:2::1/64")})};
    cfg.ports[1].gateway4 = addr("198.51.100.254");
    for (auto& pc : cfg.ports) pc.rx_checksums = rx_checksums;
    cfg.media_external = {20000, 29999};
    cfg.media_internal = {30000, 39999};
    cfg.cores.workers = workers;
    cfg.limits.max_flows = 1024;
    cfg.limits.punt_pps = punt_pps;
    cfg.limits.punt_pps_per_source = punt_pps_per_source;
    cfg.limits.relatch_after_ms = 100;
    cfg.dataplane.mbufs = 4095;
    Options opt;
    opt.exception_devices = {ext_exc.name, int_exc.name};
    create(opt);
  }
  // A flow `id` from `remote` (nullptr: none signaled) to `local` on port `in`, relayed from
  // `out_local` to `out_remote` on port `out`.
  static FlowSpec spec(uint32_t id, uint8_t in, const char* local, const char* remote, uint8_t out,
                       const char* out_local, const char* out_remote, uint32_t peer = 0) {
    FlowSpec s;
    s.id = id;
    s.ingress_port = in;
    s.local = ep(local);
    if (remote) s.signaled_remote = ep(remote);
    s.egress_port = out;
    s.egress_local = ep(out_local);
    s.egress_remote = ep(out_remote);
    s.peer_id = peer;
    return s;
  }
  void pair_v4(LatchMode latch = LatchMode::Latch) {
    FlowSpec a = spec(1, 0, "203.0.113.1:20000", "203.0.113.10:4000", 1, "198.51.100.1:30000", "198.51.100.10:5000", 2);
    a.latch = latch;
    FlowSpec b = spec(2, 1, "198.51.100.1:30000", "198.51.100.10:5000", 0, "203.0.113.1:20000", "203.0.113.10:4000", 1);
    std::string why;
    ASSERT_EQ(dp->flows().install(a, &why), 0) << why;
    ASSERT_EQ(dp->flows().install(b, &why), 0) << why;
    dp->neighbours().learn(0, addr("203.0.113.10"), kExtHostMac);
    dp->neighbours().learn(1, addr("198.51.100.10"), kIntHostMac);
  }
};

}  // namespace

TEST(Relay, Ipv4RtpRewrittenByteExact) {
  Lab lab;
  lab.pair_v4();
  auto payload = rtp_payload(7);
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"),
                                ep("203.0.113.1:20000"), payload));
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  // Independently built expectation: Veil's internal address and port to the trusted host,
  // TTL 64, DSCP and IPv4 ID carried, full checksums.
  auto want = udp_frame(kIntHostMac, lab.int_mac, ep("198.51.100.1:30000"),
                        ep("198.51.100.10:5000"), payload);
  want[14 + 8] = 64;  // TTL
  want[14 + 10] = want[14 + 11] = 0;
  uint16_t c = ipv4_header_checksum(&want[14]);
  std::memcpy(&want[14 + 10], &c, 2);
  EXPECT_EQ(out[0], want);
  EXPECT_TRUE(lab.take(lab.ext).empty());
  auto s = lab.dp->flows().get(1);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->counters.packets, 1u);
  EXPECT_EQ(s->counters.bytes, payload.size());
  EXPECT_EQ(s->counters.last_ssrc, 0xcafebabeu);
  EXPECT_EQ(s->counters.last_seq, 7);
  EXPECT_EQ(s->learned, ep("203.0.113.10:4000"));
  EXPECT_EQ(lab.dp->event_count(Event::relayed), 1u);
}

TEST(Relay, ReverseDirectionAndRtcpPortPair) {
  Lab lab;
  lab.pair_v4();
  lab.inject(lab.intp, udp_frame(lab.int_mac, kIntHostMac, ep("198.51.100.10:5000"),
                                 ep("198.51.100.1:30000"), rtp_payload(1)));
  // RTCP on its own port pair (RFC 3550: RTP port + 1), a second flow pair.
  FlowSpec rtcp;
  rtcp.id = 3;
  rtcp.ingress_port = 1;
  rtcp.local = ep("198.51.100.1:30001");
  rtcp.egress_port = 0;
  rtcp.egress_local = ep("203.0.113.1:20001");
  rtcp.egress_remote = ep("203.0.113.10:4001");
  ASSERT_EQ(lab.dp->flows().install(rtcp), 0);
  std::vector<uint8_t> sr(28, 0);
  sr[0] = 0x80;
  sr[1] = 200;  // RTCP sender report
  lab.inject(lab.intp, udp_frame(lab.int_mac, kIntHostMac, ep("198.51.100.10:5001"),
                                 ep("198.51.100.1:30001"), sr));
  lab.pass();
  auto out = lab.take(lab.ext);
  ASSERT_EQ(out.size(), 2u);
  Parsed p0 = parse(out[0]), p1 = parse(out[1]);
  EXPECT_EQ(udp_source(out[0].data(), p0), ep("203.0.113.1:20000"));
  EXPECT_EQ(udp_destination(out[0].data(), p0), ep("203.0.113.10:4000"));
  EXPECT_EQ(udp_source(out[1].data(), p1), ep("203.0.113.1:20001"));
  EXPECT_EQ(udp_destination(out[1].data(), p1), ep("203.0.113.10:4001"));
  EXPECT_TRUE(l4_checksum_ok(out[1].data(), p1));
  EXPECT_EQ(std::memcmp(out[0].data(), kExtHostMac.b, 6), 0);
}

// A port whose checksums may be partial (a Linux veth behind net_af_packet: rx_checksums
// "partial", or "auto" there) sums the payload in full.
TEST(Relay, PartialChecksumInputLeavesWithFullChecksum) {
  Lab lab(20000, {}, 0, config::PortConfig::RxChecksums::Partial);
  ASSERT_FALSE(lab.dp->ports()[0].rx_csum_complete);
  lab.pair_v4();
  auto in = udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20000"),
                      rtp_payload(9), /*ttl=*/57, /*partial_csum=*/true);
  ASSERT_FALSE(l4_checksum_ok(in.data(), parse(in)));
  lab.inject(lab.ext, in);
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(l4_checksum_ok(out[0].data(), parse(out[0])));
}

// net_ring hands over what was put on it ("auto": complete): media relayed unchanged gets the
// received checksum adjusted (RFC 1624), which is the full checksum of the frame it leaves as;
// a packet whose mbuf says the NIC did not check a possibly partial checksum
// (RTE_MBUF_F_RX_L4_CKSUM_NONE, virtio) is summed in full; one the NIC found bad is dropped.
TEST(Relay, CompleteChecksumPortAdjustsIncrementally) {
  Lab lab;
  ASSERT_TRUE(lab.dp->ports()[0].rx_csum_complete);
  ASSERT_TRUE(lab.dp->ports()[1].rx_csum_complete);
  lab.pair_v4();
  auto inject_flags = [&](const std::vector<uint8_t>& frame, uint64_t flags) { lab.inject(lab.ext, frame, 0, flags); };
  // Checksums complete: the output verifies and equals what a full computation writes.
  for (unsigned n : {12u, 13u, 160u, 171u}) {
    auto payload = rtp_payload(uint8_t(n), n);
    auto in = udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20000"),
                        payload);
    inject_flags(in, 0);
    inject_flags(in, RTE_MBUF_F_RX_L4_CKSUM_GOOD);
    lab.pass();
    auto out = lab.take(lab.intp);
    ASSERT_EQ(out.size(), 2u);
    auto want = udp_frame(kIntHostMac, lab.int_mac, ep("198.51.100.1:30000"),
                          ep("198.51.100.10:5000"), payload, /*ttl=*/64);
    for (auto& o : out) {
      EXPECT_TRUE(l4_checksum_ok(o.data(), parse(o)));
      EXPECT_EQ(o, want) << "payload " << n;  // byte for byte, checksums included
    }
  }
  // Partial checksum, the mbuf says so: summed in full.
  auto partial = udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"),
                           ep("203.0.113.1:20000"), rtp_payload(9), /*ttl=*/57, /*partial_csum=*/true);
  inject_flags(partial, RTE_MBUF_F_RX_L4_CKSUM_NONE);
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(l4_checksum_ok(out[0].data(), parse(out[0])));
  // The NIC found the checksum bad: dropped and counted, never relayed.
  auto good = udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20000"),
                        rtp_payload(10));
  inject_flags(good, RTE_MBUF_F_RX_L4_CKSUM_BAD);
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_EQ(lab.dp->drop_count(Drop::udp_checksum_bad), 1u);
}

TEST(Relay, Ipv6ToIpv4Interworking) {
  Lab lab;
  FlowSpec a;
  a.id = 10;
  a.ingress_port = 0;
  a.local = ep("[2001:db8:1::1]:20010");
  a.egress_port = 1;
  a.egress_local = ep("198.51.100.1:30010");
  a.egress_remote = ep("198.51.100.10:5010");
  ASSERT_EQ(lab.dp->flows().install(a), 0);
  lab.dp->neighbours().learn(1, addr("198.51.100.10"), kIntHostMac);
  auto payload = rtp_payload(3, 200);
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("[2001:db8:1::10]:4000"),
                                ep("[2001:db8:1::1]:20010"), payload));
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].size(), 14u + 20 + 8 + payload.size());
  Parsed p = parse(out[0]);
  EXPECT_EQ(p.family, Family::V4);
  EXPECT_EQ(udp_destination(out[0].data(), p), ep("198.51.100.10:5010"));
  EXPECT_EQ(out[0][14 + 1], 0xb8);  // traffic class carried into the TOS byte
  EXPECT_TRUE(l4_checksum_ok(out[0].data(), p));
  EXPECT_EQ(std::vector<uint8_t>(out[0].begin() + 42, out[0].end()), payload);
}

TEST(Drops, CountedByReasonAndNeverForwarded) {
  Lab lab;
  lab.pair_v4(LatchMode::Strict);
  auto from = ep("203.0.113.10:4000");
  // Media port with no flow.
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, from, ep("203.0.113.1:25000"), rtp_payload(1)));
  // Strict flow, wrong source port.
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4001"),
                                ep("203.0.113.1:20000"), rtp_payload(2)));
  // Not RTP.
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, from, ep("203.0.113.1:20000"),
                                rtp_payload(3, 172, 0x00)));
  // Not our address.
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, from, ep("203.0.113.99:20000"), rtp_payload(4)));
  // A fragment to a media port.
  auto frag = udp_frame(lab.ext_mac, kExtHostMac, from, ep("203.0.113.1:20000"), rtp_payload(5));
  frag[14 + 6] = 0x20;  // MF
  lab.inject(lab.ext, frag);
  // Unicast to another MAC.
  lab.inject(lab.ext, udp_frame(kIntHostMac, kExtHostMac, from, ep("203.0.113.1:20000"), rtp_payload(6)));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_TRUE(lab.take(lab.ext_exc).empty());
  EXPECT_EQ(lab.dp->drop_count(Drop::media_no_flow), 1u);
  EXPECT_EQ(lab.dp->drop_count(Drop::src_mismatch), 1u);
  EXPECT_EQ(lab.dp->drop_count(Drop::not_rtp), 1u);
  EXPECT_EQ(lab.dp->drop_count(Drop::not_for_us), 1u);
  EXPECT_EQ(lab.dp->drop_count(Drop::fragment), 1u);
  EXPECT_EQ(lab.dp->drop_count(Drop::bad_l2), 1u);
  auto s = lab.dp->flows().get(1);
  EXPECT_EQ(s->counters.drops[unsigned(FlowDrop::src_mismatch)], 1u);
  EXPECT_EQ(s->counters.drops[unsigned(FlowDrop::not_rtp)], 1u);
  EXPECT_EQ(s->counters.packets, 0u);
}

// veilctl capture (dataplane/capture.h): an armed flow capture copies that flow's packets,
// as received and as relayed, onto the capture ring and nothing else; when the ring and its
// pool are full the copies are dropped and counted while every packet is still relayed; the
// arm turns itself off after `count` packets.
namespace {
std::vector<uint8_t> cap_bytes(const CapRecord& r) {
  const uint8_t* d = rte_pktmbuf_mtod(r.m, const uint8_t*);
  return {d, d + r.m->data_len};
}
void cap_arm(Dataplane& dp, uint32_t flow, uint8_t port, uint8_t dir, int64_t count) {
  CaptureArm& c = dp.capture();
  c.flow_id = flow;
  c.port = port;
  c.dir = dir;
  c.snaplen = 65535;
  c.captured = 0;
  c.dropped = 0;
  c.left = count;
  c.on.store(true, std::memory_order_release);
}
std::vector<CapRecord> cap_drain(Dataplane& dp) {
  std::vector<CapRecord> out;
  CapRecord r;
  while (rte_ring_sc_dequeue_elem(dp.capture().ring, &r, sizeof r) == 0) out.push_back(r);
  return out;
}
}  // namespace

TEST(Capture, FlowCopiesBothDirectionsOnlyItsPackets) {
  Lab lab;
  lab.pair_v4();
  cap_arm(*lab.dp, 1, 0, kCapIn | kCapOut, 4);
  auto in = udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20000"), rtp_payload(1));
  lab.inject(lab.ext, in);
  lab.inject(lab.intp, udp_frame(lab.int_mac, kIntHostMac, ep("198.51.100.10:5000"), ep("198.51.100.1:30000"),
                                 rtp_payload(2)));  // flow 2: not captured
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  auto recs = cap_drain(*lab.dp);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].dir, kCapIn);
  EXPECT_EQ(recs[0].port, 0);
  EXPECT_EQ(cap_bytes(recs[0]), in);       // as received
  EXPECT_EQ(recs[1].dir, kCapOut);
  EXPECT_EQ(recs[1].port, 1);
  EXPECT_EQ(cap_bytes(recs[1]), out[0]);   // as relayed
  EXPECT_EQ(recs[1].wire_len, out[0].size());
  for (auto& r : recs) rte_pktmbuf_free(r.m);
  EXPECT_TRUE(lab.dp->capture().armed());  // 2 of 4 taken
  lab.inject(lab.ext, in);
  lab.pass();
  EXPECT_FALSE(lab.dp->capture().armed());  // the 4th copy disarmed it
  EXPECT_EQ(lab.dp->capture().captured.load(), 4u);
  for (auto& r : cap_drain(*lab.dp)) rte_pktmbuf_free(r.m);
  lab.inject(lab.ext, in);
  lab.pass();
  EXPECT_TRUE(cap_drain(*lab.dp).empty());
  EXPECT_EQ(lab.take(lab.intp).size(), 2u);
}

TEST(Capture, FullRingDropsCopiesNeverPackets) {
  Lab lab;
  lab.pair_v4();
  const unsigned n = 2600;  // more than the pool (2047) and the ring (2048) hold
  cap_arm(*lab.dp, 1, 0, kCapIn, n);
  unsigned relayed = 0;
  for (unsigned i = 0; i < n; i += 26) {
    for (unsigned k = 0; k < 26; ++k)
      lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20000"),
                                    rtp_payload(uint16_t(i + k))));
    lab.pass();
    relayed += unsigned(lab.take(lab.intp).size());
  }
  EXPECT_EQ(relayed, n);
  EXPECT_EQ(lab.dp->event_count(Event::relayed), n);
  const CaptureArm& c = lab.dp->capture();
  EXPECT_EQ(c.captured.load() + c.dropped.load(), n);
  EXPECT_EQ(c.captured.load(), CaptureArm::kRingSize - 1);  // the pool runs out first
  EXPECT_FALSE(c.armed());
  auto recs = cap_drain(*lab.dp);
  EXPECT_EQ(recs.size(), c.captured.load());
  for (auto& r : recs) rte_pktmbuf_free(r.m);
}

TEST(Capture, PortCaptureTakesThatPortOnly) {
  Lab lab;
  lab.pair_v4();
  cap_arm(*lab.dp, 0, 1, kCapIn, 10);  // int0, as received
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20000"),
                                rtp_payload(1)));
  auto back = udp_frame(lab.int_mac, kIntHostMac, ep("198.51.100.10:5000"), ep("198.51.100.1:30000"), rtp_payload(2));
  lab.inject(lab.intp, back);
  lab.pass();
  auto recs = cap_drain(*lab.dp);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].port, 1);
  EXPECT_EQ(cap_bytes(recs[0]), back);
  for (auto& r : recs) rte_pktmbuf_free(r.m);
}

// RFC 3550 statistics as the worker keeps them for a relayed RTP stream with a gap.
TEST(RtpStats, WorkerCountsLossOnTheFlow) {
  Lab lab;
  lab.pair_v4();
  for (uint16_t seq = 100; seq < 120; ++seq) {
    if (seq == 105 || seq == 106) continue;
    lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20000"),
                                  rtp_payload(seq)));
    lab.pass(2600000 * 20 / 1000);  // 20 ms at a 2.6 GHz TSC
  }
  auto s = lab.dp->flows().get(1);
  ASSERT_TRUE(s);
  RtpReport r = rtp_report(s->counters.rtp);
  EXPECT_EQ(s->counters.rtp.received, 18u);
  EXPECT_EQ(r.expected, 20u);
  EXPECT_EQ(r.lost, 2);
}

TEST(Neighbours, UnresolvedNextHopIsRequestedThenUsed) {
  Lab lab;
  lab.pair_v4();
  lab.dp->neighbours().forget(1, addr("198.51.100.10"));
  lab.dp->rcu().drain();
  auto pkt = udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20000"),
                       rtp_payload(1));
  lab.inject(lab.ext, pkt);
  lab.pass();
  EXPECT_EQ(lab.dp->drop_count(Drop::no_neighbour), 1u);
  lab.dp->poll_control();  // turns the request into an ARP request via worker 0
  lab.pass();
  auto arp = lab.take(lab.intp);
  ASSERT_EQ(arp.size(), 1u);
  ASSERT_GE(arp[0].size(), 42u);
  EXPECT_EQ(arp[0][12], 0x08);
  EXPECT_EQ(arp[0][13], 0x06);
  EXPECT_EQ(arp[0][21], 1);  // request
  EXPECT_EQ(IpAddr::v4_raw(&arp[0][38]), addr("198.51.100.10"));
  EXPECT_EQ(IpAddr::v4_raw(&arp[0][28]), addr("198.51.100.1"));
  // The host answers; the reply is learned and also handed to the kernel.
  std::vector<uint8_t> reply(42);
  std::memcpy(&reply[0], lab.int_mac.b, 6);
  std::memcpy(&reply[6], kIntHostMac.b, 6);
  put16(reply, 12, 0x0806);
  put16(reply, 14, 1);
  put16(reply, 16, 0x0800);
  reply[18] = 6;
  reply[19] = 4;
  put16(reply, 20, 2);
  std::memcpy(&reply[22], kIntHostMac.b, 6);
  std::memcpy(&reply[28], addr("198.51.100.10").bytes.data(), 4);
  std::memcpy(&reply[32], lab.int_mac.b, 6);
  std::memcpy(&reply[38], addr("198.51.100.1").bytes.data(), 4);
  lab.inject(lab.intp, reply);
  lab.pass();
  EXPECT_EQ(lab.take(lab.int_exc).size(), 1u);
  lab.dp->poll_control();
  lab.inject(lab.ext, pkt);
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::memcmp(out[0].data(), kIntHostMac.b, 6), 0);
}

TEST(Neighbours, OffLinkDestinationUsesGateway) {
  Lab lab;
  FlowSpec a;
  a.id = 20;
  a.ingress_port = 0;
  a.local = ep("203.0.113.1:20020");
  a.egress_port = 1;
  a.egress_local = ep("198.51.100.1:30020");
  a.egress_remote = ep("10.99.0.5:7000");  // off-link on the trusted side
  ASSERT_EQ(lab.dp->flows().install(a), 0);
  const MacAddr gw{{0x02, 0x99, 0, 0, 0, 0xfe}};
  lab.dp->neighbours().learn(1, addr("198.51.100.254"), gw);
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"),
                                ep("203.0.113.1:20020"), rtp_payload(1)));
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::memcmp(out[0].data(), gw.b, 6), 0);
}

TEST(Latching, LearnsFirstSourceRejectsOthersRelatchesAfterSilence) {
  Lab lab;
  lab.pair_v4();
  // Signaling said 203.0.113.10:4000 but the phone is behind NAT at 203.0.113.77:6000.
  lab.dp->neighbours().learn(0, addr("203.0.113.77"), kExtHostMac);
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.77:6000"),
                                ep("203.0.113.1:20000"), rtp_payload(1)));
  lab.pass();
  EXPECT_EQ(lab.take(lab.intp).size(), 1u);
  EXPECT_EQ(lab.dp->flows().get(1)->learned, ep("203.0.113.77:6000"));
  // Symmetric RTP: the reverse flow now sends to the latched address.
  lab.inject(lab.intp, udp_frame(lab.int_mac, kIntHostMac, ep("198.51.100.10:5000"),
                                 ep("198.51.100.1:30000"), rtp_payload(2)));
  lab.pass();
  auto back = lab.take(lab.ext);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(udp_destination(back[0].data(), parse(back[0])), ep("203.0.113.77:6000"));
  // Another source within the relatch interval (100 ms) is dropped...
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.66:6000"),
                                ep("203.0.113.1:20000"), rtp_payload(3)));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_EQ(lab.dp->flows().get(1)->counters.drops[unsigned(FlowDrop::src_mismatch)], 1u);
  // ...and accepted once the latched source has been silent for longer.
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.66:6000"),
                                ep("203.0.113.1:20000"), rtp_payload(4)));
  lab.pass(lab.dp->tsc_hz() / 5);
  EXPECT_EQ(lab.take(lab.intp).size(), 1u);
  EXPECT_EQ(lab.dp->flows().get(1)->learned, ep("203.0.113.66:6000"));
  EXPECT_EQ(lab.dp->flows().get(2)->egress_dst, ep("203.0.113.66:6000"));
}

TEST(ExceptionPath, SignalingPuntedAndKernelTrafficSent) {
  Lab lab;
  auto sip = udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:5060"), ep("203.0.113.1:5060"),
                       std::vector<uint8_t>{'O', 'P', 'T', 'I', 'O', 'N', 'S'});
  lab.inject(lab.ext, sip);
  lab.pass();
  auto punted = lab.take(lab.ext_exc);
  ASSERT_EQ(punted.size(), 1u);
  EXPECT_EQ(punted[0], sip);  // handed to the kernel unchanged
  // The kernel's answer leaves through the NIC as it is.
  auto answer = udp_frame(kExtHostMac, lab.ext_mac, ep("203.0.113.1:5060"), ep("203.0.113.10:5060"),
                          std::vector<uint8_t>{'2', '0', '0'});
  lab.inject(lab.ext_exc, answer);
  lab.pass();
  auto out = lab.take(lab.ext);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], answer);
  EXPECT_EQ(lab.dp->event_count(Event::punted), 1u);
  EXPECT_EQ(lab.dp->event_count(Event::from_kernel), 1u);
}

TEST(ExceptionPath, KernelAnnouncementsKeptOffTheWire) {
  Lab lab;
  // MLDv2 report from the tap (hop-by-hop router alert, then ICMPv6 143).
  std::vector<uint8_t> mld(14 + 40 + 8 + 28, 0);
  mld[0] = 0x33;
  mld[1] = 0x33;
  mld[5] = 0x16;
  std::memcpy(&mld[6], lab.ext_mac.b, 6);
  put16(mld, 12, 0x86dd);
  mld[14] = 0x60;
  put16(mld, 18, 36);
  mld[20] = 0;  // hop-by-hop
  mld[21] = 1;
  mld[54] = 58;
  mld[62] = 143;
  // Duplicate-address probe: NS from ::.
  std::vector<uint8_t> dad(14 + 40 + 24, 0);
  std::memcpy(&dad[6], lab.ext_mac.b, 6);
  put16(dad, 12, 0x86dd);
  dad[14] = 0x60;
  put16(dad, 18, 24);
  dad[20] = 58;
  dad[21] = 255;
  dad[54] = 135;
  // An ordinary neighbour solicitation from our address is allowed.
  std::vector<uint8_t> ns = dad;
  std::memcpy(&ns[22], addr("2001:db8:1::1").bytes.data(), 16);
  lab.inject(lab.ext_exc, mld);
  lab.inject(lab.ext_exc, dad);
  lab.inject(lab.ext_exc, ns);
  lab.pass();
  auto out = lab.take(lab.ext);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], ns);
  EXPECT_EQ(lab.dp->drop_count(Drop::kernel_filtered), 2u);
  EXPECT_EQ(lab.dp->event_count(Event::from_kernel), 1u);
}

TEST(ExceptionPath, PuntRateIsPolicedPerWorker) {
  Lab lab(/*punt_pps=*/100);  // bucket depth max(64, rate/10) = 64
  for (int i = 0; i < 100; ++i)
    lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:5060"),
                                  ep("203.0.113.1:5060"), std::vector<uint8_t>(20, 'x')));
  for (int i = 0; i < 4; ++i) lab.pass(10);  // no time passes to speak of
  EXPECT_EQ(lab.take(lab.ext_exc).size(), 64u);
  EXPECT_EQ(lab.dp->drop_count(Drop::punt_policed), 36u);
  // One second later the bucket has refilled.
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:5060"),
                                ep("203.0.113.1:5060"), std::vector<uint8_t>(20, 'x')));
  lab.pass(lab.dp->tsc_hz());
  EXPECT_EQ(lab.take(lab.ext_exc).size(), 1u);
}

// One host flooding signaling cannot use up the exception path for everyone: its own
// bucket (punt_pps_per_source, depth rate/5 = 40 here) runs dry first, another host still
// gets through, and the flooder gets through again once time has passed.
TEST(ExceptionPath, PuntRateIsPolicedPerSource) {
  Lab lab(/*punt_pps=*/20000, {}, /*punt_pps_per_source=*/200);
  auto sip_from = [&](const char* src) {
    return udp_frame(lab.ext_mac, kExtHostMac, ep(src), ep("203.0.113.1:5060"),
                     std::vector<uint8_t>(40, 'x'));
  };
  for (int i = 0; i < 100; ++i) lab.inject(lab.ext, sip_from("203.0.113.66:5060"));
  for (int i = 0; i < 4; ++i) lab.pass(10);
  EXPECT_EQ(lab.take(lab.ext_exc).size(), 40u);
  EXPECT_EQ(lab.dp->drop_count(Drop::punt_source_policed), 60u);
  EXPECT_EQ(lab.dp->drop_count(Drop::punt_policed), 0u);
  // Another source is unaffected.
  for (int i = 0; i < 10; ++i) lab.inject(lab.ext, sip_from("203.0.113.10:5060"));
  lab.pass(10);
  EXPECT_EQ(lab.take(lab.ext_exc).size(), 10u);
  // A second later the flooder's bucket has refilled.
  lab.inject(lab.ext, sip_from("203.0.113.66:5060"));
  lab.pass(lab.dp->tsc_hz());
  EXPECT_EQ(lab.take(lab.ext_exc).size(), 1u);
  // IPv6 sources are bucketed by /64: two addresses of one /64 share a bucket.
  for (int i = 0; i < 30; ++i) {
    lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("[2001:db8:1::66]:5060"),
                                  ep("[2001:db8:1::1]:5060"), std::vector<uint8_t>(40, 'x')));
    lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("[2001:db8:1::67]:5060"),
                                  ep("[2001:db8:1::1]:5060"), std::vector<uint8_t>(40, 'x')));
  }
  lab.pass(10);
  lab.pass(10);
  EXPECT_EQ(lab.take(lab.ext_exc).size(), 40u);
}

TEST(Answers, ArpEchoAndNeighbourSolicitation) {
  Lab lab;
  // ARP request for 203.0.113.1.
  std::vector<uint8_t> req(60, 0);
  std::memset(&req[0], 0xff, 6);
  std::memcpy(&req[6], kExtHostMac.b, 6);
  put16(req, 12, 0x0806);
  put16(req, 14, 1);
  put16(req, 16, 0x0800);
  req[18] = 6;
  req[19] = 4;
  put16(req, 20, 1);
  std::memcpy(&req[22], kExtHostMac.b, 6);
  std::memcpy(&req[28], addr("203.0.113.10").bytes.data(), 4);
  std::memcpy(&req[38], addr("203.0.113.1").bytes.data(), 4);
  lab.inject(lab.ext, req);
  // ICMP echo to 203.0.113.1.
  std::vector<uint8_t> echo(14 + 20 + 16, 0);
  std::memcpy(&echo[0], lab.ext_mac.b, 6);
  std::memcpy(&echo[6], kExtHostMac.b, 6);
  put16(echo, 12, 0x0800);
  echo[14] = 0x45;
  put16(echo, 16, 36);
  echo[22] = 64;
  echo[23] = 1;
  std::memcpy(&echo[26], addr("203.0.113.10").bytes.data(), 4);
  std::memcpy(&echo[30], addr("203.0.113.1").bytes.data(), 4);
  uint16_t c = ipv4_header_checksum(&echo[14]);
  std::memcpy(&echo[24], &c, 2);
  echo[34] = 8;
  put16(echo, 38, 0x4242);
  c = l4_checksum(Family::V4, &echo[14], &echo[34], 16, 99);  // any proto: ICMP has no pseudo header
  (void)c;
  // ICMP checksum without pseudo-header: compute over the message.
  {
    uint32_t sum = 0;
    for (size_t i = 34; i < echo.size(); i += 2) sum += uint32_t(echo[i] << 8 | echo[i + 1]);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    put16(echo, 36, uint16_t(~sum));
  }
  lab.inject(lab.ext, echo);
  // Neighbour solicitation for 2001:db8:1::1 from 2001:db8:1::10.
  std::vector<uint8_t> ns(14 + 40 + 32, 0);
  IpAddr target = addr("2001:db8:1::1"), sender = addr("2001:db8:1::10");
  IpAddr group = solicited_node(target);
  MacAddr gm = ipv6_multicast_mac(group);
  std::memcpy(&ns[0], gm.b, 6);
  std::memcpy(&ns[6], kExtHostMac.b, 6);
  put16(ns, 12, 0x86dd);
  ns[14] = 0x60;
  put16(ns, 18, 32);
  ns[20] = 58;
  ns[21] = 255;
  std::memcpy(&ns[22], sender.bytes.data(), 16);
  std::memcpy(&ns[38], group.bytes.data(), 16);
  ns[54] = 135;
  std::memcpy(&ns[62], target.bytes.data(), 16);
  ns[78] = 1;
  ns[79] = 1;
  std::memcpy(&ns[80], kExtHostMac.b, 6);
  c = l4_checksum(Family::V6, &ns[14], &ns[54], 32, 58);
  std::memcpy(&ns[56], &c, 2);
  lab.inject(lab.ext, ns);
  lab.pass();
  auto out = lab.take(lab.ext);
  ASSERT_EQ(out.size(), 3u);
  // ARP reply: sender is us with our MAC, to the requester.
  EXPECT_EQ(std::memcmp(&out[0][0], kExtHostMac.b, 6), 0);
  EXPECT_EQ(out[0][21], 2);
  EXPECT_EQ(std::memcmp(&out[0][22], lab.ext_mac.b, 6), 0);
  EXPECT_EQ(IpAddr::v4_raw(&out[0][28]), addr("203.0.113.1"));
  // Echo reply.
  EXPECT_EQ(out[1][34], 0);
  EXPECT_EQ(IpAddr::v4_raw(&out[1][26]), addr("203.0.113.1"));
  EXPECT_EQ(IpAddr::v4_raw(&out[1][30]), addr("203.0.113.10"));
  // Neighbour advertisement with our MAC as target link-layer address.
  ASSERT_EQ(out[2].size(), 86u);
  EXPECT_EQ(out[2][54], 136);
  EXPECT_EQ(std::memcmp(&out[2][80], lab.ext_mac.b, 6), 0);
  EXPECT_TRUE(l4_checksum_ok(out[2].data(), parse(out[2])));
  EXPECT_EQ(lab.dp->event_count(Event::arp_replies), 1u);
  EXPECT_EQ(lab.dp->event_count(Event::echo_replies), 1u);
  EXPECT_EQ(lab.dp->event_count(Event::nd_replies), 1u);
  // The requesters were passed to the control plane and are now known neighbours.
  lab.dp->poll_control();
  EXPECT_TRUE(lab.dp->neighbours().known(0, addr("203.0.113.10")));
  EXPECT_TRUE(lab.dp->neighbours().known(0, addr("2001:db8:1::10")));
}

TEST(FlowTable, ApiRejectsBadSpecsAndReportsIdle) {
  Lab lab;
  lab.pair_v4();
  FlowSpec dup;
  dup.id = 99;
  dup.local = ep("203.0.113.1:20000");
  dup.egress_local = ep("198.51.100.1:30099");
  std::string why;
  EXPECT_EQ(lab.dp->flows().install(dup, &why), -EEXIST) << why;
  dup.local = ep("203.0.113.1:20099");
  dup.id = 1;
  EXPECT_EQ(lab.dp->flows().install(dup, &why), -EEXIST);
  dup.id = 0;
  EXPECT_EQ(lab.dp->flows().install(dup, &why), -EINVAL);
  dup.id = 99;
  dup.latch = LatchMode::Strict;  // strict needs a signaled remote
  EXPECT_EQ(lab.dp->flows().install(dup, &why), -EINVAL);
  EXPECT_EQ(lab.dp->flows().remove(12345), -ENOENT);
  // Idle: nothing seen since creation, one second later with a 0.5 s timeout.
  uint64_t hz = lab.dp->tsc_hz();
  auto idle = lab.dp->flows().idle(rte_rdtsc() + hz, hz / 2);
  EXPECT_EQ(std::set<uint32_t>(idle.begin(), idle.end()), (std::set<uint32_t>{1, 2}));
  EXPECT_TRUE(lab.dp->flows().idle(rte_rdtsc(), hz).empty());
  // Removing flow 2 leaves flow 1 without a peer but still relaying to its last destination.
  EXPECT_EQ(lab.dp->flows().remove(2), 0);
  lab.dp->rcu().drain();
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"),
                                ep("203.0.113.1:20000"), rtp_payload(1)));
  lab.pass();
  EXPECT_EQ(lab.take(lab.intp).size(), 1u);
}

// The id index: ids() ascending whatever the install order, walk() resumes past a cursor and
// stops when told (the management API's `flows after=ID limit=N`).
TEST(FlowTable, WalkInIdOrderFromCursor) {
  Lab lab;
  lab.pair_v4();  // flows 1 and 2
  for (uint32_t id : {50u, 7u, 30u, 4000000000u}) {
    FlowSpec s;
    s.id = id;
    s.local = ep(("203.0.113.1:" + std::to_string(21000 + id % 1000)).c_str());
    s.egress_local = ep(("198.51.100.1:" + std::to_string(31000 + id % 1000)).c_str());
    std::string why;
    ASSERT_EQ(lab.dp->flows().install(s, &why), 0) << why;
  }
  EXPECT_EQ(lab.dp->flows().ids(), (std::vector<uint32_t>{1, 2, 7, 30, 50, 4000000000u}));
  auto walk = [&](uint32_t after, size_t limit) {
    std::vector<uint32_t> v;
    lab.dp->flows().walk(after, [&](const FlowTable::Ref& f) {
      EXPECT_EQ(f.spec.id, f.id);
      EXPECT_EQ(f.flow.id, f.id);
      v.push_back(f.id);
      return v.size() < limit;
    });
    return v;
  };
  EXPECT_EQ(walk(0, 2), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(walk(2, 2), (std::vector<uint32_t>{7, 30}));
  EXPECT_EQ(walk(8, 100), (std::vector<uint32_t>{30, 50, 4000000000u}));
  EXPECT_TRUE(walk(4000000000u, 100).empty());
  EXPECT_EQ(lab.dp->flows().remove(30), 0);
  EXPECT_EQ(walk(7, 1), (std::vector<uint32_t>{50}));
}

// A worker on its own lcore relays a steady stream while the control plane re-points the
// flow between two trusted hosts and churns unrelated flows. Every packet must come out
// exactly once, at one of the two destinations, with nothing dropped.
TEST(Concurrency, FlowsChangedWhileTrafficRuns) {
  if (rte_lcore_count() < 2) GTEST_SKIP() << "needs two lcores";
  Lab lab(20000, {1});
  lab.pair_v4();
  lab.dp->neighbours().learn(1, addr("198.51.100.20"), kIntHost2Mac);
  std::string err;
  ASSERT_TRUE(lab.dp->start(err)) << err;
  FlowSpec a = *[&] {
    auto s = lab.dp->flows().get(1);
    return std::optional<FlowSpec>(s->spec);
  }();
  const int kPackets = 20000;
  std::vector<int> seen(kPackets, 0);
  int to_a = 0, to_b = 0, received = 0;
  auto collect = [&] {
    for (auto& f : lab.take(lab.intp)) {
      Parsed p = parse(f);
      Endpoint d = udp_destination(f.data(), p);
      if (d == ep("198.51.100.10:5000")) ++to_a;
      else if (d == ep("198.51.100.20:5000")) ++to_b;
      else ADD_FAILURE() << "misrouted to " << d.str();
      const uint8_t* rtp = f.data() + p.l4 + 8;
      uint32_t idx = uint32_t(rtp[12]) << 16 | uint32_t(rtp[13]) << 8 | rtp[14];
      ASSERT_LT(idx, uint32_t(kPackets));
      ++seen[idx];
      ++received;
    }
  };
  auto base = udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20000"),
                        rtp_payload(1, 60));
  uint32_t churn = 1000;
  for (int i = 0; i < kPackets; ++i) {
    auto f = base;
    f[42 + 12] = uint8_t(i >> 16);
    f[42 + 13] = uint8_t(i >> 8);
    f[42 + 14] = uint8_t(i);
    f[40] = f[41] = 0;  // checksum "none" (IPv4): the relay computes its own
    // Bound what is in flight so a worker slowed by a busy machine cannot run the
    // packet pool dry: back-pressure, not loss.
    for (int spin = 0; i - received > 512 && spin < 100000; ++spin) {
      collect();
      if (i - received > 512) usleep(50);
    }
    lab.inject(lab.ext, f);
    if (i % 500 == 250) {
      a.egress_remote = (i / 500) % 2 ? ep("198.51.100.10:5000") : ep("198.51.100.20:5000");
      ASSERT_EQ(lab.dp->flows().update(a, &err), 0) << err;
      FlowSpec x;
      x.id = ++churn;
      x.local = ep("203.0.113.1:21000");
      x.ingress_port = 0;
      x.egress_port = 1;
      x.egress_local = ep("198.51.100.1:31000");
      ASSERT_EQ(lab.dp->flows().install(x), 0);
      ASSERT_EQ(lab.dp->flows().remove(x.id), 0);
    }
    if (i % 64 == 0) {
      lab.dp->poll_control();
      collect();
    }
  }
  stop_after_collecting(*lab.dp, collect, received, kPackets);
  EXPECT_EQ(received, kPackets);
  expect_each_seen_once(seen);
  EXPECT_GT(to_a, 0);
  EXPECT_GT(to_b, 0);
  expect_no_drops(*lab.dp);
  lab.dp->rcu().drain();
}

// Two workers, each owning queue i of every port (what RSS spreads over on a NIC): each
// relays what arrives on its own queue and transmits on its own queue; counters sum.
TEST(Concurrency, TwoWorkersOwnTheirQueues) {
  if (rte_lcore_count() < 3) GTEST_SKIP() << "needs three lcores";
  Lab lab(20000, {1, 2});
  ASSERT_EQ(lab.dp->workers(), 2u);
  lab.pair_v4();
  std::string err;
  ASSERT_TRUE(lab.dp->start(err)) << err;
  const int kEach = 500;
  for (int i = 0; i < kEach; ++i) {
    lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"),
                                  ep("203.0.113.1:20000"), rtp_payload(uint16_t(i))), 0);
    lab.inject(lab.intp, udp_frame(lab.int_mac, kIntHostMac, ep("198.51.100.10:5000"),
                                   ep("198.51.100.1:30000"), rtp_payload(uint16_t(i))), 1);
  }
  size_t q0 = 0, q1 = 0, wrong = 0;
  for (int spin = 0; spin < 5000 && (q0 < size_t(kEach) || q1 < size_t(kEach)); ++spin) {
    q0 += lab.take(lab.intp, 0).size();  // from worker 0, which read ext queue 0
    q1 += lab.take(lab.ext, 1).size();   // from worker 1, which read int queue 1
    wrong += lab.take(lab.intp, 1).size() + lab.take(lab.ext, 0).size();
    usleep(200);
  }
  lab.dp->stop();
  EXPECT_EQ(q0, size_t(kEach));
  EXPECT_EQ(q1, size_t(kEach));
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(lab.dp->event_count(Event::relayed), uint64_t(2 * kEach));
  EXPECT_EQ(lab.dp->flows().get(1)->counters.packets, uint64_t(kEach));
  EXPECT_EQ(lab.dp->flows().get(2)->counters.packets, uint64_t(kEach));
}

// Two calls anchored here whose trusted legs name each other (phone -> PBX -> phone): call
// 1's flow sends to Veil's own trusted endpoint of call 2, which relays to the second phone.
// The packet never leaves on the trusted port, needs no neighbour, arrives byte-exact with
// both calls' counters counting it; a flow that would hairpin twice is dropped.
TEST(Hairpin, OwnEndpointIsRelayedInsideTheDataplane) {
  Lab lab;
  auto spec = [](uint32_t id, uint8_t in, const char* local, uint8_t out, const char* from, const char* to,
                 uint32_t peer) { return Lab::spec(id, in, local, nullptr, out, from, to, peer); };
  // Call 1: phone A (203.0.113.10:4000) <-> 203.0.113.1:20000 | 198.51.100.1:30000 <-> call 2's 30002.
  // Call 2: 198.51.100.1:30002 <-> call 1's 30000 | 203.0.113.1:20002 <-> phone B (203.0.113.11:4002).
  for (const FlowSpec& s : {spec(1, 0, "203.0.113.1:20000", 1, "198.51.100.1:30000", "198.51.100.1:30002", 2),
                            spec(2, 1, "198.51.100.1:30000", 0, "203.0.113.1:20000", "203.0.113.10:4000", 1),
                            spec(3, 1, "198.51.100.1:30002", 0, "203.0.113.1:20002", "203.0.113.11:4002", 4),
                            spec(4, 0, "203.0.113.1:20002", 1, "198.51.100.1:30002", "198.51.100.1:30000", 3)}) {
    std::string why;
    ASSERT_EQ(lab.dp->flows().install(s, &why), 0) << why;
  }
  const MacAddr kPhoneB{{0x02, 0x11, 0, 0, 0, 0x0b}};
  lab.dp->neighbours().learn(0, addr("203.0.113.10"), kExtHostMac);
  lab.dp->neighbours().learn(0, addr("203.0.113.11"), kPhoneB);
  auto payload = rtp_payload(9);
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20000"), payload));
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kPhoneB, ep("203.0.113.11:4002"), ep("203.0.113.1:20002"), payload));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());  // nothing on the trusted wire
  auto out = lab.take(lab.ext);
  ASSERT_EQ(out.size(), 2u);
  auto want_b = udp_frame(kPhoneB, lab.ext_mac, ep("203.0.113.1:20002"), ep("203.0.113.11:4002"), payload);
  auto want_a = udp_frame(kExtHostMac, lab.ext_mac, ep("203.0.113.1:20000"), ep("203.0.113.10:4000"), payload);
  for (auto* w : {&want_a, &want_b}) {
    (*w)[14 + 8] = 64;
    (*w)[14 + 10] = (*w)[14 + 11] = 0;
    uint16_t c = ipv4_header_checksum(&(*w)[14]);
    std::memcpy(&(*w)[14 + 10], &c, 2);
  }
  EXPECT_EQ(out[0], want_b);
  EXPECT_EQ(out[1], want_a);
  for (uint32_t id : {1u, 2u, 3u, 4u}) EXPECT_EQ(lab.dp->flows().get(id)->counters.packets, 1u) << id;
  EXPECT_EQ(lab.dp->event_count(Event::hairpinned), 2u);
  EXPECT_EQ(lab.dp->event_count(Event::relayed), 4u);
  EXPECT_EQ(lab.dp->drop_count(Drop::no_neighbour), 0u);

  // A flow whose own-endpoint destination relays to an own endpoint again: dropped, counted.
  std::string why;
  ASSERT_EQ(lab.dp->flows().install(spec(5, 0, "203.0.113.1:20004", 1, "198.51.100.1:30004", "198.51.100.1:30006", 0),
                                    &why), 0) << why;
  ASSERT_EQ(lab.dp->flows().install(spec(6, 1, "198.51.100.1:30006", 1, "198.51.100.1:30008", "198.51.100.1:30010", 0),
                                    &why), 0) << why;
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20004"), payload));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_TRUE(lab.take(lab.ext).empty());
  EXPECT_EQ(lab.dp->drop_count(Drop::hairpin_loop), 1u);
}

// The relay's fast path (Flow::tx, the egress cache): a flow's third packet from its latched
// source onwards is relayed without reading the action. Every frame it writes must be what
// the slow path writes, and every change the cache depends on must reach the next packet.
namespace {

// What Veil must send for an IPv4 RTP packet, built independently: `udp_frame` with TTL 64,
// DSCP EF and the IPv4 ID carried, full checksums.
std::vector<uint8_t> expected_v4(const MacAddr& dst_mac, const MacAddr& src_mac, const Endpoint& src,
                                 const Endpoint& dst, const std::vector<uint8_t>& payload, uint16_t ip_id) {
  return udp_frame(dst_mac, src_mac, src, dst, payload, 64, false, ip_id);
}

struct FastLab : Lab {
  using Lab::Lab;
  // Sends flow 1's packet `seq` from `src`; returns what left on the internal port.
  std::vector<std::vector<uint8_t>> send1(uint16_t seq, const Endpoint& src = ep("203.0.113.10:4000"),
                                          uint64_t advance = 1000, bool partial = false) {
    inject(ext, udp_frame(ext_mac, kExtHostMac, src, ep("203.0.113.1:20000"), rtp_payload(seq), 57, partial,
                          uint16_t(0x1000 + seq)));
    pass(advance);
    return take(intp);
  }
  uint64_t slow() const { return dp->event_count(Event::relay_slow); }
};

}  // namespace

TEST(FastPath, EveryFrameByteExactBothChecksumModes) {
  for (auto mode : {config::PortConfig::RxChecksums::Complete, config::PortConfig::RxChecksums::Partial}) {
    FastLab lab(20000, {}, 0, mode);
    lab.pair_v4();
    for (uint16_t seq = 1; seq <= 40; ++seq) {
      // Partial checksums on arrival (a veth's offload) only where the port says so.
      bool partial = mode == config::PortConfig::RxChecksums::Partial && seq % 2 == 0;
      auto out = lab.send1(seq, ep("203.0.113.10:4000"), 1000, partial);
      ASSERT_EQ(out.size(), 1u) << seq;
      EXPECT_EQ(out[0], expected_v4(kIntHostMac, lab.int_mac, ep("198.51.100.1:30000"), ep("198.51.100.10:5000"),
                                    rtp_payload(seq), uint16_t(0x1000 + seq)))
          << "packet " << seq;
    }
    // The first packet latched, the second built the cache, the other 38 took the fast path.
    EXPECT_EQ(lab.slow(), 2u);
    auto s = lab.dp->flows().get(1);
    EXPECT_EQ(s->counters.packets, 40u);
    EXPECT_EQ(s->counters.bytes, 40u * 172);
    EXPECT_EQ(s->counters.last_seq, 40);
    EXPECT_EQ(s->counters.last_ssrc, 0xcafebabeu);
    EXPECT_EQ(s->counters.rtp.received, 40u);
    EXPECT_EQ(lab.dp->event_count(Event::relayed), 40u);
  }
}

// A port with complete checksums: the cache holds the flow's fixed checksum change
// (TxPlan::udp_sum). A packet without a UDP checksum, or one the NIC did not verify (a
// partial checksum), is summed in full instead, still on the fast path.
TEST(FastPath, IncrementalFlowSumsPacketsWithoutAVerifiedChecksum) {
  FastLab lab(20000, {}, 0, config::PortConfig::RxChecksums::Complete);
  lab.pair_v4();
  lab.send1(1);
  lab.send1(2);
  ASSERT_EQ(lab.slow(), 2u);
  auto want = [&](uint16_t seq) {
    return expected_v4(kIntHostMac, lab.int_mac, ep("198.51.100.1:30000"), ep("198.51.100.10:5000"),
                       rtp_payload(seq), uint16_t(0x1000 + seq));
  };
  auto frame = [&](uint16_t seq, bool partial) {
    return udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20000"), rtp_payload(seq),
                     57, partial, uint16_t(0x1000 + seq));
  };
  auto send = [&](const std::vector<uint8_t>& f, uint64_t flags) {
    lab.inject(lab.ext, f, 0, flags);
    lab.pass();
    return lab.take(lab.intp);
  };
  // No checksum at all (RFC 768 allows it over IPv4): one is computed.
  auto none = frame(3, false);
  none[40] = none[41] = 0;
  auto out = send(none, RTE_MBUF_F_RX_L4_CKSUM_GOOD);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], want(3));
  // A partial checksum the NIC did not verify (RX_L4_CKSUM_NONE).
  out = send(frame(4, true), RTE_MBUF_F_RX_L4_CKSUM_NONE);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], want(4));
  // A complete one: adjusted by the flow's fixed change, the same bytes.
  for (uint16_t seq = 5; seq < 40; ++seq) {
    out = send(frame(seq, false), seq % 2 ? RTE_MBUF_F_RX_L4_CKSUM_GOOD : 0);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], want(seq)) << "packet " << seq;
  }
  EXPECT_EQ(lab.slow(), 2u);  // all of them on the fast path
}

TEST(FastPath, PaddingFlagsAndNonRtpAsOnTheSlowPath) {
  FastLab lab;
  lab.pair_v4();
  lab.send1(1);
  lab.send1(2);
  ASSERT_EQ(lab.slow(), 2u);
  // Ethernet padding after the IP datagram is not relayed; the identification is carried.
  auto padded = udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20000"),
                          rtp_payload(3), 57, false, 0x4343);
  padded.resize(padded.size() + 6, 0xee);
  lab.inject(lab.ext, padded);
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], expected_v4(kIntHostMac, lab.int_mac, ep("198.51.100.1:30000"), ep("198.51.100.10:5000"),
                                rtp_payload(3), 0x4343));
  EXPECT_EQ(lab.slow(), 2u);  // the fast path trims it
  // A flag bit other than DF (the reserved one) takes the slow path, which clears it (DF kept):
  // the fast path adjusts the header checksum and leaves the flags as they are.
  auto in = udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20000"), rtp_payload(3),
                      57, false, 0x4242);
  in[14 + 6] = 0xc0;  // DF and the reserved bit
  uint16_t c = 0;
  std::memcpy(&in[14 + 10], &c, 2);
  c = ipv4_header_checksum(&in[14]);
  std::memcpy(&in[14 + 10], &c, 2);
  in.resize(in.size() + 6, 0xee);
  lab.inject(lab.ext, in);
  lab.pass();
  out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], expected_v4(kIntHostMac, lab.int_mac, ep("198.51.100.1:30000"), ep("198.51.100.10:5000"),
                                rtp_payload(3), 0x4242));
  EXPECT_EQ(lab.slow(), 3u);
  // Not RTP (version 0) on a flow that checks: dropped and counted by the slow path.
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20000"),
                                rtp_payload(4, 172, 0x00)));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::not_rtp), 1u);
  EXPECT_EQ(lab.slow(), 4u);
}

// The fast path adjusts the IPv4 header checksum (RFC 1624) instead of recomputing it: a
// header that arrived with a wrong checksum leaves with one that is wrong by as much, as
// through a router, rather than being made to look intact.
TEST(FastPath, WrongHeaderChecksumStaysWrong) {
  FastLab lab;
  lab.pair_v4();
  lab.send1(1);
  lab.send1(2);
  ASSERT_EQ(lab.slow(), 2u);
  auto in = udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20000"), rtp_payload(3),
                      57, false, 0x1003);
  uint16_t c;
  std::memcpy(&c, &in[14 + 10], 2);
  c = uint16_t(c ^ 0x0100);
  std::memcpy(&in[14 + 10], &c, 2);
  lab.inject(lab.ext, in);
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(lab.slow(), 2u);
  auto want = expected_v4(kIntHostMac, lab.int_mac, ep("198.51.100.1:30000"), ep("198.51.100.10:5000"),
                          rtp_payload(3), 0x1003);
  ASSERT_EQ(out[0].size(), want.size());
  // The receiver still sees it broken, by the same bit.
  uint16_t sent, right = ipv4_header_checksum(&out[0][14]);
  std::memcpy(&sent, &out[0][14 + 10], 2);
  EXPECT_EQ(sent, uint16_t(right ^ 0x0100));
  // Everything else is as for an intact packet.
  out[0][14 + 10] = want[14 + 10];
  out[0][14 + 11] = want[14 + 11];
  EXPECT_EQ(out[0], want);
}

// Packets the fast path cannot take are relayed after the burst's other ones; each flow's
// own packets keep their order.
TEST(FastPath, EachFlowKeepsItsOrderInABurst) {
  FastLab lab;
  lab.pair_v4();
  lab.dp->neighbours().learn(1, addr("198.51.100.11"), kIntHost2Mac);
  lab.send1(1);
  lab.send1(2);
  ASSERT_EQ(lab.slow(), 2u);
  FlowSpec c = Lab::spec(3, 0, "203.0.113.1:20002", "203.0.113.11:4002", 1, "198.51.100.1:30002", "198.51.100.11:5002");
  std::string why;
  ASSERT_EQ(lab.dp->flows().install(c, &why), 0) << why;
  // One burst: flow 3's first two packets (the slow path latches and builds its cache) between
  // flow 1's, which take the fast path.
  auto f1 = [&](uint16_t seq) {
    return udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.10:4000"), ep("203.0.113.1:20000"), rtp_payload(seq),
                     57, false, uint16_t(0x1000 + seq));
  };
  auto f3 = [&](uint16_t seq) {
    return udp_frame(lab.ext_mac, kExtHostMac, ep("203.0.113.11:4002"), ep("203.0.113.1:20002"), rtp_payload(seq),
                     57, false, uint16_t(0x3000 + seq));
  };
  lab.inject(lab.ext, f3(1));
  lab.inject(lab.ext, f1(3));
  lab.inject(lab.ext, f3(2));
  lab.inject(lab.ext, f1(4));
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 4u);
  auto w1 = [&](uint16_t seq) {
    return expected_v4(kIntHostMac, lab.int_mac, ep("198.51.100.1:30000"), ep("198.51.100.10:5000"),
                       rtp_payload(seq), uint16_t(0x1000 + seq));
  };
  auto w3 = [&](uint16_t seq) {
    return expected_v4(kIntHost2Mac, lab.int_mac, ep("198.51.100.1:30002"), ep("198.51.100.11:5002"),
                       rtp_payload(seq), uint16_t(0x3000 + seq));
  };
  EXPECT_EQ(out[0], w1(3));
  EXPECT_EQ(out[1], w1(4));
  EXPECT_EQ(out[2], w3(1));
  EXPECT_EQ(out[3], w3(2));
  EXPECT_EQ(lab.slow(), 4u);
  EXPECT_EQ(lab.dp->event_count(Event::relayed), 6u);
}

TEST(FastPath, ChangesReachTheNextPacket) {
  FastLab lab;
  lab.pair_v4();
  for (uint16_t seq = 1; seq <= 3; ++seq) ASSERT_EQ(lab.send1(seq).size(), 1u);
  ASSERT_EQ(lab.slow(), 2u);

  // A new destination from the control plane (flow update).
  FlowSpec a = lab.dp->flows().get(1)->spec;
  a.egress_remote = ep("198.51.100.20:6000");
  ASSERT_EQ(lab.dp->flows().update(a), 0);
  lab.dp->neighbours().learn(1, addr("198.51.100.20"), kIntHost2Mac);
  auto out = lab.send1(4);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], expected_v4(kIntHost2Mac, lab.int_mac, ep("198.51.100.1:30000"), ep("198.51.100.20:6000"),
                                rtp_payload(4), 0x1004));
  ASSERT_EQ(lab.send1(5).size(), 1u);
  ASSERT_EQ(lab.send1(6).size(), 1u);
  uint64_t slow = lab.slow();

  // The next hop's MAC changes (a new ARP answer): the very next packet carries it.
  const MacAddr moved{{0x02, 0x11, 0, 0, 0, 0x77}};
  lab.dp->neighbours().learn(1, addr("198.51.100.20"), moved);
  out = lab.send1(7);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::memcmp(out[0].data(), moved.b, 6), 0);
  EXPECT_EQ(lab.slow(), slow + 1);

  // Disabled by hand: dropped and counted from the next packet on.
  a.drop = true;
  ASSERT_EQ(lab.dp->flows().update(a), 0);
  EXPECT_TRUE(lab.send1(8).empty());
  EXPECT_TRUE(lab.send1(9).empty());
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::disabled), 2u);
  a.drop = false;
  ASSERT_EQ(lab.dp->flows().update(a), 0);
  EXPECT_EQ(lab.send1(10).size(), 1u);

  // The peer's latch moves the reverse flow's destination (symmetric RTP): flow 2's cache
  // follows. Warm flow 2 first, then the phone moves (after silence) to a new source.
  auto send2 = [&](uint16_t seq) {
    lab.inject(lab.intp, udp_frame(lab.int_mac, kIntHostMac, ep("198.51.100.10:5000"), ep("198.51.100.1:30000"),
                                   rtp_payload(seq)));
    lab.pass();
    return lab.take(lab.ext);
  };
  lab.dp->neighbours().learn(0, addr("203.0.113.77"), kExtHostMac);  // before: a new neighbour also invalidates
  for (uint16_t seq = 1; seq <= 3; ++seq) ASSERT_EQ(send2(seq).size(), 1u);
  // Flow 1's cache rebuilt for the source it has (flow 2's latch moved its destination).
  for (uint16_t seq = 11; seq <= 13; ++seq) ASSERT_EQ(lab.send1(seq).size(), 1u);
  slow = lab.slow();
  ASSERT_EQ(lab.send1(14).size(), 1u);
  ASSERT_EQ(lab.slow(), slow);  // on the fast path
  ASSERT_EQ(lab.send1(15, ep("203.0.113.77:6000"), lab.dp->tsc_hz()).size(), 1u);  // relatched
  EXPECT_EQ(lab.dp->flows().get(1)->learned, ep("203.0.113.77:6000"));
  out = send2(4);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(udp_destination(out[0].data(), parse(out[0])), ep("203.0.113.77:6000"));
  // The old source is refused at once, though flow 1's cache had accepted it before.
  EXPECT_TRUE(lab.send1(16).empty());
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::src_mismatch), 1u);
  // The new one goes on through the cache.
  slow = lab.slow();
  for (uint16_t seq = 17; seq <= 20; ++seq) ASSERT_EQ(lab.send1(seq, ep("203.0.113.77:6000")).size(), 1u);
  EXPECT_LE(lab.slow(), slow + 1);
}

TEST(FastPath, StrictFlowRefusesOtherSourcesAfterWarmUp) {
  FastLab lab;
  lab.pair_v4(LatchMode::Strict);
  for (uint16_t seq = 1; seq <= 4; ++seq) ASSERT_EQ(lab.send1(seq).size(), 1u);
  EXPECT_EQ(lab.slow(), 1u);  // strict: the first packet builds the cache
  lab.dp->neighbours().learn(0, addr("203.0.113.66"), kExtHostMac);
  EXPECT_TRUE(lab.send1(5, ep("203.0.113.66:4000")).empty());
  EXPECT_TRUE(lab.send1(6, ep("203.0.113.10:4001")).empty());
  EXPECT_TRUE(lab.send1(7, ep("203.0.113.66:4000"), lab.dp->tsc_hz()).empty());  // never relatches
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::src_mismatch), 3u);
  EXPECT_EQ(lab.send1(8).size(), 1u);
}

TEST(FastPath, CaptureArmedTakesTheSlowPathAndCopies) {
  FastLab lab;
  lab.pair_v4();
  for (uint16_t seq = 1; seq <= 3; ++seq) ASSERT_EQ(lab.send1(seq).size(), 1u);
  cap_arm(*lab.dp, 1, 0, kCapIn | kCapOut, 2);
  auto out = lab.send1(4);
  ASSERT_EQ(out.size(), 1u);
  auto recs = cap_drain(*lab.dp);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(cap_bytes(recs[1]), out[0]);
  for (auto& r : recs) rte_pktmbuf_free(r.m);
}
