// DTLS-SRTP between two Veil identities over memory: handshake in both roles and both
// profiles, mirrored keys, fingerprint mismatch rejected, retransmission after a lost flight,
// and the exported keys used with libsrtp2 (protect on one side, unprotect on the other).
#include "controlplane/dtls_srtp.h"

#include <gtest/gtest.h>
#include <srtp2/srtp.h>

#include <cctype>
#include <cstring>
#include <deque>
#include <set>
#include <thread>
#include <vector>

using namespace veil::ctl;

namespace {

struct SrtpLib : ::testing::Environment {
  void SetUp() override { ASSERT_EQ(srtp_init(), srtp_err_status_ok); }
  void TearDown() override { srtp_shutdown(); }
};
const auto* g_env = ::testing::AddGlobalTestEnvironment(new SrtpLib);

using Wire = std::deque<std::vector<uint8_t>>;

struct Pair {
  std::unique_ptr<DtlsIdentity> a_id, b_id;
  Wire a_to_b, b_to_a;
  std::unique_ptr<DtlsSession> a, b;
  bool drop_next_from_b = false;

  explicit Pair(std::vector<SrtpProfile> a_prof = {SrtpProfile::AeadAes128Gcm, SrtpProfile::Aes128CmSha1_80},
                std::vector<SrtpProfile> b_prof = {SrtpProfile::AeadAes128Gcm, SrtpProfile::Aes128CmSha1_80},
                std::string a_expects = "", std::string b_expects = "") {
    std::string err;
    a_id = DtlsIdentity::generate(err, a_prof);
    EXPECT_TRUE(a_id) << err;
    b_id = DtlsIdentity::generate(err, b_prof);
    EXPECT_TRUE(b_id) << err;
    if (!a_id || !b_id) return;
    // a offers actpass, b answers active: b is the DTLS client (RFC 5763 5).
    auto b_role = role_from_remote_setup("actpass");
    EXPECT_EQ(b_role, DtlsRole::Client);
    auto a_role = role_from_remote_setup(setup_attribute(*b_role));
    EXPECT_EQ(a_role, DtlsRole::Server);
    a = std::make_unique<DtlsSession>(*a_id, *a_role, a_expects.empty() ? b_id->fingerprint() : a_expects,
                                      [this](const uint8_t* d, size_t n) { a_to_b.emplace_back(d, d + n); });
    b = std::make_unique<DtlsSession>(*b_id, *b_role, b_expects.empty() ? a_id->fingerprint() : b_expects,
                                      [this](const uint8_t* d, size_t n) {
                                        if (drop_next_from_b) {
                                          drop_next_from_b = false;
                                          return;
                                        }
                                        b_to_a.emplace_back(d, d + n);
                                      });
  }
  // Delivers datagrams until nothing moves.
  void run() {
    a->start();
    b->start();
    for (int i = 0; i < 100 && (!a_to_b.empty() || !b_to_a.empty()); ++i) {
      while (!a_to_b.empty()) {
        auto d = std::move(a_to_b.front());
        a_to_b.pop_front();
        // Every DTLS record starts with a content type in 20..63 (RFC 7983 demux).
        EXPECT_GE(d[0], 20);
        EXPECT_LE(d[0], 63);
        EXPECT_LE(d.size(), 1200u);
        b->on_datagram(d.data(), d.size());
      }
      while (!b_to_a.empty()) {
        auto d = std::move(b_to_a.front());
        b_to_a.pop_front();
        a->on_datagram(d.data(), d.size());
      }
    }
  }
};

void expect_mirrored(const SrtpKeys& x, const SrtpKeys& y) {
  EXPECT_EQ(x.profile, y.profile);
  EXPECT_EQ(x.salt_len, y.salt_len);
  EXPECT_EQ(x.local_master(), y.remote_master());
  EXPECT_EQ(x.remote_master(), y.local_master());
  EXPECT_NE(x.local_master(), x.remote_master());
  EXPECT_EQ(x.local_master().size(), 16u + x.salt_len);
}

// Protects RTP with `tx_master` and unprotects with `rx_master` through libsrtp2.
void srtp_round_trip(SrtpProfile prof, const std::vector<uint8_t>& tx_master,
                     const std::vector<uint8_t>& rx_master, bool tamper = false) {
  srtp_policy_t tx{}, rx{};
  for (srtp_policy_t* p : {&tx, &rx}) {
    if (prof == SrtpProfile::AeadAes128Gcm) {
      srtp_crypto_policy_set_aes_gcm_128_16_auth(&p->rtp);
      srtp_crypto_policy_set_aes_gcm_128_16_auth(&p->rtcp);
    } else {
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p->rtp);
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p->rtcp);
    }
    p->window_size = 1024;
  }
  std::vector<uint8_t> txk = tx_master, rxk = rx_master;
  tx.key = txk.data();
  tx.ssrc.type = ssrc_any_outbound;
  rx.key = rxk.data();
  rx.ssrc.type = ssrc_any_inbound;
  srtp_t stx = nullptr, srx = nullptr;
  ASSERT_EQ(srtp_create(&stx, &tx), srtp_err_status_ok);
  ASSERT_EQ(srtp_create(&srx, &rx), srtp_err_status_ok);
  for (uint16_t seq = 1; seq <= 3; ++seq) {
    uint8_t pkt[256] = {0x80, 111, uint8_t(seq >> 8), uint8_t(seq), 0, 0, 0x12, 0x34, 0xca, 0xfe, 0xba, 0xbe};
    for (int i = 12; i < 172; ++i) pkt[i] = uint8_t(i * 3 + seq);
    std::vector<uint8_t> plain(pkt, pkt + 172);
    int len = 172;
    ASSERT_EQ(srtp_protect(stx, pkt, &len), srtp_err_status_ok);
    EXPECT_EQ(len, 172 + (prof == SrtpProfile::AeadAes128Gcm ? 16 : 10));
    EXPECT_NE(std::memcmp(pkt + 12, plain.data() + 12, 160), 0);  // encrypted
    if (tamper) pkt[40] ^= 1;
    srtp_err_status_t st = srtp_unprotect(srx, pkt, &len);
    if (tamper) {
      EXPECT_EQ(st, srtp_err_status_auth_fail);
    } else {
      ASSERT_EQ(st, srtp_err_status_ok);
      ASSERT_EQ(len, 172);
      EXPECT_EQ(std::vector<uint8_t>(pkt, pkt + 172), plain);
    }
  }
  srtp_dealloc(stx);
  srtp_dealloc(srx);
}

}  // namespace

