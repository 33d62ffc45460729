// Veil configuration parser: TOML++ for the syntax, then a validation pass that
// collects every problem (with file:line:column, what is wrong and what is
// allowed) before anything is started. docs/configuration.md is the reference.
#include "controlplane/config.h"

#include <sys/stat.h>
#include <unistd.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <sstream>

namespace veil::config {

std::string Error::str() const {
  std::string s = file.empty() ? std::string("<config>") : file;
  if (line != 0) {
    s += ':' + std::to_string(line);
    if (column != 0) s += ':' + std::to_string(column);
  }
  s += ": error: ";
  s += what;
  if (!fix.empty()) {
    s += "; ";
    s += fix;
  }
  return s;
}

namespace {

constexpr unsigned kMaxLcore = 128;      // RTE_MAX_LCORE in Debian's DPDK 22.11
constexpr size_t kIfNameMax = 15;        // IFNAMSIZ - 1
constexpr size_t kSunPathMax = 107;      // sizeof(sockaddr_un::sun_path) - 1
constexpr long kMaxFileBytes = 4 << 20;  // a configuration file is a few KiB

const char* const kTwoPorts =
    "this release supports exactly two ports: one with role = \"external\" and one with "
    "role = \"internal\"";

// ---------------------------------------------------------------------------
// Rendering values and types for messages.

std::string quote(std::string_view s) {
  std::string out = "\"";
  size_t n = 0;
  for (char ch : s) {
    if (++n > 80) {
      out += "...";
      break;
    }
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

const char* a_type(toml::node_type t) {
  switch (t) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// The value as the operator wrote it, for "what" texts.
std::string render(const toml::node& n) {
  if (auto* s = n.as_string()) return quote(s->get());
  if (auto* i = n.as_integer()) return std::to_string(i->get());
  if (auto* b = n.as_boolean()) return b->get() ? "true" : "false";
  if (auto* f = n.as_floating_point()) {
    std::ostringstream os;
    os << f->get();
    return os.str();
  }
  if (n.is_table()) return "a table";
  if (n.is_array()) return "an array";
  std::ostringstream os;
  if (auto* d = n.as_date())
    os << d->get();
  else if (auto* t = n.as_time())
    os << t->get();
  else if (auto* dt = n.as_date_time())
    os << dt->get();
  return os.str();
}

std::string join(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  std::string s(path);
  s += '.';
  s += key;
  return s;
}

std::string index(std::string_view path, size_t i) {
  return std::string(path) + '[' + std::to_string(i) + ']';
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// ---------------------------------------------------------------------------
// Error collection and typed access.

class Checker {
 public:
  explicit Checker(std::string file) : file_(std::move(file)) {}

  void add(toml::source_position at, std::string what, std::string fix) {
    errors_.push_back(Error{file_, at.line, at.column, std::move(what), std::move(fix)});
  }
  void add(const toml::node& n, std::string what, std::string fix) {
    add(n.source().begin, std::move(what), std::move(fix));
  }

  size_t count() const { return errors_.size(); }

  std::vector<Error> take() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const Error& a, const Error& b) {
      return a.line != b.line ? a.line < b.line : a.column < b.column;
    });
    return std::move(errors_);
  }

  // Every key of `t` must be in `allowed`; `where` names the table for the fix text.
  void keys(const toml::table& t, std::string_view path, std::string_view where,
            std::initializer_list<std::string_view> allowed) {
    for (auto&& [k, v] : t) {
      std::string_view name = k.str();
      if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) continue;
      std::string fix = "allowed ";
      fix += where;
      fix += ": ";
      bool first = true;
      std::string_view best;
      size_t best_d = ~size_t(0);
      for (auto a : allowed) {
        if (!first) fix += ", ";
        fix += a;
        first = false;
        size_t d = edit_distance(name, a);
        if (d < best_d) {
          best_d = d;
          best = a;
        }
      }
      if (best_d <= std::max<size_t>(2, name.size() / 3)) {
        fix += " (did you mean \"";
        fix += best;
        fix += "\"?)";
      }
      add(k.source().begin, join(path, name) + ": unknown key " + quote(name), std::move(fix));
    }
  }

  // The node at t[key] if it has type `want`; nullptr (and an error) if it has another
  // type; nullptr (no error) if absent.
  const toml::node* get(const toml::table& t, std::string_view path, std::string_view key,
                        toml::node_type want, std::string_view fix) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return nullptr;
    return typed(*n, join(path, key), want, fix);
  }

  const toml::node* typed(const toml::node& n, const std::string& full, toml::node_type want,
                          std::string_view fix) {
    if (n.type() == want) return &n;
    std::string what = full + ": ";
    if (n.is_table() || n.is_array())
      what += std::string("is ") + a_type(n.type());
    else
      what += render(n) + " is " + a_type(n.type());
    what += std::string(", not ") + a_type(want);
    add(n, std::move(what), std::string(fix));
    return nullptr;
  }

  void missing(const toml::node& table, const std::string& full, std::string fix) {
    add(table, full + ": missing (required)", std::move(fix));
  }

  // An optional sub-table. A present key of another type is an error.
  const toml::table* table(const toml::table& t, std::string_view path, std::string_view key) {
    std::string header = "write it as a table: [" + join(path, key) + "]";
    auto* n = get(t, path, key, toml::node_type::table, header);
    return n ? n->as_table() : nullptr;
  }

  // Integers, range-checked. `fix` defaults to "expected an integer from lo to hi".
  std::optional<int64_t> integer(const toml::table& t, std::string_view path, std::string_view key,
                                 int64_t lo, int64_t hi, std::string fix = {}) {
    if (fix.empty())
      fix = "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
    auto* n = get(t, path, key, toml::node_type::integer, fix);
    if (!n) return std::nullopt;
    int64_t v = n->as_integer()->get();
    if (v < lo || v > hi) {
      add(*n, join(path, key) + ": " + std::to_string(v) + " is out of range", std::move(fix));
      return std::nullopt;
    }
    return v;
  }

  const toml::value<std::string>* string(const toml::table& t, std::string_view path,
                                         std::string_view key, std::string_view fix) {
    auto* n = get(t, path, key, toml::node_type::string, fix);
    return n ? n->as_string() : nullptr;
  }

  std::optional<bool> boolean(const toml::table& t, std::string_view path, std::string_view key) {
    auto* n = get(t, path, key, toml::node_type::boolean, "expected true or false");
    if (!n) return std::nullopt;
    return n->as_boolean()->get();
  }

 private:
  std::string file_;
  std::vector<Error> errors_;
};

// ---------------------------------------------------------------------------
// Value syntax.

bool hex_digits(std::string_view s, size_t n) {
  if (s.size() != n) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

// DDDD:BB:DD.F, device <= 0x1f, function <= 7.
bool valid_pci(std::string_view s) {
  if (s.size() != 12 || s[4] != ':' || s[7] != ':' || s[10] != '.') return false;
  if (!hex_digits(s.substr(0, 4), 4) || !hex_digits(s.substr(5, 2), 2) ||
      !hex_digits(s.substr(8, 2), 2))
    return false;
  unsigned dev = 0;
  std::from_chars(s.data() + 8, s.data() + 10, dev, 16);
  return dev <= 0x1f && s[11] >= '0' && s[11] <= '7';
}

// Linux dev_valid_name(): 1..15 bytes, not "." or "..", no '/', ':' or whitespace.
bool valid_ifname(std::string_view s) {
  if (s.empty() || s.size() > kIfNameMax || s == "." || s == "..") return false;
  return std::none_of(s.begin(), s.end(), [](char c) {
    return c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c)) || c == '\0';
  });
}

