// SRTP through the dataplane on DPDK net_ring ports (the harness of relay_test.cc): SRTP in ->
// RTP out, RTP in -> SRTP out, SRTP -> SRTP re-keyed, SRTCP on an rtcp-mux flow, for
// AES_CM_128_HMAC_SHA1_80 and AEAD_AES_128_GCM; tampered, replayed, unkeyed and foreign-key
// packets dropped and counted (globally and per flow), never forwarded and never latched.
// The peers are libsrtp2 sessions of their own, independent of Veil's wrapper.
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <srtp2/srtp.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "controlplane/doc.h"
#include "controlplane/mgmt.h"
#include "dataplane/dataplane.h"
#include "dataplane/packet.h"
#include "dataplane/srtp_lib.h"
#include "dataplane/worker.h"
#include "tests/dataplane/ring_lab.h"
#include "tests/dataplane/srtp_peer.h"

using namespace veil;
using namespace veil::dp;
using namespace veil::dptest;
using Bytes = std::vector<uint8_t>;

namespace {

// Two lcores on the machine's two CPUs: the test thread and one worker.
class SrtpEalEnv : public EalEnv {
 public:
  SrtpEalEnv() : EalEnv("srtp_test", "veil-srtptest", "0@0,1@1", "256") {}
  void SetUp() override {
    EalEnv::SetUp();
    if (::testing::Test::HasFatalFailure()) return;
    ASSERT_TRUE(srtp_start().ok);  // as veild does at start-up
  }
};
const auto* g_env = ::testing::AddGlobalTestEnvironment(new SrtpEalEnv);

Bytes rtp(uint16_t seq, uint32_t ssrc = 0xcafebabe, size_t len = 172) {
  Bytes p(len);
  p[0] = 0x80;
  p[1] = 0;
  put16(p, 2, seq);
  uint32_t ts = 160u * seq;
  for (int i = 0; i < 4; ++i) {
    p[4 + i] = uint8_t(ts >> (24 - 8 * i));
    p[8 + i] = uint8_t(ssrc >> (24 - 8 * i));
  }
  for (size_t i = 12; i < len; ++i) p[i] = uint8_t(i * 7 + seq);
  return p;
}
Bytes rtcp_sr(uint32_t ssrc = 0xcafebabe) {
  Bytes p = {0x80, 200, 0, 6, 0, 0, 0, 0, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0x10, 0, 0, 6, 0x40};
  for (int i = 0; i < 4; ++i) p[4 + i] = uint8_t(ssrc >> (24 - 8 * i));
  return p;
}

SrtpKeying keying(SrtpProfile p, uint8_t seed) {
  SrtpKeying k;
  k.profile = p;
  k.keyed = true;
  for (unsigned i = 0; i < srtp_master_len(p); ++i) k.master[i] = uint8_t(seed * 31 + i * 7);
  return k;
}

using Peer = SrtpPeer;  // tests/dataplane/srtp_peer.h

const Endpoint kBrowser = ep("203.0.113.10:4000");
const Endpoint kSbcExt = ep("203.0.113.1:20000");
const Endpoint kSbcInt = ep("198.51.100.1:30000");
const Endpoint kPbx = ep("198.51.100.10:5000");

struct Lab : RingLab {
  explicit Lab(std::vector<unsigned> workers = {}) {
    ext = make_ring_port("e");
    intp = make_ring_port("i");
    cfg.ports = {
        port_config("ext0", config::Role::External, ext, {*IpPrefix::parse("203.0.113.1/24")}),
        port_config("int0", config::Role::Internal, intp, {*IpPrefix::parse("198.51.100.1/24")})};
    cfg.media_external = {20000, 29999};
    cfg.media_internal = {30000, 39999};
    cfg.limits.max_flows = 64;
    cfg.cores.workers = workers;
    cfg.dataplane.mbufs = 1023;
    Options opt;
    opt.create_taps = false;
    create(opt);
    if (!dp) return;
    dp->neighbours().learn(0, addr("203.0.113.10"), kExtHostMac);
    dp->neighbours().learn(1, addr("198.51.100.10"), kIntHostMac);
  }
  // Flow 1: browser -> PBX (receives on kSbcExt); flow 2: PBX -> browser (receives on kSbcInt).
  void install(const SrtpKeying& in1, const SrtpKeying& out1, const SrtpKeying& in2, const SrtpKeying& out2) {
    FlowSpec a;
    a.id = 1;
    a.ingress_port = 0;
    a.local = kSbcExt;
    a.signaled_remote = kBrowser;
    a.egress_port = 1;
    a.egress_local = kSbcInt;
    a.egress_remote = kPbx;
    a.peer_id = 2;
    a.srtp_in = in1;
    a.srtp_out = out1;
    FlowSpec b;
    b.id = 2;
    b.ingress_port = 1;
    b.local = kSbcInt;
    b.signaled_remote = kPbx;
    b.egress_port = 0;
    b.egress_local = kSbcExt;
    b.egress_remote = kBrowser;
    b.peer_id = 1;
    b.srtp_in = in2;
    b.srtp_out = out2;
    std::string why;
    ASSERT_EQ(dp->flows().install(a, &why), 0) << why;
    ASSERT_EQ(dp->flows().install(b, &why), 0) << why;
  }
  void from_browser(const Bytes& payload, const Endpoint& src = kBrowser) {
    inject(ext, udp_frame(ext_mac, kExtHostMac, src, kSbcExt, payload));
  }
  void from_pbx(const Bytes& payload) {
    inject(intp, udp_frame(int_mac, kIntHostMac, kPbx, kSbcInt, payload));
  }
};

// What Veil must send: its own addresses, TTL 64, DSCP and IPv4 ID carried, full checksums.
Bytes expected_frame(const MacAddr& dst_mac, const MacAddr& src_mac, const Endpoint& src, const Endpoint& dst,
                     const Bytes& payload) {
  return udp_frame(dst_mac, src_mac, src, dst, payload, 64);
}

Bytes udp_payload(const Bytes& frame) { return Bytes(frame.begin() + 42, frame.end()); }

class SrtpRelay : public ::testing::TestWithParam<SrtpProfile> {};

TEST_P(SrtpRelay, SrtpInRtpOutByteExact) {
  Lab lab;
  const SrtpKeying k = keying(GetParam(), 1);
  lab.install(k, {}, {}, {});
  Peer browser(k, true), reference(k, false);
  for (uint16_t seq = 100; seq < 105; ++seq) {
    Bytes srtp = browser.protect(rtp(seq));
    Bytes want = reference.unprotect(srtp);  // libsrtp2's own unprotect, outside Veil
    ASSERT_EQ(want, rtp(seq));
    lab.from_browser(srtp);
    lab.pass();
    auto out = lab.take(lab.intp);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], expected_frame(kIntHostMac, lab.int_mac, kSbcInt, kPbx, want));
  }
  // SRTCP on the same (rtcp-mux) flow: RTCP out, byte-exact.
  Bytes srtcp = browser.protect(rtcp_sr());
  lab.from_browser(srtcp);
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], expected_frame(kIntHostMac, lab.int_mac, kSbcInt, kPbx, reference.unprotect(srtcp)));
  EXPECT_EQ(udp_payload(out[0]), rtcp_sr());
  auto s = lab.dp->flows().get(1);
  EXPECT_EQ(s->counters.packets, 6u);
  EXPECT_EQ(s->counters.bytes, 5 * 172u + rtcp_sr().size());
  EXPECT_EQ(s->counters.last_seq, 104);
  EXPECT_EQ(s->learned, kBrowser);
  EXPECT_EQ(lab.dp->event_count(Event::relayed), 6u);
}

