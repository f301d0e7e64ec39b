// xtext round trip and XCLIENT line bounds for arbitrary HELO names.
#include <cstddef>
#include <cstdint>
#include <string>

#include "proto/identity.hpp"
#include "proto/xtext.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string raw(reinterpret_cast<const char*>(data), size);
    auto encoded = smtplb::proto::xtext_encode(raw);
    auto back = smtplb::proto::xtext_decode(encoded);
    if (!back || *back != raw) __builtin_trap();
    smtplb::proto::xtext_decode(raw);
    smtplb::proto::ClientIdentity id;
    id.helo = raw;
    for (const auto& line : smtplb::proto::xclient_commands(id, {"ADDR", "HELO", "NAME", "PORT"}))
        if (line.size() > 512 || line.find('\n') != line.size() - 1) __builtin_trap();
    return 0;
}
