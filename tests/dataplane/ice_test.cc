// ICE-lite and DTLS on the dataplane, on DPDK net_ring ports (same harness as relay_test.cc:
// the test feeds and drains the rings, time is the TSC value passed to WorkerCtx::pass()).
// A browser-side flow pair: flow 1 receives from the browser on 203.0.113.1:20000 (ICE
// credentials, DTLS to the control plane), flow 2 receives from the PBX on
// 198.51.100.1:30000 and sends to the browser only while flow 1 holds consent.
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "controlplane/doc.h"
#include "controlplane/dtls_srtp.h"
#include "controlplane/mgmt.h"
#include "dataplane/dataplane.h"
#include "dataplane/packet.h"
#include "dataplane/stun.h"
#include "dataplane/worker.h"
#include "tests/dataplane/ring_lab.h"

using namespace veil;
using namespace veil::dp;
using namespace veil::dptest;

namespace {

const auto* g_env =
    ::testing::AddGlobalTestEnvironment(new EalEnv("ice_test", "veil-icetest", "0@0", "256"));

const char kPwd[] = "0123456789abcdefghijkl";  // Veil's a=ice-pwd
const uint8_t kTxid[12] = {0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac};

// RTP with the dynamic payload type a browser offers (111, Opus).
std::vector<uint8_t> rtp(uint16_t seq, size_t len = 172) {
  return rtp_payload(seq, len, 0x80, 111);
}

// A connectivity check as a browser (controlling, full ICE) sends it: USERNAME
// "veil:brow", PRIORITY, ICE-CONTROLLING, optional USE-CANDIDATE, MESSAGE-INTEGRITY with
// Veil's password, FINGERPRINT (RFC 8445 7.2.2).
std::vector<uint8_t> check(bool use_candidate, const char* pwd = kPwd,
                           const char* username = "veil:brow") {
  std::vector<uint8_t> b(256);
  stun::Writer w(b.data(), uint32_t(b.size()));
  w.begin(stun::kBindingRequest, kTxid);
  w.add(stun::kAttrUsername, username, uint16_t(std::strlen(username)));
  w.add_u32(stun::kAttrPriority, 0x6e7f1eff);
  w.add_u64(stun::kAttrIceControlling, 0x0102030405060708ull);
  if (use_candidate) w.add(stun::kAttrUseCandidate, nullptr, 0);
  stun::HmacKey k;
  stun::hmac_key_init(k, pwd);
  w.add_integrity(k);
  w.add_fingerprint();
  b.resize(w.size());
  return b;
}

// The success response Veil must send for a check from `mapped`, built here independently.
std::vector<uint8_t> expected_success(const Endpoint& mapped) {
  std::vector<uint8_t> b(256);
  stun::Writer w(b.data(), uint32_t(b.size()));
  w.begin(stun::kBindingSuccess, kTxid);
  w.add_xor_address(stun::kAttrXorMappedAddress, mapped);
  stun::HmacKey k;
  stun::hmac_key_init(k, kPwd);
  w.add_integrity(k);
  w.add_fingerprint();
  b.resize(w.size());
  return b;
}

// A DTLS 1.2 handshake record header and some body (content type 22, RFC 7983 range 20-63).
std::vector<uint8_t> dtls_record(size_t body = 60) {
  std::vector<uint8_t> r = {22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, uint8_t(body)};
  for (size_t i = 0; i < body; ++i) r.push_back(uint8_t(0x40 + i));
  return r;
}

struct Lab : RingLab {
  Lab() {
    ext = make_ring_port("e");
    intp = make_ring_port("i");
    ext_exc = make_ring_port("ex");
    int_exc = make_ring_port("ix");
    cfg.ports = {
        port_config("ext0", config::Role::External, ext,
                    {*IpPrefix::parse("203.0.113.1/24"), *IpPrefix::parse("2001:db8:1::1/64")}),
        port_config("int0", config::Role::Internal, intp, {*IpPrefix::parse("198.51.100.1/24")})};
    cfg.media_external = {20000, 29999};
    cfg.media_internal = {30000, 39999};
    cfg.limits.max_flows = 64;
    cfg.limits.relatch_after_ms = 100;
    cfg.dataplane.mbufs = 2047;
    Options opt;
    opt.exception_devices = {ext_exc.name, int_exc.name};
    create(opt);
    if (!dp) return;
    dp->neighbours().learn(0, addr("203.0.113.10"), kExtHostMac);
    dp->neighbours().learn(0, addr("203.0.113.11"), kExtHostMac);
    dp->neighbours().learn(0, addr("2001:db8:1::10"), kExtHostMac);
    dp->neighbours().learn(1, addr("198.51.100.10"), kIntHostMac);
  }
  uint64_t ms(uint64_t n) const { return dp->tsc_hz() / 1000 * n; }
  // From the browser at `src` to Veil's browser-side media port.
  void from_browser(const Endpoint& src, const std::vector<uint8_t>& payload) {
    Endpoint dst = src.addr.is_v4() ? ep("203.0.113.1:20000") : ep("[2001:db8:1::1]:20002");
    inject(ext, udp_frame(ext_mac, kExtHostMac, src, dst, payload));
  }
  void from_pbx(const std::vector<uint8_t>& payload) {
    inject(intp, udp_frame(int_mac, kIntHostMac, ep("198.51.100.10:5000"), ep("198.51.100.1:30000"),
                           payload));
  }
  void install(const char* local = "203.0.113.1:20000") {
    FlowSpec a;
    a.id = 1;
    a.ingress_port = 0;
    a.local = ep(local);
    a.egress_port = 1;
    a.egress_local = ep("198.51.100.1:30000");
    a.egress_remote = ep("198.51.100.10:5000");
    a.peer_id = 2;
    a.ice_ufrag = "veil";
    a.ice_pwd = kPwd;
    a.ice_remote_ufrag = "brow";
    a.dtls = true;
    FlowSpec b;
    b.id = 2;
    b.ingress_port = 1;
    b.local = ep("198.51.100.1:30000");
    b.signaled_remote = ep("198.51.100.10:5000");
    b.egress_port = 0;
    b.egress_local = ep(local);  // no egress_remote: nothing goes to the browser before a check
    b.peer_id = 1;
    b.ice_consent_from_peer = true;
    std::string why;
    ASSERT_EQ(dp->flows().install(a, &why), 0) << why;
    ASSERT_EQ(dp->flows().install(b, &why), 0) << why;
  }
};

const Endpoint kBrowser = ep("203.0.113.10:4000");

}  // namespace

