#include "sip/webrtc_sdp.h"


#include <algorithm>
#include <cstring>
#include <strings.h>

#include "sip/sdp_lines.h"

namespace veil::sip {
namespace {

using sdp_lines::lines_of;
using sdp_lines::tokens;

// "a=name:value" / "a=name": the name (empty for other lines).
std::string_view attr_name(std::string_view l) {
  if (l.size() < 3 || l.substr(0, 2) != "a=") return {};
  std::string_view rest = l.substr(2);
  return rest.substr(0, rest.find(':'));
}

std::string_view attr_value(std::string_view l) {
  size_t c = l.find(':');
  return c == std::string_view::npos ? std::string_view{} : l.substr(c + 1);
}

bool name_is(std::string_view name, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (name.size() == std::strlen(n) && strncasecmp(name.data(), n, name.size()) == 0) return true;
  return false;
}

bool secure_proto(std::string_view proto) {
  return proto.find("SAVP") != std::string_view::npos || proto.find("TLS") != std::string_view::npos;
}

// The m= line with its transport protocol replaced.
std::string with_proto(std::string_view mline, std::string_view proto) {
  auto t = tokens(mline.substr(2));
  if (t.size() < 3) return std::string(mline);
  std::string out = "m=" + std::string(t[0]) + " " + std::string(t[1]) + " " + std::string(proto);
  for (size_t i = 3; i < t.size(); ++i) out += " " + std::string(t[i]);
  return out;
}

// Attributes that describe a WebRTC endpoint's transport, streams and extensions: nothing a
// plain RTP/AVP peer uses, several of them naming the browser's own identifiers.
bool webrtc_only(std::string_view name) {
  return name_is(name, {"group", "msid-semantic", "extmap-allow-mixed", "fingerprint", "setup", "tls-id",
                        "identity", "mid", "msid", "ssrc", "ssrc-group", "extmap", "rtcp-fb", "rtcp-rsize",
                        "crypto", "rid", "simulcast", "ice-ufrag", "ice-pwd", "ice-options", "ice-lite",
                        "candidate", "end-of-candidates", "remote-candidates", "ice-pacing", "sctpmap",
                        "sctp-port", "max-message-size"});
}

const char kHostPriority[] = "2130706431";  // RFC 8445 5.1.2.1: type 126, local 65535, component 1

}  // namespace

WebRtcInfo inspect_webrtc(std::string_view sdp) {
  WebRtcInfo info;
  bool in_media = false;
  for (std::string_view l : lines_of(sdp)) {
    if (l.substr(0, 2) == "m=") {
      in_media = true;
      auto t = tokens(l.substr(2));
      WebRtcMedia m;
      if (t.size() >= 3) {
        m.media = std::string(t[0]);
        m.disabled = t[1] == "0";
        m.proto = std::string(t[2]);
        for (size_t k = 3; k < t.size(); ++k) {
          unsigned v = 0;
          bool num = !t[k].empty() && t[k].size() <= 3;
          for (char c : t[k]) {
            if (c < '0' || c > '9') num = false;
            else v = v * 10 + unsigned(c - '0');
          }
          if (num && v < 128) m.pts.push_back(uint8_t(v));
        }
        if (secure_proto(m.proto) && m.proto.find("TLS") != std::string::npos) info.webrtc = true;
      }
      info.media.push_back(std::move(m));
      continue;
    }
    std::string_view name = attr_name(l);
    if (name.empty()) continue;
    std::string value(attr_value(l));
    bool first_media = in_media && info.media.size() == 1;
    auto take = [&](std::string& field) {
      if (!in_media || (first_media && field.empty())) field = value;
    };
    if (name_is(name, {"ice-ufrag"})) take(info.ice_ufrag);
    else if (name_is(name, {"ice-pwd"})) take(info.ice_pwd);
    else if (name_is(name, {"setup"})) take(info.setup);
    else if (name_is(name, {"fingerprint"})) {
      take(info.fingerprint);
      info.webrtc = true;
    } else if (name_is(name, {"ice-lite"})) info.ice_lite = true;
    else if (name_is(name, {"mid"}) && in_media) info.media.back().mid = value;
    else if (name_is(name, {"rtcp-mux"}) && in_media) info.media.back().rtcp_mux = true;
    else if (name_is(name, {"group"}) && !in_media && value.rfind("BUNDLE", 0) == 0) {
      auto t = tokens(std::string_view(value).substr(6));
      for (auto m : t) info.bundle.emplace_back(m);
    }
  }
  return info;
}

std::string to_plain(std::string_view rewritten) {
  std::string out;
  for (std::string_view l : lines_of(rewritten)) {
    if (l.substr(0, 2) == "m=") {
      auto t = tokens(l.substr(2));
      out += (t.size() >= 3 && secure_proto(t[2])) || (t.size() >= 3 && t[2] == "RTP/AVPF")
                 ? with_proto(l, "RTP/AVP")
                 : std::string(l);
      out += "\r\n";
      continue;
    }
    std::string_view name = attr_name(l);
    if (!name.empty() && webrtc_only(name)) continue;
    out += l;
    out += "\r\n";
  }
  return out;
}

bool pt_sets_overlap(const std::vector<PtSet>& sets) {
  for (size_t i = 0; i < sets.size(); ++i)
    for (size_t j = i + 1; j < sets.size(); ++j)
      if (sets[i].overlaps(sets[j])) return true;
  return false;
}

std::string pt_set_str(const PtSet& s) {
  std::string out;
  for (unsigned pt = 0; pt < 128; ++pt) {
    if (!s.has(uint8_t(pt))) continue;
    unsigned end = pt;
    while (end + 1 < 128 && s.has(uint8_t(end + 1))) ++end;
    if (!out.empty()) out += ",";
    out += std::to_string(pt);
    if (end > pt) out += "-" + std::to_string(end);
    pt = end;
  }
  return out;
}

BundlePtMap bundle_pt_map(const WebRtcInfo& sdp, const std::vector<PtSet>& prior) {
  BundlePtMap m;
  m.pts.resize(sdp.media.size());
  std::vector<PtSet> active;
  int first = -1;
  for (size_t i = 0; i < sdp.media.size(); ++i) {
    if (sdp.media[i].disabled) continue;
    if (first < 0) first = int(i);
    m.pts[i].add(sdp.media[i].pts);
    if (i < prior.size()) m.pts[i].add(prior[i]);
    active.push_back(m.pts[i]);
  }
  if (active.size() > 1) {
    m.head = first;
    m.overlap = pt_sets_overlap(active);
  }
  return m;
}

std::string to_webrtc(std::string_view rewritten, const WebRtcParams& p) {
  std::vector<std::string_view> ls = lines_of(rewritten);
  // Sections: [0] session, then one per m-line.
  std::vector<std::vector<std::string_view>> sec(1);
  for (std::string_view l : ls) {
    if (l.substr(0, 2) == "m=") sec.emplace_back();
    sec.back().push_back(l);
  }
  size_t n = sec.size() - 1;
  auto mid_of = [&](size_t i) {
    return i < p.offer_media.size() && !p.offer_media[i].mid.empty() ? p.offer_media[i].mid : std::to_string(i);
  };
  std::string session_c;  // session-level c= address
  for (std::string_view l : sec[0])
    if (l.substr(0, 2) == "c=") session_c = std::string(l);

  // BUNDLE: the first active m-line's port and c= for every active m-line (one 5-tuple).
  size_t active = 0, first = n;
  for (size_t i = 0; i < n; ++i) {
    auto t = tokens(sec[i + 1][0].substr(2));
    if (t.size() >= 2 && t[1] != "0") {
      ++active;
      if (first == n) first = i;
    }
  }
  const bool one_port = p.bundle && active > 1;
  std::string bundle_port, bundle_c = session_c;
  if (one_port) {
    bundle_port = std::string(tokens(sec[first + 1][0].substr(2))[1]);
    for (std::string_view l : sec[first + 1])
      if (l.substr(0, 2) == "c=") bundle_c = std::string(l);
  }
  auto with_port = [](std::string_view mline, std::string_view port) {
    auto t = tokens(mline.substr(2));
    std::string o = "m=" + std::string(t[0]) + " " + std::string(port);
    for (size_t i = 2; i < t.size(); ++i) o += " " + std::string(t[i]);
    return o;
  };

  std::string out;
  for (std::string_view l : sec[0]) {
    std::string_view name = attr_name(l);
    if (!name.empty() && name_is(name, {"group", "ice-lite", "ice-options", "fingerprint", "setup", "ice-ufrag",
                                        "ice-pwd", "msid-semantic"}))
      continue;
    out += l;
    out += "\r\n";
    if (l.substr(0, 2) == "t=") {
      out += "a=ice-lite\r\n";  // Veil answers checks, never sends them (RFC 8445 2.5)
      if (p.bundle) {
        std::string group = "a=group:BUNDLE";
        for (size_t i = 0; i < n; ++i) {
          auto t = tokens(sec[i + 1][0].substr(2));
          if (t.size() >= 2 && t[1] != "0") group += " " + mid_of(i);
        }
        if (group.size() > 14) out += group + "\r\n";
      }
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const auto& s = sec[i + 1];
    auto t = tokens(s[0].substr(2));
    bool disabled = t.size() < 2 || t[1] == "0";
    std::string proto = i < p.offer_media.size() && !p.offer_media[i].proto.empty() ? p.offer_media[i].proto
                                                                                      : "UDP/TLS/RTP/SAVPF";
    const bool rebundle = one_port && !disabled && i != first;
    std::string mline = with_proto(s[0], proto);
    if (rebundle) {
      mline = with_port(mline, bundle_port);
      t = tokens(std::string_view(mline).substr(2));
    }
    out += mline + "\r\n";
    std::string c = rebundle ? bundle_c : session_c;
    for (size_t k = 1; k < s.size(); ++k) {
      std::string_view l = s[k];
      if (l.substr(0, 2) == "c=") {
        c = rebundle ? bundle_c : std::string(l);
        out += c + "\r\n";
        continue;
      }
      std::string_view name = attr_name(l);
      if (!name.empty() && (webrtc_only(name) || name_is(name, {"rtcp", "rtcp-mux"}))) continue;
      out += l;
      out += "\r\n";
    }
    out += "a=mid:" + mid_of(i) + "\r\n";
    if (disabled) continue;
    out += "a=ice-ufrag:" + p.ice_ufrag + "\r\n";
    out += "a=ice-pwd:" + p.ice_pwd + "\r\n";
    out += "a=fingerprint:" + p.fingerprint + "\r\n";
    out += "a=setup:" + p.setup + "\r\n";
    out += "a=rtcp-mux\r\n";
    // c=IN IP4 203.0.113.1 -> one host candidate on Veil's own address and port.
    auto ct = tokens(std::string_view(c).substr(std::min<size_t>(2, c.size())));
    if (ct.size() >= 3 && t.size() >= 2) {
      out += "a=candidate:1 1 udp " + std::string(kHostPriority) + " " + std::string(ct[2]) + " " +
             std::string(t[1]) + " typ host\r\n";
      out += "a=end-of-candidates\r\n";
    }
  }
  return out;
}

}  // namespace veil::sip
