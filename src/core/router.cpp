#include "core/router.hpp"

#include <algorithm>

#include "base/text.hpp"
#include "config/route_pattern.hpp"

namespace smtplb::core {

Router::Router(const std::vector<config::Route>& routes) {
    for (const auto& r : routes) {
        Compiled c;
        c.domain = r.recipient_domain;
        c.pool = r.pool;
        c.on_recipient = r.on_recipient();
        // Validated by the loader; a pattern that did not compile (a
        // configuration built without it) matches nothing.
        if (!r.recipient.empty()) c.pattern = config::compile_route_pattern(r.recipient);
        for (const auto& user : r.auth_users)
            if (user.starts_with('@'))
                c.auth_domains.insert(base::to_lower(user));
            else
                c.auth_users.insert(user);
        c.networks = r.client_networks;
        c.listeners = r.listeners;
        routes_.push_back(std::move(c));
    }
}

Router::~Router() = default;
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;

// The session's login as the routes compare it, made once per call: exactly,
// and its domain ("@example.com", lower case) for "@domain" entries.
struct Router::Login {
    std::string exact;
    std::string domain;
    explicit Login(std::string_view login) : exact(login) {
        auto at = login.rfind('@');
        if (at != std::string_view::npos && at + 1 < login.size())
            domain = base::to_lower(login.substr(at));
    }
    bool in(const Compiled& r) const {
        return !exact.empty() &&
               (r.auth_users.count(exact) || (!domain.empty() && r.auth_domains.count(domain)));
    }
};

bool Router::matches(const Compiled& r, const RouteInput& in, const Login& login) {
    if (!r.listeners.empty() &&
        std::find(r.listeners.begin(), r.listeners.end(), in.listener) == r.listeners.end())
        return false;
    if ((!r.auth_users.empty() || !r.auth_domains.empty()) && !login.in(r)) return false;
    if (!r.networks.empty() &&
        std::none_of(r.networks.begin(), r.networks.end(),
                     [&](const base::Cidr& n) { return n.contains(in.client); }))
        return false;
    if (!r.on_recipient) return true;
    if (!in.rcpt) return false;
    if (r.pattern) return r.pattern->ok() && re2::RE2::FullMatch(in.rcpt->address(), *r.pattern);
    return !in.rcpt->domain.empty() && in.rcpt->domain == r.domain;
}

const std::string& Router::route(const RouteInput& in, const std::string& default_pool) const {
    const Login login(in.auth_user);
    for (const auto& r : routes_)
        if (matches(r, in, login)) return r.pool;
    return default_pool;
}

}  // namespace smtplb::core
