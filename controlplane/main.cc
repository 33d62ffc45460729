// veild: the Veil daemon. Reads and validates the configuration (exit 2 on any error,
// before EAL starts or a port is touched), brings up EAL and the dataplane, launches the
// workers, then runs the control loop on the main lcore: management API, neighbour
// learning and resolution, RCU reclamation, idle-flow reports.
#include <getopt.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "controlplane/config.h"
#include "controlplane/mgmt.h"
#include "dataplane/dataplane.h"
#include "dataplane/srtp_lib.h"

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

    int epfd = epoll_create1(EPOLL_CLOEXEC);
    int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = sfd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev);
    ev.data.fd = server.listen_fd();
    epoll_ctl(epfd, EPOLL_CTL_ADD, server.listen_fd(), &ev);
    log("info", "running; management API on " + cfg.management.socket + ", " +
                    std::to_string(dp->workers()) + " worker(s)");

    const uint64_t hz = dp->tsc_hz();
    const uint64_t idle_cycles = hz * cfg.limits.flow_idle_timeout_s;
    uint64_t next_scan = rte_rdtsc() + hz, next_gw = rte_rdtsc() + 30 * hz;
    bool running = true;
    while (running) {
      epoll_event evs[16];
      int n = epoll_wait(epfd, evs, 16, 1);  // 1 ms: bounds neighbour-learning latency
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
      uint64_t now = rte_rdtsc();
      if (now >= next_scan) {
        next_scan = now + hz;
        auto& reported = api.idle_flows();
        for (uint32_t id : dp->flows().idle(now, idle_cycles)) {
          if (reported.emplace(id, cfg.limits.flow_idle_timeout_s).second)
            log("info", "flow " + std::to_string(id) + " idle for " +
                            std::to_string(cfg.limits.flow_idle_timeout_s) + " s");
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
    close(sfd);
    close(epfd);
    dp->stop();
    log("info", "stopped");
  }
  rte_eal_cleanup();
  return rc;
}
