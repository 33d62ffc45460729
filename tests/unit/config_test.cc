// Unit tests of the configuration parser (controlplane/config.cc).
#include "controlplane/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <string>

#ifndef VEIL_SOURCE_DIR
#error "VEIL_SOURCE_DIR must be defined (tests/unit/meson.build passes it)"
#endif

namespace veil::config {
namespace {

// Every key set, most to non-default values. Port 1 uses pci, port 0 device.
const char* const kFull = R"([[port]]
name = "ext0"
role = "external"
device = "net_af_packet0,iface=veth-ext"
addresses = ["203.0.113.1/24", "2001:db8:1::1/64"]
gateway = "203.0.113.254"
gateway6 = "2001:db8:1::fe"
exception_iface = "vx-ext"
mtu = 1400

[[port]]
name = "int0"
role = "internal"
pci = "0000:03:00.1"
addresses = ["198.51.100.1/24"]
gateway = "198.51.100.254"
mtu = 9000

[cores]
control = 2
workers = [3, 5]

[media.external]
ports = "20000-29999"
[media.internal]
ports = "30000-39999"

[limits]
max_flows = 1000
punt_pps = 5000
flow_idle_timeout = 30
relatch_after_ms = 500

[dataplane]
hugepages = true
memory_mb = 1024
mbufs = 32767
burst = 16
rx_desc = 512
tx_desc = 2048
file_prefix = "veil-test"
eal_args = ["--log-level=pmd,debug", "--no-telemetry"]
latching = "strict"
idle_sleep_us = 50

[management]
socket = "/tmp/veil-test.sock"
metrics = "[::1]:9464"
)";

// Only what is required.
const char* const kMinimal = R"([[port]]
name = "ext0"
role = "external"
device = "net_null0"
addresses = ["203.0.113.1/24"]

[[port]]
name = "int0"
role = "internal"
device = "net_null1"
addresses = ["198.51.100.1/24"]
)";

std::string replace_first(std::string text, const std::string& from, const std::string& to) {
  auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "test bug: " << from << " not in the text";
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

struct Pos {
  uint32_t line = 0;
  uint32_t column = 0;
};

// `where` is a piece of `text` with one '|' marking the expected error position.
Pos pos_of(const std::string& text, const std::string& where) {
  auto bar = where.find('|');
  EXPECT_NE(bar, std::string::npos) << "test bug: no '|' in " << where;
  std::string needle = where.substr(0, bar) + where.substr(bar + 1);
  auto at = text.find(needle);
  EXPECT_NE(at, std::string::npos) << "test bug: " << needle << " not in the text";
  if (at == std::string::npos) return {};
  at += bar;
  Pos p{1, 1};
  for (size_t i = 0; i < at; ++i) {
    if (text[i] == '\n') {
      ++p.line;
      p.column = 1;
    } else {
      ++p.column;
    }
  }
  return p;
}

std::string dump(const ParseResult& r) {
  std::string s;
  for (const auto& e : r.errors) s += "  " + e.str() + "\n";
  return s.empty() ? "  (no errors)\n" : s;
}

// The error at `where` whose what contains `what`, or nullptr.
const Error* find_error(const ParseResult& r, const std::string& text, const std::string& where,
                        const std::string& what) {
  Pos p = pos_of(text, where);
  for (const auto& e : r.errors)
    if (e.line == p.line && e.column == p.column && e.what.find(what) != std::string::npos)
      return &e;
  return nullptr;
}

void expect_error(const std::string& text, const std::string& where, const std::string& what,
                  const std::string& fix) {
  ParseResult r = parse_string(text, "t.toml");
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.config.has_value());
  Pos p = pos_of(text, where);
  const Error* e = find_error(r, text, where, what);
  ASSERT_NE(e, nullptr) << "expected at " << p.line << ":" << p.column << " an error with \""
                        << what << "\"; got:\n"
                        << dump(r);
  EXPECT_EQ(e->file, "t.toml");
  EXPECT_NE(e->fix.find(fix), std::string::npos)
      << "fix: " << e->fix << "\nexpected to contain: " << fix;
}

// ---------------------------------------------------------------------------

TEST(Config, FullConfigParsesEveryValue) {
  ParseResult r = parse_string(kFull, "full.toml");
  ASSERT_TRUE(r.ok()) << dump(r);
  const Config& c = *r.config;
  EXPECT_EQ(c.source, "full.toml");
  ASSERT_EQ(c.ports.size(), 2u);

  const PortConfig& ext = c.ports[0];
  EXPECT_EQ(ext.name, "ext0");
  EXPECT_EQ(ext.role, Role::External);
  EXPECT_EQ(ext.device, "net_af_packet0,iface=veth-ext");
  EXPECT_EQ(ext.pci, "");
  ASSERT_EQ(ext.addresses.size(), 2u);
  EXPECT_EQ(ext.addresses[0].str(), "203.0.113.1/24");
  EXPECT_EQ(ext.addresses[1].str(), "2001:db8:1::1/64");
  ASSERT_TRUE(ext.gateway4.has_value());
  EXPECT_EQ(ext.gateway4->str(), "203.0.113.254");
  ASSERT_TRUE(ext.gateway6.has_value());
  EXPECT_EQ(ext.gateway6->str(), "2001:db8:1::fe");
  EXPECT_EQ(ext.exception_iface, "vx-ext");
  EXPECT_EQ(ext.mtu, 1400);

  const PortConfig& in = c.ports[1];
  EXPECT_EQ(in.name, "int0");
  EXPECT_EQ(in.role, Role::Internal);
  EXPECT_EQ(in.device, "");
  EXPECT_EQ(in.pci, "0000:03:00.1");
  ASSERT_EQ(in.addresses.size(), 1u);
  EXPECT_EQ(in.addresses[0].str(), "198.51.100.1/24");
  ASSERT_TRUE(in.gateway4.has_value());
  EXPECT_EQ(in.gateway4->str(), "198.51.100.254");
  EXPECT_FALSE(in.gateway6.has_value());
  EXPECT_EQ(in.exception_iface, "veil-int0");
  EXPECT_EQ(in.mtu, 9000);

  EXPECT_EQ(c.cores.control, 2u);
  EXPECT_EQ(c.cores.workers, (std::vector<unsigned>{3, 5}));
  EXPECT_EQ(c.media_external.first, 20000);
  EXPECT_EQ(c.media_external.last, 29999);
  EXPECT_EQ(c.media_internal.first, 30000);
  EXPECT_EQ(c.media_internal.last, 39999);
  EXPECT_EQ(&c.media(Role::Internal), &c.media_internal);
  EXPECT_EQ(c.limits.max_flows, 1000u);
  EXPECT_EQ(c.limits.punt_pps, 5000u);
  EXPECT_EQ(c.limits.flow_idle_timeout_s, 30u);
  EXPECT_EQ(c.limits.relatch_after_ms, 500u);
  EXPECT_TRUE(c.dataplane.hugepages);
  EXPECT_EQ(c.dataplane.memory_mb, 1024u);
  EXPECT_EQ(c.dataplane.mbufs, 32767u);
  EXPECT_EQ(c.dataplane.burst, 16);
  EXPECT_EQ(c.dataplane.rx_desc, 512);
  EXPECT_EQ(c.dataplane.tx_desc, 2048);
  EXPECT_EQ(c.dataplane.file_prefix, "veil-test");
  EXPECT_EQ(c.dataplane.eal_args,
            (std::vector<std::string>{"--log-level=pmd,debug", "--no-telemetry"}));
  EXPECT_EQ(c.dataplane.default_latch, LatchMode::Strict);
  EXPECT_EQ(c.dataplane.idle_sleep_us, 50u);
  EXPECT_EQ(c.management.socket, "/tmp/veil-test.sock");
  ASSERT_TRUE(c.management.metrics.has_value());
  EXPECT_EQ(c.management.metrics->str(), "[::1]:9464");
}

