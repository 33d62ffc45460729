#include "dataplane/dataplane.h"

#include <rte_bus_vdev.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <unistd.h>

#include <cstdio>

#include "dataplane/exception_iface.h"
#include "dataplane/worker.h"

namespace veil::dp {

namespace {
std::atomic<unsigned> g_instance{0};

std::string mac_text(const MacAddr& m) {
  char b[18];
  std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m.b[0], m.b[1], m.b[2], m.b[3],
                m.b[4], m.b[5]);
  return b;
}

// Finds a port by device name, probing the device if it is not there yet.
bool find_or_probe(const std::string& devargs, uint16_t& port_id, std::string& err) {
  std::string name = devargs.substr(0, devargs.find(','));
  if (rte_eth_dev_get_port_by_name(name.c_str(), &port_id) == 0) return true;
  int rc = rte_dev_probe(devargs.c_str());
  if (rc < 0) {
    err = "cannot probe device \"" + devargs + "\": " + rte_strerror(-rc);
    return false;
  }
  if (rte_eth_dev_get_port_by_name(name.c_str(), &port_id) != 0) {
    err = "device \"" + devargs + "\" probed but no ethdev port named \"" + name + "\" appeared";
    return false;
  }
  return true;
}
// The kernel interface behind a net_af_packet port ("iface=" in its devargs), else "".
std::string af_packet_iface(uint16_t port_id, const std::string& devargs) {
  rte_eth_dev_info info{};
  if (rte_eth_dev_info_get(port_id, &info) != 0 || !info.driver_name ||
      std::string(info.driver_name) != "net_af_packet")
    return "";
  auto pos = devargs.find("iface=");
  if (pos == std::string::npos) return "";
  pos += 6;
  return devargs.substr(pos, devargs.find(',', pos) - pos);
}

// Whether the port's received UDP checksums are complete on the wire ([[port]] rx_checksums).
// Auto: a PCI NIC, net_ring, net_pcap and net_null hand over what was on the wire; Linux
// veth/virtio offload leaves partial checksums in packets that net_af_packet, net_tap,
// net_af_xdp, virtio-user or vhost deliver, and so does any driver not known here.
bool rx_checksums_complete(const config::PortConfig& pc, uint16_t port_id) {
  using RxChecksums = config::PortConfig::RxChecksums;
  if (pc.rx_checksums != RxChecksums::Auto) return pc.rx_checksums == RxChecksums::Complete;
  if (!pc.pci.empty()) return true;
  rte_eth_dev_info info{};
  if (rte_eth_dev_info_get(port_id, &info) != 0 || !info.driver_name) return false;
  std::string d = info.driver_name;
  return d == "net_ring" || d == "net_pcap" || d == "net_null";
}

}  // namespace

std::vector<std::string> eal_arguments(const config::Config& cfg, const std::string& argv0) {
  std::vector<std::string> a{argv0};
  std::string lcores = std::to_string(cfg.cores.control);
  for (unsigned w : cfg.cores.workers) lcores += "," + std::to_string(w);
  a.insert(a.end(), {"-l", lcores, "--main-lcore", std::to_string(cfg.cores.control)});
  std::string prefix = cfg.dataplane.file_prefix.empty()
                           ? "veil-" + std::to_string(getpid())
                           : cfg.dataplane.file_prefix;
  a.insert(a.end(), {"--file-prefix", prefix});
  if (!cfg.dataplane.hugepages) a.push_back("--no-huge");
  a.insert(a.end(), {"-m", std::to_string(cfg.dataplane.memory_mb)});
  bool any_pci = false;
  for (const auto& p : cfg.ports) {
    if (!p.pci.empty()) {
      a.insert(a.end(), {"-a", p.pci});
      any_pci = true;
    }
  }
  if (!any_pci) a.push_back("--no-pci");
  a.insert(a.end(), {"--log-level", "lib.eal:warning"});
  for (const auto& e : cfg.dataplane.eal_args) a.push_back(e);
  return a;
}