TEST(DtlsSrtp, IdentityFingerprintFormat) {
  std::string err;
  auto id = DtlsIdentity::generate(err);
  ASSERT_TRUE(id) << err;
  const std::string& fp = id->fingerprint();
  ASSERT_EQ(fp.rfind("sha-256 ", 0), 0u);
  EXPECT_EQ(fp.size(), 8u + 32 * 3 - 1);  // 32 bytes as XX:XX:...
  for (size_t i = 8; i < fp.size(); ++i)
    EXPECT_TRUE((i - 8) % 3 == 2 ? fp[i] == ':' : std::isxdigit(static_cast<unsigned char>(fp[i])) != 0);
  auto other = DtlsIdentity::generate(err);
  ASSERT_TRUE(other);
  EXPECT_NE(other->fingerprint(), fp);  // one key and certificate per instance
}

TEST(DtlsSrtp, SetupRoles) {
  EXPECT_EQ(role_from_remote_setup("actpass"), DtlsRole::Client);
  EXPECT_EQ(role_from_remote_setup("passive"), DtlsRole::Client);
  EXPECT_EQ(role_from_remote_setup("ACTIVE"), DtlsRole::Server);
  EXPECT_EQ(role_from_remote_setup("holdconn"), std::nullopt);
  EXPECT_STREQ(setup_attribute(DtlsRole::Client), "active");
  EXPECT_STREQ(setup_attribute(DtlsRole::Server), "passive");
  EXPECT_EQ(role_from_local_setup("passive"), DtlsRole::Server);
  EXPECT_EQ(role_from_local_setup("active"), DtlsRole::Client);
  EXPECT_EQ(role_from_local_setup("actpass"), std::nullopt);
  for (DtlsRole r : {DtlsRole::Client, DtlsRole::Server})
    EXPECT_EQ(role_from_local_setup(setup_attribute(r)), r);
}

TEST(DtlsSrtp, HandshakeGcmKeysMirroredAndRoundTripThroughLibsrtp) {
  Pair p;
  p.run();
  ASSERT_EQ(p.a->state(), DtlsSession::State::Connected) << p.a->error();
  ASSERT_EQ(p.b->state(), DtlsSession::State::Connected) << p.b->error();
  EXPECT_EQ(p.a->keys().profile, SrtpProfile::AeadAes128Gcm);
  EXPECT_EQ(p.a->keys().salt_len, 12u);
  expect_mirrored(p.a->keys(), p.b->keys());
  srtp_round_trip(SrtpProfile::AeadAes128Gcm, p.a->keys().local_master(), p.b->keys().remote_master());
  srtp_round_trip(SrtpProfile::AeadAes128Gcm, p.b->keys().local_master(), p.a->keys().remote_master());
  srtp_round_trip(SrtpProfile::AeadAes128Gcm, p.b->keys().local_master(), p.a->keys().remote_master(),
                  /*tamper=*/true);
}

