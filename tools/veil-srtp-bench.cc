// veil-srtp-bench: SRTP<->RTP transcryption through the real worker fast path on ONE lcore,
// against a same-run baseline of libsrtp2 doing the same protect/unprotect work alone.
//
//   veil-srtp-bench [--flows 1000] [--packets 1M] [--reps 7] [--mbufs 1024] [--lcore 0]
//                   [--profiles AES_CM_128_HMAC_SHA1_80,AEAD_AES_128_GCM] [--stock-crypto]
//
// Like veil-bench (docs/performance.md), no NIC: WorkerCtx::process_burst() is called on
// pre-built mbufs and the relayed packets are taken back from its tx buffers. The flows come
// in pairs, as a call between a browser (SRTP, external side) and a PBX (RTP, internal side):
//   flow 2k+1: external -> internal, SRTP in, RTP out  (unprotect)
//   flow 2k+2: internal -> external, RTP in, SRTP out  (protect)
// Bursts of 32 alternate between the two sides; every packet goes to a pair drawn uniformly at
// random. G.711 20 ms: a 172-byte RTP packet (12-byte header + 160 bytes), 182 bytes as SRTP
// with an 80-bit tag (188 with GCM's 128-bit tag).
//
// SRTP packets cannot be replayed (libsrtp2's replay check would drop them), so the whole
// sequence is pre-built once with increasing sequence numbers per flow (whole frames, one
// 256-byte slot each), and before every repetition each flow's SRTP sessions are re-created
// (a flow-update to another key and back: new session, rollover counter 0, empty replay
// window) outside the timed loop. The sessions the baseline uses are re-created alike.
//
// Timed loops, each over the whole sequence, interleaved per repetition:
//   veil:     restore the burst's frames, then process_burst() (parse, lookup, latch check,
//             unprotect or protect, header rewrite with software checksums, counters, tx buffer);
//   baseline: restore the burst's frames, then srtp_unprotect / srtp_protect on each packet's
//             UDP payload with per-flow libsrtp2 sessions: the crypto alone;
//   restore:  the restore step alone (harness cost, in both loops above).
// Pipeline overhead = (veil - baseline) / (baseline - restore): what Veil adds per packet, as
// a share of what the crypto itself costs. Each loop is timed twice: by the TSC, and by the
// thread's CPU clock (second table, in TSC cycles), which leaves out time spent preempted.
//
// Before timing, one pass is checked packet by packet: every SRTP packet comes out as the
// original RTP packet (byte for byte), every RTP packet comes out as SRTP that an independent
// libsrtp2 receiver unprotects to the original, addresses/ports/checksums right; and every
// repetition checks that every packet was relayed and none dropped.

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_version.h>
#include <srtp2/srtp.h>
#include <unistd.h>

#include <algorithm>
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
#include "dataplane/dataplane.h"
#include "dataplane/packet.h"
#include "dataplane/srtp_lib.h"
#include "dataplane/worker.h"
#include "tools/bench_common.h"