TEST(IceDataplane, CheckAnsweredByteExactAndSelectsSource) {
  Lab lab;
  lab.install();
  lab.from_browser(kBrowser, check(/*use_candidate=*/true));
  lab.pass();
  auto out = lab.take(lab.ext);
  ASSERT_EQ(out.size(), 1u);
  // Back to the sender from Veil's media address and port: MACs and addresses swapped,
  // TTL 64, DSCP and IPv4 ID carried, full UDP checksum, the success response as payload.
  auto want = udp_frame(kExtHostMac, lab.ext_mac, ep("203.0.113.1:20000"), kBrowser,
                        expected_success(kBrowser), 64);
  EXPECT_EQ(out[0], want);
  // And what a browser checks: MESSAGE-INTEGRITY with the password, FINGERPRINT,
  // XOR-MAPPED-ADDRESS = where the check came from.
  Parsed p = parse(out[0]);
  EXPECT_TRUE(l4_checksum_ok(out[0].data(), p));
  const uint8_t* s = out[0].data() + p.l4 + 8;
  stun::Message m;
  ASSERT_EQ(stun::parse(s, p.l4_len - 8u, m), stun::ParseResult::Ok);
  EXPECT_EQ(m.type, stun::kBindingSuccess);
  stun::HmacKey k;
  stun::hmac_key_init(k, kPwd);
  EXPECT_TRUE(stun::integrity_ok(s, m, k));
  EXPECT_NE(m.fp_off, 0);
  Endpoint mapped;
  ASSERT_TRUE(stun::xor_mapped_address(s, m, mapped));
  EXPECT_EQ(mapped, kBrowser);

  auto f1 = lab.dp->flows().get(1);
  EXPECT_EQ(f1->learned, kBrowser);
  EXPECT_EQ(f1->counters.ice_checks, 1u);
  EXPECT_EQ(f1->counters.ice_consent_tsc, lab.tsc);
  EXPECT_EQ(lab.dp->flows().get(2)->egress_dst, kBrowser);  // media to the browser goes there
  EXPECT_EQ(lab.dp->event_count(Event::stun_answered), 1u);
  EXPECT_EQ(lab.dp->event_count(Event::latched), 1u);
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_TRUE(lab.take(lab.ext_exc).empty());  // nothing punted
}

TEST(IceDataplane, Ipv6CheckAnswered) {
  Lab lab;
  lab.install("[2001:db8:1::1]:20002");
  Endpoint b6 = ep("[2001:db8:1::10]:4002");
  lab.from_browser(b6, check(false));
  lab.pass();
  auto out = lab.take(lab.ext);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], udp_frame(kExtHostMac, lab.ext_mac, ep("[2001:db8:1::1]:20002"), b6,
                              expected_success(b6), 64));
  EXPECT_EQ(lab.dp->flows().get(1)->learned, b6);
}

