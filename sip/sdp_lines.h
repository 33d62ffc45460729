// Line and token helpers for the text-level SDP conversions (sip/webrtc_sdp.cc,
// sip/sdes_sdp.cc), which work on SDP that sofia-sip's parser already accepted.
#pragma once

#include <string_view>
#include <vector>

namespace veil::sip::sdp_lines {

// The non-empty lines of `s`, without their CR/LF.
inline std::vector<std::string_view> lines_of(std::string_view s) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find('\n', pos);
    if (end == std::string_view::npos) end = s.size();
    std::string_view l = s.substr(pos, end - pos);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    if (!l.empty()) out.push_back(l);
    pos = end + 1;
  }
  return out;
}

// Blank-separated tokens (e.g. of an m= line: media, port, proto, formats...).
inline std::vector<std::string_view> tokens(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace veil::sip::sdp_lines