// SDES with an MKI (RFC 4568 "|1:4"): the peer's packets carry the MKI between the payload and
// the tag; Veil unprotects those and refuses the same key under another MKI.
TEST_P(SrtpRelay, MkiKeyedInboundTakesItsMkiOnly) {
  Lab lab;
  SrtpKeying k = keying(GetParam(), 1);
  k.mki_len = 4;
  k.mki[3] = 1;
  SrtpKeying other = k;
  other.mki[3] = 2;
  lab.install(k, {}, {}, {});
  Peer phone(k, true), reference(k, false), stranger(other, true);
  Bytes srtp = phone.protect(rtp(100));
  ASSERT_EQ(srtp.size(), rtp(100).size() + 4 + (GetParam() == SrtpProfile::AeadAes128Gcm ? 16 : 10));
  lab.from_browser(srtp);
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(udp_payload(out[0]), rtp(100));
  EXPECT_EQ(reference.unprotect(srtp), rtp(100));
  lab.from_browser(stranger.protect(rtp(101)));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_EQ(lab.dp->drop_count(Drop::srtp_auth_fail), 1u);
  // SRTCP with the MKI too.
  lab.from_browser(phone.protect(rtcp_sr()));
  lab.pass();
  out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(udp_payload(out[0]), rtcp_sr());
}

