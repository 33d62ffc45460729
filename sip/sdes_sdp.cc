#include "sip/sdes_sdp.h"

#include <strings.h>
#include <sys/random.h>

#include <cstring>
#include <stdexcept>

#include "sip/sdp_lines.h"

namespace veil::sip {
namespace {

using sdp_lines::lines_of;
using sdp_lines::tokens;

bool starts_ci(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && strncasecmp(s.data(), prefix.data(), prefix.size()) == 0;
}

bool is_savp(std::string_view proto) {
  return proto == "RTP/SAVP" || proto == "RTP/SAVPF";
}

// RFC 4568 9.2 mki = mki-value ":" mki-length; Veil takes lengths 1-4 (bytes) and values that
// fit them, big-endian.
bool parse_mki(std::string_view v, std::vector<uint8_t>& out) {
  size_t colon = v.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= v.size() || colon > 10) return false;
  uint64_t value = 0;
  for (char ch : v.substr(0, colon)) {
    if (ch < '0' || ch > '9') return false;
    value = value * 10 + uint64_t(ch - '0');
  }
  std::string_view len_text = v.substr(colon + 1);
  if (len_text.size() != 1 || len_text[0] < '1' || len_text[0] > '4') return false;
  unsigned len = unsigned(len_text[0] - '0');
  if (len < 8 && value >> (8 * len)) return false;
  out.clear();
  for (unsigned i = 0; i < len; ++i) out.push_back(uint8_t(value >> (8 * (len - 1 - i))));
  return true;
}

// RFC 4568 9.2 lifetime: "2^" 1*(DIGIT) or 1*(DIGIT).
bool valid_lifetime(std::string_view v) {
  if (v.substr(0, 2) == "2^") v.remove_prefix(2);
  if (v.empty() || v.size() > 20) return false;
  for (char ch : v)
    if (ch < '0' || ch > '9') return false;
  return true;
}

// "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:KEY[|lifetime][|mki] [session-params]"
bool parse_crypto(std::string_view l, SdesCrypto& c) {
  std::string_view v = l.substr(std::strlen("a=crypto:"));
  auto t = tokens(v);
  if (t.size() < 3) return false;
  unsigned tag = 0;
  for (char ch : t[0]) {
    if (ch < '0' || ch > '9' || tag > 999999999) return false;
    tag = tag * 10 + unsigned(ch - '0');
  }
  c.tag = tag;
  c.suite_name = std::string(t[1]);
  c.suite = sdes_suite_parse(t[1]);
  c.master.clear();
  c.mki.clear();
  // One key-param; session parameters are not supported: such a line is parsed but not
  // usable. A key lifetime ("|2^31" or "|2147483648", RFC 4568 6.1) is accepted: it bounds
  // how long the sender may use its key, and Veil's own keys are fresh per leg and call. An
  // MKI ("|1:4": value 1 in 4 bytes, after the lifetime if there is one) is accepted up to
  // 4 bytes: the peer's packets carry it and are checked for it.
  if (t.size() != 3 || !starts_ci(t[2], "inline:")) return true;
  std::string_view key = t[2].substr(7);
  std::vector<uint8_t> mki;
  if (size_t bar = key.find('|'); bar != std::string_view::npos) {
    std::string_view rest = key.substr(bar + 1);
    key = key.substr(0, bar);
    if (size_t bar2 = rest.find('|'); bar2 != std::string_view::npos) {  // lifetime|mki
      if (!valid_lifetime(rest.substr(0, bar2)) || !parse_mki(rest.substr(bar2 + 1), mki)) return true;
    } else if (rest.find(':') != std::string_view::npos) {  // mki alone
      if (!parse_mki(rest, mki)) return true;
    } else if (!valid_lifetime(rest)) {  // lifetime alone
      return true;
    }
  }
  c.mki = std::move(mki);
  std::vector<uint8_t> m;
  if (base64_decode(key, m)) c.master = std::move(m);
  return true;
}

}  // namespace

const char* sdes_suite_name(SdesSuite s) {
  switch (s) {
    case SdesSuite::AesCm128HmacSha1_80: return "AES_CM_128_HMAC_SHA1_80";
    case SdesSuite::AesCm128HmacSha1_32: return "AES_CM_128_HMAC_SHA1_32";
    case SdesSuite::AeadAes128Gcm: return "AEAD_AES_128_GCM";
    default: return "unknown";
  }
}

SdesSuite sdes_suite_parse(std::string_view n) {
  for (SdesSuite s : {SdesSuite::AesCm128HmacSha1_80, SdesSuite::AesCm128HmacSha1_32,
                      SdesSuite::AeadAes128Gcm})
    if (n == sdes_suite_name(s)) return s;
  return SdesSuite::Unknown;
}

unsigned sdes_master_len(SdesSuite s) {
  switch (s) {
    case SdesSuite::AesCm128HmacSha1_80:
    case SdesSuite::AesCm128HmacSha1_32: return 30;
    case SdesSuite::AeadAes128Gcm: return 28;
    default: return 0;
  }
}

