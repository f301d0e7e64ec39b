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
        ProxyParse p;
        for (;;) {
            p = parse_proxy_header(wire.substr(0, have), versions);
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
        // Everything at once (more than the header) must agree with the
        // byte-by-byte reading on a verdict.
        if (p.status == ProxyParse::Status::NeedMore) continue;
        auto whole = parse_proxy_header(wire, versions);
        if (whole.status != p.status) __builtin_trap();
        if (p.status == ProxyParse::Status::Done &&
            (whole.length != p.length || !(whole.header.source == p.header.source) ||
             whole.header.source_port != p.header.source_port))
            __builtin_trap();
    }
    return 0;
}
