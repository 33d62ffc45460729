// veild: the Veil daemon. Reads and validates the configuration (exit 2 on any error,
// before EAL starts or a port is touched), brings up EAL and the dataplane, launches the
// workers, then runs the control loop on the main lcore: management API, neighbour
// learning and resolution, RCU reclamation, idle-flow reports, and (with [sip] enabled) the
// B2BUA's su_root, stepped without blocking in the same loop.
#include <getopt.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_pdump.h>
#include <signal.h>
#include <sofia-sip/su.h>
#include <sofia-sip/su_wait.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <algorithm>
#include <vector>

#include "controlplane/config.h"
#include "controlplane/dtls_api.h"
#include "controlplane/dtls_srtp.h"
#include "controlplane/media_anchor_dp.h"
#include "controlplane/mgmt.h"
#include "dataplane/dataplane.h"
#include "dataplane/srtp_lib.h"
#include "sip/b2bua.h"
#include "controlplane/ws_gateway.h"

namespace {

void log(const char* level, const std::string& msg) {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char t[32];
  std::strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
  std::fprintf(stderr, "%s.%03ldZ veild %s: %s\n", t, ts.tv_nsec / 1000000, level, msg.c_str());
}

void usage(FILE* to) {
  std::fprintf(to,
               "usage: veild [--config FILE] [--check] [--version]\n"
               "  -c, --config FILE  configuration (default /etc/veil/veil.toml)\n"
               "      --check        validate the configuration and exit (0 valid, 2 invalid)\n"
               "  -V, --version      print the version\n"
               "exit codes: 0 clean shutdown, 1 start-up failure, 2 bad configuration or usage\n");
}

// The SIP side of veild: one su_root on the control thread (no threads of sofia-sip's own),
// the B2BUA on it, media through the dataplane's flow table.
struct Sip {
  su_root_t* root = nullptr;
  std::unique_ptr<veil::ctl::DpMediaAnchor> anchor;
  std::unique_ptr<veil::sip::B2bua> b2bua;
  std::unique_ptr<veil::ws::Gateway> websocket;  // [websocket]: browsers, over the B2BUA's TCP

  bool start(veil::dp::Dataplane& dp, const veil::config::Config& cfg, std::string& err) {
    if (su_init() != 0) {
      err = "SIP: su_init failed";
      return false;
    }
    root = su_root_create(nullptr);
    if (!root) {
      err = "SIP: su_root_create failed";
      return false;
    }
    su_root_threading(root, 0);
    anchor = std::make_unique<veil::ctl::DpMediaAnchor>(
        dp, cfg, [](std::string_view s) { log("warning", std::string(s)); });
    b2bua = std::make_unique<veil::sip::B2bua>(
        root, cfg.sip.b2bua, *anchor, [](std::string_view s) { log("info", std::string(s)); });
    if (!b2bua->start(&err)) {
      err = "SIP: " + err;
      return false;
    }
    if (cfg.websocket.enabled()) {
      const auto& w = cfg.websocket;
      veil::ws::GatewayConfig g;
      g.addr = cfg.sip.b2bua.external.addr;
      g.ws_port = w.ws_port;
      g.wss_port = w.wss_port;
      g.certificate = w.certificate;
      g.private_key = w.private_key;
      g.allowed_origins = w.allowed_origins;
      g.sip_target = veil::Endpoint{cfg.sip.b2bua.external.addr, cfg.sip.b2bua.external.port};
      g.max_connections = w.max_connections;
      g.max_connections_per_source = w.max_connections_per_source;
      g.max_message_bytes = w.max_message_bytes;
      g.handshake_timeout_ms = w.handshake_timeout_ms;
      g.idle_timeout_s = w.idle_timeout_s;
      g.server = cfg.sip.b2bua.user_agent;
      websocket = std::make_unique<veil::ws::Gateway>(
          g, [](std::string_view level, std::string_view s) { log(std::string(level).c_str(), std::string(s)); });
      if (!websocket->start(&err)) return false;
      log("info", "SIP over WebSocket on " +
                      (w.ws_port ? "ws " + veil::Endpoint{g.addr, w.ws_port}.str() : std::string()) +
                      (w.ws_port && w.wss_port ? ", " : "") +
                      (w.wss_port ? "wss " + veil::Endpoint{g.addr, w.wss_port}.str() : std::string()) +
                      (w.allowed_origins.empty() ? ", any origin" : ", " + std::to_string(w.allowed_origins.size()) + " allowed origin(s)"));
    }
    return true;
  }

