// SDP inspection and rewriting for the B2BUA (sofia-sip's SDP parser and printer).
// Pure functions: no sockets, no sofia event loop; golden-tested in tests/sip/.
//
// What the rewrite does (docs/topology-hiding.md has the full table):
//   o=  username "veil", session id/version from the output leg's SdpOrigin (version bumped
//       only when the content sent on that leg changes, RFC 3264 8), SBC address;
//   s=  "-";  i=, u=, e=, p=, k= removed;
//   c=  (session and media level, wherever the input had one) the SBC's address of the
//       output side; m= port = the SBC's allocated port (0 stays 0: disabled stream);
//   a=rtcp  rewritten to port+1 and the SBC's address, removed with a=rtcp-mux;
//   ICE attributes removed (Veil does not do ICE yet; the peer's candidates name its
//       network); any other attribute with an IP address in it is removed;
//   everything else (codecs, rtpmap, fmtp, ptime, direction, rtcp-mux, crypto...) kept.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/addr.h"
#include "sip/sdes_sdp.h"
#include "sip/webrtc_sdp.h"

namespace veil::sip {

// One m-line as the peer described it.
struct SdpStream {
  std::string media;     // "audio", "video", ...
  bool disabled = false;  // port 0
  Endpoint rtp;           // peer's RTP endpoint (invalid when disabled or c= is 0.0.0.0/::)
  Family family = Family::None;  // family of its c= (set even when rtp is invalid)
  bool rtcp_mux = false;
  // On hold: a=sendonly/recvonly/inactive (media level, else session level) or c=0.0.0.0/::.
  // Media is not expected both ways, so the B2BUA does not end the call for idle media.
  bool held = false;
};

struct SdpInfo {
  std::vector<SdpStream> streams;
  WebRtcInfo webrtc;  // what the SDP says about ICE, DTLS-SRTP, BUNDLE (sip/webrtc_sdp.h)
  SdesInfo sdes;      // RTP/SAVP with a=crypto (SDES-SRTP, sip/sdes_sdp.h)
};

enum class SdpError {
  None,
  Parse,               // not SDP, or sofia's parser refused it
  MissingConnection,   // an active m-line with no c= (session or media level)
  UnsupportedAddress,  // c= not IN IP4/IP6 with a literal unicast address
  NoMedia,             // no m-line at all
};
const char* sdp_error_name(SdpError e);

struct SdpInspectResult {
  SdpError error = SdpError::None;
  std::string detail;  // for logs; never sent to a peer
  SdpInfo info;
};

// Parses and validates `sdp`. On any error the B2BUA answers 488.
SdpInspectResult inspect_sdp(std::string_view sdp);

// o= state of one output leg: what Veil has sent on it so far.
struct SdpOrigin {
  uint64_t session_id = 0;  // chosen when the leg is created, stable for its life
  uint64_t version = 0;     // last version sent
  bool sent = false;
  std::string last_body;    // last SDP sent with the o= version blanked (change detection)
};

struct SdpRewriteParams {
  // Per m-line of the input, in order: the SBC's endpoint on the output side. A port of
  // 0 (or an input m-line that is disabled) gives a disabled m-line.
  std::vector<Endpoint> local;
  // Address for o= and c= (the SBC's address on the output side, family included).
  IpAddr sbc_addr;
  // Remove ICE attributes. Always true until Veil terminates ICE itself (ICE-lite,
  // planned): a peer's candidates never make sense on the other side.
  bool strip_ice = true;
};

struct SdpRewriteResult {
  SdpError error = SdpError::None;
  std::string detail;
  std::string sdp;            // the rewritten SDP (CRLF line ends)
  unsigned removed_attrs = 0;  // attributes dropped (ICE, address-carrying)
};

// Rewrites `in` for the output leg described by `params` and `origin`; updates `origin`
// when it succeeds.
SdpRewriteResult rewrite_sdp(std::string_view in, const SdpRewriteParams& params,
                             SdpOrigin& origin);

}  // namespace veil::sip
