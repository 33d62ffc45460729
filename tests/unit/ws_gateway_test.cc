// The WebSocket gateway's message handling (controlplane/ws_gateway.h): framing SIP out of
// the B2BUA's TCP stream, making a WebSocket message stream-ready, and the Via transport.
// The gateway itself runs end to end in tests/e2e/test_websocket.py.
#include "controlplane/ws_gateway.h"

#include <gtest/gtest.h>

#include <string>

namespace {

using veil::ws::Gateway;

const std::string kOptions =
    "OPTIONS sip:voice.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/WSS k3f9.invalid;branch=z9hG4bK1\r\n"
    "Call-ID: a\r\nCSeq: 1 OPTIONS\r\n";

TEST(WsGateway, FramesOneMessageByContentLength) {
  std::string m = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=x\r\nContent-Length: 5\r\n\r\nhello";
  size_t skip = 9;
  EXPECT_EQ(Gateway::frame_length(m, 65536, skip), long(m.size()));
  EXPECT_EQ(skip, 0u);
  // Two messages back to back: the first one only; the rest waits.
  std::string two = m + m.substr(0, 20);
  EXPECT_EQ(Gateway::frame_length(two, 65536, skip), long(m.size()));
}

TEST(WsGateway, IncompleteMessagesWait) {
  std::string m = "SIP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nhel";
  size_t skip = 0;
  EXPECT_EQ(Gateway::frame_length(m, 65536, skip), 0);
  EXPECT_EQ(Gateway::frame_length("SIP/2.0 200 OK\r\nContent-Le", 65536, skip), 0);
}

TEST(WsGateway, CompactContentLengthAndKeepAlives) {
  std::string m = "\r\n\r\nBYE sip:a SIP/2.0\r\nl: 0\r\n\r\n";
  size_t skip = 0;
  long n = Gateway::frame_length(m, 65536, skip);
  EXPECT_EQ(skip, 4u);  // CRLF keep-alives (RFC 5626 4.4.1) are consumed
  EXPECT_EQ(n, long(m.size() - 4));
  skip = 0;
  EXPECT_EQ(Gateway::frame_length("\r\n\r\n", 65536, skip), 0);
  EXPECT_EQ(skip, 4u);
}

TEST(WsGateway, UnframeableStreamsAreRefused) {
  size_t skip = 0;
  // No Content-Length on a stream transport (RFC 3261 18.3), a bad one, or headers too long.
  EXPECT_EQ(Gateway::frame_length("BYE sip:a SIP/2.0\r\nCall-ID: x\r\n\r\n", 65536, skip), -1);
  EXPECT_EQ(Gateway::frame_length("BYE sip:a SIP/2.0\r\nContent-Length: 1x\r\n\r\n", 65536, skip), -1);
  EXPECT_EQ(Gateway::frame_length(std::string(100, 'a'), 64, skip), -1);
  EXPECT_EQ(Gateway::frame_length("BYE sip:a SIP/2.0\r\nContent-Length: 100\r\n\r\n", 64, skip), -1);
}

TEST(WsGateway, ContentLengthAddedWhenAbsent) {
  std::string m = kOptions + "\r\nabc";
  ASSERT_TRUE(Gateway::to_stream(m));
  EXPECT_NE(m.find("\r\nContent-Length: 3\r\n\r\nabc"), std::string::npos) << m;
  size_t skip = 0;
  EXPECT_EQ(Gateway::frame_length(m, 65536, skip), long(m.size()));
}

TEST(WsGateway, ContentLengthMustMatchTheBody) {
  std::string ok = kOptions + "Content-Length: 3\r\n\r\nabc";
  std::string before = ok;
  EXPECT_TRUE(Gateway::to_stream(ok));
  EXPECT_EQ(ok, before);
  std::string wrong = kOptions + "Content-Length: 10\r\n\r\nabc";
  EXPECT_FALSE(Gateway::to_stream(wrong));
  std::string garbage = "hello";
  EXPECT_FALSE(Gateway::to_stream(garbage));
}

TEST(WsGateway, TopViaTransportBothWays) {
  std::string m = kOptions + "Via: SIP/2.0/WSS second.invalid;branch=z9hG4bK2\r\n\r\n";
  ASSERT_TRUE(Gateway::rewrite_top_via(m, true, true));
  EXPECT_NE(m.find("Via: SIP/2.0/TCP k3f9.invalid;branch=z9hG4bK1"), std::string::npos) << m;
  EXPECT_NE(m.find("Via: SIP/2.0/WSS second.invalid"), std::string::npos) << "only the top Via changes";
  ASSERT_TRUE(Gateway::rewrite_top_via(m, false, true));
  EXPECT_NE(m.find("Via: SIP/2.0/WSS k3f9.invalid;branch=z9hG4bK1"), std::string::npos) << m;
  ASSERT_TRUE(Gateway::rewrite_top_via(m, true, false));
  ASSERT_TRUE(Gateway::rewrite_top_via(m, false, false));
  EXPECT_NE(m.find("Via: SIP/2.0/WS k3f9.invalid"), std::string::npos) << m;
  std::string compact = "BYE sip:a SIP/2.0\r\nv: SIP/2.0/ws x.invalid;branch=z9hG4bK3\r\n\r\n";
  ASSERT_TRUE(Gateway::rewrite_top_via(compact, true, false));
  EXPECT_NE(compact.find("v: SIP/2.0/TCP x.invalid"), std::string::npos) << compact;
  std::string none = "BYE sip:a SIP/2.0\r\nCall-ID: x\r\n\r\n";
  EXPECT_FALSE(Gateway::rewrite_top_via(none, true, false));
}

}  // namespace