TEST_P(SrtpRelay, RtpInSrtpOutReceiverUnprotects) {
  Lab lab;
  const SrtpKeying k = keying(GetParam(), 2);
  lab.install({}, {}, {}, k);
  Peer browser(k, false);
  const size_t tag = GetParam() == SrtpProfile::AeadAes128Gcm ? 16 : 10;
  for (uint16_t seq = 7; seq < 12; ++seq) {
    lab.from_pbx(rtp(seq, 0x01020304));
    lab.pass();
    auto out = lab.take(lab.ext);
    ASSERT_EQ(out.size(), 1u);
    ASSERT_EQ(out[0].size(), 42 + 172 + tag);
    Bytes srtp = udp_payload(out[0]);
    EXPECT_NE(srtp, rtp(seq, 0x01020304));
    // Headers as for any relayed packet (built around the protected payload), then the
    // browser's own libsrtp2 session recovers the PBX's packet.
    EXPECT_EQ(out[0], expected_frame(kExtHostMac, lab.ext_mac, kSbcExt, kBrowser, srtp));
    EXPECT_EQ(browser.unprotect(srtp), rtp(seq, 0x01020304));
  }
  lab.from_pbx(rtcp_sr(0x01020304));
  lab.pass();
  auto out = lab.take(lab.ext);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(browser.unprotect(udp_payload(out[0])), rtcp_sr(0x01020304));
  EXPECT_EQ(lab.dp->flows().get(2)->counters.packets, 6u);
}

TEST_P(SrtpRelay, SrtpToSrtpRekeyed) {
  Lab lab;
  const SrtpKeying k_in = keying(GetParam(), 3), k_out = keying(GetParam(), 4);
  lab.install(k_in, k_out, {}, {});
  Peer browser(k_in, true), pbx(k_out, false), wrong(k_in, false);
  for (uint16_t seq = 1; seq < 6; ++seq) {
    Bytes srtp = browser.protect(rtp(seq));
    lab.from_browser(srtp);
    lab.pass();
    auto out = lab.take(lab.intp);
    ASSERT_EQ(out.size(), 1u);
    Bytes re = udp_payload(out[0]);
    EXPECT_EQ(re.size(), srtp.size());
    EXPECT_NE(re, srtp);  // re-encrypted under the egress key
    EXPECT_EQ(out[0], expected_frame(kIntHostMac, lab.int_mac, kSbcInt, kPbx, re));
    EXPECT_TRUE(wrong.unprotect(re).empty());  // not readable with the ingress key
    EXPECT_EQ(pbx.unprotect(re), rtp(seq));
  }
  Bytes srtcp = browser.protect(rtcp_sr());
  lab.from_browser(srtcp);
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(pbx.unprotect(udp_payload(out[0])), rtcp_sr());
}

