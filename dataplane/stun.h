// STUN (RFC 8489, RFC 5389) for ICE-lite (RFC 8445): parsing and validation of messages,
// MESSAGE-INTEGRITY (HMAC-SHA1) and FINGERPRINT (CRC-32), and a writer that builds messages
// in place in a caller's buffer. Nothing here allocates, locks or makes a system call: the
// worker answers connectivity checks with it on the packet path. No EAL either: unit tests
// run it on byte buffers (RFC 5769's vectors).
//
// HMAC-SHA1 uses a key prepared once (HmacKey: the SHA-1 states after the inner and outer
// pads, RFC 2104 section 4's precomputation), so a check costs four SHA-1 compressions and
// no allocation. OpenSSL 3's one-shot HMAC() fetches a provider and allocates contexts on
// every call; the comparison is in docs/architecture.md ("ICE-lite").
#pragma once

#include <openssl/sha.h>

#include <cstdint>
#include <span>
#include <string_view>

#include "dataplane/addr.h"
#include "dataplane/packet.h"

namespace veil::dp::stun {

inline constexpr uint32_t kMagicCookie = 0x2112A442;
inline constexpr uint32_t kFingerprintXor = 0x5354554e;
inline constexpr uint16_t kHeaderLen = 20;

// Message types (method 0x001 Binding, RFC 8489 5 and 18.2).
inline constexpr uint16_t kBindingRequest = 0x0001;
inline constexpr uint16_t kBindingIndication = 0x0011;
inline constexpr uint16_t kBindingSuccess = 0x0101;
inline constexpr uint16_t kBindingError = 0x0111;

// Attribute types (RFC 8489 18.3, RFC 8445 16.1).
enum : uint16_t {
  kAttrMappedAddress = 0x0001,
  kAttrUsername = 0x0006,
  kAttrMessageIntegrity = 0x0008,
  kAttrErrorCode = 0x0009,
  kAttrUnknownAttributes = 0x000A,
  kAttrRealm = 0x0014,
  kAttrNonce = 0x0015,
  kAttrMessageIntegritySha256 = 0x001C,
  kAttrPasswordAlgorithm = 0x001D,
  kAttrUserhash = 0x001E,
  kAttrXorMappedAddress = 0x0020,
  kAttrPriority = 0x0024,
  kAttrUseCandidate = 0x0025,
  kAttrPasswordAlgorithms = 0x8002,
  kAttrAlternateDomain = 0x8003,
  kAttrSoftware = 0x8022,
  kAttrAlternateServer = 0x8023,
  kAttrFingerprint = 0x8028,
  kAttrIceControlled = 0x8029,
  kAttrIceControlling = 0x802A,
};

// A parsed message. Offsets count from the first byte of the STUN header; 0 means absent
// (no attribute can start inside the 20-byte header). Only the first occurrence of an
// attribute counts; attributes after MESSAGE-INTEGRITY other than FINGERPRINT are ignored
// (RFC 8489 14.5), nothing may follow FINGERPRINT.
struct Message {
  uint16_t type = 0;
  uint16_t length = 0;       // from the header: bytes after the header
  const uint8_t* txid = nullptr;  // 12 bytes
  uint16_t username_off = 0;  // value offset
  uint16_t username_len = 0;
  uint16_t mi_off = 0;        // MESSAGE-INTEGRITY attribute (header) offset
  uint16_t fp_off = 0;        // FINGERPRINT attribute (header) offset
  uint16_t xor_mapped_off = 0;  // XOR-MAPPED-ADDRESS value offset
  uint16_t xor_mapped_len = 0;
  uint16_t error_code = 0;    // 300..699 when ERROR-CODE is present
  uint32_t priority = 0;
  uint64_t tiebreaker = 0;
  bool has_priority = false;
  bool use_candidate = false;
  bool ice_controlling = false;
  bool ice_controlled = false;
  // Comprehension-required attributes (type < 0x8000) this codec does not know, for 420.
  uint8_t n_unknown = 0;
  uint16_t unknown[4] = {};

