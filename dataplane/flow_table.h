// The media flow table: rte_hash in lock-free-reader mode, keyed by FlowKey, data a Flow*.
// The control plane is its only writer (install/update/remove); workers only look up.
// Nothing a worker may still be reading is freed before an RCU grace period.
#pragma once

#include <rte_hash.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "dataplane/flow.h"
#include "dataplane/rcu.h"

namespace veil::dp {

struct FlowSnapshot {
  FlowSpec spec;
  Endpoint learned;     // invalid while not latched
  Endpoint egress_dst;  // current destination (peer's latched source or egress_remote)
  FlowCounters counters;
  uint64_t created_tsc = 0;
};

class FlowTable {
 public:
  // `capacity` flows; `socket` NUMA node for the hash. nullptr and `err` on failure.
  static std::unique_ptr<FlowTable> create(uint32_t capacity, Rcu& rcu, int socket,
                                           std::string& err);
  ~FlowTable();

  // The SBC's own addresses: FlowKey::addr_index is a position in this list. Set once, before
  // the first install (Dataplane::create does it from the port configuration); each gets
  // its port index (index_table) here. False (and `err`) when out of memory.
  bool set_local_addresses(std::vector<IpAddr> addrs, std::string& err);
  // The direct-mapped port index of local address `addr_index` (65536 slots, one per UDP
  // port; see slot()). Allocated by set_local_addresses and kept until the table is
  // destroyed, so the worker may hold the pointer (PortInfo::flow_index).
  Flow* const* index_table(uint32_t addr_index) const {
    return addr_index < kIndexAddrs ? index_[addr_index] : nullptr;
  }
  // The key of the flow that receives on `local`; false if the address is not ours.
  bool key_for(const Endpoint& local, FlowKey& key) const;

  // Control plane. Return 0 or a negative errno (-EINVAL bad spec, -EEXIST id or local
  // endpoint in use, -ENOENT no such id, -ENOSPC table full); `why` says which.
  int install(const FlowSpec& spec, std::string* why = nullptr);
  int update(const FlowSpec& spec, std::string* why = nullptr);
  int remove(uint32_t id);
  std::optional<FlowSnapshot> get(uint32_t id) const;
  std::vector<uint32_t> ids() const;  // ascending
  // Flows with no accepted packet for `idle_cycles` TSC cycles (since creation if none).
  std::vector<uint32_t> idle(uint64_t now_tsc, uint64_t idle_cycles) const;
  size_t size() const { return by_id_.size(); }
  // Ids of the flows installed as members of bundle head `head_id` (ascending).
  std::vector<uint32_t> bundle_members(uint32_t head_id) const;

  // A flow as the control plane walks the table: its spec and its live state (read the
  // counters with peek()/relaxed loads, as get() does). Valid until the next install,
  // update or remove; the walk itself copies nothing.
  struct Ref {
    uint32_t id;
    const FlowSpec& spec;
    const Flow& flow;
  };
  // Calls fn(ref) for the flows with an id above `after`, in ascending id order, until fn
  // returns false. Costs what it visits: O(log n) to find the start, then one step per flow.
  template <class Fn>
  void walk(uint32_t after, Fn&& fn) const {
    for (auto it = by_id_.upper_bound(after); it != by_id_.end(); ++it)
      if (!fn(Ref{it->first, it->second.spec, *it->second.flow})) break;
  }
  uint32_t capacity() const { return capacity_; }

  // Dataplane: up to 64 keys; `out[i]` is the flow or nullptr. Lock-free, wait-free.
  void lookup_bulk(const FlowKey** keys, unsigned n, Flow** out) const;
  Flow* lookup(const FlowKey& key) const;

