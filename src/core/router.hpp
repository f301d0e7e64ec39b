#pragma once
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "proto/address.hpp"

namespace re2 {
class RE2;
}

namespace smtplb::core {

// Recipient -> pool name: the first matching [[route]], else the listener's
// pool. Patterns are RE2 (config/route_pattern.hpp): linear time in the
// address, on the event loop, over client-supplied input.
class Router {
  public:
    explicit Router(const std::vector<config::Route>& routes);
    ~Router();
    Router(Router&&) noexcept;
    Router& operator=(Router&&) noexcept;
    const std::string& route(const proto::Mailbox& rcpt, const std::string& default_pool) const;

  private:
    struct Compiled {
        std::string domain;
        std::unique_ptr<re2::RE2> pattern;  // null for a recipient_domain route
        std::string pool;
    };
    std::vector<Compiled> routes_;
};

}  // namespace smtplb::core
