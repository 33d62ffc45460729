// The dataplane: ports, queues, tables and the worker lcores. Built by the control plane
// after EAL is up; everything is set up before the workers launch (l3fwd's rule), and
// afterwards the control plane changes only the flow and neighbour tables.
#pragma once

#include <rte_ethdev.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "controlplane/config.h"
#include "dataplane/capture.h"
#include "dataplane/drops.h"
#include "dataplane/flow_table.h"
#include "dataplane/neigh_table.h"
#include "dataplane/rcu.h"

namespace veil::dp {

inline constexpr unsigned kMaxAddrs = 8;
inline constexpr unsigned kMaxWorkers = 64;

// One NIC port as the workers see it. Written before launch, read-only afterwards.
struct PortInfo {
  uint16_t nic = 0;          // DPDK port id of the NIC (or virtual device)
  uint16_t exc = 0;          // DPDK port id of the exception path (tap, or a ring in tests)
  bool has_exc = false;
  config::Role role = config::Role::External;
  MacAddr mac;
  uint8_t n_addrs = 0;
  IpAddr addrs[kMaxAddrs];
  IpPrefix prefixes[kMaxAddrs];
  uint32_t addr_index[kMaxAddrs] = {};  // FlowKey::addr_index of each address
  // FlowTable::index_table of each address: the worker's flow lookup is one load from here.
  Flow* const* flow_index[kMaxAddrs] = {};
  IpAddr gw4, gw6;
  config::MediaRange media;
  bool tx_csum_offload = false;  // NIC completes IPv4 and UDP checksums
  // Received UDP checksums are complete on the wire ([[port]] rx_checksums, or decided from
  // the driver): media relayed unchanged gets an incremental checksum (CsumMode::Incremental).
  bool rx_csum_complete = false;
  std::string name;
  std::string exc_iface;

  // The IPv4 addresses as the worker loads them from a packet (4 bytes, native order), in
  // the same positions as `addrs`; bit i of v4_mask: addrs[i] is IPv4. find_v4 compares
  // all eight at once.
  alignas(32) uint32_t v4_word[kMaxAddrs] = {};
  uint8_t v4_mask = 0;
  void add_addr(const IpPrefix& pfx) {
    addrs[n_addrs] = pfx.addr;
    prefixes[n_addrs] = pfx;
    if (pfx.addr.is_v4()) {
      std::memcpy(&v4_word[n_addrs], pfx.addr.bytes.data(), 4);
      v4_mask = uint8_t(v4_mask | 1u << n_addrs);
    }
    ++n_addrs;
  }
  // Bit i set: the IPv4 address `w` (native order, as loaded from a packet) is addrs[i].
  // Two 16-byte compares, not one 32-byte one: a 32-byte vector in process_burst makes GCC
  // realign its stack frame, which costs it %rbp as a frame pointer (docs/performance.md
  // change 27).
  unsigned match_v4(uint32_t w) const {
#if defined(__SSE2__)
    static_assert(kMaxAddrs == 8);
    const __m128i x = _mm_set1_epi32(int(w));
    const __m128i lo = _mm_cmpeq_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(v4_word)), x);
    const __m128i hi = _mm_cmpeq_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(v4_word + 4)), x);
    return unsigned(_mm_movemask_ps(_mm_castsi128_ps(lo)) | _mm_movemask_ps(_mm_castsi128_ps(hi)) << 4) & v4_mask;
#else
    unsigned hit = 0;
    for (unsigned i = 0; i < n_addrs; ++i)
      if ((v4_mask >> i & 1) && v4_word[i] == w) hit |= 1u << i;
    return hit;