namespace {

using veil::Endpoint;
using veil::Family;
using veil::IpAddr;
using veil::IpPrefix;
using namespace veil::dp;
using namespace veil::bench;

constexpr uint16_t kRtpLen = 172;
constexpr uint16_t kHdrs = kEthHdrLen + kIpv4HdrLen + kUdpHdrLen;  // 42
constexpr unsigned kSlot = 256;                                    // bytes per stored frame

// The RTP packet of pair k, direction dir, sequence number seq.
void build_rtp(uint8_t* rtp, uint32_t k, unsigned dir, uint16_t seq) {
  rtp[0] = 0x80;
  rtp[1] = 0;
  wr16(rtp + 2, seq);
  wr32(rtp + 4, uint32_t(seq) * 160u);
  wr32(rtp + 8, 2 * k + 1 + dir);  // SSRC: the flow id
  for (unsigned i = 12; i < kRtpLen; ++i) rtp[i] = uint8_t(0xd5 ^ i ^ seq);
}

SrtpKeying keying(SrtpProfile p, uint32_t k, unsigned dir) {
  SrtpKeying kk;
  kk.profile = p;
  kk.keyed = true;
  std::mt19937 rng(k * 2 + dir + 1);
  for (unsigned i = 0; i < srtp_master_len(p); ++i) kk.master[i] = uint8_t(rng());
  return kk;
}
SrtpKeying other_keying(SrtpProfile p) {
  SrtpKeying kk;
  kk.profile = p;
  kk.keyed = true;
  std::memset(kk.master, 0x5a, sizeof kk.master);
  return kk;
}

srtp_profile_t lib_profile(SrtpProfile p) {
  switch (p) {
    case SrtpProfile::AeadAes128Gcm: return srtp_profile_aead_aes_128_gcm;
    case SrtpProfile::AesCm128HmacSha1_32: return srtp_profile_aes128_cm_sha1_32;
    default: return srtp_profile_aes128_cm_sha1_80;
  }
}

// A plain libsrtp2 session (the far ends, the baseline, the verifier).
srtp_t lib_session(const SrtpKeying& kk, bool outbound) {
  srtp_policy_t policy;
  std::memset(&policy, 0, sizeof policy);
  srtp_crypto_policy_set_from_profile_for_rtp(&policy.rtp, lib_profile(kk.profile));
  srtp_crypto_policy_set_from_profile_for_rtcp(&policy.rtcp, lib_profile(kk.profile));
  policy.ssrc.type = outbound ? ssrc_any_outbound : ssrc_any_inbound;
  uint8_t key[kSrtpMaxMaster];
  std::memcpy(key, kk.master, sizeof key);
  policy.key = key;
  policy.window_size = kSrtpReplayWindow;  // as Veil's sessions
  srtp_t s = nullptr;
  if (srtp_create(&s, &policy) != srtp_err_status_ok) {
    std::fprintf(stderr, "veil-srtp-bench: srtp_create failed\n");
    std::exit(1);
  }
  return s;
}

struct Args {
  uint32_t flows = 1000;
  uint64_t packets = 1u << 20;  // the sequence, one repetition
  unsigned reps = 7;
  unsigned mbufs = 1024;
  unsigned lcore = 0;
  std::vector<SrtpProfile> profiles{SrtpProfile::AesCm128HmacSha1_80, SrtpProfile::AeadAes128Gcm};
  bool stock_crypto = false;  // libsrtp2's own primitives (srtp_use_stock_crypto)
  std::string cmdline;
};

// The M suffix of counts (--packets 1M): 2^20 here.
constexpr uint64_t kMega = 1u << 20;

void usage(FILE* to) {
  std::fprintf(to,
               "usage: veil-srtp-bench [--flows N] [--packets N] [--reps N] [--mbufs N] [--lcore N]\n"
               "                       [--profiles NAME[,NAME...]]\n"
               "  --flows     flows (pairs x 2), default 1000\n"
               "  --packets   packets per repetition (the pre-built sequence), default 1M (= 1048576)\n"
               "  --reps      repetitions, the median is reported, default 7\n"
               "  --mbufs     packet buffers cycled through, default 1024\n"
               "  --lcore     CPU to run on, default 0\n"
               "  --profiles  AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32, AEAD_AES_128_GCM;\n"
               "              default AES_CM_128_HMAC_SHA1_80,AEAD_AES_128_GCM\n"
               "  --stock-crypto  libsrtp2's own HMAC-SHA1, AES-ICM and AES-GCM instead of Veil's replacements\n"
               "              (dataplane/srtp_hmac.h, srtp_icm.h, srtp_gcm.h), in both the pipeline and the baseline\n");
}

bool parse_args(int argc, char** argv, Args& a) {
  for (int i = 0; i < argc; ++i) a.cmdline += (i ? " " : "") + std::string(argv[i]);
  for (int i = 1; i < argc; ++i) {
    std::string_view opt = argv[i];
    if (opt == "-h" || opt == "--help") {
      usage(stdout);
      std::exit(0);
    }
    if (opt == "--stock-crypto") {
      a.stock_crypto = true;
      continue;
    }
    if (i + 1 >= argc) return usage(stderr), false;
    std::string_view val = argv[++i];
    uint64_t v = 0;
    if (opt == "--flows" && parse_count(val, kMega, v) && v >= 2 && v <= 100000) {
      a.flows = uint32_t(v + (v & 1));
    } else if (opt == "--packets" && parse_count(val, kMega, v) && v >= 2 * kBurst &&
               v <= (8u << 20)) {
      a.packets = v / (2 * kBurst) * (2 * kBurst);
    } else if (opt == "--reps" && parse_count(val, kMega, v) && v >= 1 && v <= 100) {
      a.reps = unsigned(v);
    } else if (opt == "--mbufs" && parse_count(val, kMega, v) && v >= kBurst && v <= 65536) {
      a.mbufs = unsigned(v / kBurst * kBurst);
    } else if (opt == "--lcore" && parse_count(val, kMega, v) && v < 1024) {
      a.lcore = unsigned(v);
    } else if (opt == "--profiles") {
      a.profiles.clear();
      while (!val.empty()) {
        size_t comma = val.find(',');
        SrtpProfile p;
        if (!srtp_profile_parse(val.substr(0, comma), p) || p == SrtpProfile::None) {
          std::fprintf(stderr, "veil-srtp-bench: unknown profile %.*s\n", int(val.substr(0, comma).size()),
                       val.data());
          return false;
        }
        a.profiles.push_back(p);
        val = comma == std::string_view::npos ? std::string_view() : val.substr(comma + 1);
      }
    } else {
      std::fprintf(stderr, "veil-srtp-bench: bad option or value: %s %.*s\n", argv[i - 1], int(val.size()),
                   val.data());
      usage(stderr);
      return false;
    }
  }
  return true;
}

// Thread CPU time in ns: unlike the TSC it stops while the thread is preempted, which on a
// shared host is most of the spread between repetitions.
uint64_t thread_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

void totals(const Dataplane& dp, uint64_t& relayed, uint64_t& drops) {
  uint64_t d[kDropCount], e[kEventCount];
  dp.counters(d, e);
  drops = 0;
  for (unsigned i = 0; i < kDropCount; ++i) drops += d[i];
  relayed = e[unsigned(Event::relayed)];
}
class Bench {
 public:
  Bench(const Args& a, SrtpProfile prof, unsigned run) : args_(a), prof_(prof), run_(run) {}
  ~Bench();
  bool setup();
  bool verify();
  void measure();
  double veil_cpp = 0, veil_min = 0, base_cpp = 0, base_min = 0, restore_cpp = 0;
  // The same from thread CPU time, in TSC cycles (ns x TSC GHz): time on the CPU only.
  double cpu_veil = 0, cpu_veil_min = 0, cpu_base = 0, cpu_base_min = 0, cpu_restore = 0;

