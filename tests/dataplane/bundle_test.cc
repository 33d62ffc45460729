// BUNDLE (RFC 9143) on the dataplane, on DPDK net_ring ports (the harness of ice_test.cc and
// srtp_test.cc): a browser sends SRTP audio and video, and SRTCP, on one 5-tuple to Veil's
// bundle port; Veil unprotects once (one session, any SSRC), demultiplexes by payload type
// (RTP) and learned first sender SSRC (RTCP), and relays plain RTP out of two different
// trusted ports to the PBX's audio and video ports, byte-exact, each m-line with its own
// counters. Back: both PBX m-lines go to the browser's one ICE-selected 5-tuple, protected,
// only while the ICE flow holds consent. The browser's peer is a libsrtp2 session of its own.
//
//   flow 1 (head)   203.0.113.1:20000  ICE, SRTP in, PTs {0, 111}  -> 198.51.100.1:30000 -> PBX :5000
//   flow 3 (member) 203.0.113.1:20002  (not in the port index) PTs {96, 97} -> :30002 -> PBX :5002
//   flow 2          198.51.100.1:30000 <- PBX :5000, consent from 1 -> browser, SRTP out
//   flow 4          198.51.100.1:30002 <- PBX :5002, consent from 1, destination from 1 -> browser
#include <gtest/gtest.h>
#include <srtp2/srtp.h>

#include <cstring>
#include <string>
#include <vector>

#include "controlplane/doc.h"
#include "controlplane/mgmt.h"
#include "dataplane/dataplane.h"
#include "dataplane/packet.h"
#include "dataplane/srtp_lib.h"
#include "dataplane/stun.h"
#include "dataplane/worker.h"
#include "tests/dataplane/ring_lab.h"
#include "tests/dataplane/srtp_peer.h"

using namespace veil;
using namespace veil::dp;
using namespace veil::dptest;
using Bytes = std::vector<uint8_t>;

