// Next-hop MAC addresses per port, learned from ARP and neighbour discovery. The control
// plane is the only writer (workers pass what they see through the control ring); workers
// look up lock-free. The MAC lives in the hash's data word itself, so an update is one
// atomic store and nothing needs freeing.
#pragma once

#include <rte_hash.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/addr.h"
#include "dataplane/packet.h"
#include "dataplane/rcu.h"

namespace veil::dp {

inline constexpr unsigned kMaxPorts = 8;

struct NeighKey {
  uint8_t addr[16];
  uint8_t port;
  uint8_t family;
  uint8_t pad[2];
};
static_assert(sizeof(NeighKey) == 20);

struct NeighEntry {
  uint8_t port;
  IpAddr addr;
  MacAddr mac;
};

class NeighTable {
 public:
  static std::unique_ptr<NeighTable> create(uint32_t capacity, Rcu& rcu, int socket,
                                            std::string& err);
  ~NeighTable();

  // Control plane. Returns true if the entry is new or its MAC changed.
  bool learn(uint8_t port, const IpAddr& addr, const MacAddr& mac);
  bool forget(uint8_t port, const IpAddr& addr);
  bool known(uint8_t port, const IpAddr& addr) const;
  std::vector<NeighEntry> list() const;

  // Dataplane.
  bool lookup(uint8_t port, const IpAddr& addr, MacAddr& out) const {
    NeighKey k = key(port, addr);
    void* data;
    if (rte_hash_lookup_data(hash_, &k, &data) < 0) return false;
    uint64_t v = reinterpret_cast<uintptr_t>(data);
    for (int i = 0; i < 6; ++i) out.b[i] = uint8_t(v >> (40 - 8 * i));
    return true;
  }
  // Bumped by every change on the port: flows re-resolve their cached next hop.
  uint32_t generation(uint8_t port) const { return gen_[port].load(std::memory_order_acquire); }
  // The per-port generations themselves (kMaxPorts), for a worker that reads them per packet.
  const std::atomic<uint32_t>* generations() const { return gen_; }

 private:
  explicit NeighTable(Rcu& rcu) : rcu_(rcu) {}
  static NeighKey key(uint8_t port, const IpAddr& a) {
    NeighKey k{};
    std::memcpy(k.addr, a.bytes.data(), 16);
    k.port = port;
    k.family = uint8_t(a.family);
    return k;
  }
  Rcu& rcu_;
  rte_hash* hash_ = nullptr;
  std::atomic<uint32_t> gen_[kMaxPorts] = {};
};

}  // namespace veil::dp
