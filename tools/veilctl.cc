// veilctl: the operator's CLI, a thin client of veild's management API (controlplane/mgmt.h).
// Every command is one API request; the daemon renders the answer (text or --json), so the
// CLI and scripts see the same data.
//
// Exit codes: 0 ok; 1 the daemon refused the request (unknown flow, bad argument) or the
// operator declined a confirmation; 2 usage error (also: an action without --yes and no
// terminal to confirm on); 3 veild not running (no socket); 4 permission denied on the socket.
//
// Two commands are more than one request: `top` samples `ports` and `flows` every second and
// shows rates (packets/s) computed here; `capture` arms a capture, drains it into a pcap file
// (capture-read every 20 ms) and stops it.
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

constexpr const char* kDefaultSocket = "/run/veil/veil.sock";

void usage(FILE* to) {
  std::fprintf(to,
      "usage: veilctl [-s SOCKET] [--json] [--yes] COMMAND [key=value ...]\n"
      "\n"
      "read-only:\n"
      "  version                     daemon and API version\n"
      "  stats                       totals: flows, calls, events, drops, SIP counters\n"
      "  drops                       every named drop counter with its description\n"
      "  ports [--all]               ports: link, addresses, NIC counters, rates over the\n"
      "                              last second, DPDK xstats (non-zero ones; --all: all)\n"
      "  neighbours                  learned next hops (ARP/ND)\n"
      "  flows [call=N] [address=IP] [port=NUM|NAME] [side=external|internal]\n"
      "        [state=latched|waiting|strict|idle] [sort=packets|bytes|drops|age|lost|jitter]\n"
      "        [limit=N] [after=ID]\n"
      "                              media flows with endpoints and counters (filters AND;\n"
      "                              sort is descending; without sort, by id: after=ID\n"
      "                              pages on from the last id shown)\n"
      "  flow ID                     one flow in detail: latching, SSRC/sequence/timestamp,\n"
      "                              RFC 3550 loss and jitter, drops by reason\n"
      "  calls                       calls of the B2BUA: both legs' Call-IDs, users, state\n"
      "  dtls                        DTLS-SRTP: the certificate's fingerprint, sessions, state\n"
      "  call ID                     one call: both legs and its media flows with counters\n"
      "  registrations [aor=USER]    registered clients: AOR, where from, their Contact and\n"
      "                              Veil's toward the PBX, expiry, last refresh\n"
      "  top [--once]                live view: busiest flows by packets/s, port rates\n"
      "                              (q or Ctrl-C quits; --once prints one frame; --json\n"
      "                              prints one frame as JSON)\n"
      "  capture FLOW|PORT -w FILE [--count N] [--timeout S] [dir=in|out|both] [snaplen=N]\n"
      "                              the next N packets (default 100) of a flow (by id) or a\n"
      "                              port (by name) as received (in, default) and/or as sent\n"
      "                              (out), written as pcap (-w - for stdout); Ctrl-C stops\n"
      "                              early, keeping what was written\n"
      "actions (ask for confirmation on a terminal unless --yes):\n"
      "  flow-add id=N port=P local=A:P [remote=A:P] [latch=latch|strict]\n"
      "           egress-port=P egress-local=A:P [egress-remote=A:P] [peer=N]\n"
      "           [rtp-check=yes|no] [disabled=yes|no] [clock-rate=HZ]\n"
      "           [srtp-in=PROFILE:HEX|PROFILE:pending|none] [srtp-out=...]\n"
      "           [ice-ufrag=U ice-pwd=P [ice-remote-ufrag=R]] [ice-consent-from-peer=yes|no]\n"
      "           [dtls=yes|no]   (ICE-lite and DTLS: docs/architecture.md)\n"
      "           [bundle-of=N bundle-pts=96-100,111] [dst-from-peer=yes|no]   (BUNDLE)\n"
      "  dtls-add flow=N setup=PEER_SETUP [hash=sha-256] fingerprint=AB:CD:...\n"
      "                              DTLS-SRTP on flow N against the peer's a=setup/a=fingerprint\n"
      "  dtls-del flow=N             forget a DTLS-SRTP session\n"
      "  flow-update (same arguments; id and local must match an installed flow)\n"
      "  flow-del ID                 remove a flow\n"
      "  call-end ID                 end a call (BYE/CANCEL on both legs, flows removed)\n"
      "\n"
      "options: -s, --socket PATH (default %s, or $VEIL_SOCKET); --json;\n"
      "         -y, --yes (no confirmation); --once (top); --all (ports); -w FILE, -c/--count N,\n"
      "         --timeout SECONDS (capture; default 0: wait until N packets)\n"
      "exit codes: 0 ok, 1 request refused or declined (capture: stopped before N packets),\n"
      "            2 usage (or an action without --yes and no terminal), 3 veild not\n"
      "            running, 4 permission denied\n",
      kDefaultSocket);
}

