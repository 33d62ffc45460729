// veil-bench: cycles per packet of the media fast path (parse, flow lookup, latch check,
// header rewrite with software checksums) on ONE lcore, against a loop that only swaps
// headers. No NIC: the worker's process_burst() is called directly on pre-built mbufs and
// the relayed packets are taken back out of its tx buffers, so the figures are the
// dataplane's own cost, not a driver's. docs/performance.md describes the method and
// records the results.
//
//   veil-bench [--flows 1000,100000,1000000] [--packets 4M] [--reps 9] [--sequence 1M]
//              [--mbufs 1024] [--lcore 0] [--api-load 100] [--api-cpu N]
//
// --api-load RPS: after the usual measurement, the fast path runs again in repetitions that
// alternate between no management traffic and RPS requests per second served by the real
// management API (controlplane/mgmt.h: Api + Server on a Unix socket, an epoll loop on its
// own thread as in veild's control loop, on another CPU) and issued by a client thread over
// that socket (stats, drops, ports, neighbours, flow id=N, flows limit=10 in turn). It
// prints Mpps without and with the load, from the same run.
//
// Each flow count gets its own Dataplane (two net_ring ports, a flow table sized for it).
// The flows come in pairs, external <-> internal, as a call's two media directions do.
// The packets are G.711 20 ms RTP (172-byte UDP payload, 214-byte frame) from each flow's
// signaled remote, to flows drawn uniformly at random, so large tables miss the caches as
// real traffic would. The random sequence (default 1M packets) is kept as the first 64
// bytes of each packet; before every burst those bytes are copied into the next 32 of a
// small ring of mbufs (an rx ring's worth) whose remaining bytes never change. Decoupling
// the two keeps the packet buffers as few as a NIC would cycle through while the flows
// touched are as many as the table holds.
//
// Before timing, every flow gets packets (latching it and caching its next hop), and every
// relayed packet of the sequence's first pass is checked: addresses, ports, MACs, payload,
// and both checksums with Veil's and with DPDK's code. Each timed repetition checks the
// relayed and drop counters.

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_version.h>
#include <pthread.h>
#include <sched.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "controlplane/config.h"
#include "controlplane/mgmt.h"
#include "dataplane/dataplane.h"
#include "dataplane/packet.h"
#include "dataplane/worker.h"
#include "tools/bench_common.h"

