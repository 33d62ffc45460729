// Fuzz target for the SDP a peer sends (the untrusted side's offers and answers, the PBX's):
// inspect_sdp, rewrite_sdp, the WebRTC and SDES conversions must never crash, leak or escape
// an exception on any text, and what they produce for the other leg must not carry the
// peer's connection address. The driver (driver_text.cc) mutates a real browser offer or an
// SRTP phone's offer line by line.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "sip/sdes_sdp.h"
#include "sip/sdp_rewrite.h"
#include "sip/webrtc_sdp.h"

unsigned long g_fuzz_reached[4];

using namespace veil;
using namespace veil::sip;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  ++g_fuzz_reached[0];
  // VEIL_FUZZ_LAST=FILE: each input is written there first (the one that crashed stays).
  if (const char* last = std::getenv("VEIL_FUZZ_LAST")) {
    if (FILE* f = std::fopen(last, "wb")) {
      std::fwrite(data, 1, size, f);
      std::fclose(f);
    }
  }
  SdpInspectResult in = inspect_sdp(text);
  // Whatever the verdict, the per-feature views of the same text must be safe too.
  WebRtcInfo w = inspect_webrtc(text);
  SdesInfo s = inspect_sdes(text);
  for (const SdesMedia& m : s.media) (void)choose_sdes(m);
  if (in.error != SdpError::None) {
    if (in.detail.empty()) std::abort();  // every refusal says why (488, logged)
    ++g_fuzz_reached[3];
    return 0;
  }
  SdpRewriteParams p;
  p.sbc_addr = *IpAddr::parse("198.51.100.1");
  for (size_t i = 0; i < in.info.streams.size(); ++i)
    p.local.push_back(Endpoint{p.sbc_addr, uint16_t(30000 + 2 * i)});
  SdpOrigin origin;
  SdpRewriteResult r = rewrite_sdp(text, p, origin);
  if (r.error != SdpError::None) {
    if (r.detail.empty()) std::abort();
    ++g_fuzz_reached[3];
    return 0;
  }
  ++g_fuzz_reached[1];
  // The peer's media addresses never reach the other leg.
  for (const SdpStream& st : in.info.streams) {
    if (!st.rtp.valid() || st.rtp.addr == p.sbc_addr) continue;
    std::string a = st.rtp.addr.str();
    for (const std::string* out : {&r.sdp}) {
      size_t at = out->find(a);
      // A match inside a longer number ("203.0.113.2" in "203.0.113.25") is not the address.
      auto digitish = [](char c) { return (c >= '0' && c <= '9') || c == '.' || c == ':' ||
                                          (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); };
      for (; at != std::string::npos; at = out->find(a, at + 1)) {
        bool before = at > 0 && digitish((*out)[at - 1]);
        bool after = at + a.size() < out->size() && digitish((*out)[at + a.size()]);
        if (!before && !after) std::abort();
      }
    }
  }
  std::string plain = to_plain(r.sdp);
  WebRtcParams wp;
  wp.ice_ufrag = "vEiL";
  wp.ice_pwd = "0123456789abcdefghijklmn";
  wp.fingerprint = "sha-256 AB:CD";
  wp.setup = w.webrtc ? "passive" : "actpass";
  wp.offer_media = w.media;
  std::string browser = to_webrtc(r.sdp, wp);
  std::vector<SdesCrypto> keys;
  for (size_t i = 0; i < in.info.streams.size(); ++i) keys.push_back(sdes_fresh(SdesSuite::AesCm128HmacSha1_80, 1));
  std::string sdes = add_sdes(strip_sdes(r.sdp), keys);
  // Each conversion's output is SDP Veil itself would parse again.
  for (const std::string* o : {&plain, &browser, &sdes})
    if (inspect_sdp(*o).error != SdpError::None) ++g_fuzz_reached[2];
  return 0;
}