bool Dataplane::setup_queues(uint16_t port_id, uint16_t queues, uint16_t mtu, bool rss,
                             bool* csum_offload, std::string& err) {
  rte_eth_dev_info info{};
  if (int rc = rte_eth_dev_info_get(port_id, &info); rc != 0) {
    err = std::string("rte_eth_dev_info_get: ") + rte_strerror(-rc);
    return false;
  }
  if (info.max_rx_queues < queues || info.max_tx_queues < queues) {
    err = std::string("device ") + info.driver_name + " has " + std::to_string(info.max_rx_queues) +
          " rx / " + std::to_string(info.max_tx_queues) + " tx queues, " + std::to_string(queues) +
          " workers need one each (for net_af_packet add qpairs=" + std::to_string(queues) + ")";
    return false;
  }
  rte_eth_conf conf{};
  if (rss && queues > 1) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf =
        (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP | RTE_ETH_RSS_TCP) & info.flow_type_rss_offloads;
  }
  const uint64_t want = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
  bool offload = csum_offload && (info.tx_offload_capa & want) == want;
  if (offload) conf.txmode.offloads = want;
  if (csum_offload) *csum_offload = offload;
  if (mtu && info.max_mtu >= mtu && info.min_mtu <= mtu) conf.rxmode.mtu = mtu;
  if (int rc = rte_eth_dev_configure(port_id, queues, queues, &conf); rc != 0) {
    err = std::string("rte_eth_dev_configure: ") + rte_strerror(-rc);
    return false;
  }
  uint16_t rxd = cfg_.dataplane.rx_desc, txd = cfg_.dataplane.tx_desc;
  rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &rxd, &txd);
  int socket = rte_eth_dev_socket_id(port_id);
  if (socket < 0) socket = SOCKET_ID_ANY;
  for (uint16_t q = 0; q < queues; ++q) {
    rte_eth_txconf txc = info.default_txconf;
    txc.offloads = conf.txmode.offloads;
    if (int rc = rte_eth_rx_queue_setup(port_id, q, rxd, socket, nullptr, pool_); rc != 0) {
      err = std::string("rx queue setup: ") + rte_strerror(-rc);
      return false;
    }
    if (int rc = rte_eth_tx_queue_setup(port_id, q, txd, socket, &txc); rc != 0) {
      err = std::string("tx queue setup: ") + rte_strerror(-rc);
      return false;
    }
  }
  if (int rc = rte_eth_dev_start(port_id); rc != 0) {
    err = std::string("rte_eth_dev_start: ") + rte_strerror(-rc);
    return false;
  }
  started_ports_.push_back(port_id);
  return true;
}

bool Dataplane::setup_port(const config::PortConfig& pc, unsigned index, const Options& opt,
                           std::string& err) {
  PortInfo info;
  info.name = pc.name;
  info.role = pc.role;
  info.media = cfg_.media(pc.role);
  info.exc_iface = pc.exception_iface.empty() ? "veil-" + pc.name : pc.exception_iface;
  for (const auto& pfx : pc.addresses) {
    if (info.n_addrs == kMaxAddrs) break;
    info.add_addr(pfx);
  }
  if (pc.gateway4) info.gw4 = *pc.gateway4;
  if (pc.gateway6) info.gw6 = *pc.gateway6;
  uint16_t queues = uint16_t(workers_.size());

  const std::string& devargs = pc.pci.empty() ? pc.device : pc.pci;
  if (!find_or_probe(devargs, info.nic, err)) return false;
  std::string why;
  if (auto iface = af_packet_iface(info.nic, devargs); !iface.empty()) {
    if (!isolate_kernel_from_wire(iface, why)) {
      err = "port " + pc.name + ": " + why;
      return false;
    }
  }
  if (!setup_queues(info.nic, queues, pc.mtu, true, &info.tx_csum_offload, why)) {
    err = "port " + pc.name + " (" + devargs + "): " + why;
    return false;
  }
  info.rx_csum_complete = rx_checksums_complete(pc, info.nic);
  rte_ether_addr mac;
  rte_eth_macaddr_get(info.nic, &mac);
  std::memcpy(info.mac.b, mac.addr_bytes, 6);
  // Neighbour solicitations arrive on solicited-node multicast groups.
  rte_eth_allmulticast_enable(info.nic);

  if (index < opt.exception_devices.size() && !opt.exception_devices[index].empty()) {
    if (!find_or_probe(opt.exception_devices[index], info.exc, err)) return false;
    if (!setup_queues(info.exc, queues, 0, false, nullptr, why)) {
      err = "exception path of " + pc.name + ": " + why;
      return false;
    }
    info.has_exc = true;
  } else if (opt.create_taps) {
    // The tap carries the port's MAC so frames pass between kernel and wire unchanged.
    std::string vdev = "net_tap_veil" + std::to_string(g_instance.load()) + "_" + std::to_string(index);
    std::string args = "iface=" + info.exc_iface + ",mac=" + mac_text(info.mac);
    if (int rc = rte_vdev_init(vdev.c_str(), args.c_str()); rc != 0) {
      err = "cannot create exception interface " + info.exc_iface + " for port " + pc.name +
            ": " + rte_strerror(-rc) + " (is the name in use, or is /dev/net/tun missing?)";
      return false;
    }
    if (rte_eth_dev_get_port_by_name(vdev.c_str(), &info.exc) != 0) {
      err = "exception interface " + vdev + " has no port";
      return false;
    }
    quiet_exception_iface(info.exc_iface);  // before setup_queues starts (and ups) it
    if (!setup_queues(info.exc, queues, 0, false, nullptr, why)) {
      err = "exception interface " + info.exc_iface + ": " + why;
      return false;
    }
    if (!configure_exception_iface(info.exc_iface, pc.mtu, info.prefixes, info.n_addrs, why)) {
      err = "exception interface " + info.exc_iface + ": " + why;
      return false;
    }
    info.has_exc = true;
  }
  ports_.push_back(std::move(info));
  return true;
}