TEST(Config, RxChecksums) {
  ParseResult d = parse_string(kFull, "full.toml");
  ASSERT_TRUE(d.ok()) << dump(d);
  for (const auto& p : d.config->ports) EXPECT_EQ(p.rx_checksums, PortConfig::RxChecksums::Auto);
  for (auto [text, want] : {std::pair{"auto", PortConfig::RxChecksums::Auto},
                            std::pair{"complete", PortConfig::RxChecksums::Complete},
                            std::pair{"partial", PortConfig::RxChecksums::Partial}}) {
    std::string t = replace_first(kFull, "mtu = 9000",
                                  std::string("mtu = 9000\nrx_checksums = \"") + text + "\"");
    ParseResult r = parse_string(t, "c.toml");
    ASSERT_TRUE(r.ok()) << dump(r);
    EXPECT_EQ(r.config->ports[1].rx_checksums, want) << text;
    EXPECT_EQ(r.config->ports[0].rx_checksums, PortConfig::RxChecksums::Auto);
  }
}

TEST(Config, MetricsAddressMustBeAddressAndPort) {
  std::string text = kFull;
  auto at = text.find("metrics = \"[::1]:9464\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, std::string("metrics = \"[::1]:9464\"").size(), "metrics = \"localhost:9464\"");
  ParseResult r = parse_string(text, "m.toml");
  ASSERT_FALSE(r.ok());
  bool found = false;
  for (const auto& e : r.errors)
    if (e.what.find("management.metrics") != std::string::npos && e.line > 0) found = true;
  EXPECT_TRUE(found) << r.errors.front().str();
}

TEST(Config, DefaultsWhenKeysAreAbsent) {
  ParseResult r = parse_string(kMinimal, "min.toml");
  ASSERT_TRUE(r.ok()) << dump(r);
  const Config& c = *r.config;
  const Config d;  // the defaults of config.h
  ASSERT_EQ(c.ports.size(), 2u);
  for (const auto& p : c.ports) {
    EXPECT_EQ(p.mtu, 1500);
    EXPECT_FALSE(p.gateway4.has_value());
    EXPECT_FALSE(p.gateway6.has_value());
    EXPECT_EQ(p.pci, "");
  }
  EXPECT_EQ(c.ports[0].exception_iface, "veil-ext0");
  EXPECT_EQ(c.ports[1].exception_iface, "veil-int0");
  EXPECT_EQ(c.cores.control, 0u);
  EXPECT_EQ(c.cores.workers, (std::vector<unsigned>{1}));
  EXPECT_EQ(c.media_external.first, 20000);
  EXPECT_EQ(c.media_external.last, 29999);
  EXPECT_EQ(c.media_internal.first, 30000);
  EXPECT_EQ(c.media_internal.last, 39999);
  EXPECT_EQ(c.limits.max_flows, d.limits.max_flows);
  EXPECT_EQ(c.limits.max_flows, 65536u);
  EXPECT_EQ(c.limits.punt_pps, 20000u);
  EXPECT_EQ(c.limits.flow_idle_timeout_s, 60u);
  EXPECT_EQ(c.limits.relatch_after_ms, 2000u);
  EXPECT_FALSE(c.dataplane.hugepages);
  EXPECT_EQ(c.dataplane.memory_mb, 256u);
  EXPECT_EQ(c.dataplane.mbufs, 16383u);
  EXPECT_EQ(c.dataplane.burst, 32);
  EXPECT_EQ(c.dataplane.rx_desc, 1024);
  EXPECT_EQ(c.dataplane.tx_desc, 1024);
  EXPECT_EQ(c.dataplane.file_prefix, "");  // veild uses "veil-<pid>"
  EXPECT_TRUE(c.dataplane.eal_args.empty());
  EXPECT_EQ(c.dataplane.default_latch, LatchMode::Latch);
  EXPECT_EQ(c.dataplane.idle_sleep_us, 0u);
  EXPECT_EQ(c.management.socket, "/run/veil/veil.sock");
}

TEST(Config, DefaultWorkerFollowsControl) {
  std::string text = std::string(kMinimal) + "[cores]\ncontrol = 4\n";
  ParseResult r = parse_string(text, "t.toml");
  ASSERT_TRUE(r.ok()) << dump(r);
  EXPECT_EQ(r.config->cores.control, 4u);
  EXPECT_EQ(r.config->cores.workers, (std::vector<unsigned>{5}));
}

TEST(Config, PortsAreOrderedByRole) {
  // The internal port first in the file: ports[0] is still the external one.
  std::string text = R"([[port]]
name = "in"
role = "internal"
device = "net_null1"
addresses = ["198.51.100.1/24"]
[[port]]
name = "out"
role = "external"
device = "net_null0"
addresses = ["203.0.113.1/24"]
)";
  ParseResult r = parse_string(text, "t.toml");
  ASSERT_TRUE(r.ok()) << dump(r);
  EXPECT_EQ(r.config->ports[0].name, "out");
  EXPECT_EQ(r.config->ports[0].role, Role::External);
  EXPECT_EQ(r.config->ports[1].name, "in");
  EXPECT_EQ(r.config->ports[1].role, Role::Internal);
}

TEST(Config, InlineTablesAndDottedKeysAreAccepted) {
  std::string text = R"(port = [
  { name = "a", role = "external", device = "net_null0", addresses = ["203.0.113.1/24"] },
  { name = "b", role = "internal", pci = "0000:AF:1f.7", addresses = ["2001:db8:2::1/64"], gateway6 = "2001:db8:2::fe" },
]
media.external.ports = "40000-40001"
)";
  ParseResult r = parse_string(text, "t.toml");
  ASSERT_TRUE(r.ok()) << dump(r);
  EXPECT_EQ(r.config->ports[1].pci, "0000:AF:1f.7");
  EXPECT_EQ(r.config->ports[1].gateway6->str(), "2001:db8:2::fe");
  EXPECT_EQ(r.config->media_external.first, 40000);
  EXPECT_EQ(r.config->media_external.last, 40001);
}

TEST(Config, ExampleFileParses) {
  const std::string path = std::string(VEIL_SOURCE_DIR) + "/controlplane/veil.example.toml";
  ParseResult r = parse_file(path);
  ASSERT_TRUE(r.ok()) << dump(r);
  const Config& c = *r.config;
  EXPECT_EQ(c.source, path);
  ASSERT_EQ(c.ports.size(), 2u);
  EXPECT_EQ(c.ports[0].role, Role::External);
  EXPECT_EQ(c.ports[0].device, "net_af_packet0,iface=veil-ext");
  ASSERT_EQ(c.ports[0].addresses.size(), 2u);
  EXPECT_EQ(c.ports[0].addresses[0].str(), "203.0.113.1/24");
  EXPECT_EQ(c.ports[0].addresses[1].str(), "2001:db8:1::1/64");
  EXPECT_EQ(c.ports[1].role, Role::Internal);
  EXPECT_EQ(c.ports[1].device, "net_af_packet1,iface=veil-int");
  ASSERT_EQ(c.ports[1].addresses.size(), 2u);
  EXPECT_EQ(c.ports[1].addresses[0].str(), "198.51.100.1/24");
  EXPECT_EQ(c.ports[1].addresses[1].str(), "2001:db8:2::1/64");
  EXPECT_EQ(c.cores.control, 0u);
  EXPECT_EQ(c.cores.workers, (std::vector<unsigned>{1}));
  EXPECT_EQ(c.management.socket, "/run/veil/veil.sock");
  EXPECT_EQ(c.media_external.first, 20000);
  EXPECT_EQ(c.media_internal.first, 30000);
}

