#include "controlplane/mgmt.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace veil::ctl {

using doc::Array;
using doc::Object;
using doc::Value;

bool parse_request(const std::string& line, Request& out, std::string& err) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    if (j > i) words.push_back(line.substr(i, j - i));
    i = j;
  }
  if (words.size() < 2 || words[0] != kApiVersion) {
    err = std::string("expected \"") + kApiVersion + " <command> [key=value ...]\"";
    return false;
  }
  out = Request{};
  out.command = words[1];
  for (size_t k = 2; k < words.size(); ++k) {
    auto eq = words[k].find('=');
    if (eq == std::string::npos || eq == 0) {
      err = "argument \"" + words[k] + "\" is not key=value";
      return false;
    }
    std::string key = words[k].substr(0, eq), val = words[k].substr(eq + 1);
    if (key == "format") {
      if (val != "json" && val != "text") {
        err = "format must be json or text";
        return false;
      }
      out.json = val == "json";
    } else {
      out.args[key] = val;
    }
  }
  return true;
}

namespace {

Response error(int status, std::string msg) {
  Response r;
  r.status = status;
  r.message = std::move(msg);
  return r;
}

bool to_u32(const std::string& s, uint32_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

std::string mac_str(const dp::MacAddr& m) {
  char b[18];
  std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m.b[0], m.b[1], m.b[2], m.b[3],
                m.b[4], m.b[5]);
  return b;
}

const char* flow_drop_name(unsigned i) { return dp::kDropNames[unsigned(dp::kFlowDropGlobal[i])]; }

}  // namespace

Value Api::flow_doc(uint32_t id, bool detail) {
  auto s = dp_.flows().get(id);
  if (!s) return Value();
  const auto& sp = s->spec;
  const auto& ports = dp_.ports();
  uint64_t now = rte_rdtsc(), hz = dp_.tsc_hz();
  uint64_t last = s->counters.last_seen_tsc;
  uint64_t drops = 0;
  for (unsigned i = 0; i < dp::kFlowDropCount; ++i) drops += s->counters.drops[i];
  std::string state = sp.latch == dp::LatchMode::Strict ? "strict"
                      : s->learned.valid()               ? "latched"
                                                         : "waiting";
  Object o{
      {"id", sp.id},
      {"port", sp.ingress_port < ports.size() ? ports[sp.ingress_port].name : "?"},
      {"local", sp.local.str()},
      {"remote", s->learned.valid() ? s->learned.str() : sp.signaled_remote.valid() ? sp.signaled_remote.str() : "-"},
      {"latch", state},
      {"egress_port", sp.egress_port < ports.size() ? ports[sp.egress_port].name : "?"},
      {"egress_local", sp.egress_local.str()},
      {"egress_dst", s->egress_dst.valid() ? s->egress_dst.str() : "-"},
      {"packets", s->counters.packets},
      {"bytes", s->counters.bytes},
      {"drops", drops},
      {"idle_s", last ? double(now - last) / double(hz) : -1.0},
  };
  if (detail) {
    o.push_back({"signaled_remote", sp.signaled_remote.valid() ? sp.signaled_remote.str() : "-"});
    o.push_back({"learned_remote", s->learned.valid() ? s->learned.str() : "-"});
    o.push_back({"egress_remote", sp.egress_remote.valid() ? sp.egress_remote.str() : "-"});
    o.push_back({"peer", sp.peer_id});
    o.push_back({"rtp_check", sp.rtp_check});
    o.push_back({"disabled", sp.drop});
    o.push_back({"age_s", double(now - s->created_tsc) / double(hz)});
    char ssrc[16];
    std::snprintf(ssrc, sizeof ssrc, "0x%08x", s->counters.last_ssrc);
    o.push_back({"last_ssrc", std::string(ssrc)});
    o.push_back({"last_seq", uint32_t(s->counters.last_seq)});
    o.push_back({"last_pt", uint32_t(s->counters.last_pt)});
    Object d;
    for (unsigned i = 0; i < dp::kFlowDropCount; ++i)
      d.push_back({flow_drop_name(i), s->counters.drops[i]});
    o.push_back({"drops_by_reason", std::move(d)});
  }
  o.push_back({"reported_idle", idle_.count(id) != 0});
  return o;
}

Response Api::flows(const Request& r) {
  uint32_t limit = 1000;
  if (auto it = r.args.find("limit"); it != r.args.end() && !to_u32(it->second, limit))
    return error(EINVAL, "limit must be a number");
  auto ids = dp_.flows().ids();
  std::sort(ids.begin(), ids.end());
  Array rows;
  for (uint32_t id : ids) {
    if (rows.size() >= limit) break;
    rows.push_back(flow_doc(id, false));
  }
  Response resp;
  resp.body = std::move(rows);
  return resp;
}

