// SRTP against published vectors, and Veil's per-flow SRTP sessions (dataplane/srtp_session.h).
//
// - RFC 3711 B.2 (AES-CM keystream): libsrtp2's own AES-ICM cipher (OpenSSL) with the session
//   key and salt of the appendix.
// - RFC 3711 B.3 (key derivation): the KDF written here on OpenSSL's AES, checked against the
//   appendix; then libsrtp2's srtp_protect with a master key is checked byte for byte against a
//   packet built here from the derived session keys (AES-CM with EVP, HMAC-SHA1), which ties
//   libsrtp2's KDF, cipher and tag to the vectors.
// - RFC 7714 16.1.1 / 17.1 (AEAD_AES_128_GCM SRTP and SRTCP): libsrtp2's AES-GCM cipher with the
//   session key and salt of the RFC: encrypt gives the published ciphertext and tag, decrypt
//   restores the plaintext, a flipped bit fails. The RFC gives session keys (libsrtp2's session
//   API only takes master keys), so the same construction is then checked against srtp_protect
//   with a master key and the KDF of RFC 7714 12 / RFC 3711 4.3.
// - Round trips, tamper, replay, missing keys, trailer room and the SSRC cap through
//   veil::dp::srtp_session_* for all three profiles, RTP and RTCP.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <srtp2/auth.h>
#include <srtp2/cipher.h>
#include <srtp2/srtp.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dataplane/srtp_gcm.h"
#include "dataplane/srtp_hmac.h"
#include "dataplane/srtp_icm.h"
#include "dataplane/srtp_session.h"

// Counts allocations in a window (glibc: a program may define malloc; this one forwards to
// glibc's own). Used to show that a packet costs no allocation.
// Not under AddressSanitizer, which interposes malloc itself.
namespace {
std::atomic<bool> g_count_allocs{false};
std::atomic<unsigned long> g_allocs{0};
}  // namespace
#ifndef __SANITIZE_ADDRESS__
extern "C" void* __libc_malloc(size_t);
extern "C" void* malloc(size_t n) {
  if (g_count_allocs.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
#define VEIL_COUNTS_ALLOCS 1
#endif

// libsrtp2's cipher types (crypto/cipher/aes_icm_ossl.c, aes_gcm_ossl.c); exported by the
// library, declared only in its uninstalled crypto_kernel headers.
extern "C" {
extern const srtp_cipher_type_t srtp_aes_icm_128;
extern const srtp_cipher_type_t srtp_aes_gcm_128;
}

using namespace veil::dp;
using Bytes = std::vector<uint8_t>;

namespace {

class SrtpEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { ASSERT_EQ(srtp_init(), srtp_err_status_ok); }
};
[[maybe_unused]] ::testing::Environment* const kEnv =
    ::testing::AddGlobalTestEnvironment(new SrtpEnvironment);

Bytes hex(const std::string& s) {
  Bytes out;
  std::string digits;
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c))) digits += c;
  for (size_t i = 0; i + 1 < digits.size(); i += 2) out.push_back(uint8_t(std::stoul(digits.substr(i, 2), nullptr, 16)));
  return out;
}
Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// AES-128 in counter mode from a 16-byte initial counter block (EVP, big-endian increment
// of the whole block, as RFC 3711 4.1.1 uses for at most 2^16 blocks).
Bytes aes_ctr(const Bytes& key, const Bytes& iv, const Bytes& in) {
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  Bytes out(in.size());
  int n = 0;
  EXPECT_EQ(EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), nullptr, key.data(), iv.data()), 1);
  EXPECT_EQ(EVP_EncryptUpdate(c, out.data(), &n, in.data(), int(in.size())), 1);
  EVP_CIPHER_CTX_free(c);
  return out;
}

// RFC 3711 4.3.1 / 4.3.3 with key_derivation_rate 0: x = label || r(=0) XOR master salt,
// keystream = AES-CM(master key, x * 2^16). A 12-byte (AEAD) master salt is zero-padded to 14
// bytes first (RFC 7714 12).
Bytes kdf(const Bytes& master_key, Bytes master_salt, uint8_t label, size_t len) {
  master_salt.resize(14, 0);
  Bytes iv(16, 0);
  std::memcpy(iv.data(), master_salt.data(), 14);
  iv[7] ^= label;
  return aes_ctr(master_key, iv, Bytes(len, 0));
}

// The SRTP packet RFC 3711 defines for AES-CM + HMAC-SHA1, built here from session keys.
Bytes cm_protect(const Bytes& key, const Bytes& salt, const Bytes& auth, const Bytes& rtp, uint32_t roc,
                 size_t tag_len) {
  uint32_t ssrc = uint32_t(rtp[8]) << 24 | uint32_t(rtp[9]) << 16 | uint32_t(rtp[10]) << 8 | rtp[11];
  uint64_t index = uint64_t(roc) << 16 | uint32_t(rtp[2] << 8 | rtp[3]);
  Bytes iv(16, 0);
  std::memcpy(iv.data(), salt.data(), 14);
  for (int i = 0; i < 4; ++i) iv[4 + i] ^= uint8_t(ssrc >> (24 - 8 * i));
  for (int i = 0; i < 6; ++i) iv[8 + i] ^= uint8_t(index >> (40 - 8 * i));
  Bytes out(rtp.begin(), rtp.begin() + 12);
  out = cat(out, aes_ctr(key, iv, Bytes(rtp.begin() + 12, rtp.end())));
  Bytes mac_in = out;
  for (int i = 0; i < 4; ++i) mac_in.push_back(uint8_t(roc >> (24 - 8 * i)));
  uint8_t mac[20];
  unsigned mac_len = 0;
  HMAC(EVP_sha1(), auth.data(), int(auth.size()), mac_in.data(), mac_in.size(), mac, &mac_len);
  out.insert(out.end(), mac, mac + tag_len);
  return out;
}

