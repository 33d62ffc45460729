// SDP for a WebRTC leg (issue 5): what a browser's SDP says about ICE, DTLS-SRTP, BUNDLE and
// mids, and the two conversions the B2BUA needs around sip/sdp_rewrite.h:
//   to_plain():  a browser's offer or answer, already rewritten for the trusted side by
//                rewrite_sdp(), made plain RTP/AVP for the PBX: no DTLS, ICE, BUNDLE, mid,
//                msid, ssrc, header extensions or transport-wide feedback;
//   to_webrtc(): an SDP rewritten for the untrusted side by rewrite_sdp(), made what a
//                browser accepts from Veil as an ICE-lite, DTLS-SRTP endpoint: the offer's
//                transport protocol and mids, Veil's ICE credentials, one host candidate per
//                m-line (Veil's own address and port), Veil's certificate fingerprint and
//                DTLS role, rtcp-mux.
// Pure text functions on SDP that sofia-sip's parser has already accepted (rewrite_sdp's
// output): CRLF lines in, CRLF lines out. Golden-tested in tests/sip/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/addr.h"

namespace veil::sip {

struct WebRtcMedia {
  std::string media;   // "audio", "video", ...
  std::string proto;   // "UDP/TLS/RTP/SAVPF", ...
  std::string mid;     // a=mid (empty if none)
  bool rtcp_mux = false;
  bool disabled = false;  // port 0
  std::vector<uint8_t> pts;  // RTP payload types of the m= line's format list (0-127)
};

// A set of RTP payload types (bit pt of a 128-bit set), as the dataplane's BUNDLE demux
// takes it (dp::FlowSpec::bundle_pts).
struct PtSet {
  uint64_t bits[2] = {0, 0};
  void add(uint8_t pt) { if (pt < 128) bits[pt >> 6] |= uint64_t(1) << (pt & 63); }
  void add(const std::vector<uint8_t>& pts) { for (uint8_t pt : pts) add(pt); }
  void add(const PtSet& o) { bits[0] |= o.bits[0]; bits[1] |= o.bits[1]; }
  bool has(uint8_t pt) const { return pt < 128 && ((bits[pt >> 6] >> (pt & 63)) & 1); }
  bool empty() const { return (bits[0] | bits[1]) == 0; }
  bool overlaps(const PtSet& o) const { return (bits[0] & o.bits[0]) | (bits[1] & o.bits[1]); }
  bool operator==(const PtSet&) const = default;
};

// BUNDLE demultiplexing needs the payload types of the bundled m-lines to be disjoint
// (RFC 8843 9.1): true when two of `sets` share one. Veil does not fall back to SSRC demux:
// the B2BUA refuses such a bundle with 488 (docs/topology-hiding.md, "BUNDLE").
bool pt_sets_overlap(const std::vector<PtSet>& sets);
// A compact text form for logs and veilctl: "0,8,96-100,111".
std::string pt_set_str(const PtSet& s);

struct WebRtcInfo {
  bool webrtc = false;       // the SDP asks for DTLS-SRTP (UDP/TLS/RTP/SAVP[F] or a=fingerprint)
  std::string ice_ufrag, ice_pwd;           // session level, else the first m-line's
  std::string fingerprint;                  // "sha-256 AB:CD:...", session or first m-line
  std::string setup;                        // actpass / active / passive ("" if absent)
  bool ice_lite = false;
  std::vector<std::string> bundle;          // mids of a=group:BUNDLE, in order
  std::vector<WebRtcMedia> media;           // per m-line
};

WebRtcInfo inspect_webrtc(std::string_view sdp);

// The payload types per m-line of a WebRTC call's BUNDLE (docs/architecture.md "BUNDLE"): each
// active m-line of `sdp` with its m= formats, united with `prior[i]` (the offer's sets, when
// `sdp` is the answer; empty for an offer). `head`: the first active m-line, or -1 when fewer
// than two are active (no bundle: nothing to demultiplex). `overlap`: two active m-lines
// share a payload type (the B2BUA answers 488 / refuses the answer). Disabled m-lines get an
// empty set.
struct BundlePtMap {
  int head = -1;
  bool overlap = false;
  std::vector<PtSet> pts;  // per m-line of `sdp`
};
BundlePtMap bundle_pt_map(const WebRtcInfo& sdp, const std::vector<PtSet>& prior = {});

// Plain RTP/AVP SDP for the trusted side (see above). `rewritten` is rewrite_sdp()'s output.
std::string to_plain(std::string_view rewritten);

struct WebRtcParams {
  std::string ice_ufrag, ice_pwd;  // Veil's, for this call's browser leg
  std::string fingerprint;         // Veil's certificate: "sha-256 AB:CD:..."
  std::string setup;               // "passive" in an answer to actpass, "actpass" in an offer
  // Per m-line (rewrite_sdp's order): the mid and protocol to use. From the browser's offer
  // when answering it; empty when Veil makes the offer ("0", "1", ... and UDP/TLS/RTP/SAVPF).
  std::vector<WebRtcMedia> offer_media;
  bool bundle = true;              // a=group:BUNDLE over the active m-lines' mids
  // With `bundle` and more than one active m-line: every bundled m-line carries the first
  // active m-line's port, c= address and candidate (RFC 8843 7.3.3 / 8: the tagged
  // m-line's port in an answer; the same port in all bundled m-lines of Veil's offer).
};

// The browser-facing SDP (see above). `rewritten` is rewrite_sdp()'s output for the
// untrusted side: its c= and m= ports are Veil's candidate.
std::string to_webrtc(std::string_view rewritten, const WebRtcParams& p);

}  // namespace veil::sip
