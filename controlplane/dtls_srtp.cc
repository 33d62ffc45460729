#include "controlplane/dtls_srtp.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace veil::ctl {

namespace {

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (!e) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

int session_index() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

// The write side: a BIO that hands each write (one DTLS datagram, at most the MTU) to the
// session as it is, keeping datagram boundaries (a plain memory BIO would concatenate the
// records of a flight).
int wbio_write(BIO* b, const char* data, int len) {
  auto* s = static_cast<DtlsSession*>(BIO_get_data(b));
  if (!s || len < 0) return -1;
  s->emit(reinterpret_cast<const uint8_t*>(data), size_t(len));
  return len;
}
long wbio_ctrl(BIO*, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_DGRAM_QUERY_MTU:
    case BIO_CTRL_DGRAM_GET_MTU_OVERHEAD:
    case BIO_CTRL_WPENDING:
    case BIO_CTRL_PENDING:
    default:
      return 0;
  }
}
int wbio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}
const BIO_METHOD* wbio_method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "veil dtls out");
    BIO_meth_set_write(bm, wbio_write);
    BIO_meth_set_ctrl(bm, wbio_ctrl);
    BIO_meth_set_create(bm, wbio_create);
    return bm;
  }();
  return m;
}

// The peer's certificate is self-signed: chain validation errors are expected and ignored;
// what authenticates it is its fingerprint in the SDP (RFC 5763 5).
int verify_cb(int, X509_STORE_CTX* store) {
  SSL* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* s = ssl ? static_cast<DtlsSession*>(SSL_get_ex_data(ssl, session_index())) : nullptr;
  if (!s) return 0;
  if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;
  return s->fingerprint_matches(X509_STORE_CTX_get_current_cert(store)) ? 1 : 0;
}

const EVP_MD* digest_for(std::string_view hash) {
  if (hash == "sha-256") return EVP_sha256();
  if (hash == "sha-1") return EVP_sha1();
  if (hash == "sha-384") return EVP_sha384();
  if (hash == "sha-512") return EVP_sha512();
  return nullptr;
}

std::string lower(std::string_view s) {
  std::string o(s);
  for (char& c : o) c = char(std::tolower(static_cast<unsigned char>(c)));
  return o;
}
std::string upper(std::string_view s) {
  std::string o(s);
  for (char& c : o) c = char(std::toupper(static_cast<unsigned char>(c)));
  return o;
}

}  // namespace

IceCredentials generate_ice_credentials() {
  static const char kChars[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";  // 64: no modulo bias
  uint8_t r[8 + 24];
  if (RAND_bytes(r, sizeof r) != 1) return {};
  IceCredentials c;
  for (size_t i = 0; i < sizeof r; ++i) (i < 8 ? c.ufrag : c.pwd) += kChars[r[i] & 63];
  OPENSSL_cleanse(r, sizeof r);
  return c;
}

const char* profile_name(SrtpProfile p) {
  switch (p) {
    case SrtpProfile::Aes128CmSha1_80:
      return "SRTP_AES128_CM_SHA1_80";
    case SrtpProfile::AeadAes128Gcm:
      return "SRTP_AEAD_AES_128_GCM";
    default:
      return "none";
  }
}

std::vector<uint8_t> SrtpKeys::local_master() const {
  std::vector<uint8_t> v(local_key, local_key + kSrtpKeyLen);
  v.insert(v.end(), local_salt, local_salt + salt_len);
  return v;
}
std::vector<uint8_t> SrtpKeys::remote_master() const {
  std::vector<uint8_t> v(remote_key, remote_key + kSrtpKeyLen);
  v.insert(v.end(), remote_salt, remote_salt + salt_len);
  return v;
}

std::optional<DtlsRole> role_from_remote_setup(std::string_view s) {
  std::string v = lower(s);
  if (v == "actpass" || v == "passive") return DtlsRole::Client;
  if (v == "active") return DtlsRole::Server;
  return std::nullopt;
}

std::optional<DtlsRole> role_from_local_setup(std::string_view s) {
  std::string v = lower(s);
  if (v == "active") return DtlsRole::Client;
  if (v == "passive") return DtlsRole::Server;
  return std::nullopt;
}

const char* setup_attribute(DtlsRole role) { return role == DtlsRole::Client ? "active" : "passive"; }

std::string cert_fingerprint(X509* cert, std::string_view hash) {
  const EVP_MD* md = digest_for(lower(hash));
  if (!md || !cert) return {};
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (X509_digest(cert, md, d, &n) != 1) return {};
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    if (i) out += ':';
    out += hex[d[i] >> 4];
    out += hex[d[i] & 15];
  }
  return out;
}