// AES-128-GCM with EVP (RFC 7714 8/9): returns ciphertext || 16-byte tag.
Bytes gcm_seal(const Bytes& key, const Bytes& iv, const Bytes& aad, const Bytes& plain) {
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  Bytes out(plain.size() + 16);
  int n = 0;
  EXPECT_EQ(EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), nullptr, nullptr, nullptr), 1);
  EXPECT_EQ(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr), 1);
  EXPECT_EQ(EVP_EncryptInit_ex(c, nullptr, nullptr, key.data(), iv.data()), 1);
  EXPECT_EQ(EVP_EncryptUpdate(c, nullptr, &n, aad.data(), int(aad.size())), 1);
  EXPECT_EQ(EVP_EncryptUpdate(c, out.data(), &n, plain.data(), int(plain.size())), 1);
  EXPECT_EQ(EVP_EncryptFinal_ex(c, out.data() + n, &n), 1);
  EXPECT_EQ(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, out.data() + plain.size()), 1);
  EVP_CIPHER_CTX_free(c);
  return out;
}

// RFC 7714 8.1: IV = (00 00 || SSRC || ROC || SEQ) XOR salt.
Bytes gcm_rtp_iv(const Bytes& salt, uint32_t ssrc, uint32_t roc, uint16_t seq) {
  Bytes iv = salt;
  for (int i = 0; i < 4; ++i) iv[2 + i] ^= uint8_t(ssrc >> (24 - 8 * i));
  for (int i = 0; i < 4; ++i) iv[6 + i] ^= uint8_t(roc >> (24 - 8 * i));
  iv[10] ^= uint8_t(seq >> 8);
  iv[11] ^= uint8_t(seq);
  return iv;
}
// RFC 7714 9.1: IV = (00 00 || SSRC || 00 00 || 0 || SRTCP index) XOR salt.
Bytes gcm_rtcp_iv(const Bytes& salt, uint32_t ssrc, uint32_t index) {
  Bytes iv = salt;
  for (int i = 0; i < 4; ++i) iv[2 + i] ^= uint8_t(ssrc >> (24 - 8 * i));
  for (int i = 0; i < 4; ++i) iv[8 + i] ^= uint8_t(index >> (24 - 8 * i));
  return iv;
}

// libsrtp2's cipher objects, driven directly with session keys.
struct LibCipher {
  srtp_cipher_t* c = nullptr;
  LibCipher(const srtp_cipher_type_t& type, const Bytes& key, int key_len, int tag_len) {
    EXPECT_EQ(srtp_cipher_type_alloc(&type, &c, key_len, tag_len), srtp_err_status_ok);
    EXPECT_EQ(srtp_cipher_init(c, key.data()), srtp_err_status_ok);
  }
  ~LibCipher() { srtp_cipher_dealloc(c); }
};

// ---------------------------------------------------------------------------------------------
// RFC 3711 appendix B.

TEST(Rfc3711, B2AesCmKeystreamThroughLibsrtp) {
  for (const srtp_cipher_type_t* type : {&srtp_aes_icm_128, srtp_fast_icm_type()}) {
  SCOPED_TRACE(type->description);
  // Session key, session salt; IV = salt * 2^16 (SSRC 0, index 0).
  LibCipher cm(*type, hex("2B7E151628AED2A6ABF7158809CF4F3C F0F1F2F3F4F5F6F7F8F9FAFBFCFD"),
               SRTP_AES_ICM_128_KEY_LEN_WSALT, 0);
  uint8_t iv[16] = {};  // libsrtp XORs the salt into it
  ASSERT_EQ(srtp_cipher_set_iv(cm.c, iv, srtp_direction_encrypt), srtp_err_status_ok);
  Bytes buf(48, 0);
  uint32_t n = uint32_t(buf.size());
  ASSERT_EQ(srtp_cipher_encrypt(cm.c, buf.data(), &n), srtp_err_status_ok);
  EXPECT_EQ(buf, hex("E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB"
                     "41E95B3BB0A2E8DD477901E4FCA894C0"));
  // The same keystream from EVP (the helper the B.3 check below relies on).
  EXPECT_EQ(aes_ctr(hex("2B7E151628AED2A6ABF7158809CF4F3C"), hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"),
                    Bytes(48, 0)),
            buf);
  // The keystream continues across calls that end inside a block (libsrtp2's KDF does that).
  ASSERT_EQ(srtp_cipher_set_iv(cm.c, iv, srtp_direction_encrypt), srtp_err_status_ok);
  Bytes parts(48, 0);
  for (auto [at, len] : {std::pair{0u, 5u}, std::pair{5u, 20u}, std::pair{25u, 23u}}) {
    uint32_t l = len;
    ASSERT_EQ(srtp_cipher_encrypt(cm.c, parts.data() + at, &l), srtp_err_status_ok);
  }
  EXPECT_EQ(parts, buf);
  }
}

