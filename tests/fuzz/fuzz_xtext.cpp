// xtext round trip, the XCLIENT line's bound and the HELO relayed after it,
// for arbitrary client-supplied names.
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
    id.login = raw;
    id.name = raw;
    auto xclient = smtplb::proto::xclient_command(
        id, {"ADDR", "HELO", "NAME", "REVERSE_NAME", "LOGIN", "PORT"}, 512);
    const auto& line = xclient.line;
    if (line.size() > 512 || line.find('\n') != line.size() - 1) __builtin_trap();
    if (line.find("ADDR=") == std::string::npos) __builtin_trap();  // never left out
    auto helo = smtplb::proto::helo_for_backend(raw, "lb.example", 512);
    if (helo.size() + 7 > 512) __builtin_trap();
    for (unsigned char c : helo)
        if (c < 0x20 || c == 0x7f) __builtin_trap();
    return 0;
}
