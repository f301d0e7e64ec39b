#include "config/bind_conflicts.hpp"

#include <vector>

namespace smtplb::config {
namespace {

struct Endpoint {
    std::string path;  // key path of the address
    std::string what;  // "listener \"internet\"" or "the admin API"
    base::HostPort bind;
    base::IpAddress address;
};

bool is_wildcard(const base::IpAddress& a) {
    for (auto b : a.bytes)
        if (b) return false;
    return true;
}

// Whether binding both on one port fails: one address covers the other.
bool overlap(const base::IpAddress& a, const base::IpAddress& b) {
    if (a == b) return true;
    if (is_wildcard(a) && (a.v6 || !b.v6)) return true;
    if (is_wildcard(b) && (b.v6 || !a.v6)) return true;
    return false;
}

}  // namespace

void check_bind_conflicts(const Config& config, const KeyLines& lines, Diagnostics& diags) {
    std::vector<Endpoint> endpoints;
    for (std::size_t i = 0; i < config.listeners.size(); ++i) {
        const auto& l = config.listeners[i];
        auto address = base::IpAddress::parse(l.bind.host);
        if (!address || l.bind.port == 0) continue;
        endpoints.push_back({"listener[" + std::to_string(i) + "].bind",
                             "listener \"" + l.name + "\"", l.bind, address->unmapped()});
    }
    if (const auto& admin = config.server.admin_bind) {
        auto address = base::IpAddress::parse(admin->host);
        if (address && admin->port != 0)
            endpoints.push_back({"server.admin", "the admin API", *admin, address->unmapped()});
    }
    for (std::size_t j = 1; j < endpoints.size(); ++j) {
        const auto& later = endpoints[j];
        for (std::size_t i = 0; i < j; ++i) {
            const auto& earlier = endpoints[i];
            if (earlier.bind.port != later.bind.port || !overlap(earlier.address, later.address))
                continue;
            const int line = lines.line(earlier.path);
            diags.error(later.path, lines.line(later.path),
                        later.bind.to_string() + " collides with " + earlier.what + " on " +
                            earlier.bind.to_string() +
                            (line > 0 ? " (line " + std::to_string(line) + ")" : "") +
                            ": both cannot bind; use another port or address");
            break;
        }
    }
}

}  // namespace smtplb::config
