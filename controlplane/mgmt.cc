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
#include <chrono>
#include <cstring>
#include <set>

#include "controlplane/metrics.h"

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
      {"age_s", double(now - s->created_tsc) / double(hz)},
  };
  if (flow_stream_)
    if (auto st = flow_stream_(id)) o.push_back({"stream", *st});
  if (detail) {
    o.push_back({"signaled_remote", sp.signaled_remote.valid() ? sp.signaled_remote.str() : "-"});
    o.push_back({"learned_remote", s->learned.valid() ? s->learned.str() : "-"});
    o.push_back({"egress_remote", sp.egress_remote.valid() ? sp.egress_remote.str() : "-"});
    o.push_back({"peer", sp.peer_id});
    o.push_back({"rtp_check", sp.rtp_check});
    o.push_back({"disabled", sp.drop});
    o.push_back({"srtp_in", dp::srtp_keying_describe(sp.srtp_in)});
    o.push_back({"srtp_out", dp::srtp_keying_describe(sp.srtp_out)});
    char ssrc[16];
    std::snprintf(ssrc, sizeof ssrc, "0x%08x", s->counters.last_ssrc);
    o.push_back({"last_ssrc", std::string(ssrc)});
    o.push_back({"last_seq", uint32_t(s->counters.last_seq)});
    o.push_back({"last_pt", uint32_t(s->counters.last_pt)});
    Object d;
    for (unsigned i = 0; i < dp::kFlowDropCount; ++i)
      d.push_back({flow_drop_name(i), s->counters.drops[i]});
    o.push_back({"drops_by_reason", std::move(d)});
    if (!sp.ice_ufrag.empty()) {  // ICE-lite state (never the password)
      uint64_t c = s->counters.ice_consent_tsc;
      o.push_back({"ice_ufrag", sp.ice_ufrag});
      o.push_back({"ice_remote_ufrag", sp.ice_remote_ufrag.empty() ? "-" : sp.ice_remote_ufrag});
      o.push_back({"ice_checks", s->counters.ice_checks});
      o.push_back({"ice_consent_age_s", c ? double(now - c) / double(hz) : -1.0});
    }
    if (sp.ice_consent_from_peer) o.push_back({"ice_consent_from_peer", true});
    if (sp.dtls) o.push_back({"dtls", true});
  }
  o.push_back({"reported_idle", idle_.count(id) != 0});
  return o;
}

namespace {

uint64_t drops_of(const dp::FlowSnapshot& s) {
  uint64_t d = 0;
  for (unsigned i = 0; i < dp::kFlowDropCount; ++i) d += s.counters.drops[i];
  return d;
}

}  // namespace

