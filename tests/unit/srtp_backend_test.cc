// Checks that Veil links the libsrtp2 built by tools/build-srtp.sh (OpenSSL crypto backend) and
// that it protects/unprotects correctly with the two profiles Veil negotiates:
// AES_CM_128_HMAC_SHA1_80 and AEAD_AES_128_GCM.
//
// How the backend is detected: libsrtp registers one "debug module" per crypto implementation
// at srtp_init(), and each backend's source file gives its module a distinct printable name:
//
//   backend    AES-CM module       HMAC-SHA1 module       AES-GCM module
//   OpenSSL    "aes icm ossl"      "hmac sha-1 openssl"   "aes gcm"
//   NSS        "aes icm nss"       "hmac sha-1 nss"       "aes gcm nss"
//   mbedTLS    "aes icm mbedtls"   "hmac sha-1 mbedtls"   "aes gcm mbedtls"
//   built-in   "aes icm"           "hmac sha-1"           (no GCM)
//
// (crypto/cipher/aes_icm_{ossl,nss,mbedtls}.c, crypto/hash/hmac_{ossl,nss,mbedtls}.c in libsrtp
// 2.5.0.) The modules are loaded whether or not debug logging is compiled in, and both
// srtp_set_debug_module() (returns srtp_err_status_fail for an unknown name) and
// srtp_list_debug_modules() (through the log handler) are public API, so this is a reliable
// runtime check. srtp_get_version_string() does not name the backend, and the cipher
// descriptions ("AES-128 counter mode using openssl") are only reachable through the
// uninstalled crypto_kernel.h.
#include <gtest/gtest.h>
#include <srtp2/srtp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

class SrtpEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { ASSERT_EQ(srtp_init(), srtp_err_status_ok); }
  void TearDown() override { srtp_shutdown(); }
};

[[maybe_unused]] ::testing::Environment* const kSrtpEnv =
    ::testing::AddGlobalTestEnvironment(new SrtpEnvironment);

bool HasDebugModule(const char* name) {
  // Setting a module "off" is harmless; the return value tells whether it exists.
  return srtp_set_debug_module(name, 0) == srtp_err_status_ok;
}

TEST(SrtpBackend, IsOpenSsl) {
  EXPECT_TRUE(HasDebugModule("aes icm ossl")) << "AES-CM is not OpenSSL's";
  EXPECT_TRUE(HasDebugModule("hmac sha-1 openssl")) << "HMAC-SHA1 is not OpenSSL's";
  EXPECT_TRUE(HasDebugModule("aes gcm")) << "no OpenSSL AES-GCM";

  for (const char* other : {"aes icm nss", "hmac sha-1 nss", "aes gcm nss", "aes icm mbedtls",
                            "hmac sha-1 mbedtls", "aes gcm mbedtls", "aes icm", "hmac sha-1"}) {
    EXPECT_FALSE(HasDebugModule(other)) << "libsrtp2 has the '" << other
                                        << "' module: not the OpenSSL build "
                                           "(Debian's libsrtp2 is NSS; see docs/dependencies.md)";
  }
}

TEST(SrtpBackend, ListedModulesNameOpenSsl) {
  // srtp_list_debug_modules() reports "debug modules loaded:", then "  <name> " and "(on)"/"(off)"
  // for each module, one log call each.
  std::vector<std::string> lines;
  auto handler = [](srtp_log_level_t, const char* msg, void* data) {
    static_cast<std::vector<std::string>*>(data)->emplace_back(msg);
  };
  ASSERT_EQ(srtp_install_log_handler(handler, &lines), srtp_err_status_ok);
  const srtp_err_status_t st = srtp_list_debug_modules();
  srtp_install_log_handler(nullptr, nullptr);
  ASSERT_EQ(st, srtp_err_status_ok);

  std::vector<std::string> modules;
  std::string all;
  for (const std::string& l : lines) {
    all += l + '\n';
    if (l.rfind("  ", 0) != 0) continue;
    const auto b = l.find_first_not_of(' ');
    const auto e = l.find_last_not_of(' ');
    if (b != std::string::npos) modules.push_back(l.substr(b, e - b + 1));
  }
  auto has = [&](const char* m) { return std::find(modules.begin(), modules.end(), m) != modules.end(); };
  EXPECT_TRUE(has("aes icm ossl")) << all;
  EXPECT_TRUE(has("hmac sha-1 openssl")) << all;
  EXPECT_TRUE(has("aes gcm")) << all;
  for (const std::string& m : modules) {
    const bool nss = m.size() > 4 && m.compare(m.size() - 4, 4, " nss") == 0;
    const bool mbedtls = m.find("mbedtls") != std::string::npos;
    EXPECT_FALSE(nss || mbedtls) << "module '" << m << "' belongs to another crypto backend\n" << all;
  }
}

