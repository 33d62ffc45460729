#include "dataplane/srtp_hmac.h"

// SHA1_Init/Update/Final: deprecated in OpenSSL 3 in favour of EVP, but EVP's per-packet
// re-initialisation is what this file avoids. They are plain functions on a caller-owned
// struct (OpenSSL's SHA-NI/AVX2 assembly underneath).
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <srtp2/auth.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

namespace veil::dp {

namespace {

struct HmacState {
  SHA_CTX inner;  // SHA-1 after (key XOR ipad)
  SHA_CTX outer;  // SHA-1 after (key XOR opad)
  SHA_CTX work;
};

extern const srtp_auth_type_t kFastHmac;

srtp_err_status_t fast_alloc(srtp_auth_t** a, int key_len, int out_len) {
  if (key_len > 64 || out_len > SHA_DIGEST_LENGTH || out_len < 0) return srtp_err_status_bad_param;
  // One block: the auth object, then the state, as libsrtp's own HMAC does.
  auto* mem = static_cast<uint8_t*>(std::calloc(1, sizeof(srtp_auth_t) + sizeof(HmacState)));
  if (!mem) return srtp_err_status_alloc_fail;
  auto* auth = reinterpret_cast<srtp_auth_t*>(mem);
  auth->type = &kFastHmac;
  auth->state = mem + sizeof(srtp_auth_t);
  auth->out_len = out_len;
  auth->key_len = key_len;
  auth->prefix_len = 0;
  *a = auth;
  return srtp_err_status_ok;
}

srtp_err_status_t fast_dealloc(srtp_auth_t* a) {
  OPENSSL_cleanse(a, sizeof(srtp_auth_t) + sizeof(HmacState));
  std::free(a);
  return srtp_err_status_ok;
}

srtp_err_status_t fast_init(void* sv, const uint8_t* key, int key_len) {
  auto* s = static_cast<HmacState*>(sv);
  if (key_len < 0 || key_len > 64) return srtp_err_status_bad_param;
  uint8_t ipad[64], opad[64];
  for (int i = 0; i < 64; ++i) {
    uint8_t k = i < key_len ? key[i] : 0;
    ipad[i] = k ^ 0x36;
    opad[i] = k ^ 0x5c;
  }
  SHA1_Init(&s->inner);
  SHA1_Update(&s->inner, ipad, 64);
  SHA1_Init(&s->outer);
  SHA1_Update(&s->outer, opad, 64);
  OPENSSL_cleanse(ipad, sizeof ipad);
  OPENSSL_cleanse(opad, sizeof opad);
  return srtp_err_status_ok;
}

srtp_err_status_t fast_start(void* sv) {
  auto* s = static_cast<HmacState*>(sv);
  s->work = s->inner;
  return srtp_err_status_ok;
}

srtp_err_status_t fast_update(void* sv, const uint8_t* msg, int len) {
  SHA1_Update(&static_cast<HmacState*>(sv)->work, msg, size_t(len));
  return srtp_err_status_ok;
}

srtp_err_status_t fast_compute(void* sv, const uint8_t* msg, int len, int tag_len, uint8_t* result) {
  auto* s = static_cast<HmacState*>(sv);
  if (tag_len < 0 || tag_len > SHA_DIGEST_LENGTH) return srtp_err_status_bad_param;
  uint8_t h[SHA_DIGEST_LENGTH];
  SHA1_Update(&s->work, msg, size_t(len));
  SHA1_Final(h, &s->work);
  SHA_CTX o = s->outer;
  SHA1_Update(&o, h, sizeof h);
  SHA1_Final(h, &o);
  std::memcpy(result, h, size_t(tag_len));
  return srtp_err_status_ok;
}

// RFC 2202 test case 1 (HMAC-SHA1): key 0x0b x 20, "Hi There".
const uint8_t kTestKey[20] = {0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b,
                              0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b};
const uint8_t kTestData[8] = {'H', 'i', ' ', 'T', 'h', 'e', 'r', 'e'};
const uint8_t kTestTag[20] = {0xb6, 0x17, 0x31, 0x86, 0x55, 0x05, 0x72, 0x64, 0xe2, 0x8b,
                              0xc0, 0xb6, 0xfb, 0x37, 0x8c, 0x8e, 0xf1, 0x46, 0xbe, 0x00};
// RFC 2202 test case 2: key "Jefe", "what do ya want for nothing?".
const uint8_t kTestKey2[4] = {'J', 'e', 'f', 'e'};
const char kTestData2[] = "what do ya want for nothing?";
const uint8_t kTestTag2[20] = {0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74,
                               0x16, 0xd5, 0xf1, 0x84, 0xdf, 0x9c, 0x25, 0x9a, 0x7c, 0x79};
const srtp_auth_test_case_t kTest2 = {4, kTestKey2, 28, reinterpret_cast<const uint8_t*>(kTestData2),
                                      20, kTestTag2, nullptr};
const srtp_auth_test_case_t kTest1 = {20, kTestKey, 8, kTestData, 20, kTestTag, &kTest2};

const srtp_auth_type_t kFastHmac = {fast_alloc, fast_dealloc, fast_init, fast_compute, fast_update,
                                    fast_start, "HMAC-SHA1 (precomputed pads, OpenSSL SHA-1)",
                                    &kTest1, SRTP_HMAC_SHA1};

}  // namespace

const srtp_auth_type_t* srtp_fast_hmac_type() { return &kFastHmac; }

bool srtp_fast_hmac_install() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] { ok = srtp_replace_auth_type(&kFastHmac, SRTP_HMAC_SHA1) == srtp_err_status_ok; });
  return ok;
}

}  // namespace veil::dp
