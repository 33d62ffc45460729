// Unit tests of the plain address types (dataplane/addr.cc): text parsing and printing of
// addresses, prefixes and endpoints, and prefix matching. Documentation addresses only
// (RFC 5737, RFC 3849).
#include "dataplane/addr.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>

namespace veil {

// Failure messages show addresses as text rather than as raw bytes.
void PrintTo(const IpAddr& a, std::ostream* os) {
  *os << a.str();
}
void PrintTo(const Endpoint& e, std::ostream* os) {
  *os << e.addr.str() << " port " << e.port;
}

namespace {

std::array<uint8_t, 16> bytes16(std::initializer_list<uint8_t> l) {
  std::array<uint8_t, 16> b{};
  std::copy(l.begin(), l.end(), b.begin());
  return b;
}

// ---- IpAddr ----------------------------------------------------------------------------------

TEST(IpAddr, ParsesDottedQuad) {
  auto a = IpAddr::parse("203.0.113.5");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->family, Family::V4);
  EXPECT_TRUE(a->is_v4());
  EXPECT_FALSE(a->is_v6());
  EXPECT_TRUE(a->valid());
  EXPECT_EQ(a->len(), 4u);
  // IPv4 in the first four bytes, the rest zero, so keys built from it compare equal.
  EXPECT_EQ(a->bytes, bytes16({203, 0, 113, 5}));
  EXPECT_EQ(a->str(), "203.0.113.5");
}

TEST(IpAddr, ParsesRfc4291Text) {
  auto a = IpAddr::parse("2001:db8::5");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->family, Family::V6);
  EXPECT_TRUE(a->is_v6());
  EXPECT_EQ(a->len(), 16u);
  EXPECT_EQ(a->bytes, bytes16({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5}));
  EXPECT_EQ(a->str(), "2001:db8::5");
}

TEST(IpAddr, StrIsCanonicalRfc5952) {
  struct Case {
    const char* in;
    const char* out;
  } cases[] = {
      {"2001:DB8:0:0:0:0:0:5", "2001:db8::5"},
      {"2001:0db8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"},
      {"2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6"},
      {"2001:db8::", "2001:db8::"},
      {"::ffff:203.0.113.9", "::ffff:203.0.113.9"},
      {"198.51.100.255", "198.51.100.255"},
      {"0.0.0.0", "0.0.0.0"},
  };
  for (const auto& c : cases) {
    auto a = IpAddr::parse(c.in);
    ASSERT_TRUE(a) << c.in;
    EXPECT_EQ(a->str(), c.out) << c.in;
    // Printing and parsing again gives the same address.
    auto again = IpAddr::parse(a->str());
    ASSERT_TRUE(again) << c.in;
    EXPECT_EQ(*again, *a) << c.in;
  }
}

TEST(IpAddr, V4MappedIsV6) {
  auto a = IpAddr::parse("::ffff:203.0.113.9");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->is_v6());
  EXPECT_NE(*a, *IpAddr::parse("203.0.113.9"));
}

TEST(IpAddr, RejectsBadText) {
  const char* bad[] = {
      "",
      "203.0.113",
      "203.0.113.5.1",
      "203.0.113.256",
      "203.0.113.-1",
      "203.0.113.5 ",
      " 203.0.113.5",
      "203.0.113.5/24",
      "203.0.113.5:80",
      "203.0.113.x",
      "2001:db8::g",
      "2001:db8:::5",
      "2001:db8::5::6",
      "2001:db8:1:2:3:4:5:6:7",
      "[2001:db8::5]",
      "2001:db8::5%eth0",
      "2001:db8::5/64",
      "localhost",
      // 46 characters: longer than any address text.
      "2001:0db8:0000:0000:0000:0000:0000:0005:000000",
  };
  for (const char* text : bad) EXPECT_FALSE(IpAddr::parse(text)) << '"' << text << '"';
}