TEST(DtlsSrtp, HandshakeAesCmWhenPeerOffersOnlyIt) {
  Pair p({SrtpProfile::AeadAes128Gcm, SrtpProfile::Aes128CmSha1_80}, {SrtpProfile::Aes128CmSha1_80});
  p.run();
  ASSERT_EQ(p.a->state(), DtlsSession::State::Connected) << p.a->error();
  ASSERT_EQ(p.b->state(), DtlsSession::State::Connected) << p.b->error();
  EXPECT_EQ(p.b->keys().profile, SrtpProfile::Aes128CmSha1_80);
  EXPECT_EQ(p.b->keys().salt_len, 14u);
  expect_mirrored(p.a->keys(), p.b->keys());
  srtp_round_trip(SrtpProfile::Aes128CmSha1_80, p.a->keys().local_master(), p.b->keys().remote_master());
  srtp_round_trip(SrtpProfile::Aes128CmSha1_80, p.b->keys().local_master(), p.a->keys().remote_master());
  // The wrong direction's key does not authenticate.
  srtp_round_trip(SrtpProfile::Aes128CmSha1_80, p.a->keys().local_master(), p.a->keys().remote_master(),
                  /*tamper=*/true);
}

TEST(DtlsSrtp, FingerprintMismatchFailsHandshake) {
  std::string err;
  auto stranger = DtlsIdentity::generate(err);
  ASSERT_TRUE(stranger);
  // The client (b) expects a fingerprint that is not the server's certificate.
  Pair p({SrtpProfile::AeadAes128Gcm}, {SrtpProfile::AeadAes128Gcm}, "", stranger->fingerprint());
  p.run();
  EXPECT_EQ(p.b->state(), DtlsSession::State::Failed);
  EXPECT_NE(p.b->error().find("fingerprint"), std::string::npos) << p.b->error();
  EXPECT_NE(p.a->state(), DtlsSession::State::Connected);
  EXPECT_EQ(p.b->keys().profile, SrtpProfile::None);

  // And the server side rejecting the client's certificate.
  Pair q({SrtpProfile::AeadAes128Gcm}, {SrtpProfile::AeadAes128Gcm}, stranger->fingerprint(), "");
  q.run();
  EXPECT_EQ(q.a->state(), DtlsSession::State::Failed);
  EXPECT_NE(q.b->state(), DtlsSession::State::Connected);

  // A fingerprint with an unknown hash is refused before any packet.
  Pair r({SrtpProfile::AeadAes128Gcm}, {SrtpProfile::AeadAes128Gcm}, "md5 00:11", "");
  EXPECT_EQ(r.a->state(), DtlsSession::State::Failed);
}

TEST(DtlsSrtp, LostFlightIsRetransmittedOnTimeout) {
  Pair p;
  p.drop_next_from_b = true;  // the ClientHello is lost
  p.run();
  EXPECT_EQ(p.b->state(), DtlsSession::State::Handshaking);
  auto t = p.b->next_timeout();
  ASSERT_TRUE(t);
  EXPECT_LE(*t, std::chrono::seconds(1));  // OpenSSL's initial DTLS timer
  EXPECT_FALSE(p.a->next_timeout());       // the server has seen nothing
  std::this_thread::sleep_for(*t + std::chrono::milliseconds(5));
  uint64_t sent = p.b->sent();
  p.b->handle_timeout();
  EXPECT_EQ(p.b->sent(), sent + 1);
  p.run();
  EXPECT_EQ(p.a->state(), DtlsSession::State::Connected) << p.a->error();
  EXPECT_EQ(p.b->state(), DtlsSession::State::Connected) << p.b->error();
  expect_mirrored(p.a->keys(), p.b->keys());
}

TEST(DtlsSrtp, CloseNotifyEndsTheSession) {
  Pair p;
  p.run();
  ASSERT_EQ(p.a->state(), DtlsSession::State::Connected);
  p.b->close();
  EXPECT_EQ(p.b->state(), DtlsSession::State::Closed);
  p.run();
  EXPECT_EQ(p.a->state(), DtlsSession::State::Closed);
}

TEST(IceCredentials, LengthCharsetAndUniqueness) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    IceCredentials c = generate_ice_credentials();
    ASSERT_EQ(c.ufrag.size(), 8u);
    ASSERT_EQ(c.pwd.size(), 24u);
    for (char ch : c.ufrag + c.pwd)
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(ch)) || ch == '+' || ch == '/') << ch;
    EXPECT_TRUE(seen.insert(c.ufrag).second);
    EXPECT_TRUE(seen.insert(c.pwd).second);
  }
}
