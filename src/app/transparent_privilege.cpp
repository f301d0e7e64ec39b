#include "transparent_privilege.hpp"

#include <fstream>
#include <sstream>
#include <string>

namespace smtplb::app {
namespace {
constexpr int kCapNetAdmin = 12;  // linux/capability.h
}

bool has_net_admin() {
    // /proc rather than capget(2): no libcap, and the kernel's own view.
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("CapEff:", 0) != 0) continue;
        unsigned long long bits = 0;
        std::istringstream(line.substr(7)) >> std::hex >> bits;
        return (bits >> kCapNetAdmin) & 1;
    }
    return false;
}

bool check_transparent_privilege(const config::Config& config, const config::KeyLines& lines,
                                 bool permitted, bool as_error, config::Diagnostics& diags) {
    if (permitted) return false;
    bool added = false;
    for (std::size_t i = 0; i < config.listeners.size(); ++i) {
        const auto& l = config.listeners[i];
        if (!l.transparent) continue;
        const std::string path = "listener[" + std::to_string(i) + "].client_identity";
        std::string message =
            "listener \"" + l.name + "\" (client_identity = \"" + config::identity_text(l) +
            "\") connects from clients' addresses, which needs CAP_NET_ADMIN, and this process "
            "has not got it: grant it (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE "
            "CAP_NET_ADMIN, and both in CapabilityBoundingSet) or run as root with it";
        if (as_error) {
            diags.error(path, lines.line(path), message);
            added = true;
        } else {
            diags.warning(path, lines.line(path), message);
        }
    }
    return added;
}

}  // namespace smtplb::app
