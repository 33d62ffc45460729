#include "dataplane/srtp_lib.h"

#include <srtp2/srtp.h>

namespace veil::dp {

namespace {
// Each backend registers debug modules under its own names (libsrtp
// crypto/cipher/aes_icm_{ossl,nss}.c, crypto/hash/hmac_{ossl,nss}.c);
// srtp_set_debug_module fails for a name that is not registered.
bool has_module(const char* name) {
  return srtp_set_debug_module(name, 0) == srtp_err_status_ok;
}
}  // namespace

SrtpInfo srtp_start() {
  SrtpInfo info;
  info.ok = srtp_init() == srtp_err_status_ok;
  if (!info.ok) return info;
  info.version = srtp_get_version_string();
  if (has_module("aes icm ossl") && has_module("hmac sha-1 openssl")) {
    info.openssl = true;
    info.backend = "openssl";
  } else if (has_module("aes icm nss")) {
    info.backend = "nss";
  } else if (has_module("aes icm mbedtls")) {
    info.backend = "mbedtls";
  } else {
    info.backend = "builtin";
  }
  return info;
}

}  // namespace veil::dp
