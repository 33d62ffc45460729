// Helpers shared by the SDP golden tests of tests/sip/: golden files are LF text with
// placeholders; SDP on the wire is CRLF.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "sip/sdp_rewrite.h"

namespace veil::sip::golden {

// tests/sip/golden/<name>, as stored.
inline std::string read(const std::string& name) {
  std::ifstream f(std::string(VEIL_SOURCE_DIR) + "/tests/sip/golden/" + name, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot read " << name;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// LF -> CRLF (lines already ending in CRLF are kept).
inline std::string crlf(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n' && (out.empty() || out.back() != '\r')) out += '\r';
    out += c;
  }
  return out;
}

// The placeholders of a one-stream expected output: Veil's address and port on that side, and
// the o= values rewrite() below uses (the first SDP on a leg keeps the origin's version).
inline std::string fill(std::string s, const char* addr, uint16_t port) {
  auto rep = [&](const std::string& from, const std::string& to) {
    for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
      s.replace(p, from.size(), to);
  };
  rep("{{SBC_ADDR}}", addr);
  rep("{{PORT_0}}", std::to_string(port));
  rep("{{SESSION_ID}}", "1700000042");
  rep("{{VERSION}}", "7");
  return s;
}

// rewrite_sdp() of a one-stream SDP for a side where Veil is `addr`:`port`.
inline std::string rewrite(const std::string& in, const char* addr, uint16_t port) {
  SdpRewriteParams p;
  p.sbc_addr = *IpAddr::parse(addr);
  p.local.push_back(Endpoint{p.sbc_addr, port});
  SdpOrigin o;
  o.session_id = 1700000042;
  o.version = 7;
  SdpRewriteResult r = rewrite_sdp(in, p, o);
  EXPECT_EQ(r.error, SdpError::None) << r.detail;
  return r.sdp;
}

}  // namespace veil::sip::golden