TEST(SrtpBackend, Version) {
  const std::string v = srtp_get_version_string();
  RecordProperty("libsrtp_version", v);
  EXPECT_EQ(srtp_get_version() >> 24, 2u) << v;
}

// ---------------------------------------------------------------------------------------------
// Protect / unprotect.

enum class Profile { kAesCm128HmacSha1_80, kAeadAes128Gcm };

constexpr std::size_t TagLen(Profile p) { return p == Profile::kAesCm128HmacSha1_80 ? 10 : 16; }

class Session {
 public:
  // key: master key followed by master salt (30 bytes for AES-CM-128, 28 for AES-128-GCM).
  Session(Profile profile, std::vector<std::uint8_t> key, std::uint32_t ssrc) : key_(std::move(key)) {
    srtp_policy_t policy;
    std::memset(&policy, 0, sizeof policy);
    if (profile == Profile::kAesCm128HmacSha1_80) {
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtp);
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtcp);
    } else {
      srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtp);
      srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtcp);
    }
    policy.ssrc.type = ssrc_specific;
    policy.ssrc.value = ssrc;
    policy.key = key_.data();
    policy.window_size = 128;
    policy.allow_repeat_tx = 0;
    status_ = srtp_create(&ctx_, &policy);
  }
  ~Session() {
    if (ctx_ != nullptr) srtp_dealloc(ctx_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  srtp_err_status_t status() const { return status_; }

  // Protects/unprotects buf[0, len) in place; buf must have SRTP_MAX_TRAILER_LEN spare bytes.
  srtp_err_status_t Protect(std::vector<std::uint8_t>& buf, int& len) {
    buf.resize(static_cast<std::size_t>(len) + SRTP_MAX_TRAILER_LEN);
    return srtp_protect(ctx_, buf.data(), &len);
  }
  srtp_err_status_t Unprotect(std::vector<std::uint8_t>& buf, int& len) {
    return srtp_unprotect(ctx_, buf.data(), &len);
  }

 private:
  std::vector<std::uint8_t> key_;
  srtp_t ctx_ = nullptr;
  srtp_err_status_t status_ = srtp_err_status_fail;
};

// Master key || salt from libsrtp's own test/srtp_driver.c (test_key, test_key_gcm).
const std::vector<std::uint8_t> kCmKey = {
    0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41,
    0x39, 0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6};
const std::vector<std::uint8_t> kGcmKey = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
                                           0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0xa0, 0xa1, 0xa2, 0xa3,
                                           0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab};

// RTP header V=2 PT=15 seq=0x1234 ts=0xdecafbad SSRC=0xcafebabe, 16 bytes of 0xab payload.
std::vector<std::uint8_t> ReferencePlaintext() {
  std::vector<std::uint8_t> p = {0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe};
  p.insert(p.end(), 16, 0xab);
  return p;
}

// Known answers from libsrtp's test/srtp_driver.c (srtp_validate, srtp_validate_gcm): checks the
// OpenSSL-backed ciphers and the key derivation produce the bytes every other SRTP stack does.
TEST(SrtpKnownAnswer, AesCm128HmacSha1_80) {
  const std::vector<std::uint8_t> expected = {
      0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0x4e,
      0x55, 0xdc, 0x4c, 0xe7, 0x99, 0x78, 0xd8, 0x8c, 0xa4, 0xd2, 0x15, 0x94, 0x9d,
      0x24, 0x02, 0xb7, 0x8d, 0x6a, 0xcc, 0x99, 0xea, 0x17, 0x9b, 0x8d, 0xbb};
  Session tx(Profile::kAesCm128HmacSha1_80, kCmKey, 0xcafebabe);
  ASSERT_EQ(tx.status(), srtp_err_status_ok);
  std::vector<std::uint8_t> buf = ReferencePlaintext();
  int len = static_cast<int>(buf.size());
  ASSERT_EQ(tx.Protect(buf, len), srtp_err_status_ok);
  ASSERT_EQ(len, static_cast<int>(expected.size()));
  buf.resize(static_cast<std::size_t>(len));
  EXPECT_EQ(buf, expected);

  Session rx(Profile::kAesCm128HmacSha1_80, kCmKey, 0xcafebabe);
  ASSERT_EQ(rx.status(), srtp_err_status_ok);
  ASSERT_EQ(rx.Unprotect(buf, len), srtp_err_status_ok);
  buf.resize(static_cast<std::size_t>(len));
  EXPECT_EQ(buf, ReferencePlaintext());
}