struct Answer {
  int status = -1;
  std::string message, body;
};

// One request. Returns 0, or the exit code for a connection problem (message printed).
int request(const std::string& sock, const std::vector<std::string>& words, bool json, Answer& a) {
  std::string req = "VEIL/1";
  for (const auto& w : words) req += " " + w;
  req += json ? " format=json\n" : " format=text\n";
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (sock.size() >= sizeof sa.sun_path) {
    std::fprintf(stderr, "veilctl: socket path too long\n");
    return 2;
  }
  std::memcpy(sa.sun_path, sock.c_str(), sock.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    int e = errno;
    close(fd);
    if (e == EACCES || e == EPERM) {
      std::fprintf(stderr, "veilctl: permission denied on %s (run as root or as a member of the socket's group)\n",
                   sock.c_str());
      return 4;
    }
    std::fprintf(stderr, "veilctl: veild is not running (cannot connect to %s: %s)\n", sock.c_str(),
                 std::strerror(e));
    return 3;
  }
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (write(fd, req.data(), req.size()) != ssize_t(req.size())) {
    std::fprintf(stderr, "veilctl: cannot send request: %s\n", std::strerror(errno));
    close(fd);
    return 3;
  }
  std::string resp;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) resp.append(buf, size_t(n));
  close(fd);
  auto nl = resp.find('\n');
  if (nl == std::string::npos) {
    std::fprintf(stderr, "veilctl: no answer from veild\n");
    return 3;
  }
  // "VEIL/1 <status> <message>"
  std::string head = resp.substr(0, nl);
  char msg[1024] = "";
  if (std::sscanf(head.c_str(), "VEIL/1 %d %1023[^\n]", &a.status, msg) < 1) {
    std::fprintf(stderr, "veilctl: unexpected answer: %s\n", head.c_str());
    return 3;
  }
  a.message = msg;
  a.body = resp.substr(nl + 1);
  return 0;
}

// Just enough JSON for the API's answers: values become strings (numbers as written, true
// and false as "true"/"false"); nested arrays and objects inside a row are skipped.
using Row = std::map<std::string, std::string>;

