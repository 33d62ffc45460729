// Runs Veil's B2BUA (sip/b2bua.h) on plain kernel sockets with a recording MediaAnchor, for
// the end-to-end test (tests/sip/test_b2bua.py) in network namespaces. No DPDK.
//
//   b2bua_harness --ext 203.0.113.1 --int 198.51.100.1 --pbx 198.51.100.10:5060
//                 [--target 203.0.113.10:5060] [--port 5060] [--ext-media 20000]
//                 [--int-media 30000] [--no-response-ms 4000] [--allow-header NAME]...
//                 [--min-se SECONDS] [--register-domain HOST] [--register-min-interval S]
//                 [--register-min-expires S] [--register-max-expires S]
//                 [--tls-port P --tls-cert PEM --tls-key PEM [--tls-ca PEM]] [--pbx-transport udp|tcp|tls]
//                 [--tls-client-auth off|internal|all]
//
// Prints "ready" when both agents are bound. Commands on stdin, one per line:
//   stats  -> one JSON line: calls, counters, live ports, every program/remove call
//   quit   -> shuts down (bounded), prints the final stats line, exits 0 (1 if calls leaked)
#include <sofia-sip/su.h>
#include <sofia-sip/su_wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "sip/b2bua.h"

namespace {

using veil::Endpoint;
using veil::Family;
using veil::IpAddr;
using namespace veil::sip;

// Allocates even ports upward from a base per side, records everything it is asked.
class RecordingAnchor : public MediaAnchor {
 public:
  RecordingAnchor(IpAddr ext, IpAddr in, uint16_t ext_base, uint16_t in_base)
      : addr_{ext, in}, next_{ext_base, in_base} {}

  std::optional<Endpoint> allocate(int side, Family fam) override {
    if (addr_[side].family != fam) return std::nullopt;
    Endpoint e{addr_[side], next_[side]};
    next_[side] = uint16_t(next_[side] + 2);
    live_[side].push_back(e);
    return e;
  }
  void release(int side, const Endpoint& local) override {
    auto& v = live_[side];
    for (auto it = v.begin(); it != v.end(); ++it)
      if (*it == local) {
        v.erase(it);
        ++released_;
        return;
      }
    ++bad_releases_;
  }
  // SDES on one leg, as the harness reports it: suite and key state, never the key.
  static std::string srtp(const SdesPlan& p) {
    if (!p.enabled()) return "none";
    return std::string(sdes_suite_name(p.suite)) + (p.remote.empty() ? " (peer key pending)" : " (keyed)");
  }
  bool program(const MediaStreamPlan& plan) override {
    programs_.push_back(plan);
    programmed_[plan.id] = true;
    return true;
  }
  void remove(uint32_t id) override {
    removes_.push_back(id);
    programmed_.erase(id);
  }

  std::string json() const {
    std::string s = "\"live_ports\":[";
    for (int side : {0, 1})
      for (const auto& e : live_[side]) s += "\"" + e.str() + "\",";
    if (s.back() == ',') s.pop_back();
    s += "],\"released\":" + std::to_string(released_) +
         ",\"bad_releases\":" + std::to_string(bad_releases_) +
         ",\"live_flows\":" + std::to_string(programmed_.size()) + ",\"programs\":[";
    for (const auto& p : programs_) {
      s += "{\"id\":" + std::to_string(p.id) + ",\"ext_local\":\"" + p.ext.sbc_local.str() +
           "\",\"ext_remote\":\"" + (p.ext.remote.valid() ? p.ext.remote.str() : "") +
           "\",\"in_local\":\"" + p.in.sbc_local.str() + "\",\"in_remote\":\"" +
           (p.in.remote.valid() ? p.in.remote.str() : "") +
           "\",\"rtcp_mux\":" + (p.rtcp_mux ? "true" : "false") +
           ",\"srtp_ext\":\"" + srtp(p.sdes[0]) + "\",\"srtp_in\":\"" + srtp(p.sdes[1]) + "\"},";
    }
    if (s.back() == ',') s.pop_back();
    s += "],\"removes\":[";
    for (uint32_t id : removes_) s += std::to_string(id) + ",";
    if (s.back() == ',') s.pop_back();
    return s + "]";
  }

