#include "sip/b2bua.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/nua.h>
#include <sofia-sip/nua_tag.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_protos.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/nta_tag.h>
#include <sofia-sip/tport_tag.h>
#include <fcntl.h>
#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "sip/sdp_rewrite.h"
#include "sip/status.h"
#include "sip/webrtc_leg.h"

// sofia-sip's log objects of nta (transactions) and tport (transports): exported by
// libsofia-sip-ua but not declared in its public headers. Veil redirects them so that what
// sofia drops without an answer (garbage, a broken request line) is logged by Veil and
// counted.
extern "C" {
extern su_log_t nta_log[];
extern su_log_t tport_log[];
}

namespace veil::sip {

namespace {

constexpr const char* kSdpType = "application/sdp";

std::string uri_host(const IpAddr& a) { return a.is_v6() ? "[" + a.str() + "]" : a.str(); }

std::string uri_hostport(const Endpoint& e) {
  return uri_host(e.addr) + ":" + std::to_string(e.port);
}

// RFC 3261 25.1 user = 1*( unreserved / escaped / user-unreserved ), without ';', '?' and
// '/' (they would start parameters or headers when the URI is printed in another context).
bool valid_user(const char* u) {
  if (!u || !*u || std::strlen(u) > 128) return false;
  for (const char* p = u; *p; ++p) {
    unsigned char c = static_cast<unsigned char>(*p);
    if (std::isalnum(c) || std::strchr("-_.!~*'()%&=+$,", c)) continue;
    return false;
  }
  return true;
}

// A display name as sofia-sip parsed it: a quoted string or tokens. Anything else
// (control characters, unbalanced quotes) is dropped rather than repaired.
std::string safe_display(const char* d) {
  if (!d || !*d || std::strlen(d) > 128) return "";
  std::string_view v(d);
  for (unsigned char c : v)
    if (c < 0x20 || c == 0x7f) return "";
  if (v.front() == '"') {
    if (v.size() < 2 || v.back() != '"') return "";
    for (size_t i = 1; i + 1 < v.size(); ++i) {
      if (v[i] == '\\') {
        ++i;
        continue;
      }
      if (v[i] == '"') return "";
    }
    return std::string(v);
  }
  for (unsigned char c : v)
    if (!(std::isalnum(c) || std::strchr("-.!%*_+`'~ ", c))) return "";
  return std::string(v);
}

std::string name_addr(const std::string& display, const std::string& user, const std::string& host) {
  std::string s;
  if (!display.empty()) s = display + " ";
  s += "<sip:";
  if (!user.empty()) s += user + "@";
  s += host + ">";
  return s;
}

bool copy_file(const std::string& from, int out_fd, std::string* error) {
  FILE* f = std::fopen(from.c_str(), "rb");
  if (!f) {
    *error = from + ": " + std::strerror(errno);
    return false;
  }
  char buf[4096];
  size_t n;
  bool ok = true;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    if (::write(out_fd, buf, n) != ssize_t(n)) ok = false;
  if (::write(out_fd, "\n", 1) != 1) ok = false;
  std::fclose(f);
  if (!ok) *error = "cannot write the TLS key directory";
  return ok;
}

void remove_tls_dir(const std::string& dir) {
  if (dir.empty()) return;
  for (const char* f : {"/agent.pem", "/cafile.pem"}) ::unlink((dir + f).c_str());
  ::rmdir(dir.c_str());
}

// The directory sofia-sip's TPTAG_CERTIFICATE wants, built from the configured files. Empty
// string on success.
std::string make_tls_dir(const SipConfig& cfg, std::string* dir) {
  const char* base = std::getenv("RUNTIME_DIRECTORY");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/veil-sip-tls-XXXXXX";
  std::vector<char> path(tmpl.begin(), tmpl.end());
  path.push_back('\0');
  if (!::mkdtemp(path.data())) return "sip TLS: cannot create " + tmpl + ": " + std::strerror(errno);
  *dir = path.data();  // mkdtemp: mode 0700
  std::string error;
  auto write = [&](const char* name, std::initializer_list<const std::string*> files) {
    int fd = ::open((*dir + name).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      error = "sip TLS: " + *dir + name + ": " + std::strerror(errno);
      return false;
    }
    bool ok = true;
    for (const std::string* f : files) ok = ok && copy_file(*f, fd, &error);
    ::close(fd);
    return ok;
  };
  if (!write("/agent.pem", {&cfg.tls_private_key, &cfg.tls_certificate}) ||
      (!cfg.tls_ca_file.empty() && !write("/cafile.pem", {&cfg.tls_ca_file}))) {
    remove_tls_dir(*dir);
    dir->clear();
    return "sip TLS: " + error;
  }
  return "";
}

const char* transport_param(Transport t) {
  return t == Transport::Tcp ? ";transport=tcp" : t == Transport::Tls ? ";transport=tls" : "";
}

}  // namespace

// ---------------------------------------------------------------------------------------

namespace {

struct Leg {
  nua_handle_t* nh = nullptr;
  int side = kExternal;
  bool server_pending = false;  // an INVITE received on this leg awaits our final response
  bool client_pending = false;  // an INVITE we sent on this leg has no final response yet
  bool ack_pending = false;     // 2xx received here; our ACK waits for the other leg's ACK
  bool established = false;
  bool terminated = false;      // sofia reported the leg terminated (or it never existed)
  bool cancel_sent = false;
  bool bye_sent = false;
  SdpOrigin origin;             // o= of what Veil sends on this leg
  // In-dialog requests received on this leg and relayed to the other one, awaiting the
  // other leg's answer (nua needs the saved request to answer them: NUTAG_WITH).
  msg_t* update_req = nullptr;  // UPDATE (one at a time, RFC 3311 5.2)
  std::vector<msg_t*> info_reqs;  // INFOs, answered in order
  bool update_sent = false;     // an UPDATE Veil relayed onto this leg has no final answer yet
  // Veil's Contact on this leg when sofia-sip's default would be wrong (a TLS leg: nua puts
  // the plain sip: address there, port 5060 without transport); empty: nua's.
  std::string contact;
  std::string last_sdp;         // the SDP Veil last produced for this leg
  bool reoffer_pending = false; // Veil offered last_sdp in a 2xx to a re-INVITE without SDP
};

struct Stream {
  bool active = false;          // ports allocated
  bool programmed = false;
  bool held = false;            // the last offer or its answer put the stream on hold: no media timeout
  uint32_t id = 0;
  Endpoint local[2];            // SBC endpoints, by side
  Endpoint remote[2];           // peers' endpoints, by side
  bool offer_mux = false;
  bool mux = false;
  // SDES-SRTP (sip/sdes_sdp.h), by side: the peer's chosen a=crypto (its key) and Veil's own
  // fresh one for that leg. suite Unknown: that leg is plain. Keys never cross legs.
  SdesCrypto sdes_remote[2], sdes_local[2];
  // WebRTC calls: the m-line's RTP payload types in the offer and answer (BUNDLE demux).
  PtSet pts;
};

// A call whose INVITE the far side challenged (401/407), relayed to the caller; kept until
// the caller retries with credentials (RFC 3261 22.2: same Call-ID and From tag, CSeq up),
// so that the retry goes out on the same B2BUA call: same serial, and toward the far side
// the same Call-ID, From (tag included) and To, CSeq + 1, as a UA resubmitting would.
struct Challenge {
  int side = kExternal;                  // side of the caller
  std::string caller_call_id, caller_from_tag;
  uint64_t serial = 0;
  std::string call_id, from, to;         // of Veil's INVITE on the other leg
  uint32_t cseq = 0;
  std::chrono::steady_clock::time_point expires;
};

struct Call {
  B2bua::Impl* owner = nullptr;
  uint64_t serial = 0;
  Leg leg[2];                   // [0]: the caller's leg (incoming), [1]: the re-originated leg
  std::vector<Stream> streams;
  su_timer_t* timer = nullptr;  // no-response timer of leg[1]'s INVITE
  bool answered = false;        // initial INVITE answered 2xx: later INVITEs are re-INVITEs
  std::chrono::steady_clock::time_point answered_at;
  bool ending = false;
  int offer_side = -1;          // side whose offer is outstanding
  // For `veilctl calls`: when it began, each leg's Call-ID, and the users (as sent).
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::string call_id[2];
  std::string from_user, to_user;
  // The caller's From tag (a challenged call is matched on it and the Call-ID).
  std::string caller_from_tag;
  // Set when this call retries a challenged one (the values Veil's INVITE reuses).
  std::optional<Challenge> retry;
  std::string out_to;           // To of Veil's INVITE on leg[1] (no tag)
  // RFC 3262 on the caller's leg: what its INVITE said about 100rel.
  bool caller_100rel = false;   // Supported or Require: 100rel
  bool caller_requires_100rel = false;
  // The answer (rewritten) last sent to the caller in a provisional response: the 2xx
  // repeats it when the callee's 2xx carries none (its answer came in a reliable 18x).
  std::optional<std::string> early_answer;
  bool late_offer = false;      // the caller's INVITE had no SDP: its answer comes in the ACK
  std::optional<WebRtcLeg> webrtc;  // the untrusted leg is a browser (sip/webrtc_leg.h)
  // Index of the BUNDLE head stream (the first active m-line) of a WebRTC call with more
  // than one active m-line; -1: not bundled.
  int bundle_head = -1;
};

// The flow a request arrived on: the source address and port and the transport (what a
// NAT in front of the client maps back to it), not what its Contact header claims.
struct Flow {
  Endpoint ep;
  Transport tr = Transport::Udp;
  bool operator==(const Flow& o) const { return ep == o.ep && tr == o.tr; }
};

// One registered address of record (the To user of the client's REGISTER; the host is
// always the PBX's domain). Toward the PBX it is Veil's own Contact
// sip:<token>@<internal address>; the PBX's INVITEs to that user are sent to `flow`.
struct Binding {
  std::string aor;              // user part
  std::string key;              // key in B2bua::Impl::bindings: AOR and the client's Call-ID
  std::chrono::steady_clock::time_point confirmed_at;  // last 2xx from the PBX
  std::string token;            // user part of Veil's Contact toward the PBX
  // Toward the PBX: one Call-ID and From tag for the binding's life, CSeq counting up
  // (RFC 3261 10.2.4). Each REGISTER goes out on a fresh nua handle (nua holds a
  // challenged request for nua_authenticate(), which Veil never calls: the client answers
  // the challenge), released when the PBX's final answer arrives.
  nua_handle_t* nh = nullptr;
  std::string call_id, from_tag;
  uint32_t cseq = 1;
  bool active = false;          // a 2xx from the PBX confirmed it
  Flow flow;                    // where the client registered from
  std::string client_contact;   // the client's Contact URI (answered back to it only)
  std::string client_user;      // its user part: the Request-URI user of calls to it
  std::string client_call_id;
  std::chrono::steady_clock::time_point expires_at;    // of the client's binding
  std::chrono::steady_clock::time_point last_relayed;  // last REGISTER sent to the PBX
  bool relay_pending = false;   // a REGISTER is at the PBX now
  // The client's REGISTER that the PBX's answer goes to.
  nua_handle_t* client_nh = nullptr;
  msg_t* client_req = nullptr;
  Flow pending_flow;
  std::string pending_contact, pending_call_id, pending_user;
  uint32_t pending_expires = 0;
};

}  // namespace

struct B2bua::Impl {
  su_root_t* root;
  SipConfig cfg;
  MediaAnchor& media;
  Logger log;
  nua_t* agent[2] = {nullptr, nullptr};
  bool shutdown_done[2] = {false, false};
  bool shutting_down = false;
  std::unordered_set<Call*> calls;
  uint64_t next_serial = 1;
  uint32_t next_stream_id = 1;
  B2buaStats stats;
  // One binding per registering device: keyed by AOR user and the client's Call-ID (a UA
  // keeps its Call-ID across refreshes, RFC 3261 10.2.4; two devices have two), each with
  // its own Veil Contact toward the PBX, so the PBX sees one contact per device and forks.
  std::map<std::string, Binding> bindings;
  std::vector<Challenge> challenges;        // challenged calls awaiting the caller's retry
  su_timer_t* reg_timer = nullptr;          // expiry sweep of `bindings`