namespace {

class BundleEalEnv : public EalEnv {
 public:
  BundleEalEnv() : EalEnv("bundle_test", "veil-bundletest", "0@0", "256") {}
  void SetUp() override {
    EalEnv::SetUp();
    if (::testing::Test::HasFatalFailure()) return;
    ASSERT_TRUE(srtp_start().ok);
  }
};
const auto* g_env = ::testing::AddGlobalTestEnvironment(new BundleEalEnv);

const char kPwd[] = "0123456789abcdefghijkl";
const uint8_t kTxid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

const Endpoint kBrowser = ep("203.0.113.10:4000");
const Endpoint kBundle = ep("203.0.113.1:20000");
const Endpoint kVideoOwn = ep("203.0.113.1:20002");
const Endpoint kSbcAudio = ep("198.51.100.1:30000");
const Endpoint kSbcVideo = ep("198.51.100.1:30002");
const Endpoint kPbxAudio = ep("198.51.100.10:5000");
const Endpoint kPbxVideo = ep("198.51.100.10:5002");
constexpr uint32_t kAudioSsrc = 0x11111111, kVideoSsrc = 0x22222222;

Bytes check() {
  Bytes b(256);
  stun::Writer w(b.data(), uint32_t(b.size()));
  w.begin(stun::kBindingRequest, kTxid);
  const char* user = "veil:brow";
  w.add(stun::kAttrUsername, user, uint16_t(std::strlen(user)));
  w.add_u32(stun::kAttrPriority, 0x6e7f1eff);
  w.add_u64(stun::kAttrIceControlling, 0x0102030405060708ull);
  w.add(stun::kAttrUseCandidate, nullptr, 0);
  stun::HmacKey k;
  stun::hmac_key_init(k, kPwd);
  w.add_integrity(k);
  w.add_fingerprint();
  b.resize(w.size());
  return b;
}

Bytes rtp(uint16_t seq, uint8_t pt, uint32_t ssrc, size_t len = 172) {
  Bytes p(len);
  p[0] = 0x80;
  p[1] = pt;
  put16(p, 2, seq);
  uint32_t ts = 160u * seq;
  for (int i = 0; i < 4; ++i) {
    p[4 + i] = uint8_t(ts >> (24 - 8 * i));
    p[8 + i] = uint8_t(ssrc >> (24 - 8 * i));
  }
  for (size_t i = 12; i < len; ++i) p[i] = uint8_t(i * 7 + seq + pt);
  return p;
}
Bytes rtcp_sr(uint32_t ssrc) {
  Bytes p = {0x80, 200, 0, 6, 0, 0, 0, 0, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0x10, 0, 0, 6, 0x40};
  for (int i = 0; i < 4; ++i) p[4 + i] = uint8_t(ssrc >> (24 - 8 * i));
  return p;
}

SrtpKeying keying(uint8_t seed) {
  SrtpKeying k;
  k.profile = SrtpProfile::AeadAes128Gcm;
  k.keyed = true;
  for (unsigned i = 0; i < srtp_master_len(k.profile); ++i) k.master[i] = uint8_t(seed * 31 + i * 7);
  return k;
}

using Peer = SrtpPeer;  // tests/dataplane/srtp_peer.h

void set_pt(uint64_t (&bits)[2], std::initializer_list<unsigned> pts) {
  for (unsigned pt : pts) bits[pt >> 6] |= uint64_t(1) << (pt & 63);
}

struct Lab : RingLab {
  SrtpKeying k_in = keying(1), k_out = keying(2);
  Lab() {
    ext = make_ring_port("e");
    intp = make_ring_port("i");
    cfg.ports = {
        port_config("ext0", config::Role::External, ext, {*IpPrefix::parse("203.0.113.1/24")}),
        port_config("int0", config::Role::Internal, intp, {*IpPrefix::parse("198.51.100.1/24")})};
    cfg.media_external = {20000, 29999};
    cfg.media_internal = {30000, 39999};
    cfg.limits.max_flows = 64;
    cfg.dataplane.mbufs = 1023;
    Options opt;
    opt.create_taps = false;
    create(opt);
    if (!dp) return;
    dp->neighbours().learn(0, addr("203.0.113.10"), kExtHostMac);
    dp->neighbours().learn(1, addr("198.51.100.10"), kIntHostMac);
  }
  // The video m-line's browser -> PBX flow: a member of flow 1's group.
  static FlowSpec video_member() {
    FlowSpec v;
    v.id = 3;
    v.ingress_port = 0;
    v.local = kVideoOwn;
    v.egress_port = 1;
    v.egress_local = kSbcVideo;
    v.egress_remote = kPbxVideo;
    v.bundle_of = 1;
    set_pt(v.bundle_pts, {96, 97});
    return v;
  }
  // `video_rtcp_split`: the PBX's video m-line does not mux (RTCP port + 1 both ways).
  void install(bool video_rtcp_split = false) {
    FlowSpec a;
    a.id = 1;
    a.ingress_port = 0;
    a.local = kBundle;
    a.egress_port = 1;
    a.egress_local = kSbcAudio;
    a.egress_remote = kPbxAudio;
    a.peer_id = 2;
    a.ice_ufrag = "veil";
    a.ice_pwd = kPwd;
    a.ice_remote_ufrag = "brow";
    a.srtp_in = k_in;
    set_pt(a.bundle_pts, {0, 111});
    FlowSpec b;
    b.id = 2;
    b.ingress_port = 1;
    b.local = kSbcAudio;
    b.signaled_remote = kPbxAudio;
    b.egress_port = 0;
    b.egress_local = kBundle;
    b.peer_id = 1;
    b.ice_consent_from_peer = true;
    b.srtp_out = k_out;
    FlowSpec v = video_member();
    v.peer_id = 4;
    v.rtcp_split = video_rtcp_split;
    FlowSpec w;
    w.id = 4;
    w.ingress_port = 1;
    w.local = kSbcVideo;
    w.signaled_remote = kPbxVideo;
    w.egress_port = 0;
    w.egress_local = kBundle;
    w.peer_id = 1;
    w.ice_consent_from_peer = true;
    w.dst_from_peer = true;
    w.srtp_out = k_out;
    std::string why;
    // Member first: the head picks it up when it is installed.
    ASSERT_EQ(dp->flows().install(v, &why), 0) << why;
    ASSERT_EQ(dp->flows().install(a, &why), 0) << why;
    ASSERT_EQ(dp->flows().install(b, &why), 0) << why;
    ASSERT_EQ(dp->flows().install(w, &why), 0) << why;
    if (video_rtcp_split) {
      FlowSpec c = w;
      c.id = 5;
      c.local = ep("198.51.100.1:30003");
      c.signaled_remote = ep("198.51.100.10:5003");
      c.dst_from_peer = false;
      c.rtcp_split = true;  // implies the destination from the peer
      ASSERT_EQ(dp->flows().install(c, &why), 0) << why;
    }
  }
  void from_browser(const Bytes& payload, const Endpoint& dst = kBundle) {
    inject(ext, udp_frame(ext_mac, kExtHostMac, kBrowser, dst, payload));
  }
  void from_pbx(const Endpoint& src, const Endpoint& dst, const Bytes& payload) {
    inject(intp, udp_frame(int_mac, kIntHostMac, src, dst, payload));
  }
  void select() {
    from_browser(check());
    pass();
    ASSERT_EQ(take(ext).size(), 1u);
  }
};

Bytes to_pbx(const Lab& lab, const Endpoint& src, const Endpoint& dst, const Bytes& payload) {
  return udp_frame(kIntHostMac, lab.int_mac, src, dst, payload, 64);
}

}  // namespace

