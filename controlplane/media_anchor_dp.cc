#include "controlplane/media_anchor_dp.h"

#include <algorithm>
#include <unordered_set>

#include "controlplane/dtls_srtp.h"
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
         a.rtp_check == b.rtp_check && a.drop == b.drop && a.srtp_in == b.srtp_in &&
         a.srtp_out == b.srtp_out && a.ice_ufrag == b.ice_ufrag && a.ice_pwd == b.ice_pwd &&
         a.ice_remote_ufrag == b.ice_remote_ufrag &&
         a.ice_consent_from_peer == b.ice_consent_from_peer && a.dtls == b.dtls &&
         a.rtcp_split == b.rtcp_split && a.dst_from_peer == b.dst_from_peer &&
         a.bundle_of == b.bundle_of && a.bundle_pts[0] == b.bundle_pts[0] &&
         a.bundle_pts[1] == b.bundle_pts[1];
}

// SRTP of a WebRTC flow before DTLS has exported keys: drop (srtp_no_key), never forward.
dp::SrtpKeying pending_keying() {
  dp::SrtpKeying k;
  k.profile = dp::SrtpProfile::AesCm128HmacSha1_80;
  k.keyed = false;
  return k;
}

dp::SrtpKeying keying(SrtpProfile p, const std::vector<uint8_t>& master) {
  dp::SrtpKeying k;
  k.profile = p == SrtpProfile::AeadAes128Gcm ? dp::SrtpProfile::AeadAes128Gcm
                                              : dp::SrtpProfile::AesCm128HmacSha1_80;
  k.keyed = master.size() == dp::srtp_master_len(k.profile);
  std::copy(master.begin(), master.begin() + std::min<size_t>(master.size(), sizeof k.master), k.master);
  return k;
}

