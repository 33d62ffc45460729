#include "dataplane/srtp_gcm.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <srtp2/cipher.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

extern "C" {
// libsrtp2's own test case for AES-GCM-128 (crypto/cipher/aes_gcm_ossl.c), exported.
extern const srtp_cipher_test_case_t srtp_aes_gcm_128_test_case_0;
}

namespace veil::dp {

namespace {

constexpr int kKeyLen = 16;

struct GcmState {
  EVP_CIPHER_CTX* enc = nullptr;  // keyed once for encryption
  EVP_CIPHER_CTX* dec = nullptr;  // keyed once for decryption
  EVP_CIPHER_CTX* cur = nullptr;  // the one the last set_iv chose
  int tag_len = 16;
};

extern const srtp_cipher_type_t kFastGcm;

srtp_err_status_t gcm_alloc(srtp_cipher_t** c, int key_len, int tag_len) {
  if (key_len != SRTP_AES_GCM_128_KEY_LEN_WSALT || (tag_len != 8 && tag_len != 16))
    return srtp_err_status_bad_param;
  auto* mem = static_cast<uint8_t*>(std::calloc(1, sizeof(srtp_cipher_t) + sizeof(GcmState)));
  if (!mem) return srtp_err_status_alloc_fail;
  auto* cipher = reinterpret_cast<srtp_cipher_t*>(mem);
  auto* st = new (mem + sizeof(srtp_cipher_t)) GcmState();
  st->enc = EVP_CIPHER_CTX_new();
  st->dec = EVP_CIPHER_CTX_new();
  st->tag_len = tag_len;
  if (!st->enc || !st->dec) {
    EVP_CIPHER_CTX_free(st->enc);
    EVP_CIPHER_CTX_free(st->dec);
    std::free(mem);
    return srtp_err_status_alloc_fail;
  }
  st->cur = st->enc;
  cipher->type = &kFastGcm;
  cipher->state = st;
  cipher->key_len = key_len;
  cipher->algorithm = SRTP_AES_GCM_128;
  *c = cipher;
  return srtp_err_status_ok;
}

srtp_err_status_t gcm_dealloc(srtp_cipher_t* c) {
  auto* st = static_cast<GcmState*>(c->state);
  EVP_CIPHER_CTX_free(st->enc);
  EVP_CIPHER_CTX_free(st->dec);
  OPENSSL_cleanse(c, sizeof(srtp_cipher_t) + sizeof(GcmState));
  std::free(c);
  return srtp_err_status_ok;
}

// The key only: libsrtp2 forms the IV from the salt itself (RFC 7714 8.1).
srtp_err_status_t gcm_init(void* sv, const uint8_t* key) {
  auto* st = static_cast<GcmState*>(sv);
  if (EVP_EncryptInit_ex(st->enc, EVP_aes_128_gcm(), nullptr, key, nullptr) != 1 ||
      EVP_DecryptInit_ex(st->dec, EVP_aes_128_gcm(), nullptr, key, nullptr) != 1)
    return srtp_err_status_init_fail;
  return srtp_err_status_ok;
}

srtp_err_status_t gcm_set_iv(void* sv, uint8_t* iv, srtp_cipher_direction_t dir) {
  auto* st = static_cast<GcmState*>(sv);
  st->cur = dir == srtp_direction_decrypt ? st->dec : st->enc;
  // 12-byte IV (GCM's default length); -1 keeps the context's direction and key.
  if (EVP_CipherInit_ex(st->cur, nullptr, nullptr, nullptr, iv, -1) != 1) return srtp_err_status_init_fail;
  return srtp_err_status_ok;
}

srtp_err_status_t gcm_set_aad(void* sv, const uint8_t* aad, uint32_t len) {
  auto* st = static_cast<GcmState*>(sv);
  int n = 0;
  if (EVP_CipherUpdate(st->cur, nullptr, &n, aad, int(len)) != 1) return srtp_err_status_algo_fail;
  return srtp_err_status_ok;
}

srtp_err_status_t gcm_encrypt(void* sv, uint8_t* buf, unsigned int* len) {
  auto* st = static_cast<GcmState*>(sv);
  if (st->cur != st->enc) return srtp_err_status_bad_param;
  int n = 0, f = 0;
  if (EVP_EncryptUpdate(st->enc, buf, &n, buf, int(*len)) != 1 || EVP_EncryptFinal_ex(st->enc, buf + n, &f) != 1)
    return srtp_err_status_cipher_fail;
  return srtp_err_status_ok;
}

srtp_err_status_t gcm_get_tag(void* sv, uint8_t* tag, uint32_t* len) {
  auto* st = static_cast<GcmState*>(sv);
  OSSL_PARAM p[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, size_t(st->tag_len)),
                     OSSL_PARAM_construct_end()};
  if (EVP_CIPHER_CTX_get_params(st->enc, p) != 1) return srtp_err_status_algo_fail;
  *len = uint32_t(st->tag_len);
  return srtp_err_status_ok;
}

// `buf` holds the ciphertext followed by the tag; on success `len` loses the tag. A tag that
// does not verify is srtp_err_status_auth_fail (the buffer then holds no usable plaintext).
srtp_err_status_t gcm_decrypt(void* sv, uint8_t* buf, unsigned int* len) {
  auto* st = static_cast<GcmState*>(sv);
  if (st->cur != st->dec) return srtp_err_status_bad_param;
  if (*len < unsigned(st->tag_len)) return srtp_err_status_bad_param;
  unsigned body = *len - unsigned(st->tag_len);
  OSSL_PARAM p[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, buf + body, size_t(st->tag_len)),
                     OSSL_PARAM_construct_end()};
  if (EVP_CIPHER_CTX_set_params(st->dec, p) != 1) return srtp_err_status_algo_fail;
  int n = 0, f = 0;
  if (EVP_DecryptUpdate(st->dec, buf, &n, buf, int(body)) != 1) return srtp_err_status_algo_fail;
  if (EVP_DecryptFinal_ex(st->dec, buf + n, &f) <= 0) return srtp_err_status_auth_fail;
  *len = body;
  return srtp_err_status_ok;
}