// Veil's AES-ICM (dataplane/srtp_icm.h), both its AES-NI path and its portable EVP path,
// against EVP's AES-128-CTR over random keys, salts, IVs and lengths (0-600 bytes, every tail
// length of the eight-block chunks), calls split at random points (a call may end inside a
// block), and counters whose low 64 bits wrap inside the packet.
TEST(Rfc3711, FastIcmMatchesEvpCtr) {
  std::mt19937 rng(3711);
  auto rnd = [&](size_t n) {
    Bytes b(n);
    for (auto& x : b) x = uint8_t(rng());
    return b;
  };
  for (bool aesni : {true, false}) {
    bool used = srtp_fast_icm_use_aesni(aesni);
    SCOPED_TRACE(used ? "AES-NI path" : "EVP path");
    for (int iter = 0; iter < 400; ++iter) {
      Bytes key = rnd(16), salt = rnd(14), iv = rnd(16);
      if (iter % 4 == 3) std::memset(iv.data() + 8, 0xff, 8);  // low half about to wrap
      Bytes keysalt = cat(key, salt);
      LibCipher cm(*srtp_fast_icm_type(), keysalt, SRTP_AES_ICM_128_KEY_LEN_WSALT, 0);
      size_t len = iter < 200 ? size_t(iter) : rng() % 601;
      Bytes in = rnd(len), buf = in;
      Bytes ivc = iv;  // set_iv XORs the salt in: the counter block is salt||0000 XOR iv
      ASSERT_EQ(srtp_cipher_set_iv(cm.c, ivc.data(), srtp_direction_encrypt), srtp_err_status_ok);
      size_t at = 0;
      while (at < len) {
        size_t part = iter % 3 == 0 ? len - at : 1 + rng() % (len - at);
        uint32_t n = uint32_t(part);
        ASSERT_EQ(srtp_cipher_encrypt(cm.c, buf.data() + at, &n), srtp_err_status_ok);
        at += part;
      }
      Bytes ctr(16, 0);
      for (int i = 0; i < 16; ++i) ctr[i] = uint8_t((i < 14 ? salt[i] : 0) ^ iv[i]);
      ASSERT_EQ(buf, aes_ctr(key, ctr, in)) << "length " << len << ", iteration " << iter;
    }
  }
  srtp_fast_icm_use_aesni(true);
}

// Veil's HMAC-SHA1 (dataplane/srtp_hmac.h) against OpenSSL's HMAC: random keys (0-64 bytes), messages of 0-300 bytes fed in random pieces
// (update, then compute with the rest, as libsrtp2 does), every tag length, and several
// packets per key (the precomputed state must not drift).
TEST(Rfc2104, FastHmacMatchesOpenssl) {
  std::mt19937 rng(2104);
  auto rnd = [&](size_t n) {
    Bytes b(n);
    for (auto& x : b) x = uint8_t(rng());
    return b;
  };
  {
    for (int iter = 0; iter < 150; ++iter) {
      Bytes key = rnd(iter % 3 == 0 ? 20 : rng() % 65);
      srtp_auth_t* a = nullptr;
      int tag_len = 1 + int(rng() % 20);
      ASSERT_EQ(srtp_auth_type_alloc(srtp_fast_hmac_type(), &a, int(key.size()), tag_len), srtp_err_status_ok);
      ASSERT_EQ(srtp_auth_init(a, key.data()), srtp_err_status_ok);
      for (int pkt = 0; pkt < 4; ++pkt) {
        size_t len = iter < 130 && pkt == 0 ? size_t(iter) : rng() % 301;
        Bytes msg = rnd(len);
        size_t split = len ? rng() % (len + 1) : 0;
        uint8_t tag[20] = {};
        ASSERT_EQ(srtp_auth_start(a), srtp_err_status_ok);
        ASSERT_EQ(srtp_auth_update(a, msg.data(), int(split)), srtp_err_status_ok);
        ASSERT_EQ(srtp_auth_compute(a, msg.data() + split, int(len - split), tag), srtp_err_status_ok);
        uint8_t want[20];
        unsigned want_len = 0;
        HMAC(EVP_sha1(), key.data(), int(key.size()), msg.data(), msg.size(), want, &want_len);
        ASSERT_EQ(Bytes(tag, tag + tag_len), Bytes(want, want + tag_len))
            << "key " << key.size() << " bytes, message " << len << " split " << split;
      }
      srtp_auth_dealloc(a);
    }
  }
}

TEST(Rfc3711, B3KeyDerivation) {
  const Bytes mk = hex("E1F97A0D3E018BE0D64FA32C06DE4139"), ms = hex("0EC675AD498AFEEBB6960B3AABE6");
  EXPECT_EQ(kdf(mk, ms, 0x00, 16), hex("C61E7A93744F39EE10734AFE3FF7A087"));  // cipher key
  EXPECT_EQ(kdf(mk, ms, 0x02, 14), hex("30CBBC08863D8C85D49DB34A9AE1"));      // cipher salt
  EXPECT_EQ(kdf(mk, ms, 0x01, 94),                                              // auth key
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE"
                "E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25"
                "6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2"));
}

Bytes rtp_packet(uint16_t seq, uint32_t ssrc, size_t len = 172, uint8_t pt = 0) {
  Bytes p(len);
  p[0] = 0x80;
  p[1] = pt;
  p[2] = uint8_t(seq >> 8);
  p[3] = uint8_t(seq);
  uint32_t ts = 160u * seq;
  for (int i = 0; i < 4; ++i) {
    p[4 + i] = uint8_t(ts >> (24 - 8 * i));
    p[8 + i] = uint8_t(ssrc >> (24 - 8 * i));
  }
  for (size_t i = 12; i < len; ++i) p[i] = uint8_t(i * 7 + seq);
  return p;
}

