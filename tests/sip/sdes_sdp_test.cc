// SDES-SRTP SDP (sip/sdes_sdp.h) after rewrite_sdp(), golden-tested: an SRTP phone's offer
// made plain for the PBX (no a=crypto, RTP/AVP: the phone's key never reaches the other
// leg), and the PBX's plain answer made RTP/SAVP with Veil's own key for the phone.
#include "sip/sdes_sdp.h"

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

TEST(SdesSdp, KeyLifetimeAndMkiAccepted) {
  const std::string key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
  auto line = [&](const std::string& params) {
    SdesInfo s = inspect_sdes(crlf("v=0\no=- 1 1 IN IP4 203.0.113.20\ns=-\nc=IN IP4 203.0.113.20\nt=0 0\n"
                                   "m=audio 49170 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" +
                                   key + params + "\n"));
    EXPECT_EQ(s.media.size(), 1u);
    EXPECT_EQ(s.media.at(0).crypto.size(), 1u);
    return s.media.at(0).crypto.at(0);
  };
  std::vector<uint8_t> want;
  ASSERT_TRUE(base64_decode(key, want));
  for (const char* ok : {"", "|2^31", "|2^20", "|1048576"}) {
    SdesCrypto c = line(ok);
    EXPECT_TRUE(c.usable()) << ok;
    EXPECT_EQ(c.master, want) << ok;  // the lifetime is not part of the key
    EXPECT_TRUE(c.mki.empty()) << ok;
  }
  // An MKI (RFC 4568 "value:length", with or without a lifetime) of up to 4 bytes: the value
  // big-endian in that many bytes, what the peer's packets carry.
  struct Mki {
    const char* params;
    std::vector<uint8_t> mki;
  };
  for (const Mki& m : {Mki{"|2^20|1:4", {0, 0, 0, 1}}, Mki{"|1:1", {1}}, Mki{"|2^31|258:2", {1, 2}},
                       Mki{"|4294967295:4", {255, 255, 255, 255}}}) {
    SdesCrypto c = line(m.params);
    EXPECT_TRUE(c.usable()) << m.params;
    EXPECT_EQ(c.master, want) << m.params;
    EXPECT_EQ(c.mki, m.mki) << m.params;
  }
  // An MKI longer than 4 bytes or a value that does not fit, a malformed lifetime or MKI,
  // session parameters: not usable.
  for (const char* bad : {"|1:5", "|256:1", "|1:", "|:1", "|2^20|1:4|x", "|2^20|", "|2^", "|2^x", "|", "|-5",
                          " UNENCRYPTED_SRTP"})
    EXPECT_FALSE(line(bad).usable()) << bad;
}

TEST(SdesSdp, InspectsAPhoneOffer) {
  SdesInfo s = inspect_sdes(crlf(read_golden("sdes_phone_offer.in.sdp")));
  EXPECT_TRUE(s.sdes);
  ASSERT_EQ(s.media.size(), 1u);
  ASSERT_EQ(s.media[0].crypto.size(), 4u);
  EXPECT_EQ(s.media[0].proto, "RTP/SAVP");
  EXPECT_EQ(s.media[0].crypto[0].suite, SdesSuite::Unknown);  // F8 is not supported
  EXPECT_FALSE(s.media[0].crypto[1].usable());                // a 5-byte MKI is refused
  EXPECT_EQ(s.media[0].crypto[1].suite, SdesSuite::AesCm128HmacSha1_80);
  // The first usable line in the offerer's order: tag 3, the 32-bit tag suite.
  const SdesCrypto* c = choose_sdes(s.media[0]);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->tag, 3u);
  EXPECT_EQ(c->suite, SdesSuite::AesCm128HmacSha1_32);
  std::vector<uint8_t> want;
  ASSERT_TRUE(base64_decode("NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj", want));
  EXPECT_EQ(c->master, want);
  EXPECT_EQ(c->master.size(), 30u);
}