TEST_P(SrtpRelay, TamperedReplayedAndForeignDroppedAndCounted) {
  Lab lab;
  const SrtpKeying k = keying(GetParam(), 5);
  lab.install(k, {}, {}, {});
  Peer browser(k, true), other(keying(GetParam(), 6), true);

  // Before anything valid: a forged packet from an attacker neither passes nor latches.
  const Endpoint attacker = ep("203.0.113.66:5555");
  lab.from_browser(other.protect(rtp(1)), attacker);
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_FALSE(lab.dp->flows().get(1)->learned.valid());
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::srtp_auth_fail), 1u);

  Bytes p1 = browser.protect(rtp(1)), p2 = browser.protect(rtp(2)), p3 = browser.protect(rtp(3));
  lab.from_browser(p1);
  lab.pass();
  ASSERT_EQ(lab.take(lab.intp).size(), 1u);
  EXPECT_EQ(lab.dp->flows().get(1)->learned, kBrowser);

  // Tampered: a bit in the tag, a bit in the payload, a bit in the (authenticated) header.
  for (size_t at : {p2.size() - 1, size_t(40), size_t(5)}) {
    Bytes bad = p2;
    bad[at] ^= 0x10;
    lab.from_browser(bad);
  }
  // Truncated below an RTP header.
  lab.from_browser(Bytes(p2.begin(), p2.begin() + 10));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  // Replayed.
  lab.from_browser(p1);
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  // The genuine packets still pass after all that, in order and out of order.
  lab.from_browser(p3);
  lab.from_browser(p2);
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(udp_payload(out[0]), rtp(3));
  EXPECT_EQ(udp_payload(out[1]), rtp(2));
  // And replaying them now fails too.
  lab.from_browser(p2);
  lab.from_browser(p3);
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());

  EXPECT_EQ(lab.flow_drop(1, FlowDrop::srtp_auth_fail), 4u);
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::srtp_replay), 3u);
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::srtp_error), 1u);
  EXPECT_EQ(lab.dp->drop_count(Drop::srtp_auth_fail), 4u);
  EXPECT_EQ(lab.dp->drop_count(Drop::srtp_replay), 3u);
  EXPECT_EQ(lab.dp->drop_count(Drop::srtp_error), 1u);
  EXPECT_EQ(lab.dp->flows().get(1)->counters.packets, 3u);
}

TEST_P(SrtpRelay, BeforeKeysInstalledDroppedThenKeyedByUpdate) {
  Lab lab;
  SrtpKeying pending;
  pending.profile = GetParam();  // DTLS still running: profile known, keys not yet
  lab.install(pending, {}, {}, pending);
  const SrtpKeying k = keying(GetParam(), 7), k_out = keying(GetParam(), 8);
  Peer browser(k, true), browser_rx(k_out, false);
  Bytes early = browser.protect(rtp(1));
  lab.from_browser(early);
  lab.from_pbx(rtp(1, 0x01020304));  // nor is anything sent unprotected toward the browser
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_TRUE(lab.take(lab.ext).empty());
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::srtp_no_key), 1u);
  EXPECT_EQ(lab.flow_drop(2, FlowDrop::srtp_no_key), 1u);
  EXPECT_EQ(lab.dp->drop_count(Drop::srtp_no_key), 2u);
  EXPECT_FALSE(lab.dp->flows().get(1)->learned.valid());

  // Keys arrive (flow-update).
  FlowSpec a = lab.dp->flows().get(1)->spec, b = lab.dp->flows().get(2)->spec;
  a.srtp_in = k;
  b.srtp_out = k_out;
  std::string why;
  ASSERT_EQ(lab.dp->flows().update(a, &why), 0) << why;
  ASSERT_EQ(lab.dp->flows().update(b, &why), 0) << why;
  lab.from_browser(browser.protect(rtp(2)));
  lab.from_pbx(rtp(2, 0x01020304));
  lab.pass();
  auto in = lab.take(lab.intp), back = lab.take(lab.ext);
  ASSERT_EQ(in.size(), 1u);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(udp_payload(in[0]), rtp(2));
  EXPECT_EQ(browser_rx.unprotect(udp_payload(back[0])), rtp(2, 0x01020304));
  lab.dp->rcu().drain();  // the pending sessions are freed after the grace period
}