namespace {

using veil::Endpoint;
using veil::Family;
using veil::IpAddr;
using veil::IpPrefix;
using namespace veil::dp;
using namespace veil::bench;

// One G.711 packet per 20 ms: 12-byte RTP header + 160 samples.
constexpr uint16_t kUdpPayload = 172;
constexpr uint16_t kFrameLen = kEthHdrLen + kIpv4HdrLen + kUdpHdrLen + kUdpPayload;  // 214
// Bytes restored before every burst: Ethernet + IPv4 + UDP + the RTP header and then some.
constexpr unsigned kSavedBytes = 64;
// The M suffix of counts (--packets 4M): a decimal million here.
constexpr uint64_t kMega = 1000000;

// The media port range on each local address (bench_common.h: kAddrsPerPort = kMaxAddrs, the
// most a port has): 8 * 64512 local endpoints per side, so up to 1,032,192 flows (516,096 pairs).
constexpr uint32_t kPortsPerAddr = 65535u - kFirstMediaPort + 1;
constexpr uint32_t kMaxPairs = kAddrsPerPort * kPortsPerAddr;


struct alignas(64) SavedHeader {
  uint8_t b[kSavedBytes];
};

uint8_t payload_byte(unsigned offset) {
  return uint8_t(0xd5 ^ offset);
}

// The whole 214-byte frame (checksums over all of it); bytes from kSavedBytes on are the
// same in every frame, so an mbuf written once only ever needs its first 64 bytes restored.
void build_frame(uint8_t* f, const MacAddr& port_mac, uint32_t k, unsigned dir, uint16_t seq) {
  uint8_t* rtp = f + kEthHdrLen + kIpv4HdrLen + kUdpHdrLen;
  rtp[0] = 0x80;  // V=2
  rtp[1] = 0;     // PT 0 (PCMU)
  wr16(rtp + 2, seq);
  wr32(rtp + 4, uint32_t(seq) * 160u);
  wr32(rtp + 8, 2 * k + 1 + dir);  // SSRC: the flow id
  for (unsigned i = kEthHdrLen + kIpv4HdrLen + kUdpHdrLen + 12; i < kFrameLen; ++i)
    f[i] = payload_byte(i);
  write_udp_headers(f, port_mac, leg(k, dir), kUdpPayload, /*ip_id=*/seq);
}

// Packets to send, kBurst at a time; every burst arrives on one port.
struct Sequence {
  std::vector<SavedHeader> hdr;
  std::vector<uint32_t> pair;  // per packet: the pair it belongs to (for verification)
  std::vector<uint8_t> dir;    // per burst
  size_t bursts() const { return dir.size(); }
  void add(const PortInfo* ports, uint32_t k, unsigned d, uint16_t seq) {
    uint8_t f[kFrameLen];
    build_frame(f, ports[leg(k, d).in_port].mac, k, d, seq);
    hdr.emplace_back();
    std::memcpy(hdr.back().b, f, kSavedBytes);
    pair.push_back(k);
  }
};

// The measured sequence: `bursts` bursts alternating external / internal, each packet to a
// pair drawn uniformly at random. Each flow's packets form one RTP stream, as a phone sends
// it: consecutive sequence numbers (from a random start), timestamps 160 apart. (Until
// 2026-11-24 the sequence number was the packet's index in the whole sequence, so every
// stream skipped about as many numbers as there are flows between two of its packets: the
// RTP statistics saw heavy loss and, at 1 k flows, a sequence restart in ~5 % of the
// packets, at 100 k flows in most; docs/performance.md change 19.)
Sequence random_sequence(const PortInfo* ports, uint32_t pairs, size_t bursts, uint64_t seed) {
  Sequence s;
  s.hdr.reserve(bursts * kBurst);
  s.pair.reserve(bursts * kBurst);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<uint32_t> pick(0, pairs - 1);
  std::vector<uint16_t> next(2 * size_t(pairs));  // per flow (pair, direction): its next number
  for (uint32_t k = 0; k < pairs; ++k) next[2 * k] = uint16_t(rng()), next[2 * k + 1] = uint16_t(rng());
  for (size_t b = 0; b < bursts; ++b) {
    s.dir.push_back(uint8_t(b & 1));
    for (unsigned i = 0; i < kBurst; ++i) {
      uint32_t k = pick(rng);
      s.add(ports, k, b & 1, next[2 * k + (b & 1)]++);
    }
  }
  return s;
}

// One packet to every flow, in order: latches every flow and fills its next-hop cache.
Sequence sweep_sequence(const PortInfo* ports, uint32_t pairs) {
  Sequence s;
  size_t per_dir = (pairs + kBurst - 1) / kBurst;
  for (unsigned d = 0; d < 2; ++d)
    for (size_t b = 0; b < per_dir; ++b) {
      s.dir.push_back(uint8_t(d));
      for (unsigned i = 0; i < kBurst; ++i)
        s.add(ports, uint32_t((b * kBurst + i) % pairs), d, uint16_t(b * kBurst + i));
    }
  return s;
}

// Puts a burst back into its as-received state. Both measured loops do this, so it is part
// of both figures (and of their difference not at all).
inline void restore(rte_mbuf** m, const SavedHeader* h) {
  for (unsigned i = 0; i < kBurst; ++i) {
    std::memcpy(static_cast<uint8_t*>(m[i]->buf_addr) + RTE_PKTMBUF_HEADROOM, h[i].b, kSavedBytes);
    m[i]->data_off = RTE_PKTMBUF_HEADROOM;
    m[i]->data_len = kFrameLen;
    m[i]->pkt_len = kFrameLen;
  }
}

// The baseline: what a relay does at the very least, touch each packet's headers. Swaps
// Ethernet, IPv4 and UDP source and destination (which leaves both checksums valid).
__attribute__((noinline)) void swap_headers(rte_mbuf** pkts, uint16_t n) {
  for (uint16_t i = 0; i < n; ++i) {
    uint8_t* f = rte_pktmbuf_mtod(pkts[i], uint8_t*);
    uint8_t mac[6];
    std::memcpy(mac, f, 6);
    std::memcpy(f, f + 6, 6);
    std::memcpy(f + 6, mac, 6);
    uint32_t a, b;
    std::memcpy(&a, f + 26, 4);
    std::memcpy(&b, f + 30, 4);
    std::memcpy(f + 26, &b, 4);
    std::memcpy(f + 30, &a, 4);
    uint16_t s, d;
    std::memcpy(&s, f + 34, 2);
    std::memcpy(&d, f + 36, 2);
    std::memcpy(f + 34, &d, 2);
    std::memcpy(f + 36, &s, 2);
  }
}

struct Args {
  std::vector<uint32_t> flows{1000, 100000, 1000000};
  uint64_t packets = 4000000;  // per repetition and loop
  unsigned reps = 9;
  size_t sequence = 1u << 20;  // packets in the random sequence (64 bytes of header each)
  unsigned mbufs = 1024;       // mbufs cycled through, like a NIC rx ring of 1024 descriptors
  unsigned lcore = 0;          // CPU the benchmark runs on (EAL -l)
  bool hugepages = false;      // EAL memory on hugepages (reserved beforehand), as in production
  // Both ports' rx_checksums: auto (net_ring: complete, so the incremental UDP checksum) or
  // partial (the full software checksum over the payload, as on a veth port).
  veil::config::PortConfig::RxChecksums rx_checksums = veil::config::PortConfig::RxChecksums::Auto;
  unsigned api_rps = 0;        // --api-load: management requests per second (0: not measured)
  int api_cpu = -1;            // CPU of the API threads (-1: the first one that is not lcore)
  std::vector<std::string> api_mix{"stats", "drops", "ports", "neighbours", "flow", "flows"};
  std::string cmdline;
};

void usage(FILE* to) {
  std::fprintf(
      to,
      "usage: veil-bench [--flows N[,N...]] [--packets N] [--reps N] [--sequence N] [--mbufs N]\n"
      "                  [--lcore N] [--hugepages] [--rx-checksums auto|complete|partial]\n"
      "  --flows     flow counts to measure (even; at most %u); default 1000,100000,1000000\n"
      "  --packets   packets per repetition and loop; default 4M (k and M suffixes work)\n"
      "  --reps      repetitions; the median is reported; default 9\n"
      "  --sequence  distinct packets in the random sequence (64-byte headers); default 1048576\n"
      "  --mbufs     packet buffers cycled through (an rx ring's worth); default 1024\n"
      "  --lcore     CPU to run on (EAL -l); default 0\n"
      "  --api-load  also measure the fast path while the management API answers this many\n"
      "              requests per second (real Api/Server, client and server threads on\n"
      "              --api-cpu, default: the first CPU other than --lcore)\n"
      "  --api-mix   the requests, in turn (default stats,drops,ports,neighbours,flow,flows;\n"
      "              flow: flow id=<random>, flows: flows limit=10, flows-page: flows limit=10\n"
      "              after=<random id>, flows-sorted: flows sort=packets limit=10 (a scan of\n"
      "              every flow's counters), metrics: the /metrics text)\n"
      "  --hugepages EAL memory (flow table, flows, mbufs) on hugepages, as on a production\n"
      "              host (reserve ~2.5 GB first: hugepages-setup/hugepages.sh reserve --mb 2560);\n"
      "              default --no-huge\n"
      "  --rx-checksums both ports' [[port]] rx_checksums: auto/complete (net_ring: media\n"
      "              relayed unchanged gets the incremental UDP checksum, RFC 1624) or partial\n"
      "              (the full software checksum over the payload); default auto\n",
      2 * kMaxPairs);
}

bool parse_args(int argc, char** argv, Args& a) {
  for (int i = 0; i < argc; ++i) a.cmdline += (i ? " " : "") + std::string(argv[i]);
  for (int i = 1; i < argc; ++i) {
    std::string_view opt = argv[i];
    if (opt == "-h" || opt == "--help") {
      usage(stdout);
      std::exit(0);
    }
    if (opt == "--hugepages") {
      a.hugepages = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "veil-bench: %s needs a value\n", argv[i]);
      return false;
    }
    std::string_view val = argv[++i];
    uint64_t v = 0;
    if (opt == "--flows") {
      a.flows.clear();
      while (!val.empty()) {
        size_t comma = val.find(',');
        if (!parse_count(val.substr(0, comma), kMega, v) || v < 2 || v > 2ull * kMaxPairs) {
          std::fprintf(stderr, "veil-bench: --flows: \"%.*s\" is not a flow count from 2 to %u\n",
                       int(val.substr(0, comma).size()), val.data(), 2 * kMaxPairs);
          return false;
        }
        a.flows.push_back(uint32_t(v + (v & 1)));  // whole pairs
        val = comma == std::string_view::npos ? std::string_view() : val.substr(comma + 1);
      }
      if (a.flows.empty()) return usage(stderr), false;
    } else if (opt == "--packets" && parse_count(val, kMega, v) && v >= kBurst) {
      a.packets = v / kBurst * kBurst;
    } else if (opt == "--mbufs" && parse_count(val, kMega, v) && v >= kBurst && v <= 65536) {
      a.mbufs = unsigned(v / kBurst * kBurst);
    } else if (opt == "--lcore" && parse_count(val, kMega, v) && v < 1024) {
      a.lcore = unsigned(v);
    } else if (opt == "--api-load" && parse_count(val, kMega, v) && v >= 1 && v <= 100000) {
      a.api_rps = unsigned(v);
    } else if (opt == "--api-mix") {
      a.api_mix.clear();
      std::string_view rest = val;
      while (!rest.empty()) {
        size_t c = rest.find(',');
        std::string w(rest.substr(0, c));
        if (w != "stats" && w != "drops" && w != "ports" && w != "neighbours" && w != "flow" && w != "flows" &&
            w != "flows-page" && w != "flows-sorted" && w != "metrics") {
          std::fprintf(stderr, "veil-bench: --api-mix: unknown request %s\n", w.c_str());
          return false;
        }
        a.api_mix.push_back(w);
        rest = c == std::string_view::npos ? std::string_view() : rest.substr(c + 1);
      }
      if (a.api_mix.empty()) return false;
    } else if (opt == "--rx-checksums" && (val == "auto" || val == "complete" || val == "partial")) {
      using RxChecksums = veil::config::PortConfig::RxChecksums;
      a.rx_checksums = val == "auto" ? RxChecksums::Auto
                       : val == "complete" ? RxChecksums::Complete : RxChecksums::Partial;
    } else if (opt == "--api-cpu" && parse_count(val, kMega, v) && v < 1024) {
      a.api_cpu = int(v);
    } else if (opt == "--reps" && parse_count(val, kMega, v) && v >= 1 && v <= 1000) {
      a.reps = unsigned(v);
    } else if (opt == "--sequence" && parse_count(val, kMega, v) && v >= 2 * kBurst) {
      a.sequence = size_t(v / (2 * kBurst) * (2 * kBurst));
    } else {
      std::fprintf(stderr, "veil-bench: bad option or value: %s %.*s\n", argv[i - 1],
                   int(val.size()), val.data());
      usage(stderr);
      return false;
    }
  }
  return true;
}

