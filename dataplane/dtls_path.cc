// The control plane's side of DTLS on media ports: records handed up by the workers, and
// records sent back out from a flow's SBC address and port. Runs on the control thread.
#include <rte_cycles.h>

#include <cstring>

#include "dataplane/dataplane.h"
#include "dataplane/worker.h"

namespace veil::dp {

unsigned Dataplane::poll_dtls(const std::function<void(const DtlsDatagram&)>& fn, unsigned max) {
  rte_mbuf* ms[64];
  if (max > 64) max = 64;
  unsigned n = rte_ring_sc_dequeue_burst(dtls_ring_, reinterpret_cast<void**>(ms), max, nullptr);
  for (unsigned i = 0; i < n; ++i) {
    rte_mbuf* m = ms[i];
    const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
    MacAddr dst;
    std::memcpy(dst.b, f, 6);
    Parsed p;
    int port = m->port < ports_.size() ? int(m->port) : -1;  // the worker stored the logical port
    // The worker parsed it already; parsing again here only recovers the offsets.
    if (port >= 0 && parse_frame(f, m->data_len, dst, p) == kNoDrop && p.proto == kProtoUdp) {
      DtlsDatagram d;
      d.flow_id = m->hash.usr;
      d.port = uint8_t(port);
      d.local = udp_destination(f, p);
      d.remote = udp_source(f, p);
      d.data = f + p.l4 + kUdpHdrLen;
      d.len = p.l4_len - kUdpHdrLen;
      fn(d);
    }
    rte_pktmbuf_free(m);
  }
  return n;
}

bool Dataplane::send_udp_from_control(uint8_t port, const Endpoint& local, const Endpoint& remote,
                                      const uint8_t* payload, uint32_t len) {
  if (port >= ports_.size() || !local.valid() || !remote.valid() ||
      local.addr.family != remote.addr.family || len > 1500 - kIpv6HdrLen - kUdpHdrLen)
    return false;
  const PortInfo& pi = ports_[port];
  IpAddr nh = pi.next_hop(remote.addr);
  MacAddr dmac;
  if (!neigh_->lookup(port, nh, dmac)) {
    request_resolution(port, nh);
    return false;
  }
  uint8_t frame[kEthHdrLen + kIpv6HdrLen + kUdpHdrLen + 1500];
  bool v4 = local.addr.is_v4();
  std::memcpy(frame, dmac.b, 6);
  std::memcpy(frame + 6, pi.mac.b, 6);
  frame[12] = v4 ? 0x08 : 0x86;
  frame[13] = v4 ? 0x00 : 0xdd;
  uint8_t* ip = frame + kEthHdrLen;
  uint16_t ulen = uint16_t(kUdpHdrLen + len);
  uint8_t* udp;
  if (v4) {
    std::memset(ip, 0, kIpv4HdrLen);
    ip[0] = 0x45;
    uint16_t tot = uint16_t(kIpv4HdrLen + ulen);
    ip[2] = uint8_t(tot >> 8);
    ip[3] = uint8_t(tot);
    ip[6] = 0x40;  // DF
    ip[8] = 64;
    ip[9] = kProtoUdp;
    std::memcpy(ip + 12, local.addr.bytes.data(), 4);
    std::memcpy(ip + 16, remote.addr.bytes.data(), 4);
    uint16_t c = ipv4_header_checksum(ip);
    std::memcpy(ip + 10, &c, 2);
    udp = ip + kIpv4HdrLen;
  } else {
    std::memset(ip, 0, kIpv6HdrLen);
    ip[0] = 0x60;
    ip[4] = uint8_t(ulen >> 8);
    ip[5] = uint8_t(ulen);
    ip[6] = kProtoUdp;
    ip[7] = 64;
    std::memcpy(ip + 8, local.addr.bytes.data(), 16);
    std::memcpy(ip + 24, remote.addr.bytes.data(), 16);
    udp = ip + kIpv6HdrLen;
  }
  udp[0] = uint8_t(local.port >> 8);
  udp[1] = uint8_t(local.port);
  udp[2] = uint8_t(remote.port >> 8);
  udp[3] = uint8_t(remote.port);
  udp[4] = uint8_t(ulen >> 8);
  udp[5] = uint8_t(ulen);
  udp[6] = udp[7] = 0;
  std::memcpy(udp + kUdpHdrLen, payload, len);
  uint16_t c = l4_checksum(local.addr.family, ip, udp, ulen, kProtoUdp);
  std::memcpy(udp + 6, &c, 2);
  return send_from_control(port, frame, uint32_t(udp + ulen - frame));
}

void Dataplane::set_ice_consent_timeout_ms(uint32_t ms) {
  for (auto& w : workers_) w->consent_cycles = tsc_hz_ / 1000 * ms;
}

}  // namespace veil::dp
