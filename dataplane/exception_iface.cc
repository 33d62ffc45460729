#include "dataplane/exception_iface.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace veil::dp {
namespace {

// From <linux/ipv6.h>, which clashes with glibc's <netinet/in.h>.
struct in6_ifreq_compat {
  in6_addr addr;
  uint32_t prefixlen;
  int ifindex;
};

bool write_sysctl(const std::string& path, const char* value) {
  std::ofstream f(path);
  if (!f) return false;
  f << value;
  return bool(f);
}

std::string errno_text(const char* what, const std::string& iface) {
  return std::string(what) + " on " + iface + ": " + std::strerror(errno);
}

}  // namespace

void quiet_exception_iface(const std::string& iface) {
  std::string conf = "/proc/sys/net/ipv6/conf/" + iface + "/";
  // The dataplane answers neighbour discovery for our addresses; the kernel must not
  // autoconfigure from, or announce itself to, the untrusted link.
  write_sysctl(conf + "accept_ra", "0");
  write_sysctl(conf + "autoconf", "0");
  write_sysctl(conf + "accept_dad", "0");
  write_sysctl(conf + "dad_transmits", "0");
  write_sysctl(conf + "router_solicitations", "0");
}

bool isolate_kernel_from_wire(const std::string& iface, std::string& err) {
  const std::pair<std::string, const char*> settings[] = {
      {"/proc/sys/net/ipv6/conf/" + iface + "/disable_ipv6", "1"},
      {"/proc/sys/net/ipv4/conf/" + iface + "/arp_ignore", "8"},
      {"/proc/sys/net/ipv4/conf/" + iface + "/rp_filter", "1"},
  };
  for (const auto& [path, value] : settings) {
    if (!write_sysctl(path, value)) {
      err = "cannot write " + path + " (is " + iface + " in this network namespace?)";
      return false;
    }
  }
  return true;
}

bool configure_exception_iface(const std::string& iface, uint16_t mtu, const IpPrefix* prefixes,
                               unsigned n, std::string& err) {
  if (iface.size() >= IFNAMSIZ) {
    err = "interface name too long: " + iface;
    return false;
  }

  int fd4 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int fd6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd4 < 0 || fd6 < 0) {
    err = errno_text("socket", iface);
    if (fd4 >= 0) close(fd4);
    if (fd6 >= 0) close(fd6);
    return false;
  }
  bool ok = true;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, iface.c_str(), IFNAMSIZ - 1);
  ifr.ifr_mtu = mtu;
  if (ioctl(fd4, SIOCSIFMTU, &ifr) < 0) {
    err = errno_text("SIOCSIFMTU", iface);
    ok = false;
  }
  int ifindex = int(if_nametoindex(iface.c_str()));
  unsigned v4_count = 0;
  for (unsigned i = 0; ok && i < n; ++i) {
    const IpPrefix& p = prefixes[i];
    if (p.addr.is_v4()) {
      // Further IPv4 addresses go on alias labels (iface:1, ...).
      std::string label = v4_count == 0 ? iface : iface + ":" + std::to_string(v4_count);
      ++v4_count;
      if (label.size() >= IFNAMSIZ) {
        err = "too many IPv4 addresses for " + iface;
        ok = false;
        break;
      }
      ifreq r{};
      std::strncpy(r.ifr_name, label.c_str(), IFNAMSIZ - 1);
      auto* sin = reinterpret_cast<sockaddr_in*>(&r.ifr_addr);
      sin->sin_family = AF_INET;
      std::memcpy(&sin->sin_addr, p.addr.bytes.data(), 4);
      if (ioctl(fd4, SIOCSIFADDR, &r) < 0) {
        err = errno_text("SIOCSIFADDR", label);
        ok = false;
        break;
      }
      uint32_t mask = p.len ? htonl(~uint32_t(0) << (32 - p.len)) : 0;
      sin->sin_addr.s_addr = mask;
      if (ioctl(fd4, SIOCSIFNETMASK, &r) < 0) {
        err = errno_text("SIOCSIFNETMASK", label);
        ok = false;
        break;
      }
    } else {
      in6_ifreq_compat r{};
      std::memcpy(&r.addr, p.addr.bytes.data(), 16);
      r.prefixlen = p.len;
      r.ifindex = ifindex;
      if (ioctl(fd6, SIOCSIFADDR, &r) < 0 && errno != EEXIST) {
        err = errno_text("SIOCSIFADDR (IPv6)", iface);
        ok = false;
        break;
      }
    }
  }
  if (ok) {
    if (ioctl(fd4, SIOCGIFFLAGS, &ifr) == 0) {
      ifr.ifr_flags |= IFF_UP;
      if (ioctl(fd4, SIOCSIFFLAGS, &ifr) < 0) {
        err = errno_text("SIOCSIFFLAGS", iface);
        ok = false;
      }
    }
  }
  close(fd4);
  close(fd6);
  return ok;
}

}  // namespace veil::dp
