#include "controlplane/dtls_api.h"

#include <cerrno>

namespace veil::ctl {

namespace {

using doc::Array;
using doc::Object;
using doc::Value;

Response fail(int status, std::string msg) {
  Response r;
  r.status = status;
  r.message = std::move(msg);
  return r;
}

const char* state_name(DtlsSession::State s) {
  switch (s) {
    case DtlsSession::State::Idle: return "idle";
    case DtlsSession::State::Handshaking: return "handshaking";
    case DtlsSession::State::Connected: return "connected";
    case DtlsSession::State::Failed: return "failed";
    case DtlsSession::State::Closed: return "closed";
  }
  return "?";
}

bool flow_arg(const Request& r, uint32_t& out) {
  auto it = r.args.find("flow");
  if (it == r.args.end() || it->second.empty() || it->second.size() > 10) return false;
  uint64_t v = 0;
  for (char c : it->second) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + uint64_t(c - '0');
  }
  if (v == 0 || v > 0xffffffffu) return false;
  out = uint32_t(v);
  return true;
}

}  // namespace

Response dtls_command(DtlsHub& hub, const DtlsIdentity& id, dp::Dataplane& dp, const Request& r) {
  if (r.command == "dtls") {
    Array rows;
    for (uint32_t f : hub.flows()) {
      const DtlsSession* s = hub.session(f);
      rows.push_back(Object{
          {"flow", uint64_t(f)},
          {"role", s->role() == DtlsRole::Client ? "client" : "server"},
          {"state", state_name(s->state())},
          {"profile", s->keys().profile != SrtpProfile::None ? profile_name(s->keys().profile) : "-"},
          {"sent", s->sent()},
          {"received", s->received()},
          {"error", s->error().empty() ? "-" : s->error()},
      });
    }
    Response resp;
    resp.body = Object{{"fingerprint", id.fingerprint()},
                       {"records_for_unknown_flows", hub.unknown_flow_records()},
                       {"sessions", std::move(rows)}};
    return resp;
  }
  uint32_t flow;
  if (!flow_arg(r, flow)) return fail(EINVAL, r.command + " needs flow=N");
  if (r.command == "dtls-del") {
    if (!hub.session(flow)) return fail(ENOENT, "no DTLS session on flow " + std::to_string(flow));
    hub.remove(flow);
    return Response{};
  }
  // dtls-add
  auto arg = [&](const char* k) {
    auto it = r.args.find(k);
    return it == r.args.end() ? std::string() : it->second;
  };
  for (const auto& [k, v] : r.args)
    if (k != "flow" && k != "setup" && k != "hash" && k != "fingerprint")
      return fail(EINVAL, "unknown argument " + k + " (allowed: flow setup hash fingerprint)");
  auto role = role_from_remote_setup(arg("setup"));
  if (!role) return fail(EINVAL, "setup= is the peer's a=setup: active, passive or actpass");
  std::string hash = arg("hash").empty() ? "sha-256" : arg("hash");
  if (arg("fingerprint").empty()) return fail(EINVAL, "fingerprint= (the peer's a=fingerprint) is required");
  auto spec = dp.flows().get(flow);
  if (!spec) return fail(ENOENT, "no flow " + std::to_string(flow));
  if (!spec->spec.dtls) return fail(EINVAL, "flow " + std::to_string(flow) + " does not hand DTLS up (dtls=yes)");
  if (!hub.add(flow, *role, hash + " " + arg("fingerprint"), spec->spec.ingress_port, spec->spec.local))
    return fail(EEXIST, "flow " + std::to_string(flow) + " already has a DTLS session");
  const DtlsSession* s = hub.session(flow);
  if (s->state() == DtlsSession::State::Failed) {
    std::string why = s->error();
    hub.remove(flow);
    return fail(EINVAL, why);
  }
  Response resp;
  resp.body = Object{{"flow", uint64_t(flow)},
                     {"role", *role == DtlsRole::Client ? "client" : "server"},
                     {"setup", setup_attribute(*role)},
                     {"fingerprint", id.fingerprint()}};
  return resp;
}

}  // namespace veil::ctl
