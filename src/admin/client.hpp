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

// TLS towards an admin listener with server.admin_tls.
struct ClientTls {
    bool enabled = false;
    // PEM certificates the listener's must chain to (or be: a certificate
    // given here is trusted as it is, self-signed or not).
    std::string trust_file;
    // The trust file is the listener's own certificate (read from the
    // configuration): it is enough that the peer presents it; otherwise the
    // certificate must also carry the address or name connected to.
    bool pinned = false;
};

// One request to a running daemon's admin listener, for `smtplb status`,
// `backend`, `reload`, `queue`; blocks for at most `timeout`. It carries the
// Host the listener expects (its address) and, unless it is a GET, the JSON
// body `{}` as application/json, as the listener requires of every request
// that changes something.
HttpResult http_request(const base::HostPort& to, const std::string& method,
                        const std::string& target, std::chrono::milliseconds timeout,
                        const std::string& bearer_token = {}, const ClientTls& tls = {});

}  // namespace smtplb::admin