bool parse_port_number(std::string_view s, unsigned& out) {
  if (s.empty() || s.size() > 5) return false;
  if (!std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// "first-last" with 1 <= first <= last <= 65535.
std::optional<MediaRange> parse_range(std::string_view s) {
  auto dash = s.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  unsigned first = 0, last = 0;
  if (!parse_port_number(s.substr(0, dash), first) || !parse_port_number(s.substr(dash + 1), last))
    return std::nullopt;
  if (first < 1 || first > last || last > 65535) return std::nullopt;
  return MediaRange{uint16_t(first), uint16_t(last)};
}

bool is_unspecified_or_multicast(const IpAddr& a) {
  if (a.is_v4()) {
    uint32_t v = uint32_t(a.bytes[0]) << 24 | uint32_t(a.bytes[1]) << 16 |
                 uint32_t(a.bytes[2]) << 8 | a.bytes[3];
    return v == 0 || v == 0xffffffffu || (a.bytes[0] & 0xf0) == 0xe0;
  }
  return a.bytes[0] == 0xff ||
         std::all_of(a.bytes.begin(), a.bytes.end(), [](uint8_t b) { return b == 0; });
}

bool power_of_two(int64_t v) {
  return v > 0 && (v & (v - 1)) == 0;
}

// ---------------------------------------------------------------------------
// Sections.

struct PortNodes {
  const toml::table* table = nullptr;
  const toml::node* name = nullptr;
  const toml::node* role = nullptr;
  const toml::node* device = nullptr;
  const toml::node* pci = nullptr;
  const toml::node* iface = nullptr;         // nullptr when defaulted
  std::vector<const toml::node*> addresses;  // parallel to PortConfig::addresses
  bool role_ok = false;
  bool name_ok = false;
};

void parse_gateway(Checker& c, const toml::table& t, const std::string& path, std::string_view key,
                   Family family, PortConfig& port, std::optional<IpAddr>& out) {
  const bool v4 = family == Family::V4;
  std::string fix = v4 ? "expected an IPv4 address inside one of this port's IPv4 prefixes, "
                         "e.g. gateway = \"203.0.113.254\""
                       : "expected an IPv6 address inside one of this port's IPv6 prefixes, "
                         "e.g. gateway6 = \"2001:db8:1::fe\"";
  auto* n = c.string(t, path, key, fix);
  if (!n) return;
  std::string full = join(path, key);
  auto addr = IpAddr::parse(n->get());
  if (!addr) {
    c.add(*n, full + ": " + quote(n->get()) + " is not an IP address", fix);
    return;
  }
  if (addr->family != family) {
    c.add(*n, full + ": " + quote(n->get()) + " is an " + (v4 ? "IPv6" : "IPv4") + " address",
          v4 ? "gateway is the IPv4 next hop; put an IPv6 next hop in gateway6"
             : "gateway6 is the IPv6 next hop; put an IPv4 next hop in gateway");
    return;
  }
  bool inside = false;
  for (const auto& p : port.addresses) {
    if (p.addr == *addr) {
      c.add(*n, full + ": " + quote(n->get()) + " is this port's own address",
            "the gateway is the next-hop router, another host on the port's link");
      return;
    }
    inside = inside || p.contains(*addr);
  }
  if (!inside) {
    std::string mine;
    for (const auto& p : port.addresses)
      if (p.addr.family == family) mine += (mine.empty() ? "" : ", ") + p.str();
    c.add(
        *n,
        full + ": " + quote(n->get()) + " is not on this port's link" +
            (mine.empty() ? std::string(" (the port has no ") + (v4 ? "IPv4" : "IPv6") + " address)"
                          : " (" + mine + ")"),
        fix);
    return;
  }
  out = *addr;
}

void parse_port(Checker& c, const toml::table& t, const std::string& path, PortConfig& port,
                PortNodes& nodes) {
  nodes.table = &t;
  c.keys(t, path, "keys in [[port]]",
         {"name", "role", "device", "pci", "addresses", "gateway", "gateway6", "exception_iface",
          "mtu", "rx_checksums"});

  const std::string name_fix = "expected a non-empty name unique among ports, e.g. name = \"ext0\"";
  if (auto* n = c.string(t, path, "name", name_fix)) {
    nodes.name = n;
    if (n->get().empty()) {
      c.add(*n, join(path, "name") + ": is empty", name_fix);
    } else {
      port.name = n->get();
      nodes.name_ok = true;
    }
  } else if (!t.contains("name")) {
    c.missing(t, join(path, "name"), name_fix);
  }

  const std::string role_fix = "expected role = \"external\" or role = \"internal\"";
  if (auto* n = c.string(t, path, "role", role_fix)) {
    nodes.role = n;
    if (n->get() == "external") {
      port.role = Role::External;
      nodes.role_ok = true;
    } else if (n->get() == "internal") {
      port.role = Role::Internal;
      nodes.role_ok = true;
    } else {
      c.add(*n, join(path, "role") + ": " + quote(n->get()) + " is not a role", role_fix);
    }
  } else if (!t.contains("role")) {
    c.missing(t, join(path, "role"), role_fix);
  }

  const std::string dev_fix =
      "set exactly one of device (DPDK vdev devargs, e.g. \"net_af_packet0,iface=veil-ext\") "
      "or pci (\"DDDD:BB:DD.F\", e.g. \"0000:03:00.0\")";
  const std::string pci_fix =
      "expected a PCI address \"DDDD:BB:DD.F\" (hexadecimal, domain "
      "included, device <= 1f, function 0-7), e.g. \"0000:03:00.0\"";
  auto* dev = c.string(t, path, "device", dev_fix);
  auto* pci = c.string(t, path, "pci", pci_fix);
  nodes.device = dev;
  nodes.pci = pci;
  if (dev) {
    if (dev->get().empty())
      c.add(*dev, join(path, "device") + ": is empty", dev_fix);
    else
      port.device = dev->get();
  }
  if (pci) {
    if (!valid_pci(pci->get()))
      c.add(*pci, join(path, "pci") + ": " + quote(pci->get()) + " is not a PCI address", pci_fix);
    else
      port.pci = pci->get();
  }
  if (t.contains("device") && t.contains("pci")) {
    c.add(*t.get("pci"), path + ": both device and pci are set", dev_fix);
  } else if (!t.contains("device") && !t.contains("pci")) {
    c.missing(t, join(path, "device") + " or " + join(path, "pci"), dev_fix);
  }

  const std::string addr_fix =
      "expected ADDRESS/LENGTH, e.g. \"203.0.113.1/24\" or \"2001:db8:1::1/64\" "
      "(LENGTH at most 32 for IPv4, 128 for IPv6)";
  const std::string addrs_fix =
      "expected a non-empty array of ADDRESS/LENGTH strings, e.g. "
      "addresses = [\"203.0.113.1/24\", \"2001:db8:1::1/64\"]";
  if (auto* n = c.get(t, path, "addresses", toml::node_type::array, addrs_fix)) {
    const auto& arr = *n->as_array();
    if (arr.empty()) c.add(*n, join(path, "addresses") + ": is empty", addrs_fix);
    for (size_t i = 0; i < arr.size(); ++i) {
      std::string full = index(join(path, "addresses"), i);
      auto* s = c.typed(arr[i], full, toml::node_type::string, addr_fix);
      if (!s) continue;
      const std::string& text = s->as_string()->get();
      auto p = IpPrefix::parse(text);
      if (!p) {
        c.add(*s, full + ": " + quote(text) + " is not an address with a prefix length", addr_fix);
        continue;
      }
      if (is_unspecified_or_multicast(p->addr)) {
        c.add(*s, full + ": " + quote(text) + " is not a unicast address",
              "expected a unicast address of this SBC on the port's link");
        continue;
      }
      port.addresses.push_back(*p);
      nodes.addresses.push_back(s);
    }
  } else if (!t.contains("addresses")) {
    c.missing(t, join(path, "addresses"), addrs_fix);
  }

  parse_gateway(c, t, path, "gateway", Family::V4, port, port.gateway4);
  parse_gateway(c, t, path, "gateway6", Family::V6, port, port.gateway6);

  const std::string iface_fix =
      "expected a Linux interface name of 1 to 15 characters without '/', ':' or spaces";
  if (auto* n = c.string(t, path, "exception_iface", iface_fix)) {
    nodes.iface = n;
    if (!valid_ifname(n->get()))
      c.add(*n,
            join(path, "exception_iface") + ": " + quote(n->get()) +
                " is not a valid interface name" +
                (n->get().size() > kIfNameMax
                     ? " (" + std::to_string(n->get().size()) + " characters)"
                     : ""),
            iface_fix);
    else
      port.exception_iface = n->get();
  } else if (!t.contains("exception_iface") && nodes.name_ok) {
    port.exception_iface = "veil-" + port.name;
    if (!valid_ifname(port.exception_iface))
      c.add(*nodes.name,
            join(path, "name") + ": the default exception_iface " + quote(port.exception_iface) +
                " (\"veil-\" + name) is not a valid interface name",
            "set " + join(path, "exception_iface") +
                " explicitly (1 to 15 characters), or use a name of at "
                "most 10 characters without '/', ':' or spaces");
  }

  bool has_v6 = std::any_of(port.addresses.begin(), port.addresses.end(),
                            [](const IpPrefix& p) { return p.addr.is_v6(); });
  const int64_t mtu_lo = has_v6 ? 1280 : 576;
  std::string mtu_fix = "expected an integer from " + std::to_string(mtu_lo) + " to 9216" +
                        (has_v6 ? " (a port with an IPv6 address needs at least 1280)" : "");
  if (auto v = c.integer(t, path, "mtu", mtu_lo, 9216, mtu_fix)) port.mtu = uint16_t(*v);

  const std::string csum_fix =
      "expected rx_checksums = \"auto\", \"complete\" or \"partial\"";
  if (auto* n = c.string(t, path, "rx_checksums", csum_fix)) {
    if (n->get() == "auto")
      port.rx_checksums = PortConfig::RxChecksums::Auto;
    else if (n->get() == "complete")
      port.rx_checksums = PortConfig::RxChecksums::Complete;
    else if (n->get() == "partial")
      port.rx_checksums = PortConfig::RxChecksums::Partial;
    else
      c.add(*n, join(path, "rx_checksums") + ": " + quote(n->get()) + " is not a checksum mode",
            csum_fix);
  }
}

void parse_ports(Checker& c, const toml::table& root, Config& cfg) {
  const toml::node* pn = root.get("port");
  if (pn == nullptr) {
    c.add(root, "no [[port]] is defined", std::string(kTwoPorts));
    return;
  }
  if (!pn->is_array()) {
    c.add(*pn, std::string("port: is ") + a_type(pn->type()) + ", not an array of tables",
          "write each port as an array-of-tables entry: [[port]] (double brackets)");
    return;
  }
  const auto& arr = *pn->as_array();
  std::vector<PortConfig> ports(arr.size());
  std::vector<PortNodes> nodes(arr.size());
  std::vector<bool> ok(arr.size(), false);
  for (size_t i = 0; i < arr.size(); ++i) {
    std::string path = index("port", i);
    if (!arr[i].is_table()) {
      c.add(arr[i], path + ": " + render(arr[i]) + " is " + a_type(arr[i].type()) + ", not a table",
            "write each port as [[port]] followed by its keys");
      continue;
    }
    ok[i] = true;
    parse_port(c, *arr[i].as_table(), path, ports[i], nodes[i]);
    if (i >= 2)
      c.add(arr[i], path + ": a third port is defined",
            std::string(kTwoPorts) + "; remove this [[port]]");
  }

  // Roles: one external, one internal.
  int seen[2] = {-1, -1};
  bool all_roles = true;  // every port has a valid role and none repeats another's
  for (size_t i = 0; i < arr.size() && i < 2; ++i) {
    if (!ok[i] || !nodes[i].role_ok) {
      all_roles = false;
      continue;
    }
    int r = int(ports[i].role);
    if (seen[r] >= 0) {
      c.add(*nodes[i].role,
            index("port", i) + ".role: " + quote(role_name(ports[i].role)) +
                " is already the role of port[" + std::to_string(seen[r]) + "]",
            kTwoPorts);
      all_roles = false;  // the missing role is implied; do not report it again
    } else {
      seen[r] = int(i);
    }
  }
  if (all_roles && arr.size() <= 2) {
    for (Role r : {Role::External, Role::Internal}) {
      if (seen[int(r)] < 0)
        c.add(*pn, std::string("port: no port has role = \"") + role_name(r) + "\"", kTwoPorts);
    }
  }

  // Uniqueness across ports: names, devices, PCI addresses, exception interfaces, addresses.
  auto unique = [&](auto member, auto node_of, const char* key, const char* fix) {
    for (size_t i = 0; i < arr.size(); ++i) {
      if (!ok[i] || (ports[i].*member).empty()) continue;
      for (size_t j = 0; j < i; ++j) {
        if (!ok[j] || ports[j].*member != ports[i].*member) continue;
        const toml::node* at = node_of(nodes[i]);
        c.add(at ? *at : static_cast<const toml::node&>(*nodes[i].table),
              index("port", i) + "." + key + ": " + quote(ports[i].*member) +
                  " is already used by port[" + std::to_string(j) + "]",
              fix);
        break;
      }
    }
  };
  unique(
      &PortConfig::name, [](const PortNodes& n) { return n.name; }, "name",
      "each port needs its own name");
  unique(
      &PortConfig::device, [](const PortNodes& n) { return n.device; }, "device",
      "each port needs its own DPDK device");
  unique(
      &PortConfig::pci, [](const PortNodes& n) { return n.pci; }, "pci",
      "each port needs its own PCI device");
  unique(
      &PortConfig::exception_iface, [](const PortNodes& n) { return n.iface ? n.iface : n.name; },
      "exception_iface", "each port needs its own exception interface name");

  for (size_t i = 0; i < arr.size(); ++i) {
    if (!ok[i]) continue;
    for (size_t a = 0; a < ports[i].addresses.size(); ++a) {
      bool dup = false;
      for (size_t j = 0; j <= i && !dup; ++j) {
        if (!ok[j]) continue;
        size_t end = j == i ? a : ports[j].addresses.size();
        for (size_t b = 0; b < end; ++b) {
          if (ports[j].addresses[b].addr == ports[i].addresses[a].addr) {
            const auto& arr_i = *nodes[i].table->get("addresses")->as_array();
            const auto& arr_j = *nodes[j].table->get("addresses")->as_array();
            auto pos = [](const toml::array& arr, const toml::node* n) {
              for (size_t k = 0; k < arr.size(); ++k)
                if (&arr[k] == n) return k;
              return size_t(0);
            };
            c.add(*nodes[i].addresses[a],
                  index(index("port", i) + ".addresses", pos(arr_i, nodes[i].addresses[a])) + ": " +
                      ports[i].addresses[a].addr.str() + " is already used by " +
                      index(index("port", j) + ".addresses", pos(arr_j, nodes[j].addresses[b])),
                  "each address of the SBC may appear only once, on one port");
            dup = true;
            break;
          }
        }
      }
    }
  }

  // ports[0] is the external port and ports[1] the internal one.
  std::stable_sort(ports.begin(), ports.end(),
                   [](const PortConfig& a, const PortConfig& b) { return a.role < b.role; });
  cfg.ports = std::move(ports);
}

void parse_cores(Checker& c, const toml::table& root, Config& cfg) {
  const toml::table* t = c.table(root, "", "cores");
  bool control_ok = true;
  if (t) {
    c.keys(*t, "cores", "keys in [cores]", {"control", "workers"});
    if (auto v = c.integer(*t, "cores", "control", 0, kMaxLcore - 1))
      cfg.cores.control = unsigned(*v);
    else
      control_ok = !t->contains("control");
  }
  const std::string fix =
      "expected a non-empty array of distinct lcore ids from 0 to 127, without the "
      "control lcore, e.g. workers = [1, 2]";
  const toml::node* wn = t ? c.get(*t, "cores", "workers", toml::node_type::array, fix) : nullptr;
  if (!wn) {
    if (!t || !t->contains("workers"))
      cfg.cores.workers = {cfg.cores.control + 1 < kMaxLcore ? cfg.cores.control + 1 : 0};
    return;
  }
  const auto& arr = *wn->as_array();
  if (arr.empty()) c.add(*wn, "cores.workers: is empty", fix);
  for (size_t i = 0; i < arr.size(); ++i) {
    std::string full = index("cores.workers", i);
    auto* n = c.typed(arr[i], full, toml::node_type::integer, fix);
    if (!n) continue;
    int64_t v = n->as_integer()->get();
    if (v < 0 || v >= int64_t(kMaxLcore)) {
      c.add(*n, full + ": " + std::to_string(v) + " is not an lcore id", fix);
      continue;
    }
    if (control_ok && unsigned(v) == cfg.cores.control) {
      c.add(*n, full + ": " + std::to_string(v) + " is the control lcore (cores.control)",
            "the control plane runs alone on its lcore; pick other lcores for workers");
      continue;
    }
    if (std::find(cfg.cores.workers.begin(), cfg.cores.workers.end(), unsigned(v)) !=
        cfg.cores.workers.end()) {
      c.add(*n, full + ": " + std::to_string(v) + " is listed twice", fix);
      continue;
    }
    cfg.cores.workers.push_back(unsigned(v));
  }
}

void parse_media(Checker& c, const toml::table& root, Config& cfg) {
  const toml::table* media = c.table(root, "", "media");
  if (!media) return;
  c.keys(*media, "media", "keys in [media]", {"external", "internal"});
  for (Role r : {Role::External, Role::Internal}) {
    std::string path = join("media", role_name(r));
    const toml::table* t = c.table(*media, "media", role_name(r));
    if (!t) continue;
    c.keys(*t, path, "keys in [" + path + "]", {"ports"});
    const std::string fix = "expected \"first-last\" with 1 <= first <= last <= 65535";
    auto* n = c.string(*t, path, "ports", fix);
    if (!n) continue;
    std::string full = join(path, "ports");
    auto range = parse_range(n->get());
    if (!range) {
      c.add(*n, full + ": " + quote(n->get()) + " is not a port range", fix);
      continue;
    }
    if (range->last - range->first + 1 < 2) {
      c.add(*n, full + ": " + quote(n->get()) + " has fewer than 2 ports",
            "a range needs at least 2 ports (an RTP/RTCP pair), e.g. \"20000-29999\"");
      continue;
    }
    if (range->contains(5060) || range->contains(5061)) {
      c.add(*n, full + ": " + quote(n->get()) + " contains the SIP ports 5060/5061",
            "choose a range that includes neither 5060 nor 5061, e.g. \"20000-29999\"");
      continue;
    }
    (r == Role::External ? cfg.media_external : cfg.media_internal) = *range;
  }
}

void parse_limits(Checker& c, const toml::table& root, Config& cfg) {
  const toml::table* t = c.table(root, "", "limits");
  if (!t) return;
  c.keys(*t, "limits", "keys in [limits]",
         {"max_flows", "punt_pps", "punt_pps_per_source", "flow_idle_timeout", "relatch_after_ms"});
  if (auto v = c.integer(*t, "limits", "max_flows", 1, 16777216))
    cfg.limits.max_flows = uint32_t(*v);
  if (auto v = c.integer(*t, "limits", "punt_pps", 1, 100000000))
    cfg.limits.punt_pps = uint32_t(*v);
  if (auto v = c.integer(*t, "limits", "punt_pps_per_source", 0, 100000000))
    cfg.limits.punt_pps_per_source = uint32_t(*v);
  if (auto v = c.integer(*t, "limits", "flow_idle_timeout", 1, 86400,
                         "expected a number of seconds from 1 to 86400"))
    cfg.limits.flow_idle_timeout_s = uint32_t(*v);
  if (auto v = c.integer(*t, "limits", "relatch_after_ms", 0, 3600000,
                         "expected a number of milliseconds from 0 to 3600000"))
    cfg.limits.relatch_after_ms = uint32_t(*v);
}

void parse_dataplane(Checker& c, const toml::table& root, Config& cfg) {
  const toml::table* t = c.table(root, "", "dataplane");
  if (!t) return;
  auto& d = cfg.dataplane;
  c.keys(*t, "dataplane", "keys in [dataplane]",
         {"hugepages", "memory_mb", "mbufs", "burst", "rx_desc", "tx_desc", "file_prefix",
          "eal_args", "latching", "idle_sleep_us"});
  if (auto v = c.boolean(*t, "dataplane", "hugepages")) d.hugepages = *v;
  if (auto v = c.integer(*t, "dataplane", "memory_mb", 64, 1048576)) d.memory_mb = uint32_t(*v);
  if (auto v = c.integer(*t, "dataplane", "mbufs", 1023, 16777215)) d.mbufs = uint32_t(*v);
  if (auto v = c.integer(*t, "dataplane", "burst", 1, 64)) d.burst = uint16_t(*v);
  for (const char* key : {"rx_desc", "tx_desc"}) {
    const std::string fix =
        "expected a power of two from 64 to 4096 (64, 128, 256, 512, 1024, 2048, 4096)";
    if (auto v = c.integer(*t, "dataplane", key, 64, 4096, fix)) {
      if (!power_of_two(*v)) {
        c.add(*t->get(key),
              join("dataplane", key) + ": " + std::to_string(*v) + " is not a power of two", fix);
        continue;
      }
      (std::strcmp(key, "rx_desc") == 0 ? d.rx_desc : d.tx_desc) = uint16_t(*v);
    }
  }
  const std::string prefix_fix =
      "expected 1 to 64 characters from A-Z a-z 0-9 . _ -, e.g. file_prefix = \"veil\"";
  if (auto* n = c.string(*t, "dataplane", "file_prefix", prefix_fix)) {
    const auto& s = n->get();
    bool good = !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-';
    });
    if (good)
      d.file_prefix = s;
    else
      c.add(*n, "dataplane.file_prefix: " + quote(s) + " is not a valid file prefix", prefix_fix);
  }
  const std::string args_fix =
      "expected an array of strings, e.g. eal_args = [\"--log-level=pmd,debug\"]";
  if (auto* n = c.get(*t, "dataplane", "eal_args", toml::node_type::array, args_fix)) {
    const auto& arr = *n->as_array();
    for (size_t i = 0; i < arr.size(); ++i) {
      if (auto* s =
              c.typed(arr[i], index("dataplane.eal_args", i), toml::node_type::string, args_fix))
        d.eal_args.push_back(s->as_string()->get());
    }
  }
  if (auto v = c.integer(*t, "dataplane", "idle_sleep_us", 0, 100000,
                         "expected microseconds from 0 (pure polling) to 100000"))
    d.idle_sleep_us = uint32_t(*v);
  const std::string latch_fix = "expected latching = \"latch\" or latching = \"strict\"";
  if (auto* n = c.string(*t, "dataplane", "latching", latch_fix)) {
    if (n->get() == "latch")
      d.default_latch = LatchMode::Latch;
    else if (n->get() == "strict")
      d.default_latch = LatchMode::Strict;
    else
      c.add(*n, "dataplane.latching: " + quote(n->get()) + " is not a latching mode", latch_fix);
  }
}

