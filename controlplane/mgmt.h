// The local management API (version 1): a Unix stream socket, one request per connection.
//
//   request:  "VEIL/1 <command> [key=value ...]\n"      (format=json|text selects the body)
//   response: "VEIL/1 <status> <message>\n" then the body; the server then closes.
//
// status is 0 or a positive errno value (ENOENT for an unknown flow, EINVAL for bad
// arguments, EOPNOTSUPP for an unknown command). `veilctl` is a thin client of this; see
// docs/operations.md for every command. Reads (`show`-like commands) never change state.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controlplane/config.h"
#include "controlplane/doc.h"
#include "controlplane/metrics.h"
#include "dataplane/dataplane.h"

namespace veil::ctl {

inline constexpr const char* kApiVersion = "VEIL/1";

struct Request {
  std::string command;
  std::map<std::string, std::string> args;
  bool json = false;
};

struct Response {
  int status = 0;
  std::string message = "ok";
  doc::Value body;
};

// One call of the B2BUA as the API shows it (`calls`, `call id=N`). The B2BUA fills it
// through the callback main.cc installs with Api::set_calls().
struct CallInfo {
  uint64_t id = 0;            // the B2BUA's call serial
  std::string state;          // "ringing", "answered", "ending"
  double age_s = 0;           // since the INVITE arrived
  struct Leg {
    std::string side;         // "external" or "internal"
    std::string call_id;      // the Call-ID of this leg's dialog
    std::string from, to;     // user parts
    bool established = false;
  };
  std::array<Leg, 2> legs;    // [0] the caller's leg, [1] the re-originated leg
  std::vector<uint32_t> streams;  // MediaStreamPlan ids of its m-lines
};

// One registration of the B2BUA (`registrations`), filled through Api::set_registrations().
struct RegistrationInfo {
  std::string aor;
  std::string contact;         // Veil's Contact toward the PBX
  std::string client_contact;  // the client's Contact
  std::string source;          // "203.0.113.10:5060"
  std::string transport;       // "udp", "tcp"
  std::string state;           // "registered", "refreshing", "pending" (first REGISTER at the PBX)
  double expires_s = 0;
  double last_refresh_s = 0;   // since its last REGISTER relayed to the PBX
};

// Bounds of the management-request latency histogram (seconds); +Inf is implied.
inline constexpr std::array<double, 8> kLatencyBuckets{0.00005, 0.0001, 0.00025, 0.0005,
                                                       0.001,   0.0025, 0.01,    0.05};

// RTP reception quality of a flow (RFC 3550 A.3, A.8) from its counters, for `flow ID` and
// /metrics. The clock rate is the flow's (flow-add clock-rate=) or that of its last static
// payload type; without one there is no jitter estimate at all (the worker cannot measure
// arrival times in timestamp units it does not know), only loss.
struct RtpQuality {
  bool has_rtp = false;     // at least one RTP packet of the current SSRC
  uint32_t clock_rate = 0;  // Hz; 0 unknown
  uint64_t received = 0, expected = 0;
  int64_t lost = 0;
  double loss_ratio = 0;    // lost / expected, 0 when none lost (or duplicates)
  double jitter_ts = -1;    // timestamp units; -1 unknown
  double jitter_s = -1;     // seconds; -1 unknown
};
RtpQuality rtp_quality(const dp::FlowSnapshot& s);
// The same from the fields it reads (the flow's clock rate, last payload type, RTP state).
RtpQuality rtp_quality(uint32_t spec_clock_rate, uint8_t last_pt, const dp::RtpStats& r);

// Parses a request line; false with `err` if it is not "VEIL/1 command k=v...".
bool parse_request(const std::string& line, Request& out, std::string& err);

class Api {
 public:
  Api(dp::Dataplane& dp, const config::Config& cfg) : dp_(dp), cfg_(cfg) {}
  Response handle(const Request& req);
  // Flow ids reported idle (the daemon's scan fills it; `flows` shows it).
  std::map<uint32_t, uint64_t>& idle_flows() { return idle_; }
  // The SIP layer, when [sip] is enabled: active calls and its counters for `stats`.
  struct SipStats {
    uint64_t active_calls = 0;
    doc::Value counters;  // an Object of the B2BUA's counters
  };
  void set_sip_stats(std::function<SipStats()> fn) { sip_stats_ = std::move(fn); }
  SipStats sip_stats() const { return sip_stats_ ? sip_stats_() : SipStats{}; }
  bool has_sip() const { return bool(sip_stats_); }
  // Calls of the B2BUA (`calls`, `call`, flows call=N) and ending one (`call-end`); unset,
  // those commands answer ENOSYS. `flow_stream` maps a flow id to its MediaStreamPlan id.
  void set_calls(std::function<std::vector<CallInfo>()> fn) { calls_ = std::move(fn); }
  void set_call_end(std::function<bool(uint64_t, const std::string&)> fn) { call_end_ = std::move(fn); }
  void set_registrations(std::function<std::vector<RegistrationInfo>()> fn) { registrations_ = std::move(fn); }
  bool has_registrations() const { return bool(registrations_); }
  std::vector<RegistrationInfo> registration_list() const {
    return registrations_ ? registrations_() : std::vector<RegistrationInfo>{};
  }
  void set_flow_stream(std::function<std::optional<uint32_t>(uint32_t)> fn) { flow_stream_ = std::move(fn); }
  // DTLS-SRTP sessions (`dtls`, `dtls-add`, `dtls-del`; controlplane/dtls_api.h); unset, ENOSYS.
  void set_dtls(std::function<Response(const Request&)> fn) { dtls_ = std::move(fn); }