TEST(IpAddr, ParsesOnlyTheView) {
  // Longer than the parser's buffer: rejected by length, not copied.
  std::string long_text(200, '1');
  EXPECT_FALSE(IpAddr::parse(long_text));
  // A view into a longer string: only the view's characters count.
  std::string text = "203.0.113.59";
  EXPECT_EQ(IpAddr::parse(std::string_view(text).substr(0, 11))->str(), "203.0.113.5");
}

// BUG: inet_pton stops at the first NUL, so "203.0.113.5\0junk" parses as 203.0.113.5
// although the text is neither dotted-quad nor RFC 4291 (input from the management API or
// the config can carry a NUL through a "\u0000" escape).
TEST(IpAddr, RejectsEmbeddedNul) {
  using namespace std::string_view_literals;
  EXPECT_FALSE(IpAddr::parse("203.0.113.5\0junk"sv));
  EXPECT_FALSE(IpAddr::parse("2001:db8::5\0"sv));
  EXPECT_FALSE(Endpoint::parse("203.0.113.5\0:4000"sv));
}

TEST(IpAddr, Constructors) {
  IpAddr a = IpAddr::v4(0xcb007105);  // 203.0.113.5
  EXPECT_EQ(a, *IpAddr::parse("203.0.113.5"));
  const uint8_t raw4[4] = {198, 51, 100, 7};
  EXPECT_EQ(IpAddr::v4_raw(raw4), *IpAddr::parse("198.51.100.7"));
  const uint8_t raw6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34};
  EXPECT_EQ(IpAddr::v6_raw(raw6), *IpAddr::parse("2001:db8::1234"));
}

TEST(IpAddr, DefaultIsInvalid) {
  IpAddr a;
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(a.str(), "-");
}

TEST(IpAddr, EqualityNeedsSameFamily) {
  // 0.0.0.0 and :: have the same bytes; the family tells them apart.
  EXPECT_NE(*IpAddr::parse("0.0.0.0"), *IpAddr::parse("::"));
  EXPECT_EQ(*IpAddr::parse("2001:db8::1"), *IpAddr::parse("2001:db8:0::1"));
  EXPECT_NE(*IpAddr::parse("2001:db8::1"), *IpAddr::parse("2001:db8::2"));
}

// ---- IpPrefix --------------------------------------------------------------------------------

TEST(IpPrefix, ParseAndStrRoundTrip) {
  const char* good[] = {"203.0.113.0/24", "198.51.100.128/25", "203.0.113.7/32",  "0.0.0.0/0",
                        "2001:db8::/32",  "2001:db8:1::/48",   "2001:db8::1/128", "::/0",
                        "2001:db8::/33"};
  for (const char* text : good) {
    auto p = IpPrefix::parse(text);
    ASSERT_TRUE(p) << text;
    EXPECT_EQ(p->str(), text);
  }
  auto p = IpPrefix::parse("203.0.113.0/24");
  EXPECT_EQ(p->addr, *IpAddr::parse("203.0.113.0"));
  EXPECT_EQ(p->len, 24);
  auto q = IpPrefix::parse("2001:db8::/127");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->len, 127);
  EXPECT_TRUE(q->addr.is_v6());
}

TEST(IpPrefix, KeepsHostBits) {
  // An interface address with its subnet: the address is kept as written.
  auto p = IpPrefix::parse("203.0.113.77/26");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->str(), "203.0.113.77/26");
  EXPECT_TRUE(p->contains(*IpAddr::parse("203.0.113.64")));
  EXPECT_TRUE(p->contains(*IpAddr::parse("203.0.113.127")));
  EXPECT_FALSE(p->contains(*IpAddr::parse("203.0.113.128")));
  EXPECT_FALSE(p->contains(*IpAddr::parse("203.0.113.63")));
}

TEST(IpPrefix, RejectsBadText) {
  const char* bad[] = {
      "203.0.113.4/33",
      "2001:db8::1/129",
      "203.0.113.0",
      "203.0.113.0/",
      "/24",
      "203.0.113.0/-1",
      "203.0.113.0/+24",
      "203.0.113.0/24x",
      "203.0.113.0/ 24",
      "203.0.113.0/24 ",
      "203.0.113/24",
      "2001:db8::/64/1",
      "203.0.113.0/256",
      "203.0.113.0/4294967296",
      "2001:db8::g/64",
      "",
  };
  for (const char* text : bad) EXPECT_FALSE(IpPrefix::parse(text)) << '"' << text << '"';
}