TEST(SrtpKnownAnswer, AeadAes128Gcm) {
  const std::vector<std::uint8_t> expected = {
      0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0xc5, 0x00, 0x2e,
      0xde, 0x04, 0xcf, 0xdd, 0x2e, 0xb9, 0x11, 0x59, 0xe0, 0x88, 0x0a, 0xa0, 0x6e, 0xd2, 0x97,
      0x68, 0x26, 0xf7, 0x96, 0xb2, 0x01, 0xdf, 0x31, 0x31, 0xa1, 0x27, 0xe8, 0xa3, 0x92};
  Session tx(Profile::kAeadAes128Gcm, kGcmKey, 0xcafebabe);
  ASSERT_EQ(tx.status(), srtp_err_status_ok);
  std::vector<std::uint8_t> buf = ReferencePlaintext();
  int len = static_cast<int>(buf.size());
  ASSERT_EQ(tx.Protect(buf, len), srtp_err_status_ok);
  ASSERT_EQ(len, static_cast<int>(expected.size()));
  buf.resize(static_cast<std::size_t>(len));
  EXPECT_EQ(buf, expected);

  Session rx(Profile::kAeadAes128Gcm, kGcmKey, 0xcafebabe);
  ASSERT_EQ(rx.status(), srtp_err_status_ok);
  ASSERT_EQ(rx.Unprotect(buf, len), srtp_err_status_ok);
  buf.resize(static_cast<std::size_t>(len));
  EXPECT_EQ(buf, ReferencePlaintext());
}

// A 172-byte RTP packet (12-byte header + 160 bytes of G.711 20 ms payload).
std::vector<std::uint8_t> RtpPacket(std::uint16_t seq, std::uint32_t ssrc) {
  std::vector<std::uint8_t> p(172);
  p[0] = 0x80;
  p[1] = 0x00;  // PT 0 (PCMU)
  p[2] = static_cast<std::uint8_t>(seq >> 8);
  p[3] = static_cast<std::uint8_t>(seq);
  const std::uint32_t ts = 160u * seq;
  for (int i = 0; i < 4; ++i) {
    p[4 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(ts >> (24 - 8 * i));
    p[8 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(ssrc >> (24 - 8 * i));
  }
  for (std::size_t i = 12; i < p.size(); ++i) p[i] = static_cast<std::uint8_t>(i * 7 + seq);
  return p;
}

class SrtpRoundTrip : public ::testing::TestWithParam<Profile> {
 protected:
  static std::vector<std::uint8_t> Key() {
    return GetParam() == Profile::kAesCm128HmacSha1_80 ? kCmKey : kGcmKey;
  }
  static constexpr std::uint32_t kSsrc = 0x11223344;
};

TEST_P(SrtpRoundTrip, ProtectUnprotectTamperReplay) {
  Session tx(GetParam(), Key(), kSsrc);
  Session rx(GetParam(), Key(), kSsrc);
  ASSERT_EQ(tx.status(), srtp_err_status_ok);
  ASSERT_EQ(rx.status(), srtp_err_status_ok);

  for (std::uint16_t seq = 100; seq < 110; ++seq) {
    SCOPED_TRACE(seq);
    const std::vector<std::uint8_t> plain = RtpPacket(seq, kSsrc);
    std::vector<std::uint8_t> buf = plain;
    int len = static_cast<int>(buf.size());
    ASSERT_EQ(tx.Protect(buf, len), srtp_err_status_ok);
    ASSERT_EQ(static_cast<std::size_t>(len), plain.size() + TagLen(GetParam()));
    buf.resize(static_cast<std::size_t>(len));
    // Header in clear, payload encrypted.
    EXPECT_TRUE(std::equal(plain.begin(), plain.begin() + 12, buf.begin()));
    EXPECT_FALSE(std::equal(plain.begin() + 12, plain.end(), buf.begin() + 12));
    const std::vector<std::uint8_t> srtp = buf;

    // A flipped bit in the tag (odd packets) or in the payload (even ones) fails authentication,
    // and does not consume the sequence number: the genuine packet is still accepted after it.
    std::vector<std::uint8_t> bad = srtp;
    bad[seq % 2 ? bad.size() - 1 : 20] ^= 0x01;
    int bad_len = len;
    EXPECT_EQ(rx.Unprotect(bad, bad_len), srtp_err_status_auth_fail);

    int rx_len = len;
    ASSERT_EQ(rx.Unprotect(buf, rx_len), srtp_err_status_ok);
    buf.resize(static_cast<std::size_t>(rx_len));
    EXPECT_EQ(buf, plain);

    // The same SRTP packet again is a replay.
    std::vector<std::uint8_t> again = srtp;
    int again_len = len;
    EXPECT_EQ(rx.Unprotect(again, again_len), srtp_err_status_replay_fail);
  }
}

INSTANTIATE_TEST_SUITE_P(Profiles, SrtpRoundTrip,
                         ::testing::Values(Profile::kAesCm128HmacSha1_80, Profile::kAeadAes128Gcm),
                         [](const ::testing::TestParamInfo<Profile>& info) {
                           return info.param == Profile::kAesCm128HmacSha1_80
                                      ? std::string("AES_CM_128_HMAC_SHA1_80")
                                      : std::string("AEAD_AES_128_GCM");
                         });

}  // namespace
