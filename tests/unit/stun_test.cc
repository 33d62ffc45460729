// STUN codec against RFC 5769's published test vectors: parse, MESSAGE-INTEGRITY and
// FINGERPRINT verified, every message rebuilt byte for byte with the Writer; then the ICE-lite
// answer logic (RFC 8445 7.3) on checks built here.
#include "dataplane/stun.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

using namespace veil;
using namespace veil::dp;
using namespace veil::dp::stun;

namespace {

const char kPassword[] = "VOkJxbRl1RmTxUk/WvJxBt";
const uint8_t kTxid[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

// RFC 5769 2.1: sample request (short-term credentials).
const std::vector<uint8_t> kRequest = {
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf};

// 2.2: IPv4 response, 192.0.2.1 port 32853 (bytes only; nothing is sent anywhere).
const std::vector<uint8_t> kResponse4 = {
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96};

// 2.3: IPv6 response, 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
const std::vector<uint8_t> kResponse6 = {
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
    0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14,
    0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75,
    0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c};

// 2.4: request with long-term authentication (USERNAME, NONCE, REALM, MESSAGE-INTEGRITY).
const uint8_t kTxidLt[12] = {0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e};
const std::vector<uint8_t> kRequestLt = {
    0x00, 0x01, 0x00, 0x60, 0x21, 0x12, 0xa4, 0x42, 0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0,
    0x29, 0xda, 0x41, 0x2e, 0x00, 0x06, 0x00, 0x12, 0xe3, 0x83, 0x9e, 0xe3, 0x83, 0x88, 0xe3, 0x83,
    0xaa, 0xe3, 0x83, 0x83, 0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9, 0x00, 0x00, 0x00, 0x15, 0x00, 0x1c,
    0x66, 0x2f, 0x2f, 0x34, 0x39, 0x39, 0x6b, 0x39, 0x35, 0x34, 0x64, 0x36, 0x4f, 0x4c, 0x33, 0x34,
    0x6f, 0x4c, 0x39, 0x46, 0x53, 0x54, 0x76, 0x79, 0x36, 0x34, 0x73, 0x41, 0x00, 0x14, 0x00, 0x0b,
    0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72, 0x67, 0x00, 0x00, 0x08, 0x00, 0x14,
    0xf6, 0x70, 0x24, 0x65, 0x6d, 0xd6, 0x4a, 0x3e, 0x02, 0xb8, 0xe0, 0x71, 0x2e, 0x85, 0xc9, 0xa2,
    0x8c, 0xa8, 0x96, 0x66};
const char kLtUser[] = "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9";

HmacKey short_term_key() {
  HmacKey k;
  hmac_key_init(k, kPassword);
  return k;
}

}  // namespace

TEST(Stun, Rfc5769RequestParsesAndVerifies) {
  Message m;
  ASSERT_EQ(parse(kRequest.data(), uint32_t(kRequest.size()), m), ParseResult::Ok);
  EXPECT_EQ(m.type, kBindingRequest);
  EXPECT_EQ(m.method(), 1);
  EXPECT_EQ(m.cls(), 0);
  EXPECT_EQ(std::memcmp(m.txid, kTxid, 12), 0);
  EXPECT_EQ(m.username(kRequest.data()), "evtj:h6vY");
  EXPECT_TRUE(m.has_priority);
  EXPECT_EQ(m.priority, 0x6e0001ffu);
  EXPECT_TRUE(m.ice_controlled);
  EXPECT_FALSE(m.ice_controlling);
  EXPECT_EQ(m.tiebreaker, 0x932ff9b151263b36ull);
  EXPECT_FALSE(m.use_candidate);
  EXPECT_EQ(m.mi_off, 76);
  EXPECT_EQ(m.fp_off, 100);
  EXPECT_EQ(m.n_unknown, 0);
  EXPECT_TRUE(integrity_ok(kRequest.data(), m, short_term_key()));
  HmacKey wrong;
  hmac_key_init(wrong, "VOkJxbRl1RmTxUk/WvJxBu");
  EXPECT_FALSE(integrity_ok(kRequest.data(), m, wrong));
}

TEST(Stun, Rfc5769RequestRebuiltByteExact) {
  std::vector<uint8_t> out(256, 0xee);
  Writer w(out.data(), uint32_t(out.size()));
  ASSERT_TRUE(w.begin(kBindingRequest, kTxid));
  ASSERT_TRUE(w.add(kAttrSoftware, "STUN test client", 16));
  ASSERT_TRUE(w.add_u32(kAttrPriority, 0x6e0001ff));
  ASSERT_TRUE(w.add_u64(kAttrIceControlled, 0x932ff9b151263b36ull));
  ASSERT_TRUE(w.add(kAttrUsername, "evtj:h6vY", 9, ' '));
  ASSERT_TRUE(w.add_integrity(short_term_key()));
  ASSERT_TRUE(w.add_fingerprint());
  out.resize(w.size());
  EXPECT_EQ(out, kRequest);
}

TEST(Stun, Rfc5769Ipv4ResponseParsesAndRebuilds) {
  Message m;
  ASSERT_EQ(parse(kResponse4.data(), uint32_t(kResponse4.size()), m), ParseResult::Ok);
  EXPECT_EQ(m.type, kBindingSuccess);
  EXPECT_EQ(m.cls(), 2);
  EXPECT_TRUE(integrity_ok(kResponse4.data(), m, short_term_key()));
  Endpoint mapped;
  ASSERT_TRUE(xor_mapped_address(kResponse4.data(), m, mapped));
  EXPECT_EQ(mapped, *Endpoint::parse("192.0.2.1:32853"));

  std::vector<uint8_t> out(128);
  Writer w(out.data(), uint32_t(out.size()));
  ASSERT_TRUE(w.begin(kBindingSuccess, kTxid));
  ASSERT_TRUE(w.add(kAttrSoftware, "test vector", 11, ' '));
  ASSERT_TRUE(w.add_xor_address(kAttrXorMappedAddress, mapped));
  ASSERT_TRUE(w.add_integrity(short_term_key()));
  ASSERT_TRUE(w.add_fingerprint());
  out.resize(w.size());
  EXPECT_EQ(out, kResponse4);
}

TEST(Stun, Rfc5769Ipv6ResponseParsesAndRebuilds) {
  Message m;
  ASSERT_EQ(parse(kResponse6.data(), uint32_t(kResponse6.size()), m), ParseResult::Ok);
  EXPECT_TRUE(integrity_ok(kResponse6.data(), m, short_term_key()));
  Endpoint mapped;
  ASSERT_TRUE(xor_mapped_address(kResponse6.data(), m, mapped));
  EXPECT_EQ(mapped, *Endpoint::parse("[2001:db8:1234:5678:11:2233:4455:6677]:32853"));

  std::vector<uint8_t> out(128);
  Writer w(out.data(), uint32_t(out.size()));
  ASSERT_TRUE(w.begin(kBindingSuccess, kTxid));
  ASSERT_TRUE(w.add(kAttrSoftware, "test vector", 11, ' '));
  ASSERT_TRUE(w.add_xor_address(kAttrXorMappedAddress, mapped));
  ASSERT_TRUE(w.add_integrity(short_term_key()));
  ASSERT_TRUE(w.add_fingerprint());
  out.resize(w.size());
  EXPECT_EQ(out, kResponse6);
}

TEST(Stun, Rfc5769LongTermRequest) {
  Message m;
  ASSERT_EQ(parse(kRequestLt.data(), uint32_t(kRequestLt.size()), m), ParseResult::Ok);
  EXPECT_EQ(m.username(kRequestLt.data()), kLtUser);
  EXPECT_EQ(m.fp_off, 0);
  // Long-term key: MD5(username ":" realm ":" SASLprep(password)) (RFC 5389 15.4).
  std::string material = std::string(kLtUser) + ":example.org:TheMatrIX";
  uint8_t md5[16];
  unsigned md5_len = 0;
  ASSERT_EQ(EVP_Digest(material.data(), material.size(), md5, &md5_len, EVP_md5(), nullptr), 1);
  HmacKey k;
  hmac_key_init(k, md5, md5_len);
  EXPECT_TRUE(integrity_ok(kRequestLt.data(), m, k));

  std::vector<uint8_t> out(128);
  Writer w(out.data(), uint32_t(out.size()));
  ASSERT_TRUE(w.begin(kBindingRequest, kTxidLt));
  ASSERT_TRUE(w.add(kAttrUsername, kLtUser, 18));
  ASSERT_TRUE(w.add(kAttrNonce, "f//499k954d6OL34oL9FSTvy64sA", 28));
  ASSERT_TRUE(w.add(kAttrRealm, "example.org", 11));
  ASSERT_TRUE(w.add_integrity(k));
  out.resize(w.size());
  EXPECT_EQ(out, kRequestLt);
}

TEST(Stun, FingerprintAndFramingErrors) {
  Message m;
  auto bad = kRequest;
  bad.back() ^= 1;
  EXPECT_EQ(parse(bad.data(), uint32_t(bad.size()), m), ParseResult::BadFingerprint);
  bad = kRequest;
  bad[30] ^= 1;  // inside SOFTWARE: the fingerprint no longer matches
  EXPECT_EQ(parse(bad.data(), uint32_t(bad.size()), m), ParseResult::BadFingerprint);
  bad = kRequest;
  bad[4] = 0;  // no magic cookie
  EXPECT_EQ(parse(bad.data(), uint32_t(bad.size()), m), ParseResult::NotStun);
  bad = kRequest;
  bad[0] = 0x80;  // RTP's first bits
  EXPECT_EQ(parse(bad.data(), uint32_t(bad.size()), m), ParseResult::NotStun);
  // Header length disagreeing with the datagram.
  EXPECT_EQ(parse(kRequest.data(), uint32_t(kRequest.size() - 4), m), ParseResult::NotStun);
  bad = kRequest;
  bad[23] = 0x40;  // SOFTWARE claims 64 bytes: runs past the message
  EXPECT_EQ(parse(bad.data(), uint32_t(bad.size()), m), ParseResult::Malformed);
  // Attribute after FINGERPRINT.
  bad = kRequest;
  for (uint8_t b : {0x80, 0x22, 0x00, 0x00}) bad.push_back(b);
  bad[3] = uint8_t(bad.size() - 20);
  EXPECT_EQ(parse(bad.data(), uint32_t(bad.size()), m), ParseResult::Malformed);
  EXPECT_EQ(crc32(reinterpret_cast<const uint8_t*>("123456789"), 9), 0xcbf43926u);
}

// One-shot HMAC() from OpenSSL and the prepared key agree; the timing is printed for the
// design notes (docs/architecture.md), not asserted.
TEST(Stun, PreparedHmacMatchesOneShotHmac) {
  HmacKey k = short_term_key();
  uint8_t a[20], b[20];
  unsigned blen = 0;
  hmac_sha1(k, kRequest.data(), 76, nullptr, 0, a);
  ASSERT_NE(HMAC(EVP_sha1(), kPassword, int(strlen(kPassword)), kRequest.data(), 76, b, &blen), nullptr);
  ASSERT_EQ(blen, 20u);
  EXPECT_EQ(std::memcmp(a, b, 20), 0);
  constexpr int kN = 20000;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kN; ++i) hmac_sha1(k, kRequest.data(), 76, nullptr, 0, a);
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < kN; ++i)
    HMAC(EVP_sha1(), kPassword, int(strlen(kPassword)), kRequest.data(), 76, b, &blen);
  auto t2 = std::chrono::steady_clock::now();
  auto ns = [](auto d) { return double(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()) / kN; };
  std::printf("HMAC-SHA1 over 76 bytes: prepared key %.0f ns, OpenSSL HMAC() one-shot %.0f ns\n",
              ns(t1 - t0), ns(t2 - t1));
}

