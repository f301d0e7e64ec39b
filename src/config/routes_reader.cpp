#include "config/routes_reader.hpp"

#include <algorithm>
#include <set>

#include "base/text.hpp"
#include "config/route_pattern.hpp"

namespace smtplb::config {
namespace {

// Bounds on what one route lists: a tenant with more logins than this is
// better told apart by its listener or its network.
constexpr std::size_t kMaxAuthUsers = 10000;
constexpr std::size_t kMaxLoginLength = 512;
constexpr std::size_t kMaxNetworks = 1000;

// `key = "one"` or `key = ["one", "two"]`.
void read_names(TableReader& r, const std::string& key, std::vector<std::string>& out) {
    if (const auto* n = r.node(key); n && n->is_string())
        out.push_back(*n->value<std::string>());
    else
        r.strings(key, out);
}

void read_auth_users(TableReader& r, Route& route) {
    auto& d = r.diagnostics();
    read_names(r, "auth_user", route.auth_users);
    if (route.auth_users.size() > kMaxAuthUsers)
        d.error(r.key_path("auth_user"), r.line_of("auth_user"),
                "lists more than " + std::to_string(kMaxAuthUsers) + " logins");
    for (const auto& user : route.auth_users) {
        if (user.empty() || user.size() > kMaxLoginLength) {
            d.error(r.key_path("auth_user"), r.line_of("auth_user"),
                    "a login is 1 to " + std::to_string(kMaxLoginLength) + " characters");
            break;
        }
        // "@example.com": every login in that domain.
        if (user.front() == '@' && (user.size() == 1 || user.find('@', 1) != std::string::npos)) {
            d.error(r.key_path("auth_user"), r.line_of("auth_user"),
                    "\"" + base::printable(user) +
                        "\": a login, or \"@\" and a domain for every login in it");
            break;
        }
    }
}

void read_client_networks(TableReader& r, Route& route) {
    auto& d = r.diagnostics();
    read_names(r, "client_network", route.client_networks_text);
    if (route.client_networks_text.size() > kMaxNetworks)
        d.error(r.key_path("client_network"), r.line_of("client_network"),
                "lists more than " + std::to_string(kMaxNetworks) + " networks");
    for (const auto& text : route.client_networks_text) {
        if (auto cidr = base::Cidr::parse(text))
            route.client_networks.push_back(*cidr);
        else
            d.error(r.key_path("client_network"), r.line_of("client_network"),
                    "\"" + base::printable(text) +
                        "\" is not an address or a network (10.1.0.0/16, 2001:db8::/32)");
    }
}

}  // namespace

void read_route(TableReader& r, Route& route) {
    auto& d = r.diagnostics();
    r.string("recipient_domain", route.recipient_domain);
    route.recipient_domain = base::to_lower(route.recipient_domain);
    r.string("recipient", route.recipient);
    read_auth_users(r, route);
    read_client_networks(r, route);
    read_names(r, "listener", route.listeners);
    r.string("pool", route.pool, true);
    route.pool_line = r.line_of("pool");
    if (!route.recipient_domain.empty() && !route.recipient.empty())
        d.error(r.path(), r.line_of("pool"),
                "a route takes one of recipient_domain or recipient, not both");
    if (!route.on_recipient() && route.auth_users.empty() && route.client_networks_text.empty() &&
        route.listeners.empty())
        // A route that matches everything would hide the listeners' pools.
        d.error(r.path(), r.line_of("pool"),
                "a route needs a condition: recipient_domain or recipient, auth_user, "
                "client_network or listener");
    if (!route.recipient.empty()) {
        if (auto pattern = compile_route_pattern(route.recipient); !pattern->ok())
            d.error(r.key_path("recipient"), r.line_of("recipient"),
                    "is not a valid RE2 regular expression: " + pattern->error());
    }
}

void check_routes(const Config& c, const KeyLines& lines, Diagnostics& d) {
    std::set<std::string> pools;
    for (const auto& p : c.pools)
        pools.insert(p.name);
    auto offers_auth = [](const Listener& l) {
        return l.mode == ListenerMode::Smtp && l.role == Role::Submission;
    };
    for (std::size_t i = 0; i < c.routes.size(); ++i) {
        const auto& route = c.routes[i];
        const std::string path = "route[" + std::to_string(i) + "]";
        if (!route.pool.empty() && !pools.count(route.pool))
            d.error(path + ".pool", route.pool_line, "no [[pool]] is named \"" + route.pool + "\"");
        bool any_smtp = false, any_auth = false;
        for (const auto& l : c.listeners) {
            if (!route.serves(l.name)) continue;
            any_smtp |= l.mode == ListenerMode::Smtp;
            any_auth |= offers_auth(l);
            if (!route.auth_users.empty() && !route.listeners.empty() && !offers_auth(l))
                d.warning(path + ".auth_user", lines.line(path + ".auth_user"),
                          "listener \"" + l.name +
                              "\" offers no AUTH (only smtp listeners with role \"submission\" "
                              "do): its sessions never match this route");
        }
        bool unknown = false;
        for (const auto& name : route.listeners)
            if (std::none_of(c.listeners.begin(), c.listeners.end(),
                             [&](const Listener& l) { return l.name == name; })) {
                unknown = true;
                d.error(path + ".listener", lines.line(path + ".listener"),
                        "no [[listener]] is named \"" + base::printable(name) + "\"");
            }
        // Routes pick a pool per message: a tcp listener passes whole
        // connections to its own pool.
        if (!route.listeners.empty() && !unknown && !any_smtp)
            d.warning(path + ".listener", lines.line(path + ".listener"),
                      "routes apply to smtp listeners only: this route never matches");
        if (!route.auth_users.empty() && route.listeners.empty() && !any_auth)
            d.warning(path + ".auth_user", lines.line(path + ".auth_user"),
                      "no listener offers AUTH (role \"submission\"): this route never matches");
    }
}

}  // namespace smtplb::config
