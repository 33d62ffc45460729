// Golden tests of the SDP rewrite (sip/sdp_rewrite.cc): tests/sip/golden/<case>.in.sdp is a
// peer's SDP, <case>.out.sdp what Veil must send on the other leg, with placeholders for
// the values a call chooses ({{SBC_ADDR}}, {{PORT_n}}, {{RTCP_n}}, {{SESSION_ID}},
// {{VERSION}}). VEIL_GOLDEN_PRINT=1 prints the actual output of every case.
#include "sip/sdp_rewrite.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace veil::sip {
namespace {

std::string golden_path(const std::string& name) {
  return std::string(VEIL_SOURCE_DIR) + "/tests/sip/golden/" + name;
}

std::string read_file(const std::string& name) {
  std::ifstream f(golden_path(name), std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot read " << golden_path(name);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
}

IpAddr ip(const char* text) { return *IpAddr::parse(text); }

struct GoldenCase {
  const char* name;
  const char* sbc_addr;             // the SBC's address on the output side
  std::vector<uint16_t> ports;      // allocated per m-line (0: none)
  unsigned removed_attrs;
};

class Golden : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(Golden, RewriteMatchesExpected) {
  const GoldenCase& c = GetParam();
  std::string in = read_file(std::string(c.name) + ".in.sdp");
  SdpRewriteParams p;
  p.sbc_addr = ip(c.sbc_addr);
  for (uint16_t port : c.ports) p.local.push_back(Endpoint{p.sbc_addr, port});
  SdpOrigin origin;
  origin.session_id = 1700000042;
  origin.version = 7;
  SdpRewriteResult r = rewrite_sdp(in, p, origin);
  ASSERT_EQ(r.error, SdpError::None) << r.detail;
  if (std::getenv("VEIL_GOLDEN_PRINT")) std::cout << "--- " << c.name << "\n" << r.sdp;

  std::string want = read_file(std::string(c.name) + ".out.sdp");
  replace_all(want, "{{SBC_ADDR}}", c.sbc_addr);
  replace_all(want, "{{SESSION_ID}}", "1700000042");
  replace_all(want, "{{VERSION}}", "7");
  for (size_t i = 0; i < c.ports.size(); ++i) {
    replace_all(want, "{{PORT_" + std::to_string(i) + "}}", std::to_string(c.ports[i]));
    replace_all(want, "{{RTCP_" + std::to_string(i) + "}}", std::to_string(c.ports[i] + 1));
  }
  EXPECT_EQ(r.sdp, want);
  EXPECT_EQ(r.removed_attrs, c.removed_attrs);
  EXPECT_EQ(origin.version, 7u);
  EXPECT_TRUE(origin.sent);

  // Whatever the input, nothing of the peer's addressing survives.
  EXPECT_EQ(r.sdp.find("203.0.113.10"), std::string::npos);
  EXPECT_EQ(r.sdp.find("198.51.100.10"), std::string::npos);
  EXPECT_EQ(r.sdp.find("2001:db8:1::10"), std::string::npos);
  EXPECT_EQ(r.sdp.find("10.1.2.3"), std::string::npos);
  EXPECT_EQ(r.sdp.find("candidate"), std::string::npos);
  EXPECT_EQ(r.sdp.find("ice-"), std::string::npos);

  // The rewritten SDP is itself valid and describes the SBC's endpoints.
  SdpInspectResult back = inspect_sdp(r.sdp);
  ASSERT_EQ(back.error, SdpError::None) << back.detail;
  ASSERT_EQ(back.info.streams.size(), c.ports.size());
  for (size_t i = 0; i < c.ports.size(); ++i) {
    if (c.ports[i] == 0) {
      EXPECT_TRUE(back.info.streams[i].disabled);
    } else {
      EXPECT_EQ(back.info.streams[i].rtp, (Endpoint{ip(c.sbc_addr), c.ports[i]}));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Sdp, Golden,
    ::testing::Values(
        // WebRTC offer toward the PBX: ICE (8 lines) and a=rtcp (mux) go.
        GoldenCase{"browser_offer", "198.51.100.1", {20000}, 7},
        GoldenCase{"phone_offer", "198.51.100.1", {20002}, 0},
        GoldenCase{"rtcp_mux_answer", "203.0.113.1", {30000}, 0},
        GoldenCase{"two_mlines", "198.51.100.1", {20004, 20006}, 0},
        GoldenCase{"disabled_mline", "203.0.113.1", {30002, 0}, 0},
        GoldenCase{"ipv6", "2001:db8:2::1", {20008}, 1},
        // baresip: a=ssrc cname:sip:alice@<its address>; addresses after a scheme or name.
        GoldenCase{"baresip_offer", "198.51.100.1", {20010}, 3}),
    [](const ::testing::TestParamInfo<GoldenCase>& i) { return std::string(i.param.name); });

struct BadCase {
  const char* name;
  SdpError error;
};

class Bad : public ::testing::TestWithParam<BadCase> {};

TEST_P(Bad, RefusedByInspectAndRewrite) {
  const BadCase& c = GetParam();
  std::string in = read_file(std::string(c.name) + ".in.sdp");
  SdpInspectResult i = inspect_sdp(in);
  EXPECT_EQ(i.error, c.error) << sdp_error_name(i.error) << ": " << i.detail;
  SdpOrigin origin;
  origin.session_id = 1;
  origin.version = 1;
  SdpRewriteParams p;
  p.sbc_addr = ip("198.51.100.1");
  p.local = {Endpoint{p.sbc_addr, 20000}};
  SdpRewriteResult r = rewrite_sdp(in, p, origin);
  EXPECT_EQ(r.error, c.error);
  EXPECT_TRUE(r.sdp.empty());
  EXPECT_FALSE(origin.sent);
}

INSTANTIATE_TEST_SUITE_P(
    Sdp, Bad,
    ::testing::Values(BadCase{"bad_parse", SdpError::Parse},
                      BadCase{"bad_no_connection", SdpError::MissingConnection},
                      BadCase{"bad_hostname", SdpError::UnsupportedAddress},
                      BadCase{"bad_addrtype", SdpError::UnsupportedAddress},
                      BadCase{"bad_multicast", SdpError::UnsupportedAddress},
                      // sofia-sip's parser allocates without bound on this m= line (tens of GB):
                      // refused before it gets there (found by fuzz_sdp).
                      BadCase{"bad_mline_proto", SdpError::Parse},
                      BadCase{"bad_stray_cr", SdpError::Parse}),
    [](const ::testing::TestParamInfo<BadCase>& i) { return std::string(i.param.name); });

TEST(SdpInspect, LexicalCheckSaysWhichLine) {
  SdpInspectResult r = inspect_sdp(read_file("bad_mline_proto.in.sdp"));
  EXPECT_EQ(r.detail, "line 6: m= proto is not token *(\"/\" token)");
  // Extra spaces between m= fields, as some phones send, are still accepted.
  r = inspect_sdp("v=0\r\no=- 1 1 IN IP4 203.0.113.20\r\ns=-\r\nc=IN IP4 203.0.113.20\r\nt=0 0\r\n"
                  "m=audio  49170 RTP/AVP 0 8 \r\n");
  EXPECT_EQ(r.error, SdpError::None) << r.detail;
}

TEST(SdpInspect, StreamsAndRemotes) {
  SdpInspectResult r = inspect_sdp(read_file("two_mlines.in.sdp"));
  ASSERT_EQ(r.error, SdpError::None) << r.detail;
  ASSERT_EQ(r.info.streams.size(), 2u);
  EXPECT_EQ(r.info.streams[0].media, "audio");
  EXPECT_EQ(r.info.streams[0].rtp, (Endpoint{ip("203.0.113.20"), 30000}));
  EXPECT_FALSE(r.info.streams[0].rtcp_mux);
  EXPECT_EQ(r.info.streams[1].media, "video");
  // Media-level c= wins over the session level.
  EXPECT_EQ(r.info.streams[1].rtp, (Endpoint{ip("203.0.113.21"), 30002}));

  r = inspect_sdp(read_file("disabled_mline.in.sdp"));
  ASSERT_EQ(r.error, SdpError::None);
  ASSERT_EQ(r.info.streams.size(), 2u);
  EXPECT_FALSE(r.info.streams[0].disabled);
  EXPECT_TRUE(r.info.streams[1].disabled);
  EXPECT_FALSE(r.info.streams[1].rtp.valid());

  r = inspect_sdp(read_file("browser_offer.in.sdp"));
  ASSERT_EQ(r.error, SdpError::None);
  EXPECT_TRUE(r.info.streams[0].rtcp_mux);

  r = inspect_sdp(read_file("ipv6.in.sdp"));
  ASSERT_EQ(r.error, SdpError::None);
  EXPECT_EQ(r.info.streams[0].rtp, (Endpoint{ip("2001:db8:1::10"), 40000}));
}

TEST(SdpInspect, HoldAddressMeansRemoteUnknown) {
  // RFC 2543 hold (c=0.0.0.0): valid, but there is nobody to send to.
  std::string sdp =
      "v=0\r\no=x 1 1 IN IP4 203.0.113.10\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
      "m=audio 4000 RTP/AVP 0\r\n";
  SdpInspectResult r = inspect_sdp(sdp);
  ASSERT_EQ(r.error, SdpError::None) << r.detail;
  EXPECT_FALSE(r.info.streams[0].rtp.valid());
  EXPECT_FALSE(r.info.streams[0].disabled);
  EXPECT_TRUE(r.info.streams[0].held);
}

// A stream on hold expects no media both ways (no media timeout for it in the B2BUA).
TEST(SdpInspect, HeldByDirection) {
  auto held = [](const std::string& session_attr, const std::string& media_attr) {
    std::string sdp = "v=0\r\no=x 1 1 IN IP4 203.0.113.10\r\ns=-\r\nc=IN IP4 203.0.113.10\r\nt=0 0\r\n" +
                      session_attr + "m=audio 4000 RTP/AVP 0\r\n" + media_attr;
    SdpInspectResult r = inspect_sdp(sdp);
    EXPECT_EQ(r.error, SdpError::None) << r.detail;
    return r.error == SdpError::None && r.info.streams[0].held;
  };
  EXPECT_FALSE(held("", ""));
  EXPECT_FALSE(held("", "a=sendrecv\r\n"));
  EXPECT_TRUE(held("", "a=sendonly\r\n"));
  EXPECT_TRUE(held("", "a=recvonly\r\n"));
  EXPECT_TRUE(held("", "a=inactive\r\n"));
  EXPECT_TRUE(held("a=inactive\r\n", ""));
  EXPECT_FALSE(held("a=inactive\r\n", "a=sendrecv\r\n"));  // the media level wins
}

TEST(SdpInspect, EmptyAndNoMedia) {
  EXPECT_EQ(inspect_sdp("").error, SdpError::Parse);
  EXPECT_EQ(inspect_sdp("v=0\r\no=x 1 1 IN IP4 203.0.113.10\r\ns=-\r\nc=IN IP4 203.0.113.10\r\n"
                        "t=0 0\r\n")
                .error,
            SdpError::NoMedia);
}

// RFC 3264 8: the o= version of one leg changes exactly when what is sent on it changes.
TEST(SdpOrigin, VersionFollowsContent) {
  std::string in = read_file("phone_offer.in.sdp");
  SdpRewriteParams p;
  p.sbc_addr = ip("198.51.100.1");
  p.local = {Endpoint{p.sbc_addr, 20000}};
  SdpOrigin o;
  o.session_id = 99;
  o.version = 1;
  auto r1 = rewrite_sdp(in, p, o);
  ASSERT_EQ(r1.error, SdpError::None);
  EXPECT_NE(r1.sdp.find("o=veil 99 1 IN IP4 198.51.100.1\r\n"), std::string::npos) << r1.sdp;

  // Same offer again (a session refresh): same version, same text.
  auto r2 = rewrite_sdp(in, p, o);
  EXPECT_EQ(r2.sdp, r1.sdp);
  EXPECT_EQ(o.version, 1u);

  // The peer only bumped its own o= version: nothing Veil sends changed.
  std::string bumped = in;
  replace_all(bumped, "2890844526 2890844526", "2890844526 2890844527");
  auto r3 = rewrite_sdp(bumped, p, o);
  EXPECT_EQ(o.version, 1u);
  EXPECT_EQ(r3.sdp, r1.sdp);

  // Hold: the direction changes, so does the version.
  std::string hold = in;
  replace_all(hold, "a=sendrecv", "a=sendonly");
  auto r4 = rewrite_sdp(hold, p, o);
  EXPECT_EQ(o.version, 2u);
  EXPECT_NE(r4.sdp.find("o=veil 99 2 IN IP4"), std::string::npos);
  EXPECT_NE(r4.sdp.find("a=sendonly"), std::string::npos);

  // A new port on the output side is a change too.
  p.local[0].port = 20010;
  auto r5 = rewrite_sdp(hold, p, o);
  EXPECT_EQ(o.version, 3u);

  // A failed rewrite leaves the state alone.
  auto bad = rewrite_sdp("garbage", p, o);
  EXPECT_NE(bad.error, SdpError::None);
  EXPECT_EQ(o.version, 3u);
}

}  // namespace
}  // namespace veil::sip