TEST_P(SrtpRelay, ReplayStateSurvivesActionUpdatesAndResetsOnRekey) {
  Lab lab;
  const SrtpKeying k = keying(GetParam(), 9);
  lab.install(k, {}, {}, {});
  Peer browser(k, true);
  Bytes p1 = browser.protect(rtp(1));
  lab.from_browser(p1);
  lab.pass();
  ASSERT_EQ(lab.take(lab.intp).size(), 1u);
  // Several action flips (new PBX address) with the same keys: the session, its rollover
  // counter and replay window stay.
  FlowSpec a = lab.dp->flows().get(1)->spec;
  for (uint16_t port : {5002, 5004, 5000}) {
    a.egress_remote.port = port;
    ASSERT_EQ(lab.dp->flows().update(a), 0);
  }
  lab.from_browser(p1);
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::srtp_replay), 1u);
  lab.from_browser(browser.protect(rtp(2)));
  lab.pass();
  ASSERT_EQ(lab.take(lab.intp).size(), 1u);

  // A new key: packets under the old one fail authentication, the new sender passes.
  const SrtpKeying k2 = keying(GetParam(), 10);
  a.srtp_in = k2;
  ASSERT_EQ(lab.dp->flows().update(a), 0);
  Peer browser2(k2, true);
  lab.from_browser(browser.protect(rtp(3)));
  lab.from_browser(browser2.protect(rtp(4)));
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(udp_payload(out[0]), rtp(4));
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::srtp_auth_fail), 1u);
  lab.dp->rcu().drain();
}

TEST_P(SrtpRelay, NoTailroomForTagDroppedAndCounted) {
  Lab lab;
  const SrtpKeying k = keying(GetParam(), 11);
  lab.install({}, {}, {}, k);
  // A frame that fills the mbuf's data room: nowhere to put the tag.
  rte_mbuf* probe = rte_pktmbuf_alloc(lab.dp->pool());
  ASSERT_NE(probe, nullptr);
  size_t room = rte_pktmbuf_tailroom(probe);
  rte_pktmbuf_free(probe);
  lab.from_pbx(rtp(1, 0x01020304, room - 42));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.ext).empty());
  EXPECT_EQ(lab.flow_drop(2, FlowDrop::srtp_error), 1u);
  EXPECT_EQ(lab.dp->drop_count(Drop::srtp_error), 1u);
  // The same flow with room to spare protects as usual.
  lab.from_pbx(rtp(2, 0x01020304));
  lab.pass();
  EXPECT_EQ(lab.take(lab.ext).size(), 1u);
}

std::string hex_of(const SrtpKeying& k) {
  std::string out;
  char b[3];
  for (unsigned i = 0; i < srtp_master_len(k.profile); ++i) {
    std::snprintf(b, sizeof b, "%02x", k.master[i]);
    out += b;
  }
  return out;
}

// The management API (veilctl flow-add / flow-update): keys in, SRTP relayed, keys never shown.
TEST(SrtpFlows, ManagementApiInstallsKeysAndNeverShowsThem) {
  Lab lab;
  ctl::Api api(*lab.dp, lab.cfg);
  const SrtpKeying k = keying(SrtpProfile::AesCm128HmacSha1_80, 12);
  auto call = [&](const std::string& line) {
    ctl::Request req;
    std::string err;
    EXPECT_TRUE(ctl::parse_request(line, req, err)) << err;
    return api.handle(req);
  };
  const std::string a = "VEIL/1 flow-add id=1 port=external local=203.0.113.1:20000 remote=203.0.113.10:4000 "
                        "egress-port=internal egress-local=198.51.100.1:30000 egress-remote=198.51.100.10:5000 "
                        "peer=2 srtp-in=AES_CM_128_HMAC_SHA1_80:";
  ctl::Response r = call(a + "pending");
  ASSERT_EQ(r.status, 0) << r.message;
  EXPECT_NE(doc::to_json(r.body).find("AES_CM_128_HMAC_SHA1_80 (keys pending)"), std::string::npos)
      << doc::to_json(r.body);
  Peer browser(k, true);
  lab.from_browser(browser.protect(rtp(1)));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::srtp_no_key), 1u);

  r = call("VEIL/1 flow-update" + a.substr(std::string("VEIL/1 flow-add").size()) + hex_of(k));
  ASSERT_EQ(r.status, 0) << r.message;
  std::string shown = doc::to_json(r.body) + doc::to_text(r.body);
  EXPECT_NE(shown.find("AES_CM_128_HMAC_SHA1_80 (keyed)"), std::string::npos) << shown;
  EXPECT_EQ(shown.find(hex_of(k).substr(0, 8)), std::string::npos) << "key material shown: " << shown;
  lab.from_browser(browser.protect(rtp(2)));
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(udp_payload(out[0]), rtp(2));

  r = call(a + "0011");  // too short: refused, flow unchanged
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.message.find("60 hex digits"), std::string::npos) << r.message;
}

