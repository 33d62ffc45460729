#include "controlplane/ws_gateway.h"

#include <utility>  // before Boost: asio/awaitable.hpp uses std::exchange

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <charconv>
#include <chrono>
#include <deque>
#include <map>
#include <thread>

namespace veil::ws {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// The Content-Length of a header block (full or compact form "l"): -1 when absent, -2 when
// present but not a number.
long content_length(std::string_view headers) {
  size_t pos = headers.find("\r\n");  // skip the start line
  while (pos != std::string_view::npos && pos + 2 < headers.size()) {
    size_t start = pos + 2;
    size_t end = headers.find("\r\n", start);
    std::string_view line = headers.substr(start, end == std::string_view::npos ? end : end - start);
    pos = end;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = trim(line.substr(0, colon));
    if (!iequals(name, "content-length") && !iequals(name, "l")) continue;
    std::string_view v = trim(line.substr(colon + 1));
    long n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p != v.data() + v.size() || n < 0) return -2;
    return n;
  }
  return -1;
}

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

bool Gateway::rewrite_top_via(std::string& msg, bool to_stream, bool secure) {
  size_t end = msg.find("\r\n\r\n");
  size_t pos = msg.find("\r\n");
  while (pos != std::string::npos && pos < end) {
    size_t start = pos + 2;
    size_t colon = msg.find(':', start);
    size_t eol = msg.find("\r\n", start);
    if (colon == std::string::npos || colon > eol) return false;
    std::string_view name = trim(std::string_view(msg).substr(start, colon - start));
    if (iequals(name, "via") || iequals(name, "v")) {
      size_t proto = colon + 1;
      while (proto < eol && (msg[proto] == ' ' || msg[proto] == '\t')) ++proto;
      if (eol - proto < 8 || !iequals(std::string_view(msg).substr(proto, 8), "SIP/2.0/")) return false;
      size_t t = proto + 8, te = t;
      while (te < eol && msg[te] != ' ' && msg[te] != '\t') ++te;
      std::string_view tr = std::string_view(msg).substr(t, te - t);
      if (to_stream ? (iequals(tr, "WS") || iequals(tr, "WSS")) : iequals(tr, "TCP"))
        msg.replace(t, te - t, to_stream ? "TCP" : (secure ? "WSS" : "WS"));
      return true;
    }
    pos = eol;
  }
  return false;
}

long Gateway::frame_length(std::string_view s, size_t max, size_t& skip) {
  skip = 0;
  while (skip + 1 < s.size() && s[skip] == '\r' && s[skip + 1] == '\n') skip += 2;
  s.remove_prefix(skip);
  size_t end = s.find("\r\n\r\n");
  if (end == std::string_view::npos) return s.size() > max ? -1 : 0;
  long cl = content_length(s.substr(0, end + 2));
  if (cl < 0) return -1;  // RFC 3261 18.3: mandatory on stream transports
  size_t total = end + 4 + size_t(cl);
  if (total > max) return -1;
  return s.size() < total ? 0 : long(total);
}

bool Gateway::to_stream(std::string& msg) {
  size_t end = msg.find("\r\n\r\n");
  if (end == std::string::npos || end == 0) return false;
  size_t body = msg.size() - (end + 4);
  long cl = content_length(std::string_view(msg).substr(0, end + 2));
  if (cl == -2) return false;
  if (cl >= 0) return size_t(cl) == body;
  msg.insert(end + 2, "Content-Length: " + std::to_string(body) + "\r\n");
  return true;
}

struct Gateway::Impl {
  GatewayConfig cfg;
  Logger log;
  GatewayStats stats;
  std::map<std::string, uint32_t> per_source;  // open connections by client address
  uint64_t open = 0;
  // Declared after what sessions use: destroyed first, with the handlers that own them.
  asio::io_context io{1};
  asio::ssl::context tls{asio::ssl::context::tls_server};
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::thread thread;
  bool running = false;

  void note(std::string_view level, const std::string& msg) {
    if (log) log(level, msg);
  }
  void accept(tcp::acceptor& a, bool secure);
};

