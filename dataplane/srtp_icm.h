// AES-128 in counter mode (RFC 3711 4.1.1, "AES-ICM") for libsrtp2 without per-packet
// re-initialisation.
//
// libsrtp2 2.5.0's OpenSSL AES-ICM calls EVP_EncryptInit_ex with the packet's IV for every
// packet; OpenSSL 3 handles that through its provider parameter machinery (name lookups with
// strcmp), which costs more than encrypting the 160 bytes. This cipher type keeps one
// AES-128-ECB context per key and encrypts the packet's counter blocks with it (AES-NI through
// EVP, never re-initialised), then XORs: the same keystream (128-bit big-endian counter, as
// OpenSSL's CTR mode), the same bytes.
// Installed with libsrtp2's extension point (srtp_replace_cipher_type) for SRTP_AES_ICM_128,
// which also serves libsrtp2's key derivation; its self-test (run by libsrtp2 on install) is
// RFC 3711 B.2 and libsrtp2's own AES-ICM-128 test case.
#pragma once

struct srtp_cipher_type_t;  // <srtp2/cipher.h>

namespace veil::dp {

// Installs it (once; later calls return the first result). libsrtp2 must be initialised.
bool srtp_fast_icm_install();
// The cipher type itself (tests run the RFC vectors through it directly).
const srtp_cipher_type_t* srtp_fast_icm_type();

}  // namespace veil::dp
