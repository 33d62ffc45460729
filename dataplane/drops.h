// Every packet the dataplane does not forward or answer is dropped for a named reason.
// The list below is the only place reasons are defined: the enum, the counter array and
// the labels shown by veilctl and the metrics come from it, so they cannot drift apart.
#pragma once

#include <cstdint>

namespace veil::dp {

// X(name, description)
#define VEIL_DROP_REASONS(X)                                                          \
  X(runt, "frame shorter than its headers claim")                                     \
  X(bad_l2, "not addressed to this port's MAC, broadcast or multicast we listen to") \
  X(unknown_ethertype, "neither IPv4, IPv6 nor ARP (VLAN tags are not terminated)")   \
  X(bad_ip, "bad IP version, header length or total length")                          \
  X(ip_options, "IPv4 options or IPv6 extension headers on a media packet")           \
  X(fragment, "IP fragment addressed to a media port")                                \
  X(not_for_us, "IP destination is not one of this port's addresses")                 \
  X(media_no_flow, "UDP to a media port with no flow installed")                      \
  X(src_mismatch, "media from a source other than the signaled or latched one")      \
  X(not_rtp, "payload on a media port is not RTP/RTCP version 2")                    \
  X(no_destination, "the flow's egress endpoint is not known yet")                    \
  X(no_neighbour, "next hop's MAC address not resolved yet (resolution requested)")   \
  X(flow_disabled, "flow installed with action drop")                                 \
  X(punt_policed, "exception-path packet over the per-worker punt rate")             \
  X(punt_source_policed, "exception-path packet over its source's punt rate")       \
  X(punt_full, "exception path (kernel interface) refused the packet")               \
  X(ctl_ring_full, "ring to the control plane full")                                  \
  X(arp_invalid, "ARP that is not Ethernet/IPv4 or not for us")                       \
  X(nd_invalid, "neighbour discovery message failing RFC 4861 validity checks")     \
  X(icmp_unhandled, "ICMP type the SBC does not answer or punt")                      \
  X(tx_full, "transmit queue full")                                                   \
  X(kernel_filtered, "kernel-originated MLD/IGMP/DAD/router solicitation kept off the wire") \
  X(l4_unsupported, "IP protocol other than UDP, TCP, ICMP, ICMPv6 addressed to us")     \
  X(srtp_auth_fail, "SRTP/SRTCP packet whose authentication tag does not verify")         \
  X(srtp_replay, "SRTP/SRTCP packet replayed or older than the replay window")           \
  X(srtp_no_key, "SRTP flow whose keys are not installed yet")                           \
  X(srtp_error, "SRTP/SRTCP packet too short, no room for the tag, SSRC limit or other libsrtp error") \
  X(ice_unvalidated, "media or DTLS on an ICE flow from a source without an authenticated STUN check") \
  X(ice_consent_expired, "media on an ICE flow whose last authenticated check is older than the consent timeout") \
  X(stun_auth_fail, "STUN check with a wrong USERNAME or MESSAGE-INTEGRITY (answered 401, never latched)") \
  X(stun_invalid, "STUN on an ICE flow that is not an answerable Binding request (malformed, bad or no FINGERPRINT, indication, response)") \
  X(dtls_ring_full, "ring handing DTLS records to the control plane full")               \
  X(hairpin_loop, "media relayed to this SBC's own endpoint whose flow relays to its own endpoint again") \
  X(bundle_unknown_pt, "RTP on a BUNDLE 5-tuple whose payload type no m-line of the group has")      \
  X(udp_checksum_bad, "media packet whose UDP checksum the NIC reported bad")

enum class Drop : uint8_t {
#define VEIL_X(name, desc) name,
  VEIL_DROP_REASONS(VEIL_X)
#undef VEIL_X
      count_
};
inline constexpr unsigned kDropCount = unsigned(Drop::count_);

inline constexpr const char* kDropNames[] = {
#define VEIL_X(name, desc) #name,
    VEIL_DROP_REASONS(VEIL_X)
#undef VEIL_X
};
inline constexpr const char* kDropDescriptions[] = {
#define VEIL_X(name, desc) desc,
    VEIL_DROP_REASONS(VEIL_X)
#undef VEIL_X
};

// Packets the dataplane handled without dropping, by what it did with them.
#define VEIL_EVENT_COUNTERS(X)                                            \
  X(rx, "packets received on NIC ports")                                  \
  X(tx, "packets transmitted on NIC ports")                               \
  X(relayed, "media packets relayed through a flow")                      \
  X(latched, "flows whose remote endpoint was learned or re-learned")     \
  X(punted, "packets sent to the control plane's kernel interface")       \
  X(from_kernel, "packets from the kernel interface sent on the wire")   \
  X(arp_replies, "ARP requests for our addresses answered")               \
  X(nd_replies, "neighbour solicitations for our addresses answered")     \
  X(echo_replies, "ICMP/ICMPv6 echo requests answered")                   \
  X(neigh_learned, "ARP/ND messages passed to the control plane")        \
  X(resolve_requests, "next-hop resolutions requested from the control plane") \
  X(stun_answered, "ICE connectivity checks answered with a Binding success response") \
  X(stun_errors, "STUN Binding requests answered with an error response (400, 401, 420, 487)") \
  X(dtls_to_control, "DTLS records handed to the control plane")                 \
  X(hairpinned, "media packets whose destination was one of this SBC's own media endpoints, relayed again inside the dataplane") \
  X(relay_slow, "media packets that took the relay's slow path (a flow's first packets, after a change, and ICE, BUNDLE, IPv6 or captured flows)")

enum class Event : uint8_t {
#define VEIL_X(name, desc) name,
  VEIL_EVENT_COUNTERS(VEIL_X)
#undef VEIL_X
      count_
};
inline constexpr unsigned kEventCount = unsigned(Event::count_);
inline constexpr const char* kEventNames[] = {
#define VEIL_X(name, desc) #name,
    VEIL_EVENT_COUNTERS(VEIL_X)
#undef VEIL_X
};
inline constexpr const char* kEventDescriptions[] = {
#define VEIL_X(name, desc) desc,
    VEIL_EVENT_COUNTERS(VEIL_X)
#undef VEIL_X
};

}  // namespace veil::dp