TEST(Config, ParseFileReadsAFile) {
  char path[] = "/tmp/veil-config-test-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string text = kFull;
  ASSERT_EQ(write(fd, text.data(), text.size()), ssize_t(text.size()));
  close(fd);
  ParseResult r = parse_file(path);
  unlink(path);
  ASSERT_TRUE(r.ok()) << dump(r);
  EXPECT_EQ(r.config->source, path);
  EXPECT_EQ(r.config->cores.workers, (std::vector<unsigned>{3, 5}));
}

// ---------------------------------------------------------------------------
// Files and syntax.

TEST(Config, MissingFileIsAClearError) {
  ParseResult r = parse_file("/nonexistent/veil.toml");
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.config.has_value());
  ASSERT_EQ(r.errors.size(), 1u);
  const Error& e = r.errors[0];
  EXPECT_EQ(e.file, "/nonexistent/veil.toml");
  EXPECT_EQ(e.line, 0u);
  EXPECT_EQ(e.column, 0u);
  EXPECT_NE(e.what.find("cannot open the configuration file"), std::string::npos) << e.what;
  EXPECT_NE(e.what.find("No such file or directory"), std::string::npos) << e.what;
  EXPECT_EQ(e.str().rfind("/nonexistent/veil.toml: error: cannot open the configuration file: ", 0),
            0u)
      << e.str();
}

TEST(Config, DirectoryIsAClearError) {
  ParseResult r = parse_file("/tmp");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].what.find("directory"), std::string::npos) << r.errors[0].what;
}

TEST(Config, SyntaxErrorReportsLineAndColumn) {
  std::string text = replace_first(kFull, "mtu = 9000", "mtu = ");
  ParseResult r = parse_string(text, "t.toml");
  EXPECT_FALSE(r.config.has_value());
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  Pos p = pos_of(text, "mtu = |\n");
  EXPECT_EQ(r.errors[0].line, p.line);
  EXPECT_EQ(r.errors[0].column, p.column);
  EXPECT_NE(r.errors[0].what.find("expected value"), std::string::npos) << r.errors[0].what;
  EXPECT_EQ(
      r.errors[0].str().rfind(
          "t.toml:" + std::to_string(p.line) + ":" + std::to_string(p.column) + ": error: ", 0),
      0u)
      << r.errors[0].str();
}

TEST(Config, SyntaxErrorRedefinedKey) {
  std::string text = replace_first(kFull, "mtu = 9000", "mtu = 9000\nmtu = 1500");
  ParseResult r = parse_string(text, "t.toml");
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_EQ(r.errors[0].line, pos_of(text, "mtu = 1500|").line);
  EXPECT_NE(r.errors[0].what.find("mtu"), std::string::npos) << r.errors[0].what;
}

TEST(Config, EmptyFileHasNoPorts) {
  ParseResult r = parse_string("", "t.toml");
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_EQ(r.errors[0].line, 1u);
  EXPECT_EQ(r.errors[0].column, 1u);
  EXPECT_NE(r.errors[0].what.find("no [[port]]"), std::string::npos);
  EXPECT_NE(r.errors[0].fix.find("exactly two ports"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Error rendering.

TEST(Config, ErrorStr) {
  Error e{"veil.toml", 12, 9, "media.external.ports: \"70000\" is not a port range",
          "expected \"first-last\" with 1 <= first <= last <= 65535"};
  EXPECT_EQ(e.str(),
            "veil.toml:12:9: error: media.external.ports: \"70000\" is not a port range; "
            "expected \"first-last\" with 1 <= first <= last <= 65535");
  e.column = 0;
  EXPECT_EQ(e.str().rfind("veil.toml:12: error: media", 0), 0u) << e.str();
  e.line = 0;
  EXPECT_EQ(e.str().rfind("veil.toml: error: media", 0), 0u) << e.str();
  e.fix.clear();
  EXPECT_EQ(e.str(), "veil.toml: error: media.external.ports: \"70000\" is not a port range");
}

TEST(Config, ErrorStrOfARealError) {
  std::string text = replace_first(kFull, "\"30000-39999\"", "\"30000-70000\"");
  ParseResult r = parse_string(text, "veil.toml");
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  Pos p = pos_of(text, "ports = |\"30000-70000\"");
  EXPECT_EQ(r.errors[0].str(),
            "veil.toml:" + std::to_string(p.line) + ":" + std::to_string(p.column) +
                ": error: media.internal.ports: \"30000-70000\" is not a port range; "
                "expected \"first-last\" with 1 <= first <= last <= 65535");
}

// ---------------------------------------------------------------------------
// Several errors at once.

TEST(Config, AllErrorsAreReportedInFileOrder) {
  std::string text = kFull;
  text = replace_first(text, "gateway6 = ", "gatway6 = ");
  text = replace_first(text, "\"0000:03:00.1\"", "\"03:00.1\"");
  text = replace_first(text, "workers = [3, 5]", "workers = [3, 2]");
  text = replace_first(text, "\"20000-29999\"", "\"5000-6000\"");
  text = replace_first(text, "burst = 16", "burst = 0");
  text = replace_first(text, "latching = \"strict\"", "latching = \"loose\"");
  text = replace_first(text, "\"/tmp/veil-test.sock\"", "\"veil.sock\"");
  ParseResult r = parse_string(text, "t.toml");
  EXPECT_FALSE(r.config.has_value());
  ASSERT_EQ(r.errors.size(), 7u) << dump(r);
  EXPECT_NE(find_error(r, text, "|gatway6", "port[0].gatway6: unknown key"), nullptr) << dump(r);
  EXPECT_NE(find_error(r, text, "pci = |\"03:00.1\"", "port[1].pci"), nullptr) << dump(r);
  EXPECT_NE(find_error(r, text, "[3, |2]", "cores.workers[1]"), nullptr) << dump(r);
  EXPECT_NE(find_error(r, text, "|\"5000-6000\"", "media.external.ports"), nullptr) << dump(r);
  EXPECT_NE(find_error(r, text, "burst = |0", "dataplane.burst"), nullptr) << dump(r);
  EXPECT_NE(find_error(r, text, "|\"loose\"", "dataplane.latching"), nullptr) << dump(r);
  EXPECT_NE(find_error(r, text, "|\"veil.sock\"", "management.socket"), nullptr) << dump(r);
  for (size_t i = 1; i < r.errors.size(); ++i) {
    EXPECT_LT(r.errors[i - 1].line, r.errors[i].line) << dump(r);
  }
}

// ---------------------------------------------------------------------------
// Port count and roles (whole-file shapes).

TEST(Config, OnePortOnlyIsMissingTheOtherRole) {
  std::string text = R"([[port]]
name = "ext0"
role = "external"
device = "net_null0"
addresses = ["203.0.113.1/24"]
)";
  expect_error(text, "|[[port]]", "port: no port has role = \"internal\"", "exactly two ports");
}

TEST(Config, ThirdPortIsRejected) {
  std::string text = std::string(kMinimal) + R"(
[[port]]
name = "dmz0"
role = "internal"
device = "net_null2"
addresses = ["198.51.101.1/24"]
)";
  expect_error(text, "|[[port]]\nname = \"dmz0\"", "port[2]: a third port", "exactly two ports");
}

TEST(Config, TwoExternalPortsIsOneError) {
  // The duplicate role is reported once; "no internal port" is implied and not repeated.
  std::string text = replace_first(kFull, "role = \"internal\"", "role = \"external\"");
  ParseResult r = parse_string(text, "t.toml");
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_NE(r.errors[0].what.find("port[1].role"), std::string::npos) << dump(r);
}

TEST(Config, PortAsPlainTableIsRejected) {
  std::string text = R"([port]
name = "ext0"
role = "external"
device = "net_null0"
addresses = ["203.0.113.1/24"]
)";
  expect_error(text, "|[port]", "port: is a table, not an array of tables", "[[port]]");
}

TEST(Config, PortEntryThatIsNotATable) {
  std::string text = "port = [1]\n";
  expect_error(text, "port = [|1]", "port[0]: 1 is an integer, not a table", "[[port]]");
}

