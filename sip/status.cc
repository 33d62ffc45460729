#include "sip/status.h"

#include <sofia-sip/sip_status.h>

namespace veil::sip {

const char* standard_phrase(int status) {
  if (const char* p = sip_status_phrase(status); p && *p) return p;
  switch (status / 100) {
    case 1: return "Trying";
    case 2: return "OK";
    case 3: return "Multiple Choices";
    case 4: return "Bad Request";
    case 5: return "Server Internal Error";
    case 6: return "Busy Everywhere";
    default: return "Server Internal Error";
  }
}

int map_failure_status(int status, bool local) {
  if (local) return 503;
  if (status < 300 || status > 699) return 500;
  if (status < 400) return 480;
  if (status == 401 || status == 407) return 403;
  return status;
}

}  // namespace veil::sip