TEST(Bundle, AudioAndVideoOnOneFiveTupleToTwoTrustedPortsByteExact) {
  Lab lab;
  lab.install();
  lab.select();
  Peer browser(lab.k_in, true);
  for (uint16_t seq = 1; seq <= 5; ++seq) {
    lab.from_browser(browser.protect(rtp(seq, 111, kAudioSsrc)));
    lab.from_browser(browser.protect(rtp(uint16_t(seq + 1000), 96, kVideoSsrc, 1000)));
    lab.from_browser(browser.protect(rtp(uint16_t(seq + 2000), 97, kVideoSsrc + 1, 300)));  // RTX
  }
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 15u);
  for (uint16_t seq = 1; seq <= 5; ++seq) {
    size_t i = size_t(seq - 1) * 3;
    EXPECT_EQ(out[i], to_pbx(lab, kSbcAudio, kPbxAudio, rtp(seq, 111, kAudioSsrc)));
    EXPECT_EQ(out[i + 1], to_pbx(lab, kSbcVideo, kPbxVideo, rtp(uint16_t(seq + 1000), 96, kVideoSsrc, 1000)));
    EXPECT_EQ(out[i + 2], to_pbx(lab, kSbcVideo, kPbxVideo, rtp(uint16_t(seq + 2000), 97, kVideoSsrc + 1, 300)));
  }
  auto f1 = lab.dp->flows().get(1), f3 = lab.dp->flows().get(3);
  EXPECT_EQ(f1->counters.packets, 5u);
  EXPECT_EQ(f1->counters.bytes, 5u * 172);
  EXPECT_EQ(f1->counters.last_pt, 111);
  EXPECT_EQ(f3->counters.packets, 10u);
  EXPECT_EQ(f3->counters.bytes, 5u * 1000 + 5u * 300);
  EXPECT_EQ(f3->counters.last_ssrc, kVideoSsrc + 1);
  EXPECT_EQ(lab.dp->flows().bundle_members(1), std::vector<uint32_t>{3});
  expect_no_drops(*lab.dp);

  // A payload type of neither m-line: dropped and counted on the head, nothing relayed.
  lab.from_browser(browser.protect(rtp(6, 50, kAudioSsrc)));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_EQ(lab.dp->drop_count(Drop::bundle_unknown_pt), 1u);
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::bundle_unknown_pt), 1u);

  // The member's own port gets nothing directly (not in the port index).
  lab.from_browser(browser.protect(rtp(1006, 96, kVideoSsrc)), kVideoOwn);
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_EQ(lab.dp->drop_count(Drop::media_no_flow), 1u);
}

