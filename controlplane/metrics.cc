#include "controlplane/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <rte_ethdev.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "controlplane/mgmt.h"
#include "dataplane/dataplane.h"

namespace veil::ctl {

namespace {

// Label values: backslash, double quote and newline escaped (format 0.0.4).
std::string label(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '"') o += '\\', o += c;
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

void head(std::string& o, const char* name, const char* type, const std::string& help) {
  o += "# HELP ";
  o += name;
  o += ' ' + help + "\n# TYPE ";
  o += name;
  o += ' ';
  o += type;
  o += '\n';
}

void line(std::string& o, const std::string& name, const std::string& labels, double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.9g", v);
  o += name + (labels.empty() ? "" : "{" + labels + "}") + " " + b + "\n";
}

void line(std::string& o, const std::string& name, const std::string& labels, uint64_t v) {
  o += name + (labels.empty() ? "" : "{" + labels + "}") + " " + std::to_string(v) + "\n";
}

}  // namespace

std::string render_metrics(Api& api) {
  dp::Dataplane& dp = api.dataplane();
  std::string o;
  o.reserve(8192);

  struct PortStat {
    const char* name;
    const char* help;
    uint64_t rte_eth_stats::*field;
  };
  static const PortStat kPort[] = {
      {"veil_port_rx_packets_total", "Packets received by the NIC port.", &rte_eth_stats::ipackets},
      {"veil_port_tx_packets_total", "Packets transmitted by the NIC port.", &rte_eth_stats::opackets},
      {"veil_port_rx_bytes_total", "Bytes received by the NIC port.", &rte_eth_stats::ibytes},
      {"veil_port_tx_bytes_total", "Bytes transmitted by the NIC port.", &rte_eth_stats::obytes},
      {"veil_port_rx_missed_total", "Packets the NIC dropped because the receive queues were full.",
       &rte_eth_stats::imissed},
      {"veil_port_rx_errors_total", "Erroneous packets received.", &rte_eth_stats::ierrors},
      {"veil_port_tx_errors_total", "Failed transmissions.", &rte_eth_stats::oerrors},
  };
  std::vector<rte_eth_stats> st(dp.ports().size());
  for (size_t i = 0; i < dp.ports().size(); ++i) rte_eth_stats_get(dp.ports()[i].nic, &st[i]);
  for (const auto& m : kPort) {
    head(o, m.name, "counter", m.help);
    for (size_t i = 0; i < dp.ports().size(); ++i) {
      const auto& p = dp.ports()[i];
      line(o, m.name, "port=\"" + label(p.name) + "\",role=\"" + config::role_name(p.role) + "\"",
           uint64_t(st[i].*m.field));
    }
  }
  head(o, "veil_port_up", "gauge", "1 when the port's link is up.");
  for (const auto& p : dp.ports()) {
    rte_eth_link link{};
    rte_eth_link_get_nowait(p.nic, &link);
    line(o, "veil_port_up", "port=\"" + label(p.name) + "\",role=\"" + config::role_name(p.role) + "\"",
         uint64_t(link.link_status ? 1 : 0));
  }

  head(o, "veil_flows", "gauge", "Media flows installed.");
  line(o, "veil_flows", "", uint64_t(dp.flows().size()));
  head(o, "veil_flow_capacity", "gauge", "Size of the flow table.");
  line(o, "veil_flow_capacity", "", uint64_t(dp.flows().capacity()));
  head(o, "veil_flows_idle", "gauge", "Flows reported idle (no packet for flow_idle_timeout).");
  line(o, "veil_flows_idle", "", uint64_t(api.idle_flows().size()));

  // RFC 3550 reception quality per flow carrying RTP (reset when a flow's SSRC changes, hence
  // gauges); a flow without RTP has no series. Per-flow series only while the table holds at
  // most kFlowSeriesMax flows: beyond that a scrape would walk the whole table on the control
  // thread and return millions of series (veilctl flow/flows give the figures at any size).
  constexpr size_t kFlowSeriesMax = 10000;
  head(o, "veil_flow_rtp_series", "gauge",
       "1 when the per-flow RTP series below are exported (at most 10000 flows installed), else 0.");
  line(o, "veil_flow_rtp_series", "", uint64_t(dp.flows().size() <= kFlowSeriesMax ? 1 : 0));
  if (dp.flows().size() <= kFlowSeriesMax) {
    std::string lost, expected, jitter;
    auto ids = dp.flows().ids();
    std::sort(ids.begin(), ids.end());
    for (uint32_t id : ids) {
      auto s = dp.flows().get(id);
      if (!s) continue;
      RtpQuality q = rtp_quality(*s);
      if (!q.has_rtp) continue;
      std::string lb = "flow=\"" + std::to_string(id) + "\"";
      line(lost, "veil_flow_rtp_lost_packets", lb, double(q.lost));
      line(expected, "veil_flow_rtp_expected_packets", lb, q.expected);
      if (q.jitter_s >= 0) line(jitter, "veil_flow_rtp_jitter_seconds", lb, q.jitter_s);
    }
    head(o, "veil_flow_rtp_expected_packets", "gauge",
         "RTP packets expected from the flow's current SSRC (RFC 3550 A.3: extended highest sequence - first + 1).");
    o += expected;
    head(o, "veil_flow_rtp_lost_packets", "gauge",
         "RTP packets of the flow's current SSRC that never arrived (expected - received; negative with duplicates).");
    o += lost;
    head(o, "veil_flow_rtp_jitter_seconds", "gauge",
         "Interarrival jitter of the flow's current SSRC (RFC 3550 A.8), where its clock rate is known.");
    o += jitter;
  }

  Api::SipStats sip = api.sip_stats();
  head(o, "veil_calls_active", "gauge", "Calls in progress in the B2BUA.");
  line(o, "veil_calls_active", "", sip.active_calls);

  if (api.has_registrations()) {
    uint64_t n = 0;
    for (const auto& g : api.registration_list())
      if (g.state != "pending") ++n;
    head(o, "veil_registrations", "gauge", "Clients registered through the B2BUA (bindings the PBX confirmed).");
    line(o, "veil_registrations", "", n);
  }

  uint64_t d[dp::kDropCount], e[dp::kEventCount];
  dp.counters(d, e);
  head(o, "veil_drops_total", "counter", "Packets dropped, by reason (veilctl drops describes each).");
  for (unsigned i = 0; i < dp::kDropCount; ++i)
    line(o, "veil_drops_total", std::string("reason=\"") + dp::kDropNames[i] + "\"", d[i]);
  head(o, "veil_events_total", "counter", "Packets handled without a drop, by what the dataplane did.");
  for (unsigned i = 0; i < dp::kEventCount; ++i)
    line(o, "veil_events_total", std::string("event=\"") + dp::kEventNames[i] + "\"", e[i]);

  if (auto* ob = std::get_if<doc::Object>(&sip.counters.v)) {
    for (const auto& [k, v] : *ob) {
      auto* u = std::get_if<uint64_t>(&v.v);
      if (!u || k == "active_calls") continue;
      std::string name = "veil_sip_" + k + "_total";
      head(o, name.c_str(), "counter", "B2BUA counter " + k + ".");
      line(o, name, "", *u);
    }
  }

  head(o, "veil_mgmt_requests_total", "counter", "Management API requests, by command.");
  for (const auto& [cmd, n] : api.request_counts())
    line(o, "veil_mgmt_requests_total", "command=\"" + label(cmd) + "\"", n);
  head(o, "veil_mgmt_request_duration_seconds", "histogram",
       "Time the control thread spent answering a management API request.");
  uint64_t cum = 0;
  const auto& b = api.latency_buckets();
  for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    cum += b[i];
    char le[32];
    std::snprintf(le, sizeof le, "%g", kLatencyBuckets[i]);
    line(o, "veil_mgmt_request_duration_seconds_bucket", std::string("le=\"") + le + "\"", cum);
  }
  cum += b[kLatencyBuckets.size()];
  line(o, "veil_mgmt_request_duration_seconds_bucket", "le=\"+Inf\"", cum);
  line(o, "veil_mgmt_request_duration_seconds_sum", "", api.latency_sum());
  line(o, "veil_mgmt_request_duration_seconds_count", "", api.latency_count());
  return o;
}