// --- ICE-lite answers (RFC 8445 7.3) ---

namespace {

struct Check {
  std::string username = "veil:brow";
  std::string password = "0123456789abcdefghijkl";  // the *local* (Veil's) password signs checks
  bool priority = true, use_candidate = false, controlling = true, controlled = false;
  bool integrity = true, fingerprint = true;
  uint16_t unknown_attr = 0;
  uint16_t type = kBindingRequest;
};

std::vector<uint8_t> build_check(const Check& c) {
  std::vector<uint8_t> b(512);
  Writer w(b.data(), uint32_t(b.size()));
  const uint8_t txid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  w.begin(c.type, txid);
  if (!c.username.empty()) w.add(kAttrUsername, c.username.data(), uint16_t(c.username.size()));
  if (c.priority) w.add_u32(kAttrPriority, 0x7e7f00ff);
  if (c.controlling) w.add_u64(kAttrIceControlling, 0x1122334455667788ull);
  if (c.controlled) w.add_u64(kAttrIceControlled, 0x1122334455667788ull);
  if (c.use_candidate) w.add(kAttrUseCandidate, nullptr, 0);
  if (c.unknown_attr) w.add_u32(c.unknown_attr, 0);
  if (c.integrity) {
    HmacKey k;
    hmac_key_init(k, c.password);
    w.add_integrity(k);
  }
  if (c.fingerprint) w.add_fingerprint();
  b.resize(w.size());
  return b;
}

IceCreds creds() {
  IceCreds c;
  EXPECT_TRUE(ice_creds_init(c, "veil", "0123456789abcdefghijkl", "brow"));
  return c;
}

struct Reply {
  CheckVerdict v;
  std::vector<uint8_t> msg;
  bool use_candidate;
};

Reply answer(const std::vector<uint8_t>& req, const Endpoint& src) {
  std::vector<uint8_t> buf(req);
  buf.resize(512);
  uint32_t out_len = 0;
  bool uc = false;
  IceCreds c = creds();
  CheckVerdict v = answer_binding(buf.data(), uint32_t(req.size()), uint32_t(buf.size()), src, c,
                                  out_len, uc);
  buf.resize(out_len);
  return {v, buf, uc};
}

}  // namespace

