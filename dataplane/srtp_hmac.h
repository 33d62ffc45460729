// HMAC-SHA1 for libsrtp2 without a per-packet allocation.
//
// libsrtp2 2.5.0 on OpenSSL 3 computes the SRTP/SRTCP tag of AES_CM_128_HMAC_SHA1_* with
// HMAC_Init_ex on a reused HMAC_CTX per packet, which OpenSSL 3 implements by duplicating its
// digest contexts: two malloc/free pairs and about half of the packet's crypto time
// (docs/performance.md). This auth type keeps the inner and outer SHA-1 states of the key
// (RFC 2104) precomputed and copies them per packet: no allocation, same bytes.
// It is installed with libsrtp2's own extension point (srtp_replace_auth_type) for
// SRTP_HMAC_SHA1; sessions created afterwards use it. RFC 2202 known answers are its
// self-test, which libsrtp2 runs when it is installed.
#pragma once

struct srtp_auth_type_t;  // <srtp2/auth.h>

namespace veil::dp {

// Installs it (once; later calls return the first result). libsrtp2 must be initialised.
bool srtp_fast_hmac_install();
// The auth type itself (tests drive it directly).
const srtp_auth_type_t* srtp_fast_hmac_type();

}  // namespace veil::dp