  // Dataplane fast path: the flow receiving on (address index, port), or nullptr; the same
  // answer as lookup() from a direct-mapped port index (one load, no hashing). Media ports
  // are Veil's own allocation from dense ranges, so the key space is small and direct
  // indexing is a perfect hash. Published with release stores by the control plane (the
  // flow is complete before its slot points at it), cleared before the flow is freed after
  // an RCU grace period, like the hash entry.
  static constexpr unsigned kIndexAddrs = 64;  // >= kMaxPorts * kMaxAddrs
  Flow* find(uint32_t addr_index, uint16_t port) const { return load(slot(addr_index, port)); }
  // find() in two steps, so that a burst can prefetch every slot before loading any.
  Flow* const* slot(uint32_t addr_index, uint16_t port) const {
    Flow* const* t = addr_index < kIndexAddrs ? __atomic_load_n(&index_[addr_index], __ATOMIC_ACQUIRE) : nullptr;
    return t ? t + port : nullptr;
  }
  static Flow* load(Flow* const* slot) { return untag(load_tagged(slot)); }
  // The slot's value carries three hints in its low bits (flows are cache-line aligned, the
  // bits are free), republished with every action flip. kSlotHint: which action slot
  // (Flow::slots) is active. kSlotSlow: the action keeps the flow off the worker's fast path
  // (a destination from the peer, disabled), so the worker prefetches that slot;
  // fast-path flows never read their action. kSlotSrtp: the action protects or unprotects
  // SRTP, so the worker relays the burst in its full loop, with prefetches of the sessions'
  // libsrtp2 state (a burst without it takes the plain loop: one test of the burst's tags,
  // or-ed). Only hints: the relay reads
  // Flow::active_gen itself, and a stale hint costs one useless prefetch or one miss.
  // (Without kSlotHint, the first flow of every pair, republished when its peer is
  // installed, had slot 1 active while the worker prefetched slot 0.)
  static constexpr uintptr_t kSlotHint = 1;
  static constexpr uintptr_t kSlotSlow = 2;
  static constexpr uintptr_t kSlotSrtp = 4;
  static constexpr uintptr_t kSlotTags = kSlotHint | kSlotSlow | kSlotSrtp;
  // A slot known to exist (the worker's, reached from PortInfo::flow_index).
  static uintptr_t load_tagged_nonnull(Flow* const* slot) {
    return reinterpret_cast<uintptr_t>(__atomic_load_n(slot, __ATOMIC_ACQUIRE));
  }
  static uintptr_t load_tagged(Flow* const* slot) { return slot ? load_tagged_nonnull(slot) : 0; }
  static Flow* untag(uintptr_t v) { return reinterpret_cast<Flow*>(v & ~kSlotTags); }
  // Whether an action keeps its flow on the slow path (kSlotSlow). ICE, DTLS and consent
  // flows take the fast path for their media (the egress cache checks consent; STUN and DTLS
  // fail its RTP check and go the slow way), and so does a BUNDLE head while its group has
  // one m-line (what a browser offers for an audio call), and the RTP of a flow that sends
  // the browser's muxed RTCP to a PBX's RTCP port.
  static bool slow_action(const FlowAction& a) { return a.drop | a.peer_dst; }

 private:
  FlowTable(Rcu& rcu) : rcu_(rcu) {}
  void fill_action(const FlowSpec& spec, FlowAction& out) const;
  void republish(uint32_t id);  // new action for `id` (its peer pointer re-resolved)
  int validate(const FlowSpec& spec, std::string* why) const;

  void index_set(const FlowKey& key, Flow* f);
  // Publishes a new BundleMap for head `head_id` from its spec and its installed members.
  void rebuild_bundle(uint32_t head_id);
  // Publishes `f` in its slot with the hints of its active action (kSlotHint, kSlotSlow,
  // kSlotSrtp).
  void index_publish(Flow* f);

  Rcu& rcu_;
  Flow** index_[kIndexAddrs] = {};  // per local address: 65536 Flow*, allocated by set_local_addresses
  rte_hash* hash_ = nullptr;
  uint32_t capacity_ = 0;
  int socket_ = SOCKET_ID_ANY;
  std::vector<IpAddr> local_addrs_;
  struct Entry {
    FlowSpec spec;
    Flow* flow;
  };
  // Ordered by id: listings page through it (walk) without sorting the table. A red-black
  // tree node per flow; install/remove pay O(log n) instead of a hash map's O(1)
  // (docs/performance.md, "Management API load vs throughput").
  std::map<uint32_t, Entry> by_id_;
  std::unordered_map<uint32_t, std::unordered_set<uint32_t>> referrers_;  // peer id -> ids
  std::unordered_map<uint32_t, std::unordered_set<uint32_t>> bundle_members_;  // head id -> ids
};

}  // namespace veil::dp