TEST(IceDataplane, UnvalidatedMediaDroppedAndCounted) {
  Lab lab;
  lab.install();
  lab.from_browser(kBrowser, rtp(1));
  lab.from_browser(kBrowser, dtls_record());
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_EQ(lab.dp->drop_count(Drop::ice_unvalidated), 2u);
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::ice_unvalidated), 2u);
  EXPECT_FALSE(lab.dp->flows().get(1)->learned.valid());  // media never latches an ICE flow
  EXPECT_EQ(lab.dp->event_count(Event::dtls_to_control), 0u);
  // The PBX's media has nowhere to go and no consent.
  lab.from_pbx(rtp(2));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.ext).empty());
  EXPECT_EQ(lab.flow_drop(2, FlowDrop::ice_consent_expired), 1u);

  // After a check from one source, another source is still unvalidated.
  lab.from_browser(kBrowser, check(true));
  lab.pass();
  lab.take(lab.ext);
  lab.from_browser(ep("203.0.113.11:4000"), rtp(3));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_EQ(lab.dp->drop_count(Drop::ice_unvalidated), 3u);
}

TEST(IceDataplane, ValidatedSourceMediaFlowsBothWays) {
  Lab lab;
  lab.install();
  lab.from_browser(kBrowser, check(true));
  lab.pass();
  ASSERT_EQ(lab.take(lab.ext).size(), 1u);
  auto payload = rtp(7);
  lab.from_browser(kBrowser, payload);
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  auto want = udp_frame(kIntHostMac, lab.int_mac, ep("198.51.100.1:30000"), ep("198.51.100.10:5000"),
                        payload, 64);
  EXPECT_EQ(out[0], want);
  lab.from_pbx(rtp(8));
  lab.pass();
  out = lab.take(lab.ext);
  ASSERT_EQ(out.size(), 1u);
  Parsed p = parse(out[0]);
  EXPECT_EQ(udp_source(out[0].data(), p), ep("203.0.113.1:20000"));
  EXPECT_EQ(udp_destination(out[0].data(), p), kBrowser);
  EXPECT_EQ(lab.dp->event_count(Event::relayed), 2u);
  uint64_t d[kDropCount], e[kEventCount];
  lab.dp->counters(d, e);
  for (unsigned k = 0; k < kDropCount; ++k) EXPECT_EQ(d[k], 0u) << kDropNames[k];
}

TEST(IceDataplane, BadIntegrityCheckAnswered401NotSelected) {
  Lab lab;
  lab.install();
  lab.from_browser(kBrowser, check(true, "not-the-password-at-all"));
  lab.pass();
  auto out = lab.take(lab.ext);
  ASSERT_EQ(out.size(), 1u);  // 401 (RFC 8489 9.1.3), never a success response
  Parsed p = parse(out[0]);
  EXPECT_EQ(udp_destination(out[0].data(), p), kBrowser);
  const uint8_t* s = out[0].data() + p.l4 + 8;
  stun::Message m;
  ASSERT_EQ(stun::parse(s, p.l4_len - 8u, m), stun::ParseResult::Ok);
  EXPECT_EQ(m.type, stun::kBindingError);
  EXPECT_EQ(m.error_code, 401);
  EXPECT_EQ(m.mi_off, 0);  // nothing signed with a key the peer did not prove it has
  EXPECT_EQ(m.xor_mapped_off, 0);
  EXPECT_FALSE(lab.dp->flows().get(1)->learned.valid());
  EXPECT_EQ(lab.dp->flows().get(1)->counters.ice_consent_tsc, 0u);
  EXPECT_EQ(lab.dp->drop_count(Drop::stun_auth_fail), 1u);
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::stun_auth_fail), 1u);
  EXPECT_EQ(lab.dp->event_count(Event::stun_answered), 0u);
  EXPECT_EQ(lab.dp->event_count(Event::stun_errors), 1u);
  EXPECT_EQ(lab.dp->event_count(Event::latched), 0u);
  // Wrong ufrag: same.
  lab.from_browser(kBrowser, check(true, kPwd, "veil:mallory"));
  lab.pass();
  EXPECT_EQ(lab.take(lab.ext).size(), 1u);
  EXPECT_EQ(lab.dp->drop_count(Drop::stun_auth_fail), 2u);
  // Its media stays dropped.
  lab.from_browser(kBrowser, rtp(1));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_EQ(lab.dp->drop_count(Drop::ice_unvalidated), 1u);
  // A corrupted check (bad FINGERPRINT) is not answered at all.
  auto bad = check(true);
  bad.back() ^= 0xff;
  lab.from_browser(kBrowser, bad);
  lab.pass();
  EXPECT_TRUE(lab.take(lab.ext).empty());
  EXPECT_EQ(lab.dp->drop_count(Drop::stun_invalid), 1u);
}

