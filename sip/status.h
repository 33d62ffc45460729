// SIP status codes across the B2BUA: which status one leg's failure becomes on the other
// leg, and the only reason phrases Veil ever sends (the peer's text never crosses).
#pragma once

namespace veil::sip {

// RFC 3261 21 (and later RFCs' registrations) standard reason phrase for `status`; for a
// code without one, the phrase of its class (x00). Never null.
const char* standard_phrase(int status);

// The final status sent on the other leg when an INVITE leg fails with `status`.
// `local` is true when no response came from the peer (sofia's own timeout or transport
// error): the peer is unreachable, which the caller sees as 503.
// 3xx -> 480 (a redirect's Contact names the other side's topology);
// 401/407 -> 403 (the challenge belongs to the other leg; digest pass-through is planned);
// 2xx/1xx never reach here; everything else keeps its code.
int map_failure_status(int status, bool local);

}  // namespace veil::sip