TEST(IpPrefix, ContainsV4NonOctetLengths) {
  auto in = [](const char* prefix, const char* addr) {
    return IpPrefix::parse(prefix)->contains(*IpAddr::parse(addr));
  };
  EXPECT_TRUE(in("0.0.0.0/0", "198.51.100.1"));
  EXPECT_TRUE(in("203.0.113.0/24", "203.0.113.255"));
  EXPECT_FALSE(in("203.0.113.0/24", "203.0.112.255"));
  EXPECT_TRUE(in("203.0.113.0/25", "203.0.113.127"));
  EXPECT_FALSE(in("203.0.113.0/25", "203.0.113.128"));
  EXPECT_TRUE(in("203.0.113.128/25", "203.0.113.128"));
  EXPECT_FALSE(in("203.0.113.128/25", "203.0.113.127"));
  EXPECT_TRUE(in("203.0.113.96/27", "203.0.113.96"));
  EXPECT_TRUE(in("203.0.113.96/27", "203.0.113.127"));
  EXPECT_FALSE(in("203.0.113.96/27", "203.0.113.95"));
  EXPECT_FALSE(in("203.0.113.96/27", "203.0.113.128"));
  EXPECT_TRUE(in("203.0.113.6/31", "203.0.113.7"));
  EXPECT_FALSE(in("203.0.113.6/31", "203.0.113.8"));
  EXPECT_TRUE(in("203.0.113.7/32", "203.0.113.7"));
  EXPECT_FALSE(in("203.0.113.7/32", "203.0.113.6"));
  // /12 ends inside the second octet: 198.48.0.0 - 198.63.255.255.
  EXPECT_TRUE(in("198.48.0.0/12", "198.51.100.1"));
  EXPECT_TRUE(in("198.48.0.0/12", "198.63.255.255"));
  EXPECT_FALSE(in("198.48.0.0/12", "198.64.0.0"));
  EXPECT_FALSE(in("198.48.0.0/12", "198.47.255.255"));
  // /1 looks at one bit of the first octet.
  EXPECT_TRUE(in("128.0.0.0/1", "203.0.113.1"));
  EXPECT_FALSE(in("128.0.0.0/1", "127.0.0.1"));
}