TEST(IceDataplane, NominationMovesTheSelectedPair) {
  Lab lab;
  lab.install();
  Endpoint other = ep("203.0.113.11:4100");
  lab.from_browser(kBrowser, check(false));  // first valid check: selected (nothing else is)
  lab.pass();
  lab.from_browser(other, check(false));     // answered, not selected
  lab.pass();
  EXPECT_EQ(lab.take(lab.ext).size(), 2u);
  EXPECT_EQ(lab.dp->flows().get(1)->learned, kBrowser);
  lab.from_browser(other, check(true));      // nominated: media moves there
  lab.pass();
  EXPECT_EQ(lab.take(lab.ext).size(), 1u);
  EXPECT_EQ(lab.dp->flows().get(1)->learned, other);
  EXPECT_EQ(lab.dp->flows().get(2)->egress_dst, other);
  lab.from_browser(kBrowser, rtp(1));
  lab.from_browser(other, rtp(2));
  lab.pass();
  EXPECT_EQ(lab.take(lab.intp).size(), 1u);
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::ice_unvalidated), 1u);
  EXPECT_EQ(lab.dp->event_count(Event::stun_answered), 3u);
}

TEST(IceDataplane, DtlsHandedToControlPlaneAndSentBack) {
  Lab lab;
  lab.install();
  lab.from_browser(kBrowser, check(true));
  lab.pass();
  lab.take(lab.ext);
  auto rec = dtls_record();
  lab.from_browser(kBrowser, rec);
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_TRUE(lab.take(lab.ext_exc).empty());  // not the kernel's
  EXPECT_EQ(lab.dp->event_count(Event::dtls_to_control), 1u);
  std::vector<DtlsDatagram> got;
  std::vector<std::vector<uint8_t>> data;
  unsigned n = lab.dp->poll_dtls([&](const DtlsDatagram& d) {
    got.push_back(d);
    data.emplace_back(d.data, d.data + d.len);
  });
  ASSERT_EQ(n, 1u);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].flow_id, 1u);
  EXPECT_EQ(got[0].port, 0);
  EXPECT_EQ(got[0].local, ep("203.0.113.1:20000"));
  EXPECT_EQ(got[0].remote, kBrowser);
  EXPECT_EQ(data[0], rec);
  EXPECT_EQ(lab.dp->poll_dtls([](const DtlsDatagram&) {}), 0u);

  // The control plane answers from the flow's address and port, through worker 0.
  auto reply = dtls_record(90);
  ASSERT_TRUE(lab.dp->send_udp_from_control(0, got[0].local, got[0].remote, reply.data(),
                                            uint32_t(reply.size())));
  lab.pass();
  auto out = lab.take(lab.ext);
  ASSERT_EQ(out.size(), 1u);
  auto want = udp_frame(kExtHostMac, lab.ext_mac, ep("203.0.113.1:20000"), kBrowser, reply, 64);
  want[15] = 0;             // DSCP 0
  want[18] = want[19] = 0;  // IPv4 ID 0
  want[24] = want[25] = 0;
  uint16_t c = ipv4_header_checksum(&want[14]);
  std::memcpy(&want[24], &c, 2);
  EXPECT_EQ(out[0], want);
  // No neighbour yet: refused, resolution asked for.
  EXPECT_FALSE(lab.dp->send_udp_from_control(0, got[0].local, ep("203.0.113.99:4000"), reply.data(),
                                             uint32_t(reply.size())));

  // A flow without `dtls` drops DTLS as not RTP.
  FlowSpec plain;
  plain.id = 9;
  plain.local = ep("203.0.113.1:20010");
  plain.egress_port = 1;
  plain.egress_local = ep("198.51.100.1:30010");
  plain.egress_remote = ep("198.51.100.10:5010");
  ASSERT_EQ(lab.dp->flows().install(plain), 0);
  lab.inject(lab.ext, udp_frame(lab.ext_mac, kExtHostMac, kBrowser, ep("203.0.113.1:20010"), rec));
  lab.pass();
  EXPECT_EQ(lab.flow_drop(9, FlowDrop::not_rtp), 1u);
}

TEST(IceDataplane, ConsentExpiryStopsMediaUntilChecksResume) {
  Lab lab;
  lab.dp->set_ice_consent_timeout_ms(50);
  lab.install();
  lab.from_browser(kBrowser, check(true));
  lab.pass();
  lab.take(lab.ext);
  lab.from_browser(kBrowser, rtp(1));
  lab.pass(lab.ms(40));  // 40 ms after the check: fresh
  EXPECT_EQ(lab.take(lab.intp).size(), 1u);
  lab.from_browser(kBrowser, rtp(2));
  lab.from_pbx(rtp(3));
  lab.pass(lab.ms(20));  // 60 ms: expired, both directions stop
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_TRUE(lab.take(lab.ext).empty());
  EXPECT_EQ(lab.dp->drop_count(Drop::ice_consent_expired), 2u);
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::ice_consent_expired), 1u);
  EXPECT_EQ(lab.flow_drop(2, FlowDrop::ice_consent_expired), 1u);
  // A failed check does not restore consent.
  lab.from_browser(kBrowser, check(false, "wrong-password-wrong-pw"));
  lab.pass();
  lab.take(lab.ext);
  lab.from_browser(kBrowser, rtp(4));
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  // Checks resume: media flows again (same source, no nomination needed).
  lab.from_browser(kBrowser, check(false));
  lab.pass();
  EXPECT_EQ(lab.take(lab.ext).size(), 1u);
  lab.from_browser(kBrowser, rtp(5));
  lab.from_pbx(rtp(6));
  lab.pass();
  EXPECT_EQ(lab.take(lab.intp).size(), 1u);
  EXPECT_EQ(lab.take(lab.ext).size(), 1u);
}