struct Totals {
  uint64_t drops = 0, relayed = 0, latched = 0, resolves = 0;
};
Totals totals(const Dataplane& dp) {
  uint64_t d[kDropCount], e[kEventCount];
  dp.counters(d, e);
  Totals t;
  for (unsigned i = 0; i < kDropCount; ++i) t.drops += d[i];
  t.relayed = e[unsigned(Event::relayed)];
  t.latched = e[unsigned(Event::latched)];
  t.resolves = e[unsigned(Event::resolve_requests)];
  return t;
}
// Checks a relayed packet against what pair k, direction `dir` should produce.
bool check_output(const rte_mbuf* m, const SavedHeader& in, uint32_t k, unsigned dir,
                  const PortInfo* ports, std::string& why) {
  Leg l = leg(k, dir);
  const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
  Parsed p;
  if (m->data_len != kFrameLen || m->pkt_len != kFrameLen) return why = "length changed", false;
  if (parse_frame(f, m->data_len, l.out_dst_mac, p) != kNoDrop || p.family != Family::V4 ||
      p.proto != kProtoUdp || p.l4_len != kUdpHdrLen + kUdpPayload)
    return why = "output does not parse as IPv4/UDP to the next hop's MAC", false;
  if (std::memcmp(f + 6, ports[l.out_port].mac.b, 6) != 0) return why = "wrong source MAC", false;
  uint16_t c = ipv4_header_checksum(f + p.l3);
  if (std::memcmp(&c, f + p.l3 + 10, 2) != 0) return why = "bad IPv4 header checksum", false;
  if (!l4_checksum_ok(f, p) || (f[p.l4 + 6] == 0 && f[p.l4 + 7] == 0))
    return why = "bad or missing UDP checksum", false;
  // The same two checks again with DPDK's own code, so a bug shared by Veil's writer and
  // its checker cannot pass unseen.
  const auto* iph = reinterpret_cast<const rte_ipv4_hdr*>(f + p.l3);
  uint32_t sum = uint32_t(rte_raw_cksum(f + p.l4, p.l4_len)) + rte_ipv4_phdr_cksum(iph, 0);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  if (rte_raw_cksum(iph, kIpv4HdrLen) != 0xffff || sum != 0xffff)
    return why = "checksums fail DPDK's rte_raw_cksum", false;
  if (!(udp_source(f, p) == l.out_src) || !(udp_destination(f, p) == l.out_dst))
    return why = "wrong addresses or ports", false;
  constexpr unsigned kPay = kEthHdrLen + kIpv4HdrLen + kUdpHdrLen;
  if (std::memcmp(f + kPay, in.b + kPay, kSavedBytes - kPay) != 0)
    return why = "RTP header changed", false;
  for (unsigned i = kSavedBytes; i < kFrameLen; ++i)
    if (f[i] != payload_byte(i)) return why = "payload changed", false;
  return true;
}

