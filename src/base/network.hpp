#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace smtplb::base {

// An IPv4 or IPv6 address; IPv4 is kept as such (not mapped) so that logs,
// XCLIENT and PROXY headers show what the client used.
struct IpAddress {
    bool v6 = false;
    std::array<std::uint8_t, 16> bytes{};  // v4 uses the first 4

    static std::optional<IpAddress> parse(std::string_view text);
    std::string to_string() const;
    // The same text appended to `out` (no allocation of its own: limit keys
    // are built per event).
    void append_to(std::string& out) const;
    // IPv4-mapped IPv6 addresses become IPv4.
    IpAddress unmapped() const;
    bool is_loopback() const;  // 127.0.0.0/8 or ::1
    bool operator==(const IpAddress&) const = default;
};

struct Cidr {
    IpAddress network;
    int prefix = 0;
    static std::optional<Cidr> parse(std::string_view text);
    bool contains(const IpAddress& addr) const;
};

// "host:port", "[v6]:port"; host may be a name or an address literal.
struct HostPort {
    std::string host;
    std::uint16_t port = 0;
    static std::optional<HostPort> parse(std::string_view text);
    std::string to_string() const;
};

}  // namespace smtplb::base
