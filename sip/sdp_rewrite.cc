#include "sip/sdp_rewrite.h"

#include <sofia-sip/sdp.h>
#include <sofia-sip/su_alloc.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace veil::sip {
namespace {

// sdp_f_mode_manual: direction attributes (sendrecv, ...) stay attributes, in their
// place, instead of being folded into m_mode and regenerated.
// sdp_f_anynet: other network/address types parse, so that they are refused as such
// (UnsupportedAddress) rather than as garbage.
constexpr int kParseFlags = sdp_f_mode_manual | sdp_f_c_missing | sdp_f_anynet;
constexpr int kPrintFlags = sdp_f_mode_manual;

// RFC 8839 5 (and RFC 8840 for end-of-candidates): the ICE attributes. They describe the
// peer's own network and mean nothing on the other side of Veil.
constexpr std::array<const char*, 9> kIceAttributes = {
    "ice-ufrag", "ice-pwd", "ice-options", "ice-lite", "ice-mismatch",
    "candidate", "end-of-candidates", "remote-candidates", "ice-pacing"};

bool is_ice_attribute(const char* name) {
  for (const char* a : kIceAttributes)
    if (strcasecmp(name, a) == 0) return true;
  return false;
}

// True when `piece` is an IP address or address:port, bare, in brackets, or after
// "scheme:" / "name:" prefixes (cname:203.0.113.10, sip:203.0.113.10:5060,
// x-addr:[2001:db8::1]:9). A prefix is only a name when it has a letter that is not a hex
// digit: the groups of a=fingerprint:sha-256 AB:CD:... are no prefix (their last eight would
// read as an IPv6 address).
bool names_address(std::string_view piece) {
  auto is_addr = [](std::string_view tok) {
    if (tok.empty()) return false;
    if (IpAddr::parse(tok) || Endpoint::parse(tok)) return true;
    return tok.front() == '[' && tok.back() == ']' && IpAddr::parse(tok.substr(1, tok.size() - 2));
  };
  if (is_addr(piece)) return true;
  for (size_t colon = piece.find(':'); colon != std::string_view::npos; colon = piece.find(':', colon + 1)) {
    std::string_view name = piece.substr(0, colon);
    size_t last = name.rfind(':');
    name = last == std::string_view::npos ? name : name.substr(last + 1);
    bool named = false;
    for (char ch : name)
      if (std::isalpha(static_cast<unsigned char>(ch)) && !std::isxdigit(static_cast<unsigned char>(ch)))
        named = true;
    if (!named) break;
    if (is_addr(piece.substr(colon + 1))) return true;
  }
  return false;
}

// True when a token of `value` (split on blanks, and on the characters that join a user to a
// host or separate parameters: a=ssrc:1 cname:sip:alice@203.0.113.10 as baresip sends it) is
// an IP address or address:port: such an attribute names a network and is never passed
// across, whatever its name.
bool carries_address(const char* value) {
  if (!value) return false;
  std::string_view v(value);
  size_t i = 0;
  while (i < v.size()) {
    while (i < v.size() && std::strchr(" \t@;,=<>/()\"'", v[i])) ++i;
    size_t j = i;
    while (j < v.size() && !std::strchr(" \t@;,=<>/()\"'", v[j])) ++j;
    if (j > i && names_address(v.substr(i, j - i))) return true;
    i = j;
  }
  return false;
}

// The modifiers of the b= lines of each section (0: session, i+1: m-line i), read from the
// text: sofia-sip 1.12.11's parser turns every modifier other than CT into AS (b=TIAS:64000
// would leave as b=AS:64000, a thousand times the bandwidth).
std::vector<std::vector<std::string>> raw_bandwidth_modifiers(std::string_view text) {
  std::vector<std::vector<std::string>> out(1);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.starts_with("m=")) out.emplace_back();
    if (line.starts_with("b=")) {
      size_t colon = line.find(':');
      out.back().emplace_back(line.substr(2, colon == std::string_view::npos ? 0 : colon - 2));
    }
    pos = eol + 1;
  }
  return out;
}

void fix_bandwidths(su_home_t* home, sdp_bandwidth_t* b, const std::vector<std::string>& names) {
  for (size_t i = 0; b; b = b->b_next, ++i) {
    if (i >= names.size()) return;
    if (strcasecmp(names[i].c_str(), "CT") == 0) {
      b->b_modifier = sdp_bw_ct;
    } else if (strcasecmp(names[i].c_str(), "AS") == 0) {
      b->b_modifier = sdp_bw_as;
    } else {
      b->b_modifier = sdp_bw_x;
      b->b_modifier_name = su_strdup(home, names[i].c_str());
    }
  }
}

