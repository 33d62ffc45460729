// Fuzz target for SIP messages from peers as sofia-sip's parser takes them (both of Veil's
// user agents run it on every datagram and stream): msg_make() with the SIP message class,
// then every header printed back, and Veil's own SDP inspection of the body. Nothing may
// crash, hang or allocate without bound (the driver mutates an INVITE line by line; its
// SDP is fuzzed on its own by fuzz_sdp).
#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_alloc.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "sip/sdp_rewrite.h"

unsigned long g_fuzz_reached[4];

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (const char* last = std::getenv("VEIL_FUZZ_LAST")) {
    if (FILE* f = std::fopen(last, "wb")) {
      std::fwrite(data, 1, size, f);
      std::fclose(f);
    }
  }
  ++g_fuzz_reached[0];
  msg_t* msg = msg_make(sip_default_mclass(), 0, data, isize_t(size));
  sip_t* sip = msg ? sip_object(msg) : nullptr;
  if (!sip || sip->sip_error || !sip->sip_call_id) {
    ++g_fuzz_reached[3];  // refused: sofia answers 400 or drops it (malformed_dropped)
    if (msg) msg_destroy(msg);
    return 0;
  }
  ++g_fuzz_reached[1];
  su_home_t home[1] = {SU_HOME_INIT(home)};
  for (msg_header_t* h = reinterpret_cast<msg_header_t*>(sip->sip_request ? (void*)sip->sip_request
                                                                           : (void*)sip->sip_status);
       h; h = h->sh_succ)
    (void)sip_header_as_string(home, reinterpret_cast<sip_header_t*>(h));
  su_home_deinit(home);
  if (sip->sip_payload && sip->sip_payload->pl_data)
    (void)veil::sip::inspect_sdp(std::string(sip->sip_payload->pl_data, sip->sip_payload->pl_len));
  msg_destroy(msg);
  return 0;
}