Response Api::flow(const Request& r) {
  uint32_t id;
  auto it = r.args.find("id");
  if (it == r.args.end() || !to_u32(it->second, id)) return error(EINVAL, "flow needs id=N");
  Value v = flow_doc(id, true);
  if (!v.is_object()) return error(ENOENT, "no flow " + it->second);
  Response resp;
  resp.body = std::move(v);
  return resp;
}

Response Api::flow_add(const Request& r, bool update) {
  dp::FlowSpec s;
  const auto& ports = dp_.ports();
  auto port_index = [&](const std::string& name, uint8_t& out) {
    for (size_t i = 0; i < ports.size(); ++i)
      if (ports[i].name == name || name == config::role_name(ports[i].role)) {
        out = uint8_t(i);
        return true;
      }
    return false;
  };
  for (const auto& [k, v] : r.args) {
    bool ok = true;
    if (k == "id") ok = to_u32(v, s.id);
    else if (k == "peer") ok = to_u32(v, s.peer_id);
    else if (k == "port") ok = port_index(v, s.ingress_port);
    else if (k == "egress-port") ok = port_index(v, s.egress_port);
    else if (k == "local" || k == "remote" || k == "egress-local" || k == "egress-remote") {
      auto e = Endpoint::parse(v);
      ok = e.has_value();
      if (ok) {
        if (k == "local") s.local = *e;
        else if (k == "remote") s.signaled_remote = *e;
        else if (k == "egress-local") s.egress_local = *e;
        else s.egress_remote = *e;
      }
    } else if (k == "latch") {
      ok = v == "latch" || v == "strict";
      s.latch = v == "strict" ? dp::LatchMode::Strict : dp::LatchMode::Latch;
    } else if (k == "rtp-check" || k == "disabled") {
      ok = v == "yes" || v == "no";
      (k == "rtp-check" ? s.rtp_check : s.drop) = v == "yes";
    } else {
      return error(EINVAL, "unknown argument " + k +
                               " (allowed: id port local remote latch egress-port egress-local "
                               "egress-remote peer rtp-check disabled)");
    }
    if (!ok) return error(EINVAL, "bad value for " + k + ": " + v);
  }
  if (!r.args.count("port") || !r.args.count("egress-port"))
    return error(EINVAL, "port= and egress-port= are required (port name or external/internal)");
  const auto& in = ports[s.ingress_port];
  if (!in.is_ours(s.local.addr.family, s.local.addr.bytes.data()))
    return error(EINVAL, "local " + s.local.str() + " is not an address of port " + in.name);
  if (!in.media.contains(s.local.port))
    return error(EINVAL, "local port " + std::to_string(s.local.port) + " is outside " + in.name +
                             "'s media range " + std::to_string(in.media.first) + "-" +
                             std::to_string(in.media.last));
  const auto& out = ports[s.egress_port];
  if (!out.is_ours(s.egress_local.addr.family, s.egress_local.addr.bytes.data()))
    return error(EINVAL, "egress-local " + s.egress_local.str() + " is not an address of port " + out.name);
  std::string why;
  int rc = update ? dp_.flows().update(s, &why) : dp_.flows().install(s, &why);
  if (rc) return error(-rc, why);
  dp_.prime_next_hop(s.egress_port, s.egress_remote.addr);
  idle_.erase(s.id);
  Response resp;
  resp.body = flow_doc(s.id, true);
  return resp;
}

Response Api::flow_del(const Request& r) {
  uint32_t id;
  auto it = r.args.find("id");
  if (it == r.args.end() || !to_u32(it->second, id)) return error(EINVAL, "flow-del needs id=N");
  Value last = flow_doc(id, true);
  if (dp_.flows().remove(id) != 0) return error(ENOENT, "no flow " + it->second);
  idle_.erase(id);
  Response resp;
  resp.body = std::move(last);
  return resp;
}

Response Api::drops() {
  uint64_t d[dp::kDropCount], e[dp::kEventCount];
  dp_.counters(d, e);
  Array rows;
  for (unsigned i = 0; i < dp::kDropCount; ++i)
    rows.push_back(Object{{"reason", dp::kDropNames[i]}, {"packets", d[i]},
                          {"description", dp::kDropDescriptions[i]}});
  Response resp;
  resp.body = std::move(rows);
  return resp;
}

Response Api::stats() {
  uint64_t d[dp::kDropCount], e[dp::kEventCount];
  dp_.counters(d, e);
  Object ev, dr;
  uint64_t total = 0;
  for (unsigned i = 0; i < dp::kEventCount; ++i) ev.push_back({dp::kEventNames[i], e[i]});
  for (unsigned i = 0; i < dp::kDropCount; ++i) {
    total += d[i];
    if (d[i]) dr.push_back({dp::kDropNames[i], d[i]});
  }
  Response resp;
  SipStats sip;
  if (sip_stats_) sip = sip_stats_();
  Object body{{"flows", uint64_t(dp_.flows().size())},
              {"flow_capacity", dp_.flows().capacity()},
              {"workers", dp_.workers()},
              {"calls", sip.active_calls},
              {"dropped", total},
              {"events", std::move(ev)},
              {"drops", std::move(dr)}};
  if (sip_stats_) body.push_back({"sip", std::move(sip.counters)});
  resp.body = std::move(body);
  return resp;
}