TEST(Bundle, RtcpRoutedByFirstSenderSsrc) {
  Lab lab;
  lab.install();
  lab.select();
  Peer browser(lab.k_in, true);
  lab.from_browser(browser.protect(rtp(1, 111, kAudioSsrc)));
  lab.from_browser(browser.protect(rtp(2, 96, kVideoSsrc)));
  lab.pass();
  ASSERT_EQ(lab.take(lab.intp).size(), 2u);
  lab.from_browser(browser.protect(rtcp_sr(kVideoSsrc)));
  lab.from_browser(browser.protect(rtcp_sr(kAudioSsrc)));
  lab.from_browser(browser.protect(rtcp_sr(0x99999999)));  // unknown: the first m-line
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0], to_pbx(lab, kSbcVideo, kPbxVideo, rtcp_sr(kVideoSsrc)));
  EXPECT_EQ(out[1], to_pbx(lab, kSbcAudio, kPbxAudio, rtcp_sr(kAudioSsrc)));
  EXPECT_EQ(out[2], to_pbx(lab, kSbcAudio, kPbxAudio, rtcp_sr(0x99999999)));
  expect_no_drops(*lab.dp);
}

TEST(Bundle, VideoRtcpSplitWhenThePbxDoesNotMuxVideo) {
  Lab lab;
  lab.install(/*video_rtcp_split=*/true);
  lab.select();
  Peer browser(lab.k_in, true), back(lab.k_out, false);
  lab.from_browser(browser.protect(rtp(2, 96, kVideoSsrc)));
  lab.from_browser(browser.protect(rtcp_sr(kVideoSsrc)));
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], to_pbx(lab, kSbcVideo, kPbxVideo, rtp(2, 96, kVideoSsrc)));
  EXPECT_EQ(out[1], to_pbx(lab, ep("198.51.100.1:30003"), ep("198.51.100.10:5003"), rtcp_sr(kVideoSsrc)));
  // The PBX's video RTCP port: to the browser's 5-tuple, SRTCP.
  lab.from_pbx(ep("198.51.100.10:5003"), ep("198.51.100.1:30003"), rtcp_sr(0x5555));
  lab.pass();
  auto to_browser = lab.take(lab.ext);
  ASSERT_EQ(to_browser.size(), 1u);
  Parsed p = parse(to_browser[0]);
  EXPECT_EQ(udp_source(to_browser[0].data(), p), kBundle);
  EXPECT_EQ(udp_destination(to_browser[0].data(), p), kBrowser);
  Bytes pl(to_browser[0].begin() + p.l4 + 8, to_browser[0].end());
  EXPECT_EQ(back.unprotect(pl), rtcp_sr(0x5555));
}

TEST(Bundle, BothPbxMlinesToTheOneBrowserFiveTupleProtected) {
  Lab lab;
  lab.install();
  Peer back(lab.k_out, false);
  // Before any check: no destination, no consent.
  lab.from_pbx(kPbxVideo, kSbcVideo, rtp(1, 96, 0xaaaa));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.ext).empty());
  EXPECT_EQ(lab.flow_drop(4, FlowDrop::ice_consent_expired), 1u);

  lab.select();
  lab.from_pbx(kPbxAudio, kSbcAudio, rtp(10, 111, 0xbbbb));
  lab.from_pbx(kPbxVideo, kSbcVideo, rtp(11, 96, 0xaaaa, 900));
  lab.from_pbx(kPbxVideo, kSbcVideo, rtcp_sr(0xaaaa));  // the PBX's video RTCP, muxed
  lab.pass();
  auto out = lab.take(lab.ext);
  ASSERT_EQ(out.size(), 3u);
  const Bytes want[3] = {rtp(10, 111, 0xbbbb), rtp(11, 96, 0xaaaa, 900), rtcp_sr(0xaaaa)};
  for (size_t i = 0; i < 3; ++i) {
    Parsed p = parse(out[i]);
    EXPECT_EQ(udp_source(out[i].data(), p), kBundle) << i;
    EXPECT_EQ(udp_destination(out[i].data(), p), kBrowser) << i;
    EXPECT_TRUE(l4_checksum_ok(out[i].data(), p));
    Bytes pl(out[i].begin() + p.l4 + 8, out[i].end());
    EXPECT_NE(pl, want[i]) << i;  // protected on the wire
    EXPECT_EQ(back.unprotect(pl), want[i]) << i;
  }
  EXPECT_EQ(lab.dp->flows().get(4)->counters.packets, 2u);
  // The PBX's video latching never moves the ICE flow's destination (the PBX audio port).
  EXPECT_EQ(lab.dp->flows().get(1)->egress_dst, kPbxAudio);

  // Consent expires (no check for 30 s): both m-lines stop towards the browser.
  lab.pass(lab.dp->tsc_hz() * 31);
  lab.from_pbx(kPbxAudio, kSbcAudio, rtp(12, 111, 0xbbbb));
  lab.from_pbx(kPbxVideo, kSbcVideo, rtp(13, 96, 0xaaaa));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.ext).empty());
  EXPECT_EQ(lab.flow_drop(2, FlowDrop::ice_consent_expired), 1u);
  EXPECT_EQ(lab.flow_drop(4, FlowDrop::ice_consent_expired), 2u);
}