std::unique_ptr<DtlsIdentity> DtlsIdentity::generate(std::string& err,
                                                     std::vector<SrtpProfile> profiles) {
  std::unique_ptr<DtlsIdentity> id(new DtlsIdentity());
  id->key_ = EVP_EC_gen("P-256");
  if (!id->key_) return err = "ECDSA P-256 key: " + openssl_error(), nullptr;
  X509* x = id->cert_ = X509_new();
  BIGNUM* serial = BN_new();
  bool ok = x && serial && X509_set_version(x, 2) == 1 && BN_rand(serial, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
            BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) &&
            X509_gmtime_adj(X509_getm_notBefore(x), -30L * 86400) &&
            X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400) && X509_set_pubkey(x, id->key_) == 1;
  BN_free(serial);
  if (ok) {
    X509_NAME* name = X509_get_subject_name(x);
    ok = X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                    reinterpret_cast<const unsigned char*>("veil"), -1, -1, 0) == 1 &&
         X509_set_issuer_name(x, name) == 1 && X509_sign(x, id->key_, EVP_sha256()) > 0;
  }
  if (!ok) return err = "self-signed certificate: " + openssl_error(), nullptr;
  id->fingerprint_ = "sha-256 " + cert_fingerprint(x, "sha-256");

  SSL_CTX* ctx = id->ctx_ = SSL_CTX_new(DTLS_method());
  if (!ctx) return err = "DTLS context: " + openssl_error(), nullptr;
  SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION);
  if (SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, id->key_) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1)
    return err = "DTLS certificate: " + openssl_error(), nullptr;
  // Forward-secret AEAD suites first; RSA-authenticated ones for peers (SIP phones) whose
  // certificate is RSA when Veil is the DTLS client.
  if (SSL_CTX_set_cipher_list(ctx,
                              "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                              "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                              "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                              "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA") != 1)
    return err = "DTLS ciphers: " + openssl_error(), nullptr;
  // Both sides present certificates; the fingerprint check in verify_cb authenticates them.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
  std::string list;
  for (SrtpProfile p : profiles) {
    if (p == SrtpProfile::None) continue;
    if (!list.empty()) list += ':';
    list += profile_name(p);
  }
  if (list.empty()) return err = "no SRTP profile", nullptr;
  // Returns 0 on success (FACTS.md), unlike most of OpenSSL.
  if (SSL_CTX_set_tlsext_use_srtp(ctx, list.c_str()) != 0)
    return err = "use_srtp " + list + ": " + openssl_error(), nullptr;
  return id;
}

DtlsIdentity::~DtlsIdentity() {
  SSL_CTX_free(ctx_);
  X509_free(cert_);
  EVP_PKEY_free(key_);
}

DtlsSession::DtlsSession(const DtlsIdentity& id, DtlsRole role, std::string remote_fingerprint,
                         SendFn send, unsigned mtu)
    : role_(role), send_(std::move(send)) {
  // "sha-256 AB:CD:..." -> hash name and upper-case hex.
  auto sp = remote_fingerprint.find(' ');
  if (sp != std::string::npos) {
    remote_hash_ = lower(remote_fingerprint.substr(0, sp));
    size_t b = remote_fingerprint.find_first_not_of(' ', sp);
    remote_fp_ = upper(b == std::string::npos ? "" : remote_fingerprint.substr(b));
  }
  ssl_ = SSL_new(id.ctx());
  rbio_ = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(wbio_method());
  if (!ssl_ || !rbio_ || !wbio) {
    BIO_free(rbio_);
    BIO_free(wbio);
    rbio_ = nullptr;
    fail("cannot create DTLS session: " + openssl_error());
    return;
  }
  BIO_set_mem_eof_return(rbio_, -1);  // empty means "wait for more", not end of stream
  BIO_set_data(wbio, this);
  SSL_set_bio(ssl_, rbio_, wbio);  // the SSL owns both BIOs now
  SSL_set_ex_data(ssl_, session_index(), this);
  SSL_set_options(ssl_, SSL_OP_NO_QUERY_MTU);
  SSL_set_mtu(ssl_, long(mtu));
  if (role_ == DtlsRole::Client)
    SSL_set_connect_state(ssl_);
  else
    SSL_set_accept_state(ssl_);
  if (!digest_for(remote_hash_) || remote_fp_.empty())
    fail("unusable remote fingerprint \"" + remote_fingerprint + "\"");
}

DtlsSession::~DtlsSession() {
  if (ssl_) {
    if (BIO* w = SSL_get_wbio(ssl_)) BIO_set_data(w, nullptr);
    SSL_free(ssl_);
  }
}

void DtlsSession::emit(const uint8_t* data, size_t len) {
  ++sent_;
  if (send_) send_(data, len);
}

bool DtlsSession::fingerprint_matches(X509* cert) {
  std::string fp = cert_fingerprint(cert, remote_hash_);
  bool ok = !fp.empty() && fp == remote_fp_;
  if (ok) fp_checked_ = true;
  else error_ = "peer certificate does not match a=fingerprint";
  return ok;
}

void DtlsSession::fail(std::string why) {
  state_ = State::Failed;
  if (error_.empty()) error_ = std::move(why);
}

void DtlsSession::start() {
  if (state_ != State::Idle) return;
  state_ = State::Handshaking;
  if (role_ == DtlsRole::Client) drive();
}

void DtlsSession::on_datagram(const uint8_t* data, size_t len) {
  if (!ssl_ || state_ == State::Failed || state_ == State::Closed) return;
  ++received_;
  if (state_ == State::Idle) state_ = State::Handshaking;  // a passive side starts on ClientHello
  BIO_write(rbio_, data, int(len));
  drive();
}

void DtlsSession::drive() {
  if (state_ == State::Handshaking) {
    int rc = SSL_do_handshake(ssl_);
    if (rc == 1) {
      if (!export_keys()) return;
      state_ = State::Connected;
    } else {
      int e = SSL_get_error(ssl_, rc);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        fail("DTLS handshake failed: " + openssl_error());
        return;
      }
    }
  }
  if (state_ == State::Connected) {
    // After the handshake only alerts (close_notify) and retransmitted flights arrive;
    // SRTP never does (the dataplane keeps it). SSL_read processes them.
    uint8_t buf[2048];
    for (;;) {
      int n = SSL_read(ssl_, buf, sizeof buf);
      if (n > 0) continue;  // application data on a DTLS-SRTP association: ignored
      int e = SSL_get_error(ssl_, n);
      if (e == SSL_ERROR_ZERO_RETURN) state_ = State::Closed;
      else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) fail("DTLS: " + openssl_error());
      break;
    }
  }
  // Drop whatever the BIO still holds from a datagram the SSL refused.
  BIO_reset(rbio_);
}