void parse_management(Checker& c, const toml::table& root, Config& cfg) {
  const toml::table* t = c.table(root, "", "management");
  if (!t) return;
  c.keys(*t, "management", "keys in [management]", {"socket", "metrics"});
  const std::string mfix =
      "expected \"ADDRESS:PORT\" (IPv6 in brackets), e.g. metrics = \"127.0.0.1:9464\"";
  if (auto* n = c.string(*t, "management", "metrics", mfix)) {
    auto ep = Endpoint::parse(n->get());
    if (!ep)
      c.add(*n, "management.metrics: " + quote(n->get()) + " is not an address and port", mfix);
    else
      cfg.management.metrics = *ep;
  }
  const std::string fix =
      "expected an absolute path of at most 107 bytes, e.g. socket = \"/run/veil/veil.sock\"";
  if (auto* n = c.string(*t, "management", "socket", fix)) {
    const auto& s = n->get();
    if (s.empty() || s.front() != '/')
      c.add(*n, "management.socket: " + quote(s) + " is not an absolute path", fix);
    else if (s.back() == '/')
      c.add(*n, "management.socket: " + quote(s) + " names a directory, not a socket file", fix);
    else if (s.size() > kSunPathMax || s.find('\0') != std::string::npos)
      c.add(*n,
            "management.socket: " + quote(s) + " is longer than a Unix socket path may be (" +
                std::to_string(s.size()) + " bytes)",
            fix);
    else
      cfg.management.socket = s;
  }
}

