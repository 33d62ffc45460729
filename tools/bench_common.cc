#include "tools/bench_common.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_lcore.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>

#include "dataplane/packet.h"

namespace veil::bench {

using namespace veil::dp;

Endpoint ext_local(uint32_t k) {
  return {IpAddr::v4(kExtNet | (1 + k % kAddrsPerPort)),
          uint16_t(kFirstMediaPort + k / kAddrsPerPort)};
}
Endpoint int_local(uint32_t k) {
  return {IpAddr::v4(kIntNet | (1 + k % kAddrsPerPort)),
          uint16_t(kFirstMediaPort + k / kAddrsPerPort)};
}
Endpoint ext_remote(uint32_t k) {
  return {kExtRemote, uint16_t(10000 + k % 50000)};
}
Endpoint int_remote(uint32_t k) {
  return {kIntRemote, uint16_t(10000 + (k * 7919u) % 50000)};
}

Leg leg(uint32_t k, unsigned dir) {
  if (dir == 0)
    return {0,
            1,
            ext_remote(k),
            ext_local(k),
            int_local(k),
            int_remote(k),
            kExtRemoteMac,
            kIntRemoteMac};
  return {
      1, 0, int_remote(k), int_local(k), ext_local(k), ext_remote(k), kIntRemoteMac, kExtRemoteMac};
}

void write_udp_headers(uint8_t* f, const MacAddr& port_mac, const Leg& l, uint16_t payload_len,
                       uint16_t ip_id) {
  std::memcpy(f, port_mac.b, 6);
  std::memcpy(f + 6, l.src_mac.b, 6);
  wr16(f + 12, 0x0800);
  uint8_t* ip = f + kEthHdrLen;
  ip[0] = 0x45;
  ip[1] = 0xb8;  // DSCP EF
  wr16(ip + 2, uint16_t(kIpv4HdrLen + kUdpHdrLen + payload_len));
  wr16(ip + 4, ip_id);
  wr16(ip + 6, 0x4000);
  ip[8] = 64;
  ip[9] = kProtoUdp;
  ip[10] = ip[11] = 0;
  std::memcpy(ip + 12, l.src.addr.bytes.data(), 4);
  std::memcpy(ip + 16, l.dst.addr.bytes.data(), 4);
  uint16_t c = ipv4_header_checksum(ip);
  std::memcpy(ip + 10, &c, 2);
  uint8_t* udp = ip + kIpv4HdrLen;
  wr16(udp, l.src.port);
  wr16(udp + 2, l.dst.port);
  wr16(udp + 4, uint16_t(kUdpHdrLen + payload_len));
  udp[6] = udp[7] = 0;
  c = l4_checksum(Family::V4, ip, udp, uint16_t(kUdpHdrLen + payload_len), kProtoUdp);
  std::memcpy(udp + 6, &c, 2);
}

bool parse_count(std::string_view s, uint64_t mega, uint64_t& out) {
  uint64_t mult = 1;
  if (!s.empty() && (s.back() == 'k' || s.back() == 'K'))
    mult = 1000, s.remove_suffix(1);
  else if (!s.empty() && s.back() == 'M')
    mult = mega, s.remove_suffix(1);
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return false;
  out = v * mult;
  return true;
}

bool eal_init(const char* prog, const char* argv0, unsigned lcore, bool hugepages,
              unsigned mem_mb) {
  std::vector<std::string> eal{argv0,
                               hugepages ? "--in-memory" : "--no-huge",
                               "-m",
                               std::to_string(mem_mb),
                               "--no-pci",
                               "--file-prefix",
                               std::string(prog) + "-" + std::to_string(getpid()),
                               "-l",
                               std::to_string(lcore),
                               "--no-shconf",
                               "--no-telemetry",
                               "--log-level",
                               "lib.eal:warning",
                               "--log-level",
                               "pmd.net.ring:warning"};
  std::vector<char*> eal_argv;
  for (auto& s : eal) eal_argv.push_back(s.data());
  if (rte_eal_init(int(eal_argv.size()), eal_argv.data()) < 0) {
    std::fprintf(stderr, "%s: rte_eal_init: %s\n", prog, rte_strerror(rte_errno));
    return false;
  }
  return true;
}

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      size_t c = line.find(':');
      return c == std::string::npos ? line : line.substr(c + 2);
    }
  return "unknown";
}

void print_run_info(const std::string& cmdline, uint64_t tsc_hz) {
  char date[64];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  std::printf("command:  %s\n", cmdline.c_str());
  std::printf("date:     %s\n", date);
  std::printf("cpu:      %s, %ld online cpus, TSC %.3f GHz; running on lcore %u\n",
              cpu_model().c_str(), sysconf(_SC_NPROCESSORS_ONLN), double(tsc_hz) / 1e9,
              rte_lcore_id());
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void print_drops(const Dataplane& dp) {
  uint64_t d[kDropCount], e[kEventCount];
  dp.counters(d, e);
  for (unsigned i = 0; i < kDropCount; ++i)
    if (d[i]) std::fprintf(stderr, "  drop %s: %llu\n", kDropNames[i], (unsigned long long)d[i]);
}

std::unique_ptr<Dataplane> create_ring_dataplane(const char* prog, const std::string& ring_base,
                                                 uint32_t max_flows, unsigned mbufs,
                                                 veil::config::Config& cfg, rte_ring* (&rings)[4],
                                                 veil::config::PortConfig::RxChecksums rx_checksums) {
  cfg.source = prog;
  const char* names[2] = {"ext", "int"};
  uint32_t nets[2] = {kExtNet, kIntNet};
  for (unsigned i = 0; i < 2; ++i) {
    std::string base = ring_base + "_" + names[i];
    rings[2 * i] = rte_ring_create((base + "_rx").c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    rings[2 * i + 1] =
        rte_ring_create((base + "_tx").c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (!rings[2 * i] || !rings[2 * i + 1]) {
      std::fprintf(stderr, "%s: rte_ring_create: %s\n", prog, rte_strerror(rte_errno));
      return nullptr;
    }
    std::string dev = "net_ring_" + base;
    if (rte_eth_from_rings(dev.c_str(), &rings[2 * i], 1, &rings[2 * i + 1], 1, 0) < 0) {
      std::fprintf(stderr, "%s: rte_eth_from_rings(%s): %s\n", prog, dev.c_str(),
                   rte_strerror(rte_errno));
      return nullptr;
    }
    veil::config::PortConfig pc;
    pc.name = std::string(names[i]) + "0";
    pc.role = i == 0 ? veil::config::Role::External : veil::config::Role::Internal;
    pc.device = dev;
    pc.rx_checksums = rx_checksums;
    for (unsigned j = 0; j < kAddrsPerPort; ++j)
      pc.addresses.push_back(IpPrefix{IpAddr::v4(nets[i] | (1 + j)), 24});
    cfg.ports.push_back(pc);
  }
  cfg.media_external = {kFirstMediaPort, 65535};
  cfg.media_internal = {kFirstMediaPort, 65535};
  cfg.limits.max_flows = max_flows;
  cfg.dataplane.mbufs = mbufs;
  std::string err;
  Options opt;
  opt.create_taps = false;  // no exception path: nothing here is punted
  std::unique_ptr<Dataplane> dp = Dataplane::create(cfg, opt, err);
  if (!dp) {
    std::fprintf(stderr, "%s: Dataplane::create: %s\n", prog, err.c_str());
    return nullptr;
  }
  dp->neighbours().learn(0, kExtRemote, kExtRemoteMac);
  dp->neighbours().learn(1, kIntRemote, kIntRemoteMac);
  return dp;
}

}  // namespace veil::bench