bool DtlsSession::export_keys() {
  if (!fp_checked_) {
    // Belt and braces: verify_cb must have accepted a certificate with the SDP fingerprint.
    X509* peer = SSL_get0_peer_certificate(ssl_);
    if (!peer || !fingerprint_matches(peer)) {
      fail("peer presented no certificate matching a=fingerprint");
      return false;
    }
  }
  const SRTP_PROTECTION_PROFILE* p = SSL_get_selected_srtp_profile(ssl_);
  if (!p) {
    fail("peer did not negotiate use_srtp");
    return false;
  }
  SrtpProfile prof = SrtpProfile(p->id);
  if (prof != SrtpProfile::Aes128CmSha1_80 && prof != SrtpProfile::AeadAes128Gcm) {
    fail(std::string("unsupported SRTP profile ") + p->name);
    return false;
  }
  unsigned salt = srtp_salt_len(prof);
  // RFC 5764 4.2: client key, server key, client salt, server salt.
  uint8_t m[2 * (kSrtpKeyLen + 14)];
  size_t total = 2 * (kSrtpKeyLen + salt);
  static const char kLabel[] = "EXTRACTOR-dtls_srtp";
  if (SSL_export_keying_material(ssl_, m, total, kLabel, sizeof kLabel - 1, nullptr, 0, 0) != 1) {
    fail("keying material export: " + openssl_error());
    return false;
  }
  const uint8_t* client_key = m;
  const uint8_t* server_key = m + kSrtpKeyLen;
  const uint8_t* client_salt = m + 2 * kSrtpKeyLen;
  const uint8_t* server_salt = client_salt + salt;
  bool client = role_ == DtlsRole::Client;
  keys_ = SrtpKeys{};
  keys_.profile = prof;
  keys_.salt_len = salt;
  std::memcpy(keys_.local_key, client ? client_key : server_key, kSrtpKeyLen);
  std::memcpy(keys_.local_salt, client ? client_salt : server_salt, salt);
  std::memcpy(keys_.remote_key, client ? server_key : client_key, kSrtpKeyLen);
  std::memcpy(keys_.remote_salt, client ? server_salt : client_salt, salt);
  OPENSSL_cleanse(m, sizeof m);
  return true;
}

