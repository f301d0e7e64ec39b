#include "proto/proxy_header.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace smtplb::proto {
namespace {

using Status = ProxyParse::Status;

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::array<unsigned char, 12> kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                        0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

ProxyParse invalid(std::string why) {
    ProxyParse p;
    p.status = Status::Invalid;
    p.error = std::move(why);
    return p;
}

ProxyParse need(std::size_t length) {
    ProxyParse p;
    p.length = length;
    return p;
}

bool is_prefix_of(std::string_view input, std::string_view whole) {
    return whole.substr(0, std::min(input.size(), whole.size())) ==
           input.substr(0, std::min(input.size(), whole.size()));
}

std::string_view v2_signature() {
    return {reinterpret_cast<const char*>(kV2Signature.data()), kV2Signature.size()};
}

// Decimal without sign or leading zeros, at most `max`.
bool parse_decimal(std::string_view text, std::uint32_t max, std::uint32_t& out) {
    if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return false;
    std::uint32_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + static_cast<std::uint32_t>(c - '0');
    }
    if (value > max) return false;
    out = value;
    return true;
}

bool strict_ipv4(std::string_view text) {
    int parts = 0;
    while (true) {
        auto dot = text.find('.');
        std::uint32_t octet;
        if (!parse_decimal(text.substr(0, dot), 255, octet)) return false;
        ++parts;
        if (dot == std::string_view::npos) break;
        text.remove_prefix(dot + 1);
    }
    return parts == 4;
}

bool parse_address(std::string_view text, bool v6, base::IpAddress& out) {
    if (!v6 && !strict_ipv4(text)) return false;
    if (v6 && text.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos)
        return false;
    auto parsed = base::IpAddress::parse(text);
    if (!parsed || parsed->v6 != v6) return false;
    out = *parsed;
    return true;
}

ProxyParse parse_v1(std::string_view input) {
    auto lf = input.find('\n');
    if (lf == std::string_view::npos) {
        if (input.size() >= kProxyV1MaxLength)
            return invalid("v1 header without CRLF in 107 bytes");
        return need(input.size() + 1);  // byte by byte: nothing behind the LF is read
    }
    if (lf + 1 > kProxyV1MaxLength) return invalid("v1 header longer than 107 bytes");
    if (lf == 0 || input[lf - 1] != '\r') return invalid("v1 header ends in a bare LF");
    std::string_view line = input.substr(kV1Prefix.size(), lf - 1 - kV1Prefix.size());
    if (line.find('\r') != std::string_view::npos) return invalid("v1 header has a bare CR");

    ProxyParse p;
    p.status = Status::Done;
    p.length = lf + 1;
    if (line == "UNKNOWN" || line.starts_with("UNKNOWN ")) {
        p.header.local = true;  // the rest is to be ignored
        return p;
    }
    std::array<std::string_view, 5> fields;
    std::size_t n = 0;
    for (std::size_t start = 0; start <= line.size();) {
        auto space = line.find(' ', start);
        auto end = space == std::string_view::npos ? line.size() : space;
        if (n == fields.size()) return invalid("v1 header has too many fields");
        fields[n++] = line.substr(start, end - start);
        if (space == std::string_view::npos) break;
        start = space + 1;
    }
    if (n != fields.size()) return invalid("v1 header has too few fields");
    bool v6;
    if (fields[0] == "TCP4")
        v6 = false;
    else if (fields[0] == "TCP6")
        v6 = true;
    else
        return invalid("v1 header has an unknown protocol");
    std::uint32_t source_port, destination_port;
    if (!parse_address(fields[1], v6, p.header.source) ||
        !parse_address(fields[2], v6, p.header.destination))
        return invalid("v1 header has a malformed address");
    if (!parse_decimal(fields[3], 65535, source_port) ||
        !parse_decimal(fields[4], 65535, destination_port))
        return invalid("v1 header has a malformed port");
    p.header.source_port = static_cast<std::uint16_t>(source_port);
    p.header.destination_port = static_cast<std::uint16_t>(destination_port);
    return p;
}

std::uint16_t be16(std::string_view bytes, std::size_t at) {
    return static_cast<std::uint16_t>(static_cast<unsigned char>(bytes[at]) << 8 |
                                      static_cast<unsigned char>(bytes[at + 1]));
}

ProxyParse parse_v2(std::string_view input) {
    if (input.size() < 16) return need(16);
    auto version_command = static_cast<unsigned char>(input[12]);
    auto family = static_cast<unsigned char>(input[13]);
    std::size_t length = be16(input, 14);
    if (version_command >> 4 != 2) return invalid("v2 header has an unknown version");
    auto command = version_command & 0x0f;
    if (command > 1) return invalid("v2 header has an unknown command");
    if (16 + length > kProxyV2MaxLength) return invalid("v2 header is too long");
    if (input.size() < 16 + length) return need(16 + length);
    std::string_view body = input.substr(16, length);

    ProxyParse p;
    p.status = Status::Done;
    p.length = 16 + length;
    if (command == 0) {
        // LOCAL: the proxy's own connection (a health check). The spec has
        // the receiver use the real endpoints and discard the protocol block,
        // family included: whatever the length covers (addresses, TLVs such
        // as HAProxy's UNIQUE_ID or SSL) is skipped unread.
        p.header.local = true;
        return p;
    }
    std::size_t address_block;
    switch (family) {
        case 0x00:  // UNSPEC: the receiver uses the connection's own addresses
            address_block = 0;
            p.header.local = true;
            break;
        case 0x11:  // TCP over IPv4
            address_block = 12;
            break;
        case 0x21:  // TCP over IPv6
            address_block = 36;
            break;
        default:
            return invalid("v2 header has an unsupported address family or transport");
    }
    if (length < address_block) return invalid("v2 header too short for its addresses");
    if (address_block > 0) {
        std::size_t alen = family == 0x21 ? 16 : 4;
        bool v6 = family == 0x21;
        p.header.source.v6 = p.header.destination.v6 = v6;
        std::memcpy(p.header.source.bytes.data(), body.data(), alen);
        std::memcpy(p.header.destination.bytes.data(), body.data() + alen, alen);
        p.header.source_port = be16(body, 2 * alen);
        p.header.destination_port = be16(body, 2 * alen + 2);
    }
    // TLVs fill the rest exactly: type, 16-bit length, value.
    for (std::size_t at = address_block; at < body.size();) {
        if (body.size() - at < 3) return invalid("v2 header has a truncated TLV");
        std::size_t value = be16(body, at + 1);
        if (body.size() - at - 3 < value) return invalid("v2 header has a TLV that overruns it");
        at += 3 + value;
    }
    return p;
}

}  // namespace

ProxyParse parse_proxy_header(std::string_view input, ProxyVersions accepted) {
    bool v1 = accepted != ProxyVersions::V2 && is_prefix_of(input, kV1Prefix);
    bool v2 = accepted != ProxyVersions::V1 && is_prefix_of(input, v2_signature());
    // One byte first: it tells the versions apart, so a wrong one is refused
    // at once instead of waiting for bytes that will never come.
    if (input.empty()) return need(1);
    if (v1) {
        if (input.size() < kV1Prefix.size()) return need(kV1Prefix.size());
        return parse_v1(input);
    }
    if (v2) return parse_v2(input);
    return invalid(accepted == ProxyVersions::V1   ? "not a PROXY v1 header"
                   : accepted == ProxyVersions::V2 ? "not a PROXY v2 header"
                                                   : "not a PROXY header");
}

}  // namespace smtplb::proto
