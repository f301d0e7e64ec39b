#include "base/network.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace smtplb::base {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
    if (text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
    char buf[INET6_ADDRSTRLEN] = {};
    std::memcpy(buf, text.data(), text.size());
    IpAddress out;
    if (inet_pton(AF_INET, buf, out.bytes.data()) == 1) return out;
    if (inet_pton(AF_INET6, buf, out.bytes.data()) == 1) {
        out.v6 = true;
        return out;
    }
    return std::nullopt;
}

std::string IpAddress::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
    return buf;
}

void IpAddress::append_to(std::string& out) const {
    if (v6) {
        char buf[INET6_ADDRSTRLEN] = {};
        inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
        out += buf;
        return;
    }
    for (int i = 0; i < 4; ++i) {
        if (i > 0) out += '.';
        const unsigned b = bytes[i];
        if (b >= 100) out += static_cast<char>('0' + b / 100);
        if (b >= 10) out += static_cast<char>('0' + b / 10 % 10);
        out += static_cast<char>('0' + b % 10);
    }
}

bool IpAddress::is_loopback() const {
    auto a = unmapped();
    if (!a.v6) return a.bytes[0] == 127;
    for (int i = 0; i < 15; ++i)
        if (a.bytes[i] != 0) return false;
    return a.bytes[15] == 1;
}

IpAddress IpAddress::unmapped() const {
    static constexpr std::uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!v6 || std::memcmp(bytes.data(), prefix, 12) != 0) return *this;
    IpAddress out;
    std::memcpy(out.bytes.data(), bytes.data() + 12, 4);
    return out;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
    auto slash = text.find('/');
    auto addr = IpAddress::parse(text.substr(0, slash));
    if (!addr) return std::nullopt;
    int max = addr->v6 ? 128 : 32;
    int prefix = max;
    if (slash != std::string_view::npos) {
        auto digits = text.substr(slash + 1);
        auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
        if (ec != std::errc{} || ptr != digits.data() + digits.size() || digits.empty() ||
            prefix < 0 || prefix > max)
            return std::nullopt;
    }
    return Cidr{*addr, prefix};
}

bool Cidr::contains(const IpAddress& raw) const {
    IpAddress addr = raw.unmapped();
    if (addr.v6 != network.v6) return false;
    int full = prefix / 8, rest = prefix % 8;
    if (std::memcmp(addr.bytes.data(), network.bytes.data(), full) != 0) return false;
    if (rest == 0) return true;
    auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (addr.bytes[full] & mask) == (network.bytes[full] & mask);
}

std::optional<HostPort> HostPort::parse(std::string_view text) {
    HostPort out;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return std::nullopt;
        out.host = std::string(text.substr(1, close - 1));
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
        out.host = std::string(text.substr(0, colon));
        port = text.substr(colon + 1);
    }
    if (out.host.empty() || port.empty()) return std::nullopt;
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || ptr != port.data() + port.size() || value > 65535) return std::nullopt;
    out.port = static_cast<std::uint16_t>(value);
    return out;
}

std::string HostPort::to_string() const {
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

}  // namespace smtplb::base