// The SBC's SIP address on one side: `key` if given (it must be one of the port's
// addresses), else the port's first IPv4 address, else its first address.
void sip_address(Checker& c, const toml::table& t, Role r, const Config& cfg, bool ports_ok,
                 IpAddr& out) {
  const PortConfig* port = nullptr;
  if (ports_ok)
    for (const auto& p : cfg.ports)
      if (p.role == r) port = &p;
  std::string key = std::string(role_name(r)) + "_address";
  std::string mine;
  if (port)
    for (const auto& a : port->addresses) mine += (mine.empty() ? "" : ", ") + a.addr.str();
  const std::string fix = "expected one of the " + std::string(role_name(r)) +
                          " port's own addresses" + (mine.empty() ? "" : " (" + mine + ")") +
                          "; leave it out to use the port's first IPv4 address";
  if (auto* n = c.string(t, "sip", key, fix)) {
    auto addr = IpAddr::parse(n->get());
    if (!addr) {
      c.add(*n, "sip." + key + ": " + quote(n->get()) + " is not an IP address", fix);
      return;
    }
    if (port && std::none_of(port->addresses.begin(), port->addresses.end(),
                             [&](const IpPrefix& p) { return p.addr == *addr; })) {
      c.add(*n, "sip." + key + ": " + quote(n->get()) + " is not an address of the " +
                    role_name(r) + " port",
            fix);
      return;
    }
    out = *addr;
    return;
  }
  if (!port || port->addresses.empty()) return;
  out = port->addresses.front().addr;
  for (const auto& a : port->addresses)
    if (a.addr.is_v4()) {
      out = a.addr;
      break;
    }
}