// ---------------------------------------------------------------------------
// Table-driven: one edit of kFull, one expected error.

struct Case {
  const char* name;
  const char* from;   // text in kFull ...
  const char* to;     // ... replaced by this
  const char* where;  // text of the edited file with '|' at the expected line:column
  const char* what;   // substring of Error::what
  const char* fix;    // substring of Error::fix
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

class ConfigError : public ::testing::TestWithParam<Case> {};

TEST_P(ConfigError, IsReportedAtTheRightPlace) {
  const Case& c = GetParam();
  std::string text = replace_first(kFull, c.from, c.to);
  expect_error(text, c.where, c.what, c.fix);
}

const Case kCases[] = {
    // Unknown keys, at every level, with the allowed keys and a suggestion.
    {"UnknownTopLevelKey", "[[port]]\nname = \"ext0\"", "verbose = true\n[[port]]\nname = \"ext0\"",
     "|verbose", "verbose: unknown key \"verbose\"",
     "allowed top-level keys and tables: port, cores, media"},
    {"UnknownTopLevelTable", "[limits]", "[limit]", "[|limit]", "limit: unknown key",
     "did you mean \"limits\"?"},
    {"UnknownPortKey", "gateway6 = ", "gatway6 = ", "|gatway6", "port[0].gatway6: unknown key",
     "did you mean \"gateway6\"?"},
    {"UnknownPortKeyListsAllowed", "mtu = 9000", "speed = 10000", "|speed",
     "port[1].speed: unknown key",
     "allowed keys in [[port]]: name, role, device, pci, addresses, gateway, gateway6, "
     "exception_iface, mtu"},
    {"UnknownCoresKey", "workers = [3, 5]", "worker = [3, 5]", "|worker",
     "cores.worker: unknown key", "did you mean \"workers\"?"},
    {"UnknownMediaSide", "[media.internal]", "[media.inside]", "[media.|inside]",
     "media.inside: unknown key", "allowed keys in [media]: external, internal"},
    {"UnknownMediaKey", "ports = \"20000-29999\"", "port = \"20000-29999\"", "|port = \"20000",
     "media.external.port: unknown key", "did you mean \"ports\"?"},
    {"UnknownLimitsKey", "punt_pps", "punt_ppps", "|punt_ppps", "limits.punt_ppps: unknown key",
     "max_flows, punt_pps, punt_pps_per_source, flow_idle_timeout, relatch_after_ms"},
    {"UnknownDataplaneKey", "hugepages = true", "hugepage = true", "|hugepage",
     "dataplane.hugepage: unknown key", "did you mean \"hugepages\"?"},
    {"UnknownManagementKey", "socket = ", "sock = ", "|sock =", "management.sock: unknown key",
     "allowed keys in [management]: socket, metrics"},

    // Wrong types.
    {"MtuString", "mtu = 1400", "mtu = \"1400\"", "mtu = |\"1400\"",
     "port[0].mtu: \"1400\" is a string, not an integer", "expected an integer from 1280 to 9216"},
    {"HugepagesInteger", "hugepages = true", "hugepages = 1", "hugepages = |1",
     "dataplane.hugepages: 1 is an integer, not a boolean", "expected true or false"},
    {"WorkersInteger", "workers = [3, 5]", "workers = 3", "workers = |3",
     "cores.workers: 3 is an integer, not an array", "non-empty array of distinct lcore ids"},
    {"AddressesString", "addresses = [\"198.51.100.1/24\"]", "addresses = \"198.51.100.1/24\"",
     "addresses = |\"198.51.100.1/24\"",
     "port[1].addresses: \"198.51.100.1/24\" is a string, not an array", "non-empty array"},
    {"AddressNotString", "[\"198.51.100.1/24\"]", "[\"198.51.100.1/24\", 7]", "/24\", |7]",
     "port[1].addresses[1]: 7 is an integer, not a string", "ADDRESS/LENGTH"},
    {"MaxFlowsFloat", "max_flows = 1000", "max_flows = 1.5", "max_flows = |1.5",
     "limits.max_flows: 1.5 is a float, not an integer", "from 1 to 16777216"},
    {"LimitsArrayOfTables", "[limits]", "[[limits]]", "|[[limits]]",
     "limits: is an array, not a table", "[limits]"},
    {"EalArgNotString", "eal_args = [\"--log-level=pmd,debug\", \"--no-telemetry\"]",
     "eal_args = [\"-v\", 7]", "\"-v\", |7]",
     "dataplane.eal_args[1]: 7 is an integer, not a string", "array of strings"},
    {"RoleInteger", "role = \"internal\"", "role = 2", "role = |2",
     "port[1].role: 2 is an integer, not a string", "\"external\" or role = \"internal\""},

    // Roles.
    {"TwoExternalPorts", "role = \"internal\"", "role = \"external\"", "role = |\"external\"\npci",
     "port[1].role: \"external\" is already the role of port[0]", "exactly two ports"},
    {"BadRole", "role = \"internal\"", "role = \"inside\"", "role = |\"inside\"",
     "port[1].role: \"inside\" is not a role", "\"external\" or role = \"internal\""},
    {"MissingRole", "role = \"internal\"\n", "", "|[[port]]\nname = \"int0\"",
     "port[1].role: missing", "\"external\" or role = \"internal\""},

    // Names.
    {"EmptyName", "name = \"int0\"", "name = \"\"", "name = |\"\"", "port[1].name: is empty",
     "non-empty name"},
    {"DuplicateName", "name = \"int0\"", "name = \"ext0\"", "name = |\"ext0\"\nrole = \"internal\"",
     "port[1].name: \"ext0\" is already used by port[0]", "its own name"},
    {"MissingName", "name = \"int0\"\n", "", "|[[port]]\nrole = \"internal\"",
     "port[1].name: missing", "non-empty name"},

    // device / pci.
    {"DeviceAndPci", "pci = \"0000:03:00.1\"", "pci = \"0000:03:00.1\"\ndevice = \"net_null0\"",
     "pci = |\"0000:03:00.1\"", "port[1]: both device and pci are set", "exactly one of device"},
    {"NeitherDeviceNorPci", "pci = \"0000:03:00.1\"\n", "", "|[[port]]\nname = \"int0\"",
     "port[1].device or port[1].pci: missing", "exactly one of device"},
    {"PciWithoutDomain", "\"0000:03:00.1\"", "\"03:00.1\"", "pci = |\"03:00.1\"",
     "port[1].pci: \"03:00.1\" is not a PCI address", "\"DDDD:BB:DD.F\""},
    {"PciBadDevice", "\"0000:03:00.1\"", "\"0000:03:20.1\"", "pci = |\"0000:03:20.1\"",
     "port[1].pci: \"0000:03:20.1\" is not a PCI address", "device <= 1f"},
    {"PciBadFunction", "\"0000:03:00.1\"", "\"0000:03:00.8\"", "pci = |\"0000:03:00.8\"",
     "port[1].pci: \"0000:03:00.8\" is not a PCI address", "function 0-7"},
    {"PciNotHex", "\"0000:03:00.1\"", "\"000g:03:00.1\"", "pci = |\"000g:03:00.1\"",
     "port[1].pci: \"000g:03:00.1\" is not a PCI address", "\"0000:03:00.0\""},
    {"EmptyDevice", "\"net_af_packet0,iface=veth-ext\"", "\"\"", "device = |\"\"",
     "port[0].device: is empty", "exactly one of device"},
    {"DuplicateDevice", "pci = \"0000:03:00.1\"", "device = \"net_af_packet0,iface=veth-ext\"",
     "device = |\"net_af_packet0,iface=veth-ext\"\naddresses = [\"198",
     "port[1].device: \"net_af_packet0,iface=veth-ext\" is already used by port[0]",
     "its own DPDK device"},

    // Addresses.
    {"AddressWithoutLength", "\"198.51.100.1/24\"", "\"198.51.100.1\"", "[|\"198.51.100.1\"]",
     "port[1].addresses[0]: \"198.51.100.1\" is not an address with a prefix length",
     "ADDRESS/LENGTH"},
    {"AddressLengthTooLong", "\"198.51.100.1/24\"", "\"198.51.100.1/33\"", "[|\"198.51.100.1/33\"]",
     "port[1].addresses[0]: \"198.51.100.1/33\" is not an address", "at most 32 for IPv4"},
    {"AddressGarbage", "\"2001:db8:1::1/64\"", "\"2001:db8:1::g/64\"", "|\"2001:db8:1::g/64\"",
     "port[0].addresses[1]: \"2001:db8:1::g/64\" is not an address", "ADDRESS/LENGTH"},
    {"AddressMulticast", "\"198.51.100.1/24\"", "\"198.51.100.1/24\", \"239.1.1.1/8\"",
     "|\"239.1.1.1/8\"", "port[1].addresses[1]: \"239.1.1.1/8\" is not a unicast address",
     "unicast"},
    {"AddressesEmpty", "addresses = [\"198.51.100.1/24\"]", "addresses = []", "addresses = |[]",
     "port[1].addresses: is empty", "non-empty array"},
    {"AddressesMissing", "addresses = [\"198.51.100.1/24\"]\n", "", "|[[port]]\nname = \"int0\"",
     "port[1].addresses: missing", "non-empty array"},
    {"AddressDuplicateAcrossPorts", "[\"198.51.100.1/24\"]",
     "[\"198.51.100.1/24\", \"2001:db8:1::1/48\"]", "\"198.51.100.1/24\", |\"2001:db8:1::1/48\"",
     "port[1].addresses[1]: 2001:db8:1::1 is already used by port[0].addresses[1]", "only once"},
    {"AddressDuplicateWithinPort", "[\"198.51.100.1/24\"]",
     "[\"198.51.100.1/24\", \"198.51.100.1/25\"]", "\"198.51.100.1/24\", |\"198.51.100.1/25\"",
     "port[1].addresses[1]: 198.51.100.1 is already used by port[1].addresses[0]", "only once"},

    // Gateways.
    {"GatewayOffLink", "\"198.51.100.254\"", "\"198.51.101.254\"", "gateway = |\"198.51.101.254\"",
     "port[1].gateway: \"198.51.101.254\" is not on this port's link (198.51.100.1/24)",
     "inside one of this port's IPv4 prefixes"},
    {"GatewayWrongFamily", "\"198.51.100.254\"", "\"2001:db8:2::fe\"",
     "gateway = |\"2001:db8:2::fe\"", "port[1].gateway: \"2001:db8:2::fe\" is an IPv6 address",
     "put an IPv6 next hop in gateway6"},
    {"Gateway6WrongFamily", "\"2001:db8:1::fe\"", "\"203.0.113.9\"", "gateway6 = |\"203.0.113.9\"",
     "port[0].gateway6: \"203.0.113.9\" is an IPv4 address", "put an IPv4 next hop in gateway"},
    {"Gateway6WithoutV6Address", "gateway = \"198.51.100.254\"",
     "gateway = \"198.51.100.254\"\ngateway6 = \"2001:db8:2::fe\"",
     "gateway6 = |\"2001:db8:2::fe\"",
     "port[1].gateway6: \"2001:db8:2::fe\" is not on this port's link (the port has no IPv6 "
     "address)",
     "IPv6 prefixes"},
    {"GatewayIsOwnAddress", "\"198.51.100.254\"", "\"198.51.100.1\"", "gateway = |\"198.51.100.1\"",
     "port[1].gateway: \"198.51.100.1\" is this port's own address", "next-hop router"},
    {"GatewayNotAnAddress", "\"198.51.100.254\"", "\"router\"", "gateway = |\"router\"",
     "port[1].gateway: \"router\" is not an IP address", "IPv4 address"},

    // exception_iface and mtu.
    {"ExceptionIfaceTooLong", "\"vx-ext\"", "\"veil-external-00\"",
     "exception_iface = |\"veil-external-00\"",
     "port[0].exception_iface: \"veil-external-00\" is not a valid interface name (16 characters)",
     "1 to 15 characters"},
    {"ExceptionIfaceSlash", "\"vx-ext\"", "\"vx/ext\"", "exception_iface = |\"vx/ext\"",
     "port[0].exception_iface: \"vx/ext\" is not a valid interface name", "without '/'"},
    {"DefaultExceptionIfaceTooLong", "name = \"int0\"", "name = \"internal-0001\"",
     "name = |\"internal-0001\"",
     "port[1].name: the default exception_iface \"veil-internal-0001\"",
     "set port[1].exception_iface"},
    {"DuplicateExceptionIface", "name = \"int0\"", "name = \"int0\"\nexception_iface = \"vx-ext\"",
     "exception_iface = |\"vx-ext\"\nrole = \"internal\"",
     "port[1].exception_iface: \"vx-ext\" is already used", "its own exception interface"},
    {"MtuTooSmallForIPv6", "mtu = 1400", "mtu = 1000", "mtu = |1000",
     "port[0].mtu: 1000 is out of range", "from 1280 to 9216 (a port with an IPv6 address"},
    {"RxChecksumsUnknown", "mtu = 9000", "mtu = 9000\nrx_checksums = \"sometimes\"",
     "rx_checksums = |\"sometimes\"", "port[1].rx_checksums: \"sometimes\" is not a checksum mode",
     "\"auto\", \"complete\" or \"partial\""},
    {"RxChecksumsNotAString", "mtu = 9000", "mtu = 9000\nrx_checksums = true",
     "rx_checksums = |true", "port[1].rx_checksums: true is a boolean, not a string",
     "\"auto\", \"complete\" or \"partial\""},
    {"MtuTooSmall", "mtu = 9000", "mtu = 500", "mtu = |500", "port[1].mtu: 500 is out of range",
     "from 576 to 9216"},
    {"MtuTooBig", "mtu = 9000", "mtu = 65536", "mtu = |65536", "port[1].mtu: 65536 is out of range",
     "from 576 to 9216"},

    // Media ranges.
    {"MediaSinglePortNumber", "\"20000-29999\"", "\"20000\"", "ports = |\"20000\"",
     "media.external.ports: \"20000\" is not a port range",
     "expected \"first-last\" with 1 <= first <= last <= 65535"},
    {"MediaZero", "\"20000-29999\"", "\"0-100\"", "ports = |\"0-100\"",
     "media.external.ports: \"0-100\" is not a port range", "1 <= first <= last <= 65535"},
    {"MediaAbove65535", "\"30000-39999\"", "\"30000-70000\"", "ports = |\"30000-70000\"",
     "media.internal.ports: \"30000-70000\" is not a port range", "1 <= first <= last <= 65535"},
    {"MediaReversed", "\"30000-39999\"", "\"39999-30000\"", "ports = |\"39999-30000\"",
     "media.internal.ports: \"39999-30000\" is not a port range", "first <= last"},
    {"MediaNotNumbers", "\"30000-39999\"", "\"low-high\"", "ports = |\"low-high\"",
     "media.internal.ports: \"low-high\" is not a port range", "\"first-last\""},
    {"MediaEmptyString", "\"30000-39999\"", "\"\"", "ports = |\"\"",
     "media.internal.ports: \"\" is not a port range", "\"first-last\""},
    {"MediaSpaces", "\"30000-39999\"", "\"30000 - 39999\"", "ports = |\"30000 - 39999\"",
     "media.internal.ports: \"30000 - 39999\" is not a port range", "\"first-last\""},
    {"MediaOnePort", "\"20000-29999\"", "\"20000-20000\"", "ports = |\"20000-20000\"",
     "media.external.ports: \"20000-20000\" has fewer than 2 ports", "at least 2 ports"},
    {"MediaContains5060", "\"20000-29999\"", "\"5000-6000\"", "ports = |\"5000-6000\"",
     "media.external.ports: \"5000-6000\" contains the SIP ports 5060/5061",
     "neither 5060 nor 5061"},
    {"MediaContains5061", "\"30000-39999\"", "\"5061-5100\"", "ports = |\"5061-5100\"",
     "media.internal.ports: \"5061-5100\" contains the SIP ports 5060/5061",
     "neither 5060 nor 5061"},
    {"MediaEndsAt5060", "\"30000-39999\"", "\"4000-5060\"", "ports = |\"4000-5060\"",
     "media.internal.ports: \"4000-5060\" contains the SIP ports", "neither 5060 nor 5061"},
    {"MediaInteger", "\"30000-39999\"", "30000", "ports = |30000",
     "media.internal.ports: 30000 is an integer, not a string", "\"first-last\""},

    // Cores.
    {"WorkersEmpty", "workers = [3, 5]", "workers = []", "workers = |[]", "cores.workers: is empty",
     "non-empty array"},
    {"WorkersDuplicate", "workers = [3, 5]", "workers = [3, 3]", "[3, |3]",
     "cores.workers[1]: 3 is listed twice", "distinct lcore ids"},
    {"WorkersContainControl", "workers = [3, 5]", "workers = [2, 3]", "[|2, 3]",
     "cores.workers[0]: 2 is the control lcore", "other lcores"},
    {"WorkerTooBig", "workers = [3, 5]", "workers = [3, 128]", "[3, |128]",
     "cores.workers[1]: 128 is not an lcore id", "from 0 to 127"},
    {"WorkerNegative", "workers = [3, 5]", "workers = [-1]", "[|-1]",
     "cores.workers[0]: -1 is not an lcore id", "from 0 to 127"},
    {"WorkerNotInteger", "workers = [3, 5]", "workers = [\"3\"]", "[|\"3\"]",
     "cores.workers[0]: \"3\" is a string, not an integer", "lcore ids"},
    {"ControlTooBig", "control = 2", "control = 128", "control = |128",
     "cores.control: 128 is out of range", "from 0 to 127"},

    // Limits.
    {"MaxFlowsZero", "max_flows = 1000", "max_flows = 0", "max_flows = |0",
     "limits.max_flows: 0 is out of range", "from 1 to 16777216"},
    {"MaxFlowsTooBig", "max_flows = 1000", "max_flows = 16777217", "max_flows = |16777217",
     "limits.max_flows: 16777217 is out of range", "from 1 to 16777216"},
    {"PuntPpsZero", "punt_pps = 5000", "punt_pps = 0", "punt_pps = |0",
     "limits.punt_pps: 0 is out of range", "from 1 to"},
    {"IdleTimeoutZero", "flow_idle_timeout = 30", "flow_idle_timeout = 0", "flow_idle_timeout = |0",
     "limits.flow_idle_timeout: 0 is out of range", "seconds from 1 to 86400"},
    {"RelatchNegative", "relatch_after_ms = 500", "relatch_after_ms = -1", "relatch_after_ms = |-1",
     "limits.relatch_after_ms: -1 is out of range", "milliseconds"},

    // Dataplane.
    {"BurstZero", "burst = 16", "burst = 0", "burst = |0", "dataplane.burst: 0 is out of range",
     "from 1 to 64"},
    {"BurstTooBig", "burst = 16", "burst = 65", "burst = |65",
     "dataplane.burst: 65 is out of range", "from 1 to 64"},
    {"RxDescNotPowerOfTwo", "rx_desc = 512", "rx_desc = 1000", "rx_desc = |1000",
     "dataplane.rx_desc: 1000 is not a power of two", "power of two from 64 to 4096"},
    {"RxDescTooSmall", "rx_desc = 512", "rx_desc = 32", "rx_desc = |32",
     "dataplane.rx_desc: 32 is out of range", "power of two from 64 to 4096"},
    {"TxDescTooBig", "tx_desc = 2048", "tx_desc = 8192", "tx_desc = |8192",
     "dataplane.tx_desc: 8192 is out of range", "power of two from 64 to 4096"},
    {"MemoryTooSmall", "memory_mb = 1024", "memory_mb = 63", "memory_mb = |63",
     "dataplane.memory_mb: 63 is out of range", "from 64 to"},
    {"MbufsTooFew", "mbufs = 32767", "mbufs = 1022", "mbufs = |1022",
     "dataplane.mbufs: 1022 is out of range", "from 1023 to"},
    {"FilePrefixBad", "\"veil-test\"", "\"veil test\"", "file_prefix = |\"veil test\"",
     "dataplane.file_prefix: \"veil test\" is not a valid file prefix", "A-Z a-z 0-9 . _ -"},
    {"IdleSleepTooLong", "idle_sleep_us = 50", "idle_sleep_us = 200000", "idle_sleep_us = |200000",
     "dataplane.idle_sleep_us: 200000 is out of range", "microseconds from 0"},
    {"LatchingBad", "latching = \"strict\"", "latching = \"loose\"", "latching = |\"loose\"",
     "dataplane.latching: \"loose\" is not a latching mode", "\"latch\" or latching = \"strict\""},

    // Management.
    {"SocketRelative", "\"/tmp/veil-test.sock\"", "\"veil.sock\"", "socket = |\"veil.sock\"",
     "management.socket: \"veil.sock\" is not an absolute path", "absolute path"},
    {"SocketDirectory", "\"/tmp/veil-test.sock\"", "\"/run/veil/\"", "socket = |\"/run/veil/\"",
     "management.socket: \"/run/veil/\" names a directory", "absolute path"},
    {"SocketTooLong", "\"/tmp/veil-test.sock\"",
     "\"/run/veil/"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaa.sock\"",
     "socket = |\"/run/veil/", "management.socket:", "at most 107 bytes"},
};

INSTANTIATE_TEST_SUITE_P(Config, ConfigError, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.name);
                         });

