// The configuration loader: any text yields a config or diagnostics, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/loader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > 8192) return 0;
    std::string text(reinterpret_cast<const char*>(data), size);
    auto r = smtplb::config::load_string(text, "fuzz");
    if (!r.config && !r.diagnostics.has_errors()) __builtin_trap();
    return 0;
}