std::optional<sip::Transport> sip_transport(Checker& c, const toml::table& t, std::string_view key) {
  const std::string fix = std::string("expected ") + std::string(key) + " = \"udp\", \"tcp\" or \"tls\"";
  auto* n = c.string(t, "sip", key, fix);
  if (!n) return std::nullopt;
  if (n->get() == "udp") return sip::Transport::Udp;
  if (n->get() == "tcp") return sip::Transport::Tcp;
  if (n->get() == "tls") return sip::Transport::Tls;
  c.add(*n, "sip." + std::string(key) + ": " + quote(n->get()) + " is not a transport", fix);
  return std::nullopt;
}

// "ADDRESS:PORT" ("[IPv6]:PORT") of a peer on side `r`, family checked against the SBC's
// SIP address there.
std::optional<Endpoint> sip_peer(Checker& c, const toml::table& t, std::string_view key,
                                 const IpAddr& sbc, std::string_view example) {
  const std::string fix = "expected \"ADDRESS:PORT\" (IPv6 as \"[ADDRESS]:PORT\"), e.g. " +
                          std::string(key) + " = \"" + std::string(example) + "\"";
  auto* n = c.string(t, "sip", key, fix);
  if (!n) return std::nullopt;
  std::string full = "sip." + std::string(key);
  auto ep = Endpoint::parse(n->get());
  if (!ep || !ep->valid()) {
    c.add(*n, full + ": " + quote(n->get()) + " is not an address and port", fix);
    return std::nullopt;
  }
  if (is_unspecified_or_multicast(ep->addr)) {
    c.add(*n, full + ": " + quote(n->get()) + " is not a unicast address", fix);
    return std::nullopt;
  }
  if (sbc.valid() && sbc.family != ep->addr.family) {
    c.add(*n,
          full + ": " + quote(n->get()) + " is an " + (ep->addr.is_v4() ? "IPv4" : "IPv6") +
              " address but Veil's SIP address on that side is " + sbc.str(),
          "use a peer of the same address family as Veil's SIP address on that side "
          "(sip.external_address / sip.internal_address)");
    return std::nullopt;
  }
  if (sbc.valid() && sbc == ep->addr) {
    c.add(*n, full + ": " + quote(n->get()) + " is Veil's own address", fix);
    return std::nullopt;
  }
  return ep;
}

