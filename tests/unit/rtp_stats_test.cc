// RFC 3550 reception statistics as the worker keeps them (dataplane/rtp_stats.h): expected
// and lost from the extended highest sequence number (A.3), interarrival jitter (A.8).
#include "dataplane/rtp_stats.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace veil::dp;

namespace {

// One packet of a 8 kHz stream sent every 20 ms (160 timestamp units), arriving `late`
// timestamp units after its nominal time.
void feed(RtpStats& s, uint16_t seq, uint32_t ts, int32_t late, bool ssrc_changed = false) {
  rtp_track(s, ssrc_changed, seq, ts, uint32_t(1000000 + int64_t(ts) + late), true);
}

}  // namespace

TEST(RtpStats, InOrderStreamHasNoLossNoJitter) {
  RtpStats s;
  for (uint16_t i = 0; i < 100; ++i) feed(s, uint16_t(5000 + i), 160u * i, 0);
  RtpReport r = rtp_report(s);
  EXPECT_EQ(r.expected, 100u);
  EXPECT_EQ(r.lost, 0);
  EXPECT_EQ(r.jitter_ts, 0.0);
}

TEST(RtpStats, GapsCountAsLost) {
  RtpStats s;
  uint32_t got = 0;
  for (uint16_t i = 0; i < 100; ++i) {
    if (i % 10 == 3) continue;  // 10 packets never arrive
    feed(s, uint16_t(100 + i), 160u * i, 0);
    ++got;
  }
  RtpReport r = rtp_report(s);
  EXPECT_EQ(got, 90u);
  EXPECT_EQ(r.expected, 100u);
  EXPECT_EQ(r.lost, 10);
}

TEST(RtpStats, SequenceWrapExtendsTheHighestNumber) {
  RtpStats s;
  for (uint32_t i = 0; i < 200; ++i) feed(s, uint16_t(65500 + i), 160 * i, 0);
  EXPECT_EQ(s.ext_max, 65500u + 199u);  // one cycle counted
  RtpReport r = rtp_report(s);
  EXPECT_EQ(r.expected, 200u);
  EXPECT_EQ(r.lost, 0);
}

TEST(RtpStats, ReorderedAndDuplicatePacketsDoNotMoveTheMaximum) {
  RtpStats s;
  feed(s, 10, 0, 0);
  feed(s, 12, 320, 0);
  feed(s, 11, 160, 0);  // late
  feed(s, 12, 320, 0);  // duplicate
  EXPECT_EQ(s.ext_max, 12u);
  RtpReport r = rtp_report(s);
  EXPECT_EQ(r.expected, 3u);
  EXPECT_EQ(r.lost, -1);  // RFC 3550: duplicates make the count negative
}

TEST(RtpStats, SsrcChangeRestarts) {
  RtpStats s;
  for (uint16_t i = 0; i < 50; i += 2) feed(s, i, 160u * i, (i % 4) ? 80 : 0);
  EXPECT_GT(rtp_report(s).lost, 0);
  EXPECT_GT(s.jitter, 0u);
  feed(s, 30000, 999, 0, true);
  for (uint16_t i = 1; i < 10; ++i) feed(s, uint16_t(30000 + i), 999u + 160u * i, 0);
  RtpReport r = rtp_report(s);
  EXPECT_EQ(r.expected, 10u);
  EXPECT_EQ(r.lost, 0);
  EXPECT_EQ(s.jitter, 0u);
}

TEST(RtpStats, LargeJumpRestartsTheSequence) {
  RtpStats s;
  for (uint16_t i = 0; i < 10; ++i) feed(s, i, 160u * i, 0);
  for (uint16_t i = 0; i < 5; ++i) feed(s, uint16_t(40000 + i), 1600u + 160u * i, 0);
  RtpReport r = rtp_report(s);
  EXPECT_EQ(r.expected, 5u);
  EXPECT_EQ(r.lost, 0);
}

// A.8: J += (|D| - J) / 16. Arrival offsets alternating 0 and 40 units give |D| = 40 for
// every packet after the first; the estimate converges to 40.
TEST(RtpStats, JitterFollowsRfc3550) {
  RtpStats s;
  double ref = 0;
  int32_t prev = 0;
  for (uint16_t i = 0; i < 400; ++i) {
    int32_t late = (i % 2) ? 40 : 0;
    feed(s, i, 160u * i, late);
    if (i) ref += (std::abs(double(late - prev)) - ref) / 16.0;
    prev = late;
  }
  EXPECT_NEAR(rtp_report(s).jitter_ts, ref, 1.0);
  EXPECT_NEAR(rtp_report(s).jitter_ts, 40.0, 1.0);
}

TEST(RtpStats, NoClockNoJitter) {
  RtpStats s;
  for (uint16_t i = 0; i < 20; ++i) rtp_track(s, false, i, 160u * i, 12345u * i * i, false);
  EXPECT_EQ(s.jitter, 0u);
  EXPECT_EQ(rtp_report(s).expected, 20u);
}

TEST(RtpStats, ClockMultiplier) {
  EXPECT_EQ(static_clock_rate(0), 8000u);
  EXPECT_EQ(static_clock_rate(9), 8000u);  // G.722's RTP clock (RFC 3551 4.5.2)
  EXPECT_EQ(static_clock_rate(96), 0u);
  uint64_t hz = 2500000000ull;
  uint32_t m = rtp_clock_mult(8000, hz);
  // One second later, from any starting point (the 64-bit product wraps; differences hold).
  for (uint64_t t0 : {uint64_t(0), uint64_t(1) << 40, uint64_t(1) << 50, (uint64_t(1) << 62) + 12345}) {
    uint32_t units = rtp_arrival(t0 + hz, m) - rtp_arrival(t0, m);
    EXPECT_NEAR(double(units), 8000.0, 1.0) << t0;
  }
}