TEST(IceDataplane, DemuxDropsUnknownFirstBytes) {
  Lab lab;
  lab.install();
  lab.from_browser(kBrowser, check(true));
  lab.pass();
  lab.take(lab.ext);
  std::vector<uint8_t> junk(40, 0);
  junk[0] = 70;  // between DTLS (20-63) and RTP (128-191): RFC 7983 assigns it nothing here
  lab.from_browser(kBrowser, junk);
  junk[0] = 200;
  lab.from_browser(kBrowser, junk);
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::not_rtp), 2u);
}

// Veil offered (PBX -> browser): the flow starts without the browser's ufrag; the browser
// checks before its answer reaches Veil; learning its ufrag keeps the selected pair.
TEST(IceDataplane, LearningRemoteUfragKeepsSelectedPair) {
  Lab lab;
  lab.install();
  FlowSpec s = lab.dp->flows().get(1)->spec;
  s.ice_remote_ufrag.clear();
  ASSERT_EQ(lab.dp->flows().update(s), 0);
  lab.from_browser(kBrowser, check(true));
  lab.pass();
  lab.take(lab.ext);
  ASSERT_EQ(lab.dp->flows().get(1)->learned, kBrowser);
  s.ice_remote_ufrag = "brow";
  ASSERT_EQ(lab.dp->flows().update(s), 0);
  EXPECT_EQ(lab.dp->flows().get(1)->learned, kBrowser);
  lab.from_browser(kBrowser, rtp(3));
  lab.pass();
  EXPECT_EQ(lab.take(lab.intp).size(), 1u);
  EXPECT_EQ(lab.dp->drop_count(Drop::ice_unvalidated), 0u);
  // A different browser ufrag later is a restart.
  s.ice_remote_ufrag = "other";
  ASSERT_EQ(lab.dp->flows().update(s), 0);
  EXPECT_FALSE(lab.dp->flows().get(1)->learned.valid());
}

TEST(IceDataplane, CredentialChangeRestartsValidation) {
  Lab lab;
  lab.install();
  lab.from_browser(kBrowser, check(true));
  lab.pass();
  lab.take(lab.ext);
  ASSERT_TRUE(lab.dp->flows().get(1)->learned.valid());
  FlowSpec s = lab.dp->flows().get(1)->spec;
  // An update that keeps the credentials (say a re-INVITE with new candidates) keeps the
  // selected pair: on an ICE flow the checks select, not the signaled address.
  s.signaled_remote = ep("203.0.113.50:6000");
  ASSERT_EQ(lab.dp->flows().update(s), 0);
  EXPECT_EQ(lab.dp->flows().get(1)->learned, kBrowser);
  lab.from_browser(kBrowser, rtp(9));
  lab.pass();
  EXPECT_EQ(lab.take(lab.intp).size(), 1u);
  s.ice_pwd = "a-new-password-for-ice-restart";
  ASSERT_EQ(lab.dp->flows().update(s), 0);
  EXPECT_FALSE(lab.dp->flows().get(1)->learned.valid());
  lab.from_browser(kBrowser, rtp(1));
  lab.from_browser(kBrowser, check(true));  // old password: 401
  lab.pass();
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_EQ(lab.dp->drop_count(Drop::ice_unvalidated), 1u);
  EXPECT_EQ(lab.dp->drop_count(Drop::stun_auth_fail), 1u);
  lab.take(lab.ext);
  lab.from_browser(kBrowser, check(true, "a-new-password-for-ice-restart"));
  lab.from_browser(kBrowser, rtp(2));
  lab.pass();
  EXPECT_EQ(lab.take(lab.intp).size(), 1u);

  // Bad specs are refused.
  FlowSpec bad = s;
  bad.id = 5;
  bad.local = ep("203.0.113.1:20020");
  bad.ice_pwd = "";
  std::string why;
  EXPECT_EQ(lab.dp->flows().install(bad, &why), -EINVAL);
  bad.ice_pwd = "pw";
  bad.ice_ufrag = "";
  EXPECT_EQ(lab.dp->flows().install(bad, &why), -EINVAL);
}

