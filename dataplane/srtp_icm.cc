#include "dataplane/srtp_icm.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <srtp2/cipher.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

extern "C" {
// libsrtp2's own test case for AES-ICM-128 (crypto/cipher/aes_icm_ossl.c), exported.
extern const srtp_cipher_test_case_t srtp_aes_icm_128_test_case_0;
}

namespace veil::dp {

namespace {

constexpr unsigned kKeyLen = 16, kSaltLen = 14, kKeyWithSalt = kKeyLen + kSaltLen;
constexpr unsigned kChunkBlocks = 16;

struct IcmState {
  EVP_CIPHER_CTX* ecb = nullptr;
  uint8_t offset[16];   // salt || 00 00
  uint8_t counter[16];  // next counter block
  uint8_t ks[16];       // keystream of the last block, for a call that ends mid-block
  unsigned ks_left = 0;  // unused bytes at the end of ks
};

extern const srtp_cipher_type_t kFastIcm;

srtp_err_status_t icm_alloc(srtp_cipher_t** c, int key_len, int) {
  if (key_len != int(kKeyWithSalt)) return srtp_err_status_bad_param;
  auto* mem = static_cast<uint8_t*>(std::calloc(1, sizeof(srtp_cipher_t) + sizeof(IcmState)));
  if (!mem) return srtp_err_status_alloc_fail;
  auto* cipher = reinterpret_cast<srtp_cipher_t*>(mem);
  auto* st = new (mem + sizeof(srtp_cipher_t)) IcmState();
  st->ecb = EVP_CIPHER_CTX_new();
  if (!st->ecb) {
    std::free(mem);
    return srtp_err_status_alloc_fail;
  }
  cipher->type = &kFastIcm;
  cipher->state = st;
  cipher->key_len = key_len;
  cipher->algorithm = SRTP_AES_ICM_128;
  *c = cipher;
  return srtp_err_status_ok;
}

srtp_err_status_t icm_dealloc(srtp_cipher_t* c) {
  auto* st = static_cast<IcmState*>(c->state);
  EVP_CIPHER_CTX_free(st->ecb);
  OPENSSL_cleanse(c, sizeof(srtp_cipher_t) + sizeof(IcmState));
  std::free(c);
  return srtp_err_status_ok;
}

srtp_err_status_t icm_init(void* sv, const uint8_t* key) {
  auto* st = static_cast<IcmState*>(sv);
  std::memset(st->offset, 0, sizeof st->offset);
  std::memcpy(st->offset, key + kKeyLen, kSaltLen);
  std::memcpy(st->counter, st->offset, 16);
  st->ks_left = 0;
  if (EVP_EncryptInit_ex(st->ecb, EVP_aes_128_ecb(), nullptr, key, nullptr) != 1 ||
      EVP_CIPHER_CTX_set_padding(st->ecb, 0) != 1)
    return srtp_err_status_init_fail;
  return srtp_err_status_ok;
}

srtp_err_status_t icm_set_iv(void* sv, uint8_t* iv, srtp_cipher_direction_t) {
  auto* st = static_cast<IcmState*>(sv);
  for (unsigned i = 0; i < 16; ++i) st->counter[i] = st->offset[i] ^ iv[i];
  st->ks_left = 0;
  return srtp_err_status_ok;
}

inline uint64_t load_be64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return __builtin_bswap64(v);
}
inline void store_be64(uint8_t* p, uint64_t v) {
  v = __builtin_bswap64(v);
  std::memcpy(p, &v, 8);
}
inline void xor_bytes(uint8_t* dst, const uint8_t* src, unsigned n) {
  unsigned i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t a, b;
    std::memcpy(&a, dst + i, 8);
    std::memcpy(&b, src + i, 8);
    a ^= b;
    std::memcpy(dst + i, &a, 8);
  }
  for (; i < n; ++i) dst[i] ^= src[i];
}

srtp_err_status_t icm_encrypt(void* sv, uint8_t* buf, unsigned int* len_ptr) {
  auto* st = static_cast<IcmState*>(sv);
  unsigned len = *len_ptr;
  // Keystream left over from a previous call that ended inside a block.
  while (len && st->ks_left) {
    *buf++ ^= st->ks[16 - st->ks_left--];
    --len;
  }
  uint8_t blocks[kChunkBlocks * 16];
  uint8_t stream[kChunkBlocks * 16];
  while (len) {
    unsigned n = (len + 15) / 16;
    if (n > kChunkBlocks) n = kChunkBlocks;
    // The counter blocks: a 128-bit big-endian counter, as OpenSSL's CTR mode counts.
    uint64_t hi = load_be64(st->counter), lo = load_be64(st->counter + 8);
    for (unsigned b = 0; b < n; ++b) {
      store_be64(blocks + 16 * b, hi);
      store_be64(blocks + 16 * b + 8, lo);
      if (++lo == 0) ++hi;
    }
    store_be64(st->counter, hi);
    store_be64(st->counter + 8, lo);
    int out = 0;
    if (EVP_EncryptUpdate(st->ecb, stream, &out, blocks, int(16 * n)) != 1 || out != int(16 * n))
      return srtp_err_status_cipher_fail;
    unsigned use = len < 16 * n ? len : 16 * n;
    xor_bytes(buf, stream, use);
    buf += use;
    len -= use;
    if (use % 16) {  // the call ends inside the last block: keep the rest of it
      std::memcpy(st->ks, stream + 16 * (n - 1), 16);
      st->ks_left = 16 - use % 16;
    }
  }
  return srtp_err_status_ok;
}

// RFC 3711 B.2: session key, session salt, IV 0, 48 bytes of keystream.
const uint8_t kB2Key[kKeyWithSalt] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7,
                                      0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c, 0xf0, 0xf1, 0xf2, 0xf3,
                                      0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd};
uint8_t kB2Iv[16] = {};
const uint8_t kB2Zeros[48] = {};
const uint8_t kB2Keystream[48] = {
    0xe0, 0x3e, 0xad, 0x09, 0x35, 0xc9, 0x5e, 0x80, 0xe1, 0x66, 0xb1, 0x6d, 0xd9, 0x2b, 0x4e, 0xb4,
    0xd2, 0x35, 0x13, 0x16, 0x2b, 0x02, 0xd0, 0xf7, 0x2a, 0x43, 0xa2, 0xfe, 0x4a, 0x5f, 0x97, 0xab,
    0x41, 0xe9, 0x5b, 0x3b, 0xb0, 0xa2, 0xe8, 0xdd, 0x47, 0x79, 0x01, 0xe4, 0xfc, 0xa8, 0x94, 0xc0};
const srtp_cipher_test_case_t kB2Test = {int(kKeyWithSalt), kB2Key, kB2Iv, 48, kB2Zeros, 48,
                                         kB2Keystream, 0, nullptr, 0, &srtp_aes_icm_128_test_case_0};

const srtp_cipher_type_t kFastIcm = {icm_alloc, icm_dealloc, icm_init, nullptr, icm_encrypt, icm_encrypt,
                                     icm_set_iv, nullptr, "AES-128 ICM (EVP ECB on counter blocks)",
                                     &kB2Test, SRTP_AES_ICM_128};

}  // namespace

const srtp_cipher_type_t* srtp_fast_icm_type() { return &kFastIcm; }

bool srtp_fast_icm_install() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] { ok = srtp_replace_cipher_type(&kFastIcm, SRTP_AES_ICM_128) == srtp_err_status_ok; });
  return ok;
}

}  // namespace veil::dp
