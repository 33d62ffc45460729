// [websocket] of the configuration (controlplane/config.cc): values, defaults and errors
// with file:line:column and the fix.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <string>

#include "controlplane/config.h"

namespace {

using veil::config::parse_string;
using veil::config::ParseResult;

const char* const kBase = R"([[port]]
name = "ext0"
role = "external"
device = "net_null0"
addresses = ["203.0.113.1/24"]

[[port]]
name = "int0"
role = "internal"
device = "net_null1"
addresses = ["198.51.100.1/24"]

[sip]
enabled = true
pbx = "198.51.100.10:5060"
)";

// A readable file for certificate/private_key (the parser checks readability only).
std::string readable_file() {
  static std::string path = [] {
    char tmpl[] = "/tmp/veil-ws-cfg-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd >= 0) close(fd);
    return std::string(tmpl);
  }();
  return path;
}

std::string all_errors(const ParseResult& r) {
  std::string s;
  for (const auto& e : r.errors) s += e.str() + "\n";
  return s;
}

TEST(ConfigWebsocket, OffByDefault) {
  ParseResult r = parse_string(kBase, "t.toml");
  ASSERT_TRUE(r.ok()) << all_errors(r);
  EXPECT_FALSE(r.config->websocket.enabled());
}

TEST(ConfigWebsocket, EveryKey) {
  std::string f = readable_file();
  std::string text = std::string(kBase) + "[websocket]\nws_port = 8080\nwss_port = 8443\ncertificate = \"" + f +
                     "\"\nprivate_key = \"" + f +
                     "\"\nallowed_origins = [\"https://phone.example.com\", \"http://localhost:3000\"]\n"
                     "max_connections = 100\nmax_connections_per_source = 4\nmax_message_bytes = 32768\n"
                     "handshake_timeout_ms = 1500\nidle_timeout_s = 20\n";
  ParseResult r = parse_string(text, "t.toml");
  ASSERT_TRUE(r.ok()) << all_errors(r);
  const auto& w = r.config->websocket;
  EXPECT_TRUE(w.enabled());
  EXPECT_EQ(w.ws_port, 8080);
  EXPECT_EQ(w.wss_port, 8443);
  EXPECT_EQ(w.certificate, f);
  EXPECT_EQ(w.private_key, f);
  ASSERT_EQ(w.allowed_origins.size(), 2u);
  EXPECT_EQ(w.allowed_origins[1], "http://localhost:3000");
  EXPECT_EQ(w.max_connections, 100u);
  EXPECT_EQ(w.max_connections_per_source, 4u);
  EXPECT_EQ(w.max_message_bytes, 32768u);
  EXPECT_EQ(w.handshake_timeout_ms, 1500u);
  EXPECT_EQ(w.idle_timeout_s, 20u);
}

// The first error of `text`: its position and what it says.
void expect_error(const std::string& text, unsigned line, const std::string& what, const std::string& fix) {
  ParseResult r = parse_string(text, "t.toml");
  ASSERT_FALSE(r.ok());
  ASSERT_FALSE(r.errors.empty());
  bool found = false;
  for (const auto& e : r.errors)
    if (e.line == line && e.what.find(what) != std::string::npos && e.fix.find(fix) != std::string::npos)
      found = true;
  EXPECT_TRUE(found) << "expected line " << line << " \"" << what << "\" / fix \"" << fix << "\"; got:\n"
                     << all_errors(r);
}

unsigned line_of(const std::string& text, const std::string& needle) {
  unsigned line = 1;
  for (size_t i = 0; i < text.find(needle); ++i) line += text[i] == '\n';
  return line;
}

TEST(ConfigWebsocket, Errors) {
  std::string base = std::string(kBase) + "[websocket]\n";
  std::string t = base + "ws_port = 25000\n";
  expect_error(t, line_of(t, "ws_port"), "lies in media.external.ports", "outside the media ranges");
  t = base + "ws_port = 5060\n";
  expect_error(t, line_of(t, "ws_port"), "is sip.port", "choose another port");
  t = base + "ws_port = 8080\nwss_port = 8080\ncertificate = \"" + readable_file() + "\"\nprivate_key = \"" +
      readable_file() + "\"\n";
  expect_error(t, line_of(t, "wss_port"), "is also ws_port", "different ports");
  t = base + "wss_port = 8443\ncertificate = \"/nonexistent/wss.crt\"\n";
  expect_error(t, line_of(t, "certificate"), "cannot be read", "readable PEM file");
  t = base + "wss_port = 8443\n";
  expect_error(t, line_of(t, "[websocket]"), "websocket.certificate: missing", "certificate and its private key");
  t = base + "ws_port = 8080\nallowed_origins = [\"phone.example.com\"]\n";
  expect_error(t, line_of(t, "allowed_origins"), "is not an origin", "scheme://host");
  t = base + "ws_port = 8080\nallowed_origins = [\"https://a.example.com/path\"]\n";
  expect_error(t, line_of(t, "allowed_origins"), "is not an origin", "no path");
  t = base + "ws_port = 8080\nmax_message_bytes = 10\n";
  expect_error(t, line_of(t, "max_message_bytes"), "out of range", "1024 to 1048576");
  t = base + "ws_port = 8080\nwss_prot = 8443\n";
  expect_error(t, line_of(t, "wss_prot"), "unknown key", "did you mean \"wss_port\"");
  t = std::string(kBase);
  t.replace(t.find("enabled = true"), 14, "enabled = false");
  t += "[websocket]\nws_port = 8080\n";
  expect_error(t, line_of(t, "[websocket]"), "need the B2BUA with TCP", "[sip] enabled = true");
}

}  // namespace