srtp_t lib_session(srtp_profile_t profile, const Bytes& master, bool outbound) {
  srtp_policy_t policy;
  std::memset(&policy, 0, sizeof policy);
  EXPECT_EQ(srtp_crypto_policy_set_from_profile_for_rtp(&policy.rtp, profile), srtp_err_status_ok);
  EXPECT_EQ(srtp_crypto_policy_set_from_profile_for_rtcp(&policy.rtcp, profile), srtp_err_status_ok);
  policy.ssrc.type = outbound ? ssrc_any_outbound : ssrc_any_inbound;
  policy.key = const_cast<uint8_t*>(master.data());
  srtp_t s = nullptr;
  EXPECT_EQ(srtp_create(&s, &policy), srtp_err_status_ok);
  return s;
}

Bytes lib_protect(srtp_t s, Bytes pkt) {
  int len = int(pkt.size());
  pkt.resize(pkt.size() + SRTP_MAX_TRAILER_LEN);
  EXPECT_EQ(srtp_protect(s, pkt.data(), &len), srtp_err_status_ok);
  pkt.resize(size_t(len));
  return pkt;
}

// libsrtp2's srtp_protect from the B.3 master key equals the packet built from the B.3 session
// keys: its KDF, AES-CM and HMAC-SHA1-80/32 are the RFC's. Several packets, including a
// sequence-number wrap (ROC 1). First with libsrtp2's own HMAC-SHA1 and AES-ICM (this test runs
// before any Veil session installs the replacements), then with dataplane/srtp_hmac.h's and
// srtp_icm.h's (the KDF runs on the AES-ICM type too). The RFC 7714 tests below run after it,
// so their KDF check and srtp_protect with AES-GCM go through the replacements
// (dataplane/srtp_gcm.h) as well.
TEST(Rfc3711, LibsrtpProtectMatchesDerivedKeys) {
  const Bytes mk = hex("E1F97A0D3E018BE0D64FA32C06DE4139"), ms = hex("0EC675AD498AFEEBB6960B3AABE6");
  const Bytes key = kdf(mk, ms, 0, 16), salt = kdf(mk, ms, 2, 14), auth = kdf(mk, ms, 1, 20);
  for (int pass = 0; pass < 2; ++pass) {
  SCOPED_TRACE(pass ? "Veil's HMAC-SHA1 and AES-ICM" : "libsrtp2's HMAC-SHA1 and AES-ICM");
  if (pass == 1) {
    ASSERT_TRUE(srtp_fast_hmac_install());  // runs its RFC 2202 self-test
    ASSERT_TRUE(srtp_fast_icm_install());   // runs its RFC 3711 B.2 self-test
    ASSERT_TRUE(srtp_fast_gcm_install());   // runs its RFC 7714 16.1.1 self-test
  }
  for (auto [profile, tag] : {std::pair{srtp_profile_aes128_cm_sha1_80, size_t(10)},
                              std::pair{srtp_profile_aes128_cm_sha1_32, size_t(4)}}) {
    srtp_t s = lib_session(profile, cat(mk, ms), true);
    uint32_t roc = 0;
    for (uint16_t seq : {uint16_t(65533), uint16_t(65534), uint16_t(65535), uint16_t(0), uint16_t(1)}) {
      SCOPED_TRACE(seq);
      if (seq == 0) roc = 1;
      Bytes plain = rtp_packet(seq, 0xcafebabe);
      EXPECT_EQ(lib_protect(s, plain), cm_protect(key, salt, auth, plain, roc, tag));
    }
    srtp_dealloc(s);
  }
  }
}

// ---------------------------------------------------------------------------------------------
// RFC 7714: AEAD_AES_128_GCM.

const Bytes kGcmKey = hex("000102030405060708090a0b0c0d0e0f");
const Bytes kGcmSalt = hex("517569642070726f2071756f");  // "Quid pro quo"

// 16.1.1: RTP, SSRC 0x5501a0b2, ROC 0, SEQ 0xf17b.
const Bytes kRtpPlain = hex(
    "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973"
    "20646976 69736120 696e2070 61727465 73207472 6573");
const Bytes kRtpProtected = hex(
    "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca"
    "be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1"
    "6a9152cf 765ee439 0cce");
// 17.1: SRTCP sender report, SSRC "Mars", SRTCP index 0x5d4, E=1.
const Bytes kRtcpPlain = hex(
    "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930"
    "4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef");
const Bytes kRtcpProtected = hex(
    "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7"
    "6c06f32d c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458"
    "96cf4d2f c5abf872 45d9eade 800005d4");

TEST(Rfc7714, IvFormation) {
  EXPECT_EQ(gcm_rtp_iv(kGcmSalt, 0x5501a0b2, 0, 0xf17b), hex("51753c6580c2726f20718414"));
  EXPECT_EQ(gcm_rtcp_iv(kGcmSalt, 0x4d617273, 0x5d4), hex("517524055203726f207170bb"));
}

