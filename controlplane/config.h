// Veil's configuration: one TOML file (TOML++), validated completely before EAL
// starts or any port is touched. docs/configuration.md documents every key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/addr.h"
#include "sip/sip_config.h"

namespace veil::config {

enum class Role : uint8_t { External = 0, Internal = 1 };
inline const char* role_name(Role r) { return r == Role::External ? "external" : "internal"; }

enum class LatchMode : uint8_t {
  Strict,  // only the signaled remote endpoint is accepted
  Latch,   // learn the remote from the first valid packet (symmetric RTP / NAT)
};

struct PortConfig {
  std::string name;                  // operator's name, e.g. "ext0"; unique
  Role role = Role::External;
  std::string device;                // DPDK devargs of a vdev ("net_af_packet0,iface=veth0")
  std::string pci;                   // or a PCI address ("0000:03:00.0"); exactly one of the two
  std::vector<IpPrefix> addresses;   // the SBC's own addresses on this port, with on-link prefix
  std::optional<IpAddr> gateway4;    // next hop for IPv4 destinations off-link
  std::optional<IpAddr> gateway6;    // next hop for IPv6 destinations off-link
  std::string exception_iface;       // kernel interface (tap) for the exception path; default "veil-<name>"
  uint16_t mtu = 1500;
  // Whether UDP checksums of received packets are complete on the wire (a NIC, net_ring,
  // net_pcap) or may be partial (Linux veth/virtio offload: net_af_packet, net_tap). On a
  // complete port a media packet relayed unchanged gets its checksum adjusted incrementally
  // (RFC 1624) instead of summed over the payload. Auto: decided from the DPDK driver.
  enum class RxChecksums : uint8_t { Auto, Complete, Partial } rx_checksums = RxChecksums::Auto;
};

struct MediaRange {
  uint16_t first = 0;
  uint16_t last = 0;
  bool contains(uint16_t p) const { return p >= first && p <= last; }
};

struct Cores {
  unsigned control = 0;              // lcore that runs the control plane (EAL main lcore)
  std::vector<unsigned> workers;     // dataplane lcores; one RSS queue per port each.
                                     // The parser fills [control + 1] when the key is absent.
};

struct Limits {
  uint32_t max_flows = 65536;        // media flow table capacity (rte_hash entries)
  uint32_t punt_pps = 20000;         // exception-path packets per second per worker
  uint32_t punt_pps_per_source = 2000;  // ... per source address per worker (0: no per-source limit)
  uint32_t flow_idle_timeout_s = 60; // a flow with no packet for this long is reported idle
  uint32_t relatch_after_ms = 2000;  // a latched source silent this long may be replaced
};

struct DataplaneConfig {
  bool hugepages = false;            // false: --no-huge (development, CI)
  uint32_t memory_mb = 256;          // EAL memory (-m)
  uint32_t mbufs = 16383;            // packet buffers in the pool
  uint16_t burst = 32;               // rx/tx burst size
  uint16_t rx_desc = 1024;
  uint16_t tx_desc = 1024;
  std::string file_prefix;           // EAL --file-prefix; default "veil-<pid>"
  std::vector<std::string> eal_args; // extra EAL arguments, appended verbatim
  LatchMode default_latch = LatchMode::Latch;
  uint32_t idle_sleep_us = 0;        // sleep this long after 1024 empty passes (0: pure polling)
};

struct Management {
  std::string socket = "/run/veil/veil.sock";  // Unix socket of the management API
  std::optional<Endpoint> metrics;             // Prometheus /metrics (HTTP) address; off if unset
};

// [sip]: the B2BUA (sip/b2bua.h). Off by default, so a file without [sip] runs the
// dataplane alone as before.
struct SipSettings {
  bool enabled = false;
  // Ready for sip::B2bua. external.addr / internal.addr are the configured
  // external_address / internal_address, else the port's first IPv4 address (its first
  // address if it has no IPv4); port/udp/tcp are the same on both sides.
  sip::SipConfig b2bua;
};

// [websocket]: SIP over WebSocket (RFC 7118) on the untrusted SIP address, in front of the
// B2BUA's TCP transport (controlplane/ws_gateway.h). Off unless a port is set.
struct WebSocketSettings {
  uint16_t ws_port = 0;                      // plain ws; 0: off
  uint16_t wss_port = 0;                     // wss (TLS); 0: off
  std::string certificate;                   // PEM certificate chain for wss
  std::string private_key;                   // PEM private key for wss
  std::vector<std::string> allowed_origins;  // exact Origin values; empty: any
  uint32_t max_connections = 4096;
  uint32_t max_connections_per_source = 16;
  uint32_t max_message_bytes = 65536;
  uint32_t handshake_timeout_ms = 5000;
  uint32_t idle_timeout_s = 60;
  bool enabled() const { return ws_port != 0 || wss_port != 0; }
};

struct Config {
  std::string source;                // file it was read from
  std::vector<PortConfig> ports;     // after a successful parse: ports[0] external, ports[1] internal
  MediaRange media_external{20000, 29999};  // UDP ports for media legs on the external port
  MediaRange media_internal{30000, 39999};  // UDP ports for media legs on the internal port
  Cores cores;
  Limits limits;
  DataplaneConfig dataplane;
  Management management;
  SipSettings sip;
  WebSocketSettings websocket;

  const MediaRange& media(Role r) const { return r == Role::External ? media_external : media_internal; }
};

struct Error {
  std::string file;
  uint32_t line = 0;    // 1-based; 0 when the error is about the whole file
  uint32_t column = 0;  // 1-based; 0 when unknown
  std::string what;     // what is wrong
  std::string fix;      // what is allowed / how to fix it
  // "veil.toml:12:9: error: media.external.ports: "70000" is not a port range; expected "first-last" with
  // 1 <= first <= last <= 65535". ":column" is left out when it is 0, ":line:column" when line is 0.
  std::string str() const;
};

struct ParseResult {
  std::optional<Config> config;
  std::vector<Error> errors;  // every problem found, not just the first
  bool ok() const { return config.has_value() && errors.empty(); }
};

ParseResult parse_file(const std::string& path);
ParseResult parse_string(std::string_view text, const std::string& name);

}  // namespace veil::config