TEST(Bundle, MemberRemovedAndReinstalled) {
  Lab lab;
  lab.install();
  lab.select();
  Peer browser(lab.k_in, true);
  ASSERT_EQ(lab.dp->flows().remove(3), 0);
  lab.dp->rcu().drain();
  lab.from_browser(browser.protect(rtp(1, 96, kVideoSsrc)));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::bundle_unknown_pt), 1u);
  // Validation: a member carries no SRTP/ICE of its own and needs payload types.
  FlowSpec v;
  v.id = 3;
  v.local = kVideoOwn;
  v.egress_port = 1;
  v.egress_local = kSbcVideo;
  v.egress_remote = kPbxVideo;
  v.bundle_of = 1;
  std::string why;
  EXPECT_EQ(lab.dp->flows().install(v, &why), -EINVAL);
  set_pt(v.bundle_pts, {96});
  v.srtp_in = lab.k_in;
  EXPECT_EQ(lab.dp->flows().install(v, &why), -EINVAL);
  v.srtp_in = SrtpKeying{};
  ASSERT_EQ(lab.dp->flows().install(v, &why), 0) << why;
  lab.from_browser(browser.protect(rtp(2, 96, kVideoSsrc)));
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], to_pbx(lab, kSbcVideo, kPbxVideo, rtp(2, 96, kVideoSsrc)));
}

TEST(Bundle, DisabledMemberDropsItsMlineOnly) {
  Lab lab;
  lab.install();
  lab.select();
  Peer browser(lab.k_in, true);
  auto v = lab.dp->flows().get(3)->spec;
  v.drop = true;
  std::string why;
  ASSERT_EQ(lab.dp->flows().update(v, &why), 0) << why;
  lab.from_browser(browser.protect(rtp(1, 96, kVideoSsrc)));
  lab.from_browser(browser.protect(rtp(2, 111, kAudioSsrc)));
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], to_pbx(lab, kSbcAudio, kPbxAudio, rtp(2, 111, kAudioSsrc)));
  EXPECT_EQ(lab.flow_drop(3, FlowDrop::disabled), 1u);
  EXPECT_EQ(lab.dp->flows().bundle_members(1), std::vector<uint32_t>{3});  // still a member
}