SdesInfo inspect_sdes(std::string_view sdp) {
  SdesInfo info;
  bool fingerprint = false;
  for (std::string_view l : lines_of(sdp)) {
    if (l.substr(0, 2) == "m=") {
      auto t = tokens(l.substr(2));
      SdesMedia m;
      if (t.size() >= 3) {
        m.proto = std::string(t[2]);
        m.disabled = t[1] == "0";
      }
      info.media.push_back(std::move(m));
    } else if (starts_ci(l, "a=fingerprint:")) {
      fingerprint = true;
    } else if (starts_ci(l, "a=crypto:") && !info.media.empty()) {
      SdesCrypto c;
      if (parse_crypto(l, c)) info.media.back().crypto.push_back(std::move(c));
    }
  }
  for (const SdesMedia& m : info.media)
    if (!m.disabled && is_savp(m.proto) && !m.crypto.empty()) info.sdes = true;
  if (fingerprint) info.sdes = false;
  return info;
}

const SdesCrypto* choose_sdes(const SdesMedia& m) {
  for (const SdesCrypto& c : m.crypto)
    if (c.usable()) return &c;
  return nullptr;
}

std::string strip_sdes(std::string_view sdp) {
  std::string out;
  for (std::string_view l : lines_of(sdp)) {
    if (starts_ci(l, "a=crypto:")) continue;
    if (l.substr(0, 2) == "m=") {
      auto t = tokens(l.substr(2));
      if (t.size() >= 3 && is_savp(t[2])) {
        std::string m = "m=";
        for (size_t i = 0; i < t.size(); ++i) {
          if (i) m += ' ';
          if (i == 2)
            m += t[2] == "RTP/SAVPF" ? "RTP/AVPF" : "RTP/AVP";
          else
            m += t[i];
        }
        out += m;
        out += "\r\n";
        continue;
      }
    }
    out += l;
    out += "\r\n";
  }
  return out;
}

std::string add_sdes(std::string_view sdp, const std::vector<SdesCrypto>& per_mline) {
  std::string out;
  size_t idx = 0;
  const SdesCrypto* pending = nullptr;  // crypto line to add at the end of the current m-line
  auto flush = [&] {
    if (!pending) return;
    out += "a=crypto:" + std::to_string(pending->tag) + " " + sdes_suite_name(pending->suite) +
           " inline:" + base64_encode(pending->master.data(), pending->master.size()) + "\r\n";
    pending = nullptr;
  };
  for (std::string_view l : lines_of(sdp)) {
    if (starts_ci(l, "a=crypto:")) continue;
    if (l.substr(0, 2) == "m=") {
      flush();
      auto t = tokens(l.substr(2));
      const SdesCrypto* c = idx < per_mline.size() ? &per_mline[idx] : nullptr;
      ++idx;
      if (c && c->usable() && t.size() >= 3 && t[1] != "0" &&
          (t[2] == "RTP/AVP" || t[2] == "RTP/AVPF" || is_savp(t[2]))) {
        std::string m = "m=";
        for (size_t i = 0; i < t.size(); ++i) {
          if (i) m += ' ';
          if (i == 2)
            m += (t[2] == "RTP/AVPF" || t[2] == "RTP/SAVPF") ? "RTP/SAVPF" : "RTP/SAVP";
          else
            m += t[i];
        }
        out += m + "\r\n";
        pending = c;
        continue;
      }
    }
    out += l;
    out += "\r\n";
  }
  flush();
  return out;
}

SdesCrypto sdes_fresh(SdesSuite suite, unsigned tag) {
  SdesCrypto c;
  c.tag = tag;
  c.suite = suite;
  c.suite_name = sdes_suite_name(suite);
  c.master.resize(sdes_master_len(suite));
  size_t got = 0;
  while (got < c.master.size()) {
    ssize_t n = getrandom(c.master.data() + got, c.master.size() - got, 0);
    if (n < 0) throw std::runtime_error("getrandom failed");
    got += size_t(n);
  }
  return c;
}

std::string base64_encode(const uint8_t* p, size_t n) {
  static const char* A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = uint32_t(p[i]) << 16;
    if (i + 1 < n) v |= uint32_t(p[i + 1]) << 8;
    if (i + 2 < n) v |= p[i + 2];
    out += A[(v >> 18) & 63];
    out += A[(v >> 12) & 63];
    out += i + 1 < n ? A[(v >> 6) & 63] : '=';
    out += i + 2 < n ? A[v & 63] : '=';
  }
  return out;
}

bool base64_decode(std::string_view s, std::vector<uint8_t>& out) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  out.clear();
  if (s.size() % 4 != 0) return false;
  for (size_t i = 0; i < s.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s[i + k];
      if (c == '=' && i + 4 == s.size() && k >= 2) {
        v[k] = 0;
        ++pad;
      } else {
        if (pad) return false;
        v[k] = val(c);
        if (v[k] < 0) return false;
      }
    }
    uint32_t w = uint32_t(v[0]) << 18 | uint32_t(v[1]) << 12 | uint32_t(v[2]) << 6 | uint32_t(v[3]);
    out.push_back(uint8_t(w >> 16));
    if (pad < 2) out.push_back(uint8_t(w >> 8));
    if (pad < 1) out.push_back(uint8_t(w));
  }
  return true;
}

}  // namespace veil::sip