// The whole DTLS-SRTP path through the dataplane: a browser's DTLS session (in the test)
// talks to veild's DtlsHub only through frames on the external port; Veil as DTLS server
// (browser a=setup:active), then as client (browser passive). Keys come out mirrored.
namespace {

void handshake_through_dataplane(ctl::DtlsRole veil_role) {
  Lab lab;
  lab.install();
  std::string err;
  auto veil_id = ctl::DtlsIdentity::generate(err);
  ASSERT_TRUE(veil_id) << err;
  auto browser_id = ctl::DtlsIdentity::generate(err);
  ASSERT_TRUE(browser_id) << err;
  std::vector<std::pair<uint32_t, ctl::SrtpKeys>> keys;
  unsigned sent = 0;
  ctl::DtlsHub hub(
      *veil_id,
      [&](uint8_t port, const Endpoint& local, const Endpoint& remote, const uint8_t* d, size_t n) {
        ++sent;
        return lab.dp->send_udp_from_control(port, local, remote, d, uint32_t(n));
      },
      [&](uint32_t flow, const ctl::SrtpKeys& k) { keys.emplace_back(flow, k); },
      [&](uint32_t flow, const std::string& why) { ADD_FAILURE() << "flow " << flow << ": " << why; },
      [&](uint32_t flow) -> std::optional<Endpoint> {
        Endpoint l = lab.dp->flows().get(flow)->learned;
        return l.valid() ? std::optional<Endpoint>(l) : std::nullopt;
      });
  ASSERT_TRUE(hub.add(1, veil_role, browser_id->fingerprint(), 0, ep("203.0.113.1:20000")));
  ctl::DtlsRole browser_role =
      veil_role == ctl::DtlsRole::Server ? ctl::DtlsRole::Client : ctl::DtlsRole::Server;
  std::vector<std::vector<uint8_t>> to_veil;
  ctl::DtlsSession browser(*browser_id, browser_role, veil_id->fingerprint(),
                           [&](const uint8_t* d, size_t n) { to_veil.emplace_back(d, d + n); });
  // The client side waits for ICE: nothing is sent before a check selected the browser.
  hub.tick();
  EXPECT_EQ(sent, 0u);
  lab.from_browser(kBrowser, check(true));
  lab.pass();
  ASSERT_EQ(lab.take(lab.ext).size(), 1u);  // the check's answer
  browser.start();
  for (int round = 0; round < 20; ++round) {
    for (auto& d : to_veil) lab.from_browser(kBrowser, d);
    to_veil.clear();
    lab.pass();
    lab.dp->poll_dtls([&](const DtlsDatagram& d) { hub.on_datagram(d.flow_id, d.remote, d.data, d.len); });
    hub.tick();
    lab.pass();  // worker 0 sends what the control plane queued
    for (auto& f : lab.take(lab.ext)) {
      Parsed p = parse(f);
      EXPECT_EQ(udp_source(f.data(), p), ep("203.0.113.1:20000"));
      EXPECT_EQ(udp_destination(f.data(), p), kBrowser);
      EXPECT_TRUE(l4_checksum_ok(f.data(), p));
      browser.on_datagram(f.data() + p.l4 + 8, p.l4_len - 8u);
    }
    if (browser.state() == ctl::DtlsSession::State::Connected && !keys.empty()) break;
  }
  ASSERT_EQ(browser.state(), ctl::DtlsSession::State::Connected) << browser.error();
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].first, 1u);
  const ctl::SrtpKeys& k = keys[0].second;
  EXPECT_EQ(k.profile, ctl::SrtpProfile::AeadAes128Gcm);
  EXPECT_EQ(k.local_master(), browser.keys().remote_master());
  EXPECT_EQ(k.remote_master(), browser.keys().local_master());
  EXPECT_EQ(hub.session(1)->role(), veil_role);
  EXPECT_GT(lab.dp->event_count(Event::dtls_to_control), 0u);
  EXPECT_EQ(hub.unknown_flow_records(), 0u);
  EXPECT_EQ(lab.dp->drop_count(Drop::dtls_ring_full), 0u);
}

}  // namespace

TEST(IceDataplane, DtlsSrtpHandshakeThroughDataplaneVeilPassive) {
  handshake_through_dataplane(ctl::DtlsRole::Server);
}

TEST(IceDataplane, DtlsSrtpHandshakeThroughDataplaneVeilActive) {
  handshake_through_dataplane(ctl::DtlsRole::Client);
}

// `veilctl flow ID` shows the ICE state (and never the password).
TEST(IceDataplane, FlowDetailShowsIceState) {
  Lab lab;
  lab.install();
  lab.from_browser(kBrowser, check(true));
  lab.pass();
  config::Config cfg;
  ctl::Api api(*lab.dp, cfg);
  auto show = [&](const char* id) {
    ctl::Request r;
    r.command = "flow";
    r.args["id"] = id;
    ctl::Response resp = api.handle(r);
    EXPECT_EQ(resp.status, 0) << resp.message;
    return doc::to_json(resp.body);
  };
  std::string j = show("1");
  EXPECT_NE(j.find("\"ice_ufrag\":\"veil\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"ice_remote_ufrag\":\"brow\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"ice_checks\":1"), std::string::npos) << j;
  EXPECT_NE(j.find("\"ice_consent_age_s\":"), std::string::npos) << j;
  EXPECT_NE(j.find("\"dtls\":true"), std::string::npos) << j;
  EXPECT_NE(j.find("\"ice_unvalidated\":0"), std::string::npos) << j;
  EXPECT_EQ(j.find(kPwd), std::string::npos) << j;
  std::string j2 = show("2");
  EXPECT_NE(j2.find("\"ice_consent_from_peer\":true"), std::string::npos) << j2;
}

