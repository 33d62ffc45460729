// The kernel side of the exception path: the tap interface that carries a port's
// non-media traffic gets the port's addresses, so sofia-sip and the management API use
// ordinary sockets. Set up once at start-up (ioctl and /proc/sys), never per packet.
#pragma once

#include <string>

#include "dataplane/addr.h"

namespace veil::dp {

// Turns off what the kernel would otherwise send or accept on its own on `iface` (router
// advertisements and solicitations, autoconfiguration, DAD). Call before the interface
// comes up, so that not even the first DAD probe leaves.
void quiet_exception_iface(const std::string& iface);

// Brings `iface` up with `mtu` and adds `prefixes`.
bool configure_exception_iface(const std::string& iface, uint16_t mtu,
                               const IpPrefix* prefixes, unsigned n, std::string& err);

// For a port driven through the kernel (net_af_packet): the kernel still sees every frame
// on `iface` and, since the SBC's addresses sit on the tap in the same namespace, would
// answer ARP for them, deliver signaling a second time (unpoliced) and send port
// unreachables for media. Keep it off that interface: no IPv6, no ARP answers, strict
// reverse-path filtering (no route points at it, so all IPv4 is dropped there).
bool isolate_kernel_from_wire(const std::string& iface, std::string& err);

}  // namespace veil::dp
