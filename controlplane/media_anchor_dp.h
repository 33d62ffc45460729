// The B2BUA's media plane in veild: sip::MediaAnchor over the dataplane's flow table.
//
// Each side has a PortAllocator over its media range ([media.external], [media.internal]):
// even RTP ports, RTCP on port + 1. program() installs, then updates, the flows of one
// m-line: RTP and RTCP (or RTP only with rtcp-mux), one flow per direction, the two
// directions naming each other as peers, so a latched source becomes the other direction's
// destination. Everything runs on the control thread (the FlowTable's only writer).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "controlplane/config.h"
#include "dataplane/srtp_session.h"
#include "sip/media_anchor.h"

namespace veil::dp {
class Dataplane;
struct FlowSpec;
}  // namespace veil::dp

namespace veil::ctl {

class DtlsHub;
class DtlsIdentity;
struct SrtpKeys;

// RTP ports of one media range: every even port p with first <= p and p + 1 <= last.
// O(1) allocate and release; freed ports go to the back of the queue, so a port is reused as
// late as possible (late packets of an ended call do not reach the next one).
class PortAllocator {
 public:
  explicit PortAllocator(config::MediaRange range) {
    base_ = uint32_t(range.first) + (range.first & 1u);
    uint32_t n = uint32_t(range.last) >= base_ + 1 ? (uint32_t(range.last) - base_ + 1) / 2 : 0;
    ring_.resize(n);
    used_.assign(n, false);
    for (uint32_t i = 0; i < n; ++i) ring_[i] = i;
    count_ = n;
  }

  // An even RTP port (RTCP = port + 1); nullopt when every pair is in use.
  std::optional<uint16_t> allocate() {
    if (count_ == 0) return std::nullopt;
    uint32_t i = ring_[head_];
    head_ = head_ + 1 == ring_.size() ? 0 : head_ + 1;
    --count_;
    used_[i] = true;
    return uint16_t(base_ + 2 * i);
  }

  // False (and nothing changes) for a port that is not an allocated RTP port of this range.
  bool release(uint16_t port) {
    if (port < base_ || ((port - base_) & 1u)) return false;
    uint32_t i = (port - base_) / 2;
    if (i >= used_.size() || !used_[i]) return false;
    used_[i] = false;
    size_t tail = head_ + count_;
    if (tail >= ring_.size()) tail -= ring_.size();
    ring_[tail] = i;
    ++count_;
    return true;
  }

  size_t capacity() const { return ring_.size(); }
  size_t in_use() const { return ring_.size() - count_; }

 private:
  uint32_t base_ = 0;
  std::vector<uint32_t> ring_;  // free pair indexes, a circular queue from head_
  std::vector<bool> used_;
  size_t head_ = 0;
  size_t count_ = 0;
};

class DpMediaAnchor : public sip::MediaAnchor {
 public:
  using Logger = std::function<void(std::string_view)>;

  // `cfg` must outlive the anchor. Media addresses: the SIP address of the side when the
  // family matches, else the side's port's first address of the family asked for.
  DpMediaAnchor(dp::Dataplane& dp, const config::Config& cfg, Logger log = {});
  ~DpMediaAnchor() override;

  std::optional<Endpoint> allocate(int side, Family fam) override;
  void release(int side, const Endpoint& local) override;
  bool program(const sip::MediaStreamPlan& plan) override;
  void remove(uint32_t id) override;

  // WebRTC streams (MediaStreamPlan::webrtc; docs/architecture.md "WebRTC calls"): the
  // browser-side RTP flow is an ICE-lite flow with DTLS to the control plane and SRTP
  // unprotect pending until keys; the flow towards the browser sends only with the browser's
  // consent and protects with SRTP (pending until keys); the trusted side stays plain RTP.
  // The DTLS-SRTP session of the browser-side flow is added to `hub` once Veil's role and the
  // browser's fingerprint are known, and removed with the stream. Without attach_dtls() the
  // anchor offers no fingerprint: the B2BUA does not do WebRTC.
  void attach_dtls(DtlsHub& hub, const DtlsIdentity& id);
  std::string dtls_fingerprint() const override;
  std::pair<std::string, std::string> ice_credentials() override;
  // The hub's KeysFn: installs the exported keys on the stream of `flow_id` (browser-side
  // flow: srtp_in = the browser's master; the flow towards it: srtp_out = Veil's). False if
  // `flow_id` is not a WebRTC stream's browser-side flow.
  bool on_dtls_keys(uint32_t flow_id, const SrtpKeys& keys);

  size_t streams() const { return streams_.size(); }

  // The MediaStreamPlan id a flow belongs to (nullopt for flows the anchor did not install,
  // e.g. ones added by hand with veilctl flow-add).
  std::optional<uint32_t> plan_of(uint32_t flow_id) const;

  // Plan ids whose media is idle: both RTP directions installed and both in `idle_flows`
  // (RTCP is ignored: a peer may send RTCP only, or none at all). One-way media, e.g. a
  // call on hold, keeps its stream alive.
  std::vector<uint32_t> idle_streams(const std::vector<uint32_t>& idle_flows) const;
  size_t ports_in_use(int side) const { return ports_[side].in_use(); }

 private:
  // Flow ids of one stream: [0] RTP ext->int, [1] RTP int->ext, [2] RTCP ext->int,
  // [3] RTCP int->ext; 0 where not installed.
  struct Stream {
    uint32_t flow[4] = {0, 0, 0, 0};
    sip::MediaStreamPlan plan;     // as last programmed
    bool dtls_added = false;       // a DtlsHub session exists for flow[0]
    dp::SrtpKeying srtp_in, srtp_out;  // WebRTC: exported keys (profile None: not yet)
  };
  void build(const sip::MediaStreamPlan& plan, const Stream& st, bool rtcp, uint32_t ext_id,
             uint32_t int_id, dp::FlowSpec& from_ext, dp::FlowSpec& from_int) const;
  bool put(Stream& st, uint32_t& slot_ext, uint32_t& slot_int, const sip::MediaStreamPlan& plan,
           bool rtcp);
  void dtls_for(Stream& st);
  // The programmed head stream of a BUNDLE member's plan; nullptr for a head, an unbundled
  // stream, or a head not programmed yet.
  const Stream* bundle_head_of(const sip::MediaStreamPlan& plan) const;
  void drop_stream(Stream& st);
  void drop_flow(uint32_t& id);
  void note(uint32_t plan_id, const Stream& st);
  uint32_t next_flow_id();
  void logf(const std::string& s) const {
    if (log_) log_(s);
  }

  dp::Dataplane& dp_;
  const config::Config& cfg_;
  Logger log_;
  uint8_t port_index_[2] = {0, 1};  // logical dataplane port of each side
  PortAllocator ports_[2];
  std::unordered_map<uint32_t, Stream> streams_;  // MediaStreamPlan::id -> flows
  std::unordered_map<uint32_t, uint32_t> flow_plan_;  // flow id -> MediaStreamPlan::id
  uint32_t next_id_ = 0x40000000;  // above ids an operator picks by hand with veilctl flow-add
  DtlsHub* hub_ = nullptr;
  const DtlsIdentity* dtls_id_ = nullptr;
};

}  // namespace veil::ctl
