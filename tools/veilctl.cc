// veilctl: the operator's CLI, a thin client of veild's management API (controlplane/mgmt.h).
// Every command is one API request; the daemon renders the answer (text or --json), so the
// CLI and scripts see the same data.
//
// Exit codes: 0 ok; 1 the daemon refused the request (unknown flow, bad argument);
// 2 usage error; 3 veild not running (no socket); 4 permission denied on the socket.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr const char* kDefaultSocket = "/run/veil/veil.sock";

void usage(FILE* to) {
  std::fprintf(to,
      "usage: veilctl [-s SOCKET] [--json] COMMAND [key=value ...]\n"
      "\n"
      "read-only:\n"
      "  version                     daemon and API version\n"
      "  stats                       totals: flows, events, drops\n"
      "  drops                       every named drop counter with its description\n"
      "  ports                       ports, link, addresses, NIC counters\n"
      "  neighbours                  learned next hops (ARP/ND)\n"
      "  flows [limit=N]             media flows with endpoints and counters\n"
      "  flow id=N                   one flow in detail (latching, SSRC, drops by reason)\n"
      "actions:\n"
      "  flow-add id=N port=P local=A:P [remote=A:P] [latch=latch|strict]\n"
      "           egress-port=P egress-local=A:P [egress-remote=A:P] [peer=N]\n"
      "           [rtp-check=yes|no] [disabled=yes|no]\n"
      "  flow-update (same arguments; id and local must match an installed flow)\n"
      "  flow-del id=N\n"
      "\n"
      "options: -s, --socket PATH (default %s, or $VEIL_SOCKET); --json\n"
      "exit codes: 0 ok, 1 request refused, 2 usage, 3 veild not running, 4 permission denied\n",
      kDefaultSocket);
}

}  // namespace

int main(int argc, char** argv) {
  std::string sock = std::getenv("VEIL_SOCKET") ? std::getenv("VEIL_SOCKET") : kDefaultSocket;
  bool json = false;
  std::vector<std::string> words;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "-s" || a == "--socket") {
      if (++i >= argc) {
        usage(stderr);
        return 2;
      }
      sock = argv[i];
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
  // "veilctl flow 7" is "flow id=7".
  if ((words[0] == "flow" || words[0] == "flow-del") && words.size() == 2 &&
      words[1].find('=') == std::string::npos)
    words[1] = "id=" + words[1];

  std::string req = "VEIL/1";
  for (const auto& w : words) req += " " + w;
  req += json ? " format=json\n" : " format=text\n";

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (sock.size() >= sizeof sa.sun_path) {
    std::fprintf(stderr, "veilctl: socket path too long\n");
    return 2;
  }
  std::memcpy(sa.sun_path, sock.c_str(), sock.size());
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    int e = errno;
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
  int status = -1;
  char msg[1024] = "";
  if (std::sscanf(head.c_str(), "VEIL/1 %d %1023[^\n]", &status, msg) < 1) {
    std::fprintf(stderr, "veilctl: unexpected answer: %s\n", head.c_str());
    return 3;
  }
  if (status != 0) {
    std::fprintf(stderr, "veilctl: %s\n", msg);
    return status == EOPNOTSUPP ? 2 : 1;  // unknown command: a usage error
  }
  std::fwrite(resp.data() + nl + 1, 1, resp.size() - nl - 1, stdout);
  return 0;
}
