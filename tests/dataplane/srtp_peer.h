// The other end of an SRTP leg in dataplane tests: a browser's or a phone's own libsrtp2
// session (keyed like Veil's flow, AES-CM-80 or AES-GCM), protecting what the test sends and
// unprotecting what Veil sends; with the keying's MKI (SrtpKeying::mki_len) its packets carry
// it. Shared by srtp_test.cc and bundle_test.cc.
#pragma once

#include <gtest/gtest.h>
#include <srtp2/srtp.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "dataplane/srtp_session.h"

namespace veil::dptest {

class SrtpPeer {
 public:
  using Bytes = std::vector<uint8_t>;
  SrtpPeer(const dp::SrtpKeying& k, bool outbound) {
    srtp_profile_t lp = k.profile == dp::SrtpProfile::AeadAes128Gcm ? srtp_profile_aead_aes_128_gcm
                                                                     : srtp_profile_aes128_cm_sha1_80;
    srtp_policy_t policy;
    std::memset(&policy, 0, sizeof policy);
    srtp_crypto_policy_set_from_profile_for_rtp(&policy.rtp, lp);
    srtp_crypto_policy_set_from_profile_for_rtcp(&policy.rtcp, lp);
    policy.ssrc.type = outbound ? ssrc_any_outbound : ssrc_any_inbound;
    std::memcpy(key_, k.master, sizeof k.master);
    policy.key = key_;
    std::memcpy(mki_, k.mki, sizeof k.mki);
    srtp_master_key_t mk{key_, mki_, k.mki_len};
    srtp_master_key_t* keys[1] = {&mk};
    if (k.mki_len) {
      use_mki_ = 1;
      policy.key = nullptr;
      policy.keys = keys;
      policy.num_master_keys = 1;
    }
    EXPECT_EQ(srtp_create(&s_, &policy), srtp_err_status_ok);
  }
  SrtpPeer(const SrtpPeer&) = delete;
  SrtpPeer& operator=(const SrtpPeer&) = delete;
  ~SrtpPeer() { srtp_dealloc(s_); }
  Bytes protect(Bytes p) {
    int len = int(p.size());
    p.resize(p.size() + SRTP_MAX_TRAILER_LEN + 4);
    bool rtcp = p[1] >= 192 && p[1] <= 223;
    EXPECT_EQ(rtcp ? srtp_protect_rtcp_mki(s_, p.data(), &len, use_mki_, 0)
                   : srtp_protect_mki(s_, p.data(), &len, use_mki_, 0),
              srtp_err_status_ok);
    p.resize(size_t(len));
    return p;
  }
  // Unprotects; empty on failure.
  Bytes unprotect(Bytes p) {
    int len = int(p.size());
    bool rtcp = p[1] >= 192 && p[1] <= 223;
    if ((rtcp ? srtp_unprotect_rtcp_mki(s_, p.data(), &len, use_mki_)
              : srtp_unprotect_mki(s_, p.data(), &len, use_mki_)) != srtp_err_status_ok)
      return {};
    p.resize(size_t(len));
    return p;
  }

 private:
  srtp_t s_ = nullptr;
  uint8_t key_[32] = {};
  uint8_t mki_[dp::kSrtpMaxMki] = {};
  unsigned use_mki_ = 0;
};

}  // namespace veil::dptest