// Runs an AES-GCM cipher type (libsrtp2's, or Veil's dataplane/srtp_gcm.h) over one packet:
// `aad` as AAD (in two calls split at `split`, as libsrtp2 passes SRTCP's header and then
// E || index), body encrypted (tag appended) or decrypted (tag checked and removed).
const srtp_cipher_type_t* g_gcm = &srtp_aes_gcm_128;
srtp_err_status_t lib_gcm(const Bytes& iv, const Bytes& aad, Bytes& body, srtp_cipher_direction_t dir,
                          size_t split = 0) {
  LibCipher gcm(*g_gcm, cat(kGcmKey, kGcmSalt), SRTP_AES_GCM_128_KEY_LEN_WSALT, 16);
  Bytes ivc = iv;
  ivc.resize(16, 0);
  EXPECT_EQ(srtp_cipher_set_iv(gcm.c, ivc.data(), dir), srtp_err_status_ok);
  if (split) {
    EXPECT_EQ(srtp_cipher_set_aad(gcm.c, aad.data(), uint32_t(split)), srtp_err_status_ok);
    EXPECT_EQ(srtp_cipher_set_aad(gcm.c, aad.data() + split, uint32_t(aad.size() - split)), srtp_err_status_ok);
  } else {
    EXPECT_EQ(srtp_cipher_set_aad(gcm.c, aad.data(), uint32_t(aad.size())), srtp_err_status_ok);
  }
  uint32_t n = uint32_t(body.size());
  if (dir == srtp_direction_encrypt) {
    body.resize(body.size() + 16);
    srtp_err_status_t st = srtp_cipher_encrypt(gcm.c, body.data(), &n);
    if (st) return st;
    uint32_t tag_len = 16;
    st = srtp_cipher_get_tag(gcm.c, body.data() + n, &tag_len);
    body.resize(n + tag_len);
    return st;
  }
  srtp_err_status_t st = srtp_cipher_decrypt(gcm.c, body.data(), &n);
  body.resize(n);
  return st;
}

TEST(Rfc7714, Srtp16_1ThroughLibsrtpGcm) {
  for (const srtp_cipher_type_t* type : {&srtp_aes_gcm_128, srtp_fast_gcm_type()}) {
  SCOPED_TRACE(type->description);
  g_gcm = type;
  Bytes iv = gcm_rtp_iv(kGcmSalt, 0x5501a0b2, 0, 0xf17b);
  Bytes hdr(kRtpPlain.begin(), kRtpPlain.begin() + 12);
  Bytes body(kRtpPlain.begin() + 12, kRtpPlain.end());
  ASSERT_EQ(lib_gcm(iv, hdr, body, srtp_direction_encrypt), srtp_err_status_ok);
  EXPECT_EQ(cat(hdr, body), kRtpProtected);
  EXPECT_EQ(cat(hdr, gcm_seal(kGcmKey, iv, hdr, Bytes(kRtpPlain.begin() + 12, kRtpPlain.end()))),
            kRtpProtected);  // and with EVP, the construction used below

  Bytes enc(kRtpProtected.begin() + 12, kRtpProtected.end());
  ASSERT_EQ(lib_gcm(iv, hdr, enc, srtp_direction_decrypt), srtp_err_status_ok);
  EXPECT_EQ(cat(hdr, enc), kRtpPlain);

  Bytes bad(kRtpProtected.begin() + 12, kRtpProtected.end());
  bad[5] ^= 0x01;
  EXPECT_EQ(lib_gcm(iv, hdr, bad, srtp_direction_decrypt), srtp_err_status_auth_fail);
  Bytes bad_hdr = hdr;
  bad_hdr[3] ^= 0x01;  // the header is authenticated too (AAD)
  Bytes enc2(kRtpProtected.begin() + 12, kRtpProtected.end());
  EXPECT_EQ(lib_gcm(iv, bad_hdr, enc2, srtp_direction_decrypt), srtp_err_status_auth_fail);
  }
  g_gcm = &srtp_aes_gcm_128;
}

TEST(Rfc7714, Srtcp17_1ThroughLibsrtpGcm) {
  for (const srtp_cipher_type_t* type : {&srtp_aes_gcm_128, srtp_fast_gcm_type()}) {
  for (size_t split : {size_t(0), size_t(8)}) {
  SCOPED_TRACE(type->description);
  SCOPED_TRACE(split);
  g_gcm = type;
  Bytes iv = gcm_rtcp_iv(kGcmSalt, 0x4d617273, 0x5d4);
  const Bytes e_index = hex("800005d4");
  Bytes hdr(kRtcpPlain.begin(), kRtcpPlain.begin() + 8);
  Bytes body(kRtcpPlain.begin() + 8, kRtcpPlain.end());
  // RFC 7714 9.2: the AAD is the 8-byte header followed by E || SRTCP index.
  ASSERT_EQ(lib_gcm(iv, cat(hdr, e_index), body, srtp_direction_encrypt, split), srtp_err_status_ok);
  EXPECT_EQ(cat(cat(hdr, body), e_index), kRtcpProtected);

  Bytes enc(kRtcpProtected.begin() + 8, kRtcpProtected.end() - 4);
  ASSERT_EQ(lib_gcm(iv, cat(hdr, e_index), enc, srtp_direction_decrypt, split), srtp_err_status_ok);
  EXPECT_EQ(cat(hdr, enc), kRtcpPlain);
  Bytes enc2(kRtcpProtected.begin() + 8, kRtcpProtected.end() - 4);
  EXPECT_EQ(lib_gcm(iv, cat(hdr, hex("800005d5")), enc2, srtp_direction_decrypt, split),
            srtp_err_status_auth_fail);  // index is authenticated
  }
  }
  g_gcm = &srtp_aes_gcm_128;
}

// srtp_protect with a GCM master key equals the RFC 7714 construction (checked against the
// vectors above) with session keys from the KDF (RFC 7714 12: labels 0 and 2, 12-byte salt).
TEST(Rfc7714, LibsrtpProtectMatchesDerivedKeys) {
  const Bytes mk = hex("e1f97a0d3e018be0d64fa32c06de4139"), ms = hex("0ec675ad498afeebb6960b3a");
  const Bytes key = kdf(mk, ms, 0, 16), salt = kdf(mk, ms, 2, 12);
  srtp_t s = lib_session(srtp_profile_aead_aes_128_gcm, cat(mk, ms), true);
  uint32_t roc = 0;
  for (uint16_t seq : {uint16_t(65534), uint16_t(65535), uint16_t(0), uint16_t(7)}) {
    SCOPED_TRACE(seq);
    if (seq == 0) roc = 1;
    Bytes plain = rtp_packet(seq, 0x5501a0b2);
    Bytes hdr(plain.begin(), plain.begin() + 12);
    Bytes want = cat(hdr, gcm_seal(key, gcm_rtp_iv(salt, 0x5501a0b2, roc, seq), hdr,
                                   Bytes(plain.begin() + 12, plain.end())));
    EXPECT_EQ(lib_protect(s, plain), want);
  }
  srtp_dealloc(s);
}