std::optional<std::chrono::microseconds> DtlsSession::next_timeout() const {
  if (!ssl_ || state_ != State::Handshaking) return std::nullopt;
  timeval tv{};
  if (DTLSv1_get_timeout(ssl_, &tv) != 1) return std::nullopt;
  return std::chrono::microseconds(int64_t(tv.tv_sec) * 1000000 + tv.tv_usec);
}

void DtlsSession::handle_timeout() {
  if (!ssl_ || state_ != State::Handshaking) return;
  if (DTLSv1_handle_timeout(ssl_) < 0) fail("DTLS handshake timed out: " + openssl_error());
}

void DtlsSession::close() {
  if (!ssl_ || state_ != State::Connected) return;
  SSL_shutdown(ssl_);
  state_ = State::Closed;
}

bool DtlsHub::add(uint32_t flow_id, DtlsRole role, const std::string& remote_fingerprint,
                  uint8_t port, const Endpoint& local) {
  if (sessions_.count(flow_id)) return false;
  Entry& e = sessions_[flow_id];
  e.port = port;
  e.local = local;
  // The session sends through the entry, which knows where the peer is by then.
  e.s = std::make_unique<DtlsSession>(id_, role, remote_fingerprint,
                                      [this, flow_id](const uint8_t* d, size_t n) {
                                        auto it = sessions_.find(flow_id);
                                        if (it == sessions_.end() || !it->second.remote) return;
                                        send_(it->second.port, it->second.local, *it->second.remote, d, n);
                                      });
  after(flow_id, e);
  return true;
}

void DtlsHub::remove(uint32_t flow_id) { sessions_.erase(flow_id); }

void DtlsHub::on_datagram(uint32_t flow_id, const Endpoint& remote, const uint8_t* data, size_t len) {
  auto it = sessions_.find(flow_id);
  if (it == sessions_.end()) {
    ++unknown_;
    return;
  }
  Entry& e = it->second;
  // Answers go where the records come from: on an ICE flow the dataplane only hands up
  // records from the source that passed an authenticated check.
  // Once connected, the peer's address stays (a stray record from elsewhere cannot redirect
  // alerts).
  if (!e.remote || e.s->state() != DtlsSession::State::Connected) e.remote = remote;
  e.s->on_datagram(data, len);
  after(flow_id, e);
}

void DtlsHub::tick() {
  for (auto& [id, e] : sessions_) {
    DtlsSession& s = *e.s;
    if (s.state() == DtlsSession::State::Idle && s.role() == DtlsRole::Client && !e.remote && remote_)
      e.remote = remote_(id);
    if (s.state() == DtlsSession::State::Idle && s.role() == DtlsRole::Client && e.remote) s.start();
    if (auto t = s.next_timeout(); t && t->count() == 0) s.handle_timeout();
    after(id, e);
  }
}

void DtlsHub::after(uint32_t flow_id, Entry& e) {
  if (e.reported) return;
  if (e.s->state() == DtlsSession::State::Connected) {
    e.reported = true;
    if (keys_) keys_(flow_id, e.s->keys());
  } else if (e.s->state() == DtlsSession::State::Failed) {
    e.reported = true;
    if (fail_) fail_(flow_id, e.s->error());
  }
}

std::vector<uint32_t> DtlsHub::flows() const {
  std::vector<uint32_t> v;
  for (const auto& [id, e] : sessions_) v.push_back(id);
  std::sort(v.begin(), v.end());
  return v;
}

const DtlsSession* DtlsHub::session(uint32_t flow_id) const {
  auto it = sessions_.find(flow_id);
  return it == sessions_.end() ? nullptr : it->second.s.get();
}

}  // namespace veil::ctl
