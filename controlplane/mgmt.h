// The local management API (version 1): a Unix stream socket, one request per connection.
//
//   request:  "VEIL/1 <command> [key=value ...]\n"      (format=json|text selects the body)
//   response: "VEIL/1 <status> <message>\n" then the body; the server then closes.
//
// status is 0 or a positive errno value (ENOENT for an unknown flow, EINVAL for bad
// arguments, EOPNOTSUPP for an unknown command). `veilctl` is a thin client of this; see
// docs/operations.md for every command. Reads (`show`-like commands) never change state.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "controlplane/config.h"
#include "controlplane/doc.h"
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

 private:
  Response flows(const Request& r);
  Response flow(const Request& r);
  Response flow_add(const Request& r, bool update);
  Response flow_del(const Request& r);
  Response drops();
  Response stats();
  Response ports();
  Response neighbours();
  doc::Value flow_doc(uint32_t id, bool detail);

  dp::Dataplane& dp_;
  const config::Config& cfg_;
  std::map<uint32_t, uint64_t> idle_;  // id -> seconds idle when reported
  std::function<SipStats()> sip_stats_;
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

 private:
  Api& api_;
  int lfd_ = -1;
  std::string path_;
  std::map<int, std::string> clients_;  // fd -> bytes read so far
};

}  // namespace veil::ctl
