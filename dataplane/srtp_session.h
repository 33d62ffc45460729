// SRTP/SRTCP in the dataplane: one libsrtp2 session per flow direction, created by the
// control plane when a flow is installed (or re-keyed) and used by the flow's worker.
//
// A flow can unprotect what it receives (`FlowSpec::srtp_in`), protect what it sends
// (`FlowSpec::srtp_out`), both (SRTP<->SRTP re-keyed) or neither (RTP relay). The session
// lives outside the flow's action slots, so an action flip (a new destination, latching
// mode...) keeps its rollover counters and replay window; it is replaced only when its keys
// change, and the old one is freed after an RCU grace period (dataplane/flow_table.cc).
//
// Per packet: no allocation, lock, system call or log line in Veil's code. libsrtp2 allocates
// a stream the first time a new SSRC authenticates (it clones the session's template); that is
// capped at kSrtpMaxSsrc SSRCs per session, beyond which packets are dropped (srtp_error).
// No library here needs EAL: unit tests use it on plain buffers.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/drops.h"

struct srtp_ctx_t_;  // libsrtp2's session (srtp_t), kept out of this header

namespace veil::dp {

enum class SrtpProfile : uint8_t {
  None = 0,             // plain RTP/RTCP on this side
  AesCm128HmacSha1_80,  // RFC 3711 / 4568 AES_CM_128_HMAC_SHA1_80 (SRTCP tag 80 bits)
  AesCm128HmacSha1_32,  // AES_CM_128_HMAC_SHA1_32 (SRTP tag 32 bits, SRTCP 80 bits, RFC 4568)
  AeadAes128Gcm,        // RFC 7714 AEAD_AES_128_GCM (16-byte tag)
};
// RFC 4568 / RFC 7714 names ("AES_CM_128_HMAC_SHA1_80", ...); "none" for None.
const char* srtp_profile_name(SrtpProfile p);
// Accepts the names above; false if unknown.
bool srtp_profile_parse(std::string_view name, SrtpProfile& out);
// Master key + master salt length: 30 for AES-CM-128 (16 + 14), 28 for AES-128-GCM (16 + 12).
unsigned srtp_master_len(SrtpProfile p);

inline constexpr unsigned kSrtpMaxMaster = 30;
inline constexpr unsigned kSrtpMaxMki = 4;  // bytes of an RFC 3711 MKI Veil accepts (SDES "|N:L")
inline constexpr unsigned kSrtpMaxSsrc = 8;       // SSRCs per session (BUNDLE: audio+video+rtx)
inline constexpr unsigned kSrtpReplayWindow = 128;  // packets (libsrtp2's default; RFC 3711 asks >= 64)

// One side's keying, as the control plane gets it from SDES (RFC 4568) or DTLS-SRTP key
// export (RFC 5764 4.2). Part of FlowSpec.
struct SrtpKeying {
  SrtpProfile profile = SrtpProfile::None;
  // With a profile: false while the keys are not known yet (DTLS still running). Such a
  // flow drops its packets (srtp_no_key) rather than forwarding them unprotected.
  bool keyed = false;
  uint8_t master[kSrtpMaxMaster] = {};  // master key || master salt (srtp_master_len bytes)
  // RFC 3711 MKI carried in every packet of this key (SDES "|N:L", RFC 4568 6.1); 0: none.
  uint8_t mki_len = 0;
  uint8_t mki[kSrtpMaxMki] = {};

  bool enabled() const { return profile != SrtpProfile::None; }
  friend bool operator==(const SrtpKeying&, const SrtpKeying&) = default;
};

// Text form for the management API: "none", "PROFILE:pending" (keys to come) or
// "PROFILE:HEX" (master key || master salt, 60 or 56 hex digits). false and `why` if malformed.
bool srtp_keying_parse(std::string_view text, SrtpKeying& out, std::string* why);
// "none", "PROFILE (keyed)" or "PROFILE (keys pending)": never the key.
std::string srtp_keying_describe(const SrtpKeying& k);

// Why a packet was refused, mapped to a drop reason by srtp_drop().
enum class SrtpResult : uint8_t { Ok, AuthFail, Replay, NoKey, Error };
inline Drop srtp_drop(SrtpResult r) {
  switch (r) {
    case SrtpResult::AuthFail: return Drop::srtp_auth_fail;
    case SrtpResult::Replay: return Drop::srtp_replay;
    case SrtpResult::NoKey: return Drop::srtp_no_key;
    default: return Drop::srtp_error;
  }
}

// One direction of one flow: an inbound (unprotect) or outbound (protect) libsrtp session
// for any SSRC. Used by one worker at a time: `busy` is taken with an exchange and a packet
// that finds it taken is dropped (two sources of one flow on two workers, only possible while
// the flow is not latched yet); the worker never waits.
struct alignas(64) SrtpSession {
  std::atomic<uint8_t> busy{0};
  bool outbound = false;
  bool keyed = false;
  SrtpProfile profile = SrtpProfile::None;
  uint8_t rtp_trailer = 0;   // bytes protect adds to an RTP packet (tag)
  uint8_t rtcp_trailer = 0;  // bytes protect adds to an RTCP packet (E+index, tag)
  uint8_t n_ssrc = 0;
  bool use_mki = false;      // packets carry the key's MKI (SrtpKeying::mki_len)
  srtp_ctx_t_* ctx = nullptr;
  uint32_t ssrcs[kSrtpMaxSsrc] = {};  // SSRCs libsrtp holds a stream for
  // libsrtp2's stream for ssrcs[0] (its per-SSRC state: rollover counter, replay window, key
  // pointers), learned after that SSRC's first packet. Only ever prefetched by the worker
  // (libsrtp2 finds it itself through its stream list): a prefetch never faults, and the
  // stream lives as long as the session.
  const void* stream0 = nullptr;
};

// Sessions use libsrtp2 with three of its primitives replaced through its own extension points
// on first use: HMAC-SHA1 (dataplane/srtp_hmac.h: libsrtp2's allocates twice per packet on
// OpenSSL 3), AES-ICM-128 (dataplane/srtp_icm.h: libsrtp2's re-initialises OpenSSL per packet)
// and AES-GCM-128 (dataplane/srtp_gcm.h: fewer OpenSSL calls per packet). Called before the
// first session, `true` keeps libsrtp2's own (veil-srtp-bench compares the two).
void srtp_use_stock_crypto(bool stock);

// Control plane. nullptr and `why` on failure (bad profile or key length, libsrtp error).
// `k.enabled()` must hold. libsrtp is initialised on first use.
SrtpSession* srtp_session_create(const SrtpKeying& k, bool outbound, std::string* why);
void srtp_session_free(SrtpSession* s);

// RFC 5761 4: RTCP packet types 192-223 (RTCP 200-204 and the rest of that range) share
// their second byte's value range with no RTP payload type in use (64-95 with the marker).
inline bool is_rtcp(const uint8_t* payload) { return payload[1] >= 192 && payload[1] <= 223; }

// Worker. `payload`/`len`: the UDP payload (RTP or RTCP, told apart per RFC 5761), changed
// in place. Unprotect returns Ok only for a packet whose tag verified and that the replay
// window accepts (on any other result the payload is garbage and must be dropped); protect
// needs `room` bytes after the payload for the trailer.
SrtpResult srtp_session_unprotect(SrtpSession& s, uint8_t* payload, uint32_t& len);
SrtpResult srtp_session_protect(SrtpSession& s, uint8_t* payload, uint32_t& len, uint32_t room);

}  // namespace veil::dp
