// AES-128-GCM (RFC 7714) for libsrtp2 with fewer OpenSSL calls per packet.
//
// libsrtp2 2.5.0's OpenSSL AES-GCM re-initialises the EVP context with the packet's IV and the
// direction, sets a dummy tag before the AAD, and gets or sets the tag through
// EVP_CIPHER_CTX_ctrl, which OpenSSL 3 translates into provider parameters each time: about
// 1,000-1,300 cycles per packet on the development VM, against about 550 for the same
// encryption with one context per direction keyed once, the IV set alone, and the tag read or
// set through prebuilt parameters (measured with a loop of each).
// Installed with libsrtp2's extension point (srtp_replace_cipher_type) for SRTP_AES_GCM_128;
// its self-test (run by libsrtp2 on install) is RFC 7714 16.1.1 and libsrtp2's own case.
#pragma once

struct srtp_cipher_type_t;  // <srtp2/cipher.h>

namespace veil::dp {

// Installs it (once; later calls return the first result). libsrtp2 must be initialised.
bool srtp_fast_gcm_install();
// The cipher type itself (tests run the RFC vectors through it directly).
const srtp_cipher_type_t* srtp_fast_gcm_type();

}  // namespace veil::dp
