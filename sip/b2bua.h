// Veil's SIP back-to-back user agent (issue 3) on sofia-sip's nua: two user agents on one
// su_root, the external one on the SBC's untrusted address, the internal one on its trusted
// address. Every call is terminated on one agent and re-originated on the other: new
// Call-ID, tags, Via, Contact and CSeq (sofia generates them); only the user parts and
// display names of From/To, the SDP (rewritten by sip/sdp_rewrite.h) and the headers of the
// configured allow-list cross. Media is anchored through a MediaAnchor.
//
// Threading: everything runs on the thread that runs `root` (su_root_threading(root, 0)
// before start()). Nothing here blocks.
#pragma once

#include <sofia-sip/su_wait.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sip/media_anchor.h"
#include "sip/sip_config.h"

namespace veil::sip {

struct B2buaStats {
  uint64_t calls_total = 0;          // INVITEs that started a call object
  uint64_t calls_answered = 0;       // 2xx forwarded to the caller
  uint64_t calls_failed = 0;         // final failure sent to the caller
  uint64_t calls_cancelled = 0;      // CANCELled by the caller before an answer (487)
  uint64_t refused_source = 0;       // INVITE on the internal side from a non-PBX source (403)
  uint64_t sdp_rejected = 0;         // bad or missing SDP (488)
  uint64_t no_media_ports = 0;       // port allocation or flow programming failed (503)
  uint64_t no_response_timeouts = 0; // other leg silent (CANCEL, 503)
  uint64_t reinvites = 0;            // re-INVITEs relayed
  uint64_t early_media = 0;          // provisional responses with SDP relayed (early media)
  uint64_t reliable_provisionals = 0; // provisionals sent reliably to the caller (100rel)
  uint64_t updates = 0;              // UPDATEs relayed (RFC 3311)
  uint64_t early_updates = 0;        // of those, in an early dialog (before the 2xx)
  uint64_t infos = 0;                // INFOs relayed
  uint64_t late_offers = 0;          // INVITEs without SDP relayed (offer in the 2xx, answer in ACK)
  uint64_t auth_challenges = 0;      // 401/407 to an INVITE relayed to the caller with the challenge
  uint64_t challenges_withheld = 0;  // 401/407 whose challenge names a trusted address: 503 instead
  uint64_t ice_restarts = 0;         // browser re-offers with new ICE credentials (Veil restarts too)
  uint64_t callback_exceptions = 0;  // C++ exceptions caught in sofia callbacks
  uint64_t media_timeouts = 0;       // calls ended (BYE on both legs) because their media went idle
  uint64_t options_answered = 0;     // OPTIONS answered 200 by Veil itself (never relayed)
  uint64_t malformed_dropped = 0;    // messages sofia-sip could not parse well enough to answer
                                     // (garbage, broken request line): dropped, counted here
  uint64_t registers_received = 0;   // REGISTERs from the untrusted side
  uint64_t registers_relayed = 0;    // REGISTERs Veil sent to the PBX
  uint64_t registers_throttled = 0;  // refreshes answered 200 by Veil (register_min_interval_s)
  uint64_t registers_removed = 0;    // bindings removed by an un-REGISTER the PBX accepted
  uint64_t registers_expired = 0;    // bindings removed because they expired
};

// One call as `veilctl calls` shows it.
struct CallView {
  uint64_t serial = 0;
  enum class State { Ringing, Answered, Ending } state = State::Ringing;
  std::chrono::milliseconds age{0};  // since the INVITE arrived
  struct Leg {
    int side = 0;            // kExternal or kInternal
    std::string call_id;     // this leg's Call-ID (empty until known)
    bool established = false;
  } leg[2];                  // [0] the caller's leg, [1] the re-originated leg
  std::string from_user, to_user;
  std::vector<uint32_t> streams;  // MediaStreamPlan ids
};

// One registration as `veilctl registrations` shows it (a read-only copy).
struct BindingView {
  std::string aor;             // address-of-record user (the To user of the client's REGISTER)
  std::string contact;         // Veil's Contact for it toward the PBX (sip:veil-...@internal)
  std::string client_contact;  // the client's own Contact URI (only ever answered back to it)
  Endpoint source;             // where the client registered from (what a NAT maps back)
  Transport transport = Transport::Udp;
  bool active = false;         // the PBX confirmed it (false: first REGISTER still at the PBX)
  bool pending = false;        // a REGISTER for it is at the PBX now
  std::chrono::seconds expires_in{0};
  std::chrono::milliseconds since_relayed{0};  // since its last REGISTER went to the PBX
};

class B2bua {
 public:
  using Logger = std::function<void(std::string_view)>;

  B2bua(su_root_t* root, SipConfig cfg, MediaAnchor& media, Logger log = {});
  ~B2bua();
  B2bua(const B2bua&) = delete;
  B2bua& operator=(const B2bua&) = delete;

  // Creates and binds both agents. False with `error` set when the configuration is invalid
  // or a socket cannot be bound.
  bool start(std::string* error);

  // Ends every call (CANCEL/BYE on live legs) and shuts both agents down; stopped() turns
  // true once sofia-sip has finished (keep running the root until then, bounded).
  void shutdown();
  bool stopped() const;

  // Media of stream `plan_id` (MediaStreamPlan::id) has been idle for `idle_for`: ends its
  // call with BYE on both legs (flows removed, ports released, call freed), counted in
  // media_timeouts. Only an answered call that has been up for at least `idle_for` is ended
  // (flows are installed at the offer, so a long ringing phase looks idle). False when no
  // such call exists or it is not eligible.
  bool end_call_for_media(uint32_t plan_id, std::string_view reason,
                          std::chrono::milliseconds idle_for);

  // Call objects alive now: 0 whenever no call is in progress (tests check it returns to 0).
  size_t active_calls() const;
  // Registered clients (bindings the PBX confirmed and that have not expired or been
  // removed; expired ones are swept once a second).
  size_t bindings() const;
  // Read-only snapshot of the bindings, by AOR (`veilctl registrations`).
  std::vector<BindingView> registrations() const;
  const B2buaStats& stats() const;
  // Read-only snapshot of the calls, by serial (`veilctl calls`).
  std::vector<CallView> calls() const;
  // Ends call `serial` on both legs (BYE, or CANCEL while ringing); flows removed. False if
  // there is no such call.
  bool end_call(uint64_t serial, std::string_view reason);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace veil::sip
