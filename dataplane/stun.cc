#include "dataplane/stun.h"

#include <array>
#include <cstring>

// The low-level SHA-1 interface is deprecated in OpenSSL 3 in favour of EVP, but it is the
// one that keeps a state the caller owns: EVP_MD_CTX_copy_ex and EVP_MAC contexts allocate
// (provider dupctx) on every copy, which the packet path must not do.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace veil::dp::stun {

namespace {

uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t rd32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
void wr16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
void wr32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}
constexpr uint32_t pad4(uint32_t n) { return (n + 3) & ~3u; }

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();

bool known_required(uint16_t t) {
  switch (t) {
    case kAttrMappedAddress:
    case kAttrUsername:
    case kAttrMessageIntegrity:
    case kAttrErrorCode:
    case kAttrUnknownAttributes:
    case kAttrRealm:
    case kAttrNonce:
    case kAttrMessageIntegritySha256:
    case kAttrPasswordAlgorithm:
    case kAttrUserhash:
    case kAttrXorMappedAddress:
    case kAttrPriority:
    case kAttrUseCandidate:
      return true;
    default:
      return false;
  }
}

}  // namespace

uint32_t crc32(const uint8_t* p, size_t len) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < len; ++i) c = kCrcTable[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

ParseResult parse(const uint8_t* msg, uint32_t len, Message& m) {
  m = Message{};
  if (len < kHeaderLen || (msg[0] & 0xc0) != 0 || rd32(msg + 4) != kMagicCookie)
    return ParseResult::NotStun;
  m.type = rd16(msg);
  m.length = rd16(msg + 2);
  if ((m.length & 3) != 0 || uint32_t(m.length) + kHeaderLen != len) return ParseResult::NotStun;
  m.txid = msg + 8;
  uint32_t off = kHeaderLen;
  while (off < len) {
    if (m.fp_off) return ParseResult::Malformed;  // nothing may follow FINGERPRINT
    if (len - off < 4) return ParseResult::Malformed;
    uint16_t t = rd16(msg + off);
    uint16_t alen = rd16(msg + off + 2);
    uint32_t v = off + 4;
    if (pad4(alen) > len - v) return ParseResult::Malformed;
    bool after_mi = m.mi_off != 0;
    if (t == kAttrFingerprint) {
      if (alen != 4) return ParseResult::Malformed;
      m.fp_off = uint16_t(off);
    } else if (after_mi) {
      // Ignored (RFC 8489 14.5): only FINGERPRINT may follow MESSAGE-INTEGRITY.
    } else {
      switch (t) {
        case kAttrUsername:
          if (!m.username_off) {
            if (alen == 0 || alen > 513) return ParseResult::Malformed;
            m.username_off = uint16_t(v);
            m.username_len = alen;
          }
          break;
        case kAttrMessageIntegrity:
          if (alen != 20) return ParseResult::Malformed;
          m.mi_off = uint16_t(off);
          break;
        case kAttrPriority:
          if (alen != 4) return ParseResult::Malformed;
          if (!m.has_priority) {
            m.has_priority = true;
            m.priority = rd32(msg + v);
          }
          break;
        case kAttrUseCandidate:
          if (alen != 0) return ParseResult::Malformed;
          m.use_candidate = true;
          break;
        case kAttrIceControlling:
        case kAttrIceControlled:
          if (alen != 8) return ParseResult::Malformed;
          if (!m.ice_controlling && !m.ice_controlled)
            m.tiebreaker = uint64_t(rd32(msg + v)) << 32 | rd32(msg + v + 4);
          (t == kAttrIceControlling ? m.ice_controlling : m.ice_controlled) = true;
          break;
        case kAttrXorMappedAddress:
          if (!m.xor_mapped_off) {
            m.xor_mapped_off = uint16_t(v);
            m.xor_mapped_len = alen;
          }
          break;
        case kAttrErrorCode:
          if (alen < 4) return ParseResult::Malformed;
          if (!m.error_code) m.error_code = uint16_t((msg[v + 2] & 7) * 100 + msg[v + 3]);
          break;
        default:
          if (t < 0x8000 && !known_required(t) && m.n_unknown < 4) m.unknown[m.n_unknown++] = t;
          break;
      }
    }
    off = v + pad4(alen);
  }
  if (m.fp_off) {
    uint32_t want = crc32(msg, m.fp_off) ^ kFingerprintXor;
    if (rd32(msg + m.fp_off + 4) != want) return ParseResult::BadFingerprint;
  }
  return ParseResult::Ok;
}

void hmac_key_init(HmacKey& k, const uint8_t* key, size_t len) {
  uint8_t block[64] = {};
  if (len > 64) {
    SHA1(key, len, block);  // RFC 2104: longer keys are hashed first
  } else {
    std::memcpy(block, key, len);
  }
  uint8_t pad[64];
  for (int i = 0; i < 64; ++i) pad[i] = block[i] ^ 0x36;
  SHA1_Init(&k.inner);
  SHA1_Update(&k.inner, pad, 64);
  for (int i = 0; i < 64; ++i) pad[i] = block[i] ^ 0x5c;
  SHA1_Init(&k.outer);
  SHA1_Update(&k.outer, pad, 64);
  k.valid = true;
}

void hmac_sha1(const HmacKey& k, const uint8_t* a, size_t alen, const uint8_t* b, size_t blen,
               uint8_t out[20]) {
  SHA_CTX c = k.inner;  // plain struct copy: no allocation
  SHA1_Update(&c, a, alen);
  if (blen) SHA1_Update(&c, b, blen);
  uint8_t inner[20];
  SHA1_Final(inner, &c);
  c = k.outer;
  SHA1_Update(&c, inner, 20);
  SHA1_Final(out, &c);
}

bool integrity_ok(const uint8_t* msg, const Message& m, const HmacKey& k) {
  if (!m.mi_off || !k.valid) return false;
  // The HMAC covers the message up to MESSAGE-INTEGRITY, with the header's length field
  // counting up to the end of MESSAGE-INTEGRITY (RFC 8489 14.5).
  uint8_t hdr[kHeaderLen];
  std::memcpy(hdr, msg, kHeaderLen);
  wr16(hdr + 2, uint16_t(m.mi_off + 24 - kHeaderLen));
  uint8_t mac[20];
  hmac_sha1(k, hdr, kHeaderLen, msg + kHeaderLen, m.mi_off - kHeaderLen, mac);
  // Constant time: the comparison must not tell an attacker how many bytes matched.
  uint8_t diff = 0;
  for (int i = 0; i < 20; ++i) diff |= uint8_t(mac[i] ^ msg[m.mi_off + 4 + i]);
  return diff == 0;
}

bool xor_mapped_address(const uint8_t* msg, const Message& m, Endpoint& out) {
  if (!m.xor_mapped_off || m.xor_mapped_len < 8) return false;
  const uint8_t* v = msg + m.xor_mapped_off;
  uint16_t port = uint16_t(rd16(v + 2) ^ (kMagicCookie >> 16));
  uint8_t a[16];
  if (v[1] == 1 && m.xor_mapped_len == 8) {
    for (int i = 0; i < 4; ++i) a[i] = v[4 + i] ^ msg[4 + i];
    out = Endpoint{IpAddr::v4_raw(a), port};
    return true;
  }
  if (v[1] == 2 && m.xor_mapped_len == 20) {
    for (int i = 0; i < 16; ++i) a[i] = v[4 + i] ^ msg[4 + i];  // cookie, then transaction id
    out = Endpoint{IpAddr::v6_raw(a), port};
    return true;
  }
  return false;
}

bool Writer::begin(uint16_t type, const uint8_t txid[12]) {
  if (cap_ < kHeaderLen) return false;
  wr16(b_, type);
  wr16(b_ + 2, 0);
  wr32(b_ + 4, kMagicCookie);
  std::memmove(b_ + 8, txid, 12);  // may be the request's own transaction id, in place
  n_ = kHeaderLen;
  return true;
}

void Writer::set_length(uint32_t body) { wr16(b_ + 2, uint16_t(body)); }

bool Writer::add(uint16_t type, const void* value, uint16_t len, uint8_t pad) {
  uint32_t need = 4 + pad4(len);
  if (n_ + need > cap_ || n_ + need - kHeaderLen > 0xfffc) return false;
  wr16(b_ + n_, type);
  wr16(b_ + n_ + 2, len);
  if (len) std::memmove(b_ + n_ + 4, value, len);
  for (uint32_t i = len; i < pad4(len); ++i) b_[n_ + 4 + i] = pad;
  n_ += need;
  set_length(n_ - kHeaderLen);
  return true;
}

bool Writer::add_u32(uint16_t type, uint32_t v) {
  uint8_t b[4];
  wr32(b, v);
  return add(type, b, 4);
}

bool Writer::add_u64(uint16_t type, uint64_t v) {
  uint8_t b[8];
  wr32(b, uint32_t(v >> 32));
  wr32(b + 4, uint32_t(v));
  return add(type, b, 8);
}

bool Writer::add_xor_address(uint16_t type, const Endpoint& ep) {
  uint8_t v[20] = {};
  v[1] = ep.addr.is_v4() ? 1 : 2;
  wr16(v + 2, uint16_t(ep.port ^ (kMagicCookie >> 16)));
  size_t alen = ep.addr.len();
  // XOR with the magic cookie, then (IPv6) the transaction id: bytes 4..19 of the header.
  for (size_t i = 0; i < alen; ++i) v[4 + i] = ep.addr.bytes[i] ^ b_[4 + i];
  return add(type, v, uint16_t(4 + alen));
}

bool Writer::add_error_code(uint16_t code, std::string_view reason, uint8_t pad) {
  uint8_t v[4 + 128] = {};
  if (reason.size() > 128 || code < 300 || code > 699) return false;
  v[2] = uint8_t(code / 100);
  v[3] = uint8_t(code % 100);
  std::memcpy(v + 4, reason.data(), reason.size());
  return add(kAttrErrorCode, v, uint16_t(4 + reason.size()), pad);
}

bool Writer::add_integrity(const HmacKey& k) {
  if (n_ + 24 > cap_) return false;
  set_length(n_ + 24 - kHeaderLen);  // the length covers MESSAGE-INTEGRITY itself
  uint8_t mac[20];
  hmac_sha1(k, b_, n_, nullptr, 0, mac);
  return add(kAttrMessageIntegrity, mac, 20);
}

bool Writer::add_fingerprint() {
  if (n_ + 8 > cap_) return false;
  set_length(n_ + 8 - kHeaderLen);
  uint32_t fp = crc32(b_, n_) ^ kFingerprintXor;
  return add_u32(kAttrFingerprint, fp);
}

bool ice_creds_init(IceCreds& c, std::string_view local_ufrag, std::string_view local_pwd,
                    std::string_view remote_ufrag) {
  c = IceCreds{};
  if (local_ufrag.empty() || local_ufrag.size() >= sizeof c.local_ufrag ||
      remote_ufrag.size() >= sizeof c.remote_ufrag || local_pwd.empty())
    return false;
  std::memcpy(c.local_ufrag, local_ufrag.data(), local_ufrag.size());
  std::memcpy(c.remote_ufrag, remote_ufrag.data(), remote_ufrag.size());
  c.local_len = uint8_t(local_ufrag.size());
  c.remote_len = uint8_t(remote_ufrag.size());
  hmac_key_init(c.key, local_pwd);
  return true;
}

namespace {

// USERNAME of a check sent to us is "<our ufrag>:<their ufrag>" (RFC 8445 7.2.2).
bool username_ok(std::string_view u, const IceCreds& c) {
  std::string_view local(c.local_ufrag, c.local_len);
  if (u.size() <= local.size() || u.substr(0, local.size()) != local || u[local.size()] != ':')
    return false;
  if (c.remote_len == 0) return true;
  return u.substr(local.size() + 1) == std::string_view(c.remote_ufrag, c.remote_len);
}

// Error response in place of the request. `signed_` adds MESSAGE-INTEGRITY (the request
// was authenticated); every answer carries FINGERPRINT (RFC 8445 7.3).
uint32_t error_response(uint8_t* msg, uint32_t cap, uint16_t code, std::string_view reason,
                        const Message& m, const IceCreds* signed_) {
  uint8_t txid[12];
  std::memcpy(txid, m.txid, 12);
  uint16_t unknown[4];
  uint8_t n_unknown = m.n_unknown;
  std::memcpy(unknown, m.unknown, sizeof unknown);
  Writer w(msg, cap);
  w.begin(kBindingError, txid);
  if (!w.add_error_code(code, reason)) return 0;
  if (code == 420) {
    uint8_t v[8];
    for (unsigned i = 0; i < n_unknown; ++i) wr16(v + 2 * i, unknown[i]);
    if (!w.add(kAttrUnknownAttributes, v, uint16_t(2 * n_unknown))) return 0;
  }
  if (signed_ && !w.add_integrity(signed_->key)) return 0;
  if (!w.add_fingerprint()) return 0;
  return w.size();
}

}  // namespace

CheckVerdict answer_binding(uint8_t* msg, uint32_t len, uint32_t cap, const Endpoint& src,
                            const IceCreds& creds, uint32_t& out_len, bool& use_candidate) {
  out_len = 0;
  use_candidate = false;
  Message m;
  ParseResult pr = parse(msg, len, m);
  if (pr != ParseResult::Ok) return CheckVerdict::Invalid;
  // Connectivity checks always carry FINGERPRINT (RFC 8445 7.2.2); without it this is not
  // an ICE check, and anything but a Binding request is not answered (indications are
  // keepalives; a lite agent sends no requests, so responses are strays).
  if (!m.fp_off || m.type != kBindingRequest) return CheckVerdict::Ignore;
  // Unauthenticated answers go to a source nobody vouched for (it may be spoofed): never
  // larger than the request, so Veil cannot be used to amplify a reflection attack.
  if (!m.username_off || !m.mi_off) {
    out_len = error_response(msg, cap, 400, "Bad Request", m, nullptr);
    if (out_len > len) out_len = 0;
    return out_len ? CheckVerdict::BadRequest : CheckVerdict::Invalid;
  }
  if (!username_ok(m.username(msg), creds) || !integrity_ok(msg, m, creds.key)) {
    out_len = error_response(msg, cap, 401, "Unauthenticated", m, nullptr);
    if (out_len > len) out_len = 0;  // cannot happen: USERNAME + MI + FP outweigh ERROR-CODE
    return out_len ? CheckVerdict::Unauthorized : CheckVerdict::Invalid;
  }
  if (m.n_unknown) {
    out_len = error_response(msg, cap, 420, "Unknown Attribute", m, &creds);
    return out_len ? CheckVerdict::ErrorSigned : CheckVerdict::Invalid;
  }
  // A lite agent is always controlled; a peer that is controlled too is in conflict
  // (RFC 8445 7.3.1.1) and must switch roles.
  if (m.ice_controlled) {
    out_len = error_response(msg, cap, 487, "Role Conflict", m, &creds);
    return out_len ? CheckVerdict::ErrorSigned : CheckVerdict::Invalid;
  }
  if (!m.has_priority) {  // RFC 8445 7.1.1: every check carries PRIORITY
    out_len = error_response(msg, cap, 400, "Bad Request", m, &creds);
    return out_len ? CheckVerdict::BadRequest : CheckVerdict::Invalid;
  }
  uint8_t txid[12];
  std::memcpy(txid, m.txid, 12);
  Writer w(msg, cap);
  w.begin(kBindingSuccess, txid);
  if (!w.add_xor_address(kAttrXorMappedAddress, src) || !w.add_integrity(creds.key) ||
      !w.add_fingerprint())
    return CheckVerdict::Invalid;
  out_len = w.size();
  use_candidate = m.use_candidate;
  return CheckVerdict::Success;
}

uint32_t udp_reply_in_place(uint8_t* f, const Parsed& p, uint32_t payload_len,
                            const MacAddr& port_mac) {
  std::memcpy(f, f + 6, 6);
  std::memcpy(f + 6, port_mac.b, 6);
  uint8_t* ip = f + p.l3;
  uint8_t* udp = f + p.l4;
  uint16_t ulen = uint16_t(kUdpHdrLen + payload_len);
  if (p.family == Family::V4) {
    uint8_t tmp[4];
    std::memcpy(tmp, ip + 12, 4);
    std::memcpy(ip + 12, ip + 16, 4);
    std::memcpy(ip + 16, tmp, 4);
    wr16(ip + 2, uint16_t(kIpv4HdrLen + ulen));
    ip[8] = 64;
    ip[10] = ip[11] = 0;
    uint16_t c = ipv4_header_checksum(ip);
    std::memcpy(ip + 10, &c, 2);
  } else {
    uint8_t tmp[16];
    std::memcpy(tmp, ip + 8, 16);
    std::memcpy(ip + 8, ip + 24, 16);
    std::memcpy(ip + 24, tmp, 16);
    wr16(ip + 4, ulen);
    ip[7] = 64;
  }
  uint8_t tp[2];
  std::memcpy(tp, udp, 2);
  std::memcpy(udp, udp + 2, 2);
  std::memcpy(udp + 2, tp, 2);
  wr16(udp + 4, ulen);
  udp[6] = udp[7] = 0;
  uint16_t c = l4_checksum(p.family, ip, udp, ulen, kProtoUdp);
  std::memcpy(udp + 6, &c, 2);
  return p.l4 + ulen;
}

}  // namespace veil::dp::stun
