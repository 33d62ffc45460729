// libsrtp2 start-up: initialises the library once and says which crypto backend it was
// built with. Veil links a libsrtp2 built on OpenSSL (docs/dependencies.md); veild refuses
// to start with another backend, since Debian's NSS build is 4.6x slower per packet.
#pragma once

#include <string>

namespace veil::dp {

struct SrtpInfo {
  bool ok = false;            // srtp_init succeeded
  bool openssl = false;       // AES-CM and HMAC-SHA1 are OpenSSL's
  std::string version;        // "libsrtp2 2.5.0"
  std::string backend;        // "openssl", "nss", ...
};

SrtpInfo srtp_start();

}  // namespace veil::dp
