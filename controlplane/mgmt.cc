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
#include <cmath>
#include <cstring>
#include <ctime>
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

RtpQuality rtp_quality(uint32_t spec_clock_rate, uint8_t last_pt, const dp::RtpStats& r) {
  RtpQuality q;
  if (r.received == 0) return q;
  q.has_rtp = true;
  q.clock_rate = spec_clock_rate ? spec_clock_rate : dp::static_clock_rate(last_pt);
  dp::RtpReport rep = dp::rtp_report(r);
  q.received = r.received;
  q.expected = rep.expected;
  q.lost = rep.lost;
  q.loss_ratio = rep.lost > 0 && rep.expected ? double(rep.lost) / double(rep.expected) : 0.0;
  if (q.clock_rate) {
    q.jitter_ts = rep.jitter_ts;
    q.jitter_s = rep.jitter_ts / double(q.clock_rate);
  }
  return q;
}

RtpQuality rtp_quality(const dp::FlowSnapshot& s) {
  return rtp_quality(s.spec.clock_rate, s.counters.last_pt, s.counters.rtp);
}

namespace {
// A 128-bit payload type set as "0,8,96-100".
std::string pt_list(const uint64_t (&bits)[2]) {
  auto has = [&](unsigned pt) { return (bits[pt >> 6] >> (pt & 63)) & 1; };
  std::string out;
  for (unsigned pt = 0; pt < 128; ++pt) {
    if (!has(pt)) continue;
    unsigned end = pt;
    while (end + 1 < 128 && has(end + 1)) ++end;
    out += (out.empty() ? "" : ",") + std::to_string(pt);
    if (end > pt) out += "-" + std::to_string(end);
    pt = end;
  }
  return out.empty() ? "-" : out;
}
// "0,8,96-100" -> a 128-bit payload type set; false on anything else.
bool parse_pt_list(const std::string& v, uint64_t (&bits)[2]) {
  bits[0] = bits[1] = 0;
  size_t pos = 0;
  while (pos <= v.size()) {
    size_t end = v.find(',', pos);
    if (end == std::string::npos) end = v.size();
    std::string item = v.substr(pos, end - pos);
    size_t dash = item.find('-');
    uint32_t lo = 0, hi = 0;
    if (!to_u32(item.substr(0, dash), lo)) return false;
    hi = lo;
    if (dash != std::string::npos && !to_u32(item.substr(dash + 1), hi)) return false;
    if (lo > hi || hi > 127) return false;
    for (uint32_t pt = lo; pt <= hi; ++pt) bits[pt >> 6] |= uint64_t(1) << (pt & 63);
    pos = end + 1;
  }
  return true;
}
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
  // BUNDLE (docs/architecture.md "BUNDLE"): which flow demultiplexes for which.
  if (sp.bundle_of) {
    o.push_back({"bundle", "member of flow " + std::to_string(sp.bundle_of) + ", PTs " + pt_list(sp.bundle_pts)});
  } else if (sp.bundle_pts[0] | sp.bundle_pts[1]) {
    std::string m;
    for (uint32_t mid : dp_.flows().bundle_members(id)) m += (m.empty() ? "" : ",") + std::to_string(mid);
    o.push_back({"bundle", "head, PTs " + pt_list(sp.bundle_pts) + ", members " + (m.empty() ? "-" : m)});
  }
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
    o.push_back({"last_ts", uint64_t(s->counters.last_ts)});
    // RFC 3550 reception statistics of the current SSRC (reset when the SSRC changes).
    RtpQuality q = rtp_quality(*s);
    o.push_back({"clock_rate", q.clock_rate ? Value(uint64_t(q.clock_rate)) : Value("-")});
    o.push_back({"rtp_received", q.received});
    o.push_back({"rtp_expected", q.expected});
    o.push_back({"rtp_lost", q.lost});
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.2f", q.loss_ratio * 100);
    o.push_back({"loss_pct", std::strtod(pct, nullptr)});
    if (q.jitter_ts >= 0) {
      o.push_back({"jitter_ts", std::round(q.jitter_ts * 100) / 100});
      o.push_back({"jitter_ms", std::round(q.jitter_s * 1e5) / 100});
    } else {
      o.push_back({"jitter_ts", "-"});
      o.push_back({"jitter_ms", "-"});
    }
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
    if (sp.rtcp_split) o.push_back({"rtcp_split", true});
    if (sp.dst_from_peer) o.push_back({"dst_from_peer", true});
    if (sp.dtls) o.push_back({"dtls", true});
  }
  o.push_back({"reported_idle", idle_.count(id) != 0});
  return o;
}