// A PEM file named by [sip] key `key`: readable now, and holding `marker` (a "-----BEGIN ..."
// line). Empty when it is not (the error is added at the value).
std::string sip_pem_file(Checker& c, const toml::table& t, std::string_view key, std::string_view marker,
                         std::string_view what) {
  const std::string fix = "expected the path of a PEM file with the " + std::string(what) +
                          ", readable by veild, e.g. " + std::string(key) + " = \"/etc/veil/sip-" +
                          (key == "tls_certificate" ? "cert" : key == "tls_private_key" ? "key" : "ca") + ".pem\"";
  auto* n = c.string(t, "sip", key, fix);
  if (!n) return "";
  const std::string& path = n->get();
  std::string full = "sip." + std::string(key);
  FILE* f = path.empty() ? nullptr : std::fopen(path.c_str(), "rb");
  if (!f) {
    c.add(*n, full + ": " + quote(path) + ": " + (path.empty() ? "empty path" : std::strerror(errno)), fix);
    return "";
  }
  std::string head(65536, '\0');
  head.resize(std::fread(head.data(), 1, head.size(), f));
  std::fclose(f);
  if (head.find(marker) == std::string::npos) {
    c.add(*n, full + ": " + quote(path) + " holds no " + std::string(what) + " (no \"" + std::string(marker) + "\" line)",
          fix);
    return "";
  }
  return path;
}