// One flow count: its own ring ports, Dataplane and flows.
class Bench {
 public:
  Bench(const Args& a, uint32_t flows, unsigned run) : args_(a), flows_(flows), run_(run) {}
  ~Bench();
  bool setup();
  bool warm_up_and_verify();
  void measure();
  // --api-load: alternating repetitions without and with management requests.
  bool measure_api_load();

  double api_idle_cpp = 0, api_loaded_cpp = 0, api_rate = 0, api_p50_ms = 0, api_max_ms = 0;
  double api_idle_spread = 0, api_loaded_spread = 0;  // (max - min) / median of each series
  uint64_t api_answered = 0, api_failed = 0;
  double veil_cpp = 0, veil_min = 0, base_cpp = 0, restore_cpp = 0;
  double install_s = 0;

 private:
  // Not inlined, so that profiles (perf, callgrind) show each loop by name.
  __attribute__((noinline)) uint64_t run_veil(uint64_t packets);
  __attribute__((noinline)) uint64_t run_baseline(uint64_t packets);
  __attribute__((noinline)) uint64_t run_restore_only(uint64_t packets);
  bool feed_and_check(const Sequence& s, const char* what, bool expect_latch);
  bool feed_and_check_(const Sequence& s, const char* what, bool expect_latch);

  const Args& args_;
  uint32_t flows_;
  unsigned run_;
  veil::config::Config cfg_;  // outlives dp_ (the management API keeps a reference)
  rte_ring* rings_[4] = {};
  std::unique_ptr<Dataplane> dp_;
  std::vector<rte_mbuf*> mbufs_;
  unsigned slots_ = 0;  // bursts' worth of mbufs
  Sequence seq_;
  size_t pos_ = 0;  // next burst of seq_
  unsigned slot_ = 0;
};

Bench::~Bench() {
  for (rte_mbuf* m : mbufs_) rte_pktmbuf_free(m);
  dp_.reset();
  for (rte_ring* r : rings_) rte_ring_free(r);
}

