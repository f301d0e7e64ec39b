#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "base/network.hpp"
#include "config/config.hpp"
#include "proto/address.hpp"

namespace re2 {
class RE2;
}

namespace smtplb::core {

// What a route may look at: the recipient, and the session's facts.
struct RouteInput {
    // Null at MAIL, before any recipient: routes on the recipient are passed
    // over, so that the transaction starts on the pool its session's own
    // route (a tenant's) leads to; the first recipient then decides.
    const proto::Mailbox* rcpt = nullptr;
    std::string_view listener;
    base::IpAddress client;      // after PROXY/XCLIENT from a trusted upstream
    std::string_view auth_user;  // the SASL login; empty when not authenticated
};

// Message -> pool name: the first [[route]] whose conditions all hold,
// else the listener's pool. Patterns are RE2 (config/route_pattern.hpp):
// linear time in the address, on the event loop, over client-supplied input.
class Router {
  public:
    explicit Router(const std::vector<config::Route>& routes);
    ~Router();
    Router(Router&&) noexcept;
    Router& operator=(Router&&) noexcept;
    const std::string& route(const RouteInput& in, const std::string& default_pool) const;

  private:
    struct Compiled {
        std::string domain;
        std::unique_ptr<re2::RE2> pattern;  // null unless a `recipient` route
        std::unordered_set<std::string> auth_users;
        std::unordered_set<std::string> auth_domains;  // "@example.com", lower case
        std::vector<base::Cidr> networks;
        std::vector<std::string> listeners;
        std::string pool;
        bool on_recipient = false;
    };
    struct Login;
    static bool matches(const Compiled& r, const RouteInput& in, const Login& login);
    std::vector<Compiled> routes_;
};

}  // namespace smtplb::core