  std::mt19937_64 rng{std::random_device{}()};

  Impl(su_root_t* r, SipConfig c, MediaAnchor& m, Logger l)
      : root(r), cfg(std::move(c)), media(m), log(std::move(l)) {}

  // RFC 4566 5.2: a numeric session id; kept below 2^62 so it prints as a plain number
  // everywhere.
  uint64_t random_session_id() { return (rng() >> 2) | 1; }

  void logf(const std::string& s) {
    if (log) log(s);
  }

  // su_logger_f for nta_log and tport_log.
  static void sofia_log(void* stream, char const* fmt, va_list ap) {
    auto* self = static_cast<Impl*>(stream);
    char buf[512];
    va_list aq;
    va_copy(aq, ap);
    int n = std::vsnprintf(buf, sizeof buf, fmt, aq);
    va_end(aq);
    if (n <= 0) return;
    std::string_view line(buf, std::min<size_t>(size_t(n), sizeof buf - 1));
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    if (line.find("received garbage") != std::string_view::npos ||
        line.find("Bad message") != std::string_view::npos)
      ++self->stats.malformed_dropped;
    self->logf("sofia: " + std::string(line));
  }

  int side_of(nua_t* nua) const { return nua == agent[kInternal] ? kInternal : kExternal; }

  // ---- sofia entry points -------------------------------------------------------------

  static void callback(nua_event_t event, int status, char const* phrase, nua_t* nua,
                       nua_magic_t* magic, nua_handle_t* nh, nua_hmagic_t* hmagic,
                       sip_t const* sip, tagi_t tags[]) {
    auto* self = static_cast<Impl*>(static_cast<void*>(magic));
    // FACTS.md: an exception escaping into sofia-sip leaves the transaction unanswered.
    try {
      self->on_event(event, status, phrase, nua, nh, static_cast<Call*>(static_cast<void*>(hmagic)),
                     sip, tags);
    } catch (const std::exception& e) {
      ++self->stats.callback_exceptions;
      self->logf(std::string("sip: exception in callback: ") + e.what());
    } catch (...) {
      ++self->stats.callback_exceptions;
      self->logf("sip: unknown exception in callback");
    }
  }

  static void timer_cb(su_root_magic_t*, su_timer_t*, su_timer_arg_t* arg) {
    auto* call = static_cast<Call*>(static_cast<void*>(arg));
    Impl* self = call->owner;
    try {
      self->on_no_response(call);
    } catch (...) {
      ++self->stats.callback_exceptions;
    }
  }

  void on_event(nua_event_t event, int status, char const* phrase, nua_t* nua, nua_handle_t* nh,
                Call* call, sip_t const* sip, tagi_t tags[]) {
    if (event == nua_r_shutdown) {
      if (status >= 200) shutdown_done[side_of(nua)] = true;
      return;
    }
    if (event == nua_i_invite && !call) {
      new_call(side_of(nua), nh, sip);
      return;
    }
    if (event == nua_i_register && !call) {
      on_register(nua, nh, sip);
      return;
    }
    if (event == nua_r_method || (event == nua_r_register)) {
      if (Binding* b = binding_of_handle(nh)) {
        on_register_response(*b, status, sip);
        return;
      }
    }
    if (!call && binding_of_handle(nh)) return;  // nua_i_state etc. of a REGISTER handle
    if ((event == nua_i_update || event == nua_i_info) && (!call || !calls.count(call))) {
      // Out of dialog, or for a call already gone: nothing to relay it on.
      nua_respond(nh, 481, standard_phrase(481), NUTAG_WITH_THIS(nua), TAG_END());
      if (!call) nua_handle_destroy(nh);
      return;
    }
    if (event == nua_i_options && !call) {
      // nua has answered it (200 with Veil's Allow/Supported/Accept) on the leg it arrived
      // on; nothing crosses. The handle nua created for it is ours to destroy.
      ++stats.options_answered;
      nua_handle_destroy(nh);
      return;
    }
    if (!call || !calls.count(call)) {
      // An event for a handle Veil never took (out-of-dialog requests that sofia answered
      // itself), or for a call already freed: nothing to do.
      return;
    }
    int li = call->leg[0].nh == nh ? 0 : 1;
    switch (event) {
      case nua_i_invite: on_reinvite(call, li, sip); break;
      case nua_r_invite: on_invite_response(call, li, status, phrase, sip); break;
      case nua_i_ack: on_ack(call, li, sip); break;
      case nua_i_update: on_update(call, li, nua, sip); break;
      case nua_r_update: on_update_response(call, li, status, sip); break;
      case nua_i_info: on_info(call, li, nua, sip); break;
      case nua_r_info: on_info_response(call, li, status); break;
      case nua_i_cancel:
        // sofia has answered the CANCEL (200) and the INVITE (487).
        if (call->leg[li].server_pending) ++stats.calls_cancelled;
        call->leg[li].server_pending = false;
        end_call(call, "cancelled by caller");
        break;
      case nua_i_bye:
        call->leg[li].established = false;
        call->leg[li].bye_sent = true;  // the leg is over; sofia answered 200
        end_call(call, li == 0 ? "BYE from caller" : "BYE from callee");
        break;
      case nua_i_state: {
        int cs = -1;
        tl_gets(tags, NUTAG_CALLSTATE_REF(cs), TAG_END());
        if (cs == nua_callstate_ready) call->leg[li].established = true;
        if (cs == nua_callstate_terminated) {
          call->leg[li].terminated = true;
          call->leg[li].server_pending = call->leg[li].client_pending = false;
          if (!call->ending) end_call(call, "leg terminated");
          maybe_free(call);
        }
        break;
      }
      default:
        break;
    }
  }

  // ---- call set-up ----------------------------------------------------------------------

  Call* make_call(int side, nua_handle_t* nh) {
    auto* call = new Call;
    call->owner = this;
    call->serial = next_serial++;
    call->leg[0].nh = nh;
    call->leg[0].side = side;
    call->leg[0].server_pending = true;
    // Random o= session ids: a counter would tell each peer how many calls Veil carries.
    call->leg[0].origin.session_id = random_session_id();
    call->leg[0].origin.version = 1;
    call->leg[1].side = 1 - side;
    call->leg[1].terminated = true;  // until it is created
    call->leg[1].origin.session_id = random_session_id();
    call->leg[1].origin.version = 1;
    calls.insert(call);
    ++stats.calls_total;
    nua_handle_bind(nh, reinterpret_cast<nua_hmagic_t*>(call));
    return call;
  }

  // Answers the caller with a failure and ends the call.
  void fail(Call* call, int status, const std::string& why) {
    Leg& a = call->leg[0];
    if (a.server_pending) {
      nua_respond(a.nh, status, standard_phrase(status), TAG_END());
      a.server_pending = false;
      ++stats.calls_failed;
    }
    logf("sip: call " + std::to_string(call->serial) + ": " + std::to_string(status) + " (" + why + ")");
    end_call(call, why);
  }

  bool source_is_pbx(nua_t* nua) {
    msg_t* msg = nua_current_request(nua);
    su_addrinfo_t* ai = msg ? msg_addrinfo(msg) : nullptr;
    if (!ai || !ai->ai_addr) return false;
    IpAddr src;
    if (ai->ai_addr->sa_family == AF_INET) {
      src = IpAddr::v4_raw(&reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr);
    } else if (ai->ai_addr->sa_family == AF_INET6) {
      src = IpAddr::v6_raw(&reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr);
    }
    return src == cfg.pbx.addr;
  }