 private:
  __attribute__((noinline)) uint64_t run_veil();
  __attribute__((noinline)) uint64_t run_baseline();
  __attribute__((noinline)) uint64_t run_restore_only();
  void restore(rte_mbuf** m, size_t burst);
  void reset_veil_sessions();
  void reset_baseline_sessions();
  bool check(const rte_mbuf* m, size_t pkt, std::string& why);

  uint64_t cpu_ns_ = 0;  // thread CPU time of the last run_* call
  const Args& args_;
  SrtpProfile prof_;
  unsigned run_;
  uint32_t pairs_ = 0;
  veil::config::Config cfg_;  // outlives dp_
  rte_ring* rings_[4] = {};
  std::unique_ptr<Dataplane> dp_;
  std::vector<rte_mbuf*> mbufs_;
  unsigned slots_ = 0, slot_ = 0;
  // The sequence: whole frames, kSlot bytes each, and per packet its pair and length.
  std::vector<uint8_t> frames_;
  std::vector<uint16_t> len_;
  std::vector<uint32_t> pair_;
  std::vector<uint16_t> seqno_;
  std::vector<FlowSpec> specs_;
  std::vector<srtp_t> base_in_, base_out_;  // baseline sessions per pair
  std::vector<srtp_t> verify_rx_;           // the browsers' receivers, for verification
};

Bench::~Bench() {
  for (rte_mbuf* m : mbufs_) rte_pktmbuf_free(m);
  for (srtp_t s : base_in_) srtp_dealloc(s);
  for (srtp_t s : base_out_) srtp_dealloc(s);
  for (srtp_t s : verify_rx_)
    if (s) srtp_dealloc(s);
  dp_.reset();
  for (rte_ring* r : rings_) rte_ring_free(r);
}

bool Bench::setup() {
  dp_ = create_ring_dataplane("veil-srtp-bench", "vsb" + std::to_string(run_),
                              args_.flows + args_.flows / 4 + 1024, args_.mbufs + 4095, cfg_,
                              rings_);
  if (!dp_) return false;

  pairs_ = args_.flows / 2;
  for (uint32_t k = 0; k < pairs_; ++k) {
    for (unsigned d = 0; d < 2; ++d) {
      Leg l = leg(k, d);
      FlowSpec s;
      s.id = 2 * k + 1 + d;
      s.ingress_port = l.in_port;
      s.local = l.dst;
      s.signaled_remote = l.src;
      s.egress_port = l.out_port;
      s.egress_local = l.out_src;
      s.egress_remote = l.out_dst;
      s.peer_id = 2 * k + 2 - d;
      if (d == 0) s.srtp_in = keying(prof_, k, 0);   // the browser's key: unprotect
      else s.srtp_out = keying(prof_, k, 1);          // Veil's key toward the browser: protect
      std::string why;
      if (int rc = dp_->flows().install(s, &why); rc != 0) {
        std::fprintf(stderr, "veil-srtp-bench: install flow %u: %s (%d)\n", s.id, why.c_str(), rc);
        return false;
      }
      specs_.push_back(s);
    }
  }
  dp_->poll_control();

  // The sequence. The browser side's packets are protected here by per-pair sessions of the
  // "browser" (its own libsrtp2 session, not Veil's code).
  std::vector<srtp_t> browser(pairs_);
  for (uint32_t k = 0; k < pairs_; ++k) browser[k] = lib_session(keying(prof_, k, 0), true);
  std::vector<uint16_t> next_seq(2 * pairs_, 0);
  std::mt19937_64 rng(0x5eed + args_.flows);
  std::uniform_int_distribution<uint32_t> pick(0, pairs_ - 1);
  size_t n = args_.packets;
  frames_.assign(n * kSlot, 0);
  len_.resize(n);
  pair_.resize(n);
  seqno_.resize(n);
  const PortInfo* ports = dp_->ports().data();
  for (size_t i = 0; i < n; ++i) {
    unsigned d = unsigned((i / kBurst) & 1);
    uint32_t k = pick(rng);
    uint16_t seq = next_seq[2 * k + d]++;
    uint8_t* f = &frames_[i * kSlot];
    build_rtp(f + kHdrs, k, d, seq);
    int plen = kRtpLen;
    if (d == 0 && srtp_protect(browser[k], f + kHdrs, &plen) != srtp_err_status_ok) {
      std::fprintf(stderr, "veil-srtp-bench: building the sequence: srtp_protect failed\n");
      return false;
    }
    Leg l = leg(k, d);
    write_udp_headers(f, ports[l.in_port].mac, l, uint16_t(plen), uint16_t(i));
    len_[i] = uint16_t(kHdrs + plen);
    pair_[i] = k;
    seqno_[i] = seq;
  }
  for (srtp_t s : browser) srtp_dealloc(s);

  mbufs_.resize(args_.mbufs);
  if (rte_pktmbuf_alloc_bulk(dp_->pool(), mbufs_.data(), args_.mbufs) != 0) {
    mbufs_.clear();
    std::fprintf(stderr, "veil-srtp-bench: cannot allocate %u mbufs\n", args_.mbufs);
    return false;
  }
  slots_ = args_.mbufs / kBurst;
  base_in_.assign(pairs_, nullptr);
  base_out_.assign(pairs_, nullptr);
  return true;
}

// Fresh sessions for every flow (a flow-update to another key and back), so the pre-built
// SRTP packets are new to them again. Outside any timed loop.
void Bench::reset_veil_sessions() {
  for (FlowSpec s : specs_) {
    FlowSpec tmp = s;
    (s.srtp_in.enabled() ? tmp.srtp_in : tmp.srtp_out) = other_keying(prof_);
    std::string why;
    if (dp_->flows().update(tmp, &why) != 0 || dp_->flows().update(s, &why) != 0) {
      std::fprintf(stderr, "veil-srtp-bench: re-keying flow %u: %s\n", s.id, why.c_str());
      std::exit(1);
    }
  }
  dp_->rcu().drain();  // frees the superseded sessions (no reader online)
}

void Bench::reset_baseline_sessions() {
  for (uint32_t k = 0; k < pairs_; ++k) {
    if (base_in_[k]) srtp_dealloc(base_in_[k]);
    if (base_out_[k]) srtp_dealloc(base_out_[k]);
    base_in_[k] = lib_session(keying(prof_, k, 0), false);
    base_out_[k] = lib_session(keying(prof_, k, 1), true);
  }
}

inline void Bench::restore(rte_mbuf** m, size_t burst) {
  for (unsigned i = 0; i < kBurst; ++i) {
    size_t p = burst * kBurst + i;
    std::memcpy(static_cast<uint8_t*>(m[i]->buf_addr) + RTE_PKTMBUF_HEADROOM, &frames_[p * kSlot], len_[p]);
    m[i]->data_off = RTE_PKTMBUF_HEADROOM;
    m[i]->data_len = len_[p];
    m[i]->pkt_len = len_[p];
  }
}

bool Bench::check(const rte_mbuf* m, size_t pkt, std::string& why) {
  size_t burst = pkt / kBurst;
  unsigned d = unsigned(burst & 1);
  uint32_t k = pair_[pkt];
  Leg l = leg(k, d);
  const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
  Parsed p;
  if (parse_frame(f, m->data_len, l.out_dst_mac, p) != kNoDrop || p.family != Family::V4 || p.proto != kProtoUdp)
    return why = "output does not parse as IPv4/UDP to the next hop", false;
  if (std::memcmp(f + 6, dp_->ports()[l.out_port].mac.b, 6) != 0) return why = "wrong source MAC", false;
  uint16_t c = ipv4_header_checksum(f + p.l3);
  if (std::memcmp(&c, f + p.l3 + 10, 2) != 0 || !l4_checksum_ok(f, p)) return why = "bad checksum", false;
  if (!(udp_source(f, p) == l.out_src) || !(udp_destination(f, p) == l.out_dst)) return why = "wrong endpoints", false;
  uint8_t want[kRtpLen];
  build_rtp(want, k, d, seqno_[pkt]);
  std::vector<uint8_t> got(f + p.l4 + kUdpHdrLen, f + p.l4 + p.l4_len);
  if (d == 1) {  // SRTP toward the browser: its own receiver must recover the PBX's packet
    std::vector<srtp_t>& rx = verify_rx_;
    if (rx.empty()) rx.assign(pairs_, nullptr);
    if (!rx[k]) rx[k] = lib_session(keying(prof_, k, 1), false);
    int len = int(got.size());
    if (srtp_unprotect(rx[k], got.data(), &len) != srtp_err_status_ok) return why = "receiver cannot unprotect", false;
    got.resize(size_t(len));
  }
  if (got.size() != kRtpLen || std::memcmp(got.data(), want, kRtpLen) != 0)
    return why = "payload differs from the original RTP packet", false;
  return true;
}

bool Bench::verify() {
  reset_veil_sessions();
  WorkerCtx& w = dp_->worker(0);
  uint64_t r0, d0, r1, d1;
  totals(*dp_, r0, d0);
  size_t bursts = args_.packets / kBurst;
  for (size_t b = 0; b < bursts; ++b) {
    rte_mbuf** m = &mbufs_[(b % slots_) * kBurst];
    restore(m, b);
    unsigned d = unsigned(b & 1);
    w.process_burst(uint8_t(d), m, kBurst, rte_rdtsc());
    TxBuf& out = w.nic_tx[1 - d];
    if (out.n != kBurst || w.nic_tx[d].n != 0) {
      std::fprintf(stderr, "veil-srtp-bench: verification: burst %zu: %u of %u relayed\n", b, unsigned(out.n), kBurst);
      print_drops(*dp_);
      mbufs_.clear();
      return false;
    }
    for (unsigned i = 0; i < kBurst; ++i) {
      std::string why;
      if (out.m[i] != m[i] || !check(m[i], b * kBurst + i, why)) {
        std::fprintf(stderr, "veil-srtp-bench: verification: burst %zu packet %u: %s\n", b, i,
                     out.m[i] != m[i] ? "out of order" : why.c_str());
        return false;
      }
    }
    out.n = 0;
  }
  totals(*dp_, r1, d1);
  if (r1 - r0 != args_.packets || d1 != d0) {
    std::fprintf(stderr, "veil-srtp-bench: verification: %llu relayed of %llu, %llu drops\n",
                 (unsigned long long)(r1 - r0), (unsigned long long)args_.packets, (unsigned long long)(d1 - d0));
    return false;
  }
  // The baseline's crypto must succeed on every packet too.
  reset_baseline_sessions();
  for (size_t i = 0; i < args_.packets; ++i) {
    std::vector<uint8_t> f(&frames_[i * kSlot], &frames_[i * kSlot] + kSlot);
    int len = len_[i] - kHdrs;
    unsigned d = unsigned((i / kBurst) & 1);
    srtp_err_status_t st = d == 0 ? srtp_unprotect(base_in_[pair_[i]], f.data() + kHdrs, &len)
                                  : srtp_protect(base_out_[pair_[i]], f.data() + kHdrs, &len);
    if (st != srtp_err_status_ok) {
      std::fprintf(stderr, "veil-srtp-bench: baseline: packet %zu: libsrtp2 status %d\n", i, int(st));
      return false;
    }
  }
  return true;
}

uint64_t Bench::run_veil() {
  WorkerCtx& w = dp_->worker(0);
  size_t bursts = args_.packets / kBurst;
  uint64_t c0 = thread_ns(), t0 = rte_rdtsc();
  for (size_t b = 0; b < bursts; ++b) {
    rte_mbuf** m = &mbufs_[slot_ * kBurst];
    slot_ = (slot_ + 1) % slots_;
    restore(m, b);
    w.process_burst(uint8_t(b & 1), m, kBurst, rte_rdtsc());
    w.nic_tx[0].n = 0;
    w.nic_tx[1].n = 0;
  }
  uint64_t t = rte_rdtsc() - t0;
  cpu_ns_ = thread_ns() - c0;
  return t;
}

uint64_t Bench::run_baseline() {
  size_t bursts = args_.packets / kBurst;
  unsigned bad = 0;
  uint64_t c0 = thread_ns(), t0 = rte_rdtsc();
  for (size_t b = 0; b < bursts; ++b) {
    rte_mbuf** m = &mbufs_[slot_ * kBurst];
    slot_ = (slot_ + 1) % slots_;
    restore(m, b);
    for (unsigned i = 0; i < kBurst; ++i) {
      uint8_t* payload = rte_pktmbuf_mtod(m[i], uint8_t*) + kHdrs;
      int len = m[i]->data_len - kHdrs;
      uint32_t k = pair_[b * kBurst + i];
      srtp_err_status_t st = b & 1 ? srtp_protect(base_out_[k], payload, &len) : srtp_unprotect(base_in_[k], payload, &len);
      bad += st != srtp_err_status_ok;
    }
  }
  uint64_t t = rte_rdtsc() - t0;
  cpu_ns_ = thread_ns() - c0;
  if (bad) {
    std::fprintf(stderr, "veil-srtp-bench: baseline: %u packets failed\n", bad);
    std::exit(1);
  }
  return t;
}

uint64_t Bench::run_restore_only() {
  size_t bursts = args_.packets / kBurst;
  uint64_t c0 = thread_ns(), t0 = rte_rdtsc();
  for (size_t b = 0; b < bursts; ++b) {
    rte_mbuf** m = &mbufs_[slot_ * kBurst];
    slot_ = (slot_ + 1) % slots_;
    restore(m, b);
    asm volatile("" : : "r"(m) : "memory");
  }
  uint64_t t = rte_rdtsc() - t0;
  cpu_ns_ = thread_ns() - c0;
  return t;
}

void Bench::measure() {
  std::vector<double> veil, base, rest, cveil, cbase, crest;
  double n = double(args_.packets);
  double ghz = double(rte_get_tsc_hz()) / 1e9;
  for (unsigned r = 0; r < args_.reps; ++r) {
    reset_veil_sessions();
    uint64_t r0, d0, r1, d1;
    totals(*dp_, r0, d0);
    veil.push_back(double(run_veil()) / n);
    cveil.push_back(double(cpu_ns_) * ghz / n);
    totals(*dp_, r1, d1);
    if (r1 - r0 != args_.packets || d1 != d0) {
      std::fprintf(stderr, "veil-srtp-bench: repetition %u: %llu of %llu relayed, %llu drops\n", r,
                   (unsigned long long)(r1 - r0), (unsigned long long)args_.packets, (unsigned long long)(d1 - d0));
      print_drops(*dp_);
      std::exit(1);
    }
    reset_baseline_sessions();
    base.push_back(double(run_baseline()) / n);
    cbase.push_back(double(cpu_ns_) * ghz / n);
    rest.push_back(double(run_restore_only()) / n);
    crest.push_back(double(cpu_ns_) * ghz / n);
  }
  cpu_veil = median(cveil);
  cpu_base = median(cbase);
  cpu_restore = median(crest);
  cpu_veil_min = *std::min_element(cveil.begin(), cveil.end());
  cpu_base_min = *std::min_element(cbase.begin(), cbase.end());
  veil_cpp = median(veil);
  base_cpp = median(base);
  restore_cpp = median(rest);
  veil_min = *std::min_element(veil.begin(), veil.end());
  base_min = *std::min_element(base.begin(), base.end());
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!parse_args(argc, argv, args)) return 2;
  if (!eal_init("veil-srtp-bench", argv[0], args.lcore, false, 1024)) return 1;
  SrtpInfo si = srtp_start();
  srtp_use_stock_crypto(args.stock_crypto);
  if (!si.ok || !si.openssl) {
    std::fprintf(stderr, "veil-srtp-bench: libsrtp2 not usable or not on OpenSSL (%s)\n", si.backend.c_str());
    return 1;
  }
  uint64_t hz = rte_get_tsc_hz();
  std::printf("veil-srtp-bench: SRTP<->RTP transcryption through the worker, one lcore, burst %u, G.711 (172-byte RTP)\n",
              kBurst);
  print_run_info(args.cmdline, hz);
  std::printf("build:    %s, %s (%s backend), gcc %s, %s\n", rte_version(), si.version.c_str(), si.backend.c_str(),
              __VERSION__,
#ifdef NDEBUG
              "NDEBUG"
#else
              "assertions on"
#endif
  );
  std::printf("crypto:   %s\n", args.stock_crypto ? "libsrtp2's own HMAC-SHA1, AES-ICM and AES-GCM (--stock-crypto)"
                                                 : "libsrtp2 with Veil's HMAC-SHA1, AES-ICM and AES-GCM (dataplane/srtp_hmac.h, srtp_icm.h, srtp_gcm.h)");
  std::printf("load:     %s (load average)\n", loadavg().c_str());
  std::printf("per run:  %u flows (%u SRTP->RTP, %u RTP->SRTP), %llu packets x %u repetitions, %u mbufs\n\n",
              args.flows, args.flows / 2, args.flows / 2, (unsigned long long)args.packets, args.reps, args.mbufs);
  std::fflush(stdout);

