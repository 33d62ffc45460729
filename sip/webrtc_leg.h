// A call's browser leg (issue 5): what the B2BUA keeps per call when the untrusted side is a
// WebRTC endpoint, and the pure decisions around it (which DTLS role Veil takes, which SDP
// each side gets, what the MediaAnchor is told). sip/b2bua.cc calls these from a few hooks;
// everything here is plain data and text, unit-tested in tests/sip/webrtc_leg_test.cc.
//
//   browser -> PBX: the browser offers (UDP/TLS/RTP/SAVPF, a=setup:actpass); Veil answers the
//                   browser with to_webrtc() (its own ICE credentials for this call, its
//                   certificate fingerprint, a=setup:passive, rtcp-mux, one host candidate)
//                   and offers the PBX to_plain() (RTP/AVP, a=rtcp-mux offered).
//   PBX -> browser: the AOR registered through the WebSocket gateway; Veil offers the browser
//                   to_webrtc() with a=setup:actpass and takes its role from the browser's
//                   answer (active -> Veil passive, passive -> Veil active); the PBX gets
//                   to_plain() of the browser's answer (a=rtcp-mux only if the PBX offered it).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/addr.h"
#include "sip/media_anchor.h"
#include "sip/webrtc_sdp.h"

namespace veil::sip {

struct WebRtcLeg {
  bool browser_offered = false;      // the browser made the initial offer
  std::string ufrag, pwd;            // Veil's ICE credentials for this call
  std::string fingerprint;           // Veil's certificate ("sha-256 AB:CD:...")
  // Veil's DTLS role as written in its SDP: "active" or "passive"; empty while Veil's
  // actpass offer awaits the browser's answer.
  std::string local_setup;
  std::string remote_ufrag, remote_fingerprint;  // the browser's, from its last SDP
  std::vector<WebRtcMedia> offer_media;          // mids and protocols of the browser's offer
};

// The role Veil answers a browser's offer with, from the offer's a=setup (RFC 5763 5, RFC
// 4145 4: absent means active): actpass/active/absent -> "passive", passive -> "active";
// nullopt for holdconn or anything else.
std::optional<std::string> answer_setup_for(std::string_view offer_setup);
// Veil's role from the browser's answer to Veil's actpass offer: active -> "passive",
// passive -> "active"; nullopt otherwise (an answer may not say actpass).
std::optional<std::string> role_from_answer_setup(std::string_view answer_setup);

// A browser's offer (inspect_webrtc says webrtc) to a new call: nullopt when it cannot be
// answered (no fingerprint or ICE credentials, holdconn).
std::optional<WebRtcLeg> leg_for_browser_offer(const WebRtcInfo& offer, std::string ufrag,
                                               std::string pwd, std::string fingerprint);
// Veil offers to a browser (a call from the PBX to an AOR registered over WebSocket).
WebRtcLeg leg_for_offer_to_browser(std::string ufrag, std::string pwd, std::string fingerprint);

// SDP from the browser on an existing leg (a re-offer, or the answer to Veil's offer):
// takes its ICE ufrag and fingerprint, and with `answer` Veil's role if not resolved yet.
// False when the SDP cannot be used (not DTLS-SRTP, no fingerprint or ufrag, bad a=setup).
bool take_browser_sdp(WebRtcLeg& leg, const WebRtcInfo& sdp, bool answer);

// A client registered through the gateway that answers Veil's WebRTC offer with plain
// RTP/AVP (no DTLS-SRTP: a SIP-over-WebSocket phone that is not a browser): the call goes on
// as a plain RTP call. True only for such an answer to Veil's first offer.
bool keep_plain(const WebRtcLeg& leg, const WebRtcInfo& sdp, bool answer);

// Veil's SDP toward the browser, offer or answer: `rewritten` (rewrite_sdp() for the
// untrusted side) made ICE-lite DTLS-SRTP. a=setup is Veil's role once resolved (an answer
// always has it; a re-offer keeps it so DTLS does not restart), else actpass (Veil's first
// offer). Mids and protocols are those of the browser's last offer, if it made one.
std::string sdp_to_browser(const WebRtcLeg& leg, std::string_view rewritten);
// Veil's SDP toward the PBX: to_plain(). An answer to a PBX offer without a=rtcp-mux
// (`pbx_offered_mux` false) does not carry a=rtcp-mux (RFC 5761 5.1.1).
std::string sdp_to_pbx(std::string_view rewritten, bool answer, bool pbx_offered_mux);

// What the MediaAnchor is told about the browser leg.
WebRtcPlan plan_for(const WebRtcLeg& leg);

// A registration's flow is a browser's when it came through the WebSocket gateway: TCP from
// the SBC's own untrusted address (the gateway's connection to the B2BUA).
bool is_gateway_flow(const Endpoint& source, bool tcp, const IpAddr& sbc_external);

}  // namespace veil::sip