// veilctl flow-add / flow (the management API): bundle-of, bundle-pts, dst-from-peer in, the
// membership shown as an operator reads it.
TEST(Bundle, ManagementApiProgramsAndShowsMembership) {
  Lab lab;
  ctl::Api api(*lab.dp, lab.cfg);
  auto call = [&](const std::string& line) {
    ctl::Request req;
    std::string err;
    EXPECT_TRUE(ctl::parse_request(line, req, err)) << err;
    return api.handle(req);
  };
  ctl::Response r = call(
      "VEIL/1 flow-add id=1 port=external local=203.0.113.1:20000 egress-port=internal "
      "egress-local=198.51.100.1:30000 egress-remote=198.51.100.10:5000 peer=2 ice-ufrag=veil "
      "ice-pwd=0123456789abcdefghijkl ice-remote-ufrag=brow srtp-in=AEAD_AES_128_GCM:pending bundle-pts=0,8,111");
  ASSERT_EQ(r.status, 0) << r.message;
  r = call("VEIL/1 flow-add id=3 port=external local=203.0.113.1:20002 egress-port=internal "
           "egress-local=198.51.100.1:30002 egress-remote=198.51.100.10:5002 peer=4 bundle-of=1 bundle-pts=96-100");
  ASSERT_EQ(r.status, 0) << r.message;
  r = call("VEIL/1 flow-add id=4 port=internal local=198.51.100.1:30002 remote=198.51.100.10:5002 "
           "egress-port=external egress-local=203.0.113.1:20000 peer=1 ice-consent-from-peer=yes dst-from-peer=yes");
  ASSERT_EQ(r.status, 0) << r.message;
  EXPECT_NE(doc::to_text(r.body).find("dst_from_peer"), std::string::npos) << doc::to_text(r.body);
  std::string head = doc::to_text(call("VEIL/1 flow id=1").body);
  std::string member = doc::to_text(call("VEIL/1 flow id=3").body);
  EXPECT_NE(head.find("head, PTs 0,8,111, members 3"), std::string::npos) << head;
  EXPECT_NE(member.find("member of flow 1, PTs 96-100"), std::string::npos) << member;
  EXPECT_EQ(lab.dp->flows().bundle_members(1), std::vector<uint32_t>{3});
  for (const char* bad : {"bundle-pts=128", "bundle-pts=9-3", "bundle-pts=", "bundle-pts=a"}) {
    r = call(std::string("VEIL/1 flow-add id=5 port=external local=203.0.113.1:20004 egress-port=internal "
                         "egress-local=198.51.100.1:30004 bundle-of=1 ") + bad);
    EXPECT_NE(r.status, 0) << bad;
  }
}

// The relay's fast path takes a BUNDLE head while its group has one m-line (a browser's audio
// call: BUNDLE offered with one m-line): the head's payload types relayed from the egress
// cache, others still dropped and counted; once a member joins, every packet is demultiplexed
// again from the next one on (the video reaches the member's PBX port, not the audio's).
TEST(Bundle, OneMlineGroupOnTheFastPathUntilAMemberJoins) {
  Lab lab;
  lab.install();
  ASSERT_EQ(lab.dp->flows().remove(4), 0);
  ASSERT_EQ(lab.dp->flows().remove(3), 0);  // the group is the head alone now
  lab.dp->rcu().drain();
  lab.select();
  Peer browser(lab.k_in, true);
  const uint64_t slow0 = lab.dp->event_count(Event::relay_slow);
  for (uint16_t seq = 1; seq <= 8; ++seq) {
    lab.from_browser(browser.protect(rtp(seq, 111, kAudioSsrc)));
    lab.pass();
    auto out = lab.take(lab.intp);
    ASSERT_EQ(out.size(), 1u) << seq;
    EXPECT_EQ(out[0], to_pbx(lab, kSbcAudio, kPbxAudio, rtp(seq, 111, kAudioSsrc))) << seq;
  }
  EXPECT_EQ(lab.dp->event_count(Event::relay_slow) - slow0, 1u);  // then all from the cache
  // A payload type of no m-line: dropped on the head as before (once, though it was
  // protected: the fast path leaves it to the slow one before unprotecting).
  lab.from_browser(browser.protect(rtp(9, 96, kAudioSsrc)));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::bundle_unknown_pt), 1u);
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::srtp_replay), 0u);
  // The video m-line joins (a re-offer): its payload type now goes to the member's PBX port.
  ASSERT_EQ(lab.dp->flows().install(Lab::video_member()), 0);
  lab.from_browser(browser.protect(rtp(10, 96, kVideoSsrc)));
  lab.from_browser(browser.protect(rtp(11, 111, kAudioSsrc)));
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], to_pbx(lab, kSbcVideo, kPbxVideo, rtp(10, 96, kVideoSsrc)));
  EXPECT_EQ(out[1], to_pbx(lab, kSbcAudio, kPbxAudio, rtp(11, 111, kAudioSsrc)));
}