// A muxing browser and a PBX that does not mux (FlowSpec::rtcp_split): the browser's RTCP on
// the muxed port leaves Veil's RTCP port for the PBX's; RTP is untouched; the PBX's RTCP to
// Veil's RTCP port goes out of the browser's muxed port to the ICE-selected source, and its
// latching leaves flow 1's destination (the PBX's RTP port) alone.
TEST(IceDataplane, RtcpSplitBetweenMuxedBrowserAndNonMuxedPbx) {
  Lab lab;
  FlowSpec a;
  a.id = 1;
  a.ingress_port = 0;
  a.local = ep("203.0.113.1:20000");
  a.egress_port = 1;
  a.egress_local = ep("198.51.100.1:30000");
  a.egress_remote = ep("198.51.100.10:5000");
  a.peer_id = 2;
  a.ice_ufrag = "veil";
  a.ice_pwd = kPwd;
  a.ice_remote_ufrag = "brow";
  a.rtcp_split = true;
  FlowSpec b;
  b.id = 2;
  b.ingress_port = 1;
  b.local = ep("198.51.100.1:30000");
  b.signaled_remote = ep("198.51.100.10:5000");
  b.egress_port = 0;
  b.egress_local = ep("203.0.113.1:20000");
  b.peer_id = 1;
  b.ice_consent_from_peer = true;
  FlowSpec c;
  c.id = 3;
  c.ingress_port = 1;
  c.local = ep("198.51.100.1:30001");
  c.signaled_remote = ep("198.51.100.10:5001");
  c.egress_port = 0;
  c.egress_local = ep("203.0.113.1:20000");
  c.peer_id = 1;
  c.ice_consent_from_peer = true;
  c.rtcp_split = true;
  std::string why;
  ASSERT_EQ(lab.dp->flows().install(a, &why), 0) << why;
  ASSERT_EQ(lab.dp->flows().install(b, &why), 0) << why;
  ASSERT_EQ(lab.dp->flows().install(c, &why), 0) << why;
  FlowSpec bad = c;
  bad.id = 4;
  bad.local = ep("198.51.100.1:30003");
  bad.ice_consent_from_peer = false;
  EXPECT_NE(lab.dp->flows().install(bad, &why), 0);  // rtcp_split needs ICE or consent from a peer

  lab.from_browser(kBrowser, check(true));
  lab.pass();
  ASSERT_EQ(lab.take(lab.ext).size(), 1u);
  std::vector<uint8_t> sr = {0x80, 200, 0, 6, 0xCA, 0xFE, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8,
                             0, 0, 1, 0, 0, 0, 0, 9, 0, 0, 5, 0};
  auto media = rtp(7);
  lab.from_browser(kBrowser, media);
  lab.from_browser(kBrowser, sr);
  lab.pass();
  auto out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], udp_frame(kIntHostMac, lab.int_mac, ep("198.51.100.1:30000"), ep("198.51.100.10:5000"),
                              media, 64));
  EXPECT_EQ(out[1], udp_frame(kIntHostMac, lab.int_mac, ep("198.51.100.1:30001"), ep("198.51.100.10:5001"),
                              sr, 64));

  // The PBX's RTCP to Veil's RTCP port: to the browser from the muxed port.
  lab.inject(lab.intp, udp_frame(lab.int_mac, kIntHostMac, ep("198.51.100.10:5001"), ep("198.51.100.1:30001"), sr));
  lab.pass();
  out = lab.take(lab.ext);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], udp_frame(kExtHostMac, lab.ext_mac, ep("203.0.113.1:20000"), kBrowser, sr, 64));
  // Flow 1's destination is still the PBX's RTP port: browser RTP goes there.
  lab.from_browser(kBrowser, rtp(8));
  lab.pass();
  out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 1u);
  Parsed p = parse(out[0]);
  EXPECT_EQ(udp_destination(out[0].data(), p), ep("198.51.100.10:5000"));
  EXPECT_EQ(lab.dp->flows().get(3)->counters.packets, 1u);
  EXPECT_EQ(lab.dp->flows().get(1)->counters.packets, 3u);
  // Flow 1's RTP on the fast path by now: its RTCP still goes to the RTCP port.
  const uint64_t slow0 = lab.dp->event_count(Event::relay_slow);
  for (uint16_t seq = 9; seq <= 12; ++seq) lab.from_browser(kBrowser, rtp(seq));
  lab.from_browser(kBrowser, sr);
  lab.pass();
  out = lab.take(lab.intp);
  ASSERT_EQ(out.size(), 5u);
  for (size_t i = 0; i < 4; ++i)
    EXPECT_EQ(udp_destination(out[i].data(), parse(out[i])), ep("198.51.100.10:5000")) << i;
  EXPECT_EQ(out[4], udp_frame(kIntHostMac, lab.int_mac, ep("198.51.100.1:30001"), ep("198.51.100.10:5001"),
                              sr, 64));
  EXPECT_EQ(lab.dp->event_count(Event::relay_slow) - slow0, 1u);  // the RTCP
}