// One function filters for veilctl and for scripts: every argument is a condition, all must
// hold. address= and port= match any endpoint of the flow (local, signaled or learned
// remote, egress local, egress destination); port= with a name matches the ingress port.
Response Api::flows(const Request& r) {
  uint32_t limit = 1000;
  std::optional<IpAddr> addr;
  std::optional<uint32_t> udp_port;
  std::string port_name, side, state, sort;
  std::optional<std::set<uint32_t>> of_call;  // streams of the call= filter
  for (const auto& [k, v] : r.args) {
    if (k == "limit") {
      if (!to_u32(v, limit)) return error(EINVAL, "limit must be a number");
    } else if (k == "address") {
      addr = IpAddr::parse(v);
      if (!addr) return error(EINVAL, "address must be an IPv4 or IPv6 address: " + v);
    } else if (k == "port") {
      uint32_t p;
      if (to_u32(v, p) && p <= 65535) udp_port = p;
      else port_name = v;
    } else if (k == "side") {
      if (v != "external" && v != "internal") return error(EINVAL, "side must be external or internal");
      side = v;
    } else if (k == "state") {
      if (v != "latched" && v != "waiting" && v != "strict" && v != "idle")
        return error(EINVAL, "state must be latched, waiting, strict or idle");
      state = v;
    } else if (k == "sort") {
      if (v != "packets" && v != "bytes" && v != "drops" && v != "age" && v != "id")
        return error(EINVAL, "sort must be packets, bytes, drops, age or id");
      sort = v;
    } else if (k == "call") {
      uint32_t cid;
      if (!to_u32(v, cid)) return error(EINVAL, "call must be a call id (veilctl calls)");
      if (!calls_ || !flow_stream_) return error(ENOSYS, "call listing is not available (SIP disabled)");
      for (const auto& c : calls_())
        if (c.id == cid) of_call.emplace(c.streams.begin(), c.streams.end());
      if (!of_call) return error(ENOENT, "no call " + v);
    } else {
      return error(EINVAL, "unknown argument " + k +
                               " (allowed: call address port side state sort limit)");
    }
  }
  const auto& ports = dp_.ports();
  uint64_t now = rte_rdtsc();
  struct Row {
    uint32_t id;
    uint64_t key;
  };
  std::vector<Row> rows;
  for (uint32_t id : dp_.flows().ids()) {
    auto s = dp_.flows().get(id);
    if (!s) continue;
    const auto& sp = s->spec;
    if (addr || udp_port) {
      bool hit = false;
      for (const Endpoint* e : std::initializer_list<const Endpoint*>{&sp.local, &sp.signaled_remote, &s->learned, &sp.egress_local, &s->egress_dst})
        if (e->addr.valid() && (!addr || e->addr == *addr) && (!udp_port || e->port == *udp_port)) hit = true;
      if (!hit) continue;
    }
    if (!port_name.empty() && (sp.ingress_port >= ports.size() || ports[sp.ingress_port].name != port_name))
      continue;
    if (!side.empty() && (sp.ingress_port >= ports.size() || config::role_name(ports[sp.ingress_port].role) != side))
      continue;
    if (!state.empty()) {
      std::string st = sp.latch == dp::LatchMode::Strict ? "strict" : s->learned.valid() ? "latched" : "waiting";
      if (state == "idle" ? idle_.count(id) == 0 : st != state) continue;
    }
    if (of_call) {
      auto stream = flow_stream_(id);
      if (!stream || !of_call->count(*stream)) continue;
    }
    uint64_t key = sort == "packets" ? s->counters.packets
                   : sort == "bytes" ? s->counters.bytes
                   : sort == "drops" ? drops_of(*s)
                   : sort == "age"   ? now - s->created_tsc
                                     : 0;
    rows.push_back({id, key});
  }
  // Descending by the key; ties (and sort=id or none) by ascending id.
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return a.key != b.key ? a.key > b.key : a.id < b.id;
  });
  Array out;
  for (const auto& row : rows) {
    if (out.size() >= limit) break;
    Value v = flow_doc(row.id, false);
    if (v.is_object()) out.push_back(std::move(v));
  }
  Response resp;
  resp.body = std::move(out);
  return resp;
}

Value Api::call_doc(const CallInfo& c, bool detail) {
  Object o{{"id", c.id},
           {"state", c.state},
           {"age_s", c.age_s},
           {"from", c.legs[0].from},
           {"to", c.legs[0].to},
           {"a_leg", c.legs[0].call_id},
           {"b_leg", c.legs[1].call_id},
           {"streams", uint64_t(c.streams.size())}};
  if (!detail) return o;
  Array legs;
  for (const auto& l : c.legs)
    legs.push_back(Object{{"side", l.side}, {"call_id", l.call_id}, {"from", l.from}, {"to", l.to},
                          {"established", l.established}});
  o.push_back({"legs", std::move(legs)});
  Array media;
  std::set<uint32_t> mine(c.streams.begin(), c.streams.end());
  auto ids = dp_.flows().ids();
  std::sort(ids.begin(), ids.end());
  for (uint32_t id : ids) {
    auto st = flow_stream_ ? flow_stream_(id) : std::nullopt;
    if (!st || !mine.count(*st)) continue;
    Value v = flow_doc(id, false);
    if (v.is_object()) media.push_back(std::move(v));
  }
  o.push_back({"flows", std::move(media)});
  return o;
}

