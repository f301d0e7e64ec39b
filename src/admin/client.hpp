#pragma once
#include <chrono>
#include <string>

#include "base/network.hpp"

namespace smtplb::admin {

struct HttpResult {
    int status = 0;  // 0: no response (see error)
    std::string body;
    std::string error;
};

// One request to a running daemon's admin listener, for `smtplb status`
// and `smtplb backend`; blocks for at most `timeout`.
HttpResult http_request(const base::HostPort& to, const std::string& method,
                        const std::string& target, std::chrono::milliseconds timeout,
                        const std::string& bearer_token = {});

}  // namespace smtplb::admin