// A worker relays SRTP->SRTP on its own lcore while the control plane flips the flow's action
// (new PBX address) and re-keys its egress side every 400 packets, alternating two keys: the
// superseded sessions are freed under RCU while the worker may still hold them. Every packet
// comes out exactly once, under one of the two egress keys, byte-exact; nothing is dropped.
TEST(SrtpFlows, RekeyedAndUpdatedWhileTrafficRuns) {
  if (rte_lcore_count() < 2) GTEST_SKIP() << "needs two lcores";
  Lab lab({1});
  const SrtpKeying k_in = keying(SrtpProfile::AesCm128HmacSha1_80, 20);
  const SrtpKeying k_b = keying(SrtpProfile::AesCm128HmacSha1_80, 21), k_c = keying(SrtpProfile::AesCm128HmacSha1_80, 22);
  lab.install(k_in, k_b, {}, {});
  lab.dp->neighbours().learn(1, addr("198.51.100.20"), kIntHostMac);
  std::string err;
  ASSERT_TRUE(lab.dp->start(err)) << err;
  FlowSpec a = lab.dp->flows().get(1)->spec;
  Peer browser(k_in, true), rx_b(k_b, false), rx_c(k_c, false);
  const int kPackets = 6000;
  std::vector<int> seen(kPackets, 0);
  int received = 0, under_b = 0, under_c = 0;
  auto collect = [&] {
    for (auto& f : lab.take(lab.intp)) {
      Bytes srtp = udp_payload(f);
      Bytes plain = rx_b.unprotect(srtp);
      if (!plain.empty()) {
        ++under_b;
      } else {
        plain = rx_c.unprotect(srtp);
        ++under_c;
      }
      ASSERT_EQ(plain.size(), 172u) << "packet under neither egress key";
      uint16_t seq = uint16_t(plain[2] << 8 | plain[3]);
      ASSERT_LT(seq, kPackets);
      EXPECT_EQ(plain, rtp(seq)) << seq;
      ++seen[seq];
      ++received;
    }
  };
  for (int i = 0; i < kPackets; ++i) {
    for (int spin = 0; i - received > 256 && spin < 100000; ++spin) {
      collect();
      if (i - received > 256) usleep(50);
    }
    lab.from_browser(browser.protect(rtp(uint16_t(i))));
    if (i % 400 == 200) {
      a.egress_remote = (i / 400) % 2 ? kPbx : ep("198.51.100.20:5000");
      a.srtp_out = (i / 400) % 2 ? k_b : k_c;
      ASSERT_EQ(lab.dp->flows().update(a, &err), 0) << err;
    }
    if (i % 32 == 0) {
      lab.dp->poll_control();  // runs the deferred frees whose grace period is over
      collect();
    }
  }
  stop_after_collecting(*lab.dp, collect, received, kPackets);
  EXPECT_EQ(received, kPackets);
  expect_each_seen_once(seen);
  EXPECT_GT(under_b, 0);
  EXPECT_GT(under_c, 0);
  expect_no_drops(*lab.dp);
  lab.dp->rcu().drain();
}

TEST(SrtpFlows, InvalidSrtpSpecRejected) {
  Lab lab;
  FlowSpec a;
  a.id = 1;
  a.local = kSbcExt;
  a.egress_port = 1;
  a.egress_local = kSbcInt;
  a.srtp_in.profile = SrtpProfile(42);
  a.srtp_in.keyed = true;
  std::string why;
  EXPECT_EQ(lab.dp->flows().install(a, &why), -EINVAL);
  EXPECT_NE(why.find("SRTP"), std::string::npos) << why;
  EXPECT_EQ(lab.dp->flows().size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Profiles, SrtpRelay,
                         ::testing::Values(SrtpProfile::AesCm128HmacSha1_80, SrtpProfile::AeadAes128Gcm),
                         [](const ::testing::TestParamInfo<SrtpProfile>& i) {
                           return std::string(srtp_profile_name(i.param));
                         });

}  // namespace