MetricsServer::~MetricsServer() {
  for (auto& [fd, c] : clients_) close(fd);
  if (lfd_ >= 0) close(lfd_);
}

bool MetricsServer::listen(const std::string& addr, int epfd, std::string& err) {
  auto ep = Endpoint::parse(addr);
  if (!ep || ep->port == 0) {
    err = "metrics address must be ADDR:PORT (\"127.0.0.1:9464\", \"[::1]:9464\"): " + addr;
    return false;
  }
  sockaddr_storage ss{};
  socklen_t len;
  if (ep->addr.is_v4()) {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(ep->port);
    std::memcpy(&s4->sin_addr, ep->addr.bytes.data(), 4);
    len = sizeof *s4;
  } else {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(ep->port);
    std::memcpy(&s6->sin6_addr, ep->addr.bytes.data(), 16);
    len = sizeof *s6;
  }
  lfd_ = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (lfd_ >= 0) setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd_;
  if (lfd_ < 0 || bind(lfd_, reinterpret_cast<sockaddr*>(&ss), len) < 0 || ::listen(lfd_, 16) < 0 ||
      epoll_ctl(epfd, EPOLL_CTL_ADD, lfd_, &ev) < 0) {
    err = "cannot listen for /metrics on " + addr + ": " + std::strerror(errno);
    if (lfd_ >= 0) close(lfd_);
    lfd_ = -1;
    return false;
  }
  return true;
}