TEST(Config, MediaSideThatIsNotATable) {
  std::string text = replace_first(kFull, "[media.internal]\nports = \"30000-39999\"\n", "");
  text = replace_first(text, "[media.external]",
                       "[media]\ninternal = \"30000-39999\"\n[media.external]");
  expect_error(text, "internal = |\"30000-39999\"",
               "media.internal: \"30000-39999\" is a string, not a table", "[media.internal]");
}

TEST(Config, ValidEdgeValuesAreAccepted) {
  std::string text = kFull;
  text = replace_first(text, "\"20000-29999\"", "\"1-2\"");
  text = replace_first(text, "\"30000-39999\"", "\"5062-65535\"");
  text = replace_first(text, "burst = 16", "burst = 64");
  text = replace_first(text, "rx_desc = 512", "rx_desc = 64");
  text = replace_first(text, "tx_desc = 2048", "tx_desc = 4096");
  text = replace_first(text, "memory_mb = 1024", "memory_mb = 64");
  text = replace_first(text, "mbufs = 32767", "mbufs = 1023");
  text = replace_first(text, "max_flows = 1000", "max_flows = 16777216");
  text = replace_first(text, "workers = [3, 5]", "workers = [127, 0, 1]");
  text = replace_first(text, "\"vx-ext\"", "\"abcdefghijklmno\"");
  text = replace_first(text, "\"0000:03:00.1\"", "\"ffff:ff:1f.7\"");
  ParseResult r = parse_string(text, "t.toml");
  ASSERT_TRUE(r.ok()) << dump(r);
  EXPECT_EQ(r.config->media_external.first, 1);
  EXPECT_EQ(r.config->media_external.last, 2);
  EXPECT_EQ(r.config->media_internal.last, 65535);
  EXPECT_EQ(r.config->cores.workers, (std::vector<unsigned>{127, 0, 1}));
  EXPECT_EQ(r.config->ports[0].exception_iface, "abcdefghijklmno");
  EXPECT_EQ(r.config->dataplane.mbufs, 1023u);
}

