#include "controlplane/media_anchor_dp.h"

#include <unordered_set>

#include "dataplane/dataplane.h"

namespace veil::ctl {

namespace {

Endpoint plus(const Endpoint& e, uint16_t n) {
  if (!e.valid()) return Endpoint{};
  return Endpoint{e.addr, uint16_t(e.port + n)};
}

bool same(const dp::FlowSpec& a, const dp::FlowSpec& b) {
  return a.id == b.id && a.ingress_port == b.ingress_port && a.local == b.local &&
         a.signaled_remote == b.signaled_remote && a.latch == b.latch &&
         a.egress_port == b.egress_port && a.egress_local == b.egress_local &&
         a.egress_remote == b.egress_remote && a.peer_id == b.peer_id &&
         a.rtp_check == b.rtp_check && a.drop == b.drop;
}

}  // namespace

DpMediaAnchor::DpMediaAnchor(dp::Dataplane& dp, const config::Config& cfg, Logger log)
    : dp_(dp),
      cfg_(cfg),
      log_(std::move(log)),
      ports_{PortAllocator(cfg.media_external), PortAllocator(cfg.media_internal)} {
  const auto& ports = dp_.ports();
  for (size_t i = 0; i < ports.size(); ++i)
    port_index_[ports[i].role == config::Role::External ? sip::kExternal : sip::kInternal] =
        uint8_t(i);
}

DpMediaAnchor::~DpMediaAnchor() {
  for (auto& [id, st] : streams_)
    for (uint32_t& f : st.flow) drop_flow(f);
}

std::optional<Endpoint> DpMediaAnchor::allocate(int side, Family fam) {
  if (side != sip::kExternal && side != sip::kInternal) return std::nullopt;
  const auto& sc = side == sip::kExternal ? cfg_.sip.b2bua.external : cfg_.sip.b2bua.internal;
  IpAddr addr;
  if (sc.addr.family == fam) {
    addr = sc.addr;
  } else {
    const IpAddr* a = dp_.ports().at(port_index_[side]).source_for(fam);
    if (!a) return std::nullopt;
    addr = *a;
  }
  auto port = ports_[side].allocate();
  if (!port) {
    logf(std::string("media: no free port in the ") +
         (side == sip::kExternal ? "external" : "internal") + " media range");
    return std::nullopt;
  }
  return Endpoint{addr, *port};
}

void DpMediaAnchor::release(int side, const Endpoint& local) {
  if ((side != sip::kExternal && side != sip::kInternal) || !ports_[side].release(local.port))
    logf("media: release of " + local.str() + " which is not allocated (ignored)");
}

uint32_t DpMediaAnchor::next_flow_id() {
  for (;;) {
    uint32_t id = next_id_++;
    if (next_id_ == 0) next_id_ = 0x40000000;
    if (!dp_.flows().get(id)) return id;
  }
}

void DpMediaAnchor::build(const sip::MediaStreamPlan& plan, bool rtcp, uint32_t ext_id,
                          uint32_t int_id, dp::FlowSpec& from_ext, dp::FlowSpec& from_int) const {
  const uint16_t k = rtcp ? 1 : 0;
  const bool strict = cfg_.dataplane.default_latch == config::LatchMode::Strict;
  auto fill = [&](dp::FlowSpec& s, uint32_t id, uint32_t peer, int in_side, const sip::MediaLeg& in,
                  const sip::MediaLeg& out) {
    s = dp::FlowSpec{};
    s.id = id;
    s.peer_id = peer;
    s.ingress_port = port_index_[in_side];
    s.egress_port = port_index_[1 - in_side];
    s.local = plus(in.sbc_local, k);
    s.signaled_remote = plus(in.remote, k);
    s.egress_local = plus(out.sbc_local, k);
    s.egress_remote = plus(out.remote, k);
    // Strict latching accepts only the signaled remote: until that side's SDP names it,
    // the flow exists (its port is taken) but drops what arrives.
    if (strict && s.signaled_remote.valid()) {
      s.latch = dp::LatchMode::Strict;
    } else {
      s.latch = dp::LatchMode::Latch;
      s.drop = strict;
    }
    s.rtp_check = true;
  };
  fill(from_ext, ext_id, int_id, sip::kExternal, plan.ext, plan.in);
  fill(from_int, int_id, ext_id, sip::kInternal, plan.in, plan.ext);
}

bool DpMediaAnchor::put(uint32_t& slot_ext, uint32_t& slot_int, const sip::MediaStreamPlan& plan,
                        bool rtcp) {
  auto& table = dp_.flows();
  const bool fresh = slot_ext == 0;
  uint32_t a = slot_ext, b = slot_int;
  if (fresh) {
    a = next_flow_id();
    b = next_flow_id();
  }
  dp::FlowSpec specs[2];
  build(plan, rtcp, a, b, specs[0], specs[1]);
  std::string why;
  if (fresh) {
    if (int rc = table.install(specs[0], &why); rc != 0) {
      logf("media: stream " + std::to_string(plan.id) + ": cannot install flow " +
           specs[0].local.str() + ": " + why);
      return false;
    }
    if (int rc = table.install(specs[1], &why); rc != 0) {
      logf("media: stream " + std::to_string(plan.id) + ": cannot install flow " +
           specs[1].local.str() + ": " + why);
      table.remove(a);
      return false;
    }
    slot_ext = a;
    slot_int = b;
  } else {
    for (const auto& s : specs) {
      auto cur = table.get(s.id);
      if (cur && same(cur->spec, s)) continue;
      if (int rc = table.update(s, &why); rc != 0) {
        logf("media: stream " + std::to_string(plan.id) + ": cannot update flow " +
             std::to_string(s.id) + ": " + why);
        return false;
      }
    }
  }
  for (const auto& s : specs)
    if (s.egress_remote.valid()) dp_.prime_next_hop(s.egress_port, s.egress_remote.addr);
  return true;
}

void DpMediaAnchor::drop_flow(uint32_t& id) {
  if (id) {
    dp_.flows().remove(id);
    flow_plan_.erase(id);
  }
  id = 0;
}

void DpMediaAnchor::note(uint32_t plan_id, const Stream& st) {
  for (uint32_t f : st.flow)
    if (f) flow_plan_[f] = plan_id;
}

std::optional<uint32_t> DpMediaAnchor::plan_of(uint32_t flow_id) const {
  auto it = flow_plan_.find(flow_id);
  if (it == flow_plan_.end()) return std::nullopt;
  return it->second;
}

std::vector<uint32_t> DpMediaAnchor::idle_streams(const std::vector<uint32_t>& idle_flows) const {
  std::unordered_set<uint32_t> idle(idle_flows.begin(), idle_flows.end());
  std::unordered_set<uint32_t> plans;
  for (uint32_t f : idle_flows)
    if (auto p = plan_of(f)) plans.insert(*p);
  std::vector<uint32_t> out;
  for (uint32_t p : plans) {
    auto it = streams_.find(p);
    if (it == streams_.end()) continue;
    const Stream& st = it->second;
    if (st.flow[0] && st.flow[1] && idle.count(st.flow[0]) && idle.count(st.flow[1]))
      out.push_back(p);
  }
  return out;
}

bool DpMediaAnchor::program(const sip::MediaStreamPlan& plan) {
  if (!plan.ext.sbc_local.valid() || !plan.in.sbc_local.valid()) {
    logf("media: stream " + std::to_string(plan.id) + " has no SBC endpoint");
    return false;
  }
  auto [it, fresh] = streams_.try_emplace(plan.id);
  Stream& st = it->second;
  bool ok = put(st.flow[0], st.flow[1], plan, false);
  if (ok && !plan.rtcp_mux) {
    ok = put(st.flow[2], st.flow[3], plan, true);
  } else if (ok) {
    // rtcp-mux (now) agreed by both legs: RTCP shares the RTP flows.
    drop_flow(st.flow[2]);
    drop_flow(st.flow[3]);
  }
  if (!ok && fresh) {
    for (uint32_t& f : st.flow) drop_flow(f);
    streams_.erase(it);
    return ok;
  }
  note(plan.id, st);
  return ok;
}

void DpMediaAnchor::remove(uint32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  for (uint32_t& f : it->second.flow) drop_flow(f);
  streams_.erase(it);
}

}  // namespace veil::ctl