TEST(IceLite, SuccessResponseCarriesMappedAddressIntegrityFingerprint) {
  Check c;
  c.use_candidate = true;
  auto src = *Endpoint::parse("[2001:db8:5::7]:51234");
  Reply a = answer(build_check(c), src);
  ASSERT_EQ(a.v, CheckVerdict::Success);
  EXPECT_TRUE(a.use_candidate);
  Message m;
  ASSERT_EQ(parse(a.msg.data(), uint32_t(a.msg.size()), m), ParseResult::Ok);
  EXPECT_EQ(m.type, kBindingSuccess);
  const uint8_t txid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  EXPECT_EQ(std::memcmp(m.txid, txid, 12), 0);
  HmacKey k;
  hmac_key_init(k, "0123456789abcdefghijkl");
  EXPECT_TRUE(integrity_ok(a.msg.data(), m, k));
  EXPECT_NE(m.fp_off, 0);
  Endpoint mapped;
  ASSERT_TRUE(xor_mapped_address(a.msg.data(), m, mapped));
  EXPECT_EQ(mapped, src);
  // Exactly XOR-MAPPED-ADDRESS (v6: 24), MESSAGE-INTEGRITY (24), FINGERPRINT (8).
  EXPECT_EQ(a.msg.size(), 20u + 24 + 24 + 8);
}

