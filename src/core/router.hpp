#pragma once
#include <regex>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "proto/address.hpp"

namespace smtplb::core {

// Recipient -> pool name: the first matching [[route]], else the listener's pool.
class Router {
  public:
    explicit Router(const std::vector<config::Route>& routes);
    const std::string& route(const proto::Mailbox& rcpt, const std::string& default_pool) const;

  private:
    struct Compiled {
        std::string domain;
        bool has_regex = false;
        std::regex regex;
        std::string pool;
    };
    std::vector<Compiled> routes_;
};

}  // namespace smtplb::core