// ---------------------------------------------------------------------------
// [sip]

const char* const kSip = R"(
[sip]
enabled = true
port = 5070
udp = true
tcp = true
external_address = "2001:db8:1::1"
pbx = "198.51.100.10:5060"
pbx_transport = "tcp"
untrusted_target = "[2001:db8:1::10]:5062"
untrusted_transport = "udp"
header_allow_list = ["Subject", "X-Case-Id"]
user_agent = "Veil"
no_response_timeout_ms = 2500
t1_ms = 250
register_domain = "voice.example.com"
register_min_expires_s = 120
register_max_expires_s = 1800
register_min_interval_s = 60
max_message_size = 32768
min_se_s = 120
pbx_srtp = "AEAD_AES_128_GCM"
)";

TEST(ConfigSip, DisabledByDefault) {
  ParseResult r = parse_string(kMinimal, "min.toml");
  ASSERT_TRUE(r.ok()) << dump(r);
  const SipSettings& s = r.config->sip;
  EXPECT_FALSE(s.enabled);
  EXPECT_EQ(s.b2bua.external.port, 5060);
  EXPECT_TRUE(s.b2bua.external.udp);
  EXPECT_TRUE(s.b2bua.external.tcp);
  EXPECT_FALSE(s.b2bua.untrusted_target.has_value());
  EXPECT_EQ(s.b2bua.pbx_srtp, sip::SdesSuite::Unknown);  // pbx_srtp = "off"
}

