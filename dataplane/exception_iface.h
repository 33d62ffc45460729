// The kernel side of the exception path: the tap interface that carries a port's
// non-media traffic gets the port's addresses, so sofia-sip and the management API use
// ordinary sockets. Set up once at start-up (ioctl and /proc/sys), never per packet.
#pragma once

#include <string>

#include "dataplane/addr.h"

namespace veil::dp {

// Brings `iface` up with `mtu`, turns off what the kernel would otherwise send or accept on
// its own (router advertisements, autoconfiguration, DAD) and adds `prefixes`.
bool configure_exception_iface(const std::string& iface, uint16_t mtu,
                               const IpPrefix* prefixes, unsigned n, std::string& err);

}  // namespace veil::dp