// ---------------------------------------------------------------------------------------------
// Veil's sessions (dataplane/srtp_session.h).

SrtpKeying keying(SrtpProfile p, uint8_t seed) {
  SrtpKeying k;
  k.profile = p;
  k.keyed = true;
  for (unsigned i = 0; i < srtp_master_len(p); ++i) k.master[i] = uint8_t(seed + i * 13);
  return k;
}

struct Sessions {
  SrtpSession* tx;
  SrtpSession* rx;
  Sessions(const SrtpKeying& k) {
    std::string why;
    tx = srtp_session_create(k, true, &why);
    EXPECT_NE(tx, nullptr) << why;
    rx = srtp_session_create(k, false, &why);
    EXPECT_NE(rx, nullptr) << why;
  }
  ~Sessions() {
    srtp_session_free(tx);
    srtp_session_free(rx);
  }
};

Bytes rtcp_sr(uint32_t ssrc) {
  Bytes p = hex("80c80006 00000000 e0000000 00000000 00001000 00000010 00000640");
  for (int i = 0; i < 4; ++i) p[4 + i] = uint8_t(ssrc >> (24 - 8 * i));
  return p;
}

class SessionTest : public ::testing::TestWithParam<SrtpProfile> {};

TEST_P(SessionTest, RoundTripTamperReplayRtpAndRtcp) {
  const SrtpProfile prof = GetParam();
  const SrtpKeying k = keying(prof, 0x21);
  Sessions s(k);
  ASSERT_TRUE(s.tx && s.rx);
  const uint32_t tag = prof == SrtpProfile::AeadAes128Gcm ? 16 : prof == SrtpProfile::AesCm128HmacSha1_32 ? 4 : 10;
  const uint32_t rtcp_trailer = (prof == SrtpProfile::AeadAes128Gcm ? 16 : 10) + 4;
  EXPECT_EQ(s.tx->rtp_trailer, tag);
  EXPECT_EQ(s.tx->rtcp_trailer, rtcp_trailer);

  // A reference receiver straight on libsrtp2 with the same master key.
  srtp_profile_t lp = prof == SrtpProfile::AeadAes128Gcm       ? srtp_profile_aead_aes_128_gcm
                      : prof == SrtpProfile::AesCm128HmacSha1_32 ? srtp_profile_aes128_cm_sha1_32
                                                                 : srtp_profile_aes128_cm_sha1_80;
  srtp_t ref = lib_session(lp, Bytes(k.master, k.master + srtp_master_len(prof)), false);

  for (uint16_t seq = 1000; seq < 1010; ++seq) {
    SCOPED_TRACE(seq);
    const Bytes plain = rtp_packet(seq, 0x11223344);
    Bytes buf = plain;
    buf.resize(plain.size() + 64);
    uint32_t len = uint32_t(plain.size());
    ASSERT_EQ(srtp_session_protect(*s.tx, buf.data(), len, 64), SrtpResult::Ok);
    ASSERT_EQ(len, plain.size() + tag);
    const Bytes srtp(buf.begin(), buf.begin() + len);
    EXPECT_TRUE(std::equal(plain.begin(), plain.begin() + 12, srtp.begin()));  // header in clear
    EXPECT_FALSE(std::equal(plain.begin() + 12, plain.end(), srtp.begin() + 12));

    Bytes r = srtp;
    int rl = int(r.size());
    ASSERT_EQ(srtp_unprotect(ref, r.data(), &rl), srtp_err_status_ok);
    EXPECT_EQ(Bytes(r.begin(), r.begin() + rl), plain);

    Bytes bad = srtp;
    bad[seq % 2 ? bad.size() - 1 : 30] ^= 0x40;  // tag or payload
    uint32_t bl = uint32_t(bad.size());
    EXPECT_EQ(srtp_session_unprotect(*s.rx, bad.data(), bl), SrtpResult::AuthFail);

    Bytes good = srtp;
    uint32_t gl = uint32_t(good.size());
    ASSERT_EQ(srtp_session_unprotect(*s.rx, good.data(), gl), SrtpResult::Ok);
    EXPECT_EQ(Bytes(good.begin(), good.begin() + gl), plain);

    Bytes again = srtp;
    uint32_t al = uint32_t(again.size());
    EXPECT_EQ(srtp_session_unprotect(*s.rx, again.data(), al), SrtpResult::Replay);
  }

  // SRTCP (RFC 5761 demux: PT 200 is RTCP).
  const Bytes sr = rtcp_sr(0x11223344);
  Bytes buf = sr;
  buf.resize(sr.size() + 64);
  uint32_t len = uint32_t(sr.size());
  ASSERT_EQ(srtp_session_protect(*s.tx, buf.data(), len, 64), SrtpResult::Ok);
  ASSERT_EQ(len, sr.size() + rtcp_trailer);
  const Bytes srtcp(buf.begin(), buf.begin() + len);
  EXPECT_EQ(srtcp[len - rtcp_trailer + (prof == SrtpProfile::AeadAes128Gcm ? 16 : 0)] & 0x80, 0x80);  // E flag
  Bytes r = srtcp;
  int rl = int(r.size());
  ASSERT_EQ(srtp_unprotect_rtcp(ref, r.data(), &rl), srtp_err_status_ok);
  EXPECT_EQ(Bytes(r.begin(), r.begin() + rl), sr);
  Bytes bad = srtcp;
  bad[12] ^= 1;
  uint32_t bl = uint32_t(bad.size());
  EXPECT_EQ(srtp_session_unprotect(*s.rx, bad.data(), bl), SrtpResult::AuthFail);
  Bytes good = srtcp;
  uint32_t gl = uint32_t(good.size());
  ASSERT_EQ(srtp_session_unprotect(*s.rx, good.data(), gl), SrtpResult::Ok);
  EXPECT_EQ(Bytes(good.begin(), good.begin() + gl), sr);
  good = srtcp;
  gl = uint32_t(good.size());
  EXPECT_EQ(srtp_session_unprotect(*s.rx, good.data(), gl), SrtpResult::Replay);
  srtp_dealloc(ref);
}