// ICE media on the relay's fast path (docs/architecture.md "The relay's fast path"): after a
// few packets both directions are relayed from the egress cache, and consent still gates
// them packet by packet: expiry, a restart of the checks, STUN and DTLS keep their own ways.
TEST(IceDataplane, FastPathKeepsConsentAndRestartRules) {
  Lab lab;
  lab.dp->set_ice_consent_timeout_ms(50);
  lab.install();
  lab.from_browser(kBrowser, check(true));
  lab.pass();
  ASSERT_EQ(lab.take(lab.ext).size(), 1u);
  const uint64_t slow0 = lab.dp->event_count(Event::relay_slow);
  auto want_to_pbx = [&](uint16_t seq) {
    return udp_frame(kIntHostMac, lab.int_mac, ep("198.51.100.1:30000"), ep("198.51.100.10:5000"), rtp(seq), 64);
  };
  for (uint16_t seq = 1; seq <= 6; ++seq) {
    lab.from_browser(kBrowser, rtp(seq));
    lab.from_pbx(rtp(uint16_t(100 + seq)));
    lab.pass(lab.ms(1));
    auto up = lab.take(lab.intp);
    ASSERT_EQ(up.size(), 1u) << seq;
    EXPECT_EQ(up[0], want_to_pbx(seq)) << seq;
    auto down = lab.take(lab.ext);
    ASSERT_EQ(down.size(), 1u) << seq;
    EXPECT_EQ(udp_destination(down[0].data(), parse(down[0])), kBrowser);
  }
  // Two slow packets per direction (the first, then the one that builds the cache); the
  // remaining eight took the fast path.
  EXPECT_EQ(lab.dp->event_count(Event::relay_slow) - slow0, 4u);
  // A check in between is still answered (and refreshes consent); DTLS still goes to the
  // control plane; neither reaches the PBX.
  lab.from_browser(kBrowser, check(false));
  lab.from_browser(kBrowser, dtls_record());
  lab.pass(lab.ms(1));
  EXPECT_EQ(lab.take(lab.ext).size(), 1u);
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_EQ(lab.dp->event_count(Event::dtls_to_control), 1u);
  // Consent expires (no check for 60 ms): the next packet each way is dropped and counted.
  lab.from_browser(kBrowser, rtp(20));
  lab.from_pbx(rtp(120));
  lab.pass(lab.ms(60));
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_TRUE(lab.take(lab.ext).empty());
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::ice_consent_expired), 1u);
  EXPECT_EQ(lab.flow_drop(2, FlowDrop::ice_consent_expired), 1u);
  // Checks resume: media flows again.
  lab.from_browser(kBrowser, check(false));
  lab.pass(lab.ms(1));
  lab.take(lab.ext);
  for (uint16_t seq = 21; seq <= 24; ++seq) {
    lab.from_browser(kBrowser, rtp(seq));
    lab.from_pbx(rtp(uint16_t(100 + seq)));
    lab.pass(lab.ms(1));
    EXPECT_EQ(lab.take(lab.intp).size(), 1u) << seq;
    EXPECT_EQ(lab.take(lab.ext).size(), 1u) << seq;
  }
  // An ICE restart (new credentials): nothing either way until a check with them passes,
  // although both egress caches were valid a moment ago.
  FlowSpec s = lab.dp->flows().get(1)->spec;
  s.ice_pwd = "a-new-password-for-ice-restart";
  ASSERT_EQ(lab.dp->flows().update(s), 0);
  lab.from_browser(kBrowser, rtp(30));
  lab.from_pbx(rtp(130));
  lab.pass(lab.ms(1));
  EXPECT_TRUE(lab.take(lab.intp).empty());
  EXPECT_TRUE(lab.take(lab.ext).empty());
  EXPECT_EQ(lab.flow_drop(1, FlowDrop::ice_unvalidated), 1u);
  EXPECT_EQ(lab.flow_drop(2, FlowDrop::ice_consent_expired), 2u);
  lab.from_browser(kBrowser, check(true, "a-new-password-for-ice-restart"));
  lab.pass(lab.ms(1));
  lab.take(lab.ext);
  lab.from_browser(kBrowser, rtp(31));
  lab.from_pbx(rtp(131));
  lab.pass(lab.ms(1));
  EXPECT_EQ(lab.take(lab.intp).size(), 1u);
  EXPECT_EQ(lab.take(lab.ext).size(), 1u);
}