TEST(ConfigSip, EveryKeyMapsOntoSipConfig) {
  ParseResult r = parse_string(std::string(kFull) + kSip, "t.toml");
  ASSERT_TRUE(r.ok()) << dump(r);
  const SipSettings& s = r.config->sip;
  const sip::SipConfig& b = s.b2bua;
  EXPECT_TRUE(s.enabled);
  EXPECT_EQ(b.external.addr.str(), "2001:db8:1::1");  // configured
  EXPECT_EQ(b.internal.addr.str(), "198.51.100.1");   // the port's first IPv4 address
  EXPECT_EQ(b.external.port, 5070);
  EXPECT_EQ(b.internal.port, 5070);
  EXPECT_TRUE(b.internal.udp && b.internal.tcp);
  EXPECT_EQ(b.pbx.str(), "198.51.100.10:5060");
  EXPECT_EQ(b.pbx_transport, sip::Transport::Tcp);
  ASSERT_TRUE(b.untrusted_target.has_value());
  EXPECT_EQ(b.untrusted_target->str(), "[2001:db8:1::10]:5062");
  EXPECT_EQ(b.untrusted_transport, sip::Transport::Udp);
  EXPECT_EQ(b.header_allow_list, (std::vector<std::string>{"Subject", "X-Case-Id"}));
  EXPECT_EQ(b.user_agent, "Veil");
  EXPECT_EQ(b.no_response_timeout_ms, 2500u);
  EXPECT_EQ(b.t1_ms, 250u);
  EXPECT_EQ(b.register_domain, "voice.example.com");
  EXPECT_EQ(b.register_min_expires_s, 120u);
  EXPECT_EQ(b.register_max_expires_s, 1800u);
  EXPECT_EQ(b.register_min_interval_s, 60u);
  EXPECT_EQ(b.max_message_size, 32768u);
  EXPECT_EQ(b.min_se_s, 120u);
  EXPECT_EQ(b.pbx_srtp, sip::SdesSuite::AeadAes128Gcm);
  EXPECT_EQ(sip::validate(b), "");
}

TEST(ConfigSip, AddressesDefaultToEachPortsFirstIpv4) {
  // The external port lists its IPv6 address first: the SIP address is still the IPv4 one.
  std::string text = replace_first(kFull, R"(["203.0.113.1/24", "2001:db8:1::1/64"])",
                                   R"(["2001:db8:1::1/64", "203.0.113.1/24"])");
  text += "[sip]\nenabled = true\npbx = \"198.51.100.10:5060\"\n";
  ParseResult r = parse_string(text, "t.toml");
  ASSERT_TRUE(r.ok()) << dump(r);
  EXPECT_EQ(r.config->sip.b2bua.external.addr.str(), "203.0.113.1");
  EXPECT_EQ(r.config->sip.b2bua.internal.addr.str(), "198.51.100.1");
  EXPECT_EQ(r.config->sip.b2bua.pbx_transport, sip::Transport::Udp);
}

TEST(ConfigSip, EnabledNeedsThePbx) {
  std::string text = std::string(kMinimal) + "[sip]\nenabled = true\n";
  expect_error(text, "|[sip]", "sip.pbx: missing (required)", "pbx = \"198.51.100.10:5060\"");
  // Disabled, the table may be incomplete.
  ParseResult r = parse_string(std::string(kMinimal) + "[sip]\nenabled = false\n", "t.toml");
  EXPECT_TRUE(r.ok()) << dump(r);
}