struct HomeDeleter {
  void operator()(su_home_t* h) const { su_home_unref(h); }
};
using HomePtr = std::unique_ptr<su_home_t, HomeDeleter>;

HomePtr new_home() { return HomePtr(static_cast<su_home_t*>(su_home_new(sizeof(su_home_t)))); }

// RFC 4566 token-char.
bool token_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return u == 0x21 || (u >= 0x23 && u <= 0x27) || u == 0x2a || u == 0x2b || u == 0x2d || u == 0x2e ||
         (u >= 0x30 && u <= 0x39) || (u >= 0x41 && u <= 0x5a) || (u >= 0x5e && u <= 0x7e);
}

bool is_number(std::string_view s) {
  return !s.empty() && s.size() <= 5 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), token_char);
}

// What Veil checks itself before sofia-sip's parser sees a peer's SDP: every line is
// "<letter>=<value>" with no NUL or stray CR/LF inside, and every m= line follows RFC 4566
// 5.14 (media SP port["/"integer] SP proto SP fmt *(SP fmt), proto = token *("/" token)).
// sofia-sip 1.12.11 loops allocating without bound on some malformed m= lines (`m=audio 1
// X/"" 0`: tens of GB, minutes of CPU; found by tests/fuzz/fuzz_sdp), so nothing it has not
// been shown to handle reaches it. False with `detail` on the first bad line.
bool lexically_valid(std::string_view text, std::string& detail) {
  size_t line_no = 0;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;  // a trailing empty line
    auto bad = [&](const char* why) {
      detail = "line " + std::to_string(line_no) + ": " + why;
      return false;
    };
    if (line.size() < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z') return bad("not <letter>=<value>");
    for (char c : line)
      if (c == '\0' || c == '\r') return bad("NUL or CR inside a line");
    if (line[0] != 'm') continue;
    std::vector<std::string_view> f;
    for (std::string_view v = line.substr(2); !v.empty();) {
      size_t sp = v.find(' ');
      if (sp != 0) f.push_back(v.substr(0, sp));  // extra spaces are tolerated, as sofia-sip does
      v = sp == std::string_view::npos ? std::string_view() : v.substr(sp + 1);
    }
    if (f.size() < 4) return bad("m= line with fewer than four fields");
    if (!is_token(f[0])) return bad("m= media is not a token");
    std::string_view port = f[1], count;
    if (size_t sl = port.find('/'); sl != std::string_view::npos) {
      count = port.substr(sl + 1);
      port = port.substr(0, sl);
      if (!is_number(count)) return bad("m= port count is not a number");
    }
    if (!is_number(port)) return bad("m= port is not a number");
    for (std::string_view proto = f[2];;) {
      size_t sl = proto.find('/');
      if (!is_token(proto.substr(0, sl))) return bad("m= proto is not token *(\"/\" token)");
      if (sl == std::string_view::npos) break;
      proto = proto.substr(sl + 1);
    }
    for (size_t i = 3; i < f.size(); ++i)
      if (!is_token(f[i])) return bad("m= fmt is not a token");
  }
  return true;
}

// Parses `text` in `home`; nullptr with `detail` set when sofia refuses it.
sdp_session_t* parse(su_home_t* home, std::string_view text, std::string& detail) {
  if (text.empty()) {
    detail = "empty body";
    return nullptr;
  }
  if (!lexically_valid(text, detail)) return nullptr;
  sdp_parser_t* p = sdp_parse(home, text.data(), issize_t(text.size()), kParseFlags);
  sdp_session_t* s = p ? sdp_session(p) : nullptr;
  if (!s) {
    const char* e = p ? sdp_parsing_error(p) : nullptr;
    detail = e ? e : "unparsable";
  }
  return s;  // owned by the parser, which lives in `home`
}

