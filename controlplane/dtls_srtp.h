// DTLS-SRTP (RFC 5763, RFC 5764) on the control thread: OpenSSL DTLS 1.2 per media session
// over memory BIOs (no sockets: the dataplane hands DTLS records arriving on a media port to
// the control plane, and the control plane sends records back through the flow's port), one
// self-signed ECDSA P-256 certificate per Veil instance, the peer's certificate checked
// against the a=fingerprint of its SDP, and the SRTP master keys exported with
// "EXTRACTOR-dtls_srtp" for the flow's SRTP contexts in the dataplane.
//
// Not thread-safe: everything runs on the control thread. Retransmissions are driven by the
// control loop (next_timeout / handle_timeout), never by a timer thread.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace veil::ctl {

// SRTP protection profiles (RFC 5764 4.1.2, RFC 7714 14.2); the values are the profile ids.
enum class SrtpProfile : uint16_t {
  None = 0,
  Aes128CmSha1_80 = 0x0001,  // SRTP_AES128_CM_HMAC_SHA1_80
  AeadAes128Gcm = 0x0007,    // SRTP_AEAD_AES_128_GCM
};
const char* profile_name(SrtpProfile p);

// Master key and salt lengths of a profile (RFC 5764 4.1.2, RFC 7714 12).
inline constexpr unsigned kSrtpKeyLen = 16;
inline unsigned srtp_salt_len(SrtpProfile p) { return p == SrtpProfile::AeadAes128Gcm ? 12 : 14; }

// What a finished handshake yields for one media session: `local` protects what Veil sends,
// `remote` unprotects what the peer sends. Each master is key || salt (the layout libsrtp2's
// srtp_policy_t::key expects): 30 bytes for AES-CM, 28 for AEAD-AES-128-GCM.
struct SrtpKeys {
  SrtpProfile profile = SrtpProfile::None;
  uint8_t local_key[kSrtpKeyLen] = {};
  uint8_t local_salt[14] = {};
  uint8_t remote_key[kSrtpKeyLen] = {};
  uint8_t remote_salt[14] = {};
  unsigned salt_len = 0;
  // key || salt, ready for libsrtp2.
  std::vector<uint8_t> local_master() const;
  std::vector<uint8_t> remote_master() const;
};

// a=setup (RFC 4145, RFC 5763 5): who sends the ClientHello.
enum class DtlsRole : uint8_t {
  Client,  // a=setup:active
  Server,  // a=setup:passive
};
// The role Veil takes given the peer's a=setup: actpass in an offer -> active (RFC 5763 5:
// the answerer SHOULD be active), active -> passive, passive -> active. nullopt for holdconn
// or anything else.
std::optional<DtlsRole> role_from_remote_setup(std::string_view remote_setup);
// What Veil writes in its own SDP for `role` ("active"/"passive"); an offer carries "actpass".
const char* setup_attribute(DtlsRole role);

// One certificate and SSL_CTX per Veil instance, made at start.
class DtlsIdentity {
 public:
  // ECDSA P-256 key, self-signed X.509 certificate (CN=veil, valid 30 days back and 365
  // ahead), DTLS 1.2 context offering `profiles` in order of preference (default: GCM, then
  // AES-CM-SHA1-80). nullptr and `err` on failure.
  static std::unique_ptr<DtlsIdentity> generate(
      std::string& err, std::vector<SrtpProfile> profiles = {SrtpProfile::AeadAes128Gcm,
                                                             SrtpProfile::Aes128CmSha1_80});
  ~DtlsIdentity();
  DtlsIdentity(const DtlsIdentity&) = delete;
  DtlsIdentity& operator=(const DtlsIdentity&) = delete;

  // "sha-256 AB:CD:..." as it goes after "a=fingerprint:" (RFC 8122 5).
  const std::string& fingerprint() const { return fingerprint_; }
  SSL_CTX* ctx() const { return ctx_; }

 private:
  DtlsIdentity() = default;
  SSL_CTX* ctx_ = nullptr;
  EVP_PKEY* key_ = nullptr;
  X509* cert_ = nullptr;
  std::string fingerprint_;
};

// The fingerprint of a DER certificate with the named hash ("sha-256", "sha-1", "sha-384",
// "sha-512"), formatted as in SDP ("AB:CD:..."); empty for an unknown hash.
std::string cert_fingerprint(X509* cert, std::string_view hash);

class DtlsSession {
 public:
  enum class State : uint8_t { Idle, Handshaking, Connected, Failed, Closed };
  // Sends one DTLS datagram to the peer (the control plane builds the UDP packet around it).
  using SendFn = std::function<void(const uint8_t* data, size_t len)>;

  // `remote_fingerprint` is the peer's a=fingerprint value ("sha-256 AB:CD:..."); a
  // certificate that does not match it fails the handshake. `mtu`: the largest datagram sent.
  DtlsSession(const DtlsIdentity& id, DtlsRole role, std::string remote_fingerprint, SendFn send,
              unsigned mtu = 1200);
  ~DtlsSession();
  DtlsSession(const DtlsSession&) = delete;
  DtlsSession& operator=(const DtlsSession&) = delete;

  // Client: sends the ClientHello. Server: waits for it. Idempotent.
  void start();
  // A datagram from the peer (first byte 20..63, RFC 7983).
  void on_datagram(const uint8_t* data, size_t len);
  // Time until the retransmission timer fires (nullopt: no timer running). The control
  // loop calls handle_timeout() once it has passed.
  std::optional<std::chrono::microseconds> next_timeout() const;
  void handle_timeout();
  // Sends close_notify.
  void close();

  State state() const { return state_; }
  DtlsRole role() const { return role_; }
  // Valid once state() == Connected.
  const SrtpKeys& keys() const { return keys_; }
  const std::string& error() const { return error_; }
  // Datagrams sent and received (tests, veilctl).
  uint64_t sent() const { return sent_; }
  uint64_t received() const { return received_; }

  // Used by the OpenSSL callbacks.
  bool fingerprint_matches(X509* cert);
  void emit(const uint8_t* data, size_t len);

 private:
  void drive();
  void fail(std::string why);
  bool export_keys();

  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // memory BIO: datagrams from the peer
  DtlsRole role_;
  std::string remote_hash_;
  std::string remote_fp_;
  SendFn send_;
  State state_ = State::Idle;
  SrtpKeys keys_;
  std::string error_;
  uint64_t sent_ = 0, received_ = 0;
  bool fp_checked_ = false;
};

}  // namespace veil::ctl