 private:
  IpAddr addr_[2];
  uint16_t next_[2];
  std::vector<Endpoint> live_[2];
  std::vector<MediaStreamPlan> programs_;
  std::vector<uint32_t> removes_;
  std::map<uint32_t, bool> programmed_;
  unsigned released_ = 0, bad_releases_ = 0;
};

struct Harness {
  su_root_t* root = nullptr;
  B2bua* b2bua = nullptr;
  RecordingAnchor* anchor = nullptr;
  std::string line;
  bool quit = false;

  // Counters added since the format string above was written.
  std::string extra() const {
    const B2buaStats& st = b2bua->stats();
    std::string s;
    auto add = [&](const char* k, uint64_t v) { s += std::string("\"") + k + "\":" + std::to_string(v) + ","; };
    add("auth_challenges", st.auth_challenges);
    add("challenges_withheld", st.challenges_withheld);
    add("early_updates", st.early_updates);
    add("early_media", st.early_media);
    add("reliable_provisionals", st.reliable_provisionals);
    add("updates", st.updates);
    add("infos", st.infos);
    add("late_offers", st.late_offers);
    return s;
  }

  void print_stats() {
    const B2buaStats& st = b2bua->stats();
    std::printf(
        "{\"active_calls\":%zu,\"calls_total\":%lu,\"calls_answered\":%lu,\"calls_failed\":%lu,"
        "\"calls_cancelled\":%lu,\"refused_source\":%lu,\"sdp_rejected\":%lu,\"no_media_ports\":%lu,"
        "\"no_response_timeouts\":%lu,\"reinvites\":%lu,\"callback_exceptions\":%lu,"
        "\"media_timeouts\":%lu,\"options_answered\":%lu,\"malformed_dropped\":%lu,"
        "\"bindings\":%zu,\"registers_received\":%lu,\"registers_relayed\":%lu,"
        "\"registers_throttled\":%lu,\"registers_removed\":%lu,\"registers_expired\":%lu,%s%s}\n",
        b2bua->active_calls(), (unsigned long)st.calls_total, (unsigned long)st.calls_answered,
        (unsigned long)st.calls_failed, (unsigned long)st.calls_cancelled, (unsigned long)st.refused_source,
        (unsigned long)st.sdp_rejected, (unsigned long)st.no_media_ports,
        (unsigned long)st.no_response_timeouts, (unsigned long)st.reinvites,
        (unsigned long)st.callback_exceptions, (unsigned long)st.media_timeouts,
        (unsigned long)st.options_answered, (unsigned long)st.malformed_dropped,
        b2bua->bindings(), (unsigned long)st.registers_received, (unsigned long)st.registers_relayed,
        (unsigned long)st.registers_throttled, (unsigned long)st.registers_removed,
        (unsigned long)st.registers_expired, extra().c_str(), anchor->json().c_str());
    std::fflush(stdout);
  }
};

int on_stdin(su_root_magic_t*, su_wait_t*, su_wakeup_arg_t* arg) {
  auto* h = reinterpret_cast<Harness*>(arg);
  char buf[512];
  ssize_t n = read(0, buf, sizeof buf);
  if (n <= 0) {
    h->quit = true;
    su_root_break(h->root);
    return 0;
  }
  h->line.append(buf, size_t(n));
  size_t nl;
  while ((nl = h->line.find('\n')) != std::string::npos) {
    std::string cmd = h->line.substr(0, nl);
    h->line.erase(0, nl + 1);
    if (cmd == "stats") h->print_stats();
    if (cmd == "quit") {
      h->quit = true;
      su_root_break(h->root);
    }
  }
  return 0;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "b2bua_harness: %s\n", why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  SipConfig cfg;
  uint16_t ext_media = 20000, in_media = 30000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    auto addr = [&](const std::string& v) {
      auto p = IpAddr::parse(v);
      if (!p) usage(("bad address " + v).c_str());
      return *p;
    };
    auto ep = [&](const std::string& v) {
      auto p = Endpoint::parse(v);
      if (!p) usage(("bad endpoint " + v).c_str());
      return *p;
    };
    if (a == "--ext") cfg.external.addr = addr(next());
    else if (a == "--int") cfg.internal.addr = addr(next());
    else if (a == "--port") cfg.external.port = cfg.internal.port = uint16_t(std::stoi(next()));
    else if (a == "--pbx") cfg.pbx = ep(next());
    else if (a == "--target") cfg.untrusted_target = ep(next());
    else if (a == "--ext-media") ext_media = uint16_t(std::stoi(next()));
    else if (a == "--int-media") in_media = uint16_t(std::stoi(next()));
    else if (a == "--no-response-ms") cfg.no_response_timeout_ms = uint32_t(std::stoul(next()));
    else if (a == "--min-se") cfg.min_se_s = uint32_t(std::stoul(next()));
    else if (a == "--allow-header") cfg.header_allow_list.push_back(next());
    else if (a == "--register-domain") cfg.register_domain = next();
    else if (a == "--register-min-interval") cfg.register_min_interval_s = uint32_t(std::stoul(next()));
    else if (a == "--register-min-expires") cfg.register_min_expires_s = uint32_t(std::stoul(next()));
    else if (a == "--register-max-expires") cfg.register_max_expires_s = uint32_t(std::stoul(next()));
    else if (a == "--tls-port") cfg.external.tls_port = cfg.internal.tls_port = uint16_t(std::stoi(next()));
    else if (a == "--tls-cert") cfg.tls_certificate = next();
    else if (a == "--tls-key") cfg.tls_private_key = next();
    else if (a == "--tls-ca") cfg.tls_ca_file = next();
    else if (a == "--tls-client-auth") {
      std::string v = next();
      cfg.tls_client_auth[1] = v == "internal" || v == "all";
      cfg.tls_client_auth[0] = v == "all";
    }
    else if (a == "--pbx-transport") {
      std::string t = next();
      cfg.pbx_transport = t == "tls" ? Transport::Tls : t == "tcp" ? Transport::Tcp : Transport::Udp;
    }
    else usage(("unknown argument " + a).c_str());
  }

