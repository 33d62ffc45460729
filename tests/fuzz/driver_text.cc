// Deterministic driver for text fuzz targets: reads a seed file, applies random line and
// byte mutations (delete/duplicate lines, flip bytes, insert TOML punctuation, truncate) and
// feeds each to LLVMFuzzerTestOneInput. Arguments: SEED_FILE [iterations] [seed].
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern unsigned long g_fuzz_reached[4];

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SEED_FILE [iterations] [seed]\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1]);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string seed_text = ss.str();
  if (seed_text.empty()) return 2;
  long iterations = argc > 2 ? std::atol(argv[2]) : 20000;
  std::mt19937 rng(argc > 3 ? unsigned(std::atol(argv[3])) : 1);
  std::vector<std::string> lines;
  {
    std::istringstream ls(seed_text);
    for (std::string l; std::getline(ls, l);) lines.push_back(l);
  }
  const char* punct[] = {"[", "]", "=", "\"", "'", ",", "#", "{", "}", "\n", "[[", "]]", "-1",
                         "99999999999999999999", "0x", "1e9", "true", "\"\\u0000\"", ".", "\\"};
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(seed_text.data()), seed_text.size());
  for (long i = 0; i < iterations; ++i) {
    std::vector<std::string> l = lines;
    int edits = 1 + int(rng() % 3);
    for (int e = 0; e < edits && !l.empty(); ++e) {
      size_t k = rng() % l.size();
      switch (rng() % 5) {
        case 0: l.erase(l.begin() + long(k)); break;
        case 1: l.insert(l.begin() + long(k), l[rng() % l.size()]); break;
        case 2:
          if (!l[k].empty()) l[k][rng() % l[k].size()] = char(rng());
          break;
        case 3: l[k].insert(l[k].empty() ? 0 : rng() % l[k].size(), punct[rng() % 20]); break;
        case 4:
          if (!l[k].empty()) l[k].resize(rng() % l[k].size());
          break;
      }
    }
    std::string text;
    for (auto& s : l) text += s + "\n";
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  }
  std::printf("fuzz driver: %ld mutated texts: no crash; reached: parsed %lu, valid %lu, "
              "rejected with positioned errors %lu\n",
              iterations, g_fuzz_reached[0], g_fuzz_reached[1], g_fuzz_reached[3]);
  return g_fuzz_reached[1] && g_fuzz_reached[3] ? 0 : 1;
}