struct Json {
  const std::string& s;
  size_t i = 0;
  void ws() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  std::string str() {
    std::string o;
    ++i;  // opening quote
    while (i < s.size() && s[i] != '"') {
      if (s[i] == '\\' && i + 1 < s.size()) {
        ++i;
        char c = s[i];
        o += c == 'n' ? '\n' : c == 't' ? '\t' : c;
        if (c == 'u') i += 4;
      } else {
        o += s[i];
      }
      ++i;
    }
    ++i;
    return o;
  }
  // A scalar as a string; a nested array/object is skipped (returns "").
  std::string value() {
    ws();
    if (i >= s.size()) return "";
    if (s[i] == '"') return str();
    if (s[i] == '{' || s[i] == '[') {
      int depth = 0;
      bool in_str = false;
      for (; i < s.size(); ++i) {
        char c = s[i];
        if (in_str) {
          if (c == '\\') ++i;
          else if (c == '"') in_str = false;
        } else if (c == '"') {
          in_str = true;
        } else if (c == '{' || c == '[') {
          ++depth;
        } else if ((c == '}' || c == ']') && --depth == 0) {
          ++i;
          break;
        }
      }
      return "";
    }
    size_t j = i;
    while (j < s.size() && s[j] != ',' && s[j] != '}' && s[j] != ']' && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    std::string o = s.substr(i, j - i);
    i = j;
    return o;
  }
  Row object() {
    Row r;
    ws();
    if (i >= s.size() || s[i] != '{') return r;
    ++i;
    for (;;) {
      ws();
      if (i >= s.size() || s[i] == '}') {
        ++i;
        return r;
      }
      if (s[i] == ',') {
        ++i;
        continue;
      }
      std::string k = str();
      ws();
      ++i;  // ':'
      r[k] = value();
    }
  }
  std::vector<Row> array() {
    std::vector<Row> out;
    ws();
    if (i >= s.size() || s[i] != '[') return out;
    ++i;
    for (;;) {
      ws();
      if (i >= s.size() || s[i] == ']') return out;
      if (s[i] == ',') {
        ++i;
        continue;
      }
      out.push_back(object());
    }
  }
};

std::vector<Row> parse_rows(const std::string& body) { return Json{body}.array(); }
Row parse_row(const std::string& body) { return Json{body}.object(); }

double num(const Row& r, const char* k) {
  auto it = r.find(k);
  return it == r.end() ? 0 : std::strtod(it->second.c_str(), nullptr);
}
std::string field(const Row& r, const char* k) {
  auto it = r.find(k);
  return it == r.end() ? "-" : it->second;
}

// Confirmation of an action on the terminal. Returns -1 to go ahead, else the exit code.
int confirm(const std::string& sock, const std::string& cmd, const std::string& id, bool yes) {
  if (yes) return -1;
  const bool is_flow = cmd == "flow-del";
  if (!isatty(STDIN_FILENO)) {
    std::fprintf(stderr,
                 "veilctl: %s %s %s: refusing without confirmation (no terminal to ask on); "
                 "add --yes to do it\n",
                 cmd.c_str(), id.c_str(), is_flow ? "removes a flow" : "ends a call");
    return 2;
  }
  Answer a;
  if (int rc = request(sock, {is_flow ? "flow" : "call", "id=" + id}, true, a)) return rc;
  if (a.status != 0) {
    std::fprintf(stderr, "veilctl: %s\n", a.message.c_str());
    return 1;
  }
  Row r = parse_row(a.body);
  std::string what;
  if (is_flow)
    what = "remove flow " + id + " (" + field(r, "port") + " " + field(r, "remote") + " -> " +
           field(r, "local") + " => " + field(r, "egress_local") + " -> " + field(r, "egress_dst") + ", " +
           field(r, "packets") + " packets)";
  else
    what = "end call " + id + " (" + field(r, "from") + " -> " + field(r, "to") + ", " + field(r, "state") +
           ", Call-ID " + field(r, "a_leg") + ")";
  std::fprintf(stderr, "%s? [y/N] ", what.c_str());
  std::fflush(stderr);
  char line[64] = "";
  if (!std::fgets(line, sizeof line, stdin) || (line[0] != 'y' && line[0] != 'Y')) {
    std::fprintf(stderr, "veilctl: nothing done\n");
    return 1;
  }
  return -1;
}

// --- top --------------------------------------------------------------------------------

volatile sig_atomic_t g_stop = 0;
void on_sigint(int) { g_stop = 1; }

struct Sample {
  timespec at{};
  std::vector<Row> ports, flows;
  double total_flows = 0;  // installed flows (stats); `flows` holds the busiest of them
};

// The flows top samples: the ones with the most packets in total. A bounded heap on the
// daemon (mgmt.cc, flows sort=packets): a scan of the counters, rows for these only.
constexpr const char* kTopFlows = "limit=1000";

int take(const std::string& sock, Sample& s) {
  Answer a;
  clock_gettime(CLOCK_MONOTONIC, &s.at);
  if (int rc = request(sock, {"ports"}, true, a)) return rc;
  if (a.status != 0) {
    std::fprintf(stderr, "veilctl: %s\n", a.message.c_str());
    return 1;
  }
  s.ports = parse_rows(a.body);
  if (int rc = request(sock, {"flows", "sort=packets", kTopFlows}, true, a)) return rc;
  if (a.status != 0) {
    std::fprintf(stderr, "veilctl: %s\n", a.message.c_str());
    return 1;
  }
  s.flows = parse_rows(a.body);
  if (int rc = request(sock, {"stats"}, true, a)) return rc;
  s.total_flows = a.status == 0 ? num(parse_row(a.body), "flows") : double(s.flows.size());
  return 0;
}

std::string table(const std::vector<std::vector<std::string>>& rows, const char* eol) {
  std::vector<size_t> w;
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) {
      if (w.size() <= c) w.push_back(0);
      w[c] = std::max(w[c], r[c].size());
    }
  std::string o;
  for (const auto& r : rows) {
    for (size_t c = 0; c < r.size(); ++c) {
      o += r[c];
      if (c + 1 < r.size()) o += std::string(w[c] - r[c].size() + 2, ' ');
    }
    o += eol;  // live: "\x1b[K\n" erases what a longer previous frame left on the line
  }
  return o;
}

