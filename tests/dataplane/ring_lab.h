// The harness the dataplane tests share: EAL once per binary (--no-huge), ports that are
// net_ring devices whose rings the test feeds and drains, a Dataplane on them, UDP frames
// built independently of Veil's writer, and time injected as the TSC value passed to
// WorkerCtx::pass(), so nothing sleeps on a clock.
#pragma once

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "controlplane/config.h"
#include "dataplane/dataplane.h"
#include "dataplane/packet.h"
#include "dataplane/worker.h"

namespace veil::dptest {

using namespace veil::dp;

// rte_eal_init for the binary, rte_eal_cleanup at the end: `prog` is argv[0], the file
// prefix is `prefix`-PID, `lcores` and `mem_mb` go to --lcores and -m.
class EalEnv : public ::testing::Environment {
 public:
  EalEnv(std::string prog, std::string prefix, std::string lcores, std::string mem_mb)
      : prog_(std::move(prog)),
        prefix_(std::move(prefix)),
        lcores_(std::move(lcores)),
        mem_mb_(std::move(mem_mb)) {}
  void SetUp() override {
    std::string prefix = prefix_ + "-" + std::to_string(getpid());
    std::vector<std::string> args = {
        prog_,      "--lcores",    lcores_,         "--no-huge", "-m",          mem_mb_,
        "--no-pci", "--no-shconf", "--file-prefix", prefix,      "--log-level", "lib.eal:warning"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    ASSERT_GE(rte_eal_init(int(argv.size()), argv.data()), 0);
  }
  void TearDown() override { rte_eal_cleanup(); }

 private:
  std::string prog_, prefix_, lcores_, mem_mb_;
};

inline IpAddr addr(const char* s) {
  return *IpAddr::parse(s);
}
inline Endpoint ep(const char* s) {
  return *Endpoint::parse(s);
}

inline const MacAddr kExtHostMac{{0x02, 0xee, 0, 0, 0, 0x10}};
inline const MacAddr kIntHostMac{{0x02, 0x11, 0, 0, 0, 0x10}};

struct RingPort {
  rte_ring* rx = nullptr;   // test -> port (queue 0)
  rte_ring* tx = nullptr;   // port -> test (queue 0)
  rte_ring* rx1 = nullptr;  // queue 1, when the port has two
  rte_ring* tx1 = nullptr;
  std::string name;  // the ethdev name, for PortConfig::device
};

inline std::atomic<int> g_ring_seq{0};

// A net_ring port with `queues` (1 or 2) queue pairs of `size`-slot rings.
inline RingPort make_ring_port(const std::string& tag, unsigned queues = 1, unsigned size = 1024) {
  RingPort p;
  p.name = "rp_" + tag + std::to_string(g_ring_seq.fetch_add(1));
  p.rx = rte_ring_create(("rx_" + p.name).c_str(), size, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
  p.tx = rte_ring_create(("tx_" + p.name).c_str(), size, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (queues > 1) {
    p.rx1 = rte_ring_create(("rx1_" + p.name).c_str(), size, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    p.tx1 = rte_ring_create(("tx1_" + p.name).c_str(), size, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
  }
  rte_ring* rxs[2] = {p.rx, p.rx1};
  rte_ring* txs[2] = {p.tx, p.tx1};
  EXPECT_GE(rte_eth_from_rings(p.name.c_str(), rxs, queues, txs, queues, 0), 0);
  p.name = "net_ring_" + p.name;  // the ethdev name rte_eth_from_rings gives the port
  return p;
}

// Frees whatever is still queued on the port's rings.
inline void drain(RingPort& p) {
  void* m;
  for (rte_ring* r : {p.tx, p.rx, p.tx1, p.rx1}) {
    if (!r) continue;
    while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
  }
}

inline config::PortConfig port_config(const char* name, config::Role role, const RingPort& p,
                                      std::vector<IpPrefix> addresses) {
  config::PortConfig c;
  c.name = name;
  c.role = role;
  c.device = p.name;
  c.addresses = std::move(addresses);
  return c;
}

// Two ring ports, ext (ext0, external) and intp (int0, internal), and the exception ports
// ext_exc / int_exc where a lab makes them; a lab fills cfg and calls create().
struct RingLab {
  RingPort ext, intp, ext_exc, int_exc;
  config::Config cfg;  // outlives dp
  std::unique_ptr<Dataplane> dp;
  MacAddr ext_mac, int_mac;
  uint64_t tsc = 1'000'000'000;

  RingLab() = default;
  RingLab(const RingLab&) = delete;
  RingLab& operator=(const RingLab&) = delete;
  ~RingLab() {
    dp.reset();
    for (RingPort* p : {&ext, &intp, &ext_exc, &int_exc}) {
      drain(*p);
      rte_ring_free(p->rx);
      rte_ring_free(p->tx);
      rte_ring_free(p->rx1);
      rte_ring_free(p->tx1);
    }
  }
  void create(const Options& opt) {
    std::string err;
    dp = Dataplane::create(cfg, opt, err);
    EXPECT_TRUE(dp) << err;
    if (!dp) return;
    ext_mac = dp->ports()[0].mac;
    int_mac = dp->ports()[1].mac;
  }
  // `ol_flags`: what the NIC would have said of the frame (RTE_MBUF_F_RX_L4_CKSUM_*).
  void inject(RingPort& p, const std::vector<uint8_t>& frame, unsigned queue = 0, uint64_t ol_flags = 0) {
    rte_mbuf* m = rte_pktmbuf_alloc(dp->pool());
    ASSERT_NE(m, nullptr);
    std::memcpy(rte_pktmbuf_append(m, uint16_t(frame.size())), frame.data(), frame.size());
    m->ol_flags = ol_flags;
    ASSERT_EQ(rte_ring_enqueue(queue ? p.rx1 : p.rx, m), 0);
  }
  std::vector<std::vector<uint8_t>> take(RingPort& p, unsigned queue = 0) {
    std::vector<std::vector<uint8_t>> out;
    void* v;
    while (rte_ring_dequeue(queue ? p.tx1 : p.tx, &v) == 0) {
      auto* m = static_cast<rte_mbuf*>(v);
      const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
      out.emplace_back(d, d + m->data_len);
      rte_pktmbuf_free(m);
    }
    return out;
  }
  void pass(uint64_t advance = 1000) {
    tsc += advance;
    dp->worker(0).pass(tsc);
  }
  uint64_t flow_drop(uint32_t id, FlowDrop d) {
    return dp->flows().get(id)->counters.drops[unsigned(d)];
  }
};

inline void put16(std::vector<uint8_t>& f, size_t o, uint16_t v) {
  f[o] = uint8_t(v >> 8);
  f[o + 1] = uint8_t(v);
}

// Ethernet + IPv4/IPv6 + UDP, DSCP EF, TTL/hop limit `ttl`, with a full checksum (or only the
// pseudo-header sum, as a Linux veth hands over packets with checksum offload).
inline std::vector<uint8_t> udp_frame(const MacAddr& dst_mac, const MacAddr& src_mac,
                                      const Endpoint& src, const Endpoint& dst,
                                      const std::vector<uint8_t>& payload, uint8_t ttl = 57,
                                      bool partial_csum = false, uint16_t ip_id = 0x1234) {
  bool v4 = src.addr.is_v4();
  size_t l3 = v4 ? 20 : 40;
  std::vector<uint8_t> f(14 + l3 + 8 + payload.size());
  std::memcpy(&f[0], dst_mac.b, 6);
  std::memcpy(&f[6], src_mac.b, 6);
  put16(f, 12, v4 ? 0x0800 : 0x86dd);
  uint8_t* ipp = &f[14];
  uint16_t ulen = uint16_t(8 + payload.size());
  if (v4) {
    ipp[0] = 0x45;
    ipp[1] = 0xb8;  // DSCP EF
    put16(f, 16, uint16_t(20 + ulen));
    put16(f, 18, ip_id);
    put16(f, 20, 0x4000);
    ipp[8] = ttl;
    ipp[9] = 17;
    std::memcpy(ipp + 12, src.addr.bytes.data(), 4);
    std::memcpy(ipp + 16, dst.addr.bytes.data(), 4);
    uint16_t c = ipv4_header_checksum(ipp);
    std::memcpy(ipp + 10, &c, 2);
  } else {
    ipp[0] = 0x6b;  // traffic class 0xb8
    ipp[1] = 0x80;
    put16(f, 18, ulen);
    ipp[6] = 17;
    ipp[7] = ttl;
    std::memcpy(ipp + 8, src.addr.bytes.data(), 16);
    std::memcpy(ipp + 24, dst.addr.bytes.data(), 16);
  }
  size_t u = 14 + l3;
  put16(f, u, src.port);
  put16(f, u + 2, dst.port);
  put16(f, u + 4, ulen);
  std::memcpy(&f[u + 8], payload.data(), payload.size());
  Family fam = v4 ? Family::V4 : Family::V6;
  uint16_t c = partial_csum ? l4_pseudo_checksum(fam, ipp, ulen, 17)
                            : l4_checksum(fam, ipp, &f[u], ulen, 17);
  std::memcpy(&f[u + 6], &c, 2);
  return f;
}

// An RTP packet (UDP payload) of `len` bytes: first byte `first` (0x80: version 2), payload
// type `pt`, sequence number `seq`, SSRC 0xcafebabe, the rest a pattern of seq.
inline std::vector<uint8_t> rtp_payload(uint16_t seq, size_t len = 172, uint8_t first = 0x80,
                                        uint8_t pt = 0) {
  std::vector<uint8_t> p(len);
  p[0] = first;
  p[1] = pt;
  p[2] = uint8_t(seq >> 8);
  p[3] = uint8_t(seq);
  p[8] = 0xca;
  p[9] = 0xfe;
  p[10] = 0xba;
  p[11] = 0xbe;
  for (size_t i = 12; i < len; ++i) p[i] = uint8_t(i * 7 + seq);
  return p;
}

inline Parsed parse(const std::vector<uint8_t>& f) {
  Parsed p;
  MacAddr any;
  std::memcpy(any.b, f.data(), 6);
  EXPECT_EQ(parse_frame(f.data(), uint32_t(f.size()), any, p), kNoDrop);
  return p;
}

// For the tests that run workers on their own lcores: collects until `received` reaches
// `expected` (at most about two seconds), stops the workers and collects what is left.
template <class Collect>
void stop_after_collecting(Dataplane& dp, Collect& collect, const int& received, int expected) {
  for (int spin = 0; spin < 2000 && received < expected; ++spin) {
    collect();
    usleep(1000);
  }
  dp.stop();
  collect();
}

// Every packet of a run arrived exactly once.
inline void expect_each_seen_once(const std::vector<int>& seen) {
  for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], 1) << "packet " << i;
}

inline void expect_no_drops(const Dataplane& dp) {
  uint64_t d[kDropCount], e[kEventCount];
  dp.counters(d, e);
  for (unsigned k = 0; k < kDropCount; ++k) EXPECT_EQ(d[k], 0u) << kDropNames[k];
}

}  // namespace veil::dptest