void parse_sip(Checker& c, const toml::table& root, Config& cfg, bool ports_ok) {
  const toml::table* t = c.table(root, "", "sip");
  if (!t) return;
  auto& s = cfg.sip;
  auto& b = s.b2bua;
  c.keys(*t, "sip", "keys in [sip]",
         {"enabled", "port", "udp", "tcp", "external_address", "internal_address", "pbx",
          "pbx_transport", "untrusted_target", "untrusted_transport", "header_allow_list",
          "user_agent", "no_response_timeout_ms", "t1_ms", "register_domain",
          "register_min_expires_s", "register_max_expires_s", "register_min_interval_s",
          "tls_port", "tls_certificate", "tls_private_key", "tls_ca_file", "max_message_size",
          "min_se_s", "pbx_srtp", "tls_client_auth"});
  if (auto v = c.boolean(*t, "sip", "enabled")) s.enabled = *v;
  if (auto v = c.integer(*t, "sip", "port", 1, 65535)) {
    bool clash = false;
    for (Role r : {Role::External, Role::Internal}) {
      if (!cfg.media(r).contains(uint16_t(*v)) || clash) continue;
      clash = true;
      c.add(*t->get("port"),
            "sip.port: " + std::to_string(*v) + " lies in media." + role_name(r) + ".ports (" +
                std::to_string(cfg.media(r).first) + "-" + std::to_string(cfg.media(r).last) + ")",
            "the dataplane keeps the media ranges to itself; choose a SIP port outside both, "
            "e.g. 5060");
    }
    if (!clash) b.external.port = b.internal.port = uint16_t(*v);
  }
  if (auto v = c.boolean(*t, "sip", "udp")) b.external.udp = b.internal.udp = *v;
  if (auto v = c.boolean(*t, "sip", "tcp")) b.external.tcp = b.internal.tcp = *v;
  if (!b.external.udp && !b.external.tcp && !t->contains("tls_port"))
    c.add(*t->get("udp"), "sip.udp and sip.tcp: both are false",
          "enable at least one SIP transport (udp = true, tcp = true, or tls_port with a certificate)");

  // SIP over TLS: one port on both sides, one certificate.
  if (auto v = c.integer(*t, "sip", "tls_port", 1, 65535)) {
    bool bad = false;
    for (Role r : {Role::External, Role::Internal}) {
      if (!cfg.media(r).contains(uint16_t(*v)) || bad) continue;
      bad = true;
      c.add(*t->get("tls_port"),
            "sip.tls_port: " + std::to_string(*v) + " lies in media." + role_name(r) + ".ports (" +
                std::to_string(cfg.media(r).first) + "-" + std::to_string(cfg.media(r).last) + ")",
            "the dataplane keeps the media ranges to itself; choose a port outside both, e.g. 5061");
    }
    if (!bad && uint16_t(*v) == b.external.port) {
      bad = true;
      c.add(*t->get("tls_port"), "sip.tls_port: " + std::to_string(*v) + " is also sip.port",
            "TLS needs a port of its own, e.g. tls_port = 5061");
    }
    if (!bad) b.external.tls_port = b.internal.tls_port = uint16_t(*v);
  }
  b.tls_certificate = sip_pem_file(c, *t, "tls_certificate", "-----BEGIN CERTIFICATE-----", "certificate");
  b.tls_private_key = sip_pem_file(c, *t, "tls_private_key", "PRIVATE KEY-----", "private key");
  b.tls_ca_file = sip_pem_file(c, *t, "tls_ca_file", "-----BEGIN CERTIFICATE-----", "CA certificates");
  if (t->contains("tls_port") && b.external.tls_port) {
    for (const char* key : {"tls_certificate", "tls_private_key"})
      if (!t->contains(key))
        c.missing(*t, std::string("sip.") + key,
                  std::string("with tls_port set, name the PEM file, e.g. ") + key + " = \"/etc/veil/sip-" +
                      (std::strcmp(key, "tls_certificate") == 0 ? "cert" : "key") + ".pem\"");
  }

  const std::string auth_fix =
      "expected tls_client_auth = \"off\", \"internal\" (the PBX must present a certificate) or "
      "\"all\" (every TLS client, phones too)";
  if (auto* n = c.string(*t, "sip", "tls_client_auth", auth_fix)) {
    const std::string& v = n->get();
    if (v == "internal" || v == "all") {
      b.tls_client_auth[1] = true;
      b.tls_client_auth[0] = v == "all";
      if (!t->contains("tls_port") || !t->contains("tls_ca_file"))
        c.add(*n, "sip.tls_client_auth: " + quote(v) + " needs tls_port and tls_ca_file",
              "set tls_port and tls_ca_file (the CA certificates client certificates must chain to), "
              "or tls_client_auth = \"off\"");
    } else if (v != "off") {
      c.add(*n, "sip.tls_client_auth: " + quote(v) + " is not a policy", auth_fix);
    }
  }

  sip_address(c, *t, Role::External, cfg, ports_ok, b.external.addr);
  sip_address(c, *t, Role::Internal, cfg, ports_ok, b.internal.addr);

  auto pbx_tr = sip_transport(c, *t, "pbx_transport");
  auto target_tr = sip_transport(c, *t, "untrusted_transport");
  for (auto [tr, key] : {std::pair{pbx_tr, "pbx_transport"}, std::pair{target_tr, "untrusted_transport"}}) {
    if (!tr) continue;
    if (*tr == sip::Transport::Tls && !b.external.tls_port) {
      c.add(*t->get(key), std::string("sip.") + key + ": \"tls\" but sip.tls_port is not set",
            "set tls_port (and tls_certificate, tls_private_key), or use \"udp\" or \"tcp\"");
      continue;
    }
    if (*tr == sip::Transport::Tcp && !b.external.tcp) {
      c.add(*t->get(key), std::string("sip.") + key + ": \"tcp\" but sip.tcp = false",
            "set tcp = true, or use \"udp\"");
      continue;
    }
    if (*tr == sip::Transport::Udp && !b.external.udp) {
      c.add(*t->get(key), std::string("sip.") + key + ": \"udp\" but sip.udp = false",
            "set udp = true, or use \"tcp\"");
      continue;
    }
    (std::strcmp(key, "pbx_transport") == 0 ? b.pbx_transport : b.untrusted_transport) = *tr;
  }
  // Without an explicit transport the peer is reached over UDP; if UDP is off, over TCP.
  const sip::Transport fallback = b.external.tcp ? sip::Transport::Tcp : sip::Transport::Tls;
  if (!t->contains("pbx_transport") && !b.external.udp) b.pbx_transport = fallback;
  if (!t->contains("untrusted_transport") && !b.external.udp) b.untrusted_transport = fallback;

  if (auto ep = sip_peer(c, *t, "pbx", b.internal.addr, "198.51.100.10:5060"))
    b.pbx = *ep;
  else if (s.enabled && !t->contains("pbx"))
    c.missing(*t, "sip.pbx",
              "with enabled = true, name the trusted peer (PBX, trunk), e.g. pbx = "
              "\"198.51.100.10:5060\"");
  const std::string srtp_fix =
      "expected pbx_srtp = \"off\", \"AES_CM_128_HMAC_SHA1_80\", \"AES_CM_128_HMAC_SHA1_32\" or "
      "\"AEAD_AES_128_GCM\"";
  if (auto* n = c.string(*t, "sip", "pbx_srtp", srtp_fix)) {
    if (n->get() != "off") {
      b.pbx_srtp = sip::sdes_suite_parse(n->get());
      if (b.pbx_srtp == sip::SdesSuite::Unknown)
        c.add(*n, "sip.pbx_srtp: " + quote(n->get()) + " is not an SRTP suite Veil does", srtp_fix);
    }
  }
  if (auto ep = sip_peer(c, *t, "untrusted_target", b.external.addr, "203.0.113.10:5060"))
    b.untrusted_target = *ep;

  const std::string list_fix =
      "expected an array of header names, e.g. header_allow_list = [\"Subject\"]; routing, "
      "identity and software headers are never copied";
  if (auto* n = c.get(*t, "sip", "header_allow_list", toml::node_type::array, list_fix)) {
    const auto& arr = *n->as_array();
    for (size_t i = 0; i < arr.size(); ++i) {
      std::string full = index("sip.header_allow_list", i);
      auto* e = c.typed(arr[i], full, toml::node_type::string, list_fix);
      if (!e) continue;
      const std::string& h = e->as_string()->get();
      bool token = !h.empty() && h.size() <= 64 && std::all_of(h.begin(), h.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) || std::strchr("-.!%*_+`'~", ch);
      });
      if (!token)
        c.add(*e, full + ": " + quote(h) + " is not a header name", list_fix);
      else if (sip::header_never_copied(h))
        c.add(*e, full + ": " + quote(h) + " is never copied across",
              "it carries routing, dialog, identity or software information, which Veil "
              "generates per leg (docs/topology-hiding.md); remove it from the list");
      else
        b.header_allow_list.push_back(h);
    }
  }
  const std::string ua_fix =
      "expected one line of printable text (at most 128 bytes), or \"\" for no User-Agent/Server header";
  if (auto* n = c.string(*t, "sip", "user_agent", ua_fix)) {
    const auto& v = n->get();
    bool good = v.size() <= 128 && std::all_of(v.begin(), v.end(), [](char ch) {
      auto u = static_cast<unsigned char>(ch);
      return u >= 0x20 && u != 0x7f;
    });
    if (good)
      b.user_agent = v;
    else
      c.add(*n, "sip.user_agent: " + quote(v) + " is not one line of printable text", ua_fix);
  }
  if (auto v = c.integer(*t, "sip", "no_response_timeout_ms", 500, 60000,
                         "expected milliseconds from 500 to 60000"))
    b.no_response_timeout_ms = uint32_t(*v);
  if (auto v = c.integer(*t, "sip", "t1_ms", 100, 5000, "expected milliseconds from 100 to 5000"))
    b.t1_ms = uint32_t(*v);
  if (auto v = c.integer(*t, "sip", "max_message_size", 1024, 1048576,
                         "expected bytes from 1024 to 1048576 (larger messages get 413)"))
    b.max_message_size = uint32_t(*v);
  if (auto v = c.integer(*t, "sip", "min_se_s", 1, 86400,
                         "expected seconds from 1 to 86400 (RFC 4028 recommends at least 90)"))
    b.min_se_s = uint32_t(*v);

  // Registrations (issue 3, item 4).
  const std::string domain_fix =
      "expected the PBX's SIP domain as a host name, e.g. register_domain = \"voice.example.com\", "
      "or \"\" for the PBX's address";
  if (auto* n = c.string(*t, "sip", "register_domain", domain_fix)) {
    const auto& v = n->get();
    bool good = v.size() <= 253 && std::all_of(v.begin(), v.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-';
    });
    if (good)
      b.register_domain = v;
    else
      c.add(*n, "sip.register_domain: " + quote(v) + " is not a host name", domain_fix);
  }
  if (auto v = c.integer(*t, "sip", "register_min_expires_s", 1, 86400, "expected seconds from 1 to 86400"))
    b.register_min_expires_s = uint32_t(*v);
  if (auto v = c.integer(*t, "sip", "register_max_expires_s", 1, 86400, "expected seconds from 1 to 86400"))
    b.register_max_expires_s = uint32_t(*v);
  if (b.register_min_expires_s > b.register_max_expires_s)
    c.add(*t->get(t->contains("register_max_expires_s") ? "register_max_expires_s" : "register_min_expires_s"),
          "sip.register_min_expires_s (" + std::to_string(b.register_min_expires_s) +
              ") is above sip.register_max_expires_s (" + std::to_string(b.register_max_expires_s) + ")",
          "the Expires Veil sends to the PBX is clamped to [min, max]: make min <= max");
  if (auto v = c.integer(*t, "sip", "register_min_interval_s", 0, 86400,
                         "expected seconds from 0 (relay every refresh) to 86400"))
    b.register_min_interval_s = uint32_t(*v);
}