namespace {

// One WebSocket connection and its TCP connection to the B2BUA. `Next` is beast::tcp_stream
// (ws) or beast::ssl_stream<beast::tcp_stream> (wss).
template <class Next>
class Session : public std::enable_shared_from_this<Session<Next>> {
 public:
  static constexpr bool kSecure = !std::is_same_v<Next, beast::tcp_stream>;

  Session(Gateway::Impl& g, websocket::stream<Next> ws, std::string source)
      : g_(g), ws_(std::move(ws)), sip_(g.io), source_(std::move(source)) {}

  ~Session() {
    auto it = g_.per_source.find(source_);
    if (it != g_.per_source.end() && --it->second == 0) g_.per_source.erase(it);
    --g_.open;
    if (opened_) {
      g_.stats.active.fetch_sub(1, std::memory_order_relaxed);
      g_.stats.closed.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void start() {
    beast::get_lowest_layer(ws_).expires_after(std::chrono::milliseconds(g_.cfg.handshake_timeout_ms));
    if constexpr (std::is_same_v<Next, beast::tcp_stream>) {
      read_request();
    } else {
      ws_.next_layer().async_handshake(asio::ssl::stream_base::server,
                                       [self = this->shared_from_this()](error_code ec) {
                                         if (ec) return self->handshake_failed();
                                         self->read_request();
                                       });
    }
  }

 private:
  void handshake_failed() { g_.stats.handshake_failed.fetch_add(1, std::memory_order_relaxed); }

  void read_request() {
    parser_.emplace();
    parser_->header_limit(8192);
    parser_->body_limit(0);
    http::async_read(ws_.next_layer(), buf_, *parser_,
                     [self = this->shared_from_this()](error_code ec, size_t) {
                       if (ec) return self->handshake_failed();
                       self->on_request();
                     });
  }

  // Answers a request that does not become a WebSocket with `status` and closes.
  void refuse(http::status status, std::string body) {
    auto res = std::make_shared<http::response<http::string_body>>(status, 11);
    res->set(http::field::content_type, "text/plain");
    res->set(http::field::connection, "close");
    if (status == http::status::upgrade_required) {
      res->set(http::field::upgrade, "websocket");
      res->set(http::field::sec_websocket_version, "13");
    }
    res->body() = std::move(body) + "\n";
    res->prepare_payload();
    http::async_write(ws_.next_layer(), *res, [self = this->shared_from_this(), res](error_code, size_t) {
      beast::get_lowest_layer(self->ws_).close();
    });
  }

  void on_request() {
    const auto& req = parser_->get();
    if (!websocket::is_upgrade(req)) {
      g_.stats.refused_protocol.fetch_add(1, std::memory_order_relaxed);
      return refuse(http::status::upgrade_required, "SIP over WebSocket: upgrade with subprotocol \"sip\"");
    }
    if (!has_token(sv(req[http::field::sec_websocket_protocol]), "sip")) {
      g_.stats.refused_protocol.fetch_add(1, std::memory_order_relaxed);
      return refuse(http::status::bad_request, "subprotocol \"sip\" required (RFC 7118)");
    }
    if (!g_.cfg.allowed_origins.empty()) {
      std::string_view origin = sv(req[http::field::origin]);
      bool ok = false;
      for (const auto& o : g_.cfg.allowed_origins) ok = ok || o == origin;
      if (!ok) {
        g_.stats.refused_origin.fetch_add(1, std::memory_order_relaxed);
        return refuse(http::status::forbidden, "origin not allowed");
      }
    }
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::milliseconds(g_.cfg.handshake_timeout_ms);
    t.idle_timeout = std::chrono::seconds(g_.cfg.idle_timeout_s);
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator([server = g_.cfg.server](websocket::response_type& res) {
      res.set(http::field::sec_websocket_protocol, "sip");
      // Nothing about the software behind the edge: the operator's [sip] user_agent, or an
      // empty value (Beast fills in its own name when the field is absent).
      res.set(http::field::server, server);
    }));
    ws_.read_message_max(g_.cfg.max_message_bytes);
    ws_.text(true);
    ws_.async_accept(req, [self = this->shared_from_this()](error_code ec) {
      if (ec) return self->handshake_failed();
      self->on_open();
    });
  }

  void on_open() {
    opened_ = true;
    g_.stats.accepted.fetch_add(1, std::memory_order_relaxed);
    g_.stats.active.fetch_add(1, std::memory_order_relaxed);
    const Endpoint& t = g_.cfg.sip_target;
    tcp::endpoint to(asio::ip::make_address(t.addr.str()), t.port);
    sip_.async_connect(to, [self = this->shared_from_this()](error_code ec) {
      if (ec) {
        self->g_.stats.sip_connect_failed.fetch_add(1, std::memory_order_relaxed);
        self->g_.note("warning", "websocket: cannot reach the B2BUA over TCP: " + ec.message());
        return self->close_ws(websocket::close_code::try_again_later);
      }
      error_code ignore;
      self->sip_.set_option(tcp::no_delay(true), ignore);
      self->read_ws();
      self->read_sip();
    });
  }

  void read_ws() {
    ws_.async_read(in_, [self = this->shared_from_this()](error_code ec, size_t) {
      if (ec) {
        if (ec == websocket::error::message_too_big)
          self->g_.stats.oversized.fetch_add(1, std::memory_order_relaxed);
        return self->shut_sip();
      }
      std::string msg = beast::buffers_to_string(self->in_.data());
      self->in_.consume(self->in_.size());
      if (Gateway::to_stream(msg) && Gateway::rewrite_top_via(msg, true, kSecure)) {
        self->g_.stats.messages_in.fetch_add(1, std::memory_order_relaxed);
        self->sip_q_.push_back(std::move(msg));
        if (self->sip_q_.size() == 1) self->write_sip();
      } else {
        self->g_.stats.bad_messages.fetch_add(1, std::memory_order_relaxed);
      }
      self->read_ws();
    });
  }

  void write_sip() {
    asio::async_write(sip_, asio::buffer(sip_q_.front()), [self = this->shared_from_this()](error_code ec, size_t) {
      if (ec) return self->close_ws(websocket::close_code::going_away);
      self->sip_q_.pop_front();
      if (!self->sip_q_.empty()) self->write_sip();
    });
  }

  void read_sip() {
    sip_.async_read_some(asio::buffer(chunk_), [self = this->shared_from_this()](error_code ec, size_t n) {
      if (ec) return self->close_ws(websocket::close_code::going_away);
      self->stream_.append(self->chunk_, n);
      for (;;) {
        size_t skip = 0;
        long len = Gateway::frame_length(self->stream_, self->g_.cfg.max_message_bytes, skip);
        if (len < 0) {
          self->g_.stats.bad_messages.fetch_add(1, std::memory_order_relaxed);
          return self->close_ws(websocket::close_code::internal_error);
        }
        if (len == 0) {
          self->stream_.erase(0, skip);
          break;
        }
        std::string msg = self->stream_.substr(skip, size_t(len));
        Gateway::rewrite_top_via(msg, false, kSecure);
        self->ws_q_.push_back(std::move(msg));
        self->stream_.erase(0, skip + size_t(len));
        if (self->ws_q_.size() == 1) self->write_ws();
      }
      self->read_sip();
    });
  }

  void write_ws() {
    ws_.async_write(asio::buffer(ws_q_.front()), [self = this->shared_from_this()](error_code ec, size_t) {
      if (ec) return self->shut_sip();
      self->g_.stats.messages_out.fetch_add(1, std::memory_order_relaxed);
      self->ws_q_.pop_front();
      if (!self->ws_q_.empty()) self->write_ws();
    });
  }

  // The browser went away: the B2BUA sees its TCP connection close (its binding stays until
  // it expires, as for any TCP client).
  void shut_sip() {
    error_code ignore;
    sip_.shutdown(tcp::socket::shutdown_both, ignore);
    sip_.close(ignore);
  }

  void close_ws(websocket::close_code code) {
    shut_sip();
    if (closing_ || !ws_.is_open()) return;
    closing_ = true;
    ws_.async_close(code, [self = this->shared_from_this()](error_code) {});
  }

  Gateway::Impl& g_;
  websocket::stream<Next> ws_;
  tcp::socket sip_;
  std::string source_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  beast::flat_buffer in_;
  char chunk_[16384];
  std::string stream_;
  std::deque<std::string> sip_q_, ws_q_;
  bool opened_ = false;
  bool closing_ = false;
};

}  // namespace

void Gateway::Impl::accept(tcp::acceptor& a, bool secure) {
  a.async_accept(io, [this, &a, secure](error_code ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      error_code e2;
      tcp::endpoint peer = s.remote_endpoint(e2);
      std::string source = e2 ? std::string("?") : peer.address().to_string();
      uint32_t& n = per_source[source];
      if (open >= cfg.max_connections || n >= cfg.max_connections_per_source) {
        stats.refused_limit.fetch_add(1, std::memory_order_relaxed);
        if (n == 0) per_source.erase(source);
        s.close(e2);
      } else {
        ++n;
        ++open;
        s.set_option(tcp::no_delay(true), e2);
        if (secure) {
          websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws(beast::tcp_stream(std::move(s)), tls);
          std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(*this, std::move(ws), source)->start();
        } else {
          websocket::stream<beast::tcp_stream> ws(beast::tcp_stream(std::move(s)));
          std::make_shared<Session<beast::tcp_stream>>(*this, std::move(ws), source)->start();
        }
      }
    }
    accept(a, secure);
  });
}