  // Request accounting for /metrics: count and latency histogram of handle().
  void record(const std::string& command, double seconds);
  const std::map<std::string, uint64_t>& request_counts() const { return req_count_; }
  const std::array<uint64_t, kLatencyBuckets.size() + 1>& latency_buckets() const { return lat_buckets_; }
  double latency_sum() const { return lat_sum_; }
  uint64_t latency_count() const { return lat_count_; }
  dp::Dataplane& dataplane() { return dp_; }
  // Port rates: the control loop calls this once a second; `ports` shows the rates between
  // the last two samples.
  void sample_ports(uint64_t now_tsc);

 private:
  Response flows(const Request& r);
  Response flow(const Request& r);
  Response flow_add(const Request& r, bool update);
  Response flow_del(const Request& r);
  Response drops();
  Response stats();
  Response ports(const Request& r);
  Response neighbours();
  Response calls(const Request& r);
  Response call(const Request& r);
  Response call_end(const Request& r);
  Response registrations(const Request& r);
  Response capture_start(const Request& r);
  Response capture_read(const Request& r);
  Response capture_stop();
  void capture_disarm();  // stops the workers copying and frees what the ring holds
  doc::Value flow_doc(uint32_t id, bool detail);
  doc::Value call_doc(const CallInfo& c, bool detail);

  dp::Dataplane& dp_;
  const config::Config& cfg_;
  std::map<uint32_t, uint64_t> idle_;  // id -> seconds idle when reported
  std::function<SipStats()> sip_stats_;
  std::function<std::vector<CallInfo>()> calls_;
  std::function<bool(uint64_t, const std::string&)> call_end_;
  std::function<Response(const Request&)> dtls_;
  std::function<std::optional<uint32_t>(uint32_t)> flow_stream_;
  std::function<std::vector<RegistrationInfo>()> registrations_;
  std::map<std::string, uint64_t> req_count_;
  std::array<uint64_t, kLatencyBuckets.size() + 1> lat_buckets_{};
  double lat_sum_ = 0;
  uint64_t lat_count_ = 0;
  // veilctl capture: one capture at a time. A capture nobody has read for kCaptureIdle is
  // abandoned (its veilctl died) and the next capture-start may take over.
  struct CaptureSession {
    bool active = false;
    std::string target;           // "flow 10", "port ext0"
    uint64_t count = 0;
    uint64_t base_tsc = 0;        // TSC and wall clock at arming: timestamps of the packets
    int64_t base_ns = 0;
    uint64_t delivered = 0;
    std::chrono::steady_clock::time_point touched;
  } cap_;
  static constexpr std::chrono::seconds kCaptureIdle{10};
  struct PortSample {
    uint64_t tsc = 0;
    uint64_t rx_packets = 0, tx_packets = 0, rx_bytes = 0, tx_bytes = 0, rx_missed = 0;
  };
  std::vector<std::array<PortSample, 2>> port_samples_;  // per port: [previous, latest]
};


// The socket side: listens, accepts, reads one line, answers, closes. Registered in the
// daemon's epoll loop; never blocks the control thread for more than a write timeout.
class Server {
 public:
  explicit Server(Api& api) : api_(api) {}
  ~Server();
  bool listen(const std::string& path, std::string& err);
  int listen_fd() const { return lfd_; }
  // Called when listen_fd or a client fd is readable.
  void on_listen_ready(int epfd);
  void on_client_ready(int epfd, int fd);
  bool is_client(int fd) const { return clients_.count(fd) != 0; }
  // Descriptors of the /metrics server ride on this server's dispatch: on_client_ready()
  // hands them over, so the control loop needs no branch of its own.
  void attach(MetricsServer* m) { metrics_ = m; }

 private:
  Api& api_;
  int lfd_ = -1;
  std::string path_;
  std::map<int, std::string> clients_;  // fd -> bytes read so far
  MetricsServer* metrics_ = nullptr;
};

}  // namespace veil::ctl