  // The control loop's own descriptors (signals, management API) are behind one epoll fd;
  // registering it with the su_root lets one wait cover sofia-sip's sockets and ours, so SIP
  // is read as soon as it arrives rather than once per tick.
  bool watch(int epfd) {
    if (!root || su_wait_create(&epwait, epfd, SU_WAIT_IN) != 0) return false;
    return su_root_register(root, &epwait, &Sip::on_ours, nullptr, 0) >= 0;
  }
  void unwatch() {
    if (root) su_root_unregister(root, &epwait, &Sip::on_ours, nullptr);
  }
  static int on_ours(su_root_magic_t*, su_wait_t*, su_wakeup_arg_t*) { return 0; }

  // Waits up to `ms` for SIP or one of the loop's own descriptors, running what is due.
  void step(int ms) {
    if (root) su_root_step(root, ms);
  }
  su_wait_t epwait{};

  // Ends every call (BYE/CANCEL on both legs) and waits, bounded, for sofia-sip to finish;
  // the dataplane keeps running meanwhile so the BYEs leave.
  void stop(veil::dp::Dataplane& dp) {
    websocket.reset();  // browsers' connections close; the B2BUA sees their TCP close
    if (b2bua) {
      b2bua->shutdown();
      timespec t0, now;
      clock_gettime(CLOCK_MONOTONIC, &t0);
      for (;;) {
        su_root_step(root, 10);
        dp.poll_control();
        if (b2bua->stopped()) break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec >= 5) {
          log("warning", "SIP: shutdown did not finish within 5 s; " +
                             std::to_string(b2bua->active_calls()) + " call(s) dropped");
          break;
        }
      }
      b2bua.reset();
    }
    anchor.reset();
    if (root) {
      su_root_destroy(root);
      root = nullptr;
      su_deinit();
    }
  }
};

