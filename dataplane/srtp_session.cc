#include "dataplane/srtp_session.h"

#include "dataplane/srtp_gcm.h"
#include "dataplane/srtp_hmac.h"
#include "dataplane/srtp_icm.h"

#include <srtp2/srtp.h>

#include <cstring>
#include <mutex>

// libsrtp2's own lookup of a session's stream by SSRC (network byte order), exported by the
// library though declared in its private header; Veil only prefetches what it returns.
extern "C" void* srtp_get_stream(srtp_t srtp, uint32_t ssrc);
#include <new>

namespace veil::dp {

namespace {
std::atomic<bool> g_stock_crypto{false};

struct ProfileInfo {
  SrtpProfile p;
  const char* name;
  srtp_profile_t lib;
  unsigned master_len;
};
constexpr ProfileInfo kProfiles[] = {
    {SrtpProfile::AesCm128HmacSha1_80, "AES_CM_128_HMAC_SHA1_80", srtp_profile_aes128_cm_sha1_80, 30},
    {SrtpProfile::AesCm128HmacSha1_32, "AES_CM_128_HMAC_SHA1_32", srtp_profile_aes128_cm_sha1_32, 30},
    {SrtpProfile::AeadAes128Gcm, "AEAD_AES_128_GCM", srtp_profile_aead_aes_128_gcm, 28},
};
const ProfileInfo* info(SrtpProfile p) {
  for (const auto& i : kProfiles)
    if (i.p == p) return &i;
  return nullptr;
}

void set_why(std::string* why, std::string text) {
  if (why) *why = std::move(text);
}

uint32_t rd32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

SrtpResult map(srtp_err_status_t st) {
  switch (st) {
    case srtp_err_status_ok: return SrtpResult::Ok;
    case srtp_err_status_auth_fail:
    case srtp_err_status_bad_mki: return SrtpResult::AuthFail;  // not the key's MKI: not the peer's packet
    case srtp_err_status_replay_fail:
    case srtp_err_status_replay_old: return SrtpResult::Replay;
    default: return SrtpResult::Error;
  }
}

// The SSRC a packet belongs to: RTP at offset 8, RTCP (sender SSRC) at offset 4.
// Known SSRCs pass; a new one is accepted while the session has room (libsrtp allocates its
// stream when the packet succeeds), otherwise refused.
bool ssrc_admitted(const SrtpSession& s, uint32_t ssrc, bool& known) {
  for (unsigned i = 0; i < s.n_ssrc; ++i)
    if (s.ssrcs[i] == ssrc) return known = true;
  known = false;
  return s.n_ssrc < kSrtpMaxSsrc;
}

// A new SSRC that libsrtp2 now holds a stream for.
void learned_ssrc(SrtpSession& s, uint32_t ssrc) {
  if (s.n_ssrc == 0) s.stream0 = srtp_get_stream(s.ctx, __builtin_bswap32(ssrc));
  s.ssrcs[s.n_ssrc++] = ssrc;
}

// Taken with an exchange, never waited for.
struct Busy {
  explicit Busy(SrtpSession& s) : s_(s), got_(s.busy.exchange(1, std::memory_order_acquire) == 0) {}
  ~Busy() {
    if (got_) s_.busy.store(0, std::memory_order_release);
  }
  bool got() const { return got_; }
  SrtpSession& s_;
  bool got_;
};
}  // namespace

void srtp_use_stock_crypto(bool stock) { g_stock_crypto.store(stock); }

const char* srtp_profile_name(SrtpProfile p) {
  const ProfileInfo* i = info(p);
  return i ? i->name : "none";
}

bool srtp_profile_parse(std::string_view name, SrtpProfile& out) {
  if (name == "none") {
    out = SrtpProfile::None;
    return true;
  }
  for (const auto& i : kProfiles) {
    if (name == i.name) {
      out = i.p;
      return true;
    }
  }
  return false;
}

unsigned srtp_master_len(SrtpProfile p) {
  const ProfileInfo* i = info(p);
  return i ? i->master_len : 0;
}

bool srtp_keying_parse(std::string_view text, SrtpKeying& out, std::string* why) {
  out = SrtpKeying{};
  if (text == "none") return true;
  size_t colon = text.find(':');
  if (colon == std::string_view::npos || !srtp_profile_parse(text.substr(0, colon), out.profile) ||
      out.profile == SrtpProfile::None)
    return set_why(why, "SRTP keying is none, PROFILE:pending or PROFILE:HEXKEY (profiles: "
                        "AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32, AEAD_AES_128_GCM)"),
           false;
  std::string_view key = text.substr(colon + 1);
  if (key == "pending") return true;
  unsigned n = srtp_master_len(out.profile);
  if (key.size() != 2 * n)
    return set_why(why, std::string(srtp_profile_name(out.profile)) + " needs " + std::to_string(2 * n) +
                            " hex digits (master key || master salt)"),
           false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (unsigned i = 0; i < n; ++i) {
    int hi = nibble(key[2 * i]), lo = nibble(key[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      out = SrtpKeying{};
      return set_why(why, "SRTP key is not hexadecimal"), false;
    }
    out.master[i] = uint8_t(hi << 4 | lo);
  }
  out.keyed = true;
  return true;
}

std::string srtp_keying_describe(const SrtpKeying& k) {
  if (!k.enabled()) return "none";
  return std::string(srtp_profile_name(k.profile)) + (k.keyed ? " (keyed)" : " (keys pending)");
}

SrtpSession* srtp_session_create(const SrtpKeying& k, bool outbound, std::string* why) {
  static std::once_flag once;
  static srtp_err_status_t init_status = srtp_err_status_fail;
  // srtp_init() fails when called a second time (veild's srtp_start() and tests call it
  // first): a registered cipher module says the library is already up.
  std::call_once(once, [] {
    init_status = srtp_set_debug_module("aes icm ossl", 0) == srtp_err_status_ok ? srtp_err_status_ok
                                                                                : srtp_init();
    if (init_status == srtp_err_status_ok && !g_stock_crypto.load() &&
        (!srtp_fast_hmac_install() || !srtp_fast_icm_install() || !srtp_fast_gcm_install()))
      init_status = srtp_err_status_init_fail;
  });
  if (init_status != srtp_err_status_ok) return set_why(why, "libsrtp2 initialisation failed"), nullptr;

  const ProfileInfo* pi = info(k.profile);
  if (!pi) return set_why(why, "unknown SRTP profile"), nullptr;
  auto* s = new (std::nothrow) SrtpSession();
  if (!s) return set_why(why, "out of memory for an SRTP session"), nullptr;
  s->outbound = outbound;
  s->profile = k.profile;
  s->keyed = k.keyed;
  if (!k.keyed) return s;  // keys still to come: every packet is dropped (srtp_no_key)

  srtp_policy_t policy;
  std::memset(&policy, 0, sizeof policy);
  if (srtp_crypto_policy_set_from_profile_for_rtp(&policy.rtp, pi->lib) != srtp_err_status_ok ||
      srtp_crypto_policy_set_from_profile_for_rtcp(&policy.rtcp, pi->lib) != srtp_err_status_ok) {
    delete s;
    return set_why(why, "libsrtp2 does not support " + std::string(pi->name)), nullptr;
  }
  policy.ssrc.type = outbound ? ssrc_any_outbound : ssrc_any_inbound;
  // libsrtp copies the key into its own contexts in srtp_create.
  uint8_t key[kSrtpMaxMaster + 16] = {};
  std::memcpy(key, k.master, pi->master_len);
  policy.key = key;
  // With an MKI: the key as libsrtp2's one-entry master key list, so that packets carry (and
  // are checked for) its MKI.
  uint8_t mki[kSrtpMaxMki] = {};
  srtp_master_key_t master_key{key, mki, k.mki_len};
  srtp_master_key_t* master_keys[1] = {&master_key};
  if (k.mki_len) {
    if (k.mki_len > kSrtpMaxMki) {
      delete s;
      return set_why(why, "MKI longer than " + std::to_string(kSrtpMaxMki) + " bytes"), nullptr;
    }
    std::memcpy(mki, k.mki, k.mki_len);
    policy.key = nullptr;
    policy.keys = master_keys;
    policy.num_master_keys = 1;
    s->use_mki = true;
  }
  policy.window_size = kSrtpReplayWindow;
  policy.allow_repeat_tx = 0;  // never encrypt two packets under one index
  srtp_t ctx = nullptr;
  srtp_err_status_t st = srtp_create(&ctx, &policy);
  std::memset(key, 0, sizeof key);
  if (st != srtp_err_status_ok) {
    delete s;
    return set_why(why, "srtp_create failed (libsrtp2 status " + std::to_string(int(st)) + ")"), nullptr;
  }
  s->ctx = ctx;
  uint32_t rtp = 0, rtcp = 0;
  if (srtp_get_protect_trailer_length(ctx, s->use_mki, 0, &rtp) != srtp_err_status_ok ||
      srtp_get_protect_rtcp_trailer_length(ctx, s->use_mki, 0, &rtcp) != srtp_err_status_ok || rtp > 255 ||
      rtcp > 255) {
    srtp_session_free(s);
    return set_why(why, "cannot size the SRTP trailer"), nullptr;
  }
  s->rtp_trailer = uint8_t(rtp);
  s->rtcp_trailer = uint8_t(rtcp);
  return s;
}

void srtp_session_free(SrtpSession* s) {
  if (!s) return;
  if (s->ctx) srtp_dealloc(s->ctx);
  delete s;
}

SrtpResult srtp_session_unprotect(SrtpSession& s, uint8_t* payload, uint32_t& len) {
  if (!s.keyed) return SrtpResult::NoKey;
  bool rtcp = len >= 2 && is_rtcp(payload);
  if (len < (rtcp ? 8u : 12u) || len > 0xffff) return SrtpResult::Error;
  Busy b(s);
  if (!b.got()) return SrtpResult::Error;
  uint32_t ssrc = rd32(payload + (rtcp ? 4 : 8));
  bool known;
  if (!ssrc_admitted(s, ssrc, known)) return SrtpResult::Error;
  int n = int(len);
  // libsrtp checks the replay window, then the tag before decrypting (RFC 3711 3.3); AES-GCM
  // checks its tag while decrypting in place, and a packet that fails is dropped whole.
  srtp_err_status_t st = rtcp ? srtp_unprotect_rtcp_mki(s.ctx, payload, &n, s.use_mki)
                              : srtp_unprotect_mki(s.ctx, payload, &n, s.use_mki);
  if (st != srtp_err_status_ok) return map(st);
  if (!known) learned_ssrc(s, ssrc);
  len = uint32_t(n);
  return SrtpResult::Ok;
}

SrtpResult srtp_session_protect(SrtpSession& s, uint8_t* payload, uint32_t& len, uint32_t room) {
  if (!s.keyed) return SrtpResult::NoKey;
  bool rtcp = len >= 2 && is_rtcp(payload);
  if (len < (rtcp ? 8u : 12u)) return SrtpResult::Error;
  uint32_t trailer = rtcp ? s.rtcp_trailer : s.rtp_trailer;
  if (room < trailer || len + trailer > 0xffff) return SrtpResult::Error;
  Busy b(s);
  if (!b.got()) return SrtpResult::Error;
  uint32_t ssrc = rd32(payload + (rtcp ? 4 : 8));
  bool known;
  if (!ssrc_admitted(s, ssrc, known)) return SrtpResult::Error;
  int n = int(len);
  srtp_err_status_t st = rtcp ? srtp_protect_rtcp_mki(s.ctx, payload, &n, s.use_mki, 0)
                              : srtp_protect_mki(s.ctx, payload, &n, s.use_mki, 0);
  if (st != srtp_err_status_ok) return map(st);
  if (!known) learned_ssrc(s, ssrc);
  len = uint32_t(n);
  return SrtpResult::Ok;
}

}  // namespace veil::dp
