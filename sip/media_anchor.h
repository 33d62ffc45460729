// The seam between the B2BUA and the media plane. The B2BUA decides which SBC endpoints a
// call uses and where the peers are; an implementation (the dataplane's FlowTable in veild,
// a recording fake in tests) allocates the ports and installs the flows.
#pragma once

#include <cstdint>
#include <optional>

#include "dataplane/addr.h"

namespace veil::sip {

// Side numbers used throughout sip/: the untrusted side and the trusted side.
inline constexpr int kExternal = 0;
inline constexpr int kInternal = 1;

// One side of one media stream: the SBC's own RTP endpoint there (RTCP = port + 1) and
// the peer's RTP endpoint as that side's SDP says (invalid while not known yet, e.g. the
// answering side before its answer).
struct MediaLeg {
  Endpoint sbc_local;
  Endpoint remote;
};

// Everything needed to relay one m-line: RTP and RTCP, both directions.
struct MediaStreamPlan {
  uint32_t id = 0;  // unique while the stream exists
  MediaLeg ext, in;
  bool rtcp_mux = false;  // RTCP shares the RTP port on both legs
};

class MediaAnchor {
 public:
  virtual ~MediaAnchor() = default;
  // An even RTP port (RTCP = +1) on `side` (kExternal, kInternal) of family `fam`;
  // nullopt when the range is exhausted (the B2BUA answers 503).
  virtual std::optional<Endpoint> allocate(int side, Family fam) = 0;
  virtual void release(int side, const Endpoint& local) = 0;
  // Installs or updates the four flows (RTP and RTCP, both directions) of one m-line.
  // Called again with the same id when a remote becomes known or changes.
  virtual bool program(const MediaStreamPlan& plan) = 0;
  // Removes the flows of `id`; a no-op for an id that was never programmed.
  virtual void remove(uint32_t id) = 0;
};

}  // namespace veil::sip
