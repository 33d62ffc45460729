#include "dataplane/neigh_table.h"

#include <rte_errno.h>
#include <rte_hash_crc.h>

namespace veil::dp {

namespace {
std::atomic<unsigned> g_seq{0};
uint64_t pack(const MacAddr& m) {
  uint64_t v = 1ull << 63;  // never a null data pointer
  for (int i = 0; i < 6; ++i) v |= uint64_t(m.b[i]) << (40 - 8 * i);
  return v;
}
}  // namespace

std::unique_ptr<NeighTable> NeighTable::create(uint32_t capacity, Rcu& rcu, int socket,
                                               std::string& err) {
  std::unique_ptr<NeighTable> t(new NeighTable(rcu));
  std::string name = "veil_neigh_" + std::to_string(g_seq.fetch_add(1));
  rte_hash_parameters p{};
  p.name = name.c_str();
  p.entries = capacity;
  p.key_len = sizeof(NeighKey);
  p.hash_func = rte_hash_crc;
  p.socket_id = socket;
  p.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF | RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
  t->hash_ = rte_hash_create(&p);
  if (!t->hash_) {
    err = std::string("cannot create neighbour table: ") + rte_strerror(rte_errno);
    return nullptr;
  }
  return t;
}

NeighTable::~NeighTable() {
  rcu_.drain();
  rte_hash_free(hash_);
}

bool NeighTable::learn(uint8_t port, const IpAddr& addr, const MacAddr& mac) {
  if (port >= kMaxPorts || !addr.valid()) return false;
  NeighKey k = key(port, addr);
  void* old = nullptr;
  uint64_t v = pack(mac);
  if (rte_hash_lookup_data(hash_, &k, &old) >= 0 && reinterpret_cast<uintptr_t>(old) == v)
    return false;
  // Adding an existing key replaces its data atomically in lock-free mode.
  if (rte_hash_add_key_data(hash_, &k, reinterpret_cast<void*>(uintptr_t(v))) < 0) return false;
  gen_[port].fetch_add(1, std::memory_order_acq_rel);
  return true;
}

bool NeighTable::forget(uint8_t port, const IpAddr& addr) {
  NeighKey k = key(port, addr);
  int32_t pos = rte_hash_del_key(hash_, &k);
  if (pos < 0) return false;
  gen_[port].fetch_add(1, std::memory_order_acq_rel);
  rte_hash* h = hash_;
  rcu_.defer([h, pos] { rte_hash_free_key_with_position(h, pos); });
  return true;
}

bool NeighTable::known(uint8_t port, const IpAddr& addr) const {
  NeighKey k = key(port, addr);
  return rte_hash_lookup(hash_, &k) >= 0;
}

std::vector<NeighEntry> NeighTable::list() const {
  std::vector<NeighEntry> v;
  const void* k;
  void* data;
  uint32_t it = 0;
  while (rte_hash_iterate(hash_, &k, &data, &it) >= 0) {
    const auto* nk = static_cast<const NeighKey*>(k);
    NeighEntry e;
    e.port = nk->port;
    e.addr.family = Family(nk->family);
    std::memcpy(e.addr.bytes.data(), nk->addr, 16);
    uint64_t m = reinterpret_cast<uintptr_t>(data);
    for (int i = 0; i < 6; ++i) e.mac.b[i] = uint8_t(m >> (40 - 8 * i));
    v.push_back(e);
  }
  return v;
}

}  // namespace veil::dp
