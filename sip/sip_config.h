// Configuration of the SIP part of Veil (the B2BUA). veild maps its TOML [sip] section onto
// this struct; the harness in tests/sip fills it from its command line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/addr.h"
#include "sip/sdes_sdp.h"

namespace veil::sip {

enum class Transport : uint8_t { Udp, Tcp, Tls };

// One side of the SBC: where Veil listens for SIP there.
struct SipSideConfig {
  IpAddr addr;             // the SBC's own address on that side (also o=/c= unless media says otherwise)
  uint16_t port = 5060;
  bool udp = true;
  bool tcp = true;
  // SIP over TLS (RFC 3261 26.3.1, OpenSSL through sofia-sip's tls transport) on this port
  // of `addr`; 0: no TLS on this side. Needs SipConfig::tls_certificate/tls_private_key.
  uint16_t tls_port = 0;
};

struct SipConfig {
  SipSideConfig external;  // untrusted side
  SipSideConfig internal;  // trusted side

  // The trusted peer (PBX, trunk). Every call from the untrusted side goes there, and the
  // internal side accepts INVITEs only from its address (any source port: TCP).
  Endpoint pbx;
  Transport pbx_transport = Transport::Udp;

  // Where calls from the PBX go until registrations exist (issue 3, item 4): one static
  // untrusted peer. Unset: calls from the PBX are refused with 480.
  std::optional<Endpoint> untrusted_target;
  Transport untrusted_transport = Transport::Udp;

  // TLS (both sides use the same certificate). PEM files: the certificate (chain) Veil
  // presents and its private key (unencrypted); Veil reads them at start-up. tls_ca_file:
  // CA certificates Veil verifies the TLS peers it connects to against (the PBX, clients
  // called over TLS); empty: the peer's certificate is not verified.
  std::string tls_certificate, tls_private_key, tls_ca_file;
  // Mutual TLS: TLS connections Veil accepts on these sides must present a client
  // certificate that chains to tls_ca_file (else the handshake fails and no SIP is read).
  // Veil presents its own certificate to peers that ask for one either way.
  bool tls_client_auth[2] = {false, false};  // by side: [0] external, [1] internal

  // Headers copied from one leg to the other (both directions), by name, case-insensitive.
  // Nothing else of the other leg's headers crosses (Veil sends only what sofia-sip's
  // user agent generates). Names that carry routing or addresses are refused by validate().
  std::vector<std::string> header_allow_list;

  // User-Agent / Server value Veil sends on both sides; empty: the header is left out.
  std::string user_agent;

  // No response at all (not even 100) to an INVITE sent on the other leg within this time:
  // the INVITE is cancelled and the caller gets 503 (a PBX that is down is noticed long
  // before the 32 s of timer B).
  uint32_t no_response_timeout_ms = 4000;
  // RFC 3261 T1 (retransmission base) for both agents.
  uint32_t t1_ms = 500;
  // Largest SIP message accepted (bytes, headers and body); larger ones are refused by
  // sofia-sip (413 where it can answer, else dropped).
  uint32_t max_message_size = 65536;
  // RFC 4028 session timers. A peer that asks for one (Session-Expires in its INVITE) gets
  // it on its own leg: Veil answers with Session-Expires and, when the peer is the
  // refresher, ends the call (BYE on both legs) when no refresh arrives in time.
  // min_se_s: the smallest interval Veil accepts (422 with Min-SE below it; RFC 4028
  // recommends at least 90). Veil itself asks for no timer on the legs it originates
  // (it would then have to send refreshes toward peers without timer support, which it
  // does not do yet).
  uint32_t min_se_s = 90;

  // SRTP toward the PBX (RFC 4568 SDES). Unknown ("off"): every offer Veil makes to the PBX
  // is whatever the untrusted side's media becomes in plain RTP/AVP. A suite: every offer Veil
  // makes to the PBX is RTP/SAVP with one a=crypto of that suite carrying Veil's own key for
  // the PBX leg, whatever the caller used (plain RTP, SDES, or a browser's DTLS-SRTP); the
  // PBX's answer must carry a matching a=crypto or the call fails. Offers from the PBX are
  // answered as they come (SAVP with a=crypto: SDES on the PBX leg, also toward browsers).
  SdesSuite pbx_srtp = SdesSuite::Unknown;

  // Registrations (issue 3, item 4). REGISTERs from the untrusted side are re-originated
  // toward the PBX with Veil's own Contact; the client's flow is kept in a binding table.
  // register_domain: host of the re-originated REGISTER's Request-URI, From and To (the
  // PBX's SIP domain); empty: the PBX's address. Clients that register to this domain keep
  // a digest that validates at the PBX (docs/topology-hiding.md, "Registrations").
  std::string register_domain;
  // Expires sent to the PBX is the client's, clamped to [min, max] (0 stays 0: un-REGISTER).
  uint32_t register_min_expires_s = 60;
  uint32_t register_max_expires_s = 3600;
  // Registration throttling: a refresh from a client (same flow, same Call-ID) less than this
  // long after the last REGISTER Veil relayed for its binding is answered 200 by Veil (with
  // the binding's remaining time) without contacting the PBX. 0: every refresh is relayed.
  uint32_t register_min_interval_s = 0;
};

// Empty when `cfg` is usable, else what is wrong, naming the field.
std::string validate(const SipConfig& cfg);

// True for headers that carry routing, dialog, identity or software information: sofia-sip
// generates them per leg and they are never copied across, allow-list or not.
bool header_never_copied(std::string_view name);

}  // namespace veil::sip
