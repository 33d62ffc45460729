// Fuzz target for the configuration parser: any byte string must give either a config or
// errors that each carry a message and a position inside the text, never a crash or an
// escaped exception. The driver mutates the example configuration.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "controlplane/config.h"

unsigned long g_fuzz_reached[4];

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto r = veil::config::parse_string(text, "fuzz.toml");
  ++g_fuzz_reached[0];
  if (r.ok()) {
    ++g_fuzz_reached[1];
    if (r.config->ports.size() != 2) std::abort();
  } else {
    ++g_fuzz_reached[2];
    if (r.errors.empty()) std::abort();
    for (const auto& e : r.errors) {
      if (e.what.empty() || e.str().empty()) std::abort();
    }
    ++g_fuzz_reached[3];
  }
  return 0;
}