bool Bench::setup() {
  dp_ = create_ring_dataplane("veil-bench", "vb" + std::to_string(run_), flows_ + flows_ / 4 + 1024,
                              args_.mbufs + 4095, cfg_, rings_, args_.rx_checksums);
  if (!dp_) return false;
  const PortInfo* ports = dp_->ports().data();
  // The checksum path the header line announces is the one verified and measured.
  bool want_complete = args_.rx_checksums != veil::config::PortConfig::RxChecksums::Partial;
  if (ports[0].rx_csum_complete != want_complete || ports[1].rx_csum_complete != want_complete) {
    std::fprintf(stderr, "veil-bench: net_ring ports should have rx_csum_complete = %d\n",
                 int(want_complete));
    return false;
  }

  uint64_t t0 = rte_rdtsc();
  uint32_t pairs = flows_ / 2;
  for (uint32_t k = 0; k < pairs; ++k) {
    for (unsigned d = 0; d < 2; ++d) {
      Leg l = leg(k, d);
      FlowSpec s;
      s.id = 2 * k + 1 + d;
      s.ingress_port = l.in_port;
      s.local = l.dst;
      s.signaled_remote = l.src;
      s.latch = LatchMode::Latch;
      s.egress_port = l.out_port;
      s.egress_local = l.out_src;
      s.egress_remote = l.out_dst;
      s.peer_id = 2 * k + 2 - d;
      std::string why;
      if (int rc = dp_->flows().install(s, &why); rc != 0) {
        std::fprintf(stderr, "veil-bench: install flow %u: %s (%d)\n", s.id, why.c_str(), rc);
        return false;
      }
    }
    if ((k & 4095) == 0) dp_->poll_control();  // frees superseded actions (no reader online)
  }
  dp_->poll_control();
  install_s = double(rte_rdtsc() - t0) / double(rte_get_tsc_hz());

  std::vector<rte_mbuf*> bufs(args_.mbufs);
  if (rte_pktmbuf_alloc_bulk(dp_->pool(), bufs.data(), args_.mbufs) != 0) {
    std::fprintf(stderr, "veil-bench: cannot allocate %u mbufs\n", args_.mbufs);
    return false;
  }
  mbufs_ = std::move(bufs);
  slots_ = args_.mbufs / kBurst;
  for (rte_mbuf* m : mbufs_) {
    uint8_t* f = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, kFrameLen));
    for (unsigned i = 0; i < kFrameLen; ++i) f[i] = payload_byte(i);
  }
  seq_ = random_sequence(ports, pairs, args_.sequence / kBurst, 0x5eed0000 + flows_);
  return true;
}

// Feeds a whole sequence once, checking every packet and the counters. On failure the
// mbufs are forgotten (leaked): a dropped one is already back in the pool.
bool Bench::feed_and_check(const Sequence& s, const char* what, bool expect_latch) {
  if (!feed_and_check_(s, what, expect_latch)) {
    mbufs_.clear();
    return false;
  }
  return true;
}

bool Bench::feed_and_check_(const Sequence& s, const char* what, bool expect_latch) {
  WorkerCtx& w = dp_->worker(0);
  const PortInfo* ports = dp_->ports().data();
  Totals before = totals(*dp_);
  for (size_t b = 0; b < s.bursts(); ++b) {
    rte_mbuf** m = &mbufs_[(b % slots_) * kBurst];
    const SavedHeader* h = &s.hdr[b * kBurst];
    restore(m, h);
    unsigned d = s.dir[b];
    w.process_burst(uint8_t(d), m, kBurst, rte_rdtsc());
    TxBuf& out = w.nic_tx[1 - d];
    if (out.n != kBurst || w.nic_tx[d].n != 0 || w.exc_tx[0].n || w.exc_tx[1].n) {
      std::fprintf(stderr, "veil-bench: %s: burst %zu: %u of %u packets relayed\n", what, b,
                   unsigned(out.n), kBurst);
      print_drops(*dp_);
      return false;
    }
    // Every packet once; packets of one flow in their order (the worker may send those it
    // relays the slow way after the others: flows are independent of each other).
    unsigned last_of_pair[kBurst];
    for (unsigned o = 0; o < kBurst; ++o) {
      unsigned i = 0;
      while (i < kBurst && m[i] != out.m[o]) ++i;
      std::string why;
      if (i == kBurst) why = "not one of the burst's packets";
      for (unsigned q = 0; q < o && why.empty(); ++q)
        if (out.m[q] == out.m[o]) why = "sent twice";
        else if (s.pair[b * kBurst + last_of_pair[q]] == s.pair[b * kBurst + i] && last_of_pair[q] > i)
          why = "after a later packet of its flow";
      if (why.empty()) check_output(m[i], h[i], s.pair[b * kBurst + i], d, ports, why);
      if (!why.empty()) {
        std::fprintf(stderr, "veil-bench: %s: burst %zu packet %u: %s\n", what, b, i == kBurst ? o : i,
                     why.c_str());
        return false;
      }
      last_of_pair[o] = i;
    }
    out.n = 0;
  }
  Totals after = totals(*dp_);
  uint64_t n = s.bursts() * kBurst;
  if (after.relayed - before.relayed != n || after.drops != before.drops ||
      after.resolves != before.resolves || (!expect_latch && after.latched != before.latched)) {
    std::fprintf(stderr,
                 "veil-bench: %s: %llu relayed of %llu, %llu drops, %llu latched, %llu resolves\n",
                 what, (unsigned long long)(after.relayed - before.relayed), (unsigned long long)n,
                 (unsigned long long)(after.drops - before.drops),
                 (unsigned long long)(after.latched - before.latched),
                 (unsigned long long)(after.resolves - before.resolves));
    print_drops(*dp_);
    return false;
  }
  return true;
}

