#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace smtplb::admin {

// Who may ask the admin listener what, apart from HTTP and sockets: built
// from the running configuration and the port actually bound.
struct AccessPolicy {
    std::string bind_host;  // the admin address, e.g. "127.0.0.1" or "::1"
    std::uint16_t port = 0;
    bool tls = false;
    std::string admin_token;              // "" = no token: every request is allowed
    std::string readonly_token;           // GET only
    std::vector<std::string> host_names;  // server.admin_hosts, lower case

    static AccessPolicy from(const config::Server& server, std::uint16_t bound_port);
};

// What of a request decides whether it is allowed.
struct RequestFacts {
    std::string_view method;
    std::string_view target;
    std::string_view host;  // the Host header
    std::optional<std::string_view> origin;
    std::string_view content_type;
    std::string_view authorization;
    std::string_view body;
};

struct Refusal {
    int status = 403;
    std::string reason;
    bool ask_for_token = false;  // 401: answer with WWW-Authenticate: Bearer
};

// Nothing when the request may go on; else why not, in this order:
// 421 for a Host that is not the admin address or an admin_hosts name (DNS
// rebinding); the dashboard's own files need nothing more; 401 without a
// valid token (when one is configured); for anything but GET and HEAD, 403
// for the read-only token, for an Origin other than the admin listener's
// own, for a body that is not JSON sent as application/json.
std::optional<Refusal> check_access(const AccessPolicy& policy, const RequestFacts& request);

// "name" or "name:port" or "[v6]:port" accepted as this listener's
// authority. `implied_port`: the port an authority without one means (an
// Origin's scheme's default); none for Host, which a reverse proxy may
// pass on without the port it was reached on.
bool acceptable_host(const AccessPolicy& policy, std::string_view host,
                     std::optional<std::uint16_t> implied_port = std::nullopt);

}  // namespace smtplb::admin
