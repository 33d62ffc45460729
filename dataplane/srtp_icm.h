// AES-128 in counter mode (RFC 3711 4.1.1, "AES-ICM") for libsrtp2 without per-packet
// re-initialisation.
//
// libsrtp2 2.5.0's OpenSSL AES-ICM calls EVP_EncryptInit_ex with the packet's IV for every
// packet; OpenSSL 3 handles that through its provider parameter machinery (name lookups with
// strcmp), which costs more than encrypting the 160 bytes. This cipher type expands the key
// once into round keys kept inside its own state and, on a CPU with AES-NI (checked at run
// time), encrypts the packet's counter blocks eight at a time with AESENC and XORs them into
// the payload in the same pass: one call per packet, no OpenSSL call and no pointer chased
// beyond the cipher's state. Without AES-NI it encrypts the counter blocks through one
// AES-128-ECB EVP context per key, never re-initialised. Either way the same keystream
// (128-bit big-endian counter, as OpenSSL's CTR mode), the same bytes.
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
// Tests: false forces the portable (EVP) path, true the AES-NI one if the CPU has it. Returns
// whether the AES-NI path is now in use. Not for use while packets are processed.
bool srtp_fast_icm_use_aesni(bool on);

}  // namespace veil::dp