// An SDES leg's key; an empty master: that profile with keys pending (drop, srtp_no_key).
dp::SrtpKeying sdes_keying(sip::SdesSuite suite, const std::vector<uint8_t>& master,
                           const std::vector<uint8_t>& mki = {}) {
  dp::SrtpKeying k;
  switch (suite) {
    case sip::SdesSuite::AesCm128HmacSha1_32: k.profile = dp::SrtpProfile::AesCm128HmacSha1_32; break;
    case sip::SdesSuite::AeadAes128Gcm: k.profile = dp::SrtpProfile::AeadAes128Gcm; break;
    default: k.profile = dp::SrtpProfile::AesCm128HmacSha1_80; break;
  }
  k.keyed = master.size() == dp::srtp_master_len(k.profile);
  if (k.keyed) std::copy(master.begin(), master.end(), k.master);
  if (k.keyed && !mki.empty() && mki.size() <= dp::kSrtpMaxMki) {
    k.mki_len = uint8_t(mki.size());
    std::copy(mki.begin(), mki.end(), k.mki);
  }
  return k;
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
  for (auto& [id, st] : streams_) drop_stream(st);
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

void DpMediaAnchor::build(const sip::MediaStreamPlan& plan, const Stream& st, bool rtcp,
                          uint32_t ext_id, uint32_t int_id, dp::FlowSpec& from_ext,
                          dp::FlowSpec& from_int) const {
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
  // BUNDLE (docs/architecture.md "BUNDLE"): a member m-line (not the group's first) has no
  // browser 5-tuple of its own; its browser -> PBX flow receives what the head's ICE flow
  // demultiplexes to it, and its PBX -> browser flows send out of the head's port to the
  // head's ICE-selected source with the head's keys and consent.
  const Stream* head = bundle_head_of(plan);
  if (plan.webrtc.enabled && head) {
    const Endpoint bundle_local = head->plan.ext.sbc_local;
    from_int.egress_local = bundle_local;
    from_int.egress_remote = Endpoint{};
    from_int.peer_id = head->flow[0];
    from_int.ice_consent_from_peer = true;
    from_int.srtp_out = head->srtp_out.enabled() ? head->srtp_out : pending_keying();
    if (rtcp) {
      from_ext.drop = true;  // the member's own untrusted RTCP port: unused
      from_int.rtcp_split = true;
      return;
    }
    from_int.dst_from_peer = true;
    from_ext.signaled_remote = Endpoint{};
    from_ext.latch = dp::LatchMode::Latch;
    from_ext.drop = false;
    from_ext.bundle_of = head->flow[0];
    from_ext.bundle_pts[0] = plan.webrtc.pts.bits[0];
    from_ext.bundle_pts[1] = plan.webrtc.pts.bits[1];
    from_ext.rtcp_split = !plan.rtcp_mux;  // the browser's RTCP of this m-line to its PBX RTCP port
    return;
  }
  if (plan.webrtc.enabled && rtcp) {
    // A browser muxes; a PBX that does not sends its RTCP to Veil's RTCP port: that flow sends
    // it out of the browser's muxed port (Veil's RTP port there) to the ICE-selected source,
    // SRTCP-protected, only with consent. The untrusted RTCP port is unused (drops).
    from_ext.drop = true;
    from_int.egress_local = plan.ext.sbc_local;
    from_int.egress_remote = Endpoint{};
    from_int.peer_id = st.flow[0];
    from_int.ice_consent_from_peer = true;
    from_int.rtcp_split = true;
    from_int.srtp_out = st.srtp_out.enabled() ? st.srtp_out : pending_keying();
    // An SDES PBX leg: its SRTCP is unprotected with the PBX's key.
    const sip::SdesPlan& sd = plan.sdes[sip::kInternal];
    if (sd.enabled()) from_int.srtp_in = sdes_keying(sd.suite, sd.remote, sd.remote_mki);
    return;
  }
  if (plan.webrtc.enabled) {
    // Browser side: ICE checks select the source (never the SDP's address), DTLS to the
    // control plane, SRTP in; towards the browser: only with consent, SRTP out.
    const auto& w = plan.webrtc;
    from_ext.signaled_remote = Endpoint{};
    from_ext.latch = dp::LatchMode::Latch;
    from_ext.drop = false;
    from_ext.ice_ufrag = w.ice_ufrag;
    from_ext.ice_pwd = w.ice_pwd;
    from_ext.ice_remote_ufrag = w.remote_ufrag;
    from_ext.dtls = true;
    from_ext.srtp_in = st.srtp_in.enabled() ? st.srtp_in : pending_keying();
    from_ext.rtcp_split = !plan.rtcp_mux;  // the browser's RTCP to the PBX's RTCP port
    if (w.bundle_head == plan.id) {
      from_ext.bundle_pts[0] = w.pts.bits[0];  // the head's own m-line
      from_ext.bundle_pts[1] = w.pts.bits[1];
    }
    from_int.egress_remote = Endpoint{};
    from_int.ice_consent_from_peer = true;
    from_int.srtp_out = st.srtp_out.enabled() ? st.srtp_out : pending_keying();
  }
  // SDES-SRTP (RFC 4568) per leg: what arrives from that side is unprotected with the peer's
  // key (pending until its answer: dropped, never relayed), what goes to it is protected
  // with Veil's key for that leg. Both legs keyed: SRTP<->SRTP, re-keyed. A browser's call
  // with an SDES PBX leg: DTLS-SRTP keys on the browser leg (above), SDES on the PBX leg.
  for (int side : {sip::kExternal, sip::kInternal}) {
    const sip::SdesPlan& sd = plan.sdes[side];
    if (!sd.enabled()) continue;
    dp::FlowSpec& from = side == sip::kExternal ? from_ext : from_int;
    dp::FlowSpec& toward = side == sip::kExternal ? from_int : from_ext;
    from.srtp_in = sdes_keying(sd.suite, sd.remote, sd.remote_mki);
    toward.srtp_out = sdes_keying(sd.suite, sd.local);
  }
}

const DpMediaAnchor::Stream* DpMediaAnchor::bundle_head_of(const sip::MediaStreamPlan& plan) const {
  const uint32_t h = plan.webrtc.bundle_head;
  if (!plan.webrtc.enabled || h == 0 || h == plan.id) return nullptr;
  auto it = streams_.find(h);
  return it == streams_.end() || !it->second.flow[0] ? nullptr : &it->second;
}

bool DpMediaAnchor::put(Stream& st, uint32_t& slot_ext, uint32_t& slot_int,
                        const sip::MediaStreamPlan& plan, bool rtcp) {
  auto& table = dp_.flows();
  const bool fresh = slot_ext == 0;
  uint32_t a = slot_ext, b = slot_int;
  if (fresh) {
    a = next_flow_id();
    b = next_flow_id();
  }
  dp::FlowSpec specs[2];
  build(plan, st, rtcp, a, b, specs[0], specs[1]);
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
  const uint32_t bh = plan.webrtc.bundle_head;
  if (plan.webrtc.enabled && bh && bh != plan.id && !bundle_head_of(plan)) {
    logf("media: stream " + std::to_string(plan.id) + " is in the BUNDLE of stream " +
         std::to_string(bh) + ", which is not programmed");
    return false;
  }
  auto [it, fresh] = streams_.try_emplace(plan.id);
  Stream& st = it->second;
  if (plan.webrtc.enabled && !hub_) {
    logf("media: stream " + std::to_string(plan.id) + " is WebRTC but no DTLS hub is attached");
    if (fresh) streams_.erase(it);
    return false;
  }
  bool ok = put(st, st.flow[0], st.flow[1], plan, false);
  if (ok && !plan.rtcp_mux) {
    // RTCP flows. On a WebRTC stream (the browser always muxes) with a PBX that does not,
    // the browser's RTCP goes from the RTP flow to the PBX's RTCP port (rtcp_split), and the
    // PBX's RTCP port flow sends out of the browser's muxed port (build()).
    ok = put(st, st.flow[2], st.flow[3], plan, true);
  } else if (ok) {
    // rtcp-mux (now) agreed by both legs: RTCP shares the RTP flows.
    drop_flow(st.flow[2]);
    drop_flow(st.flow[3]);
  }
  if (!ok && fresh) {
    drop_stream(st);
    streams_.erase(it);
    return ok;
  }
  st.plan = plan;
  // DTLS runs on the bundle's one 5-tuple: the head's session only.
  if (ok && plan.webrtc.enabled && !(bh && bh != plan.id)) dtls_for(st);
  note(plan.id, st);
  return ok;
}

void DpMediaAnchor::dtls_for(Stream& st) {
  const auto& w = st.plan.webrtc;
  if (st.dtls_added || !st.flow[0] || w.remote_fingerprint.empty()) return;
  auto role = role_from_local_setup(w.local_setup);
  if (!role) return;  // Veil offered actpass: the browser's answer decides
  if (!hub_->add(st.flow[0], *role, w.remote_fingerprint, port_index_[sip::kExternal],
                 st.plan.ext.sbc_local)) {
    logf("media: stream " + std::to_string(st.plan.id) + ": DTLS session for flow " +
         std::to_string(st.flow[0]) + " exists already");
    return;
  }
  st.dtls_added = true;
}

void DpMediaAnchor::drop_stream(Stream& st) {
  if (st.dtls_added && hub_) hub_->remove(st.flow[0]);
  st.dtls_added = false;
  for (uint32_t& f : st.flow) drop_flow(f);
}

void DpMediaAnchor::remove(uint32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  drop_stream(it->second);
  streams_.erase(it);
}

void DpMediaAnchor::attach_dtls(DtlsHub& hub, const DtlsIdentity& id) {
  hub_ = &hub;
  dtls_id_ = &id;
}

std::string DpMediaAnchor::dtls_fingerprint() const {
  return dtls_id_ ? dtls_id_->fingerprint() : std::string();
}

std::pair<std::string, std::string> DpMediaAnchor::ice_credentials() {
  IceCredentials c = generate_ice_credentials();
  return {c.ufrag, c.pwd};
}

bool DpMediaAnchor::on_dtls_keys(uint32_t flow_id, const SrtpKeys& keys) {
  auto p = plan_of(flow_id);
  if (!p) return false;
  auto it = streams_.find(*p);
  if (it == streams_.end() || it->second.flow[0] != flow_id || !it->second.plan.webrtc.enabled)
    return false;
  Stream& st = it->second;
  st.srtp_in = keying(keys.profile, keys.remote_master());
  st.srtp_out = keying(keys.profile, keys.local_master());
  if (!st.srtp_in.keyed || !st.srtp_out.keyed) {
    logf("media: stream " + std::to_string(*p) + ": exported keys have the wrong length");
    return false;
  }
  bool ok = put(st, st.flow[0], st.flow[1], st.plan, false);
  if (ok && st.flow[3]) ok = put(st, st.flow[2], st.flow[3], st.plan, true);
  // BUNDLE members send to the browser with the same keys (their own sessions: other SSRCs).
  const uint32_t head_plan = *p;
  for (auto& [id, m] : streams_) {
    if (id == head_plan || m.plan.webrtc.bundle_head != head_plan) continue;
    ok = put(m, m.flow[0], m.flow[1], m.plan, false) && ok;
    if (m.flow[3]) ok = put(m, m.flow[2], m.flow[3], m.plan, true) && ok;
  }
  return ok;
}

}  // namespace veil::ctl
