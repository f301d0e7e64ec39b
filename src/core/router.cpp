#include "core/router.hpp"

#include "config/route_pattern.hpp"

namespace smtplb::core {

Router::Router(const std::vector<config::Route>& routes) {
    for (const auto& r : routes) {
        Compiled c;
        c.domain = r.recipient_domain;
        c.pool = r.pool;
        // Validated by the loader; a pattern that did not compile (a
        // configuration built without it) matches nothing.
        if (!r.recipient.empty()) c.pattern = config::compile_route_pattern(r.recipient);
        routes_.push_back(std::move(c));
    }
}

Router::~Router() = default;
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;

const std::string& Router::route(const proto::Mailbox& rcpt,
                                 const std::string& default_pool) const {
    for (const auto& r : routes_) {
        if (r.pattern) {
            if (r.pattern->ok() && re2::RE2::FullMatch(rcpt.address(), *r.pattern)) return r.pool;
        } else if (!rcpt.domain.empty() && rcpt.domain == r.domain) {
            return r.pool;
        }
    }
    return default_pool;
}

}  // namespace smtplb::core
