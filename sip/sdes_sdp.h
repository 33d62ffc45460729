// SDES-SRTP (RFC 4568) in SDP for SIP phones and PBXs that offer RTP/SAVP with a=crypto:
//   inspect_sdes(): the a=crypto lines of each m-line (tag, suite, master key || salt);
//   choose_sdes():  the first offered line whose suite Veil supports (offer order = the
//                   offerer's preference, RFC 4568 7.1.1);
//   strip_sdes():   an SDP made plain RTP/AVP for the other leg: RTP/SAVP -> RTP/AVP
//                   (SAVPF -> AVPF), no a=crypto;
//   add_sdes():     an SDP made RTP/SAVP with one a=crypto line per active m-line carrying
//                   Veil's own key for that leg (never the peer's: each leg is keyed apart).
// Pure text functions on rewrite_sdp()'s output (CRLF lines). Golden-tested in
// tests/sip/sdes_sdp_test.cc. The key material is held in SdesCrypto only; nothing here logs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace veil::sip {

// Suites Veil does (the dataplane's dp::SrtpProfile names).
enum class SdesSuite : uint8_t { Unknown, AesCm128HmacSha1_80, AesCm128HmacSha1_32, AeadAes128Gcm };
const char* sdes_suite_name(SdesSuite s);
SdesSuite sdes_suite_parse(std::string_view name);
// Master key + salt bytes: 30 for AES-CM-128, 28 for AEAD_AES_128_GCM (RFC 7714 12), 0 else.
unsigned sdes_master_len(SdesSuite s);

struct SdesCrypto {
  unsigned tag = 0;
  SdesSuite suite = SdesSuite::Unknown;
  std::string suite_name;     // as written in the SDP
  std::vector<uint8_t> master;  // key || salt, decoded from inline: (empty if malformed)
  std::vector<uint8_t> mki;     // the MKI its packets carry ("|N:L": N in L bytes), empty: none
  bool usable() const {
    return suite != SdesSuite::Unknown && master.size() == sdes_master_len(suite);
  }
};

struct SdesMedia {
  std::string proto;                // "RTP/SAVP", ...
  bool disabled = false;            // port 0
  std::vector<SdesCrypto> crypto;   // in SDP order
};

struct SdesInfo {
  bool sdes = false;  // some m-line is RTP/SAVP[F] with a=crypto (and no DTLS fingerprint)
  std::vector<SdesMedia> media;  // per m-line
};

SdesInfo inspect_sdes(std::string_view sdp);

// The first usable a=crypto line of `m` (nullptr if none): lifetime/MKI parameters beyond
// the key are refused (a line with "|" in its key-params or session params is skipped).
const SdesCrypto* choose_sdes(const SdesMedia& m);

std::string strip_sdes(std::string_view sdp);

// One entry per m-line (rewrite_sdp's order); an entry with suite Unknown leaves its m-line
// plain (e.g. disabled lines).
std::string add_sdes(std::string_view sdp, const std::vector<SdesCrypto>& per_mline);

// A fresh crypto attribute for `suite` with `tag`: key from the kernel's CSPRNG.
SdesCrypto sdes_fresh(SdesSuite suite, unsigned tag);

std::string base64_encode(const uint8_t* p, size_t n);
bool base64_decode(std::string_view s, std::vector<uint8_t>& out);

}  // namespace veil::sip
