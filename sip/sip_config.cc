// sip::validate and the header policy shared by the B2BUA and veild's configuration parser
// (no sofia-sip here: controlplane/config.cc links it without the SIP stack).
#include "sip/sip_config.h"

#include <strings.h>

#include <cctype>
#include <cstring>

namespace veil::sip {

namespace {

// Headers that describe routing, the dialog or the message itself: sofia-sip generates
// them per leg, and copying one across would leak the other side or break the leg.
constexpr const char* kNeverCopied[] = {
    "via", "route", "record-route", "contact", "path", "from", "to", "call-id", "cseq",
    "max-forwards", "content-length", "content-type", "content-encoding", "content-disposition",
    "service-route", "p-asserted-identity", "p-preferred-identity", "reply-to", "refer-to",
    "referred-by", "replaces", "authorization", "proxy-authorization", "www-authenticate",
    "proxy-authenticate", "authentication-info", "require", "proxy-require", "supported",
    "session-expires", "min-se", "rseq", "rack", "allow", "accept", "user-agent", "server",
    "warning", "call-info", "alert-info", "error-info", "organization", "history-info",
    "diversion", "p-charging-vector", "p-access-network-info", "p-visited-network-id"};

}  // namespace

bool header_never_copied(std::string_view name) {
  for (const char* n : kNeverCopied)
    if (name.size() == std::strlen(n) && strncasecmp(name.data(), n, name.size()) == 0)
      return true;
  return false;
}

std::string validate(const SipConfig& cfg) {
  if (!cfg.external.addr.valid()) return "sip.external.address: not set";
  if (!cfg.internal.addr.valid()) return "sip.internal.address: not set";
  if (cfg.external.port == 0 || cfg.internal.port == 0) return "sip.*.port: must be 1-65535";
  if (!cfg.external.udp && !cfg.external.tcp && !cfg.external.tls_port)
    return "sip.external: no transport enabled";
  if (!cfg.internal.udp && !cfg.internal.tcp && !cfg.internal.tls_port)
    return "sip.internal: no transport enabled";
  bool tls = cfg.external.tls_port || cfg.internal.tls_port;
  if (tls && (cfg.tls_certificate.empty() || cfg.tls_private_key.empty()))
    return "sip.tls_port: TLS needs sip.tls_certificate and sip.tls_private_key";
  for (const SipSideConfig* sc : {&cfg.external, &cfg.internal})
    if (sc->tls_port && sc->tls_port == sc->port && (sc->tcp || sc->udp))
      return "sip.tls_port: must differ from sip.port";
  for (int side : {0, 1}) {
    const SipSideConfig& sc = side == 0 ? cfg.external : cfg.internal;
    if (cfg.tls_client_auth[side] && (!sc.tls_port || cfg.tls_ca_file.empty()))
      return "sip.tls_client_auth: needs sip.tls_port and sip.tls_ca_file";
  }
  if (cfg.pbx_transport == Transport::Tls && !cfg.internal.tls_port)
    return "sip.pbx_transport: \"tls\" needs TLS on the trusted side (sip.tls_port)";
  if (cfg.untrusted_transport == Transport::Tls && !cfg.external.tls_port)
    return "sip.untrusted_transport: \"tls\" needs TLS on the untrusted side (sip.tls_port)";
  if (cfg.external.addr == cfg.internal.addr)
    return "sip.external.address and sip.internal.address must differ";
  if (!cfg.pbx.valid()) return "sip.pbx: address:port not set";
  if (cfg.pbx.addr.family != cfg.internal.addr.family)
    return "sip.pbx: family differs from sip.internal.address";
  if (cfg.untrusted_target && !cfg.untrusted_target->valid())
    return "sip.untrusted_target: address:port invalid";
  if (cfg.untrusted_target && cfg.untrusted_target->addr.family != cfg.external.addr.family)
    return "sip.untrusted_target: family differs from sip.external.address";
  for (const auto& h : cfg.header_allow_list) {
    if (h.empty() || h.find_first_of(": \t\r\n") != std::string::npos)
      return "sip.header_allow_list: invalid header name '" + h + "'";
    if (header_never_copied(h))
      return "sip.header_allow_list: '" + h + "' carries routing, identity or software "
             "information and is never copied across";
  }
  if (cfg.user_agent.find_first_of("\r\n") != std::string::npos)
    return "sip.user_agent: must be one line";
  if (cfg.no_response_timeout_ms < 500) return "sip.no_response_timeout_ms: at least 500";
  if (cfg.t1_ms < 100 || cfg.t1_ms > 5000) return "sip.t1_ms: 100-5000";
  if (cfg.min_se_s < 1 || cfg.min_se_s > 86400) return "sip.min_se_s: 1-86400";
  for (char ch : cfg.register_domain)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-'))
      return "sip.register_domain: a host name (letters, digits, '.', '-')";
  if (cfg.register_domain.size() > 253) return "sip.register_domain: at most 253 characters";
  if (cfg.register_min_expires_s < 1 || cfg.register_max_expires_s > 86400 ||
      cfg.register_min_expires_s > cfg.register_max_expires_s)
    return "sip.register_min_expires_s/register_max_expires_s: 1 <= min <= max <= 86400";
  if (cfg.register_min_interval_s > 86400) return "sip.register_min_interval_s: 0-86400";
  if (cfg.max_message_size < 1024 || cfg.max_message_size > 1048576)
    return "sip.max_message_size: 1024-1048576";
  return "";
}

}  // namespace veil::sip