Response Api::ports() {
  Array rows;
  for (const auto& p : dp_.ports()) {
    rte_eth_stats st{};
    rte_eth_stats_get(p.nic, &st);
    rte_eth_link link{};
    rte_eth_link_get_nowait(p.nic, &link);
    std::string addrs;
    for (unsigned i = 0; i < p.n_addrs; ++i) addrs += (i ? "," : "") + p.prefixes[i].str();
    rows.push_back(Object{{"name", p.name},
                          {"role", config::role_name(p.role)},
                          {"dpdk_port", uint32_t(p.nic)},
                          {"mac", mac_str(p.mac)},
                          {"link", link.link_status ? "up" : "down"},
                          {"addresses", addrs},
                          {"exception_iface", p.has_exc ? p.exc_iface : "-"},
                          {"rx_packets", uint64_t(st.ipackets)},
                          {"tx_packets", uint64_t(st.opackets)},
                          {"rx_missed", uint64_t(st.imissed)},
                          {"rx_errors", uint64_t(st.ierrors)},
                          {"tx_errors", uint64_t(st.oerrors)}});
  }
  Response resp;
  resp.body = std::move(rows);
  return resp;
}

Response Api::neighbours() {
  Array rows;
  const auto& ports = dp_.ports();
  for (const auto& n : dp_.neighbours().list())
    rows.push_back(Object{{"port", n.port < ports.size() ? ports[n.port].name : "?"},
                          {"address", n.addr.str()},
                          {"mac", mac_str(n.mac)}});
  Response resp;
  resp.body = std::move(rows);
  return resp;
}

Response Api::handle(const Request& req) {
  const std::string& c = req.command;
  if (c == "version") {
    Response r;
    r.body = Object{{"api", kApiVersion}, {"veil", VEIL_VERSION}};
    return r;
  }
  if (c == "flows") return flows(req);
  if (c == "flow") return flow(req);
  if (c == "flow-add") return flow_add(req, false);
  if (c == "flow-update") return flow_add(req, true);
  if (c == "flow-del") return flow_del(req);
  if (c == "drops") return drops();
  if (c == "stats") return stats();
  if (c == "ports") return ports();
  if (c == "neighbours") return neighbours();
  return error(EOPNOTSUPP, "unknown command " + c +
                               " (commands: version flows flow flow-add flow-update flow-del "
                               "drops stats ports neighbours)");
}

Server::~Server() {
  for (auto& [fd, buf] : clients_) close(fd);
  if (lfd_ >= 0) {
    close(lfd_);
    unlink(path_.c_str());
  }
}

bool Server::listen(const std::string& path, std::string& err) {
  sockaddr_un sa{};
  if (path.size() >= sizeof sa.sun_path) {
    err = "management socket path too long: " + path;
    return false;
  }
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) mkdir(path.substr(0, slash).c_str(), 0750);
  lfd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (lfd_ < 0) {
    err = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.c_str(), path.size());
  unlink(path.c_str());
  // Owner and group only: the API can remove flows.
  mode_t old = umask(0117);
  int rc = bind(lfd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  umask(old);
  if (rc < 0 || ::listen(lfd_, 64) < 0) {
    err = "cannot listen on " + path + ": " + std::strerror(errno);
    close(lfd_);
    lfd_ = -1;
    return false;
  }
  path_ = path;
  return true;
}

void Server::on_listen_ready(int epfd) {
  for (;;) {
    int fd = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (clients_.size() >= 64 || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
      close(fd);
      continue;
    }
    clients_[fd] = {};
  }
}

void Server::on_client_ready(int epfd, int fd) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  bool done = n <= 0;
  if (n > 0) it->second.append(buf, size_t(n));
  auto nl = it->second.find('\n');
  if (nl == std::string::npos && it->second.size() > 16384) done = true;
  if (nl != std::string::npos) {
    Request req;
    std::string err;
    Response resp = parse_request(it->second.substr(0, nl), req, err) ? api_.handle(req)
                                                                       : error(EINVAL, err);
    std::string out = std::string(kApiVersion) + " " + std::to_string(resp.status) + " " +
                      resp.message + "\n";
    if (resp.status == 0) out += req.json ? doc::to_json(resp.body) + "\n" : doc::to_text(resp.body);
    // Small answers fit the socket buffer; a client that stops reading loses the rest.
    timeval tv{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int flags = 0;
    size_t off = 0;
    while (off < out.size()) {
      ssize_t w = send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL | flags);
      if (w < 0) {
        if (errno == EAGAIN) {
          pollfd p{fd, POLLOUT, 0};
          if (poll(&p, 1, 1000) <= 0) break;
          continue;
        }
        break;
      }
      off += size_t(w);
    }
    done = true;
  }
  if (done) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    clients_.erase(it);
  }
}

}  // namespace veil::ctl