void MetricsServer::drop(int epfd, int fd) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  clients_.erase(fd);
}

void MetricsServer::accept_all(int epfd) {
  for (;;) {
    int fd = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (clients_.size() >= kMaxClients) {  // bounded: the oldest connection makes room
      auto oldest = clients_.begin();
      for (auto it = clients_.begin(); it != clients_.end(); ++it)
        if (it->second.serial < oldest->second.serial) oldest = it;
      drop(epfd, oldest->first);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
      close(fd);
      continue;
    }
    clients_[fd].serial = ++serial_;
  }
}

void MetricsServer::flush(int epfd, int fd, Client& c) {
  while (c.off < c.out.size()) {
    ssize_t w = send(fd, c.out.data() + c.off, c.out.size() - c.off, MSG_NOSIGNAL);
    if (w < 0 && errno == EAGAIN) {
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.fd = fd;
      epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
      return;
    }
    if (w <= 0) break;
    c.off += size_t(w);
  }
  shutdown(fd, SHUT_WR);
  drop(epfd, fd);
}

void MetricsServer::on_ready(int epfd, int fd) {
  if (fd == lfd_) {
    accept_all(epfd);
    return;
  }
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  Client& c = it->second;
  if (!c.out.empty()) {
    flush(epfd, fd, c);
    return;
  }
  char buf[2048];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n <= 0) {
    if (n < 0 && errno == EAGAIN) return;
    drop(epfd, fd);
    return;
  }
  c.in.append(buf, size_t(n));
  auto end = c.in.find("\r\n\r\n");
  if (end == std::string::npos) end = c.in.find("\n\n");
  if (end == std::string::npos) {
    if (c.in.size() > 8192) drop(epfd, fd);
    return;
  }
  std::string first = c.in.substr(0, c.in.find_first_of("\r\n"));
  std::string status, type = "text/plain; charset=utf-8", body;
  if (first.rfind("GET ", 0) != 0 && first.rfind("HEAD ", 0) != 0) {
    status = "405 Method Not Allowed";
    body = "only GET /metrics\n";
  } else {
    auto sp1 = first.find(' '), sp2 = first.find(' ', sp1 + 1);
    std::string path = first.substr(sp1 + 1, sp2 == std::string::npos ? std::string::npos : sp2 - sp1 - 1);
    if (path == "/metrics" || path.rfind("/metrics?", 0) == 0) {
      status = "200 OK";
      type = "text/plain; version=0.0.4; charset=utf-8";
      body = render_metrics(api_);
      ++scrapes_;
    } else {
      status = "404 Not Found";
      body = "Veil serves /metrics only\n";
    }
  }
  c.out = "HTTP/1.1 " + status + "\r\nContent-Type: " + type +
          "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (first.rfind("HEAD ", 0) != 0) c.out += body;
  flush(epfd, fd, c);
}

}  // namespace veil::ctl