std::string fmt(const char* f, double v) {
  char b[32];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string frame(const Sample& prev, const Sample& cur, size_t max_flows, bool live) {
  const std::string eol = live ? "\x1b[K\n" : "\n";
  double dt = double(cur.at.tv_sec - prev.at.tv_sec) + double(cur.at.tv_nsec - prev.at.tv_nsec) / 1e9;
  if (dt <= 0) dt = 1;
  std::map<std::string, const Row*> before;
  for (const auto& r : prev.ports) before["p" + field(r, "name")] = &r;
  for (const auto& r : prev.flows) before["f" + field(r, "id")] = &r;
  auto rate = [&](const std::string& key, const Row& r, const char* k) {
    auto it = before.find(key);
    double d = num(r, k) - (it == before.end() ? 0 : num(*it->second, k));
    return it == before.end() || d < 0 ? 0.0 : d / dt;
  };
  time_t now = time(nullptr);
  tm tm;
  gmtime_r(&now, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%SZ", &tm);
  std::string o = std::string("veil top  ") + ts + "  " + fmt("%.0f", cur.total_flows) +
                  " flow(s)  interval " + fmt("%.1f", dt) + " s" + (live ? "  (q quits)" : "") + eol + eol;
  std::vector<std::vector<std::string>> pt{{"PORT", "ROLE", "LINK", "RX PPS", "TX PPS", "RX MISSED/S", "RX TOTAL", "TX TOTAL"}};
  for (const auto& r : cur.ports) {
    std::string key = "p" + field(r, "name");
    pt.push_back({field(r, "name"), field(r, "role"), field(r, "link"), fmt("%.0f", rate(key, r, "rx_packets")),
                  fmt("%.0f", rate(key, r, "tx_packets")), fmt("%.0f", rate(key, r, "rx_missed")),
                  field(r, "rx_packets"), field(r, "tx_packets")});
  }
  o += table(pt, eol.c_str()) + eol;
  struct F {
    const Row* r;
    double pps, bps, dps;
  };
  std::vector<F> fl;
  for (const auto& r : cur.flows) {
    std::string key = "f" + field(r, "id");
    fl.push_back({&r, rate(key, r, "packets"), rate(key, r, "bytes") * 8, rate(key, r, "drops")});
  }
  std::stable_sort(fl.begin(), fl.end(), [](const F& a, const F& b) { return a.pps > b.pps; });
  std::vector<std::vector<std::string>> ft{{"FLOW", "PORT", "REMOTE", "LOCAL", "EGRESS DST", "LATCH", "PPS", "KBIT/S", "DROPS/S", "PACKETS"}};
  for (size_t k = 0; k < fl.size() && k < max_flows; ++k) {
    const Row& r = *fl[k].r;
    ft.push_back({field(r, "id"), field(r, "port"), field(r, "remote"), field(r, "local"), field(r, "egress_dst"),
                  field(r, "latch"), fmt("%.0f", fl[k].pps), fmt("%.1f", fl[k].bps / 1000), fmt("%.0f", fl[k].dps),
                  field(r, "packets")});
  }
  o += table(ft, eol.c_str());
  if (cur.total_flows > double(std::min(fl.size(), max_flows)))
    o += "(" + fmt("%.0f", cur.total_flows - double(std::min(fl.size(), max_flows))) + " more)" + eol;
  return o;
}

std::string jstr(const std::string& v) {
  std::string o = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}

// top --json: one frame (two samples 1 s apart) as JSON: the rates top shows.
std::string frame_json(const Sample& prev, const Sample& cur) {
  double dt = double(cur.at.tv_sec - prev.at.tv_sec) + double(cur.at.tv_nsec - prev.at.tv_nsec) / 1e9;
  if (dt <= 0) dt = 1;
  std::map<std::string, const Row*> before;
  for (const auto& r : prev.ports) before["p" + field(r, "name")] = &r;
  for (const auto& r : prev.flows) before["f" + field(r, "id")] = &r;
  auto rate = [&](const std::string& key, const Row& r, const char* k) {
    auto it = before.find(key);
    double d = num(r, k) - (it == before.end() ? 0 : num(*it->second, k));
    return it == before.end() || d < 0 ? 0.0 : d / dt;
  };
  std::string o = "{\"interval_s\":" + fmt("%.3f", dt) + ",\"ports\":[";
  for (size_t i = 0; i < cur.ports.size(); ++i) {
    const Row& r = cur.ports[i];
    std::string key = "p" + field(r, "name");
    o += std::string(i ? "," : "") + "{\"name\":" + jstr(field(r, "name")) + ",\"role\":" + jstr(field(r, "role")) +
         ",\"link\":" + jstr(field(r, "link")) + ",\"rx_pps\":" + fmt("%.1f", rate(key, r, "rx_packets")) +
         ",\"tx_pps\":" + fmt("%.1f", rate(key, r, "tx_packets")) +
         ",\"rx_missed_ps\":" + fmt("%.1f", rate(key, r, "rx_missed")) + "}";
  }
  struct F {
    const Row* r;
    double pps, bps, dps;
  };
  std::vector<F> fl;
  for (const auto& r : cur.flows) {
    std::string key = "f" + field(r, "id");
    fl.push_back({&r, rate(key, r, "packets"), rate(key, r, "bytes") * 8, rate(key, r, "drops")});
  }
  std::stable_sort(fl.begin(), fl.end(), [](const F& a, const F& b) { return a.pps > b.pps; });
  o += "],\"flows\":[";
  for (size_t i = 0; i < fl.size(); ++i) {
    const Row& r = *fl[i].r;
    o += std::string(i ? "," : "") + "{\"id\":" + field(r, "id") + ",\"port\":" + jstr(field(r, "port")) +
         ",\"remote\":" + jstr(field(r, "remote")) + ",\"local\":" + jstr(field(r, "local")) +
         ",\"egress_dst\":" + jstr(field(r, "egress_dst")) + ",\"latch\":" + jstr(field(r, "latch")) +
         ",\"pps\":" + fmt("%.1f", fl[i].pps) + ",\"kbps\":" + fmt("%.1f", fl[i].bps / 1000) +
         ",\"drops_ps\":" + fmt("%.1f", fl[i].dps) + ",\"packets\":" + field(r, "packets") + "}";
  }
  return o + "]}\n";
}

int top(const std::string& sock, bool once, bool json) {
  Sample prev, cur;
  if (int rc = take(sock, prev)) return rc;
  if (once || json) {
    timespec d{1, 0};
    nanosleep(&d, nullptr);
    if (int rc = take(sock, cur)) return rc;
    std::fputs(json ? frame_json(prev, cur).c_str() : frame(prev, cur, 1000, false).c_str(), stdout);
    return 0;
  }
  struct sigaction sa{};
  sa.sa_handler = on_sigint;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  termios saved{};
  const bool tty_in = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
  if (tty_in) {
    termios raw = saved;
    raw.c_lflag &= tcflag_t(~(ICANON | ECHO));  // keys one at a time; ISIG stays: Ctrl-C works
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSANOW, &raw);
  }
  std::fputs("\x1b[?25l\x1b[2J", stdout);  // hide the cursor, clear once
  int rc = 0;
  while (!g_stop) {
    pollfd p{STDIN_FILENO, POLLIN, 0};
    int n = poll(&p, tty_in ? 1 : 0, 1000);
    if (n > 0) {
      char c = 0;
      if (read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q')) break;
      continue;  // another key: keep the 1 s cadence roughly
    }
    if (g_stop) break;
    if ((rc = take(sock, cur))) break;
    winsize ws{};
    size_t rows = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 12 ? ws.ws_row : 24;
    std::string o = "\x1b[H" + frame(prev, cur, rows > 9 + cur.ports.size() ? rows - 6 - cur.ports.size() : 3, true) + "\x1b[J";
    std::fputs(o.c_str(), stdout);
    std::fflush(stdout);
    prev = std::move(cur);
    cur = Sample{};
  }
  std::fputs("\x1b[?25h\n", stdout);
  if (tty_in) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  return rc;
}

// --- capture ----------------------------------------------------------------------------

void put32(std::string& o, uint32_t v) { o.append(reinterpret_cast<const char*>(&v), 4); }
void put16(std::string& o, uint16_t v) { o.append(reinterpret_cast<const char*>(&v), 2); }

int hexval(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

// Arms a capture, drains it every 20 ms into a pcap file (nanosecond timestamps, Ethernet),
// stops it. Returns the exit code.
int capture(const std::string& sock, const std::vector<std::string>& words, const std::string& file,
            unsigned long count, double timeout_s, bool json) {
  if (words.size() < 2 || words[1].find('=') != std::string::npos) {
    std::fprintf(stderr, "veilctl: usage: capture FLOW|PORT -w FILE [--count N] [--timeout S] [dir=in|out|both] [snaplen=N]\n");
    return 2;
  }
  if (file.empty()) {
    std::fprintf(stderr, "veilctl: capture needs -w FILE (- for stdout)\n");
    return 2;
  }
  const std::string& target = words[1];
  bool is_flow = !target.empty() && std::all_of(target.begin(), target.end(), [](char c) { return c >= '0' && c <= '9'; });
  std::vector<std::string> start{"capture-start", (is_flow ? "flow=" : "port=") + target,
                                 "count=" + std::to_string(count)};
  for (size_t i = 2; i < words.size(); ++i) start.push_back(words[i]);
  Answer a;
  if (int rc = request(sock, start, true, a)) return rc;
  if (a.status != 0) {
    std::fprintf(stderr, "veilctl: %s\n", a.message.c_str());
    return a.status == EINVAL ? 2 : 1;
  }
  Row started = parse_row(a.body);
  uint32_t snaplen = uint32_t(num(started, "snaplen"));
  FILE* out = file == "-" ? stdout : std::fopen(file.c_str(), "wb");
  if (!out) {
    std::fprintf(stderr, "veilctl: cannot write %s: %s\n", file.c_str(), std::strerror(errno));
    request(sock, {"capture-stop"}, true, a);
    return 1;
  }
  std::string hdr;
  put32(hdr, 0xa1b23c4d);  // pcap, nanosecond timestamps
  put16(hdr, 2);
  put16(hdr, 4);
  put32(hdr, 0);
  put32(hdr, 0);
  put32(hdr, snaplen ? snaplen : 65535);
  put32(hdr, 1);  // LINKTYPE_ETHERNET
  std::fwrite(hdr.data(), 1, hdr.size(), out);
  std::fflush(out);

  struct sigaction sa{};
  sa.sa_handler = on_sigint;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  unsigned long written = 0;
  bool done = false;
  int rc = 0;
  std::string why = "interrupted";
  while (!done) {
    if (g_stop) break;
    if (int e = request(sock, {"capture-read", "max=512"}, true, a)) {
      rc = e;
      why = "lost veild";
      break;
    }
    if (a.status != 0) {
      std::fprintf(stderr, "veilctl: %s\n", a.message.c_str());
      rc = 1;
      why = "capture ended by veild";
      break;
    }
    Row st = parse_row(a.body);
    done = field(st, "state") == "done";
    auto pos = a.body.find("\"packets\":");
    std::vector<Row> pk;
    if (pos != std::string::npos) {
      Json j{a.body, pos + 10};
      pk = j.array();
    }
    for (const Row& p : pk) {
      const std::string& hex = field(p, "data");
      std::string rec;
      long long ts = std::strtoll(field(p, "ts_ns").c_str(), nullptr, 10);
      put32(rec, uint32_t(ts / 1000000000));
      put32(rec, uint32_t(ts % 1000000000));
      put32(rec, uint32_t(hex.size() / 2));
      put32(rec, uint32_t(num(p, "wire_len")));
      for (size_t i = 0; i + 1 < hex.size(); i += 2) rec += char(hexval(hex[i]) << 4 | hexval(hex[i + 1]));
      std::fwrite(rec.data(), 1, rec.size(), out);
      ++written;
    }
    std::fflush(out);
    if (done) break;
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (timeout_s > 0 && double(now.tv_sec - t0.tv_sec) + double(now.tv_nsec - t0.tv_nsec) / 1e9 >= timeout_s) {
      why = "timed out";
      break;
    }
    if (pk.size() < 64) {  // a full answer: read again at once; else let the ring fill a while
      timespec d{0, 20 * 1000000};
      nanosleep(&d, nullptr);
    }
  }
  Answer fin;
  Row last;
  if (request(sock, {"capture-stop"}, true, fin) == 0 && fin.status == 0) last = parse_row(fin.body);
  if (out != stdout) std::fclose(out);
  else std::fflush(out);
  std::string dropped = last.count("dropped") ? field(last, "dropped") : "?";
  if (json && file != "-")
    std::printf("{\"target\":\"%s\",\"file\":\"%s\",\"packets\":%lu,\"requested\":%lu,\"dropped\":%s,\"complete\":%s}\n",
                field(started, "target").c_str(), file.c_str(), written, count, dropped.c_str(), done ? "true" : "false");
  std::fprintf(stderr, "veilctl: %lu packet(s) of %s written to %s (%s dropped by the capture)%s\n", written,
               field(started, "target").c_str(), file == "-" ? "stdout" : file.c_str(), dropped.c_str(),
               done ? "" : ("; " + why + " before " + std::to_string(count)).c_str());
  if (rc) return rc;
  return done ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string sock = std::getenv("VEIL_SOCKET") ? std::getenv("VEIL_SOCKET") : kDefaultSocket;
  bool json = false, yes = false, once = false, all = false;
  std::string wfile;
  unsigned long cap_count = 100;
  double cap_timeout = 0;
  std::vector<std::string> words;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "-y" || a == "--yes") {
      yes = true;
    } else if (a == "--once") {
      once = true;
    } else if (a == "--all") {
      all = true;
    } else if (a == "-s" || a == "--socket") {
      if (++i >= argc) {
        usage(stderr);
        return 2;
      }
      sock = argv[i];
    } else if (a == "-w" || a == "-c" || a == "--count" || a == "--timeout") {
      if (++i >= argc) {
        std::fprintf(stderr, "veilctl: %s needs a value\n", a.c_str());
        return 2;
      }
      char* end = nullptr;
      if (a == "-w") {
        wfile = argv[i];
      } else if (a == "--timeout") {
        cap_timeout = std::strtod(argv[i], &end);
        if (*end || cap_timeout < 0) {
          std::fprintf(stderr, "veilctl: --timeout needs seconds\n");
          return 2;
        }
      } else {
        cap_count = std::strtoul(argv[i], &end, 10);
        if (*end || !cap_count || cap_count > 1000000) {
          std::fprintf(stderr, "veilctl: --count needs a number 1-1000000\n");
          return 2;
        }
      }
    } else if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "veilctl: unknown option %s\n", a.c_str());
      usage(stderr);
      return 2;
    } else {
      if (a.find_first_of(" \t\r\n") != std::string::npos) {
        std::fprintf(stderr, "veilctl: arguments cannot contain spaces: \"%s\"\n", a.c_str());
        return 2;
      }
      words.push_back(a);
    }
  }
  if (words.empty()) {
    usage(stderr);
    return 2;
  }
  const std::string cmd = words[0];
  // "veilctl flow 7" is "flow id=7".
  if ((cmd == "flow" || cmd == "flow-del" || cmd == "call" || cmd == "call-end") && words.size() == 2 &&
      words[1].find('=') == std::string::npos)
    words[1] = "id=" + words[1];

  if (cmd == "top") {
    if (words.size() != 1) {
      std::fprintf(stderr, "veilctl: top takes no arguments\n");
      return 2;
    }
    return top(sock, once, json);
  }
  if (all) {
    if (cmd != "ports") {
      std::fprintf(stderr, "veilctl: --all goes with ports\n");
      return 2;
    }
    words.push_back("xstats=all");
  }
  if (cmd == "capture") return capture(sock, words, wfile, cap_count, cap_timeout, json);
  if (cmd == "flow-del" || cmd == "call-end") {
    if (words.size() != 2 || words[1].rfind("id=", 0) != 0) {
      std::fprintf(stderr, "veilctl: usage: %s ID [--yes]\n", cmd.c_str());
      return 2;
    }
    if (int rc = confirm(sock, cmd, words[1].substr(3), yes); rc >= 0) return rc;
  }

  Answer a;
  if (int rc = request(sock, words, json, a)) return rc;
  if (a.status != 0) {
    std::fprintf(stderr, "veilctl: %s\n", a.message.c_str());
    return a.status == EOPNOTSUPP ? 2 : 1;  // unknown command: a usage error
  }
  std::fwrite(a.body.data(), 1, a.body.size(), stdout);
  return 0;
}