  void new_call(int side, nua_handle_t* nh, sip_t const* sip) {
    if (shutting_down) {
      nua_respond(nh, 503, standard_phrase(503), TAG_END());
      nua_handle_destroy(nh);
      return;
    }
    Call* call = make_call(side, nh);
    if (!sip || !sip->sip_request || !sip->sip_from || !sip->sip_to) return fail(call, 400, "malformed INVITE");
    if (sip->sip_from->a_tag) call->caller_from_tag = sip->sip_from->a_tag;
    call->caller_requires_100rel = sip_has_feature(sip->sip_require, "100rel");
    call->caller_100rel = call->caller_requires_100rel || sip_has_feature(sip->sip_supported, "100rel");
    if (sip->sip_call_id && sip->sip_call_id->i_id) call->call_id[0] = sip->sip_call_id->i_id;
    // The caller's retry of a challenged INVITE (RFC 3261 22.2): the same B2BUA call again.
    for (auto it = challenges.begin(); it != challenges.end(); ++it) {
      if (it->side == side && it->caller_call_id == call->call_id[0] &&
          it->caller_from_tag == call->caller_from_tag && !call->caller_from_tag.empty() &&
          it->expires > std::chrono::steady_clock::now()) {
        call->retry = *it;
        call->serial = it->serial;
        --stats.calls_total;  // not a new call
        challenges.erase(it);
        break;
      }
    }
    if (side == kExternal)
      if (auto f = source_of(agent[kExternal])) pin_to_flow(nh, *f);

    std::optional<Endpoint> target;
    Transport transport = Transport::Udp;
    std::string client_user;  // Request-URI user toward a registered client
    std::string client_aor;   // its To user
    bool browser_target = false;  // the binding came through the WebSocket gateway
    if (side == kInternal) {
      if (!source_is_pbx(agent[kInternal])) {
        ++stats.refused_source;
        return fail(call, 403, "INVITE on the trusted side from a source other than the PBX");
      }
      const char* user = sip->sip_request->rq_url->url_user;
      if (Binding* b = binding_for_invite(user)) {
        target = b->flow.ep;
        transport = b->flow.tr;
        client_user = b->client_user;
        client_aor = b->aor;
        browser_target = is_gateway_flow(b->flow.ep, b->flow.tr == Transport::Tcp, cfg.external.addr);
      } else if (user && is_token(user)) {
        // Veil's Contact of a binding that is gone (un-REGISTERed or expired).
        return fail(call, 480, "no registration for this contact");
      } else {
        target = cfg.untrusted_target;
        transport = cfg.untrusted_transport;
        if (!target) return fail(call, 480, "no registration and no untrusted target");
      }
    } else {
      target = cfg.pbx;
      transport = cfg.pbx_transport;
    }

    // The offer. Without a body (late offer) the INVITE goes out without SDP: the callee
    // offers in its 2xx, the caller answers in its ACK (on_ack). Another body type: 488.
    std::optional<std::string> out;
    if (!sip->sip_payload || sip->sip_payload->pl_len == 0) {
      call->late_offer = true;
      ++stats.late_offers;
      webrtc_start(call, side, nullptr, browser_target);
    } else {
      if (!sip->sip_content_type || !sip->sip_content_type->c_type ||
          strcasecmp(sip->sip_content_type->c_type, kSdpType) != 0) {
        ++stats.sdp_rejected;
        return fail(call, 488, "INVITE body is not SDP");
      }
      std::string offer(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
      SdpInspectResult info = inspect_sdp(offer);
      if (info.error != SdpError::None) {
        ++stats.sdp_rejected;
        return fail(call, 488, std::string("bad SDP offer: ") + info.detail);
      }
      if (!webrtc_start(call, side, &info.info.webrtc, browser_target)) {
        ++stats.sdp_rejected;
        return fail(call, 488, "WebRTC offer that Veil cannot answer");
      }
      if (int st = apply_offer(call, side, info.info); st != 0)
        return fail(call, st, "media for offer");
      out = rewrite_for(call, 1, offer);
      if (!out) {
        ++stats.sdp_rejected;
        return fail(call, 488, "SDP rewrite failed");
      }
    }

    // The re-originated leg: only user parts and display names cross.
    // Toward a registered client: the user of the Contact it registered (Veil's own
    // veil-<hex> user stays on the trusted side).
    const char* ruri_user = client_user.empty() ? sip->sip_request->rq_url->url_user : client_user.c_str();
    if (ruri_user && !valid_user(ruri_user)) return fail(call, 400, "request-URI user");
    const char* from_user = sip->sip_from->a_url->url_user;
    const char* to_user = client_aor.empty() ? sip->sip_to->a_url->url_user : client_aor.c_str();
    call->from_user = valid_user(from_user) ? from_user : "anonymous";
    call->to_user = valid_user(to_user) ? to_user : "";
    std::string from = name_addr(safe_display(sip->sip_from->a_display),
                                 valid_user(from_user) ? from_user : "anonymous",
                                 uri_host(side == kExternal ? cfg.internal.addr : cfg.external.addr));
    std::string to = name_addr(safe_display(sip->sip_to->a_display),
                               valid_user(to_user) ? to_user : "", uri_host(target->addr));
    std::string ruri = std::string("sip:") + (ruri_user ? std::string(ruri_user) + "@" : "") +
                       uri_hostport(*target) + transport_param(transport);
    std::string extra = allowed_headers(sip);
    call->out_to = to;
    // Veil's own random Call-ID: sofia-sip's default is a UUID version 1, which carries the
    // MAC address of one of the SBC's interfaces and a timestamp (found by the leak audit).
    std::string call_id = random_hex(32), cseq;
    if (call->retry) {
      // Toward the far side the retry continues the challenged INVITE's dialog identity.
      from = call->retry->from;
      to = call->out_to = call->retry->to;
      call_id = call->retry->call_id;
      cseq = std::to_string(call->retry->cseq + 1) + " INVITE";
    }

    Leg& b = call->leg[1];
    if (auto f = source_of(agent[side]); f && f->tr == Transport::Tls) call->leg[0].contact = tls_contact(side);
    if (transport == Transport::Tls) b.contact = tls_contact(b.side);
    b.nh = nua_handle(agent[b.side], reinterpret_cast<nua_hmagic_t*>(call), TAG_END());
    if (!b.nh) return fail(call, 500, "nua_handle failed");
    if (b.side == kExternal) pin_to_flow(b.nh, Flow{*target, transport});
    b.terminated = false;
    b.client_pending = true;
    // Digest credentials cross end to end (the far side's challenge reached the caller).
    nua_invite(b.nh, NUTAG_URL(ruri.c_str()), SIPTAG_FROM_STR(from.c_str()),
               TAG_IF(!b.contact.empty(), SIPTAG_CONTACT_STR(b.contact.c_str())),
               SIPTAG_TO_STR(to.c_str()), TAG_IF(out.has_value(), SIPTAG_CONTENT_TYPE_STR(kSdpType)),
               TAG_IF(out.has_value(), SIPTAG_PAYLOAD_STR(out ? out->c_str() : "")),
               TAG_IF(!call_id.empty(), SIPTAG_CALL_ID_STR(call_id.c_str())),
               TAG_IF(!cseq.empty(), SIPTAG_CSEQ_STR(cseq.c_str())),
               TAG_IF(sip->sip_authorization, SIPTAG_AUTHORIZATION(sip->sip_authorization)),
               TAG_IF(sip->sip_proxy_authorization, SIPTAG_PROXY_AUTHORIZATION(sip->sip_proxy_authorization)),
               TAG_IF(!extra.empty(), SIPTAG_HEADER_STR(extra.c_str())), TAG_END());
    start_timer(call);
    logf("sip: call " + std::to_string(call->serial) + ": " +
         (side == kExternal ? "external -> internal" : "internal -> external"));
  }

  std::string tls_contact(int side) const {
    const SipSideConfig& sc = side == kExternal ? cfg.external : cfg.internal;
    return "<sip:" + uri_host(sc.addr) + ":" + std::to_string(sc.tls_port) + ";transport=tls>";
  }

  // Copies the allow-listed headers of `sip` (extension headers and a few known ones).
  std::string allowed_headers(sip_t const* sip) {
    if (cfg.header_allow_list.empty() || !sip) return "";
    std::string out;
    auto allowed = [&](std::string_view name) {
      for (const auto& h : cfg.header_allow_list)
        if (h.size() == name.size() && strncasecmp(h.data(), name.data(), name.size()) == 0)
          return true;
      return false;
    };
    for (sip_unknown_t const* u = sip->sip_unknown; u; u = u->un_next) {
      if (u->un_name && u->un_value && allowed(u->un_name) && !header_never_copied(u->un_name))
        out += std::string(u->un_name) + ": " + u->un_value + "\r\n";
    }
    if (sip->sip_subject && sip->sip_subject->g_value && allowed("Subject"))
      out += std::string("Subject: ") + sip->sip_subject->g_value + "\r\n";
    if (sip->sip_priority && sip->sip_priority->g_value && allowed("Priority"))
      out += std::string("Priority: ") + sip->sip_priority->g_value + "\r\n";
    if (!out.empty() && out.size() >= 2) out.resize(out.size() - 2);  // SIPTAG_HEADER_STR adds none
    return out;
  }

  void start_timer(Call* call) {
    call->timer = su_timer_create(su_root_task(root), cfg.no_response_timeout_ms);
    if (call->timer) {
      su_timer_set(call->timer, timer_cb, reinterpret_cast<su_timer_arg_t*>(call));
    }
  }

  void stop_timer(Call* call) {
    if (call->timer) {
      su_timer_destroy(call->timer);
      call->timer = nullptr;
    }
  }

  void on_no_response(Call* call) {
    if (!calls.count(call)) return;
    stop_timer(call);
    if (!call->leg[1].client_pending) return;
    ++stats.no_response_timeouts;
    // Not even a 100: a CANCEL may not be sent yet (RFC 3261 9.1) and nta would keep the
    // transaction until timer B (32 s). The leg is abandoned now: its handle is destroyed
    // with the call (nta stops retransmitting), so no call state outlives the 503.
    call->leg[1].client_pending = false;
    call->leg[1].cancel_sent = true;
    call->leg[1].terminated = true;
    fail(call, 503, "no response from the other side");
  }


  // ---- registrations ----------------------------------------------------------------------

  using Clock = std::chrono::steady_clock;

  std::string random_hex(size_t n) {
    static const char* hex = "0123456789abcdef";
    std::string s;
    while (s.size() < n) {
      uint64_t r = rng();
      for (int i = 0; i < 16 && s.size() < n; ++i, r >>= 4) s += hex[r & 15];
    }
    return s;
  }

  static constexpr const char* kTokenPrefix = "veil-";
  static bool is_token(const char* user) { return std::strncmp(user, kTokenPrefix, 5) == 0; }

  std::string domain() const {
    return cfg.register_domain.empty() ? uri_hostport(cfg.pbx) : cfg.register_domain;
  }

  std::optional<Flow> source_of(nua_t* nua) {
    msg_t* msg = nua_current_request(nua);
    su_addrinfo_t* ai = msg ? msg_addrinfo(msg) : nullptr;
    if (!ai || !ai->ai_addr) return std::nullopt;
    Flow f;
    if (ai->ai_addr->sa_family == AF_INET) {
      auto* sin = reinterpret_cast<const sockaddr_in*>(ai->ai_addr);
      f.ep = Endpoint{IpAddr::v4_raw(&sin->sin_addr), ntohs(sin->sin_port)};
    } else if (ai->ai_addr->sa_family == AF_INET6) {
      auto* sin6 = reinterpret_cast<const sockaddr_in6*>(ai->ai_addr);
      f.ep = Endpoint{IpAddr::v6_raw(&sin6->sin6_addr), ntohs(sin6->sin6_port)};
    } else {
      return std::nullopt;
    }
    f.tr = ai->ai_protocol == IPPROTO_TCP ? Transport::Tcp : Transport::Udp;
    // A TLS connection is TCP to the socket layer; the top Via names the transport (sofia-sip
    // checks it against the connection the request came on).
    if (sip_t const* sip = sip_object(msg);
        f.tr == Transport::Tcp && sip && sip->sip_via && sip->sip_via->v_protocol &&
        strcasecmp(sip->sip_via->v_protocol, "SIP/2.0/TLS") == 0)
      f.tr = Transport::Tls;
    return f;
  }

  // Every request of this untrusted-side dialog (ACK, BYE, re-INVITE, ...) goes to the flow
  // the client is reachable on, whatever its Contact says: a private address behind a NAT,
  // or a browser's "<random>.invalid;transport=ws" (RFC 7118), which the WebSocket gateway
  // reaches over the TCP connection it opened for that browser.
  void pin_to_flow(nua_handle_t* nh, const Flow& f) {
    std::string url = "sip:" + uri_hostport(f.ep) + transport_param(f.tr);
    nua_set_hparams(nh, NUTAG_PROXY(url.c_str()), TAG_END());
  }

  Binding* binding_of_handle(nua_handle_t* nh) {
    if (!nh) return nullptr;
    for (auto& [aor, b] : bindings)
      if (b.nh == nh) return &b;
    return nullptr;
  }

  // The live binding an INVITE from the PBX to `user` goes to: Veil's Contact token, or the
  // AOR user itself (a PBX that calls the AOR rather than the registered contact).
  // A Veil Contact user names one device; an AOR user goes to the device whose registration
  // the PBX confirmed last.
  Binding* binding_for_invite(const char* user) {
    if (!user) return nullptr;
    auto now = Clock::now();
    Binding* latest = nullptr;
    for (auto& [key, b] : bindings) {
      if (!b.active || b.expires_at <= now) continue;
      if (b.token == user) return &b;
      if (b.aor == user && (!latest || b.confirmed_at > latest->confirmed_at)) latest = &b;
    }
    return latest;
  }

  static uint32_t seconds_left(const Binding& b) {
    auto left = std::chrono::duration_cast<std::chrono::seconds>(b.expires_at - Clock::now()).count();
    return left > 0 ? uint32_t(left) : 0;
  }

  // The client's Contact and Expires, as answered back to it in a 200.
  static std::string contact_for_client(const std::string& uri, uint32_t expires) {
    return "<" + uri + ">;expires=" + std::to_string(expires);
  }

  // Answers a client's REGISTER (nua needs the request, NUTAG_WITH, for anything but
  // INVITE) and releases its handle and the reference Veil held on the request.
  // A digest challenge (WWW-/Proxy-Authenticate) crosses end to end: its realm and nonce are
  // the PBX's and the client's digest covers them, so Veil cannot rewrite them. One that
  // names the PBX's or Veil's trusted address (a PBX whose realm is its To domain, with
  // [sip] register_domain unset, uses the PBX's IP) is not relayed: the caller or client gets
  // 503 and the log says what to set. Counted as challenges_withheld.
  bool challenge_leaks(sip_t const* sip, const char* what) {
    std::string needles[2] = {cfg.pbx.addr.str(), cfg.internal.addr.str()};
    bool leak = false;
    su_home_t home[1] = {SU_HOME_INIT(home)};
    for (auto* h : {reinterpret_cast<sip_header_t const*>(sip->sip_www_authenticate),
                    reinterpret_cast<sip_header_t const*>(sip->sip_proxy_authenticate)}) {
      for (; h && !leak; h = h->sh_next) {
        char* v = sip_header_as_string(home, h);
        for (const std::string& n : needles) leak = leak || (v && std::strstr(v, n.c_str()));
      }
    }
    su_home_deinit(home);
    if (leak) {
      ++stats.challenges_withheld;
      logf(std::string("sip: ") + what + ": the PBX's digest challenge names a trusted-side address (its realm "
           "is probably the To domain): not relayed, 503 instead; set [sip] register_domain to the PBX's SIP "
           "domain (docs/configuration.md)");
    }
    return leak;
  }

  void answer_register(nua_handle_t* nh, msg_t* req, int status, const std::string& contact, int expires,
                       sip_t const* pbx = nullptr) {
    std::string exp = expires >= 0 ? std::to_string(expires) : "";
    nua_respond(nh, status, standard_phrase(status), NUTAG_WITH(req),
                TAG_IF(!contact.empty(), SIPTAG_CONTACT_STR(contact.c_str())),
                TAG_IF(!exp.empty(), SIPTAG_EXPIRES_STR(exp.c_str())),
                // Digest challenges cross end to end (realm and nonce are the PBX's).
                TAG_IF(pbx && pbx->sip_www_authenticate, SIPTAG_WWW_AUTHENTICATE(pbx ? pbx->sip_www_authenticate : nullptr)),
                TAG_IF(pbx && pbx->sip_proxy_authenticate,
                       SIPTAG_PROXY_AUTHENTICATE(pbx ? pbx->sip_proxy_authenticate : nullptr)),
                TAG_IF(pbx && pbx->sip_min_expires, SIPTAG_MIN_EXPIRES(pbx ? pbx->sip_min_expires : nullptr)),
                TAG_END());
    nua_handle_destroy(nh);
    msg_destroy(req);
  }

  void on_register(nua_t* nua, nua_handle_t* nh, sip_t const* sip) {
    if (side_of(nua) != kExternal) {  // not offered there (Allow), but never relayed
      nua_respond(nh, 405, standard_phrase(405), TAG_END());
      nua_handle_destroy(nh);
      return;
    }
    ++stats.registers_received;
    msg_t* req = msg_ref_create(nua_current_request(nua));
    if (shutting_down) return answer_register(nh, req, 503, "", -1);
    if (!sip || !sip->sip_to || !sip->sip_from || !sip->sip_call_id || !sip->sip_request ||
        !valid_user(sip->sip_to->a_url->url_user))
      return answer_register(nh, req, 400, "", -1);
    auto flow = source_of(nua);
    if (!flow) return answer_register(nh, req, 500, "", -1);
    std::string aor = sip->sip_to->a_url->url_user;
    std::string call_id = sip->sip_call_id->i_id ? sip->sip_call_id->i_id : "";
    auto now = Clock::now();
    const std::string key = aor + '\n' + call_id;
    auto it = bindings.find(key);

    if (!sip->sip_contact) {  // a query: the client's own binding
      if (it != bindings.end() && it->second.active && it->second.expires_at > now)
        return answer_register(nh, req, 200, contact_for_client(it->second.client_contact, seconds_left(it->second)), -1);
      return answer_register(nh, req, 200, "", -1);
    }
    // Expires: the Contact's parameter, else the header, else 3600 (RFC 3261 10.2.1.1).
    bool wildcard = sip->sip_contact->m_url->url_type == url_any;
    uint32_t expires = 3600;
    if (sip->sip_contact->m_expires)
      expires = uint32_t(std::strtoul(sip->sip_contact->m_expires, nullptr, 10));
    else if (sip->sip_expires)
      expires = uint32_t(sip->sip_expires->ex_delta);
    if (wildcard && expires != 0) return answer_register(nh, req, 400, "", -1);
    bool unregister = expires == 0;
    char* curi = wildcard ? nullptr : url_as_string(msg_home(nua_current_request(nua)), sip->sip_contact->m_url);
    std::string client_contact = curi ? curi : "";
    if (!wildcard && client_contact.empty()) return answer_register(nh, req, 400, "", -1);

    if (unregister && it == bindings.end()) {
      // An un-REGISTER under another Call-ID (RFC 3261 10.2.2 removes by Contact): the
      // AOR's binding with this Contact URI, or for "Contact: *" the one on this flow.
      for (auto j = bindings.begin(); j != bindings.end(); ++j)
        if (j->second.aor == aor && j->second.active &&
            (wildcard ? j->second.flow == *flow : j->second.client_contact == client_contact)) {
          it = j;
          break;
        }
    }
    if (unregister && (it == bindings.end() || !it->second.active)) {
      if (it != bindings.end() && !it->second.relay_pending) remove_binding(it);
      return answer_register(nh, req, 200, "", -1);  // nothing registered at the PBX
    }
    if (it != bindings.end()) {
      Binding& b = it->second;
      // Registration throttling: the same client refreshing on the same flow, too soon
      // after the last relayed REGISTER, is answered here.
      if (!unregister && b.active && b.flow == *flow && b.client_call_id == call_id &&
          cfg.register_min_interval_s > 0 &&
          now - b.last_relayed < std::chrono::seconds(cfg.register_min_interval_s) &&
          seconds_left(b) >= 1) {
        ++stats.registers_throttled;
        b.client_contact = client_contact;
        return answer_register(nh, req, 200, contact_for_client(b.client_contact, seconds_left(b)), -1);
      }
      if (b.relay_pending) return answer_register(nh, req, 500, "", -1);  // RFC 3261 10.3 ordering
    }
    if (it == bindings.end()) {
      Binding nb;
      nb.aor = aor;
      nb.key = key;
      nb.token = kTokenPrefix + random_hex(16);
      nb.call_id = random_hex(24);
      nb.from_tag = random_hex(12);
      nb.cseq = uint32_t(rng() % 100000) + 1;
      nb.expires_at = now + std::chrono::seconds(32);  // swept unless a 2xx confirms it
      it = bindings.emplace(key, std::move(nb)).first;
    }
    Binding& b = it->second;
    release_reg_handle(b);
    {
      b.nh = nua_handle(agent[kInternal], nullptr, TAG_END());
      if (!b.nh) {
        remove_binding(it);
        return answer_register(nh, req, 500, "", -1);
      }
    }
    uint32_t sent = unregister ? 0 : std::clamp(expires, cfg.register_min_expires_s, cfg.register_max_expires_s);
    // Request-URI: the client's when it names the PBX's domain (its digest response was
    // computed over it, RFC 2617 3.2.2 digest-uri), else sip:<domain>.
    std::string ruri = "sip:" + domain();
    const url_t* ru = sip->sip_request->rq_url;
    if (ru->url_host && strcasecmp(ru->url_host, domain().c_str()) == 0 && !ru->url_user) {
      char* s = url_as_string(msg_home(nua_current_request(nua)), ru);
      if (s && std::strpbrk(s, "<>\"\r\n ") == nullptr) ruri = s;
    }
    std::string from = name_addr(safe_display(sip->sip_from->a_display),
                                 valid_user(sip->sip_from->a_url->url_user) ? sip->sip_from->a_url->url_user : aor,
                                 domain());
    std::string to = name_addr(safe_display(sip->sip_to->a_display), aor, domain());
    uint16_t contact_port = cfg.pbx_transport == Transport::Tls ? cfg.internal.tls_port : cfg.internal.port;
    std::string contact = "<sip:" + b.token + "@" + uri_hostport(Endpoint{cfg.internal.addr, contact_port}) +
                          transport_param(cfg.pbx_transport) + ">";
    std::string exp = std::to_string(sent);
    // Where the REGISTER goes when the Request-URI names a domain: a loose route to the
    // PBX (only the PBX's own address, on the trusted side).
    std::string route = "<sip:" + uri_hostport(cfg.pbx) + transport_param(cfg.pbx_transport) + ";lr>";
    bool need_route = ruri != "sip:" + uri_hostport(cfg.pbx);
    b.relay_pending = true;
    b.client_nh = nh;
    b.client_req = req;
    b.pending_flow = *flow;
    b.pending_contact = client_contact;
    b.pending_user = !wildcard && valid_user(sip->sip_contact->m_url->url_user) ? sip->sip_contact->m_url->url_user : aor;
    b.pending_call_id = call_id;
    b.pending_expires = sent;
    b.last_relayed = now;
    ++stats.registers_relayed;
    from += ";tag=" + b.from_tag;
    std::string cseq = std::to_string(++b.cseq) + " REGISTER";
    nua_method(b.nh, NUTAG_METHOD("REGISTER"), NUTAG_URL(ruri.c_str()), SIPTAG_FROM_STR(from.c_str()),
               SIPTAG_CALL_ID_STR(b.call_id.c_str()), SIPTAG_CSEQ_STR(cseq.c_str()),
               SIPTAG_TO_STR(to.c_str()), SIPTAG_CONTACT_STR(contact.c_str()),
               SIPTAG_EXPIRES_STR(exp.c_str()),
               TAG_IF(need_route, SIPTAG_ROUTE_STR(route.c_str())),
               TAG_IF(sip->sip_authorization, SIPTAG_AUTHORIZATION(sip->sip_authorization)),
               TAG_IF(sip->sip_proxy_authorization, SIPTAG_PROXY_AUTHORIZATION(sip->sip_proxy_authorization)),
               TAG_END());
    logf("sip: REGISTER " + aor + (unregister ? " (remove)" : "") + " relayed to the PBX");
  }

  // The PBX's answer to a REGISTER Veil relayed for `b`.
  void on_register_response(Binding& b, int status, sip_t const* sip) {
    if (status < 200 || !b.relay_pending) return;
    b.relay_pending = false;
    nua_handle_t* client = b.client_nh;
    msg_t* creq = b.client_req;
    b.client_nh = nullptr;
    b.client_req = nullptr;
    std::string aor = b.aor;
    if (status >= 300) {
      bool local = sip == nullptr || status >= 700;
      int mapped = status == 401 || status == 407 || status == 423 ? status : map_failure_status(status, local);
      logf("sip: REGISTER " + aor + ": PBX answered " + std::to_string(status));
      bool challenge = status == 401 || status == 407 || status == 423;
      if (challenge && sip && status != 423 && challenge_leaks(sip, ("REGISTER " + aor).c_str())) {
        mapped = 503;
        challenge = false;
      }
      if (client) answer_register(client, creq, mapped, "", -1, challenge ? sip : nullptr);
      // nua keeps a challenged request for nua_authenticate() (which Veil never calls: the
      // client answers the challenge) and would queue the next REGISTER behind it: the
      // next REGISTER goes out on a fresh handle (a new Call-ID toward the PBX).
      release_reg_handle(b);
      return;
    }
    release_reg_handle(b);
    if (b.pending_expires == 0) {
      ++stats.registers_removed;
      if (client) answer_register(client, creq, 200, "", 0);
      auto it = bindings.find(b.key);
      if (it != bindings.end()) remove_binding(it);
      logf("sip: binding " + aor + " removed (un-REGISTER)");
      return;
    }
    // What the PBX granted: our Contact's expires, else Expires, else what we asked.
    uint32_t granted = b.pending_expires;
    if (sip) {
      bool found = false;
      for (sip_contact_t const* m = sip->sip_contact; m; m = m->m_next)
        if (m->m_url->url_user && b.token == m->m_url->url_user && m->m_expires) {
          granted = uint32_t(std::strtoul(m->m_expires, nullptr, 10));
          found = true;
        }
      if (!found && sip->sip_expires) granted = uint32_t(sip->sip_expires->ex_delta);
    }
    b.active = true;
    b.flow = b.pending_flow;
    b.client_contact = b.pending_contact;
    b.client_user = b.pending_user;
    b.client_call_id = b.pending_call_id;
    b.expires_at = Clock::now() + std::chrono::seconds(granted);
    b.confirmed_at = Clock::now();
    logf("sip: binding " + aor + " -> " + b.flow.ep.str() + (b.flow.tr == Transport::Tcp ? "/tcp" : b.flow.tr == Transport::Tls ? "/tls" : "/udp") +
         " for " + std::to_string(granted) + " s");
    if (client) answer_register(client, creq, 200, contact_for_client(b.client_contact, granted), -1);
  }

  void release_reg_handle(Binding& b) {
    if (b.nh) {
      nua_handle_bind(b.nh, nullptr);
      nua_handle_destroy(b.nh);
      b.nh = nullptr;
    }
  }

  void remove_binding(std::map<std::string, Binding>::iterator it) {
    Binding& b = it->second;
    if (b.client_nh) answer_register(b.client_nh, b.client_req, 503, "", -1);
    if (b.nh) nua_handle_destroy(b.nh);
    bindings.erase(it);
  }

  static void reg_sweep_cb(su_root_magic_t*, su_timer_t*, su_timer_arg_t* arg) {
    auto* self = static_cast<Impl*>(static_cast<void*>(arg));
    try {
      self->sweep_bindings();
    } catch (...) {
      ++self->stats.callback_exceptions;
    }
  }

  void sweep_bindings() {
    sweep_challenges();
    auto now = Clock::now();
    for (auto it = bindings.begin(); it != bindings.end();) {
      auto next = std::next(it);
      if (it->second.expires_at <= now && !it->second.relay_pending) {
        if (it->second.active) ++stats.registers_expired;
        logf("sip: binding " + it->second.aor + " expired");
        remove_binding(it);
      }
      it = next;
    }
  }

  // ---- media ----------------------------------------------------------------------------

  Family family_toward(int side) const {
    return side == kInternal ? cfg.internal.addr.family : cfg.external.addr.family;
  }

  void teardown_stream(Stream& st) {
    if (st.programmed) media.remove(st.id);
    if (st.active) {
      media.release(kExternal, st.local[kExternal]);
      media.release(kInternal, st.local[kInternal]);
    }
    st = Stream{};
  }

  void release_media(Call* call) {
    for (Stream& st : call->streams) teardown_stream(st);
    call->streams.clear();
  }

  // ---- WebRTC hooks (the logic is in sip/webrtc_leg.h) -----------------------------------

  // A new call: a browser's WebRTC offer (`offer` from the untrusted side), or a call from
  // the PBX to a registration made through the WebSocket gateway. False: 488.
  bool webrtc_start(Call* call, int side, const WebRtcInfo* offer, bool browser_target) {
    std::string fp = media.dtls_fingerprint();
    if (side == kExternal) {
      if (!offer || !offer->webrtc) return true;
      if (fp.empty()) return false;
      auto [ufrag, pwd] = media.ice_credentials();
      call->webrtc = leg_for_browser_offer(*offer, ufrag, pwd, fp);
      return call->webrtc.has_value();
    }
    if (browser_target && !fp.empty()) {
      auto [ufrag, pwd] = media.ice_credentials();
      call->webrtc = leg_for_offer_to_browser(ufrag, pwd, fp);
    }
    return true;
  }

  // SDP from `side`: the browser's ufrag, fingerprint and (answer) DTLS role.
  bool webrtc_take(Call* call, int side, const SdpInfo& info, bool answer) {
    if (!call->webrtc || side != kExternal) return true;
    if (keep_plain(*call->webrtc, info.webrtc, answer)) {
      call->webrtc.reset();  // a WebSocket client that answered in plain RTP: relayed as such
      return true;
    }
    // ICE restart (RFC 8445 9, RFC 8839 4.4.1.1.1): a re-offer with new ICE credentials.
    // The answerer restarts too, with credentials of its own; the flows get both and the
    // browser's new checks select the pair again. DTLS and the SRTP keys stay.
    if (!answer && info.webrtc.webrtc && !call->webrtc->remote_ufrag.empty() &&
        !info.webrtc.ice_ufrag.empty() && info.webrtc.ice_ufrag != call->webrtc->remote_ufrag) {
      auto [ufrag, pwd] = media.ice_credentials();
      call->webrtc->ufrag = ufrag;
      call->webrtc->pwd = pwd;
      ++stats.ice_restarts;
      logf("sip: call " + std::to_string(call->serial) + ": ICE restart by the browser");
    }
    return take_browser_sdp(*call->webrtc, info.webrtc, answer);
  }

  // BUNDLE of a WebRTC call (docs/architecture.md "BUNDLE"): an offer decides which m-lines
  // are bundled (all active ones, when more than one) and sets each m-line's payload types;
  // its answer adds the answerer's (normally the same or fewer). Payload types shared by two
  // bundled m-lines cannot be demultiplexed: 488 (offer) / the answer is refused.
  int webrtc_bundle(Call* call, const SdpInfo& info, bool answer) {
    if (!call->webrtc) return 0;
    std::vector<PtSet> prior;
    if (answer)
      for (const Stream& st : call->streams) prior.push_back(st.pts);
    BundlePtMap m = bundle_pt_map(info.webrtc, prior);
    if (m.overlap) {
      ++stats.sdp_rejected;
      logf("sip: call " + std::to_string(call->serial) +
           ": BUNDLE m-lines share RTP payload types (cannot demultiplex)");
      return 488;
    }
    if (!answer) call->bundle_head = m.head;
    if (call->streams.size() < m.pts.size()) call->streams.resize(m.pts.size());
    for (size_t i = 0; i < m.pts.size(); ++i) call->streams[i].pts = m.pts[i];
    return 0;
  }

  // Veil's SDP on the leg of `side`, already rewritten for that side.
  std::string webrtc_sdp(Call* call, int side, const std::string& rewritten) {
    if (side == kExternal) return sdp_to_browser(*call->webrtc, rewritten);
    bool pbx_mux = false;
    for (const Stream& st : call->streams) pbx_mux = pbx_mux || (st.active && st.offer_mux);
    return sdp_to_pbx(rewritten, call->offer_side == side, pbx_mux);
  }

  bool program(Call* call, Stream& st) {
    MediaStreamPlan plan;
    plan.id = st.id;
    plan.ext = MediaLeg{st.local[kExternal], st.remote[kExternal]};
    plan.in = MediaLeg{st.local[kInternal], st.remote[kInternal]};
    plan.rtcp_mux = st.mux;
    if (call->webrtc) {
      plan.webrtc = plan_for(*call->webrtc);
      if (call->bundle_head >= 0 && size_t(call->bundle_head) < call->streams.size()) {
        plan.webrtc.bundle_head = call->streams[size_t(call->bundle_head)].id;
        plan.webrtc.pts = st.pts;
      }
    }
    for (int s = 0; s < 2; ++s) {
      if (!st.sdes_local[s].usable()) continue;
      plan.sdes[s].suite = st.sdes_local[s].suite;
      plan.sdes[s].local = st.sdes_local[s].master;
      if (st.sdes_remote[s].usable() && st.sdes_remote[s].suite == st.sdes_local[s].suite) {
        plan.sdes[s].remote = st.sdes_remote[s].master;
        plan.sdes[s].remote_mki = st.sdes_remote[s].mki;
      }
    }
    if (!media.program(plan)) return false;
    st.programmed = true;
    return true;
  }

  // ---- SDES-SRTP hooks (sip/sdes_sdp.h) --------------------------------------------------

  // m-line `i` of an offer from `side`. An RTP/SAVP m-line with a=crypto: Veil takes the first
  // suite it supports (the offerer's key, for unprotecting) and makes its own key for that leg
  // (same suite and tag, RFC 4568 7.1.2). The other leg: plain RTP/AVP when the untrusted side
  // offered; SDES again, with another Veil key, when the trusted side (PBX) offered (SRTP on
  // both legs, re-keyed). SAVP with no usable a=crypto: 488. 0 on success.
  // A browser's leg is DTLS-SRTP (WebRtcLeg), never SDES; its PBX leg is SDES like any other.
  // [sip] pbx_srtp: every offer Veil makes to the PBX is SDES with that suite (sdes_pbx_leg).
  int sdes_offer(Call* call, int side, const SdpInfo& info, size_t i, Stream& st) {
    const SdesMedia* m = i < info.sdes.media.size() ? &info.sdes.media[i] : nullptr;
    bool savp = m && (m->proto == "RTP/SAVP" || m->proto == "RTP/SAVPF") && !info.webrtc.webrtc;
    const SdesCrypto* c = savp ? choose_sdes(*m) : nullptr;
    if (savp && !c) {
      ++stats.sdp_rejected;
      logf("sip: call " + std::to_string(call->serial) + ": RTP/SAVP offer with no usable a=crypto");
      return 488;
    }
    auto plain = [&](int s) { st.sdes_remote[s] = st.sdes_local[s] = SdesCrypto{}; };
    auto keyed = [&](int s, SdesSuite suite, unsigned tag) {
      // Veil's key for that leg; the peer's comes in its answer (a new key only when the suite
      // changes, so a re-offer keeps the leg's keys and its SRTP state).
      if (st.sdes_local[s].suite != suite) {
        st.sdes_local[s] = sdes_fresh(suite, tag);
        st.sdes_remote[s] = SdesCrypto{};
      }
    };
    if (side == kExternal) {
      if (c) {
        st.sdes_remote[side] = *c;
        if (st.sdes_local[side].suite != c->suite || st.sdes_local[side].tag != c->tag)
          st.sdes_local[side] = sdes_fresh(c->suite, c->tag);
      } else {
        plain(side);  // plain RTP, or a browser (DTLS-SRTP)
      }
      if (cfg.pbx_srtp != SdesSuite::Unknown)
        keyed(kInternal, cfg.pbx_srtp, 1);
      else
        plain(kInternal);
      return 0;
    }
    // The PBX offers: its choice decides the PBX leg; a phone leg follows it, a browser's leg
    // stays DTLS-SRTP.
    if (!c) {
      plain(kInternal);
      plain(kExternal);
      return 0;
    }
    st.sdes_remote[side] = *c;
    if (st.sdes_local[side].suite != c->suite || st.sdes_local[side].tag != c->tag)
      st.sdes_local[side] = sdes_fresh(c->suite, c->tag);
    if (call->webrtc)
      plain(kExternal);
    else
      keyed(kExternal, c->suite, 1);
    return 0;
  }

  // m-line `i` of an answer from `side`: where Veil offered SDES on that leg, the answer's
  // a=crypto (same suite) is the answerer's key. False (the answer is refused) without one.
  bool sdes_answer(Call* call, int side, const SdpInfo& info, size_t i, Stream& st) {
    if (!st.sdes_local[side].usable()) return true;
    const SdesMedia* m = i < info.sdes.media.size() ? &info.sdes.media[i] : nullptr;
    const SdesCrypto* c = m ? choose_sdes(*m) : nullptr;
    if (!c || c->suite != st.sdes_local[side].suite) {
      logf("sip: call " + std::to_string(call->serial) + ": answer to an SDES offer without a matching a=crypto");
      return false;
    }
    st.sdes_remote[side] = *c;
    return true;
  }

  // An offer from `side`: ports for new m-lines, the offerer's endpoints, flows.
  // 0 on success, else the status to answer.
  int apply_offer(Call* call, int side, const SdpInfo& info) {
    if (info.streams.size() < call->streams.size()) return 488;  // RFC 3264 8: m-lines are never removed
    if (!webrtc_take(call, side, info, false)) return 488;
    if (int b = webrtc_bundle(call, info, false); b != 0) return b;
    call->streams.resize(info.streams.size());
    for (size_t i = 0; i < info.streams.size(); ++i) {
      const SdpStream& in = info.streams[i];
      Stream& st = call->streams[i];
      if (in.disabled) {
        teardown_stream(st);
        continue;
      }
      if (!st.active) {
        auto a = media.allocate(side, in.family);
        auto b = a ? media.allocate(1 - side, family_toward(1 - side)) : std::nullopt;
        if (!a || !b) {
          if (a) media.release(side, *a);
          ++stats.no_media_ports;
          return 503;
        }
        st.active = true;
        st.id = next_stream_id++;
        st.local[side] = *a;
        st.local[1 - side] = *b;
      }
      st.remote[side] = in.rtp;
      st.held = in.held;
      st.offer_mux = in.rtcp_mux;
      st.mux = in.rtcp_mux;
      if (int sdes = sdes_offer(call, side, info, i, st); sdes != 0) return sdes;
      if (!program(call, st)) {
        ++stats.no_media_ports;
        return 503;
      }
    }
    call->offer_side = side;
    return 0;
  }

  // The answer from `side`: the answerer's endpoints; m-lines it rejected lose their flows.
  bool apply_answer(Call* call, int side, const SdpInfo& info) {
    if (info.streams.size() != call->streams.size()) return false;
    if (!webrtc_take(call, side, info, true)) return false;
    if (webrtc_bundle(call, info, true) != 0) return false;
    for (size_t i = 0; i < info.streams.size(); ++i) {
      Stream& st = call->streams[i];
      if (!st.active) continue;
      if (info.streams[i].disabled) {
        teardown_stream(st);
        continue;
      }
      st.remote[side] = info.streams[i].rtp;
      st.held = st.held || info.streams[i].held;
      st.mux = st.offer_mux && info.streams[i].rtcp_mux;
      if (!sdes_answer(call, side, info, i, st)) return false;
      if (!program(call, st)) return false;
    }
    return true;
  }

  // `sdp` rewritten for leg `li` of `call` (the SBC's endpoints on that leg's side).
  std::optional<std::string> rewrite_for(Call* call, int li, const std::string& sdp) {
    Leg& leg = call->leg[li];
    SdpRewriteParams p;
    p.sbc_addr = leg.side == kInternal ? cfg.internal.addr : cfg.external.addr;
    bool first = true;
    for (const Stream& st : call->streams) {
      p.local.push_back(st.active ? st.local[leg.side] : Endpoint{});
      if (st.active && first) {
        p.sbc_addr = st.local[leg.side].addr;
        first = false;
      }
    }
    SdpRewriteResult r = rewrite_sdp(sdp, p, leg.origin);
    if (r.error != SdpError::None) {
      logf("sip: call " + std::to_string(call->serial) + ": SDP rewrite: " + r.detail);
      return std::nullopt;
    }
    if (call->webrtc) r.sdp = webrtc_sdp(call, leg.side, r.sdp);
    if (!call->webrtc || leg.side == kInternal) {
      // SDES: no a=crypto crosses legs; where Veil does SRTP on this leg, its own key (also
      // toward the PBX on a browser's call: to_plain() above made that leg RTP/AVP first).
      r.sdp = strip_sdes(r.sdp);
      std::vector<SdesCrypto> mine;
      bool any = false;
      for (const Stream& st : call->streams) {
        mine.push_back(st.active ? st.sdes_local[leg.side] : SdesCrypto{});
        any = any || mine.back().usable();
      }
      if (any) r.sdp = add_sdes(r.sdp, mine);
    }
    leg.last_sdp = r.sdp;
    return r.sdp;
  }

  // ---- in-dialog events -----------------------------------------------------------------

  static std::optional<std::string> sdp_of(sip_t const* sip) {
    if (!sip || !sip->sip_payload || !sip->sip_payload->pl_data || !sip->sip_content_type ||
        !sip->sip_content_type->c_type || strcasecmp(sip->sip_content_type->c_type, kSdpType) != 0)
      return std::nullopt;
    return std::string(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
  }

  void respond(Call* call, int li, int status, const std::optional<std::string>& sdp,
               bool reliable = false) {
    Leg& leg = call->leg[li];
    if (!leg.server_pending) return;
    if (sdp) {
      nua_respond(leg.nh, status, standard_phrase(status), SIPTAG_CONTENT_TYPE_STR(kSdpType),
                  SIPTAG_PAYLOAD_STR(sdp->c_str()),
                  TAG_IF(!leg.contact.empty(), SIPTAG_CONTACT_STR(leg.contact.c_str())),
                  TAG_IF(reliable, SIPTAG_REQUIRE_STR("100rel")), TAG_END());
    } else {
      nua_respond(leg.nh, status, standard_phrase(status),
                  TAG_IF(!leg.contact.empty() && status < 300, SIPTAG_CONTACT_STR(leg.contact.c_str())),
                  TAG_IF(reliable, SIPTAG_REQUIRE_STR("100rel")), TAG_END());
    }
    if (status >= 200) leg.server_pending = false;
  }

  void on_invite_response(Call* call, int li, int status, char const* /*phrase*/, sip_t const* sip) {
    Leg& c = call->leg[li];      // where we sent the INVITE
    if (call->call_id[li].empty() && sip && sip->sip_call_id && sip->sip_call_id->i_id)
      call->call_id[li] = sip->sip_call_id->i_id;
    int oi = 1 - li;
    Leg& s = call->leg[oi];      // where the INVITE we are answering came from
    bool local = sip == nullptr || status >= 700 || status < 100;
    if (!c.client_pending && call->answered && !call->ending) {
      // Not an INVITE Veil sent: sofia-sip's own session refresh (RFC 4028, when a peer
      // made Veil the refresher). Confirm a 2xx; nothing crosses to the other leg.
      if (status >= 200 && status < 300 && !local) nua_ack(c.nh, TAG_END());
      return;
    }
    if (!local) stop_timer(call);
    if (status >= 200) c.client_pending = false;

    if (call->ending || !s.server_pending) {
      // The caller is gone (CANCEL crossed a 2xx, or it timed out): finish this leg.
      if (status >= 200 && status < 300) {
        nua_ack(c.nh, TAG_END());
        nua_bye(c.nh, TAG_END());
        c.bye_sent = true;
      }
      return;
    }
    if (status < 101 && !local) return;  // 100 Trying is hop-by-hop

    if (status < 200 && !local) {
      std::optional<std::string> out;
      if (call->late_offer) {
        // An SDP in a provisional would be the callee's offer: not taken (the 2xx's is).
      } else if (auto sdp = sdp_of(sip)) {
        SdpInspectResult info = inspect_sdp(*sdp);
        if (info.error == SdpError::None && apply_answer(call, c.side, info.info))
          out = rewrite_for(call, oi, *sdp);
      }
      if (out && !call->answered) {
        call->early_answer = out;
        ++stats.early_media;
      }
      // RFC 3262 per leg: the callee's PRACK was sent by sofia-sip on its leg (RSeq/RAck
      // never cross). Toward the caller the provisional is reliable (Require: 100rel, an
      // RSeq of Veil's, the caller's PRACK answered by sofia-sip on the caller's leg) when
      // the caller requires 100rel, or supports it and the callee's was reliable or it
      // carries the early answer.
      bool reliable = !call->answered &&
                      (call->caller_requires_100rel ||
                       (call->caller_100rel && (sip->sip_rseq != nullptr || out.has_value())));
      if (reliable) ++stats.reliable_provisionals;
      respond(call, oi, status, out, reliable);  // early media with SDP, or plain ringing
      return;
    }

    if (status >= 200 && status < 300 && !local && call->late_offer && !call->answered) {
      // Late offer: this 2xx carries the callee's offer; it goes to the caller, whose ACK
      // will carry the answer (flows get the caller's endpoint then).
      std::optional<std::string> out;
      if (auto sdp = sdp_of(sip)) {
        SdpInspectResult info = inspect_sdp(*sdp);
        if (info.error == SdpError::None && apply_offer(call, c.side, info.info) == 0)
          out = rewrite_for(call, oi, *sdp);
      }
      if (!out) {
        ++stats.sdp_rejected;
        nua_ack(c.nh, TAG_END());
        nua_bye(c.nh, TAG_END());
        c.bye_sent = true;
        return fail(call, 488, "no usable SDP offer in the 2xx to a late-offer INVITE");
      }
      c.ack_pending = true;
      respond(call, oi, 200, out);
      ++stats.calls_answered;
      call->answered_at = std::chrono::steady_clock::now();
      call->answered = true;
      return;
    }

    if (status >= 200 && status < 300 && !local) {
      std::optional<std::string> out;
      if (auto sdp = sdp_of(sip)) {
        SdpInspectResult info = inspect_sdp(*sdp);
        if (info.error == SdpError::None && apply_answer(call, c.side, info.info))
          out = rewrite_for(call, oi, *sdp);
      } else if (!call->answered && call->early_answer) {
        // RFC 3262 5: the answer came in a reliable provisional; the caller gets it again.
        out = call->early_answer;
      }
      if (!out) {
        // Our offer got no usable answer: this leg is confirmed and ended, the caller
        // gets 488 (initial INVITE) or the re-INVITE fails.
        ++stats.sdp_rejected;
        nua_ack(c.nh, TAG_END());
        if (!call->answered) {
          nua_bye(c.nh, TAG_END());
          c.bye_sent = true;
          return fail(call, 488, "no usable SDP answer");
        }
        respond(call, oi, 488, std::nullopt);
        return;
      }
      c.ack_pending = true;
      respond(call, oi, 200, out);
      if (!call->answered) {
        ++stats.calls_answered;
        call->answered_at = std::chrono::steady_clock::now();
      }
      call->answered = true;
      call->offer_side = -1;
      return;
    }

    // A digest challenge to the initial INVITE: relayed to the caller, who retries.
    if ((status == 401 || status == 407) && !local && !call->answered &&
        (sip->sip_www_authenticate || sip->sip_proxy_authenticate)) {
      if (challenge_leaks(sip, ("call " + std::to_string(call->serial)).c_str())) {
        call->leg[li].terminated = true;  // nua keeps the challenged request (challenge_caller)
        return fail(call, 503, "digest challenge withheld");
      }
      return challenge_caller(call, li, status, sip);
    }

    // Final failure.
    int mapped = map_failure_status(status, local);
    if (call->answered) {
      respond(call, oi, mapped == 503 && local ? 500 : mapped, std::nullopt);  // failed re-INVITE: the call stays
      return;
    }
    fail(call, mapped, "other leg answered " + std::to_string(status));
  }

  static constexpr size_t kMaxChallenges = 4096;

  // The far side (leg `li`) challenged Veil's INVITE: the caller gets the same code with the
  // challenge (WWW-/Proxy-Authenticate verbatim: realm, nonce, opaque), the call's media is
  // released, and what the retry needs is kept for 32 s (64*T1 at the default T1).
  void challenge_caller(Call* call, int li, int status, sip_t const* sip) {
    Leg& a = call->leg[1 - li];
    Leg& b = call->leg[li];
    ++stats.auth_challenges;
    if (a.server_pending) {
      nua_respond(a.nh, status, standard_phrase(status),
                  TAG_IF(sip->sip_www_authenticate, SIPTAG_WWW_AUTHENTICATE(sip->sip_www_authenticate)),
                  TAG_IF(sip->sip_proxy_authenticate, SIPTAG_PROXY_AUTHENTICATE(sip->sip_proxy_authenticate)),
                  TAG_END());
      a.server_pending = false;
      ++stats.calls_failed;
    }
    if (sip->sip_call_id && sip->sip_call_id->i_id && sip->sip_from && sip->sip_from->a_tag &&
        sip->sip_cseq && !call->call_id[0].empty() && !call->caller_from_tag.empty()) {
      Challenge ch;
      ch.side = a.side;
      ch.caller_call_id = call->call_id[0];
      ch.caller_from_tag = call->caller_from_tag;
      ch.serial = call->serial;
      ch.call_id = sip->sip_call_id->i_id;
      su_home_t home[1] = {SU_HOME_INIT(home)};
      if (char* v = sip_header_as_string(home, reinterpret_cast<sip_header_t const*>(sip->sip_from)))
        ch.from = v;
      su_home_deinit(home);
      ch.to = call->out_to;
      ch.cseq = sip->sip_cseq->cs_seq;
      ch.expires = std::chrono::steady_clock::now() + std::chrono::milliseconds(64 * cfg.t1_ms);
      if (!ch.from.empty()) {
        if (challenges.size() >= kMaxChallenges) challenges.erase(challenges.begin());
        challenges.push_back(std::move(ch));
      }
    }
    logf("sip: call " + std::to_string(call->serial) + ": " + std::to_string(status) +
         " (challenge relayed to the caller)");
    // nua keeps the challenged request for nua_authenticate(), which Veil never calls (the
    // caller answers the challenge): this leg is over, its handle is destroyed with the call.
    b.terminated = true;
    end_call(call, "challenged");
  }

  void sweep_challenges() {
    auto now = std::chrono::steady_clock::now();
    challenges.erase(std::remove_if(challenges.begin(), challenges.end(),
                                    [&](const Challenge& c) { return c.expires <= now; }),
                     challenges.end());
  }

  void on_ack(Call* call, int li, sip_t const* sip) {
    if (Leg& s = call->leg[li]; s.reoffer_pending) {
      // The answer to Veil's offer in its 2xx to a re-INVITE without SDP: the peer's
      // endpoints may have moved; the other leg hears nothing.
      s.reoffer_pending = false;
      if (auto sdp = sdp_of(sip)) {
        SdpInspectResult info = inspect_sdp(*sdp);
        if (info.error == SdpError::None && info.info.streams.size() == call->streams.size())
          apply_answer(call, s.side, info.info);
      }
      return;
    }
    Leg& o = call->leg[1 - li];
    if (!o.ack_pending) return;
    o.ack_pending = false;
    if (!call->late_offer) {
      nua_ack(o.nh, TAG_END());
      return;
    }
    // Late offer: the caller's answer to the offer of the callee's 2xx is in this ACK.
    call->late_offer = false;
    std::optional<std::string> out;
    if (auto sdp = sdp_of(sip)) {
      SdpInspectResult info = inspect_sdp(*sdp);
      if (info.error == SdpError::None && apply_answer(call, call->leg[li].side, info.info))
        out = rewrite_for(call, 1 - li, *sdp);
    }
    if (!out) {
      // No usable answer: the callee's dialog is confirmed and both legs are ended.
      ++stats.sdp_rejected;
      nua_ack(o.nh, TAG_END());
      end_call(call, "no usable SDP answer in the caller's ACK");
      return;
    }
    nua_ack(o.nh, SIPTAG_CONTENT_TYPE_STR(kSdpType), SIPTAG_PAYLOAD_STR(out->c_str()), TAG_END());
    call->offer_side = -1;
  }

  // ---- UPDATE (RFC 3311) and INFO (RFC 6086), relayed leg to leg ------------------------

  static void answer_saved(nua_handle_t* nh, msg_t*& req, int status,
                           const std::optional<std::string>& sdp = std::nullopt,
                           const std::string& contact = "") {
    if (!req) return;
    nua_respond(nh, status, standard_phrase(status), NUTAG_WITH(req),
                TAG_IF(!contact.empty() && status < 300, SIPTAG_CONTACT_STR(contact.c_str())),
                TAG_IF(sdp.has_value(), SIPTAG_CONTENT_TYPE_STR(kSdpType)),
                TAG_IF(sdp.has_value(), SIPTAG_PAYLOAD_STR(sdp ? sdp->c_str() : "")), TAG_END());
    msg_destroy(req);
    req = nullptr;
  }

  void on_update(Call* call, int li, nua_t* nua, sip_t const* sip) {
    Leg& s = call->leg[li];
    int oi = 1 - li;
    Leg& o = call->leg[oi];
    msg_t* req = msg_ref_create(nua_current_request(nua));
    auto sdp = sdp_of(sip);
    if (!sdp) {
      // No offer (a session refresh, RFC 4028): per leg, answered here.
      answer_saved(s.nh, req, 200);
      return;
    }
    // In the early dialog (RFC 3311 5.1) once the initial offer was answered in a
    // provisional response: the INVITE transactions are pending by nature then, only another
    // UPDATE in flight conflicts. Before that, or while a re-INVITE is open: 491.
    const bool early = !call->answered && call->early_answer.has_value() && !call->late_offer;
    if (call->ending || (!call->answered && !early) || o.terminated || s.update_req || o.update_sent ||
        o.ack_pending || (call->answered && (o.client_pending || o.server_pending || s.server_pending))) {
      answer_saved(s.nh, req, 491);  // an offer/answer exchange is in progress
      return;
    }
    SdpInspectResult info = inspect_sdp(*sdp);
    if (info.error != SdpError::None) {
      ++stats.sdp_rejected;
      answer_saved(s.nh, req, 488);
      return;
    }
    if (int st = apply_offer(call, s.side, info.info); st != 0) {
      answer_saved(s.nh, req, st);
      return;
    }
    auto out = rewrite_for(call, oi, *sdp);
    if (!out) {
      answer_saved(s.nh, req, 488);
      return;
    }
    ++stats.updates;
    if (early) ++stats.early_updates;
    s.update_req = req;
    o.update_sent = true;
    nua_update(o.nh, SIPTAG_CONTENT_TYPE_STR(kSdpType), SIPTAG_PAYLOAD_STR(out->c_str()),
               TAG_IF(!o.contact.empty(), SIPTAG_CONTACT_STR(o.contact.c_str())), TAG_END());
  }

  void on_update_response(Call* call, int li, int status, sip_t const* sip) {
    Leg& c = call->leg[li];
    Leg& s = call->leg[1 - li];
    if (status < 200 || !c.update_sent) return;  // sofia-sip's own refresh, or provisional
    c.update_sent = false;
    if (!s.update_req) return;
    if (status >= 300) {
      answer_saved(s.nh, s.update_req, map_failure_status(status, sip == nullptr || status >= 700));
      return;
    }
    std::optional<std::string> out;
    if (auto sdp = sdp_of(sip)) {
      SdpInspectResult info = inspect_sdp(*sdp);
      if (info.error == SdpError::None && apply_answer(call, c.side, info.info))
        out = rewrite_for(call, 1 - li, *sdp);
    }
    if (!out) {
      ++stats.sdp_rejected;
      answer_saved(s.nh, s.update_req, 488);
      return;
    }
    call->offer_side = -1;
    answer_saved(s.nh, s.update_req, 200, out, s.contact);
    // Early dialog: the session the caller now has is the one this UPDATE settled (Veil's
    // answer to it, or Veil's offer if the callee updated); a 2xx to the INVITE without SDP
    // repeats that, not the first provisional answer.
    if (!call->answered && call->early_answer) call->early_answer = call->leg[0].last_sdp;
  }

  // INFO bodies that cross: DTMF relay only (their text names digits and durations, no
  // address). Anything else gets 415.
  static bool info_body_allowed(sip_t const* sip) {
    if (!sip->sip_payload || sip->sip_payload->pl_len == 0) return true;  // e.g. a keepalive
    if (!sip->sip_content_type || !sip->sip_content_type->c_type) return false;
    const char* t = sip->sip_content_type->c_type;
    if (strcasecmp(t, "application/dtmf-relay") != 0 && strcasecmp(t, "application/dtmf") != 0) return false;
    if (sip->sip_payload->pl_len > 256) return false;
    for (size_t i = 0; i < sip->sip_payload->pl_len; ++i) {
      unsigned char ch = static_cast<unsigned char>(sip->sip_payload->pl_data[i]);
      if (!(std::isalnum(ch) || ch == '=' || ch == ' ' || ch == '\r' || ch == '\n' || ch == '#' ||
            ch == '*' || ch == '-' || ch == '_'))
        return false;
    }
    return true;
  }

  void on_info(Call* call, int li, nua_t* nua, sip_t const* sip) {
    Leg& s = call->leg[li];
    Leg& o = call->leg[1 - li];
    msg_t* req = msg_ref_create(nua_current_request(nua));
    if (call->ending || !call->answered || o.terminated || !o.nh) {
      answer_saved(s.nh, req, 481);
      return;
    }
    if (!info_body_allowed(sip)) {
      answer_saved(s.nh, req, 415);
      return;
    }
    ++stats.infos;
    s.info_reqs.push_back(req);
    if (sip->sip_payload && sip->sip_payload->pl_len > 0) {
      std::string body(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
      nua_info(o.nh, SIPTAG_CONTENT_TYPE_STR(sip->sip_content_type->c_type),
               SIPTAG_PAYLOAD_STR(body.c_str()), TAG_END());
    } else {
      nua_info(o.nh, TAG_END());
    }
  }

  void on_info_response(Call* call, int li, int status) {
    Leg& s = call->leg[1 - li];
    if (status < 200 || s.info_reqs.empty()) return;
    msg_t* req = s.info_reqs.front();
    s.info_reqs.erase(s.info_reqs.begin());
    int mapped = status < 300 ? 200 : map_failure_status(status, status >= 700);
    answer_saved(s.nh, req, mapped);
  }

  // Answers what is still waiting on `leg` (the call is ending).
  void drop_pending(Leg& leg) {
    if (leg.nh) {
      answer_saved(leg.nh, leg.update_req, 481);
      for (msg_t*& m : leg.info_reqs) answer_saved(leg.nh, m, 481);
    } else {
      if (leg.update_req) msg_destroy(leg.update_req);
      for (msg_t* m : leg.info_reqs) msg_destroy(m);
      leg.update_req = nullptr;
    }
    leg.info_reqs.clear();
  }

  void on_reinvite(Call* call, int li, sip_t const* sip) {
    Leg& s = call->leg[li];
    int oi = 1 - li;
    Leg& o = call->leg[oi];
    s.server_pending = true;
    if (call->ending || !call->answered || o.terminated || o.client_pending || o.server_pending ||
        o.ack_pending) {
      respond(call, li, 491, std::nullopt);  // RFC 3261 14.2: a transaction is in progress
      return;
    }
    auto sdp = sdp_of(sip);
    if (!sdp) {
      // A re-INVITE without offer (a session refresh, RFC 4028, or a peer asking for an
      // offer): answered on this leg; Veil offers the SDP it last sent here, unchanged (same
      // o= version), and takes the answer in the ACK. Nothing crosses to the other leg.
      if (s.last_sdp.empty()) {
        respond(call, li, 488, std::nullopt);
        return;
      }
      s.reoffer_pending = true;
      respond(call, li, 200, s.last_sdp);
      return;
    }
    SdpInspectResult info = inspect_sdp(*sdp);
    if (info.error != SdpError::None) {
      ++stats.sdp_rejected;
      respond(call, li, 488, std::nullopt);
      return;
    }
    if (int st = apply_offer(call, s.side, info.info); st != 0) {
      respond(call, li, st, std::nullopt);
      return;
    }
    auto out = rewrite_for(call, oi, *sdp);
    if (!out) {
      respond(call, li, 488, std::nullopt);
      return;
    }
    ++stats.reinvites;
    o.client_pending = true;
    nua_invite(o.nh, SIPTAG_CONTENT_TYPE_STR(kSdpType), SIPTAG_PAYLOAD_STR(out->c_str()),
               TAG_IF(!o.contact.empty(), SIPTAG_CONTACT_STR(o.contact.c_str())), TAG_END());
  }

  // ---- tear-down ------------------------------------------------------------------------

  void end_call(Call* call, const std::string& why) {
    if (!call->ending) logf("sip: call " + std::to_string(call->serial) + " ends: " + why);
    call->ending = true;
    stop_timer(call);
    release_media(call);
    for (Leg& leg : call->leg) {
      drop_pending(leg);
      if (leg.terminated || !leg.nh) continue;
      if (leg.server_pending) {
        nua_respond(leg.nh, 487, standard_phrase(487), TAG_END());
        leg.server_pending = false;
      } else if (leg.client_pending) {
        if (!leg.cancel_sent) nua_cancel(leg.nh, TAG_END());
        leg.cancel_sent = true;
      } else if (leg.ack_pending) {
        nua_ack(leg.nh, TAG_END());
        leg.ack_pending = false;
        nua_bye(leg.nh, TAG_END());
        leg.bye_sent = true;
      } else if (!leg.bye_sent && (leg.established || call->answered)) {
        nua_bye(leg.nh, TAG_END());
        leg.bye_sent = true;
      }
    }
    maybe_free(call);
  }

  void maybe_free(Call* call) {
    if (!call->leg[0].terminated || !call->leg[1].terminated) return;
    if (!calls.erase(call)) return;
    stop_timer(call);
    release_media(call);
    for (Leg& leg : call->leg)
      if (leg.nh) {
        drop_pending(leg);
        nua_handle_bind(leg.nh, nullptr);
        nua_handle_destroy(leg.nh);
        leg.nh = nullptr;
      }
    delete call;
  }

  void destroy_all() {
    for (Call* call : std::vector<Call*>(calls.begin(), calls.end())) {
      stop_timer(call);
      release_media(call);
      for (Leg& leg : call->leg) {
        if (leg.update_req) msg_destroy(leg.update_req);
        for (msg_t* m : leg.info_reqs) msg_destroy(m);
        if (leg.nh) nua_handle_destroy(leg.nh);
      }
      delete call;
    }
    calls.clear();
  }
};

// ---------------------------------------------------------------------------------------

B2bua::B2bua(su_root_t* root, SipConfig cfg, MediaAnchor& media, Logger log)
    : impl_(std::make_unique<Impl>(root, std::move(cfg), media, std::move(log))) {}

B2bua::~B2bua() {
  impl_->destroy_all();
  if (impl_->reg_timer) su_timer_destroy(impl_->reg_timer);
  for (auto& [aor, b] : impl_->bindings) {
    if (b.nh) nua_handle_destroy(b.nh);
    if (b.client_nh) nua_handle_destroy(b.client_nh);
    if (b.client_req) msg_destroy(b.client_req);
  }
  impl_->bindings.clear();
  for (nua_t*& a : impl_->agent)
    if (a) {
      nua_destroy(a);
      a = nullptr;
    }
  su_log_redirect(nta_log, nullptr, nullptr);
  su_log_redirect(tport_log, nullptr, nullptr);
}

bool B2bua::start(std::string* error) {
  Impl& d = *impl_;
  if (std::string e = validate(d.cfg); !e.empty()) {
    if (error) *error = e;
    return false;
  }
  su_log_redirect(nta_log, &Impl::sofia_log, &d);
  su_log_redirect(tport_log, &Impl::sofia_log, &d);
  // sofia-sip's TLS transport reads its key and certificate from <dir>/agent.pem (and CAs from
  // <dir>/cafile.pem): Veil builds that directory privately (0700, files 0600) from the
  // configured files, creates the agents, and removes it (OpenSSL holds the key in memory).
  std::string tls_dir;
  if (d.cfg.external.tls_port || d.cfg.internal.tls_port) {
    std::string e = make_tls_dir(d.cfg, &tls_dir);
    if (!e.empty()) {
      if (error) *error = e;
      return false;
    }
  }
  struct DirRemover {
    std::string& dir;
    ~DirRemover() { remove_tls_dir(dir); }
  } remover{tls_dir};
  for (int side : {kExternal, kInternal}) {
    const SipSideConfig& sc = side == kExternal ? d.cfg.external : d.cfg.internal;
    std::string url = "sip:" + uri_host(sc.addr) + ":" + std::to_string(sc.port);
    if (sc.udp != sc.tcp) url += sc.udp ? ";transport=udp" : ";transport=tcp";
    // Only TLS on this side: the plain URL binds nothing that is not asked for.
    if (!sc.udp && !sc.tcp) url = "sip:" + uri_host(sc.addr) + ":" + std::to_string(sc.tls_port) + ";transport=tls";
    std::string sips_url = sc.tls_port ? "sips:" + uri_host(sc.addr) + ":" + std::to_string(sc.tls_port) : "";
    bool verify = !d.cfg.tls_ca_file.empty();
    const char* ua = d.cfg.user_agent.empty() ? nullptr : d.cfg.user_agent.c_str();
    d.agent[side] = nua_create(
        d.root, Impl::callback, reinterpret_cast<nua_magic_t*>(&d), NUTAG_URL(url.c_str()),
        NUTAG_MEDIA_ENABLE(0), NUTAG_AUTOACK(0), NUTAG_AUTOALERT(0), NUTAG_AUTOANSWER(0),
        NUTAG_ENABLEMESSAGE(0), NUTAG_ENABLEINVITE(1),
        NTATAG_SIP_T1(d.cfg.t1_ms), NTATAG_MAXSIZE(d.cfg.max_message_size),
        TAG_IF(!sips_url.empty() && (sc.udp || sc.tcp), NUTAG_SIPS_URL(sips_url.c_str())),
        TAG_IF(!tls_dir.empty() && sc.tls_port, TPTAG_CERTIFICATE(tls_dir.c_str())),
        // Servers Veil connects to are verified against tls_ca_file when one is given; the
        // clients connecting to this side too where tls_client_auth asks for it.
        TAG_IF(sc.tls_port && verify,
               TPTAG_TLS_VERIFY_POLICY(d.cfg.tls_client_auth[side] ? TPTLS_VERIFY_ALL : TPTLS_VERIFY_OUT)),
        // sofia-sip's transports answer STUN binding requests on the SIP port by default
        // (anything starting with 0x00/0x01 is taken for STUN): Veil is no STUN server.
        TPTAG_STUN_SERVER(0),
        // RFC 4028: no timer asked for on the legs Veil originates (it does not send
        // refreshes yet); a peer's request is honoured on its leg, the peer refreshing
        // (also when it names no refresher), and an expired session ends with BYE.
        NUTAG_SESSION_TIMER(0), NUTAG_MIN_SE(d.cfg.min_se_s),
        NUTAG_SESSION_REFRESHER(nua_remote_refresher),
        // Where a peer makes Veil the refresher: UPDATE if the peer allows it, else a
        // re-INVITE (see on_invite_response).
        NUTAG_UPDATE_REFRESH(1),
        SIPTAG_ALLOW_STR(side == kExternal ? "INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, UPDATE, INFO, REGISTER"
                                           : "INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, UPDATE, INFO"),
        // REGISTER from clients reaches Veil (on_register), which relays it; UPDATE and INFO
        // reach Veil, which relays them to the other leg (nua would answer them itself).
        NUTAG_APPL_METHOD(side == kExternal ? "REGISTER, UPDATE, INFO" : "UPDATE, INFO"),
        // 100rel (RFC 3262) per leg: sofia-sip sends PRACK for reliable provisionals on the
        // legs Veil originates and answers PRACKs on the legs it terminates.
        SIPTAG_SUPPORTED_STR("timer, 100rel"),
        // The exact text, or no User-Agent at all (sofia-sip's default names itself and its
        // version). The header form takes NONE; the _STR form would strlen() it.
        TAG_IF(ua != nullptr, SIPTAG_USER_AGENT_STR(ua)),
        TAG_IF(ua == nullptr, SIPTAG_USER_AGENT(static_cast<sip_user_agent_t const*>(SIP_NONE))), TAG_END());
    if (!d.agent[side]) {
      if (error)
        *error = std::string("cannot bind SIP on ") + url + " (" +
                 (side == kExternal ? "sip.external" : "sip.internal") + "): " + std::strerror(errno);
      for (nua_t*& a : d.agent)
        if (a) {
          nua_destroy(a);
          a = nullptr;
        }
      return false;
    }
  }
  d.reg_timer = su_timer_create(su_root_task(d.root), 1000);
  // Periodic (the interval given at creation), unlike su_timer_set_interval (one shot).
  if (d.reg_timer) su_timer_set_for_ever(d.reg_timer, &Impl::reg_sweep_cb, reinterpret_cast<su_timer_arg_t*>(&d));
  return true;
}

void B2bua::shutdown() {
  Impl& d = *impl_;
  d.shutting_down = true;
  if (d.reg_timer) {
    su_timer_destroy(d.reg_timer);
    d.reg_timer = nullptr;
  }
  while (!d.bindings.empty()) d.remove_binding(d.bindings.begin());
  for (Call* call : std::vector<Call*>(d.calls.begin(), d.calls.end()))
    if (d.calls.count(call)) d.end_call(call, "shutdown");
  for (int side : {kExternal, kInternal})
    if (d.agent[side]) nua_shutdown(d.agent[side]);
    else d.shutdown_done[side] = true;
}

bool B2bua::end_call_for_media(uint32_t plan_id, std::string_view reason,
                               std::chrono::milliseconds idle_for) {
  Impl& d = *impl_;
  for (Call* call : d.calls) {
    bool mine = false, held = false;
    for (const Stream& st : call->streams)
      if (st.programmed && st.id == plan_id) {
        mine = true;
        held = st.held;
      }
    if (!mine) continue;
    // A stream on hold (a=sendonly/recvonly/inactive, c=0.0.0.0) may carry no RTP at all for
    // as long as the hold lasts: idle media is not a dead call then.
    if (held) return false;
    if (call->ending || !call->answered ||
        std::chrono::steady_clock::now() - call->answered_at < idle_for)
      return false;
    ++d.stats.media_timeouts;
    d.end_call(call, "media timeout: " + std::string(reason));
    return true;
  }
  return false;
}

std::vector<CallView> B2bua::calls() const {
  std::vector<CallView> out;
  auto now = std::chrono::steady_clock::now();
  for (const Call* call : impl_->calls) {
    CallView v;
    v.serial = call->serial;
    v.state = call->ending ? CallView::State::Ending
              : call->answered ? CallView::State::Answered
                               : CallView::State::Ringing;
    v.age = std::chrono::duration_cast<std::chrono::milliseconds>(now - call->started);
    for (int i = 0; i < 2; ++i) {
      v.leg[i].side = call->leg[i].side;
      v.leg[i].call_id = call->call_id[i];
      v.leg[i].established = call->leg[i].established;
    }
    v.from_user = call->from_user;
    v.to_user = call->to_user;
    for (const Stream& st : call->streams)
      if (st.programmed) v.streams.push_back(st.id);
    out.push_back(std::move(v));
  }
  std::sort(out.begin(), out.end(), [](const CallView& a, const CallView& b) { return a.serial < b.serial; });
  return out;
}

bool B2bua::end_call(uint64_t serial, std::string_view reason) {
  Impl& d = *impl_;
  for (Call* call : d.calls) {
    if (call->serial != serial) continue;
    if (call->ending) return true;
    d.end_call(call, std::string(reason));
    return true;
  }
  return false;
}

bool B2bua::stopped() const { return impl_->shutdown_done[0] && impl_->shutdown_done[1]; }

size_t B2bua::active_calls() const { return impl_->calls.size(); }

size_t B2bua::bindings() const {
  size_t n = 0;
  for (const auto& [aor, b] : impl_->bindings)
    if (b.active) ++n;
  return n;
}

std::vector<BindingView> B2bua::registrations() const {
  std::vector<BindingView> out;
  auto now = std::chrono::steady_clock::now();
  for (const auto& [aor, b] : impl_->bindings) {
    BindingView v;
    v.aor = b.aor;
    v.contact = "sip:" + b.token + "@" + uri_hostport(Endpoint{impl_->cfg.internal.addr, impl_->cfg.internal.port}) +
                transport_param(impl_->cfg.pbx_transport);
    v.client_contact = b.client_contact;
    v.source = b.flow.ep;
    v.transport = b.flow.tr;
    v.active = b.active;
    v.pending = b.relay_pending;
    v.expires_in = std::chrono::seconds(Impl::seconds_left(b));
    v.since_relayed = std::chrono::duration_cast<std::chrono::milliseconds>(now - b.last_relayed);
    out.push_back(std::move(v));
  }
  return out;
}

const B2buaStats& B2bua::stats() const { return impl_->stats; }

}  // namespace veil::sip
