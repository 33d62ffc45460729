// Unit tests of the media port allocator of veild's MediaAnchor
// (controlplane/media_anchor_dp.h): even RTP ports, RTCP = +1, O(1), exhaustion.
#include <gtest/gtest.h>

#include <set>

#include "controlplane/media_anchor_dp.h"

namespace veil::ctl {
namespace {

TEST(PortAllocator, EvenPortsInsideTheRange) {
  PortAllocator a(config::MediaRange{20001, 20010});  // RTP 20002..20008, RTCP up to 20009
  EXPECT_EQ(a.capacity(), 4u);
  std::set<uint16_t> got;
  for (int i = 0; i < 4; ++i) {
    auto p = a.allocate();
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(*p % 2, 0);
    EXPECT_GE(*p, 20002);
    EXPECT_LE(*p + 1, 20010);
    got.insert(*p);
  }
  EXPECT_EQ(got, (std::set<uint16_t>{20002, 20004, 20006, 20008}));
  EXPECT_EQ(a.in_use(), 4u);
}

TEST(PortAllocator, OddLastPortCompletesThePair) {
  PortAllocator a(config::MediaRange{20000, 20003});
  EXPECT_EQ(a.capacity(), 2u);
  PortAllocator b(config::MediaRange{20000, 20002});  // 20002 has no RTCP port
  EXPECT_EQ(b.capacity(), 1u);
  PortAllocator c(config::MediaRange{20001, 20002});  // no even port with port + 1 inside
  EXPECT_EQ(c.capacity(), 0u);
  EXPECT_FALSE(c.allocate().has_value());
  PortAllocator d(config::MediaRange{65534, 65535});
  EXPECT_EQ(d.allocate(), std::optional<uint16_t>(65534));
}

TEST(PortAllocator, ExhaustionThenReleaseReusesLeastRecentlyFreed) {
  PortAllocator a(config::MediaRange{30000, 30005});
  auto p1 = a.allocate(), p2 = a.allocate(), p3 = a.allocate();
  ASSERT_TRUE(p1 && p2 && p3);
  EXPECT_FALSE(a.allocate().has_value());  // exhausted: the B2BUA answers 503
  EXPECT_TRUE(a.release(*p2));
  EXPECT_TRUE(a.release(*p1));
  EXPECT_EQ(a.in_use(), 1u);
  EXPECT_EQ(a.allocate(), p2);  // first freed, first reused
  EXPECT_EQ(a.allocate(), p1);
  EXPECT_FALSE(a.allocate().has_value());
}

TEST(PortAllocator, ReleaseOfAPortNotAllocatedChangesNothing) {
  PortAllocator a(config::MediaRange{30000, 30003});
  auto p = a.allocate();
  ASSERT_TRUE(p);
  EXPECT_FALSE(a.release(uint16_t(*p + 1)));  // the RTCP port
  EXPECT_FALSE(a.release(29998));             // outside the range
  EXPECT_FALSE(a.release(30002));             // free already
  EXPECT_TRUE(a.release(*p));
  EXPECT_FALSE(a.release(*p));  // twice
  EXPECT_EQ(a.in_use(), 0u);
  EXPECT_EQ(a.capacity(), 2u);
}

TEST(PortAllocator, FullDefaultRangeCyclesWithoutDuplicates) {
  PortAllocator a(config::MediaRange{20000, 29999});
  ASSERT_EQ(a.capacity(), 5000u);
  std::set<uint16_t> live;
  for (int i = 0; i < 5000; ++i) {
    auto p = a.allocate();
    ASSERT_TRUE(p);
    ASSERT_TRUE(live.insert(*p).second);
  }
  EXPECT_FALSE(a.allocate());
  for (int round = 0; round < 3; ++round)
    for (uint16_t p : std::set<uint16_t>(live)) {
      ASSERT_TRUE(a.release(p));
      live.erase(p);
      auto q = a.allocate();
      ASSERT_TRUE(q);
      ASSERT_TRUE(live.insert(*q).second);
    }
  EXPECT_EQ(a.in_use(), 5000u);
}

}  // namespace
}  // namespace veil::ctl