std::unique_ptr<Dataplane> Dataplane::create(const config::Config& cfg, const Options& opt,
                                             std::string& err) {
  std::unique_ptr<Dataplane> dp(new Dataplane());
  dp->cfg_ = cfg;
  dp->tsc_hz_ = rte_get_tsc_hz();
  unsigned inst = g_instance.load();
  std::string sfx = std::to_string(inst);
  int socket = int(rte_socket_id());
  if (cfg.ports.size() > kMaxPorts) {
    err = "at most " + std::to_string(kMaxPorts) + " ports";
    return nullptr;
  }
  size_t nworkers = cfg.cores.workers.empty() ? 1 : cfg.cores.workers.size();
  if (nworkers > kMaxWorkers) {
    err = "at most " + std::to_string(kMaxWorkers) + " workers";
    return nullptr;
  }
  dp->pool_ = rte_pktmbuf_pool_create(("veil_pool" + sfx).c_str(), cfg.dataplane.mbufs, 256, 0,
                                      RTE_MBUF_DEFAULT_BUF_SIZE, socket);
  if (!dp->pool_) {
    err = "cannot allocate " + std::to_string(cfg.dataplane.mbufs) +
          " packet buffers: " + rte_strerror(rte_errno) + " (raise [dataplane] memory_mb)";
    return nullptr;
  }
  dp->rcu_ = Rcu::create(RTE_MAX_LCORE);
  if (!dp->rcu_) {
    err = "cannot create RCU state";
    return nullptr;
  }
  dp->flows_ = FlowTable::create(cfg.limits.max_flows, *dp->rcu_, socket, err);
  if (!dp->flows_) return nullptr;
  dp->neigh_ = NeighTable::create(4096, *dp->rcu_, socket, err);
  if (!dp->neigh_) return nullptr;
  dp->ctl_ring_ = rte_ring_create_elem(("veil_ctl" + sfx).c_str(), sizeof(CtlMsg), 4096, socket,
                                       RING_F_SC_DEQ);
  if (!dp->ctl_ring_) {
    err = std::string("cannot create control ring: ") + rte_strerror(rte_errno);
    return nullptr;
  }
  dp->dtls_ring_ = rte_ring_create(("veil_dtls" + sfx).c_str(), 1024, socket, RING_F_SC_DEQ);
  if (!dp->dtls_ring_) {
    err = std::string("cannot create DTLS ring: ") + rte_strerror(rte_errno);
    return nullptr;
  }
  // veilctl capture: copies go to a pool of their own, so a capture can never starve the
  // receive queues.
  dp->cap_.pool = rte_pktmbuf_pool_create(("veil_cap" + sfx).c_str(), CaptureArm::kRingSize - 1, 0, 0,
                                          RTE_MBUF_DEFAULT_BUF_SIZE, socket);
  dp->cap_.ring = rte_ring_create_elem(("veil_capr" + sfx).c_str(), sizeof(CapRecord),
                                       CaptureArm::kRingSize, socket, RING_F_SC_DEQ);
  if (!dp->cap_.pool || !dp->cap_.ring) {
    err = std::string("cannot create the capture pool/ring: ") + rte_strerror(rte_errno) +
          " (raise [dataplane] memory_mb)";
    return nullptr;
  }
  uint64_t hz = dp->tsc_hz_;
  for (size_t i = 0; i < nworkers; ++i) {
    auto w = std::make_unique<WorkerCtx>();
    w->dp = dp.get();
    w->nh_gens = dp->neigh_->generations();
    w->index = unsigned(i);
    w->lcore = cfg.cores.workers.empty() ? rte_lcore_id() : cfg.cores.workers[i];
    w->burst = uint16_t(std::min<unsigned>(cfg.dataplane.burst, kMaxBurst));
    uint64_t rate = std::max<uint64_t>(1, cfg.limits.punt_pps / nworkers);
    w->cycles_per_token = std::max<uint64_t>(1, hz / rate);
    w->punt_max = std::max<uint64_t>(64, rate / 10);
    w->punt_tokens = w->punt_max;
    if (cfg.limits.punt_pps_per_source) {
      uint64_t src_rate = std::max<uint64_t>(1, cfg.limits.punt_pps_per_source / nworkers);
      w->src_cycles_per_token = std::max<uint64_t>(1, hz / src_rate);
      w->src_max = uint32_t(std::max<uint64_t>(16, src_rate / 5));  // 200 ms of burst
    }
    for (unsigned pt = 0; pt < 128; ++pt) w->pt_mult[pt] = rtp_clock_mult(static_clock_rate(uint8_t(pt)), hz);
    w->relatch_cycles = hz / 1000 * cfg.limits.relatch_after_ms;
    w->resolve_cycles = hz / 10;
    w->consent_cycles = hz / 1000 * kIceConsentTimeoutMs;
    w->idle_sleep_us = cfg.dataplane.idle_sleep_us;
    w->ctl_tx = rte_ring_create(("veil_ctx" + sfx + "_" + std::to_string(i)).c_str(), 1024, socket,
                                RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (!w->ctl_tx) {
      err = std::string("cannot create worker ring: ") + rte_strerror(rte_errno);
      return nullptr;
    }
    dp->workers_.push_back(std::move(w));
  }
  for (unsigned i = 0; i < cfg.ports.size(); ++i)
    if (!dp->setup_port(cfg.ports[i], i, opt, err)) return nullptr;
  std::vector<IpAddr> local_addrs;
  for (auto& port : dp->ports_) {
    for (unsigned i = 0; i < port.n_addrs; ++i) {
      port.addr_index[i] = uint32_t(local_addrs.size());
      local_addrs.push_back(port.addrs[i]);
    }
  }
  if (!dp->flows_->set_local_addresses(std::move(local_addrs), err)) return nullptr;
  for (auto& port : dp->ports_)
    for (unsigned i = 0; i < port.n_addrs; ++i) port.flow_index[i] = dp->flows_->index_table(port.addr_index[i]);
  g_instance.fetch_add(1);
  return dp;
}

Dataplane::~Dataplane() {
  stop();
  for (uint16_t p : started_ports_) {
    rte_eth_dev_stop(p);
    rte_eth_dev_close(p);
  }
  flows_.reset();
  neigh_.reset();
  for (auto& w : workers_) rte_ring_free(w->ctl_tx);
  rte_ring_free(ctl_ring_);
  if (dtls_ring_) {
    void* m;
    while (rte_ring_dequeue(dtls_ring_, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    rte_ring_free(dtls_ring_);
  }
  if (cap_.ring) {
    CapRecord r;
    while (rte_ring_sc_dequeue_elem(cap_.ring, &r, sizeof r) == 0) rte_pktmbuf_free(r.m);
    rte_ring_free(cap_.ring);
  }
  rte_mempool_free(cap_.pool);
  rcu_.reset();
  rte_mempool_free(pool_);
}

static int launch_worker(void* arg) { return static_cast<WorkerCtx*>(arg)->loop(); }

bool Dataplane::start(std::string& err) {
  stop_.store(false);
  for (auto& w : workers_) {
    int rc = rte_eal_remote_launch(launch_worker, w.get(), w->lcore);
    if (rc != 0) {
      err = "cannot launch worker on lcore " + std::to_string(w->lcore) + ": " + rte_strerror(-rc);
      stop();
      return false;
    }
  }
  launched_ = true;
  return true;
}

void Dataplane::stop() {
  stop_.store(true);
  if (launched_) {
    for (auto& w : workers_) rte_eal_wait_lcore(w->lcore);
    launched_ = false;
  }
}

int Dataplane::run_worker(unsigned index) {
  stop_.store(false);
  return workers_.at(index)->loop();
}

bool Dataplane::send_from_control(uint8_t port, const uint8_t* frame, uint32_t len) {
  if (port >= ports_.size() || workers_.empty()) return false;
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (!m) return false;
  char* d = rte_pktmbuf_append(m, uint16_t(len));
  if (!d) {
    rte_pktmbuf_free(m);
    return false;
  }
  std::memcpy(d, frame, len);
  m->port = port;
  if (rte_ring_sp_enqueue(workers_[0]->ctl_tx, m) != 0) {
    rte_pktmbuf_free(m);
    return false;
  }
  return true;
}

void Dataplane::request_resolution(uint8_t port, const IpAddr& target) {
  uint64_t now = rte_rdtsc();
  for (auto& p : resolving_) {
    if (p.port == port && p.addr == target) {
      if (now - p.tsc < tsc_hz_ / 5) return;  // asked less than 200 ms ago
      p.tsc = now;
      goto send;
    }
  }
  if (resolving_.size() > 1024) resolving_.erase(resolving_.begin());
  resolving_.push_back({port, target, now});
send:
  const PortInfo& pi = ports_[port];
  const IpAddr* src = pi.source_for(target.family);
  if (!src) return;
  uint8_t frame[128];
  uint32_t len = target.is_v4() ? build_arp_request(frame, pi.mac, *src, target)
                                : build_neighbour_solicitation(frame, pi.mac, *src, target);
  send_from_control(port, frame, len);
}

void Dataplane::prime_next_hop(uint8_t port, const IpAddr& dst) {
  if (port >= ports_.size() || !dst.valid()) return;
  IpAddr nh = ports_[port].next_hop(dst);
  if (!neigh_->known(port, nh)) request_resolution(port, nh);
}

void Dataplane::resolve_gateways() {
  for (size_t i = 0; i < ports_.size(); ++i) {
    if (ports_[i].gw4.valid()) request_resolution(uint8_t(i), ports_[i].gw4);
    if (ports_[i].gw6.valid()) request_resolution(uint8_t(i), ports_[i].gw6);
  }
}

void Dataplane::poll_control() {
  CtlMsg msgs[64];
  unsigned n;
  while ((n = rte_ring_sc_dequeue_burst_elem(ctl_ring_, msgs, sizeof(CtlMsg), 64, nullptr)) > 0) {
    for (unsigned i = 0; i < n; ++i) {
      const CtlMsg& m = msgs[i];
      if (m.port >= ports_.size()) continue;
      if (m.type == CtlMsg::Learn) {
        neigh_->learn(m.port, m.addr, m.mac);
        std::erase_if(resolving_, [&](const Pending& p) { return p.port == m.port && p.addr == m.addr; });
      } else if (m.type == CtlMsg::Resolve) {
        request_resolution(m.port, m.addr);
      }
    }
  }
  rcu_->reclaim();
}

void Dataplane::counters(uint64_t drops[kDropCount], uint64_t events[kEventCount]) const {
  for (unsigned i = 0; i < kDropCount; ++i) drops[i] = 0;
  for (unsigned i = 0; i < kEventCount; ++i) events[i] = 0;
  for (const auto& w : workers_) {
    for (unsigned i = 0; i < kDropCount; ++i) drops[i] += peek(w->cnt.drops[i]);
    for (unsigned i = 0; i < kEventCount; ++i) events[i] += peek(w->cnt.events[i]);
  }
}

uint64_t Dataplane::drop_count(Drop d) const {
  uint64_t s = 0;
  for (const auto& w : workers_) s += peek(w->cnt.drops[unsigned(d)]);
  return s;
}

uint64_t Dataplane::event_count(Event e) const {
  uint64_t s = 0;
  for (const auto& w : workers_) s += peek(w->cnt.events[unsigned(e)]);
  return s;
}

}  // namespace veil::dp