// One function filters for veilctl and for scripts: every argument is a condition, all must
// hold. address= and port= match any endpoint of the flow (local, signaled or learned
// remote, egress local, egress destination); port= with a name matches the ingress port.
//
// Cost (docs/operations.md): without sort= the flows are visited in id order from after=
// and the walk stops at the `limit`-th match, so `flows limit=10` costs ten flows whatever
// the table holds (a filter that matches few flows walks further). A sort by a counter must
// see every flow: it reads only the fields it sorts by, keeps the best `limit` in a bounded
// heap, and builds rows for those alone.
Response Api::flows(const Request& r) {
  uint32_t limit = 1000, after = 0;
  bool has_after = false;
  std::optional<IpAddr> addr;
  std::optional<uint32_t> udp_port;
  std::string port_name, side, state, sort;
  std::optional<std::set<uint32_t>> of_call;  // streams of the call= filter
  for (const auto& [k, v] : r.args) {
    if (k == "limit") {
      if (!to_u32(v, limit)) return error(EINVAL, "limit must be a number");
    } else if (k == "after") {
      if (!to_u32(v, after)) return error(EINVAL, "after must be a flow id (the last one listed)");
      has_after = true;
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
      if (v != "packets" && v != "bytes" && v != "drops" && v != "age" && v != "id" && v != "lost" &&
          v != "jitter")
        return error(EINVAL, "sort must be packets, bytes, drops, age, lost, jitter or id");
      sort = v == "id" ? "" : v;
    } else if (k == "call") {
      uint32_t cid;
      if (!to_u32(v, cid)) return error(EINVAL, "call must be a call id (veilctl calls)");
      if (!calls_ || !flow_stream_) return error(ENOSYS, "call listing is not available (SIP disabled)");
      for (const auto& c : calls_())
        if (c.id == cid) of_call.emplace(c.streams.begin(), c.streams.end());
      if (!of_call) return error(ENOENT, "no call " + v);
    } else {
      return error(EINVAL, "unknown argument " + k +
                               " (allowed: call address port side state sort limit after)");
    }
  }
  if (has_after && !sort.empty())
    return error(EINVAL, "after= pages through flows in id order; it does not combine with sort=" + sort);
  const auto& ports = dp_.ports();
  uint64_t now = rte_rdtsc();
  const bool by_endpoint = addr || udp_port;
  auto matches = [&](const dp::FlowTable::Ref& f) {
    const auto& sp = f.spec;
    if (!port_name.empty() && (sp.ingress_port >= ports.size() || ports[sp.ingress_port].name != port_name))
      return false;
    if (!side.empty() && (sp.ingress_port >= ports.size() || config::role_name(ports[sp.ingress_port].role) != side))
      return false;
    if (by_endpoint || (!state.empty() && state != "idle")) {
      Endpoint learned = f.flow.learned.get();
      if (by_endpoint) {
        Endpoint dst = f.flow.egress_dst.get();
        bool hit = false;
        for (const Endpoint* e : std::initializer_list<const Endpoint*>{&sp.local, &sp.signaled_remote, &learned, &sp.egress_local, &dst})
          if (e->addr.valid() && (!addr || e->addr == *addr) && (!udp_port || e->port == *udp_port)) hit = true;
        if (!hit) return false;
      }
      if (!state.empty() && state != "idle") {
        const char* st = sp.latch == dp::LatchMode::Strict ? "strict" : learned.valid() ? "latched" : "waiting";
        if (state != st) return false;
      }
    }
    if (state == "idle" && idle_.count(f.id) == 0) return false;
    if (of_call) {
      auto stream = flow_stream_(f.id);
      if (!stream || !of_call->count(*stream)) return false;
    }
    return true;
  };
  std::vector<uint32_t> chosen;
  if (sort.empty()) {
    // Ascending id from the cursor; stops at the limit-th match.
    if (limit > 0)
      dp_.flows().walk(after, [&](const dp::FlowTable::Ref& f) {
        if (matches(f)) chosen.push_back(f.id);
        return chosen.size() < limit;
      });
  } else if (limit > 0) {
    // The sort key from the fields it needs, read in place (no snapshot, no row).
    auto key_of = [&](const dp::FlowTable::Ref& f) -> uint64_t {
      const dp::Flow& fl = f.flow;
      if (sort == "packets") return dp::peek(fl.packets);
      if (sort == "bytes") return dp::peek(fl.bytes);
      if (sort == "drops") {
        uint64_t d = 0;
        for (unsigned i = 0; i < dp::kFlowDropCount; ++i) d += dp::peek(fl.drops[i]);
        return d;
      }
      if (sort == "age") return now - fl.created_tsc;
      dp::RtpStats st;
      st.ext_max = __atomic_load_n(&fl.rtp.ext_max, __ATOMIC_RELAXED);
      st.base = __atomic_load_n(&fl.rtp.base, __ATOMIC_RELAXED);
      st.received = __atomic_load_n(&fl.rtp.received, __ATOMIC_RELAXED);
      st.jitter = __atomic_load_n(&fl.rtp.jitter, __ATOMIC_RELAXED);
      RtpQuality q = rtp_quality(f.spec.clock_rate, fl.last_pt(), st);
      if (sort == "lost") return uint64_t(std::max<int64_t>(0, q.lost));
      return uint64_t(std::max(0.0, q.jitter_s) * 1e9);  // jitter
    };
    struct Row {
      uint32_t id;
      uint64_t key;
    };
    // Descending by the key, ties by ascending id; the heap's top is the worst row kept.
    auto better = [](const Row& a, const Row& b) { return a.key != b.key ? a.key > b.key : a.id < b.id; };
    std::vector<Row> heap;
    dp_.flows().walk(0, [&](const dp::FlowTable::Ref& f) {
      if (!matches(f)) return true;
      Row row{f.id, key_of(f)};
      if (heap.size() < limit) {
        heap.push_back(row);
        std::push_heap(heap.begin(), heap.end(), better);
      } else if (better(row, heap.front())) {
        std::pop_heap(heap.begin(), heap.end(), better);
        heap.back() = row;
        std::push_heap(heap.begin(), heap.end(), better);
      }
      return true;
    });
    std::sort_heap(heap.begin(), heap.end(), better);
    for (const auto& row : heap) chosen.push_back(row.id);
  }
  Array out;
  for (uint32_t id : chosen) {
    Value v = flow_doc(id, false);
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
  for (uint32_t id : dp_.flows().ids()) {  // ascending
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

// Registered clients of the B2BUA: what the client registered (AOR, its Contact, where from)
// and what the PBX knows (Veil's Contact); aor= filters.
Response Api::registrations(const Request& r) {
  std::string aor;
  for (const auto& [k, v] : r.args) {
    if (k != "aor") return error(EINVAL, "registrations takes only aor=USER");
    aor = v;
  }
  if (!registrations_)
    return error(ENOSYS, "registrations are not available (SIP disabled, or this veild cannot list them)");
  Array rows;
  for (const auto& g : registrations_()) {
    if (!aor.empty() && g.aor != aor) continue;
    rows.push_back(Object{{"aor", g.aor},
                          {"state", g.state},
                          {"source", g.source},
                          {"transport", g.transport},
                          {"client_contact", g.client_contact},
                          {"contact", g.contact},
                          {"expires_s", uint64_t(g.expires_s)},
                          {"last_refresh_s", std::round(g.last_refresh_s * 10) / 10}});
  }
  if (!aor.empty() && rows.empty()) return error(ENOENT, "no registration for " + aor);
  Response resp;
  resp.body = std::move(rows);
  return resp;
}

void Api::record(const std::string& command, double seconds) {
  // Only known commands get their own label: a client cannot grow the map without bound.
  static const std::set<std::string> known{"version", "flows", "flow", "flow-add", "flow-update",
                                           "flow-del", "drops", "stats", "ports", "neighbours",
                                           "calls", "call", "call-end", "dtls", "dtls-add",
                                           "dtls-del", "registrations", "capture-start", "capture-read",
                                           "capture-stop"};
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
    } else if (k == "clock-rate") {
      ok = to_u32(v, s.clock_rate) && s.clock_rate <= 1000000;
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
    } else if (k == "ice-consent-from-peer" || k == "dtls" || k == "dst-from-peer") {
      ok = v == "yes" || v == "no";
      (k == "dtls" ? s.dtls : k == "dst-from-peer" ? s.dst_from_peer : s.ice_consent_from_peer) = v == "yes";
    } else if (k == "bundle-of") {
      ok = to_u32(v, s.bundle_of);
    } else if (k == "bundle-pts") {
      ok = parse_pt_list(v, s.bundle_pts);
    } else {
      return error(EINVAL, "unknown argument " + k +
                               " (allowed: id port local remote latch egress-port egress-local "
                               "egress-remote peer rtp-check disabled clock-rate srtp-in srtp-out ice-ufrag "
                               "ice-pwd ice-remote-ufrag ice-consent-from-peer dtls dst-from-peer bundle-of "
                               "bundle-pts)");
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

// --- capture (dataplane/capture.h) ---------------------------------------------------------

void Api::capture_disarm() {
  auto& c = dp_.capture();
  c.on.store(false, std::memory_order_release);
  c.left.store(0, std::memory_order_relaxed);
  dp::CapRecord r;
  while (rte_ring_sc_dequeue_elem(c.ring, &r, sizeof r) == 0) rte_pktmbuf_free(r.m);
}

Response Api::capture_start(const Request& r) {
  auto now = std::chrono::steady_clock::now();
  if (cap_.active && now - cap_.touched < kCaptureIdle && r.args.count("force") == 0)
    return error(EBUSY, "a capture (" + cap_.target + ") is already running; capture-stop ends it");
  uint32_t flow = 0, count = 100, snaplen = 65535;
  int port = -1;
  uint8_t dir = dp::kCapIn;
  const auto& ports = dp_.ports();
  for (const auto& [k, v] : r.args) {
    if (k == "flow") {
      if (!to_u32(v, flow) || flow == 0) return error(EINVAL, "flow must be a flow id");
    } else if (k == "port") {
      for (size_t i = 0; i < ports.size(); ++i)
        if (ports[i].name == v || v == config::role_name(ports[i].role)) port = int(i);
      if (port < 0) return error(ENOENT, "no port " + v + " (veilctl ports)");
    } else if (k == "count") {
      if (!to_u32(v, count) || count == 0 || count > 1000000) return error(EINVAL, "count must be 1-1000000");
    } else if (k == "snaplen") {
      if (!to_u32(v, snaplen) || snaplen < 14 || snaplen > 65535) return error(EINVAL, "snaplen must be 14-65535");
    } else if (k == "dir") {
      if (v == "in") dir = dp::kCapIn;
      else if (v == "out") dir = dp::kCapOut;
      else if (v == "both") dir = dp::kCapIn | dp::kCapOut;
      else return error(EINVAL, "dir must be in, out or both");
    } else if (k != "force") {
      return error(EINVAL, "unknown argument " + k + " (allowed: flow port count dir snaplen force)");
    }
  }
  if ((flow != 0) == (port >= 0)) return error(EINVAL, "capture-start needs flow=ID or port=NAME (one of them)");
  if (flow && !dp_.flows().get(flow)) return error(ENOENT, "no flow " + std::to_string(flow));
  capture_disarm();
  auto& c = dp_.capture();
  c.flow_id = flow;
  c.port = uint8_t(port < 0 ? 0 : port);
  c.dir = dir;
  c.snaplen = uint16_t(snaplen);
  c.captured.store(0, std::memory_order_relaxed);
  c.dropped.store(0, std::memory_order_relaxed);
  c.left.store(int64_t(count), std::memory_order_relaxed);
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  cap_.base_tsc = rte_rdtsc();
  cap_.base_ns = int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  cap_.active = true;
  cap_.count = count;
  cap_.delivered = 0;
  cap_.touched = now;
  cap_.target = flow ? "flow " + std::to_string(flow) : "port " + ports[size_t(port)].name;
  c.on.store(true, std::memory_order_release);
  Response resp;
  resp.body = Object{{"target", cap_.target}, {"count", uint64_t(count)}, {"snaplen", snaplen},
                     {"dir", dir == dp::kCapIn ? "in" : dir == dp::kCapOut ? "out" : "both"}};
  return resp;
}

Response Api::capture_read(const Request& r) {
  uint32_t max = 256;
  for (const auto& [k, v] : r.args) {
    if (k != "max" || !to_u32(v, max) || max == 0) return error(EINVAL, "capture-read takes only max=N");
  }
  if (!cap_.active) return error(ENOENT, "no capture running (capture-start)");
  cap_.touched = std::chrono::steady_clock::now();
  auto& c = dp_.capture();
  const auto& ports = dp_.ports();
  const double ns_per_tick = 1e9 / double(dp_.tsc_hz());
  Array pkts;
  std::string hex;
  static const char* digits = "0123456789abcdef";
  uint8_t buf[65536];
  dp::CapRecord rec;
  // At most `max` packets and about 256 KiB of hex per answer: the control thread writes the
  // answer while the client reads it, so keep it to what a socket buffer takes in a few steps.
  size_t bytes = 0;
  while (pkts.size() < max && bytes < 256 * 1024 && rte_ring_sc_dequeue_elem(c.ring, &rec, sizeof rec) == 0) {
    uint32_t len = rec.m->pkt_len;
    const uint8_t* d = static_cast<const uint8_t*>(rte_pktmbuf_read(rec.m, 0, len, buf));
    hex.assign(size_t(len) * 2, '0');
    for (uint32_t i = 0; d && i < len; ++i) {
      hex[2 * i] = digits[d[i] >> 4];
      hex[2 * i + 1] = digits[d[i] & 15];
    }
    int64_t ts = cap_.base_ns + int64_t(double(int64_t(rec.tsc - cap_.base_tsc)) * ns_per_tick);
    pkts.push_back(Object{{"ts_ns", ts},
                          {"port", rec.port < ports.size() ? ports[rec.port].name : "?"},
                          {"dir", rec.dir == dp::kCapIn ? "in" : "out"},
                          {"wire_len", uint64_t(rec.wire_len)},
                          {"data", hex}});
    bytes += hex.size();
    rte_pktmbuf_free(rec.m);
    ++cap_.delivered;
  }
  uint64_t captured = c.captured.load(std::memory_order_relaxed);
  uint64_t dropped = c.dropped.load(std::memory_order_relaxed);
  // Done when the workers have taken `count` packets (captured or dropped) and all were handed out.
  bool done = captured + dropped >= cap_.count && cap_.delivered >= captured;
  Response resp;
  resp.body = Object{{"target", cap_.target}, {"state", done ? "done" : "running"},
                     {"captured", captured}, {"dropped", dropped}, {"delivered", cap_.delivered},
                     {"packets", std::move(pkts)}};
  return resp;
}

Response Api::capture_stop() {
  if (!cap_.active) return error(ENOENT, "no capture running");
  capture_disarm();
  auto& c = dp_.capture();
  cap_.active = false;
  Response resp;
  resp.body = Object{{"target", cap_.target},
                     {"captured", c.captured.load(std::memory_order_relaxed)},
                     {"dropped", c.dropped.load(std::memory_order_relaxed)},
                     {"delivered", cap_.delivered}};
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

void Api::sample_ports(uint64_t now_tsc) {
  const auto& ports = dp_.ports();
  port_samples_.resize(ports.size());
  for (size_t i = 0; i < ports.size(); ++i) {
    rte_eth_stats st{};
    if (rte_eth_stats_get(ports[i].nic, &st) != 0) continue;
    auto& s = port_samples_[i];
    s[0] = s[1];
    s[1] = PortSample{now_tsc, st.ipackets, st.opackets, st.ibytes, st.obytes, st.imissed};
  }
}

// Every port with its counters, the rates over the last second (sample_ports) and DPDK's
// extended statistics (the driver's own counters: non-zero ones, or all with xstats=all).
Response Api::ports(const Request& r) {
  std::string xmode = "nonzero";
  for (const auto& [k, v] : r.args) {
    if (k != "xstats" || (v != "nonzero" && v != "all" && v != "none"))
      return error(EINVAL, "ports takes only xstats=nonzero|all|none");
    xmode = v;
  }
  Array rows, xrows;
  const auto& ports = dp_.ports();
  for (size_t pi = 0; pi < ports.size(); ++pi) {
    const auto& p = ports[pi];
    rte_eth_stats st{};
    rte_eth_stats_get(p.nic, &st);
    rte_eth_link link{};
    rte_eth_link_get_nowait(p.nic, &link);
    std::string addrs;
    for (unsigned i = 0; i < p.n_addrs; ++i) addrs += (i ? "," : "") + p.prefixes[i].str();
    Object row{{"name", p.name},
               {"role", config::role_name(p.role)},
               {"dpdk_port", uint32_t(p.nic)},
               {"mac", mac_str(p.mac)},
               {"link", link.link_status ? "up" : "down"},
               {"speed_mbps", link.link_status && link.link_speed != RTE_ETH_SPEED_NUM_UNKNOWN
                                  ? Value(uint64_t(link.link_speed)) : Value("-")},
               {"addresses", addrs},
               {"exception_iface", p.has_exc ? p.exc_iface : "-"},
               {"rx_packets", uint64_t(st.ipackets)},
               {"tx_packets", uint64_t(st.opackets)},
               {"rx_missed", uint64_t(st.imissed)},
               {"rx_errors", uint64_t(st.ierrors)},
               {"tx_errors", uint64_t(st.oerrors)}};
    // Rates between the last two one-second samples.
    double rx_pps = 0, tx_pps = 0, rx_mbps = 0, tx_mbps = 0;
    if (pi < port_samples_.size() && port_samples_[pi][0].tsc) {
      const auto& a = port_samples_[pi][0];
      const auto& b = port_samples_[pi][1];
      double dt = double(b.tsc - a.tsc) / double(dp_.tsc_hz());
      if (dt > 0) {
        rx_pps = double(b.rx_packets - a.rx_packets) / dt;
        tx_pps = double(b.tx_packets - a.tx_packets) / dt;
        rx_mbps = double(b.rx_bytes - a.rx_bytes) * 8 / dt / 1e6;
        tx_mbps = double(b.tx_bytes - a.tx_bytes) * 8 / dt / 1e6;
      }
    }
    row.push_back({"rx_pps", uint64_t(std::llround(rx_pps))});
    row.push_back({"tx_pps", uint64_t(std::llround(tx_pps))});
    row.push_back({"rx_mbps", std::round(rx_mbps * 1000) / 1000});
    row.push_back({"tx_mbps", std::round(tx_mbps * 1000) / 1000});
    if (xmode != "none") {
      Object xs;
      int n = rte_eth_xstats_get_names(p.nic, nullptr, 0);
      if (n > 0) {
        std::vector<rte_eth_xstat_name> names(static_cast<size_t>(n));
        std::vector<rte_eth_xstat> vals(static_cast<size_t>(n));
        int got = rte_eth_xstats_get_names(p.nic, names.data(), unsigned(n));
        int gotv = rte_eth_xstats_get(p.nic, vals.data(), unsigned(n));
        for (int i = 0; i < std::min(got, gotv); ++i) {
          if (vals[size_t(i)].id >= unsigned(got)) continue;
          uint64_t v = vals[size_t(i)].value;
          if (xmode == "nonzero" && v == 0) continue;
          std::string name = names[vals[size_t(i)].id].name;
          xs.push_back({name, v});
          xrows.push_back(Object{{"port", p.name}, {"xstat", name}, {"value", v}});
        }
      }
      row.push_back({"xstats", std::move(xs)});
    }
    rows.push_back(std::move(row));
  }
  Response resp;
  if (r.json || xmode == "none") {
    resp.body = std::move(rows);  // JSON: an array of ports, each with its xstats object
  } else {
    // Text: the port table, then one xstat per line (a table cannot hold a nested object).
    resp.body = Object{{"ports", std::move(rows)}, {"xstats", std::move(xrows)}};
  }
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
  if (c == "ports") return ports(req);
  if (c == "neighbours") return neighbours();
  if (c == "calls") return calls(req);
  if (c == "call") return call(req);
  if (c == "call-end") return call_end(req);
  if (c == "dtls" || c == "dtls-add" || c == "dtls-del")
    return dtls_ ? dtls_(req) : error(ENOSYS, "DTLS-SRTP is not running");
  if (c == "registrations") return registrations(req);
  if (c == "capture-start") return capture_start(req);
  if (c == "capture-read") return capture_read(req);
  if (c == "capture-stop") return capture_stop();
  return error(EOPNOTSUPP, "unknown command " + c +
                               " (commands: version flows flow flow-add flow-update flow-del "
                               "drops stats ports neighbours calls call call-end registrations capture-start "
                               "capture-read capture-stop dtls dtls-add dtls-del)");
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