TEST_P(SessionTest, RefusesWithoutKeysRoomOrBeyondSsrcCap) {
  const SrtpProfile prof = GetParam();
  SrtpKeying pending;
  pending.profile = prof;
  std::string why;
  SrtpSession* p = srtp_session_create(pending, false, &why);
  ASSERT_NE(p, nullptr) << why;
  Bytes pkt = rtp_packet(1, 1);
  uint32_t len = uint32_t(pkt.size());
  EXPECT_EQ(srtp_session_unprotect(*p, pkt.data(), len), SrtpResult::NoKey);
  EXPECT_EQ(srtp_session_protect(*p, pkt.data(), len, 64), SrtpResult::NoKey);
  srtp_session_free(p);

  Sessions s(keying(prof, 0x77));
  // No room for the tag: refused, packet untouched.
  Bytes plain = rtp_packet(5, 0xabcdef01);
  Bytes buf = plain;
  len = uint32_t(buf.size());
  EXPECT_EQ(srtp_session_protect(*s.tx, buf.data(), len, s.tx->rtp_trailer - 1), SrtpResult::Error);
  EXPECT_EQ(buf, plain);
  EXPECT_EQ(len, plain.size());
  // Too short to be RTP.
  Bytes runt = rtp_packet(5, 1, 12);
  runt.resize(11);
  len = 11;
  EXPECT_EQ(srtp_session_unprotect(*s.rx, runt.data(), len), SrtpResult::Error);

  // kSrtpMaxSsrc SSRCs each way, then the next is refused.
  for (uint32_t i = 0; i <= kSrtpMaxSsrc; ++i) {
    SCOPED_TRACE(i);
    Bytes b = rtp_packet(10, 0x1000 + i);
    b.resize(b.size() + 64);
    uint32_t l = 172;
    SrtpResult want = i < kSrtpMaxSsrc ? SrtpResult::Ok : SrtpResult::Error;
    EXPECT_EQ(srtp_session_protect(*s.tx, b.data(), l, 64), want);
    if (want != SrtpResult::Ok) {
      // Protected by a second sender, so only the receiver's cap refuses it.
      Sessions other(keying(prof, 0x77));
      l = 172;
      ASSERT_EQ(srtp_session_protect(*other.tx, b.data(), l, 64), SrtpResult::Ok);
    }
    EXPECT_EQ(srtp_session_unprotect(*s.rx, b.data(), l), want);
  }
  EXPECT_EQ(s.rx->n_ssrc, kSrtpMaxSsrc);
}

TEST_P(SessionTest, NoAllocationPerPacket) {
#ifndef VEIL_COUNTS_ALLOCS
  GTEST_SKIP() << "allocation counting needs the malloc interposer (not under AddressSanitizer)";
#endif
  Sessions s(keying(GetParam(), 0x42));
  Bytes buf(256);
  std::vector<Bytes> pkts;
  for (uint16_t seq = 0; seq < 2002; ++seq) pkts.push_back(rtp_packet(seq, 0x55667788));
  auto one = [&](uint16_t seq) {
    const Bytes& p = pkts[seq];
    std::copy(p.begin(), p.end(), buf.begin());
    uint32_t len = uint32_t(p.size());
    ASSERT_EQ(srtp_session_protect(*s.tx, buf.data(), len, 64), SrtpResult::Ok);
    ASSERT_EQ(srtp_session_unprotect(*s.rx, buf.data(), len), SrtpResult::Ok);
    ASSERT_EQ(len, p.size());
  };
  one(1);  // libsrtp2 allocates the SSRC's streams on its first packet
  g_allocs = 0;
  g_count_allocs = true;
  for (uint16_t seq = 2; seq < 2002; ++seq) one(seq);
  g_count_allocs = false;
  EXPECT_EQ(g_allocs.load(), 0u) << "allocations in 2000 protect+unprotect";
}

INSTANTIATE_TEST_SUITE_P(Profiles, SessionTest,
                         ::testing::Values(SrtpProfile::AesCm128HmacSha1_80, SrtpProfile::AesCm128HmacSha1_32,
                                           SrtpProfile::AeadAes128Gcm),
                         [](const ::testing::TestParamInfo<SrtpProfile>& i) {
                           return std::string(srtp_profile_name(i.param));
                         });

