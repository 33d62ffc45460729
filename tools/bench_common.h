// What veil-bench and veil-srtp-bench share: the addressing plan of their flow pairs, EAL
// start-up, a Dataplane on two net_ring ports without taps, argument and report helpers.
#pragma once

#include <rte_ring.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "controlplane/config.h"
#include "dataplane/dataplane.h"

namespace veil::bench {

using veil::dp::MacAddr;

inline constexpr unsigned kBurst = 32;

// The SBC's local addresses per port and the first media port on each.
inline constexpr unsigned kAddrsPerPort = veil::dp::kMaxAddrs;
inline constexpr uint16_t kFirstMediaPort = 1024;

inline constexpr uint32_t kExtNet = 0xcb007100;              // 203.0.113.0/24
inline constexpr uint32_t kIntNet = 0xc6336400;              // 198.51.100.0/24
inline const IpAddr kExtRemote = IpAddr::v4(kExtNet | 100);  // the far ends, on-link
inline const IpAddr kIntRemote = IpAddr::v4(kIntNet | 10);
inline constexpr MacAddr kExtRemoteMac{{0x02, 0, 0, 0, 0x01, 0x64}};
inline constexpr MacAddr kIntRemoteMac{{0x02, 0, 0, 0, 0x02, 0x0a}};

// Pair k: the SBC's endpoint on each side and the remote endpoint behind it.
Endpoint ext_local(uint32_t k);
Endpoint int_local(uint32_t k);
Endpoint ext_remote(uint32_t k);
Endpoint int_remote(uint32_t k);

// Direction 0: external remote -> external port (flow 2k+1); 1: internal -> internal (2k+2).
struct Leg {
  uint8_t in_port, out_port;
  Endpoint src, dst;          // as received
  Endpoint out_src, out_dst;  // as relayed
  MacAddr src_mac, out_dst_mac;
};
Leg leg(uint32_t k, unsigned dir);

inline void wr16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
inline void wr32(uint8_t* p, uint32_t v) {
  wr16(p, uint16_t(v >> 16));
  wr16(p + 2, uint16_t(v));
}

// Ethernet/IPv4/UDP of pair leg `l` arriving on the port with `port_mac`, around the
// `payload_len` bytes already at f + 42: DSCP EF (as phones mark voice), TTL 64, DF, both
// checksums computed.
void write_udp_headers(uint8_t* f, const MacAddr& port_mac, const Leg& l, uint16_t payload_len,
                       uint16_t ip_id);

// A count with an optional suffix: k/K = 1000, M = `mega` (each tool keeps its own meaning).
bool parse_count(std::string_view s, uint64_t mega, uint64_t& out);

// EAL on `lcore`, no PCI, shared config or telemetry, a per-process file prefix; `prog`
// names the tool in the prefix and in the error message.
bool eal_init(const char* prog, const char* argv0, unsigned lcore, bool hugepages, unsigned mem_mb);

std::string loadavg();
std::string cpu_model();
// The "command:", "date:" and "cpu:" lines of a report.
void print_run_info(const std::string& cmdline, uint64_t tsc_hz);

double median(std::vector<double> v);
void print_drops(const veil::dp::Dataplane& dp);

// Two net_ring ports ("ext0" external, "int0" internal, rings named after `ring_base`), each
// with kAddrsPerPort addresses on its /24, media ports from kFirstMediaPort, the Dataplane
// without taps (nothing here is punted) and both far ends' MACs learnt. `cfg` and `rings`
// are the caller's and must outlive the Dataplane; on failure says why, as `prog`.
// `rx_checksums`: both ports' [[port]] rx_checksums (auto: net_ring is complete, so media
// relayed unchanged gets the incremental checksum; partial: the full software checksum).
std::unique_ptr<veil::dp::Dataplane> create_ring_dataplane(const char* prog,
                                                           const std::string& ring_base,
                                                           uint32_t max_flows, unsigned mbufs,
                                                           veil::config::Config& cfg,
                                                           rte_ring* (&rings)[4],
                                                           veil::config::PortConfig::RxChecksums rx_checksums =
                                                               veil::config::PortConfig::RxChecksums::Auto);

}  // namespace veil::bench