SdpError check_connection(const sdp_connection_t* c, IpAddr& out, std::string& detail) {
  if (c->c_nettype != sdp_net_in ||
      (c->c_addrtype != sdp_addr_ip4 && c->c_addrtype != sdp_addr_ip6) || !c->c_address) {
    detail = "c= is not IN IP4/IP6";
    return SdpError::UnsupportedAddress;
  }
  auto a = IpAddr::parse(c->c_address);
  if (!a || (a->is_v4() != (c->c_addrtype == sdp_addr_ip4))) {
    detail = std::string("c= address is not a literal of its type: ") + c->c_address;
    return SdpError::UnsupportedAddress;
  }
  if (c->c_mcast || (a->is_v4() && (a->bytes[0] & 0xf0) == 0xe0) || (a->is_v6() && a->bytes[0] == 0xff)) {
    detail = "multicast c= is not relayed";
    return SdpError::UnsupportedAddress;
  }
  out = *a;
  return SdpError::None;
}

bool is_unspecified(const IpAddr& a) {
  for (size_t i = 0; i < a.len(); ++i)
    if (a.bytes[i]) return false;
  return true;
}

// A connection line owned by the caller's stack frame: printed before it goes away.
struct OwnConnection {
  sdp_connection_t c{};
  std::string text;
  explicit OwnConnection(const IpAddr& a) : text(a.str()) {
    c.c_size = sizeof c;
    c.c_nettype = sdp_net_in;
    c.c_addrtype = a.is_v6() ? sdp_addr_ip6 : sdp_addr_ip4;
    c.c_address = text.c_str();
  }
};

std::string print(su_home_t* home, const sdp_session_t* s, std::string& err) {
  sdp_printer_t* pr = sdp_print(home, s, nullptr, 0, kPrintFlags);
  std::string out;
  if (!pr) {
    err = "printer allocation failed";
    return out;
  }
  if (const char* e = sdp_printing_error(pr)) {
    err = e;
  } else if (const char* m = sdp_message(pr)) {
    out.assign(m, size_t(sdp_message_size(pr)));
  }
  sdp_printer_free(pr);
  return out;
}

}  // namespace

const char* sdp_error_name(SdpError e) {
  switch (e) {
    case SdpError::None: return "none";
    case SdpError::Parse: return "parse";
    case SdpError::MissingConnection: return "missing_connection";
    case SdpError::UnsupportedAddress: return "unsupported_address";
    case SdpError::NoMedia: return "no_media";
  }
  return "?";
}

SdpInspectResult inspect_sdp(std::string_view text) {
  SdpInspectResult r;
  HomePtr home = new_home();
  if (!home) {
    r.error = SdpError::Parse;
    r.detail = "out of memory";
    return r;
  }
  sdp_session_t* s = parse(home.get(), text, r.detail);
  if (!s) {
    r.error = SdpError::Parse;
    return r;
  }
  r.info.webrtc = inspect_webrtc(text);
  r.info.sdes = inspect_sdes(text);
  if (!s->sdp_media) {
    r.error = SdpError::NoMedia;
    r.detail = "no m= line";
    return r;
  }
  IpAddr session_addr;
  if (s->sdp_connection) {
    r.error = check_connection(s->sdp_connection, session_addr, r.detail);
    if (r.error != SdpError::None) return r;
  }
  for (const sdp_media_t* m = s->sdp_media; m; m = m->m_next) {
    SdpStream st;
    st.media = m->m_type_name ? m->m_type_name : "";
    st.disabled = m->m_port == 0 || m->m_rejected;
    st.rtcp_mux = sdp_attribute_find(m->m_attributes, "rtcp-mux") != nullptr;
    IpAddr addr = session_addr;
    if (m->m_connections) {
      r.error = check_connection(m->m_connections, addr, r.detail);
      if (r.error != SdpError::None) return r;
    }
    if (!st.disabled) {
      if (!addr.valid()) {
        r.error = SdpError::MissingConnection;
        r.detail = "m=" + st.media + " has no c= at session or media level";
        return r;
      }
      if (m->m_port > 65535) {
        r.error = SdpError::Parse;
        r.detail = "m= port out of range";
        return r;
      }
      st.family = addr.family;
      // c=0.0.0.0 (RFC 2543 hold) or :: says "do not send": remote unknown.
      if (!is_unspecified(addr)) st.rtp = Endpoint{addr, uint16_t(m->m_port)};
      sdp_mode_t mode = sdp_attribute_mode(m->m_attributes, sdp_attribute_mode(s->sdp_attributes, sdp_sendrecv));
      st.held = mode != sdp_sendrecv || is_unspecified(addr);
    }
    r.info.streams.push_back(std::move(st));
  }
  return r;
}

