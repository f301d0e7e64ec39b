#include "config/transparent.hpp"

#include <string>
#include <vector>

namespace smtplb::config {
namespace {

// What the client_identity key says: the in-band identity, and whether the
// backend connection comes from the client's own address.
struct IdentityChoice {
    IdentityMode mode = IdentityMode::Xclient;
    bool transparent = false;
};

bool is_wildcard(const base::IpAddress& a) {
    for (auto b : a.bytes)
        if (b) return false;
    return true;
}

}  // namespace

void read_client_identity(TableReader& r, Listener& l) {
    IdentityChoice choice{l.client_identity, false};
    r.choice("client_identity", choice,
             {{"xclient", {IdentityMode::Xclient, false}},
              {"proxy-v1", {IdentityMode::ProxyV1, false}},
              {"proxy-v2", {IdentityMode::ProxyV2, false}},
              {"none", {IdentityMode::None, false}},
              {"transparent", {IdentityMode::None, true}},
              {"transparent+xclient", {IdentityMode::Xclient, true}}});
    l.client_identity = choice.mode;
    l.transparent = choice.transparent;
    r.boolean("transparent_port", l.transparent_port);
}

void check_transparent(TableReader& r, const Listener& l) {
    auto& d = r.diagnostics();
    const bool tcp = l.mode == ListenerMode::Tcp;
    if (l.transparent_port && !(tcp && l.transparent))
        d.error(r.key_path("transparent_port"), r.line_of("transparent_port"),
                "only a \"tcp\" listener with client_identity = \"transparent\" keeps the "
                "client's port");
    if (!l.transparent) return;
    if (l.source_address)
        // Both say where backend connections come from.
        d.error(r.key_path("source_address"), r.line_of("source_address"),
                "a transparent listener connects from each client's own address: "
                "source_address cannot be set with it");
    if (tcp && l.client_identity == IdentityMode::Xclient)
        d.error(r.key_path("client_identity"), r.line_of("client_identity"),
                "a \"tcp\" listener cannot send XCLIENT: use \"transparent\"");
}

bool transparent_reachable(const base::IpAddress& client, const base::HostPort& backend) {
    auto address = base::IpAddress::parse(backend.host);
    return address && address->v6 == client.unmapped().v6;
}

void check_transparent_families(const Config& c, const KeyLines& lines, Diagnostics& d) {
    for (std::size_t i = 0; i < c.listeners.size(); ++i) {
        const auto& l = c.listeners[i];
        if (!l.transparent) continue;
        auto bind = base::IpAddress::parse(l.bind.host);
        if (!bind) continue;
        // "[::]" sockets are dual-stack: IPv4 clients arrive on them too.
        const bool v4_clients = !bind->v6 || is_wildcard(*bind);
        const bool v6_clients = bind->v6;
        std::vector<const Pool*> pools;
        if (const auto* p = c.find_pool(l.pool)) pools.push_back(p);
        if (l.mode == ListenerMode::Smtp)
            for (const auto& route : c.routes)
                if (const auto* p = c.find_pool(route.pool); p && route.serves(l.name))
                    pools.push_back(p);
        const std::string path = "listener[" + std::to_string(i) + "].client_identity";
        const int line = lines.line(path);
        for (const auto* pool : pools) {
            std::size_t v4 = 0, v6 = 0;
            std::string unreachable;  // backends no client of this listener reaches
            for (const auto& b : pool->backends) {
                auto address = base::IpAddress::parse(b.address.host);
                if (!address) continue;
                ++(address->v6 ? v6 : v4);
                if (address->v6 ? !v6_clients : !v4_clients)
                    unreachable += (unreachable.empty() ? "" : ", ") + b.name;
            }
            const bool v4_served = v4_clients && v4 > 0, v6_served = v6_clients && v6 > 0;
            const std::string where = "pool \"" + pool->name + "\" for listener \"" + l.name + "\"";
            if (!v4_served && !v6_served) {
                d.error(
                    path, line,
                    "a transparent connection keeps the client's address family: no backend of " +
                        where + " has an " + (v6_clients ? "IPv6" : "IPv4") + " address");
                continue;
            }
            if (!unreachable.empty())
                d.warning(path, line,
                          std::string("a transparent connection keeps the client's address "
                                      "family: the listener's clients never reach backend(s) ")
                              .append(unreachable)
                              .append(" of ")
                              .append(where));
            if (v4_clients && !v4_served)
                d.warning(path, line,
                          std::string("IPv4 clients find no IPv4 backend in ") + where +
                              " (transparent): they get a temporary failure");
            if (v6_clients && !v6_served)
                d.warning(path, line,
                          std::string("IPv6 clients find no IPv6 backend in ") + where +
                              " (transparent): they get a temporary failure");
        }
    }
}

}  // namespace smtplb::config
