#include "sip/webrtc_leg.h"

#include <strings.h>

namespace veil::sip {

namespace {

bool ieq(std::string_view a, const char* b) {
  return a.size() == std::char_traits<char>::length(b) && strncasecmp(a.data(), b, a.size()) == 0;
}

std::string without_rtcp_mux(std::string_view sdp) {
  std::string out;
  size_t pos = 0;
  while (pos < sdp.size()) {
    size_t end = sdp.find('\n', pos);
    size_t next = end == std::string_view::npos ? sdp.size() : end + 1;
    std::string_view l = sdp.substr(pos, next - pos);
    std::string_view bare = l;
    while (!bare.empty() && (bare.back() == '\n' || bare.back() == '\r')) bare.remove_suffix(1);
    if (!ieq(bare, "a=rtcp-mux")) out += l;
    pos = next;
  }
  return out;
}

}  // namespace

std::optional<std::string> answer_setup_for(std::string_view offer_setup) {
  if (offer_setup.empty() || ieq(offer_setup, "actpass") || ieq(offer_setup, "active"))
    return std::string("passive");
  if (ieq(offer_setup, "passive")) return std::string("active");
  return std::nullopt;
}

std::optional<std::string> role_from_answer_setup(std::string_view answer_setup) {
  if (ieq(answer_setup, "active")) return std::string("passive");
  if (ieq(answer_setup, "passive")) return std::string("active");
  return std::nullopt;
}

std::optional<WebRtcLeg> leg_for_browser_offer(const WebRtcInfo& offer, std::string ufrag,
                                               std::string pwd, std::string fingerprint) {
  WebRtcLeg leg;
  leg.browser_offered = true;
  leg.ufrag = std::move(ufrag);
  leg.pwd = std::move(pwd);
  leg.fingerprint = std::move(fingerprint);
  if (!take_browser_sdp(leg, offer, false)) return std::nullopt;
  return leg;
}

WebRtcLeg leg_for_offer_to_browser(std::string ufrag, std::string pwd, std::string fingerprint) {
  WebRtcLeg leg;
  leg.ufrag = std::move(ufrag);
  leg.pwd = std::move(pwd);
  leg.fingerprint = std::move(fingerprint);
  return leg;
}

bool take_browser_sdp(WebRtcLeg& leg, const WebRtcInfo& sdp, bool answer) {
  if (!sdp.webrtc || sdp.fingerprint.empty() || sdp.ice_ufrag.empty()) return false;
  // The role is fixed by the first offer/answer; later ones keep it (no new handshake).
  if (leg.local_setup.empty()) {
    auto role = answer ? role_from_answer_setup(sdp.setup) : answer_setup_for(sdp.setup);
    if (!role) return false;
    leg.local_setup = *role;
  }
  if (!answer) leg.offer_media = sdp.media;
  leg.remote_ufrag = sdp.ice_ufrag;
  leg.remote_fingerprint = sdp.fingerprint;
  return true;
}

bool keep_plain(const WebRtcLeg& leg, const WebRtcInfo& sdp, bool answer) {
  return answer && !leg.browser_offered && leg.local_setup.empty() && !sdp.webrtc;
}

std::string sdp_to_browser(const WebRtcLeg& leg, std::string_view rewritten) {
  WebRtcParams p;
  p.ice_ufrag = leg.ufrag;
  p.ice_pwd = leg.pwd;
  p.fingerprint = leg.fingerprint;
  p.setup = leg.local_setup.empty() ? "actpass" : leg.local_setup;
  p.offer_media = leg.offer_media;
  return to_webrtc(rewritten, p);
}

std::string sdp_to_pbx(std::string_view rewritten, bool answer, bool pbx_offered_mux) {
  std::string plain = to_plain(rewritten);
  if (answer && !pbx_offered_mux) return without_rtcp_mux(plain);
  return plain;
}

WebRtcPlan plan_for(const WebRtcLeg& leg) {
  WebRtcPlan p;
  p.enabled = true;
  p.ice_ufrag = leg.ufrag;
  p.ice_pwd = leg.pwd;
  p.remote_ufrag = leg.remote_ufrag;
  p.remote_fingerprint = leg.remote_fingerprint;
  p.local_setup = leg.local_setup;
  return p;
}

bool is_gateway_flow(const Endpoint& source, bool tcp, const IpAddr& sbc_external) {
  return tcp && source.addr == sbc_external;
}

}  // namespace veil::sip