TEST(IceLite, ErrorsAndIgnoredMessages) {
  auto src = *Endpoint::parse("203.0.113.10:4000");
  auto code_of = [](const Reply& a) {
    Message m;
    EXPECT_EQ(parse(a.msg.data(), uint32_t(a.msg.size()), m), ParseResult::Ok);
    EXPECT_EQ(m.type, kBindingError);
    EXPECT_NE(m.fp_off, 0);
    return std::pair<uint16_t, bool>(m.error_code, m.mi_off != 0);
  };
  Check c;
  c.password = "wrongpasswordwrongpass";
  Reply a = answer(build_check(c), src);
  EXPECT_EQ(a.v, CheckVerdict::Unauthorized);
  EXPECT_EQ(code_of(a), std::make_pair(uint16_t(401), false));

  c = Check{};
  c.username = "other:brow";
  a = answer(build_check(c), src);
  EXPECT_EQ(a.v, CheckVerdict::Unauthorized);
  c.username = "veil:someone";  // the remote fragment is checked too
  EXPECT_EQ(answer(build_check(c), src).v, CheckVerdict::Unauthorized);

  c = Check{};
  c.integrity = false;
  a = answer(build_check(c), src);
  EXPECT_EQ(a.v, CheckVerdict::BadRequest);
  EXPECT_EQ(code_of(a), std::make_pair(uint16_t(400), false));
  EXPECT_LE(a.msg.size(), build_check(c).size());
  // A bare request (no USERNAME, no MI): a 400 would be larger than it; not answered.
  c = Check{};
  c.username.clear();
  c.integrity = false;
  c.priority = c.controlling = false;
  EXPECT_EQ(build_check(c).size(), 28u);
  EXPECT_EQ(answer(build_check(c), src).v, CheckVerdict::Invalid);

  c = Check{};
  c.controlling = false;
  c.controlled = true;
  a = answer(build_check(c), src);
  EXPECT_EQ(a.v, CheckVerdict::ErrorSigned);
  EXPECT_EQ(code_of(a), std::make_pair(uint16_t(487), true));

  c = Check{};
  c.unknown_attr = 0x0031;  // comprehension-required, unknown
  a = answer(build_check(c), src);
  EXPECT_EQ(a.v, CheckVerdict::ErrorSigned);
  EXPECT_EQ(code_of(a), std::make_pair(uint16_t(420), true));

  c = Check{};
  c.priority = false;
  a = answer(build_check(c), src);
  EXPECT_EQ(a.v, CheckVerdict::BadRequest);
  EXPECT_EQ(code_of(a), std::make_pair(uint16_t(400), true));

  c = Check{};
  c.fingerprint = false;
  EXPECT_EQ(answer(build_check(c), src).v, CheckVerdict::Ignore);
  c = Check{};
  c.type = kBindingIndication;
  EXPECT_EQ(answer(build_check(c), src).v, CheckVerdict::Ignore);
  auto corrupt = build_check(Check{});
  corrupt[corrupt.size() - 1] ^= 0x55;
  EXPECT_EQ(answer(corrupt, src).v, CheckVerdict::Invalid);
}

