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
#include <unordered_map>
#include <vector>

#include "dataplane/addr.h"

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
// The role that goes with what Veil already wrote in its answer ("active" -> Client,
// "passive" -> Server; e.g. sip/webrtc_sdp.h's WebRtcParams::setup). Whoever writes the SDP
// decides; the session must follow it. nullopt for anything else (an offer's "actpass" is
// resolved by the answer: role_from_remote_setup on the browser's answer).
std::optional<DtlsRole> role_from_local_setup(std::string_view local_setup);

// Veil's ICE credentials for one media session (RFC 8445 5.3, RFC 8839 5.4): ice-chars
// ([A-Za-z0-9+/]) from OpenSSL's CSPRNG, a 8-character ufrag (48 bits; at least 24 are
// required) and a 24-character password (144 bits; at least 128). They go into Veil's SDP
// towards the browser and into the ICE flow's FlowSpec (ice_ufrag, ice_pwd).
struct IceCredentials {
  std::string ufrag;
  std::string pwd;
};
// Empty strings if the random generator fails.
IceCredentials generate_ice_credentials();

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

// The DTLS-SRTP sessions of veild's media flows, keyed by the id of the flow that receives
// the peer's records (the browser-side ICE flow, FlowSpec::dtls). Fed by the control loop
// with what Dataplane::poll_dtls hands up, ticked every loop pass for retransmissions; sends
// through a function (Dataplane::send_udp_from_control in veild) and reports keys once.
class DtlsHub {
 public:
  // Sends one datagram from `local` to `remote` out of logical port `port`; false if it
  // could not be sent now (no neighbour yet: DTLS retransmits).
  using SendFn = std::function<bool(uint8_t port, const Endpoint& local, const Endpoint& remote,
                                    const uint8_t* data, size_t len)>;
  // Handshake done: the keys for the flow pair's SRTP contexts (wip/srtp's FlowSpec fields).
  using KeysFn = std::function<void(uint32_t flow_id, const SrtpKeys& keys)>;
  // Handshake failed (bad fingerprint, timeout, alert).
  using FailFn = std::function<void(uint32_t flow_id, const std::string& why)>;
  // Where a session's peer is, for a client that must speak first: in veild, the source the
  // ICE flow selected with an authenticated check (FlowSnapshot::learned). nullopt: not yet.
  using RemoteFn = std::function<std::optional<Endpoint>(uint32_t flow_id)>;

  DtlsHub(const DtlsIdentity& id, SendFn send, KeysFn keys, FailFn fail = {}, RemoteFn remote = {})
      : id_(id), send_(std::move(send)), keys_(std::move(keys)), fail_(std::move(fail)),
        remote_(std::move(remote)) {}

  // Expects DTLS on flow `flow_id`, received on `port` at `local` (the flow's SBC address
  // and media port). A client starts as soon as the peer's address is known (first record
  // or RemoteFn). False if the flow already has a session.
  bool add(uint32_t flow_id, DtlsRole role, const std::string& remote_fingerprint, uint8_t port,
           const Endpoint& local);
  void remove(uint32_t flow_id);
  // A record the dataplane handed up.
  void on_datagram(uint32_t flow_id, const Endpoint& remote, const uint8_t* data, size_t len);
  // Retransmission timers and clients waiting for their peer's address; every loop pass.
  void tick();

  const DtlsSession* session(uint32_t flow_id) const;
  std::vector<uint32_t> flows() const;  // sorted
  size_t size() const { return sessions_.size(); }
  uint64_t unknown_flow_records() const { return unknown_; }

 private:
  struct Entry {
    std::unique_ptr<DtlsSession> s;
    uint8_t port = 0;
    Endpoint local;
    std::optional<Endpoint> remote;
    bool reported = false;
  };
  void after(uint32_t flow_id, Entry& e);

  const DtlsIdentity& id_;
  SendFn send_;
  KeysFn keys_;
  FailFn fail_;
  RemoteFn remote_;
  std::unordered_map<uint32_t, Entry> sessions_;
  uint64_t unknown_ = 0;
};

}  // namespace veil::ctl