// [websocket]: the gateway's listeners share the untrusted SIP address and need the B2BUA's
// TCP transport there.
void parse_websocket(Checker& c, const toml::table& root, Config& cfg) {
  const toml::table* t = c.table(root, "", "websocket");
  if (!t) return;
  auto& w = cfg.websocket;
  c.keys(*t, "websocket", "keys in [websocket]",
         {"ws_port", "wss_port", "certificate", "private_key", "allowed_origins", "max_connections",
          "max_connections_per_source", "max_message_bytes", "handshake_timeout_ms", "idle_timeout_s"});
  auto port = [&](std::string_view key, uint16_t& out) {
    auto v = c.integer(*t, "websocket", key, 0, 65535, "expected a TCP port from 1 to 65535, or 0 for off");
    if (!v || *v == 0) return;
    const toml::node& n = *t->get(key);
    std::string full = "websocket." + std::string(key);
    for (Role r : {Role::External, Role::Internal}) {
      if (cfg.media(r).contains(uint16_t(*v))) {
        c.add(n, full + ": " + std::to_string(*v) + " lies in media." + role_name(r) + ".ports",
              "choose a port outside the media ranges, e.g. 8443 for wss, 8080 for ws");
        return;
      }
    }
    if (cfg.sip.b2bua.external.port == *v) {
      c.add(n, full + ": " + std::to_string(*v) + " is sip.port (the B2BUA's own TCP listener)",
            "choose another port, e.g. 8443 for wss, 8080 for ws");
      return;
    }
    out = uint16_t(*v);
  };
  port("ws_port", w.ws_port);
  port("wss_port", w.wss_port);
  if (w.ws_port && w.ws_port == w.wss_port) {
    c.add(*t->get("wss_port"), "websocket.wss_port: " + std::to_string(w.wss_port) + " is also ws_port",
          "give ws and wss different ports, or set ws_port = 0");
    w.ws_port = 0;
  }
  for (auto [key, out] : {std::pair{"certificate", &w.certificate}, std::pair{"private_key", &w.private_key}}) {
    std::string fix = std::string("expected the path of a readable PEM file, e.g. ") + key + " = \"/etc/veil/wss." +
                      (out == &w.certificate ? "crt" : "key") + "\"";
    auto* n = c.string(*t, "websocket", key, fix);
    if (!n) continue;
    if (n->get().empty() || access(n->get().c_str(), R_OK) != 0)
      c.add(*n, std::string("websocket.") + key + ": " + quote(n->get()) + " cannot be read" +
                    (n->get().empty() ? "" : std::string(" (") + std::strerror(errno) + ")"),
            fix);
    else
      *out = n->get();
  }
  if (w.wss_port && (w.certificate.empty() || w.private_key.empty()) && c.count() == 0)
    c.missing(*t, w.certificate.empty() ? "websocket.certificate" : "websocket.private_key",
              "wss needs a certificate and its private key (PEM), e.g. certificate = \"/etc/veil/wss.crt\", "
              "private_key = \"/etc/veil/wss.key\"");
  const std::string ofix =
      "expected an array of origins, e.g. allowed_origins = [\"https://phone.example.com\"] "
      "(scheme://host[:port], no path); leave it out to accept any origin";
  if (auto* n = c.get(*t, "websocket", "allowed_origins", toml::node_type::array, ofix)) {
    const auto& arr = *n->as_array();
    for (size_t i = 0; i < arr.size(); ++i) {
      std::string full = index("websocket.allowed_origins", i);
      auto* e = c.typed(arr[i], full, toml::node_type::string, ofix);
      if (!e) continue;
      const std::string& o = e->as_string()->get();
      size_t sep = o.find("://");
      bool good = (o.rfind("https://", 0) == 0 || o.rfind("http://", 0) == 0) && sep != std::string::npos &&
                  o.size() > sep + 3 && o.find('/', sep + 3) == std::string::npos &&
                  std::all_of(o.begin(), o.end(), [](char ch) { return ch > 0x20 && ch < 0x7f; });
      if (good)
        w.allowed_origins.push_back(o);
      else
        c.add(*e, full + ": " + quote(o) + " is not an origin", ofix);
    }
  }
  if (auto v = c.integer(*t, "websocket", "max_connections", 1, 1000000)) w.max_connections = uint32_t(*v);
  if (auto v = c.integer(*t, "websocket", "max_connections_per_source", 1, 1000000))
    w.max_connections_per_source = uint32_t(*v);
  if (auto v = c.integer(*t, "websocket", "max_message_bytes", 1024, 1048576,
                         "expected bytes from 1024 to 1048576"))
    w.max_message_bytes = uint32_t(*v);
  if (auto v = c.integer(*t, "websocket", "handshake_timeout_ms", 100, 60000,
                         "expected milliseconds from 100 to 60000"))
    w.handshake_timeout_ms = uint32_t(*v);
  if (auto v = c.integer(*t, "websocket", "idle_timeout_s", 5, 3600, "expected seconds from 5 to 3600"))
    w.idle_timeout_s = uint32_t(*v);
  if (w.enabled() && (!cfg.sip.enabled || !cfg.sip.b2bua.external.tcp))
    c.add(*t, "websocket: ws_port/wss_port need the B2BUA with TCP",
          "set [sip] enabled = true and tcp = true (the gateway hands each WebSocket to the B2BUA over TCP)");
}

ParseResult validate(const toml::table& root, const std::string& name) {
  Checker c(name);
  Config cfg;
  cfg.source = name;
  c.keys(root, "", "top-level keys and tables",
         {"port", "cores", "media", "limits", "dataplane", "management", "sip", "websocket"});
  parse_ports(c, root, cfg);
  const bool ports_ok = c.count() == 0 && cfg.ports.size() == 2;
  parse_cores(c, root, cfg);
  parse_media(c, root, cfg);
  parse_limits(c, root, cfg);
  parse_dataplane(c, root, cfg);
  parse_management(c, root, cfg);
  parse_sip(c, root, cfg, ports_ok);
  parse_websocket(c, root, cfg);
  // The B2BUA's own check, as a backstop for anything the per-key checks above let through.
  if (cfg.sip.enabled && c.count() == 0) {
    if (std::string e = sip::validate(cfg.sip.b2bua); !e.empty())
      c.add(*root.get("sip"), e, "see [sip] in docs/configuration.md");
  }
  ParseResult r;
  r.errors = c.take();
  if (r.errors.empty()) r.config = std::move(cfg);
  return r;
}

ParseResult fail(const std::string& file, uint32_t line, uint32_t column, std::string what,
                 std::string fix) {
  ParseResult r;
  r.errors.push_back(Error{file, line, column, std::move(what), std::move(fix)});
  return r;
}

}  // namespace

ParseResult parse_string(std::string_view text, const std::string& name) {
  try {
    toml::table root;
    try {
      root = toml::parse(text, std::string_view(name));
    } catch (const toml::parse_error& e) {
      const auto& at = e.source().begin;
      return fail(name, at.line, at.column, std::string(e.description()),
                  "fix the TOML syntax (TOML v1.0.0: key = value, [table], [[array-of-tables]])");
    }
    return validate(root, name);
  } catch (const std::exception& e) {
    return fail(name, 0, 0,
                std::string("internal error while reading the configuration: ") + e.what(),
                "report this as a bug");
  } catch (...) {
    return fail(name, 0, 0, "internal error while reading the configuration",
                "report this as a bug");
  }
}

ParseResult parse_file(const std::string& path) {
  const std::string fix = "check the path of the configuration file and that veild may read it";
  try {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr)
      return fail(path, 0, 0,
                  std::string("cannot open the configuration file: ") + std::strerror(errno), fix);
    struct stat st {};
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
      std::fclose(f);
      return fail(path, 0, 0, "cannot read the configuration file: it is a directory", fix);
    }
    std::string text;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
      text.append(buf, n);
      if (text.size() > size_t(kMaxFileBytes)) {
        std::fclose(f);
        return fail(path, 0, 0, "the configuration file is larger than 4 MiB",
                    "check that the path names the configuration file");
      }
    }
    bool bad = std::ferror(f) != 0;
    int err = errno;
    std::fclose(f);
    if (bad)
      return fail(path, 0, 0,
                  std::string("cannot read the configuration file: ") + std::strerror(err), fix);
    return parse_string(text, path);
  } catch (const std::exception& e) {
    return fail(path, 0, 0, std::string("cannot read the configuration file: ") + e.what(), fix);
  }
}

}  // namespace veil::config
