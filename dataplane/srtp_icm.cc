#include "dataplane/srtp_icm.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <srtp2/cipher.h>

#include <immintrin.h>

#include <atomic>
#include <cstddef>
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

// AES-NI (checked once at run time; the build may target a CPU without it). Tests can force
// the portable path (srtp_fast_icm_use_aesni).
// A function-local static, not a namespace-scope one: correct even if a cipher is keyed during
// another translation unit's static initialisation.
bool cpu_aesni() {
  static const bool yes = [] {
    __builtin_cpu_init();  // may run before libgcc's own constructor did
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("sse4.1");
  }();
  return yes;
}
constinit std::atomic<bool> g_portable{false};  // tests: force the EVP path
bool use_aesni() { return cpu_aesni() && !g_portable.load(std::memory_order_relaxed); }

// One allocation, 64-byte aligned: the srtp_cipher_t libsrtp2 sees, then this state, so the
// per-packet reads (type, state pointer, counter, round keys) are four adjacent lines and no
// pointer is chased beyond cipher->state.
struct IcmState {
  unsigned ks_left = 0;   // unused bytes at the end of ks
  uint8_t counter[16];    // next counter block
  uint8_t offset[16];     // salt || 00 00
  alignas(16) uint8_t rk[11 * 16];  // AES-128 round keys (AES-NI path)
  // Not read per packet on the AES-NI path when the payload is whole blocks:
  uint8_t ks[16];         // keystream of the last block, for a call that ends mid-block
  EVP_CIPHER_CTX* ecb = nullptr;  // the portable path: AES-128-ECB through EVP
};
constexpr size_t kStateAt = 32;  // sizeof(srtp_cipher_t) is 24: the state starts 16-aligned
static_assert(sizeof(srtp_cipher_t) <= kStateAt);
static_assert(kStateAt % 16 == 0 && offsetof(IcmState, rk) % 16 == 0);
static_assert(kStateAt + offsetof(IcmState, ks) <= 256, "the per-packet lines: 0-3");
constexpr size_t kAllocSize = (kStateAt + sizeof(IcmState) + 63) / 64 * 64;

extern const srtp_cipher_type_t kFastIcm;

srtp_err_status_t icm_alloc(srtp_cipher_t** c, int key_len, int) {
  if (key_len != int(kKeyWithSalt)) return srtp_err_status_bad_param;
  auto* mem = static_cast<uint8_t*>(std::aligned_alloc(64, kAllocSize));
  if (!mem) return srtp_err_status_alloc_fail;
  std::memset(mem, 0, kAllocSize);
  auto* cipher = reinterpret_cast<srtp_cipher_t*>(mem);
  auto* st = new (mem + kStateAt) IcmState();
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
  OPENSSL_cleanse(c, kAllocSize);
  std::free(c);
  return srtp_err_status_ok;
}

// AES-128 key expansion (FIPS 197 5.2) with AESKEYGENASSIST.
#define VEIL_AESNI __attribute__((target("aes,sse4.1")))
template <int Rcon>
VEIL_AESNI inline __m128i expand_step(__m128i k) {
  __m128i t = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(k, Rcon), 0xff);
  k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
  k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
  k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
  return _mm_xor_si128(k, t);
}
VEIL_AESNI void expand_key(uint8_t* rk_bytes, const uint8_t* key) {
  auto* rk = reinterpret_cast<__m128i*>(rk_bytes);
  rk[0] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key));
  rk[1] = expand_step<0x01>(rk[0]);
  rk[2] = expand_step<0x02>(rk[1]);
  rk[3] = expand_step<0x04>(rk[2]);
  rk[4] = expand_step<0x08>(rk[3]);
  rk[5] = expand_step<0x10>(rk[4]);
  rk[6] = expand_step<0x20>(rk[5]);
  rk[7] = expand_step<0x40>(rk[6]);
  rk[8] = expand_step<0x80>(rk[7]);
  rk[9] = expand_step<0x1b>(rk[8]);
  rk[10] = expand_step<0x36>(rk[9]);
}