TEST(SdesSdp, PlainAndDtlsSdpAreNotSdes) {
  EXPECT_FALSE(inspect_sdes(crlf(read_golden("phone_offer.in.sdp"))).sdes);
  EXPECT_FALSE(inspect_sdes(crlf(read_golden("browser_offer.in.sdp"))).sdes);
  // RTP/AVP with a stray a=crypto is not SDES either (RFC 4568 applies to SAVP only).
  EXPECT_FALSE(inspect_sdes("v=0\r\nm=audio 5 RTP/AVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 "
                            "inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj\r\n").sdes);
}

TEST(SdesSdp, PhoneOfferBecomesPlainForThePbx) {
  std::string out = strip_sdes(rewrite(read_golden("sdes_phone_offer.in.sdp"), "198.51.100.1", 30000));
  EXPECT_EQ(out, crlf(fill(read_golden("sdes_to_pbx.out.sdp"), "198.51.100.1", 30000)));
  EXPECT_EQ(out.find("crypto"), std::string::npos);
  EXPECT_EQ(out.find("inline:"), std::string::npos);
}

TEST(SdesSdp, PbxAnswerGetsVeilsOwnKeyForThePhone) {
  SdesCrypto veil;
  veil.tag = 3;  // the answer echoes the chosen offer line's tag (RFC 4568 7.1.2)
  veil.suite = SdesSuite::AesCm128HmacSha1_32;
  for (uint8_t i = 0; i < 30; ++i) veil.master.push_back(i);
  std::string out =
      add_sdes(rewrite(read_golden("sdes_pbx_answer.in.sdp"), "203.0.113.1", 40000), {veil});
  EXPECT_EQ(out, crlf(fill(read_golden("sdes_answer_to_phone.out.sdp"), "203.0.113.1", 40000)));
}

TEST(SdesSdp, PbxOfferingSdesIsReKeyedPerLeg) {
  // A PBX offering SDES toward Veil: the browser/phone leg gets Veil's key, never the PBX's,
  // and the answer back to the PBX carries another fresh Veil key.
  std::string pbx_offer = crlf(read_golden("sdes_phone_offer.in.sdp"));
  SdesInfo in = inspect_sdes(pbx_offer);
  const SdesCrypto* theirs = choose_sdes(in.media[0]);
  ASSERT_NE(theirs, nullptr);
  SdesCrypto mine = sdes_fresh(theirs->suite, theirs->tag);
  std::string out = add_sdes(rewrite(pbx_offer, "203.0.113.1", 40000), {mine});
  SdesInfo back = inspect_sdes(out);
  ASSERT_TRUE(back.sdes);
  ASSERT_EQ(back.media[0].crypto.size(), 1u);  // only Veil's line: the offered ones are gone
  EXPECT_EQ(back.media[0].crypto[0].master, mine.master);
  for (const SdesCrypto& c : in.media[0].crypto)
    EXPECT_EQ(out.find(c.suite_name + " inline:" + base64_encode(c.master.data(), c.master.size())),
              std::string::npos);
}

TEST(SdesSdp, FreshKeysAreRandomAndSized) {
  SdesCrypto a = sdes_fresh(SdesSuite::AesCm128HmacSha1_80, 1);
  SdesCrypto b = sdes_fresh(SdesSuite::AesCm128HmacSha1_80, 1);
  SdesCrypto g = sdes_fresh(SdesSuite::AeadAes128Gcm, 1);
  EXPECT_EQ(a.master.size(), 30u);
  EXPECT_EQ(g.master.size(), 28u);  // RFC 7714: 16-byte key, 12-byte salt
  EXPECT_NE(a.master, b.master);
  EXPECT_TRUE(a.usable());
  EXPECT_TRUE(g.usable());
}

TEST(SdesSdp, Base64RoundTrips) {
  for (size_t n = 0; n < 34; ++n) {
    std::vector<uint8_t> v;
    for (size_t i = 0; i < n; ++i) v.push_back(uint8_t(i * 37 + 5));
    std::vector<uint8_t> back;
    ASSERT_TRUE(base64_decode(base64_encode(v.data(), v.size()), back)) << n;
    EXPECT_EQ(back, v);
  }
  std::vector<uint8_t> x;
  EXPECT_FALSE(base64_decode("abc", x));
  EXPECT_FALSE(base64_decode("a=bc", x));
  EXPECT_FALSE(base64_decode("ab*c", x));
}

}  // namespace
}  // namespace veil::sip