  su_init();
  Harness h;
  h.root = su_root_create(nullptr);
  if (!h.root) usage("su_root_create failed");
  su_root_threading(h.root, 0);

  RecordingAnchor anchor(cfg.external.addr, cfg.internal.addr, ext_media, in_media);
  int rc = 0;
  {
    B2bua b2bua(h.root, cfg, anchor, [](std::string_view s) {
      std::fprintf(stderr, "%.*s\n", int(s.size()), s.data());
    });
    h.b2bua = &b2bua;
    h.anchor = &anchor;
    std::string err;
    if (!b2bua.start(&err)) {
      std::fprintf(stderr, "b2bua_harness: %s\n", err.c_str());
      return 1;
    }
    su_wait_t wait[1];
    su_wait_create(wait, 0, SU_WAIT_IN);
    su_root_register(h.root, wait, on_stdin, reinterpret_cast<su_wakeup_arg_t*>(&h), 0);
    std::printf("ready\n");
    std::fflush(stdout);

    while (!h.quit) su_root_run(h.root);

    b2bua.shutdown();
    for (int i = 0; i < 300 && !b2bua.stopped(); ++i) su_root_step(h.root, 10);
    h.print_stats();
    if (b2bua.active_calls() != 0) rc = 1;
    su_root_unregister(h.root, wait, on_stdin, reinterpret_cast<su_wakeup_arg_t*>(&h));
  }
  su_root_destroy(h.root);
  su_deinit();
  return rc;
}