  uint16_t method() const { return uint16_t((type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2)); }
  uint16_t cls() const { return uint16_t(((type & 0x0100) >> 7) | ((type & 0x0010) >> 4)); }
  std::string_view username(const uint8_t* msg) const {
    return {reinterpret_cast<const char*>(msg + username_off), username_len};
  }
};

enum class ParseResult : uint8_t {
  Ok,
  NotStun,         // first two bits not 00, no magic cookie, or length not a multiple of 4
  Malformed,       // attribute runs past the message, bad attribute length, data after FINGERPRINT
  BadFingerprint,  // FINGERPRINT present and wrong
};

// RFC 7983: the first byte of a STUN message is 0..3.
inline bool looks_like_stun(const uint8_t* p, uint32_t len) {
  return len >= kHeaderLen && p[0] < 4 && p[4] == 0x21 && p[5] == 0x12 && p[6] == 0xa4 &&
         p[7] == 0x42;
}

// Parses `len` bytes (a UDP payload). The message must fill the payload exactly
// (header length + 20 == len). FINGERPRINT, when present, is verified.
ParseResult parse(const uint8_t* msg, uint32_t len, Message& out);

// CRC-32 (ISO-HDLC, as in RFC 1952) of `len` bytes.
uint32_t crc32(const uint8_t* p, size_t len);

// An HMAC-SHA1 key prepared once: SHA-1 states after absorbing key^ipad and key^opad.
struct HmacKey {
  SHA_CTX inner;
  SHA_CTX outer;
  bool valid = false;
};
// Short-term credential: the key is the password itself (RFC 8489 9.1.1; SASLprep/OpaqueString
// leaves the ASCII passwords ICE uses unchanged). Long-term: the caller passes
// MD5(username ":" realm ":" password) (9.2.2).
void hmac_key_init(HmacKey& k, const uint8_t* key, size_t len);
inline void hmac_key_init(HmacKey& k, std::string_view key) {
  hmac_key_init(k, reinterpret_cast<const uint8_t*>(key.data()), key.size());
}
// HMAC-SHA1 of the concatenation of two byte ranges.
void hmac_sha1(const HmacKey& k, const uint8_t* a, size_t alen, const uint8_t* b, size_t blen,
               uint8_t out[20]);

// MESSAGE-INTEGRITY of a parsed message verifies with `k` (false when absent).
bool integrity_ok(const uint8_t* msg, const Message& m, const HmacKey& k);

// Reads XOR-MAPPED-ADDRESS (false when absent or malformed).
bool xor_mapped_address(const uint8_t* msg, const Message& m, Endpoint& out);

// Writes a message into `buf` (capacity `cap`), attribute by attribute; the header's length
// field is kept current. Every add returns false (and writes nothing) if it would not fit.
// Padding bytes are `pad` (zero by default; RFC 5769's vectors use spaces).
class Writer {
 public:
  Writer(uint8_t* buf, uint32_t cap) : b_(buf), cap_(cap) {}
  bool begin(uint16_t type, const uint8_t txid[12]);
  bool add(uint16_t type, const void* value, uint16_t len, uint8_t pad = 0);
  bool add_u32(uint16_t type, uint32_t v);
  bool add_u64(uint16_t type, uint64_t v);
  bool add_xor_address(uint16_t type, const Endpoint& ep);
  bool add_error_code(uint16_t code, std::string_view reason, uint8_t pad = 0);
  bool add_integrity(const HmacKey& k);
  bool add_fingerprint();
  uint32_t size() const { return n_; }
  const uint8_t* data() const { return b_; }

 private:
  void set_length(uint32_t body);
  uint8_t* b_;
  uint32_t cap_;
  uint32_t n_ = 0;
};

// What an ICE-lite agent (always controlled, RFC 8445 6.1.1) does with a Binding request
// on a flow with credentials.
struct IceCreds {
  HmacKey key;              // local password
  char local_ufrag[64];     // NUL-terminated
  char remote_ufrag[64];    // empty: any remote fragment accepted
  uint8_t local_len = 0;
  uint8_t remote_len = 0;
};
// Fills `c` (false when a fragment is empty, too long, or the password is empty).
bool ice_creds_init(IceCreds& c, std::string_view local_ufrag, std::string_view local_pwd,
                    std::string_view remote_ufrag);

enum class CheckVerdict : uint8_t {
  Success,       // answered with a Binding success response; the source passed the check
  ErrorSigned,   // answered with an error response carrying MESSAGE-INTEGRITY (420, 487)
  BadRequest,    // answered with 400 (no USERNAME or no MESSAGE-INTEGRITY, or no PRIORITY)
  Unauthorized,  // answered with 401 (USERNAME not ours, or MESSAGE-INTEGRITY wrong)
  Ignore,        // not answered: not a Binding request (indications, responses), no FINGERPRINT
  Invalid,       // not answered: malformed, bad FINGERPRINT, or an unauthenticated error
                 // answer would be larger than the request (no reflection amplification)
};

// Handles a STUN message that arrived as a UDP payload at `msg` (`len` bytes) from `src`,
// writing the answer over it (in place; the answer may be longer than the request: the
// caller passes the room `cap` from `msg` to the end of the buffer). `out_len` is the
// answer's length when one is written. `use_candidate` reports USE-CANDIDATE on a check
// that succeeded.
CheckVerdict answer_binding(uint8_t* msg, uint32_t len, uint32_t cap, const Endpoint& src,
                            const IceCreds& creds, uint32_t& out_len, bool& use_candidate);

// Turns a received UDP frame (parsed as `p`, no IP options) into an answer to its sender in
// place: Ethernet, IP addresses and UDP ports swapped, TTL/hop limit 64, the UDP payload
// (already written at its place) `payload_len` bytes long, lengths and checksums updated.
// Returns the new frame length.
uint32_t udp_reply_in_place(uint8_t* frame, const Parsed& p, uint32_t payload_len,
                            const MacAddr& port_mac);

}  // namespace veil::dp::stun