Response Api::calls(const Request& r) {
  if (!r.args.empty()) return error(EINVAL, "calls takes no arguments");
  if (!calls_) return error(ENOSYS, "call listing is not available (SIP disabled, or this veild cannot list calls)");
  auto list = calls_();
  std::sort(list.begin(), list.end(), [](const CallInfo& a, const CallInfo& b) { return a.id < b.id; });
  Array rows;
  for (const auto& c : list) rows.push_back(call_doc(c, false));
  Response resp;
  resp.body = std::move(rows);
  return resp;
}

Response Api::call(const Request& r) {
  uint32_t id;
  auto it = r.args.find("id");
  if (it == r.args.end() || !to_u32(it->second, id)) return error(EINVAL, "call needs id=N");
  if (!calls_) return error(ENOSYS, "call listing is not available (SIP disabled, or this veild cannot list calls)");
  for (const auto& c : calls_())
    if (c.id == id) {
      Response resp;
      resp.body = call_doc(c, true);
      return resp;
    }
  return error(ENOENT, "no call " + it->second);
}

Response Api::call_end(const Request& r) {
  uint32_t id;
  auto it = r.args.find("id");
  if (it == r.args.end() || !to_u32(it->second, id)) return error(EINVAL, "call-end needs id=N");
  if (!calls_ || !call_end_) return error(ENOSYS, "ending calls is not available (SIP disabled, or this veild cannot end calls)");
  Value last;
  for (const auto& c : calls_())
    if (c.id == id) last = call_doc(c, true);
  if (!last.is_object() || !call_end_(id, "ended by the operator (veilctl call-end)"))
    return error(ENOENT, "no call " + it->second);
  Response resp;
  resp.body = std::move(last);
  return resp;
}

void Api::record(const std::string& command, double seconds) {
  // Only known commands get their own label: a client cannot grow the map without bound.
  static const std::set<std::string> known{"version", "flows", "flow", "flow-add", "flow-update",
                                           "flow-del", "drops", "stats", "ports", "neighbours",
                                           "calls", "call", "call-end", "dtls", "dtls-add",
                                           "dtls-del"};
  ++req_count_[known.count(command) ? command : "other"];
  size_t b = 0;
  while (b < kLatencyBuckets.size() && seconds > kLatencyBuckets[b]) ++b;
  ++lat_buckets_[b];
  lat_sum_ += seconds;
  ++lat_count_;
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
    } else if (k == "srtp-in" || k == "srtp-out") {  // dataplane/srtp_session.h
      std::string why;
      if (!dp::srtp_keying_parse(v, k == "srtp-in" ? s.srtp_in : s.srtp_out, &why))
        return error(EINVAL, k + ": " + why);
    } else if (k == "ice-ufrag") {
      s.ice_ufrag = v;
    } else if (k == "ice-pwd") {
      s.ice_pwd = v;
    } else if (k == "ice-remote-ufrag") {
      s.ice_remote_ufrag = v;
    } else if (k == "ice-consent-from-peer" || k == "dtls") {
      ok = v == "yes" || v == "no";
      (k == "dtls" ? s.dtls : s.ice_consent_from_peer) = v == "yes";
    } else {
      return error(EINVAL, "unknown argument " + k +
                               " (allowed: id port local remote latch egress-port egress-local "
                               "egress-remote peer rtp-check disabled srtp-in srtp-out ice-ufrag ice-pwd "
                               "ice-remote-ufrag ice-consent-from-peer dtls)");
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
  if (c == "calls") return calls(req);
  if (c == "call") return call(req);
  if (c == "call-end") return call_end(req);
  if (c == "dtls" || c == "dtls-add" || c == "dtls-del")
    return dtls_ ? dtls_(req) : error(ENOSYS, "DTLS-SRTP is not running");
  return error(EOPNOTSUPP, "unknown command " + c +
                               " (commands: version flows flow flow-add flow-update flow-del "
                               "drops stats ports neighbours calls call call-end dtls dtls-add "
                               "dtls-del)");
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
  if (metrics_ && metrics_->owns(fd)) {
    metrics_->on_ready(epfd, fd);
    return;
  }
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
    auto t0 = std::chrono::steady_clock::now();
    bool parsed = parse_request(it->second.substr(0, nl), req, err);
    Response resp = parsed ? api_.handle(req) : error(EINVAL, err);
    api_.record(parsed ? req.command : "other",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
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
