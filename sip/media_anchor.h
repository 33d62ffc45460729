// The seam between the B2BUA and the media plane. The B2BUA decides which SBC endpoints a
// call uses and where the peers are; an implementation (the dataplane's FlowTable in veild,
// a recording fake in tests) allocates the ports and installs the flows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/addr.h"
#include "sip/sdes_sdp.h"
#include "sip/webrtc_sdp.h"

namespace veil::sip {

// Side numbers used throughout sip/: the untrusted side and the trusted side.
inline constexpr int kExternal = 0;
inline constexpr int kInternal = 1;

// One side of one media stream: the SBC's own RTP endpoint there (RTCP = port + 1) and
// the peer's RTP endpoint as that side's SDP says (invalid while not known yet, e.g. the
// answering side before its answer).
struct MediaLeg {
  Endpoint sbc_local;
  Endpoint remote;
};

// The untrusted leg of a stream is a browser (issue 5): ICE-lite, DTLS-SRTP, rtcp-mux on
// that leg; the trusted leg stays plain RTP. What the anchor needs per stream
// (sip/webrtc_leg.h fills it from the SDP both ways).
struct WebRtcPlan {
  bool enabled = false;
  std::string ice_ufrag, ice_pwd;  // Veil's, as in its SDP toward the browser
  std::string remote_ufrag;        // the browser's a=ice-ufrag (empty until its SDP is known)
  std::string remote_fingerprint;  // the browser's a=fingerprint ("sha-256 AB:CD:...")
  // Veil's DTLS role as its SDP says: "active" (client) or "passive" (server); empty while
  // unresolved (Veil offered actpass, the browser has not answered yet): no DTLS session yet.
  std::string local_setup;
  // BUNDLE (RFC 9143): with more than one active m-line the browser leg is one 5-tuple, the
  // first active m-line's (Veil's port there). bundle_head: the plan id of that m-line's
  // stream (0: not bundled; == MediaStreamPlan::id: this stream is the head, whose ICE flow
  // receives and demultiplexes everything). pts: this m-line's RTP payload types (union of
  // both sides' SDP; disjoint from the other bundled m-lines', checked by the B2BUA).
  uint32_t bundle_head = 0;
  PtSet pts;
};

// SDES-SRTP (RFC 4568) on one leg of a stream: the peer's key (what Veil unprotects with,
// empty while the peer has not answered Veil's SDES offer yet: its SRTP is dropped, never
// relayed) and Veil's own key for that leg (what Veil protects with; never the other leg's
// peer's). suite Unknown: that leg is plain RTP (or DTLS-SRTP, see WebRtcPlan).
struct SdesPlan {
  SdesSuite suite = SdesSuite::Unknown;
  std::vector<uint8_t> remote, local;  // master key || salt
  std::vector<uint8_t> remote_mki;     // the MKI the peer's packets carry (empty: none)
  bool enabled() const { return suite != SdesSuite::Unknown; }
};

// Everything needed to relay one m-line: RTP and RTCP, both directions.
struct MediaStreamPlan {
  uint32_t id = 0;  // unique while the stream exists
  MediaLeg ext, in;
  // RTCP shares the RTP port on both legs. With `webrtc` the browser leg always muxes and
  // this says what the trusted leg agreed to.
  bool rtcp_mux = false;
  WebRtcPlan webrtc;
  SdesPlan sdes[2];  // by side (kExternal, kInternal)
};

class MediaAnchor {
 public:
  virtual ~MediaAnchor() = default;
  // An even RTP port (RTCP = +1) on `side` (kExternal, kInternal) of family `fam`;
  // nullopt when the range is exhausted (the B2BUA answers 503).
  virtual std::optional<Endpoint> allocate(int side, Family fam) = 0;
  virtual void release(int side, const Endpoint& local) = 0;
  // Installs or updates the four flows (RTP and RTCP, both directions) of one m-line.
  // Called again with the same id when a remote becomes known or changes.
  virtual bool program(const MediaStreamPlan& plan) = 0;
  // Removes the flows of `id`; a no-op for an id that was never programmed.
  virtual void remove(uint32_t id) = 0;
  // WebRTC (issue 5): Veil's DTLS certificate fingerprint ("sha-256 AB:CD:...") for
  // a=fingerprint; empty when this anchor cannot terminate DTLS-SRTP (the B2BUA then refuses
  // a browser's offer with 488 and offers browsers plain SDP).
  virtual std::string dtls_fingerprint() const { return {}; }
  // Fresh ICE credentials (ufrag, password) for one call's browser leg.
  virtual std::pair<std::string, std::string> ice_credentials() { return {}; }
};

}  // namespace veil::sip
