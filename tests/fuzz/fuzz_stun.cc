// Fuzz target for the STUN codec and the ICE-lite answer, which the worker runs on payloads
// from anyone on the untrusted side: parse, MESSAGE-INTEGRITY, XOR-MAPPED-ADDRESS, and
// answer_binding writing in place with a tight capacity. Built for libFuzzer when clang is
// used; here a deterministic mutation run under AddressSanitizer/UBSan (its own main below:
// the seeds are STUN messages, not frames).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "dataplane/stun.h"

using namespace veil;
using namespace veil::dp;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

unsigned long g_reached[3];  // parsed, integrity verified, answered

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 1500) return 0;
  static stun::IceCreds creds = [] {
    stun::IceCreds c;
    stun::ice_creds_init(c, "veil", "0123456789abcdefghijkl", "brow");
    return c;
  }();
  // Exactly `size` bytes of heap, so ASan sees any read past the message.
  std::vector<uint8_t> msg(data, data + size);
  stun::Message m;
  if (stun::parse(msg.data(), uint32_t(size), m) == stun::ParseResult::Ok) {
    ++g_reached[0];
    check(m.username_off + m.username_len <= size);
    check(m.mi_off == 0 || m.mi_off + 24u <= size);
    check(m.fp_off == 0 || m.fp_off + 8u == size);
    if (stun::integrity_ok(msg.data(), m, creds.key)) ++g_reached[1];
    Endpoint e;
    stun::xor_mapped_address(msg.data(), m, e);
  }
  // Answer in place with room for the answer only where the request leaves it.
  size_t cap = size + (size & 1 ? 0 : 64);
  std::vector<uint8_t> buf(data, data + size);
  buf.resize(cap);
  uint32_t out_len = 0;
  bool uc = false;
  stun::CheckVerdict v = stun::answer_binding(buf.data(), uint32_t(size), uint32_t(cap),
                                              *Endpoint::parse("203.0.113.10:4000"), creds, out_len, uc);
  if (out_len) {
    ++g_reached[2];
    check(out_len <= cap);
    stun::Message a;
    check(stun::parse(buf.data(), out_len, a) == stun::ParseResult::Ok);  // answers are well formed
    check(v != stun::CheckVerdict::Invalid && v != stun::CheckVerdict::Ignore);
  }
  return 0;
}

#ifndef VEIL_LIBFUZZER
int main(int argc, char** argv) {
  long iterations = argc > 1 ? std::atol(argv[1]) : 200000;
  std::mt19937 rng(argc > 2 ? unsigned(std::atol(argv[2])) : 1);
  // Seeds: a valid check (USE-CANDIDATE), RFC 5769's request and IPv4 response.
  std::vector<std::vector<uint8_t>> seeds;
  {
    std::vector<uint8_t> b(256);
    stun::Writer w(b.data(), uint32_t(b.size()));
    const uint8_t txid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    w.begin(stun::kBindingRequest, txid);
    w.add(stun::kAttrUsername, "veil:brow", 9);
    w.add_u32(stun::kAttrPriority, 0x6e7f1eff);
    w.add_u64(stun::kAttrIceControlling, 42);
    w.add(stun::kAttrUseCandidate, nullptr, 0);
    stun::HmacKey k;
    stun::hmac_key_init(k, "0123456789abcdefghijkl");
    w.add_integrity(k);
    w.add_fingerprint();
    b.resize(w.size());
    seeds.push_back(b);
    // The same check without MESSAGE-INTEGRITY/FINGERPRINT, then with an unknown attribute.
    w.begin(stun::kBindingRequest, txid);
    w.add(stun::kAttrUsername, "veil:brow", 9);
    w.add_u32(0x0031, 7);
    w.add_fingerprint();
    seeds.emplace_back(b.data(), b.data() + w.size());
  }
  seeds.push_back({0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                   0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e,
                   0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24,
                   0x00, 0x04, 0x6e, 0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1,
                   0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68,
                   0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c,
                   0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5,
                   0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf});
  for (auto& s : seeds) LLVMFuzzerTestOneInput(s.data(), s.size());
  for (long i = 0; i < iterations; ++i) {
    std::vector<uint8_t> in = seeds[rng() % seeds.size()];
    unsigned edits = 1 + rng() % 4;
    for (unsigned e = 0; e < edits && !in.empty(); ++e) {
      size_t at = rng() % in.size();
      switch (rng() % 5) {
        case 0: in[at] ^= uint8_t(1u << (rng() % 8)); break;
        case 1: in[at] = uint8_t(rng()); break;
        case 2: in.resize(at); break;
        case 3:  // attribute or header length fields
          if (in.size() > 3) in[2 + (rng() % 2)] = uint8_t(rng());
          break;
        case 4: in.insert(in.begin() + long(at), uint8_t(rng())); break;
      }
    }
    // Keep the header length consistent half the time, so the attribute walk is reached.
    if ((i & 1) && in.size() >= 20) {
      in.resize(in.size() & ~size_t(3));
      in[2] = uint8_t((in.size() - 20) >> 8);
      in[3] = uint8_t(in.size() - 20);
    }
    LLVMFuzzerTestOneInput(in.data(), in.size());
  }
  std::printf("%ld inputs: %lu parsed, %lu with valid MESSAGE-INTEGRITY, %lu answered\n", iterations,
              g_reached[0], g_reached[1], g_reached[2]);
  return g_reached[0] && g_reached[2] ? 0 : 1;
}
#endif