veil::doc::Object sip_counters(const veil::sip::B2bua& b, const veil::ws::Gateway* ws) {
  const auto& s = b.stats();
  veil::doc::Object o = {{"active_calls", uint64_t(b.active_calls())},
          {"calls_total", s.calls_total},
          {"calls_answered", s.calls_answered},
          {"calls_failed", s.calls_failed},
          {"calls_cancelled", s.calls_cancelled},
          {"challenges_withheld", s.challenges_withheld},
          {"ice_restarts", s.ice_restarts},
          {"early_updates", s.early_updates},
          {"refused_source", s.refused_source},
          {"sdp_rejected", s.sdp_rejected},
          {"no_media_ports", s.no_media_ports},
          {"no_response_timeouts", s.no_response_timeouts},
          {"reinvites", s.reinvites},
          {"callback_exceptions", s.callback_exceptions},
          {"media_timeouts", s.media_timeouts},
          {"auth_challenges", s.auth_challenges},
          {"early_media", s.early_media},
          {"reliable_provisionals", s.reliable_provisionals},
          {"updates", s.updates},
          {"infos", s.infos},
          {"late_offers", s.late_offers}};
  if (ws) {
    const auto& w = ws->stats();
    auto rd = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    o.insert(o.end(), {{"websocket_accepted", rd(w.accepted)},
                       {"websocket_closed", rd(w.closed)},
                       {"websocket_refused_limit", rd(w.refused_limit)},
                       {"websocket_refused_origin", rd(w.refused_origin)},
                       {"websocket_refused_protocol", rd(w.refused_protocol)},
                       {"websocket_handshake_failed", rd(w.handshake_failed)},
                       {"websocket_sip_connect_failed", rd(w.sip_connect_failed)},
                       {"websocket_messages_in", rd(w.messages_in)},
                       {"websocket_messages_out", rd(w.messages_out)},
                       {"websocket_bad_messages", rd(w.bad_messages)},
                       {"websocket_oversized", rd(w.oversized)}});
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = "/etc/veil/veil.toml";
  bool check_only = false;
  static option longopts[] = {{"config", required_argument, nullptr, 'c'},
                              {"check", no_argument, nullptr, 'k'},
                              {"version", no_argument, nullptr, 'V'},
                              {"help", no_argument, nullptr, 'h'},
                              {nullptr, 0, nullptr, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "c:Vh", longopts, nullptr)) != -1) {
    switch (c) {
      case 'c': config_path = optarg; break;
      case 'k': check_only = true; break;
      case 'V': std::printf("veild %s\n", VEIL_VERSION); return 0;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
  }
  if (optind != argc) {
    usage(stderr);
    return 2;
  }

  auto parsed = veil::config::parse_file(config_path);
  if (!parsed.ok()) {
    for (const auto& e : parsed.errors) std::fprintf(stderr, "%s\n", e.str().c_str());
    std::fprintf(stderr, "veild: %zu error(s) in %s; nothing was started\n", parsed.errors.size(),
                 config_path.c_str());
    return 2;
  }
  const veil::config::Config& cfg = *parsed.config;
  if (check_only) {
    std::printf("%s: configuration is valid\n", config_path.c_str());
    return 0;
  }

  veil::dp::SrtpInfo srtp = veil::dp::srtp_start();
  if (!srtp.ok || !srtp.openssl) {
    log("error", "libsrtp2 " + (srtp.ok ? "uses the " + srtp.backend + " crypto backend" : "failed to initialise") +
                     "; Veil needs libsrtp2 built on OpenSSL (tools/build-srtp.sh, docs/dependencies.md)");
    return 1;
  }
  log("info", srtp.version + " with OpenSSL crypto");

  // Block the signals before EAL creates its threads so they inherit the mask and the
  // control loop alone receives SIGINT/SIGTERM through its signalfd.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  auto eal_args = veil::dp::eal_arguments(cfg, argv[0]);
  std::vector<char*> eal_argv;
  for (auto& a : eal_args) eal_argv.push_back(a.data());
  std::string joined;
  for (auto& a : eal_args) joined += " " + a;
  log("info", "EAL:" + joined);
  if (rte_eal_init(int(eal_argv.size()), eal_argv.data()) < 0) {
    log("error", std::string("EAL init failed: ") + rte_strerror(rte_errno));
    return 1;
  }
  // DPDK's packet-capture framework: dpdk-dumpcap (a secondary process with the same
  // --file-prefix) can then capture on Veil's ports. Costs nothing until a capture starts.
  if (rte_pdump_init() != 0)
    log("warning", std::string("packet capture (rte_pdump) unavailable: ") + rte_strerror(rte_errno));

  int rc = 0;
  {
    std::string err;
    veil::dp::Options opt;
    auto dp = veil::dp::Dataplane::create(cfg, opt, err);
    if (!dp) {
      log("error", err);
      rte_eal_cleanup();
      return 1;
    }
    veil::ctl::Api api(*dp, cfg);
    veil::ctl::Server server(api);
    if (!server.listen(cfg.management.socket, err)) {
      log("error", err);
      dp.reset();
      rte_eal_cleanup();
      return 1;
    }
    // DTLS-SRTP (issue #5): one certificate per instance, its fingerprint for a=fingerprint;
    // sessions are added per browser-side flow (DtlsHub::add) and fed from the DTLS ring.
    auto dtls_id = veil::ctl::DtlsIdentity::generate(err);
    if (!dtls_id) {
      log("error", "DTLS: " + err);
      dp.reset();
      rte_eal_cleanup();
      return 1;
    }
    // The SIP media anchor, once SIP runs: it receives the keys of its WebRTC streams.
    veil::ctl::DpMediaAnchor* webrtc_anchor = nullptr;
    // DTLS sessions that failed this loop pass: their calls are ended after the hub is done
    // with them (ending a call removes its session from the hub).
    std::vector<std::pair<uint32_t, std::string>> dtls_failed;
    veil::ctl::DtlsHub dtls(
        *dtls_id,
        [&dp](uint8_t port, const veil::Endpoint& local, const veil::Endpoint& remote,
              const uint8_t* d, size_t n) {
          return dp->send_udp_from_control(port, local, remote, d, uint32_t(n));
        },
        [&webrtc_anchor](uint32_t flow, const veil::ctl::SrtpKeys& k) {
          bool installed = webrtc_anchor && webrtc_anchor->on_dtls_keys(flow, k);
          log("info", "flow " + std::to_string(flow) + ": DTLS-SRTP keys exported (" +
                          veil::ctl::profile_name(k.profile) + ")" +
                          (installed ? ", installed on the stream's flows" : ""));
        },
        [&dtls_failed](uint32_t flow, const std::string& why) {
          log("warning", "flow " + std::to_string(flow) + ": DTLS-SRTP failed: " + why);
          dtls_failed.emplace_back(flow, why);
        },
        // Where a DTLS client sends its ClientHello: the ICE-selected pair on an ICE flow
        // (never an unchecked candidate), else the latched or the signaled address.
        [&dp](uint32_t flow) -> std::optional<veil::Endpoint> {
          auto s = dp->flows().get(flow);
          if (!s) return std::nullopt;
          if (s->learned.valid()) return s->learned;
          if (s->spec.ice_ufrag.empty() && s->spec.signaled_remote.valid()) return s->spec.signaled_remote;
          return std::nullopt;
        });
    log("info", "DTLS certificate " + dtls_id->fingerprint());
    api.set_dtls([&](const veil::ctl::Request& r) { return veil::ctl::dtls_command(dtls, *dtls_id, *dp, r); });
    if (!dp->start(err)) {
      log("error", err);
      dp.reset();
      rte_eal_cleanup();
      return 1;
    }
    for (const auto& p : dp->ports()) {
      std::string addrs;
      for (unsigned i = 0; i < p.n_addrs; ++i) addrs += " " + p.prefixes[i].str();
      log("info", "port " + p.name + " (" + veil::config::role_name(p.role) + ") dpdk port " +
                      std::to_string(p.nic) + addrs + ", exception path " +
                      (p.has_exc ? p.exc_iface : "none"));
    }
    dp->resolve_gateways();

    // SIP after the dataplane: the exception interfaces hold the SBC's addresses, so
    // sofia-sip binds ordinary sockets to them.
    Sip sip;
    if (cfg.sip.enabled) {
      if (!sip.start(*dp, cfg, err)) {
        log("error", err);
        sip.stop(*dp);
        dp->stop();
        dp.reset();
        rte_eal_cleanup();
        return 1;
      }
      const auto& b = cfg.sip.b2bua;
      std::string transports = std::string(b.external.udp ? "udp" : "") +
                               (b.external.udp && b.external.tcp ? "+" : "") +
                               (b.external.tcp ? "tcp" : "");
      log("info", "SIP B2BUA on " + veil::Endpoint{b.external.addr, b.external.port}.str() +
                      " (external) and " + veil::Endpoint{b.internal.addr, b.internal.port}.str() +
                      " (internal), " + transports + "; PBX " + b.pbx.str() +
                      (b.untrusted_target ? ", calls from the PBX to " + b.untrusted_target->str()
                                          : ", calls from the PBX refused (no untrusted_target)"));
      api.set_sip_stats([&sip] {
        return veil::ctl::Api::SipStats{sip.b2bua->active_calls(),
                                        sip_counters(*sip.b2bua, sip.websocket.get())};
      });
      api.set_calls([&sip] {
        std::vector<veil::ctl::CallInfo> out;
        for (const auto& c : sip.b2bua->calls()) {
          veil::ctl::CallInfo i;
          i.id = c.serial;
          i.state = c.state == veil::sip::CallView::State::Ringing    ? "ringing"
                    : c.state == veil::sip::CallView::State::Answered ? "answered"
                                                                      : "ending";
          i.age_s = double(c.age.count()) / 1000.0;
          for (int k = 0; k < 2; ++k) {
            i.legs[k].side = c.leg[k].side == veil::sip::kExternal ? "external" : "internal";
            i.legs[k].call_id = c.leg[k].call_id;
            i.legs[k].from = c.from_user;
            i.legs[k].to = c.to_user;
            i.legs[k].established = c.leg[k].established;
          }
          i.streams = c.streams;
          out.push_back(std::move(i));
        }
        return out;
      });
      api.set_call_end([&sip](uint64_t id, const std::string& reason) {
        return sip.b2bua->end_call(id, reason);
      });
      api.set_registrations([&sip] {
        std::vector<veil::ctl::RegistrationInfo> out;
        for (const auto& b : sip.b2bua->registrations()) {
          veil::ctl::RegistrationInfo i;
          i.aor = b.aor;
          i.contact = b.contact;
          i.client_contact = b.client_contact;
          i.source = b.source.valid() ? b.source.str() : "-";
          i.transport = b.transport == veil::sip::Transport::Tcp ? "tcp" : "udp";
          i.state = b.active ? (b.pending ? "refreshing" : "registered") : "pending";
          i.expires_s = double(b.expires_in.count());
          i.last_refresh_s = double(b.since_relayed.count()) / 1000.0;
          out.push_back(std::move(i));
        }
        return out;
      });
    } else {
      log("info", "SIP disabled ([sip] enabled = false)");
    }

    int epfd = epoll_create1(EPOLL_CLOEXEC);
    int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = sfd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev);
    ev.data.fd = server.listen_fd();
    epoll_ctl(epfd, EPOLL_CTL_ADD, server.listen_fd(), &ev);
    // Prometheus /metrics on [management] metrics (ADDR:PORT), served from this loop's epoll through
    // the management server's dispatch; flows show the media stream (call) they belong to.
    veil::ctl::MetricsServer metrics(api);
    // [management] metrics, or (overriding it, for the lab and tests) $VEIL_METRICS.
    std::string metrics_addr = cfg.management.metrics ? cfg.management.metrics->str() : "";
    if (const char* env = std::getenv("VEIL_METRICS"); env && *env) metrics_addr = env;
    if (const char* maddr = metrics_addr.c_str(); *maddr) {
      if (metrics.listen(maddr, epfd, err)) {
        server.attach(&metrics);
        log("info", std::string("Prometheus metrics on http://") + maddr + "/metrics");
      } else {
        log("warning", err + "; running without /metrics");
      }
    }
    if (sip.anchor) api.set_flow_stream([&sip](uint32_t id) { return sip.anchor->plan_of(id); });
    if (sip.anchor) {
      // WebRTC calls (issue 5): the anchor adds DTLS sessions to the hub and takes its keys.
      sip.anchor->attach_dtls(dtls, *dtls_id);
      webrtc_anchor = sip.anchor.get();
    }
    log("info", "running; management API on " + cfg.management.socket + ", " +
                    std::to_string(dp->workers()) + " worker(s)");

    const uint64_t hz = dp->tsc_hz();
    const uint64_t idle_cycles = hz * cfg.limits.flow_idle_timeout_s;
    uint64_t next_scan = rte_rdtsc() + hz, next_gw = rte_rdtsc() + 30 * hz;
    // With SIP, the su_root waits for everything (its sockets and `epfd`); without it, epfd.
    // Either wait ends after 1 ms at the latest: that bounds neighbour-learning latency.
    const bool sip_waits = sip.b2bua && sip.watch(epfd);
    if (sip.b2bua && !sip_waits) log("warning", "SIP: cannot watch the control loop's fds; SIP is polled every 1 ms");
    bool running = true;
    while (running) {
      epoll_event evs[16];
      int n;
      if (sip_waits) {
        sip.step(1);
        n = epoll_wait(epfd, evs, 16, 0);
      } else {
        n = epoll_wait(epfd, evs, 16, 1);
        sip.step(0);
      }
      for (int i = 0; i < n; ++i) {
        int fd = evs[i].data.fd;
        if (fd == sfd) {
          signalfd_siginfo si;
          while (read(sfd, &si, sizeof si) == sizeof si) {
            if (si.ssi_signo == SIGHUP) {
              log("info", "SIGHUP: configuration reload is not supported yet; restart veild");
            } else {
              log("info", std::string("signal ") + strsignal(int(si.ssi_signo)) + ", stopping");
              running = false;
            }
          }
        } else if (fd == server.listen_fd()) {
          server.on_listen_ready(epfd);
        } else {
          server.on_client_ready(epfd, fd);
        }
      }
      dp->poll_control();
      dp->poll_dtls([&dtls](const veil::dp::DtlsDatagram& d) {
        dtls.on_datagram(d.flow_id, d.remote, d.data, d.len);
      });
      dtls.tick();
      // A browser leg whose DTLS-SRTP failed (e.g. a certificate that does not match its
      // a=fingerprint) can never have media: its call ends on both legs now.
      for (const auto& [flow, why] : dtls_failed) {
        auto plan = sip.anchor ? sip.anchor->plan_of(flow) : std::nullopt;
        if (!plan || !sip.b2bua) continue;
        for (const auto& c : sip.b2bua->calls())
          if (std::find(c.streams.begin(), c.streams.end(), *plan) != c.streams.end() &&
              sip.b2bua->end_call(c.serial, "DTLS-SRTP failed: " + why))
            log("info", "SIP: call " + std::to_string(c.serial) + " ended: DTLS-SRTP failed on flow " +
                            std::to_string(flow));
      }
      dtls_failed.clear();
      uint64_t now = rte_rdtsc();
      if (now >= next_scan) {
        next_scan = now + hz;
        api.sample_ports(now);  // port rates for `veilctl ports`
        auto& reported = api.idle_flows();
        std::vector<uint32_t> idle = dp->flows().idle(now, idle_cycles);
        for (uint32_t id : idle) {
          if (reported.emplace(id, cfg.limits.flow_idle_timeout_s).second)
            log("info", "flow " + std::to_string(id) + " idle for " +
                            std::to_string(cfg.limits.flow_idle_timeout_s) + " s");
        }
        // Media timeout: a call whose RTP went silent in both directions ends on both legs
        // (its flows go with it, through the anchor).
        if (sip.b2bua && !idle.empty()) {
          for (uint32_t plan : sip.anchor->idle_streams(idle))
            if (sip.b2bua->end_call_for_media(
                    plan, "no RTP for " + std::to_string(cfg.limits.flow_idle_timeout_s) + " s",
                    std::chrono::seconds(cfg.limits.flow_idle_timeout_s)))
              log("info", "SIP: media of stream " + std::to_string(plan) + " idle for " +
                              std::to_string(cfg.limits.flow_idle_timeout_s) + " s: call ended");
        }
        // A flow that saw traffic again is no longer idle.
        std::erase_if(reported, [&](const auto& kv) {
          auto s = dp->flows().get(kv.first);
          return !s || (s->counters.last_seen_tsc && now - s->counters.last_seen_tsc < idle_cycles);
        });
      }
      if (now >= next_gw) {
        next_gw = now + 30 * hz;
        dp->resolve_gateways();
      }
    }
    if (sip_waits) sip.unwatch();
    close(sfd);
    close(epfd);
    if (cfg.sip.enabled) {
      webrtc_anchor = nullptr;
      sip.stop(*dp);
      log("info", "SIP stopped");
    }
    api.set_sip_stats({});
    api.set_calls({});
    api.set_call_end({});
    api.set_registrations({});
    dp->stop();
    log("info", "stopped");
  }
  rte_pdump_uninit();
  rte_eal_cleanup();
  return rc;
}