SdpRewriteResult rewrite_sdp(std::string_view text, const SdpRewriteParams& params,
                             SdpOrigin& origin) {
  SdpRewriteResult r;
  HomePtr home = new_home();
  if (!home) {
    r.error = SdpError::Parse;
    r.detail = "out of memory";
    return r;
  }
  // Validates exactly as inspect_sdp does, so a rewrite never succeeds on SDP the B2BUA
  // would have refused.
  SdpInspectResult check = inspect_sdp(text);
  if (check.error != SdpError::None) {
    r.error = check.error;
    r.detail = check.detail;
    return r;
  }
  sdp_session_t* s = parse(home.get(), text, r.detail);
  if (!s) {
    r.error = SdpError::Parse;
    return r;
  }

  auto bw_names = raw_bandwidth_modifiers(text);
  fix_bandwidths(home.get(), s->sdp_bandwidths, bw_names[0]);
  {
    size_t k = 1;
    for (sdp_media_t* m = s->sdp_media; m && k < bw_names.size(); m = m->m_next, ++k)
      fix_bandwidths(home.get(), m->m_bandwidths, bw_names[k]);
  }

  OwnConnection session_conn(params.sbc_addr);
  sdp_origin_t o{};
  o.o_size = sizeof o;
  o.o_username = "veil";
  o.o_id = origin.session_id;
  o.o_address = &session_conn.c;
  s->sdp_origin = &o;
  s->sdp_subject = "-";
  s->sdp_information = nullptr;
  s->sdp_uri = nullptr;
  s->sdp_emails = nullptr;
  s->sdp_phones = nullptr;
  s->sdp_key = nullptr;
  if (s->sdp_connection) s->sdp_connection = &session_conn.c;

  auto filter = [&](sdp_attribute_t** list) {
    for (sdp_attribute_t** a = list; *a;) {
      bool drop = (params.strip_ice && is_ice_attribute((*a)->a_name)) ||
                  (strcasecmp((*a)->a_name, "rtcp") != 0 && carries_address((*a)->a_value));
      if (drop) {
        *a = (*a)->a_next;
        ++r.removed_attrs;
      } else {
        a = &(*a)->a_next;
      }
    }
  };
  filter(&s->sdp_attributes);
  // Session-level a=rtcp is meaningless (RFC 3605 2.1 is media-level only): drop it.
  while (sdp_attribute_remove(&s->sdp_attributes, "rtcp")) ++r.removed_attrs;

  std::vector<std::unique_ptr<OwnConnection>> media_conns;
  size_t i = 0;
  for (sdp_media_t* m = s->sdp_media; m; m = m->m_next, ++i) {
    Endpoint local = i < params.local.size() ? params.local[i] : Endpoint{};
    bool disabled = m->m_port == 0 || m->m_rejected || local.port == 0;
    m->m_information = nullptr;
    m->m_key = nullptr;
    m->m_number_of_ports = 0;
    m->m_port = disabled ? 0 : local.port;
    IpAddr maddr = local.addr.valid() ? local.addr : params.sbc_addr;
    if (m->m_connections || !s->sdp_connection || !(maddr == params.sbc_addr)) {
      media_conns.push_back(std::make_unique<OwnConnection>(maddr));
      m->m_connections = &media_conns.back()->c;
    }
    filter(&m->m_attributes);
    bool mux = sdp_attribute_find(m->m_attributes, "rtcp-mux") != nullptr;
    if (sdp_attribute_t* rtcp = sdp_attribute_find(m->m_attributes, "rtcp")) {
      if (mux || disabled) {
        while (sdp_attribute_remove(&m->m_attributes, "rtcp")) {
        }
      } else {
        // RFC 3605 2.1: a=rtcp:<port> IN IP4|IP6 <address>
        std::string v = std::to_string(local.port + 1) + (maddr.is_v6() ? " IN IP6 " : " IN IP4 ") +
                        maddr.str();
        rtcp->a_value = su_strdup(home.get(), v.c_str());
      }
    }
  }

  // RFC 3264 8: the version goes up exactly when the description sent on this leg changes.
  o.o_version = 0;
  std::string blank = print(home.get(), s, r.detail);
  if (blank.empty()) {
    r.error = SdpError::Parse;
    return r;
  }
  uint64_t version = origin.version;
  if (origin.sent && blank != origin.last_body) ++version;
  o.o_version = version;
  r.sdp = print(home.get(), s, r.detail);
  if (r.sdp.empty()) {
    r.error = SdpError::Parse;
    return r;
  }
  origin.version = version;
  origin.sent = true;
  origin.last_body = std::move(blank);
  return r;
}

}  // namespace veil::sip