TEST(ConfigSip, ErrorsAreReportedAtTheValue) {
  const std::string base = std::string(kFull) + kSip;
  struct Case {
    const char* from;
    const char* to;
    const char* where;
    const char* what;
    const char* fix;
  } cases[] = {
      {"enabled = true", "enabled = 1", "enabled = |1", "sip.enabled: 1 is an integer, not a boolean",
       "true or false"},
      {"port = 5070", "port = 25000", "port = |25000", "sip.port: 25000 lies in media.external.ports",
       "outside both"},
      {"port = 5070", "port = 0", "port = |0", "sip.port: 0 is out of range", "from 1 to 65535"},
      {"external_address = \"2001:db8:1::1\"", "external_address = \"198.51.100.1\"",
       "external_address = |\"198.51.100.1\"", "is not an address of the external port", "203.0.113.1"},
      {"external_address = \"2001:db8:1::1\"", "external_address = \"sbc\"", "external_address = |\"sbc\"",
       "\"sbc\" is not an IP address", "port's own addresses"},
      {"pbx = \"198.51.100.10:5060\"", "pbx = \"pbx.example:5060\"", "pbx = |\"pbx.example:5060\"",
       "is not an address and port", "ADDRESS:PORT"},
      {"pbx = \"198.51.100.10:5060\"", "pbx = \"198.51.100.10\"", "pbx = |\"198.51.100.10\"",
       "is not an address and port", "ADDRESS:PORT"},
      {"pbx = \"198.51.100.10:5060\"", "pbx = \"[2001:db8:2::10]:5060\"", "pbx = |\"[2001:db8:2::10]:5060\"",
       "is an IPv6 address but Veil's SIP address on that side is 198.51.100.1", "same address family"},
      {"pbx = \"198.51.100.10:5060\"", "pbx = \"198.51.100.1:5060\"", "pbx = |\"198.51.100.1:5060\"",
       "is Veil's own address", "ADDRESS:PORT"},
      {"pbx_transport = \"tcp\"", "pbx_transport = \"sctp\"", "pbx_transport = |\"sctp\"",
       "sip.pbx_transport: \"sctp\" is not a transport", "\"udp\", \"tcp\" or \"tls\""},
      {"pbx_transport = \"tcp\"", "pbx_transport = \"tls\"", "pbx_transport = |\"tls\"",
       "sip.pbx_transport: \"tls\" but sip.tls_port is not set", "set tls_port"},
      {"untrusted_target = \"[2001:db8:1::10]:5062\"", "untrusted_target = \"203.0.113.10:5062\"",
       "untrusted_target = |\"203.0.113.10:5062\"", "is an IPv4 address", "same address family"},
      {"\"X-Case-Id\"]", "\"Via\"]", "|\"Via\"]", "sip.header_allow_list[1]: \"Via\" is never copied across",
       "remove it from the list"},
      {"\"X-Case-Id\"]", "\"X Case\"]", "|\"X Case\"]", "\"X Case\" is not a header name", "header names"},
      {"\"X-Case-Id\"]", "3]", "|3]", "sip.header_allow_list[1]: 3 is an integer, not a string", "header names"},
      {"user_agent = \"Veil\"", "user_agent = \"Veil\\r\\nX: y\"", "user_agent = |\"Veil",
       "is not one line of printable text", "one line"},
      {"no_response_timeout_ms = 2500", "no_response_timeout_ms = 100", "no_response_timeout_ms = |100",
       "sip.no_response_timeout_ms: 100 is out of range", "500 to 60000"},
      {"pbx_srtp = \"AEAD_AES_128_GCM\"", "pbx_srtp = \"F8_128_HMAC_SHA1_80\"",
       "pbx_srtp = |\"F8_128_HMAC_SHA1_80\"", "sip.pbx_srtp: \"F8_128_HMAC_SHA1_80\" is not an SRTP suite Veil does",
       "\"off\", \"AES_CM_128_HMAC_SHA1_80\""},
      {"pbx_srtp = \"AEAD_AES_128_GCM\"", "pbx_srtp = true", "pbx_srtp = |true",
       "sip.pbx_srtp: true is a boolean, not a string", "AEAD_AES_128_GCM"},
      {"pbx_srtp = \"AEAD_AES_128_GCM\"", "tls_client_auth = \"internal\"", "tls_client_auth = |\"internal\"",
       "sip.tls_client_auth: \"internal\" needs tls_port and tls_ca_file", "set tls_port and tls_ca_file"},
      {"pbx_srtp = \"AEAD_AES_128_GCM\"", "tls_client_auth = \"yes\"", "tls_client_auth = |\"yes\"",
       "sip.tls_client_auth: \"yes\" is not a policy", "\"off\", \"internal\""},
      {"t1_ms = 250", "t1_ms = 9000", "t1_ms = |9000", "sip.t1_ms: 9000 is out of range", "100 to 5000"},
      {"t1_ms = 250", "t1_msec = 250", "|t1_msec = 250", "sip.t1_msec: unknown key \"t1_msec\"",
       "did you mean \"t1_ms\"?"},
      {"tcp = true", "tcp = false", "pbx_transport = |\"tcp\"", "sip.pbx_transport: \"tcp\" but sip.tcp = false",
       "tcp = true"},
      {"register_domain = \"voice.example.com\"", "register_domain = \"sip:voice\"",
       "register_domain = |\"sip:voice\"", "sip.register_domain: \"sip:voice\" is not a host name", "host name"},
      {"register_max_expires_s = 1800", "register_max_expires_s = 100", "register_max_expires_s = |100",
       "sip.register_min_expires_s (120) is above sip.register_max_expires_s (100)", "min <= max"},
      {"register_min_interval_s = 60", "register_min_interval_s = -1", "register_min_interval_s = |-1",
       "sip.register_min_interval_s: -1 is out of range", "0 (relay every refresh) to 86400"},
      {"max_message_size = 32768", "max_message_size = 512", "max_message_size = |512",
       "sip.max_message_size: 512 is out of range", "1024 to 1048576"},
      {"min_se_s = 120", "min_se_s = 0", "min_se_s = |0", "sip.min_se_s: 0 is out of range", "1 to 86400"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.to);
    expect_error(replace_first(base, c.from, c.to), c.where, c.what, c.fix);
  }
}

// TLS: PEM files written to a private temporary directory.
struct PemFiles {
  std::string dir, cert, key, ca;
  PemFiles() {
    char tmpl[] = "/tmp/veil-config-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    cert = dir + "/cert.pem";
    key = dir + "/key.pem";
    ca = dir + "/ca.pem";
    write(cert, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    write(key, "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
    write(ca, "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n");
  }
  ~PemFiles() {
    for (const auto& f : {cert, key, ca}) std::remove(f.c_str());
    ::rmdir(dir.c_str());
  }
  static void write(const std::string& path, const char* text) {
    FILE* f = std::fopen(path.c_str(), "w");
    std::fputs(text, f);
    std::fclose(f);
  }
  std::string toml() const {
    return "tls_port = 5061\ntls_certificate = \"" + cert + "\"\ntls_private_key = \"" + key +
           "\"\ntls_ca_file = \"" + ca + "\"\n";
  }
};

TEST(ConfigSip, TlsKeysMapOntoSipConfig) {
  PemFiles pem;
  std::string text = std::string(kFull) + replace_first(kSip, "pbx_transport = \"tcp\"", "pbx_transport = \"tls\"") +
                     pem.toml();
  ParseResult r = parse_string(text, "t.toml");
  ASSERT_TRUE(r.ok()) << dump(r);
  const sip::SipConfig& b = r.config->sip.b2bua;
  EXPECT_EQ(b.external.tls_port, 5061);
  EXPECT_EQ(b.internal.tls_port, 5061);
  EXPECT_EQ(b.tls_certificate, pem.cert);
  EXPECT_EQ(b.tls_private_key, pem.key);
  EXPECT_EQ(b.tls_ca_file, pem.ca);
  EXPECT_EQ(b.pbx_transport, sip::Transport::Tls);
  EXPECT_EQ(sip::validate(b), "");
  // Without TLS nothing is set.
  ParseResult plain = parse_string(std::string(kFull) + kSip, "t.toml");
  ASSERT_TRUE(plain.ok()) << dump(plain);
  EXPECT_EQ(plain.config->sip.b2bua.external.tls_port, 0);
  EXPECT_TRUE(plain.config->sip.b2bua.tls_certificate.empty());
}

TEST(ConfigSip, TlsErrorsAreReportedAtTheValue) {
  PemFiles pem;
  const std::string base = std::string(kFull) + kSip + pem.toml();
  const std::string missing = "\"" + pem.dir + "/none.pem\"";
  struct Case {
    std::string from, to, where, what, fix;
  } cases[] = {
      {"tls_port = 5061", "tls_port = 5070", "tls_port = |5070", "sip.tls_port: 5070 is also sip.port",
       "a port of its own"},
      {"tls_port = 5061", "tls_port = 20000", "tls_port = |20000", "sip.tls_port: 20000 lies in media.external.ports",
       "outside both"},
      {"tls_port = 5061", "tls_port = 70000", "tls_port = |70000", "sip.tls_port: 70000 is out of range",
       "1 to 65535"},
      {"\"" + pem.cert + "\"", missing, "tls_certificate = |" + missing,
       "sip.tls_certificate: " + missing + ": No such file or directory", "PEM file with the certificate"},
      {"tls_private_key = \"" + pem.key, "tls_private_key = \"" + pem.cert, "tls_private_key = |\"" + pem.cert,
       "holds no private key", "PEM file with the private key"},
      {"tls_ca_file = \"" + pem.ca, "tls_ca_file = \"" + pem.key, "tls_ca_file = |\"" + pem.key,
       "holds no CA certificates", "PEM file with the CA certificates"},
      {"tls_certificate = ", "tls_certificatex = ", "|tls_certificatex", "unknown key \"tls_certificatex\"",
       "did you mean \"tls_certificate\"?"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.to);
    expect_error(replace_first(base, c.from, c.to), c.where, c.what, c.fix);
  }
  // tls_port without the key file: reported at the table.
  std::string no_key = std::string(kFull) + kSip + "tls_port = 5061\ntls_certificate = \"" + pem.cert + "\"\n";
  expect_error(no_key, "|[sip]", "sip.tls_private_key: missing (required)", "tls_private_key = ");
}

TEST(ConfigSip, BothTransportsOffIsAnError) {
  std::string text = std::string(kMinimal) + "[sip]\nudp = false\ntcp = false\n";
  expect_error(text, "udp = |false", "sip.udp and sip.tcp: both are false", "enable at least one");
}

TEST(ConfigSip, NotATable) {
  std::string text = "sip = true\n" + std::string(kMinimal);
  expect_error(text, "sip = |true", "sip: true is a boolean, not a table", "[sip]");
}

}  // namespace
}  // namespace veil::config