bool Bench::warm_up_and_verify() {
  const PortInfo* ports = dp_->ports().data();
  Sequence sweep = sweep_sequence(ports, flows_ / 2);
  // First sweep latches every flow (and re-versions its peer's destination); the second
  // finds every flow latched and resolves the next-hop caches; the random sequence is then
  // steady state: nothing may latch, resolve or drop.
  if (!feed_and_check(sweep, "latching sweep", true)) return false;
  if (totals(*dp_).latched != flows_) {
    std::fprintf(stderr, "veil-bench: %llu of %u flows latched\n",
                 (unsigned long long)totals(*dp_).latched, flows_);
    return false;
  }
  if (!feed_and_check(sweep, "second sweep", false)) return false;
  return feed_and_check(seq_, "random sequence", false);
}

uint64_t Bench::run_veil(uint64_t packets) {
  WorkerCtx& w = dp_->worker(0);
  uint64_t t0 = rte_rdtsc();
  for (uint64_t done = 0; done < packets; done += kBurst) {
    rte_mbuf** m = &mbufs_[slot_ * kBurst];
    slot_ = (slot_ + 1) % slots_;
    restore(m, &seq_.hdr[pos_ * kBurst]);
    w.process_burst(seq_.dir[pos_], m, kBurst, rte_rdtsc());
    // Take the packets back instead of transmitting them.
    w.nic_tx[0].n = 0;
    w.nic_tx[1].n = 0;
    if (++pos_ == seq_.bursts()) pos_ = 0;
  }
  return rte_rdtsc() - t0;
}

uint64_t Bench::run_baseline(uint64_t packets) {
  uint64_t t0 = rte_rdtsc();
  for (uint64_t done = 0; done < packets; done += kBurst) {
    rte_mbuf** m = &mbufs_[slot_ * kBurst];
    slot_ = (slot_ + 1) % slots_;
    restore(m, &seq_.hdr[pos_ * kBurst]);
    swap_headers(m, kBurst);
    if (++pos_ == seq_.bursts()) pos_ = 0;
  }
  return rte_rdtsc() - t0;
}

uint64_t Bench::run_restore_only(uint64_t packets) {
  uint64_t t0 = rte_rdtsc();
  for (uint64_t done = 0; done < packets; done += kBurst) {
    rte_mbuf** m = &mbufs_[slot_ * kBurst];
    slot_ = (slot_ + 1) % slots_;
    restore(m, &seq_.hdr[pos_ * kBurst]);
    asm volatile("" : : "r"(m) : "memory");  // keep the stores
    if (++pos_ == seq_.bursts()) pos_ = 0;
  }
  return rte_rdtsc() - t0;
}

void Bench::measure() {
  std::vector<double> veil, base, rest;
  double n = double(args_.packets);
  // Interleaved, so that a slow moment of the host hits all three alike.
  for (unsigned r = 0; r < args_.reps; ++r) {
    Totals before = totals(*dp_);
    veil.push_back(double(run_veil(args_.packets)) / n);
    Totals after = totals(*dp_);
    if (after.relayed - before.relayed != args_.packets || after.drops != before.drops) {
      std::fprintf(stderr, "veil-bench: repetition %u: %llu of %llu relayed, %llu drops\n", r,
                   (unsigned long long)(after.relayed - before.relayed),
                   (unsigned long long)args_.packets,
                   (unsigned long long)(after.drops - before.drops));
      print_drops(*dp_);
      std::exit(1);  // a dropped mbuf went back to the pool while we still use it
    }
    base.push_back(double(run_baseline(args_.packets)) / n);
    rest.push_back(double(run_restore_only(args_.packets)) / n);
  }
  veil_cpp = median(veil);
  base_cpp = median(base);
  restore_cpp = median(rest);
  auto [vmin, vmax] = std::minmax_element(veil.begin(), veil.end());
  veil_min = *vmin;
  std::fprintf(
      stderr, "  %u flows: veil cycles/packet over %u repetitions: min %.1f median %.1f max %.1f\n",
      flows_, args_.reps, *vmin, veil_cpp, *vmax);
}

int other_cpu(unsigned lcore) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) CPU_ZERO(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  for (long c = 0; c < n; ++c)
    if (unsigned(c) != lcore) return int(c);
  return -1;
}

void pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// One request over the Unix socket, as veilctl sends it; true on "VEIL/1 0 ...".
bool api_request(const std::string& path, const std::string& line) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.c_str(), path.size());
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
            write(fd, line.data(), line.size()) == ssize_t(line.size());
  std::string resp;
  char buf[65536];
  ssize_t r;
  while (ok && (r = read(fd, buf, sizeof buf)) > 0) resp.append(buf, size_t(r));
  close(fd);
  return ok && resp.rfind("VEIL/1 0 ", 0) == 0;
}

