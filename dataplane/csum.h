// One's complement sums (RFC 1071) for the relay's checksums: the building blocks that
// rewrite_udp and the worker's fast path share. Sums are kept in 64-bit accumulators of
// native-order words and folded once; any 32-bit native word added counts as its two
// 16-bit halves (2^16 = 1 mod 0xffff).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace veil::dp {

// One's complement sum of `n` bytes in native word order (RFC 1071 1.2(B): the sum is
// byte-order independent, so storing the folded native value gives the right bytes).
inline uint64_t sum_bytes(const uint8_t* p, size_t n, uint64_t acc) {
#if defined(__AVX512BW__) && defined(__AVX512F__)
  // 64 bytes per step, the tail (under 64 bytes) in one masked, zero-filled load: a 172-byte
  // RTP payload in three steps and no scalar tail. 32-bit words into 64-bit lanes as below; a
  // zero-filled partial word adds what the scalar tail would (an odd last byte is the first,
  // high-order, byte of its 16-bit word either way).
  {
    const __m512i lo32 = _mm512_set1_epi64(0xffffffff);
    __m512i va = _mm512_setzero_si512();
    while (n >= 64) {
      __m512i v = _mm512_loadu_si512(p);
      va = _mm512_add_epi64(va, _mm512_and_si512(v, lo32));
      va = _mm512_add_epi64(va, _mm512_maskz_srli_epi64(__mmask8(0xff), v, 32));
      p += 64;
      n -= 64;
    }
    if (n) {
      __m512i v = _mm512_maskz_loadu_epi8(__mmask64((uint64_t(1) << n) - 1), p);
      va = _mm512_add_epi64(va, _mm512_and_si512(v, lo32));
      va = _mm512_add_epi64(va, _mm512_maskz_srli_epi64(__mmask8(0xff), v, 32));
    }
    // Lanes added pairwise (each < 2^45: no carry). The zero-masked extract: GCC 12's
    // unmasked forms trip -Wuninitialized inside its own headers.
    __m256i y = _mm256_add_epi64(_mm512_maskz_extracti64x4_epi64(__mmask8(0xf), va, 0),
                                 _mm512_maskz_extracti64x4_epi64(__mmask8(0xf), va, 1));
    __m128i x = _mm_add_epi64(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1));
    uint64_t s = uint64_t(_mm_cvtsi128_si64(x)) + uint64_t(_mm_extract_epi64(x, 1));
    acc += s;
    acc += (acc < s);  // end-around carry
    return acc;
  }
#endif
  // 32-bit words summed into 64-bit lanes: no end-around carry per step (2^32 words cannot
  // overflow them); folded once at the end. With AVX2, 32 bytes per step (a 172-byte RTP
  // payload in 5 steps instead of 22).
  uint64_t a0 = 0, a1 = 0;
#if defined(__AVX2__)
  if (n >= 32) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i va = zero, vb = zero;
    while (n >= 32) {
      __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      va = _mm256_add_epi64(va, _mm256_unpacklo_epi32(v, zero));
      vb = _mm256_add_epi64(vb, _mm256_unpackhi_epi32(v, zero));
      p += 32;
      n -= 32;
    }
    __m256i v = _mm256_add_epi64(va, vb);
    __m128i h = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    a0 = uint64_t(_mm_cvtsi128_si64(h));
    a1 = uint64_t(_mm_extract_epi64(h, 1));
  }
#endif
  while (n >= 8) {
    uint32_t x, y;
    std::memcpy(&x, p, 4);
    std::memcpy(&y, p + 4, 4);
    a0 += x;
    a1 += y;
    p += 8;
    n -= 8;
  }
  if (n >= 4) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    a0 += v;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    a1 += v;
    p += 2;
    n -= 2;
  }
  if (n) {
    uint16_t v = 0;
    std::memcpy(&v, p, 1);  // the odd byte is the high-order byte of a zero-padded word
    a0 += v;
  }
  uint64_t s = a0 + a1;  // each < 2^45 for any frame: no carry
  acc += s;
  acc += (acc < s);  // end-around carry
  return acc;
}

// The two 32-bit halves of `w` added (two IPv4 addresses as loaded: four native words).
[[gnu::always_inline]] inline uint64_t halves_sum(uint64_t w) { return (w & 0xffffffffu) + (w >> 32); }

// An IPv4 (4-byte) or IPv6 (16-byte) address as native 32-bit words summed into 64 bits,
// as sum_bytes adds them (fixed-size loads: no loop, no run-time length).
[[gnu::always_inline]] inline uint64_t addr_words(const uint8_t* a, bool v4) {
  if (v4) {
    uint32_t x;
    std::memcpy(&x, a, 4);
    return x;
  }
  uint64_t x, y;
  std::memcpy(&x, a, 8);
  std::memcpy(&y, a + 8, 8);
  return halves_sum(x) + halves_sum(y);
}

// The native-order word that a big-endian 16-bit field holding `v` contributes to a sum.
[[gnu::always_inline]] inline uint64_t be_word(uint16_t v) {
  return uint16_t(v << 8 | v >> 8);
}

// fold() for a sum known to be below 2^32 (a few 16-bit words): half the instructions.
[[gnu::always_inline]] inline uint16_t fold32(uint32_t x) {
  x = (x & 0xffff) + (x >> 16);  // < 2^17
  x += x >> 16;
  return uint16_t(x);
}

// Folds a sum of native words (below 2^63) into 16 bits with end-around carries.
[[gnu::always_inline]] inline uint16_t fold(uint64_t acc) {
  acc = halves_sum(acc);  // < 2^33
  acc += acc >> 32;                         // the carry back in: the low 32 bits are the sum
  return fold32(uint32_t(acc));
}

}  // namespace veil::dp
