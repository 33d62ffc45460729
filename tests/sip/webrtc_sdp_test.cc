// The WebRTC SDP conversions (sip/webrtc_sdp.h) after rewrite_sdp(), golden-tested:
// a browser's offer made plain for the PBX (webrtc_to_pbx), and the PBX's plain answer made
// an ICE-lite, DTLS-SRTP answer for the browser (webrtc_to_browser).
#include "sip/webrtc_sdp.h"

#include <gtest/gtest.h>

#include <string>

#include "sip/sdp_rewrite.h"
#include "tests/sip/golden_util.h"

namespace veil::sip {
namespace {

using golden::crlf;
std::string read_golden(const std::string& name) { return golden::read(name); }
using golden::fill;
using golden::rewrite;

TEST(WebRtcSdp, InspectsABrowserOffer) {
  WebRtcInfo w = inspect_webrtc(read_golden("browser_offer.in.sdp"));
  EXPECT_TRUE(w.webrtc);
  EXPECT_EQ(w.ice_ufrag, "Xy7b");
  EXPECT_EQ(w.ice_pwd, "Rq4l2n0Zl8v0sJvZkQ9g1aT3");
  EXPECT_EQ(w.setup, "actpass");
  EXPECT_EQ(w.fingerprint.rfind("sha-256 4A:AD:B9", 0), 0u) << w.fingerprint;
  ASSERT_EQ(w.bundle.size(), 1u);
  EXPECT_EQ(w.bundle[0], "0");
  ASSERT_EQ(w.media.size(), 1u);
  EXPECT_EQ(w.media[0].mid, "0");
  EXPECT_EQ(w.media[0].proto, "UDP/TLS/RTP/SAVPF");
  EXPECT_TRUE(w.media[0].rtcp_mux);
}

TEST(WebRtcSdp, PlainSdpIsNotWebRtc) {
  WebRtcInfo w = inspect_webrtc(read_golden("webrtc_plain_answer.in.sdp"));
  EXPECT_FALSE(w.webrtc);
  EXPECT_TRUE(w.media[0].rtcp_mux);
}

TEST(WebRtcSdp, BrowserOfferBecomesPlainForThePbx) {
  std::string out = to_plain(rewrite(read_golden("browser_offer.in.sdp"), "198.51.100.1", 30000));
  EXPECT_EQ(out, crlf(fill(read_golden("webrtc_to_pbx.out.sdp"), "198.51.100.1", 30000)));
  for (const char* gone : {"fingerprint", "ssrc", "msid", "mid", "extmap", "rtcp-fb", "BUNDLE", "SAVPF", "setup"})
    EXPECT_EQ(out.find(gone), std::string::npos) << gone << " reached the PBX:\n" << out;
}

TEST(WebRtcSdp, PlainAnswerBecomesIceLiteDtlsForTheBrowser) {
  WebRtcInfo offer = inspect_webrtc(read_golden("browser_offer.in.sdp"));
  WebRtcParams p;
  p.ice_ufrag = "vEiL";
  p.ice_pwd = "0123456789abcdefghijklmn";
  p.fingerprint = "sha-256 AA:BB:CC";
  p.setup = "passive";
  p.offer_media = offer.media;
  std::string out = to_webrtc(rewrite(read_golden("webrtc_plain_answer.in.sdp"), "203.0.113.1", 20000), p);
  EXPECT_EQ(out, crlf(fill(read_golden("webrtc_to_browser.out.sdp"), "203.0.113.1", 20000)));
  EXPECT_EQ(out.find("198.51.100"), std::string::npos) << out;
}

TEST(WebRtcSdp, VeilsOwnOfferToABrowserNumbersMids) {
  WebRtcParams p;
  p.ice_ufrag = "u";
  p.ice_pwd = "p";
  p.fingerprint = "sha-256 AA";
  p.setup = "actpass";
  std::string two = "v=0\r\no=veil 1 1 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n"
                    "m=audio 20000 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\n";
  std::string out = to_webrtc(two, p);
  EXPECT_NE(out.find("a=group:BUNDLE 0\r\n"), std::string::npos) << "the disabled m-line is not bundled:\n" << out;
  EXPECT_NE(out.find("m=audio 20000 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("a=mid:1\r\na=ice-ufrag"), std::string::npos) << "ICE on a disabled m-line:\n" << out;
  EXPECT_EQ(out.find("a=candidate:1 1 udp 2130706431 203.0.113.1 0 "), std::string::npos) << "candidate for a disabled line";
  EXPECT_NE(out.find("a=setup:actpass"), std::string::npos);
}

// ---- BUNDLE of audio and video (RFC 8843 / RFC 9143) ----------------------------------

// rewrite_sdp() of a two-stream SDP for a side where Veil is `addr` on ports `p0` and `p1`.
std::string rewrite2(const std::string& in, const char* addr, uint16_t p0, uint16_t p1) {
  SdpRewriteParams p;
  p.sbc_addr = *IpAddr::parse(addr);
  p.local = {Endpoint{p.sbc_addr, p0}, Endpoint{p.sbc_addr, p1}};
  SdpOrigin o;
  o.session_id = 1700000042;
  o.version = 7;
  SdpRewriteResult r = rewrite_sdp(in, p, o);
  EXPECT_EQ(r.error, SdpError::None) << r.detail;
  return r.sdp;
}

TEST(WebRtcSdpBundle, InspectsPayloadTypesPerMline) {
  WebRtcInfo w = inspect_webrtc(read_golden("browser_av_offer.in.sdp"));
  ASSERT_EQ(w.media.size(), 2u);
  EXPECT_EQ(w.bundle, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(w.media[0].pts, (std::vector<uint8_t>{111, 0, 8, 126}));
  EXPECT_EQ(w.media[1].pts, (std::vector<uint8_t>{96, 97, 102}));
  PtSet a, v;
  a.add(w.media[0].pts);
  v.add(w.media[1].pts);
  EXPECT_FALSE(pt_sets_overlap({a, v}));
  EXPECT_EQ(pt_set_str(a), "0,8,111,126");
  EXPECT_EQ(pt_set_str(v), "96-97,102");
  EXPECT_TRUE(v.has(97));
  EXPECT_FALSE(v.has(98));
  // A PBX that numbers audio and video with the same dynamic payload type.
  WebRtcInfo o = inspect_webrtc(read_golden("pbx_av_overlap.in.sdp"));
  PtSet oa, ov;
  oa.add(o.media[0].pts);
  ov.add(o.media[1].pts);
  EXPECT_TRUE(pt_sets_overlap({oa, ov}));
  EXPECT_FALSE(pt_sets_overlap({oa}));
}

// The payload type map the dataplane demultiplexes with: per m-line, the offer's formats united
// with the answer's; a head only when two or more m-lines are active; overlap detected.
TEST(WebRtcSdpBundle, PayloadTypeMapFromOfferAndAnswer) {
  WebRtcInfo offer = inspect_webrtc(read_golden("browser_av_offer.in.sdp"));
  BundlePtMap o = bundle_pt_map(offer);
  EXPECT_EQ(o.head, 0);
  EXPECT_FALSE(o.overlap);
  ASSERT_EQ(o.pts.size(), 2u);
  EXPECT_EQ(pt_set_str(o.pts[0]), "0,8,111,126");
  EXPECT_EQ(pt_set_str(o.pts[1]), "96-97,102");
  // The PBX answers PCMU + telephone-event 101 (a number the browser did not offer) and VP8 96.
  WebRtcInfo answer = inspect_webrtc(read_golden("pbx_av.in.sdp"));
  answer.media[0].pts = {0, 101};
  BundlePtMap a = bundle_pt_map(answer, o.pts);
  EXPECT_FALSE(a.overlap);
  EXPECT_EQ(pt_set_str(a.pts[0]), "0,8,101,111,126");
  EXPECT_EQ(pt_set_str(a.pts[1]), "96-97,102");
  // An answer that gives video a payload type of the audio m-line: overlap.
  answer.media[1].pts = {96, 111};
  EXPECT_TRUE(bundle_pt_map(answer, o.pts).overlap);
  // The video m-line disabled: one active m-line, no bundle, no overlap check needed.
  answer.media[1].disabled = true;
  BundlePtMap single = bundle_pt_map(answer, o.pts);
  EXPECT_EQ(single.head, -1);
  EXPECT_FALSE(single.overlap);
  EXPECT_TRUE(single.pts[1].empty());
  // A PBX offer with audio and video both numbered 96.
  EXPECT_TRUE(bundle_pt_map(inspect_webrtc(read_golden("pbx_av_overlap.in.sdp"))).overlap);
}

TEST(WebRtcSdpBundle, BrowserAudioVideoOfferBecomesTwoPlainMlinesForThePbx) {
  std::string out = to_plain(rewrite2(read_golden("browser_av_offer.in.sdp"), "198.51.100.1", 30000, 30002));
  EXPECT_EQ(out, crlf(read_golden("webrtc_av_to_pbx.out.sdp")));
  for (const char* gone : {"BUNDLE", "a=mid", "extmap", "sdes:mid", "ssrc", "msid", "rtcp-rsize", "SAVPF"})
    EXPECT_EQ(out.find(gone), std::string::npos) << gone << " reached the PBX:\n" << out;
}

TEST(WebRtcSdpBundle, PbxAudioVideoAnswerBecomesOneBundledFiveTupleForTheBrowser) {
  WebRtcInfo offer = inspect_webrtc(read_golden("browser_av_offer.in.sdp"));
  WebRtcParams p;
  p.ice_ufrag = "vEiL";
  p.ice_pwd = "0123456789abcdefghijklmn";
  p.fingerprint = "sha-256 AA:BB:CC";
  p.setup = "passive";
  p.offer_media = offer.media;
  std::string out = to_webrtc(rewrite2(read_golden("pbx_av.in.sdp"), "203.0.113.1", 20000, 20002), p);
  EXPECT_EQ(out, crlf(read_golden("webrtc_av_to_browser.out.sdp")));
  // RFC 8843 7.3.3: every bundled m-line of the answer carries the tagged m-line's port.
  EXPECT_EQ(out.find("20002"), std::string::npos) << out;
  EXPECT_NE(out.find("m=video 20000 "), std::string::npos) << out;
  EXPECT_EQ(out.find("198.51.100"), std::string::npos) << out;
}

}  // namespace
}  // namespace veil::sip