TEST(SrtpProfileNames, ParseAndLengths) {
  SrtpProfile p;
  ASSERT_TRUE(srtp_profile_parse("AEAD_AES_128_GCM", p));
  EXPECT_EQ(p, SrtpProfile::AeadAes128Gcm);
  EXPECT_EQ(srtp_master_len(p), 28u);
  ASSERT_TRUE(srtp_profile_parse("AES_CM_128_HMAC_SHA1_80", p));
  EXPECT_EQ(srtp_master_len(p), 30u);
  EXPECT_FALSE(srtp_profile_parse("AES_256_CM_HMAC_SHA1_80", p));
  EXPECT_STREQ(srtp_profile_name(SrtpProfile::AesCm128HmacSha1_32), "AES_CM_128_HMAC_SHA1_32");
}

}  // namespace

namespace {
TEST(SrtpKeyingText, ParseAndDescribeWithoutTheKey) {
  SrtpKeying k;
  std::string why;
  ASSERT_TRUE(srtp_keying_parse("AES_CM_128_HMAC_SHA1_80:E1F97A0D3E018BE0D64FA32C06DE41390EC675AD498AFEEBB6960B3AABE6", k, &why)) << why;
  EXPECT_EQ(k.profile, SrtpProfile::AesCm128HmacSha1_80);
  EXPECT_TRUE(k.keyed);
  EXPECT_EQ(Bytes(k.master, k.master + 30), hex("E1F97A0D3E018BE0D64FA32C06DE41390EC675AD498AFEEBB6960B3AABE6"));
  EXPECT_EQ(srtp_keying_describe(k), "AES_CM_128_HMAC_SHA1_80 (keyed)");
  ASSERT_TRUE(srtp_keying_parse("AEAD_AES_128_GCM:pending", k, &why));
  EXPECT_EQ(k.profile, SrtpProfile::AeadAes128Gcm);
  EXPECT_FALSE(k.keyed);
  EXPECT_EQ(srtp_keying_describe(k), "AEAD_AES_128_GCM (keys pending)");
  ASSERT_TRUE(srtp_keying_parse("none", k, &why));
  EXPECT_FALSE(k.enabled());
  EXPECT_EQ(srtp_keying_describe(k), "none");
  // GCM takes 28 bytes, not 30; bad digits; unknown profile.
  EXPECT_FALSE(srtp_keying_parse("AEAD_AES_128_GCM:E1F97A0D3E018BE0D64FA32C06DE41390EC675AD498AFEEBB6960B3AABE6", k, &why));
  EXPECT_NE(why.find("56 hex digits"), std::string::npos) << why;
  EXPECT_FALSE(srtp_keying_parse("AES_CM_128_HMAC_SHA1_80:X1F97A0D3E018BE0D64FA32C06DE41390EC675AD498AFEEBB6960B3AABE6", k, &why));
  EXPECT_FALSE(k.enabled());
  EXPECT_FALSE(srtp_keying_parse("F8_128_HMAC_SHA1_80:00", k, &why));
}
}  // namespace

namespace {
// Mutated SRTP/SRTCP packets (bit flips, truncation, header fields that claim more CSRCs or a
// longer extension than the packet has, random bytes) never authenticate and never crash; the
// genuine packets keep passing in between.
TEST_P(SessionTest, MutatedPacketsNeverAuthenticate) {
  const SrtpProfile prof = GetParam();
  Sessions s(keying(prof, 0x5c));
  std::mt19937 rng(1234);
  unsigned accepted_bad = 0, genuine_ok = 0;
  for (uint16_t seq = 1; seq <= 300; ++seq) {
    const bool rtcp = seq % 5 == 0;
    Bytes plain = rtcp ? rtcp_sr(0x0badcafe) : rtp_packet(seq, 0x0badcafe, 40 + seq % 120);
    if (!rtcp && seq % 3 == 0) {  // some with a header extension (X) and CSRCs
      plain[0] = uint8_t(0x90 | 1);  // V=2, X=1, CC=1
      Bytes ext = {0, 0, 0, 0, 0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0};
      plain.insert(plain.begin() + 12, ext.begin(), ext.end());
    }
    Bytes buf = plain;
    buf.resize(plain.size() + 64);
    uint32_t len = uint32_t(plain.size());
    ASSERT_EQ(srtp_session_protect(*s.tx, buf.data(), len, 64), SrtpResult::Ok);
    const Bytes srtp(buf.begin(), buf.begin() + len);
    for (int m = 0; m < 40; ++m) {
      Bytes bad = srtp;
      switch (m % 5) {
        case 0: bad[rng() % bad.size()] ^= uint8_t(1u << (rng() % 8)); break;          // a bit
        case 1: bad.resize(rng() % bad.size()); break;                                  // truncated
        case 2: bad[0] = uint8_t((bad[0] & 0xf0) | 0x0f); break;                        // CC=15
        case 3: if (bad.size() > 15) { bad[0] |= 0x10; bad[14] = 0xff; bad[15] = 0xff; } break;  // long extension
        default: for (auto& b : bad) b = uint8_t(rng()); bad[0] = 0x80 | (bad[0] & 0x3f); break;   // random
      }
      if (bad == srtp) continue;
      uint32_t bl = uint32_t(bad.size());
      bad.resize(bad.size() + 64);
      if (bl >= 2 && srtp_session_unprotect(*s.rx, bad.data(), bl) == SrtpResult::Ok) ++accepted_bad;
    }
    Bytes good = srtp;
    uint32_t gl = uint32_t(good.size());
    if (srtp_session_unprotect(*s.rx, good.data(), gl) == SrtpResult::Ok &&
        Bytes(good.begin(), good.begin() + gl) == plain)
      ++genuine_ok;
  }
  EXPECT_EQ(accepted_bad, 0u);
  EXPECT_EQ(genuine_ok, 300u);
}
}  // namespace
