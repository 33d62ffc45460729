// Plain address types shared by the control plane, the dataplane and the tools.
// No DPDK here: unit tests and the config parser use these without EAL.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace veil {

enum class Family : uint8_t { None = 0, V4 = 4, V6 = 6 };

// An IPv4 or IPv6 address. IPv4 is stored in the first 4 bytes, the rest zero,
// so that a key built from it is the same whatever produced it.
struct IpAddr {
  Family family = Family::None;
  std::array<uint8_t, 16> bytes{};

  static IpAddr v4(uint32_t host_order) {
    IpAddr a;
    a.family = Family::V4;
    a.bytes[0] = uint8_t(host_order >> 24);
    a.bytes[1] = uint8_t(host_order >> 16);
    a.bytes[2] = uint8_t(host_order >> 8);
    a.bytes[3] = uint8_t(host_order);
    return a;
  }
  static IpAddr v4_raw(const void* net_order4) {
    IpAddr a;
    a.family = Family::V4;
    std::memcpy(a.bytes.data(), net_order4, 4);
    return a;
  }
  static IpAddr v6_raw(const void* net_order16) {
    IpAddr a;
    a.family = Family::V6;
    std::memcpy(a.bytes.data(), net_order16, 16);
    return a;
  }
  // Parses dotted-quad or RFC 4291 text; nullopt when it is neither.
  static std::optional<IpAddr> parse(std::string_view text);
  std::string str() const;
  bool is_v4() const { return family == Family::V4; }
  bool is_v6() const { return family == Family::V6; }
  bool valid() const { return family != Family::None; }
  size_t len() const { return family == Family::V4 ? 4 : 16; }
  friend bool operator==(const IpAddr& a, const IpAddr& b) {
    return a.family == b.family && a.bytes == b.bytes;
  }
};

struct IpPrefix {
  IpAddr addr;
  uint8_t len = 0;
  // "203.0.113.1/24", "2001:db8::1/64"; nullopt on bad syntax or length.
  static std::optional<IpPrefix> parse(std::string_view text);
  bool contains(const IpAddr& a) const;
  std::string str() const;
};

// An address and a UDP port: one side of a media stream.
struct Endpoint {
  IpAddr addr;
  uint16_t port = 0;
  bool valid() const { return addr.valid() && port != 0; }
  std::string str() const;  // "203.0.113.5:4000", "[2001:db8::5]:4000"
  static std::optional<Endpoint> parse(std::string_view text);
  friend bool operator==(const Endpoint& a, const Endpoint& b) {
    return a.addr == b.addr && a.port == b.port;
  }
};

}  // namespace veil