TEST(IceLite, CredentialLimits) {
  IceCreds c;
  EXPECT_FALSE(ice_creds_init(c, "", "pwd", ""));
  EXPECT_FALSE(ice_creds_init(c, "u", "", ""));
  EXPECT_FALSE(ice_creds_init(c, std::string(64, 'u'), "pwd", ""));
  EXPECT_TRUE(ice_creds_init(c, "u", "pwd", ""));
  // No remote fragment known: any "<local>:<something>" is accepted.
  Check k;
  k.username = "u:anything";
  k.password = "pwd";
  auto req = build_check(k);
  std::vector<uint8_t> buf(req);
  buf.resize(256);
  uint32_t out_len;
  bool uc;
  EXPECT_EQ(answer_binding(buf.data(), uint32_t(req.size()), 256, *Endpoint::parse("203.0.113.9:1"),
                           c, out_len, uc),
            CheckVerdict::Success);
  // The answer does not fit: nothing is claimed as sent.
  buf.assign(req.begin(), req.end());
  EXPECT_EQ(answer_binding(buf.data(), uint32_t(req.size()), 40, *Endpoint::parse("203.0.113.9:1"),
                           c, out_len, uc),
            CheckVerdict::Invalid);
}

// The worker's cost per check (verify + answer in place), printed for the design notes.
TEST(IceLite, AnswerCostMeasured) {
  Check c;
  c.use_candidate = true;
  auto req = build_check(c);
  IceCreds cr = creds();
  auto src = *Endpoint::parse("203.0.113.10:4000");
  std::vector<uint8_t> buf(512);
  constexpr int kN = 20000;
  uint32_t out_len = 0;
  bool uc = false;
  int ok = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kN; ++i) {
    std::memcpy(buf.data(), req.data(), req.size());
    ok += answer_binding(buf.data(), uint32_t(req.size()), 512, src, cr, out_len, uc) ==
          CheckVerdict::Success;
  }
  auto t1 = std::chrono::steady_clock::now();
  EXPECT_EQ(ok, kN);
  std::printf("ICE-lite check of %zu bytes verified and answered in place: %.0f ns\n", req.size(),
              double(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()) / kN);
}
