// Per-flow RTP reception statistics (RFC 3550 A.1, A.3, A.8), updated by the worker for
// every relayed RTP packet: extended highest sequence number, packets received, relative
// transit time and the interarrival jitter estimate. A few integer operations on the flow's
// counter line (Flow line 1), which the worker writes for every packet anyway. No EAL here:
// unit-tested on plain structs (tests/unit/rtp_stats_test.cc).
#pragma once

#include <cstdint>

namespace veil::dp {

// Clock rate of a static RTP payload type (RFC 3551 tables 4 and 5); 0 for dynamic or
// unassigned types, whose rate only the SDP (or `flow-add clock-rate=`) can say.
constexpr uint32_t static_clock_rate(uint8_t pt) {
  switch (pt) {
    case 0: case 3: case 4: case 5: case 7: case 8: case 9: case 12: case 13: case 15: case 18:
      return 8000;
    case 6: return 16000;
    case 10: case 11: return 44100;
    case 16: return 11025;
    case 17: return 22050;
    case 14: case 25: case 26: case 28: case 31: case 32: case 33: case 34:
      return 90000;
    default: return 0;
  }
}

// Multiplier that turns a TSC value into RTP timestamp units: (tsc * mult) >> 32.
inline uint32_t rtp_clock_mult(uint32_t clock_rate, uint64_t tsc_hz) {
  return tsc_hz ? uint32_t((uint64_t(clock_rate) << 32) / tsc_hz) : 0;
}

// Arrival time in timestamp units, modulo 2^32 (only differences matter): bits 32-63 of
// tsc * mult, which the 64-bit product keeps even when the full product does not fit.
inline uint32_t rtp_arrival(uint64_t tsc, uint32_t mult) { return uint32_t((tsc * uint64_t(mult)) >> 32); }

// The state, as it sits in the flow's counter line. Single writer (the flow's worker);
// the control plane reads it with relaxed loads (an estimate: fields may be one packet apart).
// (The last packet's timestamp, sequence number, payload type and SSRC are kept beside it
// as raw header bytes: Flow::last_rtp.)
struct RtpStats {
  uint32_t ext_max = 0;   // extended highest sequence number received (cycles << 16 | max_seq)
  uint32_t base = 0;      // extended sequence number of the first packet of this SSRC
  uint32_t received = 0;  // RTP packets received since the SSRC started (0: none yet)
  uint32_t transit = 0;   // relative transit time of the last packet, timestamp units
  uint32_t jitter = 0;    // interarrival jitter, timestamp units scaled by 16 (A.8)
};

inline constexpr uint16_t kMaxDropout = 3000;  // RFC 3550 A.1
inline constexpr uint16_t kMaxMisorder = 100;

// One RTP packet: `ssrc_changed` is true when its SSRC differs from the last one seen
// (the stats restart), `arrival` is its arrival time in timestamp units (valid only when
// `clock_known`; without a clock rate the jitter is not estimated). The usual packet (the
// same SSRC, at most kMaxDropout numbers ahead) takes one branch.
[[gnu::always_inline]] inline void rtp_track(RtpStats& s, bool ssrc_changed, uint16_t seq, uint32_t ts, uint32_t arrival,
                      bool clock_known) {
  const uint32_t received = s.received;
  const uint32_t ext_max = s.ext_max;
  // How far ahead of the highest number so far, modulo 2^16: adding it to the extended
  // number carries a wrap of the 16-bit one into the cycle count.
  const uint32_t udelta = uint16_t(seq - uint16_t(ext_max));
  if (__builtin_expect(received == 0 || ssrc_changed || udelta >= kMaxDropout, 0)) {
    // A new SSRC, or a jump too large to be loss: the sender restarted its sequence (A.1
    // waits for a second sequential packet before restarting; we restart at once). A
    // number just behind the maximum is a duplicate or reordered packet instead: it counts
    // as received and the maximum stays.
    if (received == 0 || ssrc_changed || udelta <= 65535u - kMaxMisorder) {
      s.base = seq;
      s.ext_max = seq;
      s.received = 1;
      s.transit = arrival - ts;
      s.jitter = 0;
      return;
    }
  } else {
    s.ext_max = ext_max + udelta;
  }
  s.received = received + 1;
  if (clock_known) {
    uint32_t transit = arrival - ts;
    int32_t d = int32_t(transit - s.transit);
    s.transit = transit;
    uint32_t ad = uint32_t(d < 0 ? -d : d);
    s.jitter += ad - ((s.jitter + 8) >> 4);
  }
}

// What `veilctl flow` shows (A.3): expected from the extended sequence numbers, lost =
// expected - received (negative with duplicates).
struct RtpReport {
  uint64_t expected = 0;
  int64_t lost = 0;
  double jitter_ts = 0;  // timestamp units
};
inline RtpReport rtp_report(const RtpStats& s) {
  RtpReport r;
  if (s.received == 0) return r;
  r.expected = uint64_t(s.ext_max - s.base) + 1;
  r.lost = int64_t(r.expected) - int64_t(s.received);
  r.jitter_ts = double(s.jitter) / 16.0;
  return r;
}

}  // namespace veil::dp