srtp_err_status_t icm_init(void* sv, const uint8_t* key) {
  auto* st = static_cast<IcmState*>(sv);
  std::memset(st->offset, 0, sizeof st->offset);
  std::memcpy(st->offset, key + kKeyLen, kSaltLen);
  std::memcpy(st->counter, st->offset, 16);
  st->ks_left = 0;
  if (cpu_aesni()) expand_key(st->rk, key);
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

// The portable path: the counter blocks of up to kChunkBlocks at a time through EVP ECB.
srtp_err_status_t encrypt_evp(IcmState* st, uint8_t* buf, unsigned len) {
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

// The AES-NI path: N counter blocks encrypted side by side (independent AESENC chains keep
// both AES units busy), XORed straight into the buffer. `len` is at most 16 * N and more
// than 16 * (N - 1); a last partial block keeps its unused keystream in st->ks.
template <unsigned N>
VEIL_AESNI inline void ctr_blocks(IcmState* st, uint64_t& hi, uint64_t& lo, uint8_t* buf, unsigned len) {
  const auto* rk = reinterpret_cast<const __m128i*>(st->rk);
  __m128i b[N];
#pragma GCC unroll 16
  for (unsigned i = 0; i < N; ++i) {
    // Memory order: bytes 0-7 the high half, big-endian; bytes 8-15 the low half.
    b[i] = _mm_xor_si128(_mm_set_epi64x(static_cast<long long>(__builtin_bswap64(lo)),
                                        static_cast<long long>(__builtin_bswap64(hi))),
                         rk[0]);
    if (++lo == 0) ++hi;
  }
#pragma GCC unroll 16
  for (unsigned r = 1; r < 10; ++r) {
    __m128i k = _mm_load_si128(rk + r);
#pragma GCC unroll 16
    for (unsigned i = 0; i < N; ++i) b[i] = _mm_aesenc_si128(b[i], k);
  }
  __m128i k = _mm_load_si128(rk + 10);
#pragma GCC unroll 16
  for (unsigned i = 0; i < N; ++i) b[i] = _mm_aesenclast_si128(b[i], k);
  unsigned full = len / 16;
#pragma GCC unroll 16
  for (unsigned i = 0; i < N; ++i) {
    if (i < full) {
      auto* p = reinterpret_cast<__m128i*>(buf + 16 * i);
      _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), b[i]));
    }
  }
  if (unsigned rest = len % 16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(st->ks), b[N - 1]);
    xor_bytes(buf + 16 * full, st->ks, rest);
    st->ks_left = 16 - rest;
  }
}

VEIL_AESNI srtp_err_status_t encrypt_aesni(IcmState* st, uint8_t* buf, unsigned len) {
  uint64_t hi = load_be64(st->counter), lo = load_be64(st->counter + 8);
  for (; len >= 128; buf += 128, len -= 128) ctr_blocks<8>(st, hi, lo, buf, 128);
  switch ((len + 15) / 16) {
    case 1: ctr_blocks<1>(st, hi, lo, buf, len); break;
    case 2: ctr_blocks<2>(st, hi, lo, buf, len); break;
    case 3: ctr_blocks<3>(st, hi, lo, buf, len); break;
    case 4: ctr_blocks<4>(st, hi, lo, buf, len); break;
    case 5: ctr_blocks<5>(st, hi, lo, buf, len); break;
    case 6: ctr_blocks<6>(st, hi, lo, buf, len); break;
    case 7: ctr_blocks<7>(st, hi, lo, buf, len); break;
    case 8: ctr_blocks<8>(st, hi, lo, buf, len); break;
    default: break;  // nothing left
  }
  store_be64(st->counter, hi);
  store_be64(st->counter + 8, lo);
  return srtp_err_status_ok;
}

srtp_err_status_t icm_encrypt(void* sv, uint8_t* buf, unsigned int* len_ptr) {
  auto* st = static_cast<IcmState*>(sv);
  unsigned len = *len_ptr;
  // Keystream left over from a previous call that ended inside a block.
  while (len && st->ks_left) {
    *buf++ ^= st->ks[16 - st->ks_left--];
    --len;
  }
  if (!len) return srtp_err_status_ok;
  return use_aesni() ? encrypt_aesni(st, buf, len) : encrypt_evp(st, buf, len);
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
                                     icm_set_iv, nullptr, "AES-128 ICM (AES-NI, or EVP ECB on counter blocks)",
                                     &kB2Test, SRTP_AES_ICM_128};

}  // namespace

const srtp_cipher_type_t* srtp_fast_icm_type() { return &kFastIcm; }

bool srtp_fast_icm_use_aesni(bool on) {
  g_portable.store(!on);
  return use_aesni();
}

bool srtp_fast_icm_install() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] { ok = srtp_replace_cipher_type(&kFastIcm, SRTP_AES_ICM_128) == srtp_err_status_ok; });
  return ok;
}

}  // namespace veil::dp
