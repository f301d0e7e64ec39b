#include "core/router.hpp"

namespace smtplb::core {

Router::Router(const std::vector<config::Route>& routes) {
    for (const auto& r : routes) {
        Compiled c;
        c.domain = r.recipient_domain;
        c.pool = r.pool;
        if (!r.recipient.empty()) {
            // Validated by the loader; the pattern matches the whole address.
            c.regex = std::regex(r.recipient,
                                 std::regex::ECMAScript | std::regex::icase | std::regex::optimize);
            c.has_regex = true;
        }
        routes_.push_back(std::move(c));
    }
}

const std::string& Router::route(const proto::Mailbox& rcpt,
                                 const std::string& default_pool) const {
    for (const auto& r : routes_) {
        if (r.has_regex) {
            // Paths are at most 256 bytes (RFC 5321), which bounds regex work.
            if (std::regex_match(rcpt.address(), r.regex)) return r.pool;
        } else if (!rcpt.domain.empty() && rcpt.domain == r.domain) {
            return r.pool;
        }
    }
    return default_pool;
}

}  // namespace smtplb::core