  struct Row {
    SrtpProfile p;
    double veil, veil_min, base, base_min, restore;
    double cveil, cveil_min, cbase, cbase_min, crestore;
  };
  std::vector<Row> rows;
  unsigned run = 0;
  for (SrtpProfile p : args.profiles) {
    Bench b(args, p, run++);
    if (!b.setup()) return 1;
    if (!b.verify()) return 1;
    std::fprintf(stderr, "  %s: every packet relayed and verified (SRTP->RTP byte-exact, RTP->SRTP unprotected by the receiver)\n",
                 srtp_profile_name(p));
    b.measure();
    rows.push_back({p, b.veil_cpp, b.veil_min, b.base_cpp, b.base_min, b.restore_cpp, b.cpu_veil, b.cpu_veil_min,
                    b.cpu_base, b.cpu_base_min, b.cpu_restore});
  }
  std::printf("%-24s %7s %7s %10s %8s %12s %8s %8s %13s %10s\n", "profile", "Mpps", "(max)", "veil c/p", "(min)",
              "libsrtp c/p", "(min)", "restore", "overhead c/p", "overhead");
  for (const Row& r : rows) {
    double crypto = r.base - r.restore, over = r.veil - r.base;
    double over_min = (r.veil_min - r.base_min) / (r.base_min - r.restore);
    std::printf("%-24s %7.2f %7.2f %10.1f %8.1f %12.1f %8.1f %8.1f %13.1f %5.1f%% (%4.1f%%)\n", srtp_profile_name(r.p),
                double(hz) / r.veil / 1e6, double(hz) / r.veil_min / 1e6, r.veil, r.veil_min, r.base, r.base_min,
                r.restore, over, 100.0 * over / crypto, 100.0 * over_min);
  }
  std::printf("\nOn-CPU time (thread CPU clock, in TSC cycles): the same loops without the time the thread was preempted\n");
  std::printf("%-24s %7s %7s %10s %8s %12s %8s %8s %13s %10s\n", "profile", "Mpps", "(max)", "veil c/p", "(min)",
              "libsrtp c/p", "(min)", "restore", "overhead c/p", "overhead");
  for (const Row& r : rows) {
    double crypto = r.cbase - r.crestore, over = r.cveil - r.cbase;
    double over_min = (r.cveil_min - r.cbase_min) / (r.cbase_min - r.crestore);
    std::printf("%-24s %7.2f %7.2f %10.1f %8.1f %12.1f %8.1f %8.1f %13.1f %5.1f%% (%4.1f%%)\n", srtp_profile_name(r.p),
                double(hz) / r.cveil / 1e6, double(hz) / r.cveil_min / 1e6, r.cveil, r.cveil_min, r.cbase, r.cbase_min,
                r.crestore, over, 100.0 * over / crypto, 100.0 * over_min);
  }
  std::printf(
      "\nMedians over the repetitions; (min), (max): the fastest repetition, and the overhead computed from the fastest\n"
      "of each loop. Cycles are TSC cycles at %.3f GHz; Mpps = TSC Hz / veil c/p.\n"
      "Half the packets are unprotected (SRTP->RTP), half protected (RTP->SRTP). libsrtp c/p: the same packets'\n"
      "srtp_unprotect/srtp_protect alone with per-flow sessions; restore c/p: copying the pre-built frames back (in\n"
      "both loops). overhead = (veil - libsrtp) / (libsrtp - restore): what the pipeline adds, as a share of the crypto.\n"
      "Load average at the end: %s\n",
      double(hz) / 1e9, loadavg().c_str());
  rte_eal_cleanup();
  return 0;
}