#endif
  }
  int find_v4(uint32_t w) const {
    unsigned hit = match_v4(w);
    return hit ? __builtin_ctz(hit) : -1;
  }
  // Index of `a` in this port's addresses, or -1. Fixed-length compares, which the compiler
  // inlines (memcmp with a run-time length is a libc call per address).
  int find_addr(Family f, const uint8_t* a) const {
    if (f == Family::V4) {
      uint32_t w;
      std::memcpy(&w, a, 4);
      return find_v4(w);
    }
    for (unsigned i = 0; i < n_addrs; ++i)
      if (addrs[i].family == f && (f == Family::V4 ? std::memcmp(addrs[i].bytes.data(), a, 4) == 0
                                                   : std::memcmp(addrs[i].bytes.data(), a, 16) == 0))
        return int(i);
    return -1;
  }
  bool is_ours(Family f, const uint8_t* a) const { return find_addr(f, a) >= 0; }
  // ff02::1 (all nodes) or the solicited-node group of one of our IPv6 addresses.
  bool is_nd_group(const uint8_t* a) const {
    static const uint8_t sn[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
    static const uint8_t all[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (std::memcmp(a, all, 16) == 0) return true;
    if (std::memcmp(a, sn, 13) != 0) return false;
    for (unsigned i = 0; i < n_addrs; ++i)
      if (addrs[i].is_v6() && std::memcmp(addrs[i].bytes.data() + 13, a + 13, 3) == 0) return true;
    return false;
  }
  // The next hop for `dst`: itself when on-link, else the gateway of its family.
  IpAddr next_hop(const IpAddr& dst) const {
    for (unsigned i = 0; i < n_addrs; ++i)
      if (prefixes[i].contains(dst)) return dst;
    const IpAddr& gw = dst.is_v4() ? gw4 : gw6;
    return gw.valid() ? gw : dst;
  }
  const IpAddr* source_for(Family f) const {
    for (unsigned i = 0; i < n_addrs; ++i)
      if (addrs[i].family == f) return &addrs[i];
    return nullptr;
  }
};

// Worker -> control plane messages (bounded ring; a full ring is counted, never waited on).
struct CtlMsg {
  enum Type : uint8_t { Learn = 1, Resolve = 2 } type;
  uint8_t port;
  MacAddr mac;
  IpAddr addr;
  uint8_t pad[7];
};
static_assert(sizeof(CtlMsg) == 32);

// Per-worker counters: written by that worker only, summed by the control plane.
struct alignas(64) WorkerCounters {
  uint64_t drops[kDropCount] = {};
  uint64_t events[kEventCount] = {};
};

struct WorkerCtx;

// A DTLS record (first byte 20..63) that arrived on a flow with `dtls` set, handed to the
// control plane (Dataplane::poll_dtls). `data` is valid during the callback only.
struct DtlsDatagram {
  uint32_t flow_id = 0;
  uint8_t port = 0;   // logical port it arrived on
  Endpoint local;     // the flow's SBC address and media port
  Endpoint remote;    // the sender (on ICE flows: the source of the last authenticated check)
  const uint8_t* data = nullptr;
  uint32_t len = 0;
};

// RFC 7675: consent expires 30 s after the last authenticated check.
inline constexpr uint32_t kIceConsentTimeoutMs = 30000;

struct Options {
  // Test seam: DPDK device names to use as exception paths instead of creating taps
  // (e.g. net_ring ports); one per config port, or empty.
  std::vector<std::string> exception_devices;
  bool create_taps = true;
};

class Dataplane {
 public:
  // EAL must be initialised. Probes/configures/starts every port, creates the tables and
  // rings. Does not launch workers. nullptr and `err` on failure.
  static std::unique_ptr<Dataplane> create(const config::Config& cfg, const Options& opt,
                                           std::string& err);
  ~Dataplane();

  // Launches one worker per configured worker lcore (rte_eal_remote_launch).
  bool start(std::string& err);
  // Stops and joins the workers. Idempotent.
  void stop();
  // Runs the loop of worker `index` on the calling thread until stop() (tests, benchmark).
  int run_worker(unsigned index);

  // Control plane housekeeping; call often (every millisecond or so): neighbour learning,
  // resolution requests, RCU reclamation.
  void poll_control();
  // Asks for the next hop of every port's gateway (start-up, and periodically).
  void resolve_gateways();
  // Asks for the next hop towards `dst` on `port` unless it is known: called when a flow is
  // programmed, so its first packets do not wait for ARP/ND.
  void prime_next_hop(uint8_t port, const IpAddr& dst);

  FlowTable& flows() { return *flows_; }
  NeighTable& neighbours() { return *neigh_; }
  Rcu& rcu() { return *rcu_; }
  const std::vector<PortInfo>& ports() const { return ports_; }
  unsigned workers() const { return unsigned(workers_.size()); }
  // The worker contexts (tests and the benchmark drive process_burst/flush directly).
  WorkerCtx& worker(unsigned i) { return *workers_.at(i); }
  rte_mempool* pool() const { return pool_; }

  // Sum over workers.
  void counters(uint64_t drops[kDropCount], uint64_t events[kEventCount]) const;
  uint64_t drop_count(Drop d) const;
  uint64_t event_count(Event e) const;
  uint64_t tsc_hz() const { return tsc_hz_; }

  // veilctl capture: the arm the workers test, its ring and pool (dataplane/capture.h).
  CaptureArm& capture() { return cap_; }

  // Sends a frame built by the control plane out of `port` (through worker 0's ring).
  bool send_from_control(uint8_t port, const uint8_t* frame, uint32_t len);

  // ICE-lite / DTLS (dataplane/dtls_path.cc). DTLS records handed up by the workers: calls
  // `fn` for each (at most `max`), frees them, returns how many.
  unsigned poll_dtls(const std::function<void(const DtlsDatagram&)>& fn, unsigned max = 64);
  // Sends `payload` as one UDP datagram from `local` (an SBC address and media port) to
  // `remote` out of `port`: DTLS records from the control plane's DTLS-SRTP sessions. False
  // (and a resolution is requested) when the next hop's MAC is not known yet.
  bool send_udp_from_control(uint8_t port, const Endpoint& local, const Endpoint& remote,
                             const uint8_t* payload, uint32_t len);
  // Consent freshness timeout for ICE flows (default kIceConsentTimeoutMs). Call before
  // start() (tests shorten it).
  void set_ice_consent_timeout_ms(uint32_t ms);

 private:
  friend struct WorkerCtx;
  Dataplane() = default;
  bool setup_port(const config::PortConfig& pc, unsigned index, const Options& opt,
                  std::string& err);
  bool setup_queues(uint16_t port_id, uint16_t queues, uint16_t mtu, bool rss, bool* csum_offload,
                    std::string& err);
  void request_resolution(uint8_t port, const IpAddr& target);

  config::Config cfg_;
  std::vector<PortInfo> ports_;
  std::vector<std::unique_ptr<WorkerCtx>> workers_;
  rte_mempool* pool_ = nullptr;
  rte_ring* ctl_ring_ = nullptr;  // workers -> control plane (CtlMsg)
  rte_ring* dtls_ring_ = nullptr;  // workers -> control plane: DTLS records (rte_mbuf*)
  std::unique_ptr<Rcu> rcu_;
  std::unique_ptr<FlowTable> flows_;
  std::unique_ptr<NeighTable> neigh_;
  std::atomic<bool> stop_{false};
  CaptureArm cap_;
  bool launched_ = false;
  uint64_t tsc_hz_ = 0;
  std::vector<uint16_t> started_ports_;
  struct Pending {
    uint8_t port;
    IpAddr addr;
    uint64_t tsc;
  };
  std::vector<Pending> resolving_;
};

// Builds the EAL argument list for a config (used by veild; exposed for tests).
std::vector<std::string> eal_arguments(const config::Config& cfg, const std::string& argv0);

}  // namespace veil::dp