// GET /metrics on 127.0.0.1:port; true on a 200 answer read to the end.
bool http_get_metrics(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(uint16_t(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
            write(fd, req, sizeof req - 1) == ssize_t(sizeof req - 1);
  std::string resp;
  char buf[65536];
  ssize_t r;
  while (ok && (r = read(fd, buf, sizeof buf)) > 0) resp.append(buf, size_t(r));
  close(fd);
  return ok && resp.rfind("HTTP/1.1 200", 0) == 0;
}

bool Bench::measure_api_load() {
  using Clock = std::chrono::steady_clock;
  veil::ctl::Api api(*dp_, cfg_);
  veil::ctl::Server server(api);
  std::string path = "/tmp/veil-bench-" + std::to_string(getpid()) + "-" + std::to_string(run_) + ".sock";
  std::string err;
  if (!server.listen(path, err)) {
    std::fprintf(stderr, "veil-bench: %s\n", err.c_str());
    return false;
  }
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = server.listen_fd();
  epoll_ctl(epfd, EPOLL_CTL_ADD, server.listen_fd(), &ev);
  // /metrics in the same loop, as in veild (Server hands its descriptors over).
  veil::ctl::MetricsServer metrics(api);
  const int metrics_port = 20000 + int(getpid() % 20000) + int(run_);
  if (!metrics.listen("127.0.0.1:" + std::to_string(metrics_port), epfd, err)) {
    std::fprintf(stderr, "veil-bench: metrics: %s\n", err.c_str());
    return false;
  }
  server.attach(&metrics);
  int cpu = args_.api_cpu >= 0 ? args_.api_cpu : other_cpu(args_.lcore);
  std::atomic<bool> stop{false}, stop_client{false}, load{false};
  std::atomic<uint64_t> answered{0}, failed{0};
  std::vector<double> lat_ms;  // client thread only, read after join
  // The control thread: veild's loop, minus everything but the management socket.
  std::thread ctl([&] {
    pin(cpu);
    epoll_event evs[16];
    while (!stop.load()) {
      int n = epoll_wait(epfd, evs, 16, 1);
      for (int i = 0; i < n; ++i) {
        if (evs[i].data.fd == server.listen_fd()) server.on_listen_ready(epfd);
        else server.on_client_ready(epfd, evs[i].data.fd);
      }
    }
  });
  std::thread cli([&] {
    pin(cpu);
    const auto period = std::chrono::nanoseconds(1000000000 / args_.api_rps);
    std::mt19937 rng(7);
    unsigned k = 0;
    auto next = Clock::now();
    while (!stop_client.load()) {
      if (!load.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        next = Clock::now();
        continue;
      }
      std::this_thread::sleep_until(next);
      next += period;
      const std::string& kind = args_.api_mix[k++ % args_.api_mix.size()];
      std::string req = kind == "flow"    ? "flow id=" + std::to_string(1 + rng() % flows_) + " format=json"
                        : kind == "flows" ? std::string("flows limit=10 format=json")
                        : kind == "flows-page"
                            ? "flows limit=10 after=" + std::to_string(rng() % flows_) + " format=json"
                        : kind == "flows-sorted" ? std::string("flows sort=packets limit=10 format=json")
                                                 : kind + " format=json";
      if (kind == "metrics") {  // a Prometheus scrape, over HTTP as Prometheus does it
        auto t0 = Clock::now();
        bool ok = http_get_metrics(metrics_port);
        lat_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        (ok ? answered : failed).fetch_add(1);
        continue;
      }
      auto t0 = Clock::now();
      bool ok = api_request(path, "VEIL/1 " + req + "\n");
      lat_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      (ok ? answered : failed).fetch_add(1);
    }
  });
  std::vector<double> idle, loaded;
  double loaded_s = 0;
  uint64_t in_runs = 0;
  double n = double(args_.packets);
  for (unsigned r = 0; r < args_.reps; ++r) {
    load.store(false);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    idle.push_back(double(run_veil(args_.packets)) / n);
    load.store(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    uint64_t a0 = answered.load();
    auto t0 = Clock::now();
    loaded.push_back(double(run_veil(args_.packets)) / n);
    loaded_s += std::chrono::duration<double>(Clock::now() - t0).count();
    in_runs += answered.load() - a0;
  }
  stop_client.store(true);  // the client first: the server answers what it has sent
  cli.join();
  stop.store(true);
  ctl.join();
  close(epfd);
  api_idle_cpp = median(idle);
  api_loaded_cpp = median(loaded);
  auto spread = [](const std::vector<double>& v, double med) {
    auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    return (*hi - *lo) / med;
  };
  api_idle_spread = spread(idle, api_idle_cpp);
  api_loaded_spread = spread(loaded, api_loaded_cpp);
  api_rate = loaded_s > 0 ? double(in_runs) / loaded_s : 0;
  api_answered = answered.load();
  api_failed = failed.load();
  if (!lat_ms.empty()) {
    api_p50_ms = median(lat_ms);
    api_max_ms = *std::max_element(lat_ms.begin(), lat_ms.end());
  }
  std::fprintf(stderr, "  %u flows: API load on CPU %d: %llu requests answered (%llu failed)\n", flows_, cpu,
               (unsigned long long)api_answered, (unsigned long long)api_failed);
  return api_failed == 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!parse_args(argc, argv, args)) return 2;

  if (!eal_init("veil-bench", argv[0], args.lcore, args.hugepages, 2048)) return 1;

  uint64_t hz = rte_get_tsc_hz();
  std::printf(
      "veil-bench: media fast path, one lcore, burst %u, %u-byte frames (G.711 20 ms RTP)\n",
      kBurst, kFrameLen);
  print_run_info(args.cmdline, hz);
  std::printf("build:    %s, gcc %s, %s\n", rte_version(), __VERSION__,
#ifdef NDEBUG
              "NDEBUG"
#else
              "assertions on"
#endif
  );
  std::printf("load:     %s (load average; other work on the host skews the figures)\n",
              loadavg().c_str());
  std::printf("udp csum: %s\n",
              args.rx_checksums == veil::config::PortConfig::RxChecksums::Partial
                  ? "full software checksum over the payload (--rx-checksums partial)"
                  : "incremental, RFC 1624 (rx checksums complete on net_ring; "
                    "--rx-checksums partial: full)");
  std::printf(
      "per run:  %llu packets x %u repetitions, random sequence of %zu packets, %u mbufs\n\n",
      (unsigned long long)args.packets, args.reps, args.sequence, args.mbufs);
  std::fflush(stdout);

  struct Row {
    uint32_t flows;
    double veil, veil_min, base, restore;
  };
  struct ApiRow {
    uint32_t flows;
    double idle, loaded, rate, p50, max, idle_spread, loaded_spread;
  };
  std::vector<ApiRow> api_rows;
  std::vector<Row> rows;
  unsigned run = 0;
  for (uint32_t flows : args.flows) {
    Bench b(args, flows, run++);
    if (!b.setup()) return 1;
    std::fprintf(stderr, "  %u flows installed in %.2f s (%.2f us per flow)\n", flows, b.install_s,
                 flows ? b.install_s * 1e6 / flows : 0.0);
    if (!b.warm_up_and_verify()) return 1;
    std::fprintf(stderr,
                 "  %u flows: every packet relayed and verified (checksums, addresses, payload)\n",
                 flows);
    b.measure();
    rows.push_back({flows, b.veil_cpp, b.veil_min, b.base_cpp, b.restore_cpp});
    if (args.api_rps) {
      if (!b.measure_api_load()) return 1;
      api_rows.push_back({flows, b.api_idle_cpp, b.api_loaded_cpp, b.api_rate, b.api_p50_ms, b.api_max_ms,
                          b.api_idle_spread, b.api_loaded_spread});
    }
  }

  std::printf("%10s %8s %12s %9s %14s %7s %13s\n", "flows", "Mpps", "cycles/pkt", "(min)",
              "baseline c/p", "ratio", "restore c/p");
  for (const Row& r : rows)
    std::printf("%10u %8.2f %12.1f %9.1f %14.1f %7.2f %13.1f\n", r.flows, double(hz) / r.veil / 1e6,
                r.veil, r.veil_min, r.base, r.veil / r.base, r.restore);
  std::printf(
      "\nMedians over the repetitions ((min): the fastest one). Cycles are TSC cycles at %.3f "
      "GHz;\n"
      "Mpps = TSC Hz / cycles per packet. Both loops include restoring each packet's headers\n"
      "(restore c/p: that step alone). Load average at the end: %s\n",
      double(hz) / 1e9, loadavg().c_str());
  if (!api_rows.empty()) {
    std::string mix;
    for (const auto& w : args.api_mix) mix += (mix.empty() ? "" : ",") + w;
    std::printf("\nManagement API load: %u requests/s through controlplane/mgmt (Api + Server, Unix socket),\n"
                "server and client threads on CPU %d; requests in turn: %s;\n"
                "repetitions alternate without/with the load.\n",
                args.api_rps, args.api_cpu >= 0 ? args.api_cpu : other_cpu(args.lcore), mix.c_str());
    std::printf("%10s %10s %8s %12s %8s %7s %11s %8s %8s\n", "flows", "Mpps idle", "(spread)", "Mpps loaded",
                "(spread)", "ratio", "requests/s", "p50 ms", "max ms");
    for (const ApiRow& r : api_rows)
      std::printf("%10u %10.2f %7.0f%% %12.2f %7.0f%% %7.3f %11.1f %8.3f %8.3f\n", r.flows, double(hz) / r.idle / 1e6,
                  r.idle_spread * 100, double(hz) / r.loaded / 1e6, r.loaded_spread * 100, r.idle / r.loaded, r.rate,
                  r.p50, r.max);
    std::printf("ratio = Mpps loaded / Mpps idle (medians); spread = (slowest - fastest) / median of\n"
                "each series' cycles per packet: a ratio within the spread is not a measurable change;\n"
                "requests/s = answered during the loaded repetitions / their duration; latency as the\n"
                "client saw it (connect to last byte).\n");
  }
  rte_eal_cleanup();
  return 0;
}
