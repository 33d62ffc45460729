// Deterministic driver for the fuzz targets when libFuzzer is not available (gcc): feeds
// seed frames and many random mutations of them (bit flips, truncations, byte overwrites,
// length-field edits) to LLVMFuzzerTestOneInput. Under AddressSanitizer a read or write
// outside the frame fails the run. Arguments: [iterations] [seed].
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern unsigned long g_fuzz_reached[4];

namespace {

std::vector<uint8_t> hex(const char* s) {
  std::vector<uint8_t> v;
  while (s[0] && s[1]) {
    if (s[0] == ' ') {
      ++s;
      continue;
    }
    v.push_back(uint8_t(std::strtoul(std::string(s, 2).c_str(), nullptr, 16)));
    s += 2;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  long iterations = argc > 1 ? std::atol(argv[1]) : 200000;
  unsigned seed = argc > 2 ? unsigned(std::atol(argv[2])) : 1;
  // Seeds: IPv4 UDP (RTP), IPv6 UDP, ARP request, IPv4 echo, IPv6 NS with SLLA, IPv6 with a
  // hop-by-hop header, IPv4 fragment.
  std::vector<std::vector<uint8_t>> seeds = {
      hex("020000000001 02ee00000010 0800 4500002c 1234 4000 4011 0000 cb00710a cb007101 0fa0 4e20 0018 0000 80000001 00000000 cafebabe 00000000"),
      hex("020000000001 02ee00000010 86dd 600000000010113f 20010db8000100000000000000000010 20010db8000100000000000000000001 0fa04e2000100000 8000000100000000"),
      hex("ffffffffffff 02ee00000010 0806 0001080006040001 02ee00000010 cb00710a 000000000000 cb007101"),
      hex("020000000001 02ee00000010 0800 450000241234000040010000 cb00710a cb007101 0800000042420001 0000000000000000"),
      hex("3333ff000001 02ee00000010 86dd 6000000000203aff 20010db8000100000000000000000010 ff0200000000000000000001ff000001 870000000000000020010db8000100000000000000000001 010102ee00000010"),
      hex("020000000001 02ee00000010 86dd 6000000000181140 20010db8000100000000000000000010 20010db8000100000000000000000001 1100050200000000 0fa04e2000080000"),
      hex("020000000001 02ee00000010 0800 4500001c 1234 2000 4011 0000 cb00710a cb007101 0fa0 4e20 0018 0000"),
  };
  for (auto& s : seeds) {
    if (s.size() < 42) {
      std::fprintf(stderr, "bad seed of %zu bytes\n", s.size());
      return 1;
    }
    LLVMFuzzerTestOneInput(s.data(), s.size());
  }
  std::mt19937 rng(seed);
  std::vector<uint8_t> buf;
  for (long i = 0; i < iterations; ++i) {
    buf = seeds[rng() % seeds.size()];
    int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 5) {
        case 0:  // flip a bit
          if (!buf.empty()) buf[rng() % buf.size()] ^= uint8_t(1u << (rng() % 8));
          break;
        case 1:  // truncate
          if (!buf.empty()) buf.resize(rng() % buf.size());
          break;
        case 2:  // overwrite with an extreme value
          if (!buf.empty()) buf[rng() % buf.size()] = (rng() & 1) ? 0xff : 0x00;
          break;
        case 3:  // append bytes
          for (unsigned k = rng() % 64; k > 0; --k) buf.push_back(uint8_t(rng()));
          break;
        case 4:  // random byte
          if (!buf.empty()) buf[rng() % buf.size()] = uint8_t(rng());
          break;
      }
    }
    LLVMFuzzerTestOneInput(buf.data(), buf.size());
  }
  std::printf("fuzz driver: %ld mutated frames, seed %u: no crash, no invariant broken\n"
              "reached: parsed %lu, ARP %lu, ICMP %lu, UDP rewritten %lu\n",
              iterations, seed, g_fuzz_reached[0], g_fuzz_reached[1], g_fuzz_reached[2],
              g_fuzz_reached[3]);
  // A run that never gets past the parser tests nothing: fail it.
  for (unsigned long r : g_fuzz_reached)
    if (r < unsigned(iterations / 100)) return 1;
  return 0;
}