Gateway::Gateway(GatewayConfig cfg, Logger log) : impl_(std::make_unique<Impl>()) {
  impl_->cfg = std::move(cfg);
  impl_->log = std::move(log);
}

Gateway::~Gateway() { stop(); }

const GatewayStats& Gateway::stats() const { return impl_->stats; }

bool Gateway::start(std::string* error) {
  Impl& g = *impl_;
  try {
    if (g.cfg.wss_port) {
      g.tls.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                        asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                        asio::ssl::context::no_tlsv1_1);
      g.tls.use_certificate_chain_file(g.cfg.certificate);
      g.tls.use_private_key_file(g.cfg.private_key, asio::ssl::context::pem);
    }
  } catch (const boost::system::system_error& e) {
    if (error) *error = "websocket: wss certificate/key: " + std::string(e.what());
    return false;
  }
  auto addr = asio::ip::make_address(g.cfg.addr.str());
  for (auto [port, secure] : {std::pair{g.cfg.ws_port, false}, std::pair{g.cfg.wss_port, true}}) {
    if (!port) continue;
    try {
      auto a = std::make_unique<tcp::acceptor>(g.io);
      tcp::endpoint ep(addr, port);
      a->open(ep.protocol());
      a->set_option(asio::socket_base::reuse_address(true));
      a->bind(ep);
      a->listen(asio::socket_base::max_listen_connections);
      g.accept(*a, secure);
      g.acceptors.push_back(std::move(a));
    } catch (const boost::system::system_error& e) {
      if (error)
        *error = std::string("websocket: cannot listen on ") + (secure ? "wss " : "ws ") +
                 Endpoint{g.cfg.addr, port}.str() + ": " + e.what();
      g.acceptors.clear();
      return false;
    }
  }
  g.running = true;
  g.thread = std::thread([&g] {
    for (;;) {
      try {
        g.io.run();
        return;
      } catch (const std::exception& e) {  // a handler threw: log it, keep serving
        g.note("error", std::string("websocket: ") + e.what());
      }
    }
  });
  return true;
}

void Gateway::stop() {
  Impl& g = *impl_;
  if (!g.running) return;
  g.running = false;
  asio::post(g.io, [&g] {
    for (auto& a : g.acceptors) {
      error_code ignore;
      a->close(ignore);
    }
  });
  g.io.stop();
  if (g.thread.joinable()) g.thread.join();
}

}  // namespace veil::ws
