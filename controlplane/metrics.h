// Prometheus /metrics for veild: a minimal HTTP/1.1 server (GET /metrics, text exposition
// format 0.0.4, one request per connection, "Connection: close") on a TCP address given by
// the VEIL_METRICS environment variable ("127.0.0.1:9464", "[::1]:9464"); see
// docs/operations.md. Non-blocking sockets in the control loop's epoll: at most kMaxClients
// connections (the oldest is closed for a new one), requests up to 8 KiB, answers written as
// the socket accepts them (EPOLLOUT), so a slow or stuck scraper never blocks the loop.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

namespace veil::ctl {

class Api;

// The exposition text: ports, flows, calls, drops by reason, events, SIP counters and the
// management API's request counts and latency histogram.
std::string render_metrics(Api& api);

class MetricsServer {
 public:
  static constexpr size_t kMaxClients = 16;
  explicit MetricsServer(Api& api) : api_(api) {}
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Listens on "ADDR:PORT" and registers with `epfd`; false with `err` on failure.
  bool listen(const std::string& addr, int epfd, std::string& err);
  bool owns(int fd) const { return fd >= 0 && (fd == lfd_ || clients_.count(fd) != 0); }
  void on_ready(int epfd, int fd);
  uint64_t scrapes() const { return scrapes_; }

 private:
  struct Client {
    std::string in, out;
    size_t off = 0;
    uint64_t serial = 0;
  };
  void accept_all(int epfd);
  void drop(int epfd, int fd);
  void flush(int epfd, int fd, Client& c);

  Api& api_;
  int lfd_ = -1;
  std::map<int, Client> clients_;
  uint64_t serial_ = 0, scrapes_ = 0;
};

}  // namespace veil::ctl
