// The management API's DTLS-SRTP commands, over veild's DtlsHub:
//   dtls                          the instance certificate's fingerprint and every session
//   dtls-add flow=N setup=active|passive|actpass hash=sha-256 fingerprint=AB:CD:...
//                                 expect DTLS on flow N (the flow receiving the peer's records;
//                                 `setup` is the *peer's* a=setup, Veil takes the other role)
//   dtls-del flow=N               forget a session
// Keys never leave the daemon through the API: only the profile and the state are shown.
#pragma once

#include "controlplane/dtls_srtp.h"
#include "controlplane/mgmt.h"

namespace veil::ctl {

Response dtls_command(DtlsHub& hub, const DtlsIdentity& id, dp::Dataplane& dp, const Request& r);

}  // namespace veil::ctl
