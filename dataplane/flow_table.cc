#include "dataplane/flow_table.h"

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

#include <algorithm>
#include <new>
#include <tuple>

#include "dataplane/stun.h"

#include <cerrno>

namespace veil::dp {

namespace {
std::atomic<unsigned> g_table_seq{0};

// Flows live in DPDK memory (hugepages in production: no TLB miss per flow on top of the
// cache miss) on the table's NUMA node.
Flow* alloc_flow(int socket) {
  void* mem = rte_zmalloc_socket("veil_flow", sizeof(Flow), RTE_CACHE_LINE_SIZE, socket);
  return mem ? new (mem) Flow() : nullptr;
}
void free_creds(const stun::IceCreds* c) { rte_free(const_cast<stun::IceCreds*>(c)); }
void free_bundle(const BundleMap* b) { rte_free(const_cast<BundleMap*>(b)); }
void free_flow(Flow* f) {
  if (!f) return;
  srtp_session_free(f->srtp_in);
  srtp_session_free(f->srtp_out);
  free_creds(f->ice_creds.load(std::memory_order_relaxed));
  free_bundle(f->bundle.load(std::memory_order_relaxed));
  f->~Flow();
  rte_free(f);
}

// ICE credentials of a spec in DPDK memory (read by workers); nullptr if the spec has none
// or memory ran out (`oom`).
stun::IceCreds* make_creds(const FlowSpec& s, int socket, bool& oom) {
  oom = false;
  if (s.ice_ufrag.empty()) return nullptr;
  void* mem = rte_zmalloc_socket("veil_ice", sizeof(stun::IceCreds), RTE_CACHE_LINE_SIZE, socket);
  if (!mem) {
    oom = true;
    return nullptr;
  }
  auto* c = new (mem) stun::IceCreds();
  stun::ice_creds_init(*c, s.ice_ufrag, s.ice_pwd, s.ice_remote_ufrag);  // validated before
  return c;
}
bool same_ice(const FlowSpec& a, const FlowSpec& b) {
  return a.ice_ufrag == b.ice_ufrag && a.ice_pwd == b.ice_pwd &&
         a.ice_remote_ufrag == b.ice_remote_ufrag;
}

void set_why(std::string* why, std::string text) {
  if (why) *why = std::move(text);
}

bool has_pts(const FlowSpec& s) { return (s.bundle_pts[0] | s.bundle_pts[1]) != 0; }
bool bundle_head(const FlowSpec& s) { return s.bundle_of == 0 && has_pts(s); }

// The SRTP session for one side of a flow (nullptr for plain RTP); false and `why` on failure.
bool make_srtp(const SrtpKeying& k, bool outbound, SrtpSession*& out, std::string* why) {
  out = nullptr;
  if (!k.enabled()) return true;
  std::string err;
  out = srtp_session_create(k, outbound, &err);
  if (!out) set_why(why, std::string(outbound ? "egress" : "ingress") + " SRTP: " + err);
  return out != nullptr;
}
}  // namespace

std::unique_ptr<FlowTable> FlowTable::create(uint32_t capacity, Rcu& rcu, int socket,
                                             std::string& err) {
  std::unique_ptr<FlowTable> t(new FlowTable(rcu));
  std::string name = "veil_flows_" + std::to_string(g_table_seq.fetch_add(1));
  rte_hash_parameters p{};
  p.name = name.c_str();
  p.entries = capacity < 8 ? 8 : capacity;
  p.key_len = sizeof(FlowKey);
  p.hash_func = rte_hash_crc;
  p.hash_func_init_val = 0;
  p.socket_id = socket;
  // One writer (the control plane), lock-free readers; the extendable table guarantees
  // that `capacity` keys fit whatever their hash distribution.
  p.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF | RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
  t->hash_ = rte_hash_create(&p);
  if (!t->hash_) {
    err = "cannot create flow table of " + std::to_string(capacity) + " entries: " +
          rte_strerror(rte_errno) + " (raise [dataplane] memory_mb or lower [limits] max_flows)";
    return nullptr;
  }
  t->capacity_ = capacity;
  t->socket_ = socket;
  return t;
}

FlowTable::~FlowTable() {
  rcu_.drain();
  for (auto& [id, e] : by_id_) free_flow(e.flow);
  for (Flow** t : index_) rte_free(t);
  rte_hash_free(hash_);
}

int FlowTable::validate(const FlowSpec& s, std::string* why) const {
  if (s.id == 0) return set_why(why, "flow id must be non-zero"), -EINVAL;
  if (!s.local.valid()) return set_why(why, "local endpoint missing"), -EINVAL;
  if (!s.egress_local.valid()) return set_why(why, "egress local endpoint missing"), -EINVAL;
  if (s.egress_remote.valid() && s.egress_remote.addr.family != s.egress_local.addr.family)
    return set_why(why, "egress remote and egress local differ in address family"), -EINVAL;
  if (s.latch == LatchMode::Strict && !s.signaled_remote.valid())
    return set_why(why, "strict latching needs the signaled remote endpoint"), -EINVAL;
  if (s.signaled_remote.valid() && s.signaled_remote.addr.family != s.local.addr.family)
    return set_why(why, "signaled remote and local endpoint differ in address family"), -EINVAL;
  if (s.peer_id == s.id) return set_why(why, "a flow cannot be its own peer"), -EINVAL;
  if (s.rtcp_split && s.ice_ufrag.empty() && !(s.ice_consent_from_peer && s.peer_id) && !s.bundle_of)
    return set_why(why, "rtcp-split needs an ICE flow, a bundle member, or consent from a peer"), -EINVAL;
  if (s.dst_from_peer && !(s.ice_consent_from_peer && s.peer_id))
    return set_why(why, "dst-from-peer needs consent from a peer"), -EINVAL;
  if (s.bundle_of) {
    if (s.bundle_of == s.id) return set_why(why, "a flow cannot be a member of its own bundle"), -EINVAL;
    if (!has_pts(s)) return set_why(why, "a bundle member needs its payload types"), -EINVAL;
    if (!s.ice_ufrag.empty() || s.dtls || s.srtp_in.enabled())
      return set_why(why, "a bundle member has no ICE, DTLS or SRTP of its own (its head does that)"), -EINVAL;
  }
  for (const SrtpKeying* k : {&s.srtp_in, &s.srtp_out})
    if (k->enabled() && srtp_master_len(k->profile) == 0)
      return set_why(why, "unknown SRTP profile"), -EINVAL;
  if (!s.ice_ufrag.empty()) {
    stun::IceCreds probe;
    if (!stun::ice_creds_init(probe, s.ice_ufrag, s.ice_pwd, s.ice_remote_ufrag))
      return set_why(why, "ICE credentials need a ufrag of 1-63 characters, a password, and a "
                          "remote ufrag under 64 characters"), -EINVAL;
  } else if (!s.ice_pwd.empty() || !s.ice_remote_ufrag.empty()) {
    return set_why(why, "ICE password or remote ufrag without a local ufrag"), -EINVAL;
  }
  return 0;
}

void FlowTable::fill_action(const FlowSpec& s, FlowAction& a) const {
  a = FlowAction{};
  a.id = s.id;
  a.ingress_port = s.ingress_port;
  a.egress_port = s.egress_port;
  a.latch = s.latch;
  a.rtp_check = s.rtp_check;
  a.drop = s.drop;
  a.ice = !s.ice_ufrag.empty();
  a.dtls = s.dtls;
  a.ice_consent_from_peer = s.ice_consent_from_peer;
  a.srtp_in = s.srtp_in.enabled();
  a.srtp_out = s.srtp_out.enabled();
  a.rtcp_split = s.rtcp_split;
  a.peer_dst = s.dst_from_peer || (s.rtcp_split && s.ice_consent_from_peer);
  a.bundle = bundle_head(s);
  a.signaled_remote = s.signaled_remote;
  a.egress_local = s.egress_local;
  a.rtp_mult = s.clock_rate ? rtp_clock_mult(s.clock_rate, rte_get_tsc_hz()) : 0;
  if (s.peer_id) {
    auto it = by_id_.find(s.peer_id);
    if (it != by_id_.end()) a.peer = it->second.flow;
  }
}

void FlowTable::republish(uint32_t id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  Flow* f = it->second.flow;
  // The inactive slot may still be read by a worker that loaded the index before the last
  // flip: wait out that grace period (microseconds; only when one flow changes twice that
  // fast), then write it and flip.
  if (f->slot_token_valid) rte_rcu_qsbr_check(rcu_.qsbr(), f->slot_token, true);
  uint32_t next = f->active_gen.load(std::memory_order_relaxed) + 1;  // the other slot
  fill_action(it->second.spec, f->slots[next & 1]);
  f->active_gen.store(next, std::memory_order_release);
  f->slot_token = rte_rcu_qsbr_start(rcu_.qsbr());
  f->slot_token_valid = true;
  if (!it->second.spec.bundle_of) index_publish(f);  // a bundle member stays out of the index
}

void FlowTable::index_publish(Flow* f) {
  static_assert(alignof(Flow) > kSlotTags);
  uint32_t g = f->active_gen.load(std::memory_order_relaxed);
  const FlowAction& a = f->slots[g & 1];
  uintptr_t v = reinterpret_cast<uintptr_t>(f) | (g & kSlotHint) | (slow_action(a) ? kSlotSlow : 0) |
                (a.srtp_in | a.srtp_out ? kSlotSrtp : 0);
  index_set(f->key, reinterpret_cast<Flow*>(v));
}

bool FlowTable::set_local_addresses(std::vector<IpAddr> addrs, std::string& err) {
  local_addrs_ = std::move(addrs);
  if (local_addrs_.size() > kIndexAddrs) {
    err = "more local addresses than the flow index holds (" + std::to_string(kIndexAddrs) + ")";
    return false;
  }
  for (uint32_t i = 0; i < local_addrs_.size(); ++i) {
    if (index_[i]) continue;
    index_[i] = static_cast<Flow**>(rte_zmalloc_socket("veil_flow_index", sizeof(Flow*) * 65536, 64, socket_));
    if (!index_[i]) {
      err = "out of memory for the flow index (raise [dataplane] memory_mb)";
      return false;
    }
  }
  return true;
}

void FlowTable::index_set(const FlowKey& key, Flow* f) {
  Flow** t = index_[key.addr_index];
  if (t) __atomic_store_n(&t[key.port], f, __ATOMIC_RELEASE);
}

bool FlowTable::key_for(const Endpoint& local, FlowKey& key) const {
  for (size_t i = 0; i < local_addrs_.size(); ++i) {
    if (local_addrs_[i] == local.addr) {
      key = FlowKey{uint32_t(i), local.port, 0, 0};
      return true;
    }
  }
  return false;
}

int FlowTable::install(const FlowSpec& s, std::string* why) {
  if (int rc = validate(s, why)) return rc;
  if (by_id_.count(s.id)) return set_why(why, "flow id " + std::to_string(s.id) + " exists"), -EEXIST;
  if (by_id_.size() >= capacity_) return set_why(why, "flow table full"), -ENOSPC;
  FlowKey key;
  if (!key_for(s.local, key))
    return set_why(why, s.local.addr.str() + " is not one of the SBC's addresses"), -EINVAL;
  if (rte_hash_lookup(hash_, &key) >= 0)
    return set_why(why, "local endpoint " + s.local.str() + " already has a flow"), -EEXIST;
  // (Every local address has its port index: set_local_addresses allocated them.)

  Flow* f = alloc_flow(socket_);
  if (!f) return set_why(why, "out of memory for flows (raise [dataplane] memory_mb)"), -ENOSPC;
  if (!make_srtp(s.srtp_in, false, f->srtp_in, why) || !make_srtp(s.srtp_out, true, f->srtp_out, why)) {
    free_flow(f);
    return -EINVAL;
  }
  f->key = key;
  f->id = s.id;
  f->created_tsc = rte_rdtsc();
  f->egress_dst.write(s.egress_remote);
  bool oom;
  f->ice_creds.store(make_creds(s, socket_, oom), std::memory_order_relaxed);
  if (oom) {
    free_flow(f);
    return set_why(why, "out of memory for ICE credentials (raise [dataplane] memory_mb)"), -ENOSPC;
  }
  by_id_[s.id] = Entry{s, f};
  fill_action(s, f->slots[0]);
  f->active_gen.store(0, std::memory_order_release);
  int pos = rte_hash_add_key_data(hash_, &key, f);
  if (pos < 0) {
    by_id_.erase(s.id);
    free_flow(f);
    return set_why(why, "flow table full"), -ENOSPC;
  }
  f->hash_pos = rte_hash_lookup(hash_, &key);
  // A bundle member keeps its port reserved (the hash entry) but gets nothing directly: its
  // packets come through its head.
  if (!s.bundle_of) index_publish(f);
  if (s.bundle_of) bundle_members_[s.bundle_of].insert(s.id);
  if (s.bundle_of || bundle_head(s)) rebuild_bundle(s.bundle_of ? s.bundle_of : s.id);
  if (s.peer_id) referrers_[s.peer_id].insert(s.id);
  // Flows installed earlier that name this one as their peer can now point at it.
  if (auto it = referrers_.find(s.id); it != referrers_.end())
    for (uint32_t r : it->second) republish(r);
  return 0;
}

int FlowTable::update(const FlowSpec& s, std::string* why) {
  if (int rc = validate(s, why)) return rc;
  auto it = by_id_.find(s.id);
  if (it == by_id_.end()) return set_why(why, "no flow " + std::to_string(s.id)), -ENOENT;
  Entry& e = it->second;
  if (!(e.spec.local == s.local))
    return set_why(why, "the local endpoint of a flow cannot change; remove and install"), -EINVAL;
  // New keys, new SRTP session (fresh rollover counter and replay window, as RFC 3711 wants
  // for a new master key); unchanged keys keep the running one whatever else changes.
  bool rekey_in = !(e.spec.srtp_in == s.srtp_in), rekey_out = !(e.spec.srtp_out == s.srtp_out);
  SrtpSession *new_in = nullptr, *new_out = nullptr;
  if ((rekey_in && !make_srtp(s.srtp_in, false, new_in, why)) ||
      (rekey_out && !make_srtp(s.srtp_out, true, new_out, why))) {
    srtp_session_free(new_in);
    return -EINVAL;
  }
  const stun::IceCreds* old_creds = nullptr;
  if (!same_ice(e.spec, s)) {
    // New credentials (ICE restart) or ICE turned on/off: published before the action that
    // uses them; the old block outlives every reader by an RCU grace period. Validation
    // starts over: nothing is accepted until a check with the new credentials passes.
    // Except when only the browser's ufrag becomes known (Veil offered, the browser's answer
    // names it): a pair selected meanwhile passed a check signed with Veil's password, and
    // the browser may well have checked before its answer reached Veil.
    const bool restart = !(e.spec.ice_ufrag == s.ice_ufrag && e.spec.ice_pwd == s.ice_pwd &&
                           e.spec.ice_remote_ufrag.empty() && !s.ice_ufrag.empty());
    bool oom;
    stun::IceCreds* c = make_creds(s, socket_, oom);
    if (oom) {
      srtp_session_free(new_in);
      srtp_session_free(new_out);
      return set_why(why, "out of memory for ICE credentials"), -ENOSPC;
    }
    old_creds = e.flow->ice_creds.exchange(c, std::memory_order_acq_rel);
    if (restart) {
      __atomic_store_n(&e.flow->ice_consent_tsc, 0, __ATOMIC_RELAXED);
      // The fast path's copies too: this flow's and those of the flows that send to the
      // browser on its consent.
      __atomic_store_n(&e.flow->consent_hi, 0, __ATOMIC_RELAXED);
      if (auto r = referrers_.find(s.id); r != referrers_.end())
        for (uint32_t id : r->second)
          if (auto it = by_id_.find(id); it != by_id_.end())
            __atomic_store_n(&it->second.flow->consent_hi, 0, __ATOMIC_RELAXED);
      e.flow->learned.write(Endpoint{});
    }
  }
  FlowSpec old = e.spec;
  e.spec = s;
  if (old.peer_id != s.peer_id) {
    if (old.peer_id) referrers_[old.peer_id].erase(s.id);
    if (s.peer_id) referrers_[s.peer_id].insert(s.id);
  }
  if (old.bundle_of != s.bundle_of || old.bundle_pts[0] != s.bundle_pts[0] ||
      old.bundle_pts[1] != s.bundle_pts[1]) {
    if (old.bundle_of != s.bundle_of) {
      if (old.bundle_of) bundle_members_[old.bundle_of].erase(s.id);
      if (s.bundle_of) bundle_members_[s.bundle_of].insert(s.id);
      // In or out of the port index (a member receives nothing directly).
      if (s.bundle_of)
        index_set(e.flow->key, nullptr);
      else
        index_publish(e.flow);
    }
    if (old.bundle_of) rebuild_bundle(old.bundle_of);
    rebuild_bundle(s.bundle_of ? s.bundle_of : s.id);
  }
  // A new signaled remote (re-INVITE: the far end moved) restarts latching. Not on an ICE
  // flow: there the checks select the source (a new credential set restarts them, above).
  if ((!(old.signaled_remote == s.signaled_remote) || old.latch != s.latch) && s.ice_ufrag.empty())
    e.flow->learned.write(Endpoint{});
  if (!(old.egress_remote == s.egress_remote)) e.flow->egress_dst.write(s.egress_remote);
  republish(s.id);
  // A worker may still hold the old session: it is freed after a grace period.
  for (auto [slot, fresh, rekey] : {std::tuple{&e.flow->srtp_in, new_in, rekey_in},
                                    std::tuple{&e.flow->srtp_out, new_out, rekey_out}}) {
    if (!rekey) continue;
    SrtpSession* prev = __atomic_exchange_n(slot, fresh, __ATOMIC_RELEASE);
    if (prev) rcu_.defer([prev] { srtp_session_free(prev); });
  }
  if (old_creds) rcu_.defer([old_creds] { free_creds(old_creds); });
  return 0;
}

int FlowTable::remove(uint32_t id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return -ENOENT;
  Flow* f = it->second.flow;
  uint32_t peer_id = it->second.spec.peer_id;
  uint32_t bundle_of = it->second.spec.bundle_of;
  by_id_.erase(it);
  if (bundle_of) {
    // The head drops its pointer to this member (new map) before the member can be freed.
    auto b = bundle_members_.find(bundle_of);
    if (b != bundle_members_.end()) {
      b->second.erase(id);
      if (b->second.empty()) bundle_members_.erase(b);
    }
    rebuild_bundle(bundle_of);
  }
  if (peer_id) {
    auto r = referrers_.find(peer_id);
    if (r != referrers_.end()) {
      r->second.erase(id);
      if (r->second.empty()) referrers_.erase(r);
    }
  }
  // Flows pointing at this one lose the pointer before it can be freed.
  if (auto r = referrers_.find(id); r != referrers_.end())
    for (uint32_t ref : r->second) republish(ref);
  int32_t pos = rte_hash_del_key(hash_, &f->key);
  index_set(f->key, nullptr);
  rte_hash* h = hash_;
  rcu_.defer([h, pos, f] {
    // RW_CONCURRENCY_LF implies NO_FREE_ON_DEL: the slot is ours to free after the grace.
    if (pos >= 0) rte_hash_free_key_with_position(h, pos);
    free_flow(f);
  });
  return 0;
}

void FlowTable::rebuild_bundle(uint32_t head_id) {
  auto it = by_id_.find(head_id);
  if (it == by_id_.end()) return;
  Flow* h = it->second.flow;
  const FlowSpec& hs = it->second.spec;
  BundleMap* nb = nullptr;
  if (bundle_head(hs)) {
    void* mem = rte_zmalloc_socket("veil_bundle", sizeof(BundleMap), RTE_CACHE_LINE_SIZE, socket_);
    if (mem) {
      nb = new (mem) BundleMap();
      nb->n = 1;
      nb->member_id[0] = head_id;
      nb->pts[0][0] = hs.bundle_pts[0];
      nb->pts[0][1] = hs.bundle_pts[1];
      if (auto m = bundle_members_.find(head_id); m != bundle_members_.end()) {
        std::vector<uint32_t> ids(m->second.begin(), m->second.end());
        std::sort(ids.begin(), ids.end());
        for (uint32_t id : ids) {
          auto mi = by_id_.find(id);
          if (mi == by_id_.end() || nb->n >= kBundleMax) continue;
          nb->member[nb->n] = mi->second.flow;
          nb->member_id[nb->n] = id;
          nb->pts[nb->n][0] = mi->second.spec.bundle_pts[0];
          nb->pts[nb->n][1] = mi->second.spec.bundle_pts[1];
          ++nb->n;
        }
      }
    }
  }
  const BundleMap* old = h->bundle.exchange(nb, std::memory_order_acq_rel);
  // Learned SSRCs name entries of the old map: learn again from the next RTP.
  for (uint64_t& v : h->bundle_ssrc) __atomic_store_n(&v, 0, __ATOMIC_RELAXED);
  if (old) rcu_.defer([old] { free_bundle(old); });
}

std::vector<uint32_t> FlowTable::bundle_members(uint32_t head_id) const {
  std::vector<uint32_t> v;
  if (auto m = bundle_members_.find(head_id); m != bundle_members_.end())
    v.assign(m->second.begin(), m->second.end());
  std::sort(v.begin(), v.end());
  return v;
}

std::optional<FlowSnapshot> FlowTable::get(uint32_t id) const {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  const Flow* f = it->second.flow;
  FlowSnapshot s;
  s.spec = it->second.spec;
  s.learned = f->learned.get();
  s.egress_dst = f->egress_dst.get();
  s.counters.packets = peek(f->packets);
  s.counters.bytes = peek(f->bytes);
  s.counters.last_seen_tsc = peek(f->last_seen_tsc);
  for (unsigned i = 0; i < kFlowDropCount; ++i) s.counters.drops[i] = peek(f->drops[i]);
  s.counters.last_ssrc = f->last_ssrc();
  s.counters.last_seq = f->last_seq();
  s.counters.last_pt = f->last_pt();
  s.counters.last_ts = f->last_ts();
  s.counters.ice_checks = peek(f->ice_checks);
  s.counters.ice_consent_tsc = peek(f->ice_consent_tsc);
  s.counters.rtp.ext_max = __atomic_load_n(&f->rtp.ext_max, __ATOMIC_RELAXED);
  s.counters.rtp.base = __atomic_load_n(&f->rtp.base, __ATOMIC_RELAXED);
  s.counters.rtp.received = __atomic_load_n(&f->rtp.received, __ATOMIC_RELAXED);
  s.counters.rtp.transit = __atomic_load_n(&f->rtp.transit, __ATOMIC_RELAXED);
  s.counters.rtp.jitter = __atomic_load_n(&f->rtp.jitter, __ATOMIC_RELAXED);
  s.created_tsc = f->created_tsc;
  return s;
}

std::vector<uint32_t> FlowTable::ids() const {
  std::vector<uint32_t> v;
  v.reserve(by_id_.size());
  for (const auto& [id, e] : by_id_) v.push_back(id);
  return v;
}

std::vector<uint32_t> FlowTable::idle(uint64_t now, uint64_t idle_cycles) const {
  std::vector<uint32_t> v;
  for (const auto& [id, e] : by_id_) {
    uint64_t last = peek(e.flow->last_seen_tsc);
    if (last == 0) last = e.flow->created_tsc;
    if (now > last && now - last >= idle_cycles) v.push_back(id);
  }
  return v;
}

void FlowTable::lookup_bulk(const FlowKey** keys, unsigned n, Flow** out) const {
  void* data[RTE_HASH_LOOKUP_BULK_MAX];
  uint64_t hits = 0;
  rte_hash_lookup_bulk_data(hash_, reinterpret_cast<const void**>(keys), n, &hits, data);
  for (unsigned i = 0; i < n; ++i) out[i] = (hits >> i) & 1 ? static_cast<Flow*>(data[i]) : nullptr;
}

Flow* FlowTable::lookup(const FlowKey& key) const {
  void* data = nullptr;
  return rte_hash_lookup_data(hash_, &key, &data) >= 0 ? static_cast<Flow*>(data) : nullptr;
}

}  // namespace veil::dp
