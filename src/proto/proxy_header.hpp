#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/network.hpp"

namespace smtplb::proto {

// Which PROXY protocol versions a listener takes (haproxy's proxy-protocol.txt).
enum class ProxyVersions { V1, V2, Any };

// The connection an upstream proxy passed on.
struct ProxyHeader {
    // v1 UNKNOWN, v2 LOCAL (whatever its family and body, which are skipped)
    // or an unspecified family: the proxy speaks for itself (a health check)
    // and the connection's own addresses apply.
    bool local = false;
    base::IpAddress source;
    base::IpAddress destination;
    std::uint16_t source_port = 0;
    std::uint16_t destination_port = 0;
};

struct ProxyParse {
    enum class Status { NeedMore, Done, Invalid };
    Status status = Status::NeedMore;
    // NeedMore: read until the input is this long (never past the header,
    // so nothing behind it is consumed). Done: the header's length.
    std::size_t length = 0;
    ProxyHeader header;
    std::string error;  // Invalid: why, for the log
};

// v1 headers are at most 107 bytes with CRLF; v2 ones we bound (address
// block and TLVs) to this many bytes in all.
constexpr std::size_t kProxyV1MaxLength = 107;
constexpr std::size_t kProxyV2MaxLength = 16 + 1024;

// Parses the start of a connection strictly: no guessing, no tolerance of
// bare LF, leading zeros, extra spaces, unknown versions or commands,
// lengths that overrun. `input` is what has been read so far.
ProxyParse parse_proxy_header(std::string_view input, ProxyVersions accepted);

}  // namespace smtplb::proto
