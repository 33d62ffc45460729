// A call's browser leg (sip/webrtc_leg.h): DTLS roles both ways, the SDP each side gets
// (built on the golden inputs of webrtc_sdp_test), what the MediaAnchor is told.
#include "sip/webrtc_leg.h"

#include <gtest/gtest.h>

#include <string>

#include "sip/sdp_rewrite.h"
#include "tests/sip/golden_util.h"

namespace veil::sip {
namespace {

std::string read_golden(const std::string& name) { return golden::crlf(golden::read(name)); }
using golden::fill;
using golden::rewrite;

bool has_line(const std::string& sdp, const std::string& line) {
  return sdp.find(line + "\r\n") != std::string::npos;
}

const char kFp[] = "sha-256 AA:BB:CC";

// Golden: Veil's first offer to a browser (the PBX calls it), from a plain PBX offer.
TEST(WebRtcLeg, GoldenOfferToBrowser) {
  WebRtcLeg leg = leg_for_offer_to_browser("vEiL", "0123456789abcdefghijklmn", kFp);
  std::string out = sdp_to_browser(leg, rewrite(read_golden("webrtc_plain_answer.in.sdp"), "203.0.113.1", 20000));
  EXPECT_EQ(out, fill(read_golden("webrtc_offer_to_browser.out.sdp"), "203.0.113.1", 20000));
}

// Golden: the browser's answer (a=setup:active) made Veil's answer to a PBX that did not offer
// rtcp-mux.
TEST(WebRtcLeg, GoldenAnswerToPbx) {
  std::string answer = read_golden("browser_offer.in.sdp");
  answer.replace(answer.find("a=setup:actpass"), 15, "a=setup:active");
  std::string out = sdp_to_pbx(rewrite(answer, "198.51.100.1", 30000), true, false);
  EXPECT_EQ(out, fill(read_golden("webrtc_answer_to_pbx.out.sdp"), "198.51.100.1", 30000));
}

TEST(WebRtcLeg, DtlsRoles) {
  EXPECT_EQ(answer_setup_for("actpass"), "passive");
  EXPECT_EQ(answer_setup_for("active"), "passive");
  EXPECT_EQ(answer_setup_for(""), "passive");  // RFC 4145: absent means active
  EXPECT_EQ(answer_setup_for("passive"), "active");
  EXPECT_EQ(answer_setup_for("holdconn"), std::nullopt);
  EXPECT_EQ(role_from_answer_setup("active"), "passive");
  EXPECT_EQ(role_from_answer_setup("passive"), "active");
  EXPECT_EQ(role_from_answer_setup("actpass"), std::nullopt);
}

TEST(WebRtcLeg, BrowserCallsThePbx) {
  std::string offer = read_golden("browser_offer.in.sdp");
  SdpInspectResult in = inspect_sdp(offer);
  ASSERT_EQ(in.error, SdpError::None);
  ASSERT_TRUE(in.info.webrtc.webrtc);
  auto leg = leg_for_browser_offer(in.info.webrtc, "vEiL", "0123456789abcdefghijklmn", kFp);
  ASSERT_TRUE(leg);
  EXPECT_EQ(leg->local_setup, "passive");
  EXPECT_EQ(leg->remote_ufrag, "Xy7b");
  EXPECT_EQ(leg->remote_fingerprint.rfind("sha-256 4A:AD:B9", 0), 0u);

  // Toward the PBX (an offer): plain RTP/AVP, rtcp-mux offered, nothing of the browser's.
  std::string pbx = sdp_to_pbx(rewrite(offer, "198.51.100.1", 30000), false, false);
  EXPECT_NE(pbx.find("m=audio 30000 RTP/AVP 111 0 8 126\r\n"), std::string::npos) << pbx;
  EXPECT_TRUE(has_line(pbx, "a=rtcp-mux")) << pbx;
  for (const char* s : {"ice", "fingerprint", "setup", "candidate", "203.0.113.10", "Xy7b", "mid", "ssrc"})
    EXPECT_EQ(pbx.find(s), std::string::npos) << s << "\n" << pbx;

  // The PBX's plain answer, toward the browser: ICE-lite, passive, the browser's mid.
  std::string answer = read_golden("webrtc_plain_answer.in.sdp");
  std::string br = sdp_to_browser(*leg, rewrite(answer, "203.0.113.1", 20000));
  EXPECT_TRUE(has_line(br, "a=ice-lite")) << br;
  EXPECT_TRUE(has_line(br, "a=setup:passive")) << br;
  EXPECT_TRUE(has_line(br, "a=fingerprint:sha-256 AA:BB:CC")) << br;
  EXPECT_TRUE(has_line(br, "a=ice-ufrag:vEiL")) << br;
  EXPECT_TRUE(has_line(br, "a=mid:0")) << br;
  EXPECT_TRUE(has_line(br, "a=rtcp-mux")) << br;
  EXPECT_TRUE(has_line(br, "a=candidate:1 1 udp 2130706431 203.0.113.1 20000 typ host")) << br;
  EXPECT_EQ(br.find("198.51.100"), std::string::npos) << br;

  WebRtcPlan p = plan_for(*leg);
  EXPECT_TRUE(p.enabled);
  EXPECT_EQ(p.ice_ufrag, "vEiL");
  EXPECT_EQ(p.remote_ufrag, "Xy7b");
  EXPECT_EQ(p.local_setup, "passive");
  EXPECT_EQ(p.remote_fingerprint, leg->remote_fingerprint);
}

TEST(WebRtcLeg, PbxCallsTheBrowser) {
  WebRtcLeg leg = leg_for_offer_to_browser("vEiL", "0123456789abcdefghijklmn", kFp);
  // Veil offers actpass; no DTLS session until the browser answers.
  std::string pbx_offer = read_golden("webrtc_plain_answer.in.sdp");  // a plain SDP
  std::string br = sdp_to_browser(leg, rewrite(pbx_offer, "203.0.113.1", 20000));
  EXPECT_TRUE(has_line(br, "a=setup:actpass")) << br;
  EXPECT_NE(br.find("UDP/TLS/RTP/SAVPF"), std::string::npos) << br;
  EXPECT_TRUE(has_line(br, "a=mid:0")) << br;
  EXPECT_TRUE(has_line(br, "a=group:BUNDLE 0")) << br;
  EXPECT_TRUE(plan_for(leg).local_setup.empty());

  // The browser answers active: Veil is the DTLS server.
  std::string answer = read_golden("browser_offer.in.sdp");
  for (size_t p = answer.find("a=setup:actpass"); p != std::string::npos; p = std::string::npos)
    answer.replace(p, 15, "a=setup:active");
  SdpInspectResult in = inspect_sdp(answer);
  ASSERT_EQ(in.error, SdpError::None);
  ASSERT_TRUE(take_browser_sdp(leg, in.info.webrtc, true));
  EXPECT_EQ(leg.local_setup, "passive");
  EXPECT_EQ(leg.remote_ufrag, "Xy7b");
  // A re-offer keeps the role (no new handshake).
  std::string again = sdp_to_browser(leg, rewrite(pbx_offer, "203.0.113.1", 20000));
  EXPECT_TRUE(has_line(again, "a=setup:passive")) << again;

  // Toward the PBX, the answer carries a=rtcp-mux only if the PBX offered it.
  std::string rw = rewrite(answer, "198.51.100.1", 30000);
  EXPECT_FALSE(has_line(sdp_to_pbx(rw, true, false), "a=rtcp-mux"));
  EXPECT_TRUE(has_line(sdp_to_pbx(rw, true, true), "a=rtcp-mux"));

  // A browser answer that says actpass, or has no fingerprint, is refused.
  WebRtcLeg fresh = leg_for_offer_to_browser("u", "p", kFp);
  WebRtcInfo bad = in.info.webrtc;
  bad.setup = "actpass";
  EXPECT_FALSE(take_browser_sdp(fresh, bad, true));
  bad = in.info.webrtc;
  bad.fingerprint.clear();
  EXPECT_FALSE(take_browser_sdp(fresh, bad, true));
}

TEST(WebRtcLeg, PlainAnswerFromAWebSocketPhone) {
  WebRtcLeg leg = leg_for_offer_to_browser("u", "p", kFp);
  SdpInspectResult plain = inspect_sdp(read_golden("webrtc_plain_answer.in.sdp"));
  ASSERT_EQ(plain.error, SdpError::None);
  EXPECT_TRUE(keep_plain(leg, plain.info.webrtc, true));
  EXPECT_FALSE(keep_plain(leg, plain.info.webrtc, false));
  SdpInspectResult browser = inspect_sdp(read_golden("browser_offer.in.sdp"));
  EXPECT_FALSE(keep_plain(leg, browser.info.webrtc, true));
  // Once DTLS-SRTP is agreed, a plain SDP is refused rather than dropping to plain RTP.
  leg.local_setup = "passive";
  EXPECT_FALSE(keep_plain(leg, plain.info.webrtc, true));
}

TEST(WebRtcLeg, RecognisesTheGatewaysConnection) {
  IpAddr ext = *IpAddr::parse("203.0.113.1");
  EXPECT_TRUE(is_gateway_flow(Endpoint{ext, 41000}, true, ext));
  EXPECT_FALSE(is_gateway_flow(Endpoint{ext, 41000}, false, ext));
  EXPECT_FALSE(is_gateway_flow(Endpoint{*IpAddr::parse("203.0.113.10"), 41000}, true, ext));
}

// Golden: Veil's first offer to a browser for a PBX's audio + video offer: one BUNDLE group,
// the same port, address and candidate in both m-lines, one ufrag/pwd and fingerprint.
TEST(WebRtcLeg, GoldenAudioVideoOfferToBrowserIsBundled) {
  WebRtcLeg leg = leg_for_offer_to_browser("vEiL", "0123456789abcdefghijklmn", kFp);
  SdpRewriteParams p;
  p.sbc_addr = *IpAddr::parse("203.0.113.1");
  p.local = {Endpoint{p.sbc_addr, 20000}, Endpoint{p.sbc_addr, 20002}};
  SdpOrigin o;
  o.session_id = 1700000042;
  o.version = 7;
  SdpRewriteResult r = rewrite_sdp(read_golden("pbx_av.in.sdp"), p, o);
  ASSERT_EQ(r.error, SdpError::None);
  std::string out = sdp_to_browser(leg, r.sdp);
  EXPECT_EQ(out, read_golden("webrtc_av_offer_to_browser.out.sdp"));
  EXPECT_TRUE(has_line(out, "a=group:BUNDLE 0 1"));
  EXPECT_TRUE(has_line(out, "m=video 20000 UDP/TLS/RTP/SAVPF 96"));
  EXPECT_EQ(out.find("20002"), std::string::npos) << out;
}

}  // namespace
}  // namespace veil::sip