// RFC 7714 16.1.1: key 00..0f (salt 517569642070726f2071756f, used only in the IV), IV for
// SSRC 5501a0b2 / ROC 0 / SEQ f17b, the RTP header as AAD.
const uint8_t kKey[SRTP_AES_GCM_128_KEY_LEN_WSALT] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
    0x0e, 0x0f, 0x51, 0x75, 0x69, 0x64, 0x20, 0x70, 0x72, 0x6f, 0x20, 0x71, 0x75, 0x6f};
uint8_t kIv[16] = {0x51, 0x75, 0x3c, 0x65, 0x80, 0xc2, 0x72, 0x6f, 0x20, 0x71, 0x84, 0x14};
const uint8_t kAad[12] = {0x80, 0x40, 0xf1, 0x7b, 0x80, 0x41, 0xf8, 0xd3, 0x55, 0x01, 0xa0, 0xb2};
const uint8_t kPlain[38] = {0x47, 0x61, 0x6c, 0x6c, 0x69, 0x61, 0x20, 0x65, 0x73, 0x74, 0x20, 0x6f, 0x6d,
                            0x6e, 0x69, 0x73, 0x20, 0x64, 0x69, 0x76, 0x69, 0x73, 0x61, 0x20, 0x69, 0x6e,
                            0x20, 0x70, 0x61, 0x72, 0x74, 0x65, 0x73, 0x20, 0x74, 0x72, 0x65, 0x73};
const uint8_t kCipher[54] = {0xf2, 0x4d, 0xe3, 0xa3, 0xfb, 0x34, 0xde, 0x6c, 0xac, 0xba, 0x86, 0x1c, 0x9d, 0x7e,
                             0x4b, 0xca, 0xbe, 0x63, 0x3b, 0xd5, 0x0d, 0x29, 0x4e, 0x6f, 0x42, 0xa5, 0xf4, 0x7a,
                             0x51, 0xc7, 0xd1, 0x9b, 0x36, 0xde, 0x3a, 0xdf, 0x88, 0x33, 0x89, 0x9d, 0x7f, 0x27,
                             0xbe, 0xb1, 0x6a, 0x91, 0x52, 0xcf, 0x76, 0x5e, 0xe4, 0x39, 0x0c, 0xce};
const srtp_cipher_test_case_t kRfc7714Test = {SRTP_AES_GCM_128_KEY_LEN_WSALT, kKey, kIv, 38, kPlain, 54, kCipher,
                                              12, kAad, 16, &srtp_aes_gcm_128_test_case_0};

const srtp_cipher_type_t kFastGcm = {gcm_alloc, gcm_dealloc, gcm_init, gcm_set_aad, gcm_encrypt, gcm_decrypt,
                                     gcm_set_iv, gcm_get_tag, "AES-128 GCM (EVP, one context per direction)",
                                     &kRfc7714Test, SRTP_AES_GCM_128};

}  // namespace

const srtp_cipher_type_t* srtp_fast_gcm_type() { return &kFastGcm; }

bool srtp_fast_gcm_install() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] { ok = srtp_replace_cipher_type(&kFastGcm, SRTP_AES_GCM_128) == srtp_err_status_ok; });
  return ok;
}

}  // namespace veil::dp
