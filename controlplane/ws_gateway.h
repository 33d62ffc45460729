// SIP over WebSocket (RFC 7118) on the untrusted side: `ws` and `wss` listeners in front of
// the B2BUA's own TCP transport, so that browsers and UDP/TCP phones reach one B2BUA.
//
// Debian's sofia-sip has no WebSocket transport. Each accepted WebSocket connection (HTTP
// upgrade with subprotocol "sip", TLS for wss) gets one TCP connection of its own to the
// B2BUA's external SIP address: every WebSocket message becomes one framed SIP message on
// that connection (Content-Length added when the browser left it out, RFC 7118 5), and every
// SIP message the B2BUA writes there becomes one WebSocket text message. The B2BUA sees the
// connection as a TCP client and answers and routes over it like any TCP client (a browser's
// registration binds to that connection), so nothing in it depends on WebSocket. Boost.Beast
// (docs/dependencies.md) does the HTTP upgrade, framing, masking, ping/pong and TLS, on one
// thread of the gateway's own that never touches sofia-sip or the dataplane.
//
// The gateway enforces what an edge must: allowed Origins, the "sip" subprotocol, a total and
// a per-source connection limit, a handshake timeout, the largest message, and idle
// connections kept alive by WebSocket pings and closed when the peer stops answering. Every
// refusal is counted (GatewayStats).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/addr.h"

namespace veil::ws {

struct GatewayConfig {
  IpAddr addr;               // the SBC's untrusted SIP address (the listeners bind here)
  uint16_t ws_port = 0;      // plain WebSocket; 0: off
  uint16_t wss_port = 0;     // WebSocket over TLS; 0: off
  std::string certificate;   // PEM chain for wss
  std::string private_key;   // PEM key for wss
  std::vector<std::string> allowed_origins;  // exact Origin values; empty: any Origin
  Endpoint sip_target;       // the B2BUA's TCP listener on the untrusted side
  uint32_t max_connections = 4096;
  uint32_t max_connections_per_source = 16;  // per client IPv4 address / IPv6 address
  uint32_t max_message_bytes = 65536;
  uint32_t handshake_timeout_ms = 5000;      // TCP accept to WebSocket open (TLS included)
  uint32_t idle_timeout_s = 60;              // no frame for this long: ping; no answer: closed
  std::string server;        // Server header of the upgrade response ([sip] user_agent; may be empty)
};

// Written by the gateway thread, read by anyone (relaxed).
struct GatewayStats {
  std::atomic<uint64_t> accepted{0};           // WebSocket connections opened
  std::atomic<uint64_t> active{0};             // open now
  std::atomic<uint64_t> refused_limit{0};      // over max_connections or the per-source limit
  std::atomic<uint64_t> refused_origin{0};     // Origin not allowed (HTTP 403)
  std::atomic<uint64_t> refused_protocol{0};   // no "sip" subprotocol, or not an upgrade (400/426)
  std::atomic<uint64_t> handshake_failed{0};   // TLS or HTTP failure, or the handshake timed out
  std::atomic<uint64_t> sip_connect_failed{0}; // the B2BUA's TCP listener did not accept
  std::atomic<uint64_t> messages_in{0};        // WebSocket -> B2BUA
  std::atomic<uint64_t> messages_out{0};       // B2BUA -> WebSocket
  std::atomic<uint64_t> bad_messages{0};       // not a SIP message, or wrong Content-Length: dropped
  std::atomic<uint64_t> oversized{0};          // over max_message_bytes: connection closed (1009)
  std::atomic<uint64_t> closed{0};             // connections ended (either side)
};

class Gateway {
 public:
  using Logger = std::function<void(std::string_view level, std::string_view msg)>;

  Gateway(GatewayConfig cfg, Logger log);
  ~Gateway();  // stops the thread and closes every connection
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Loads the certificate, binds the listeners and starts the gateway's thread. False with
  // `error` set when a file cannot be used or a port cannot be bound.
  bool start(std::string* error);
  void stop();
  const GatewayStats& stats() const;

  // Splits SIP messages off the front of a TCP byte stream: the length of the first complete
  // message (headers, blank line and Content-Length bytes of body) or 0 while incomplete.
  // CRLF keep-alives before a message are consumed (`skip`). -1: the stream cannot be framed
  // (no or a bad Content-Length, or headers longer than `max`).
  static long frame_length(std::string_view stream, size_t max, size_t& skip);
  // A WebSocket message made ready for a stream transport: Content-Length added when absent
  // (RFC 7118 5). False when the message is not one SIP message (no header end, or a
  // Content-Length that disagrees with the body).
  static bool to_stream(std::string& msg);
  // The transport of the topmost Via: "WS"/"WSS" -> "TCP" toward the B2BUA (`to_stream`),
  // "TCP" -> "WSS"/"WS" (`secure`) toward the browser, so that each side sees the transport
  // it actually uses (sofia-sip answers a Via it can route; RFC 7118 5.2 for the browser).
  // False when the message has no Via header.
  static bool rewrite_top_via(std::string& msg, bool to_stream, bool secure);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace veil::ws