TEST(IpPrefix, ContainsV6NonOctetLengths) {
  auto in = [](const char* prefix, const char* addr) {
    return IpPrefix::parse(prefix)->contains(*IpAddr::parse(addr));
  };
  EXPECT_TRUE(in("::/0", "2001:db8::1"));
  EXPECT_TRUE(in("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
  EXPECT_FALSE(in("2001:db8::/32", "2001:db9::"));
  EXPECT_TRUE(in("2001:db8::/33", "2001:db8:7fff::1"));
  EXPECT_FALSE(in("2001:db8::/33", "2001:db8:8000::"));
  EXPECT_TRUE(in("2001:db8:0:8::/61", "2001:db8:0:f::1"));
  EXPECT_FALSE(in("2001:db8:0:8::/61", "2001:db8:0:10::"));
  EXPECT_FALSE(in("2001:db8:0:8::/61", "2001:db8:0:7::"));
  EXPECT_TRUE(in("2001:db8::/63", "2001:db8:0:1::5"));
  EXPECT_FALSE(in("2001:db8::/63", "2001:db8:0:2::"));
  EXPECT_TRUE(in("2001:db8::2/127", "2001:db8::3"));
  EXPECT_FALSE(in("2001:db8::2/127", "2001:db8::4"));
  EXPECT_FALSE(in("2001:db8::2/127", "2001:db8::1"));
  EXPECT_TRUE(in("2001:db8::5/128", "2001:db8::5"));
  EXPECT_FALSE(in("2001:db8::5/128", "2001:db8::4"));
}

TEST(IpPrefix, ContainsNeedsSameFamily) {
  EXPECT_FALSE(IpPrefix::parse("0.0.0.0/0")->contains(*IpAddr::parse("2001:db8::1")));
  EXPECT_FALSE(IpPrefix::parse("::/0")->contains(*IpAddr::parse("203.0.113.1")));
  // ::ffff:203.0.113.1 is an IPv6 address, not in an IPv4 prefix.
  EXPECT_FALSE(IpPrefix::parse("203.0.113.0/24")->contains(*IpAddr::parse("::ffff:203.0.113.1")));
  EXPECT_FALSE(IpPrefix::parse("0.0.0.0/0")->contains(IpAddr{}));
}

// ---- Endpoint --------------------------------------------------------------------------------

TEST(Endpoint, ParseAndStrRoundTrip) {
  const char* good[] = {"203.0.113.5:4000",
                        "198.51.100.7:1",
                        "203.0.113.5:65535",
                        "[2001:db8::5]:4000",
                        "[2001:db8:1:2:3:4:5:6]:65535",
                        "[::ffff:203.0.113.5]:5060"};
  for (const char* text : good) {
    auto e = Endpoint::parse(text);
    ASSERT_TRUE(e) << text;
    EXPECT_TRUE(e->valid()) << text;
    EXPECT_EQ(e->str(), text);
    EXPECT_EQ(Endpoint::parse(e->str()), e) << text;
  }
  auto e = Endpoint::parse("[2001:db8::5]:4000");
  EXPECT_EQ(e->addr, *IpAddr::parse("2001:db8::5"));
  EXPECT_EQ(e->port, 4000);
  auto f = Endpoint::parse("203.0.113.5:4000");
  EXPECT_EQ(f->addr, *IpAddr::parse("203.0.113.5"));
  EXPECT_EQ(f->port, 4000);
}

TEST(Endpoint, RejectsBadText) {
  const char* bad[] = {
      "[2001:db8::1]:0",
      "203.0.113.4:65536",
      "203.0.113.4:0",
      "203.0.113.4:99999999999",
      "2001:db8::5:4000",
      "2001:db8::5",
      "[2001:db8::5]",
      "[2001:db8::5]:",
      "[2001:db8::5]4000",
      "[2001:db8::5:4000",
      "2001:db8::5]:4000",
      "203.0.113.5",
      "203.0.113.5:",
      ":4000",
      "[]:4000",
      "203.0.113.5:abc",
      "203.0.113.5:40x",
      "203.0.113.5:-1",
      "203.0.113.5:+80",
      "203.0.113.5: 80",
      "203.0.113.5:80 ",
      "203.0.113:80",
      "[[2001:db8::5]]:80",
      "",
      "[",
      ":",
  };
  for (const char* text : bad) EXPECT_FALSE(Endpoint::parse(text)) << '"' << text << '"';
}

TEST(Endpoint, ValidNeedsAddressAndPort) {
  Endpoint e;
  EXPECT_FALSE(e.valid());
  e.addr = *IpAddr::parse("203.0.113.5");
  EXPECT_FALSE(e.valid());
  e.port = 4000;
  EXPECT_TRUE(e.valid());
  Endpoint no_addr;
  no_addr.port = 4000;
  EXPECT_FALSE(no_addr.valid());
}

TEST(Endpoint, Equality) {
  EXPECT_EQ(*Endpoint::parse("203.0.113.5:4000"), *Endpoint::parse("203.0.113.5:4000"));
  EXPECT_NE(*Endpoint::parse("203.0.113.5:4000"), *Endpoint::parse("203.0.113.5:4001"));
  EXPECT_NE(*Endpoint::parse("203.0.113.5:4000"), *Endpoint::parse("203.0.113.6:4000"));
  EXPECT_NE(*Endpoint::parse("[::]:4000"), *Endpoint::parse("0.0.0.0:4000"));
}

}  // namespace
}  // namespace veil
