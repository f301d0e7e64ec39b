#include "admin/access.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>

#include "admin/assets.hpp"
#include "base/network.hpp"

namespace smtplb::admin {
namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// "Bearer <token>", compared in time independent of where it differs.
bool bearer_matches(std::string_view header, const std::string& token) {
    constexpr std::string_view kScheme = "Bearer ";
    if (token.empty() || header.size() != kScheme.size() + token.size() ||
        header.substr(0, kScheme.size()) != kScheme)
        return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < token.size(); ++i)
        diff |= static_cast<unsigned char>(header[kScheme.size() + i] ^ token[i]);
    return diff == 0;
}

bool is_wildcard(const std::string& host) {
    return host == "0.0.0.0" || host == "::";
}

// Splits "name", "name:port", "[v6]" or "[v6]:port"; false when malformed.
bool split_authority(std::string_view text, std::string& name, std::optional<std::uint16_t>& port) {
    std::string_view rest;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos) return false;
        name = lower(text.substr(1, close - 1));
        rest = text.substr(close + 1);
    } else {
        auto colon = text.find(':');
        name = lower(text.substr(0, colon));
        rest = colon == std::string_view::npos ? std::string_view{} : text.substr(colon);
    }
    if (name.empty()) return false;
    if (rest.empty()) return true;
    if (rest.front() != ':' || rest.size() < 2 || rest.size() > 6) return false;
    unsigned value = 0;
    for (char c : rest.substr(1)) {
        if (!std::isdigit(static_cast<unsigned char>(c))) return false;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 65535) return false;
    port = static_cast<std::uint16_t>(value);
    return true;
}

std::string json_error(std::string_view media_type) {
    return "state-changing requests need Content-Type: application/json with a JSON body"
           " (this one is \"" +
           std::string(media_type.empty() ? "none" : media_type) + "\")";
}

}  // namespace

AccessPolicy AccessPolicy::from(const config::Server& server, std::uint16_t bound_port) {
    AccessPolicy p;
    if (server.admin_bind) p.bind_host = lower(server.admin_bind->host);
    p.port = bound_port;
    p.tls = server.admin_tls.enabled();
    p.admin_token = server.admin_token;
    p.readonly_token = server.admin_readonly_token;
    p.host_names = server.admin_hosts;
    return p;
}

bool acceptable_host(const AccessPolicy& policy, std::string_view host,
                     std::optional<std::uint16_t> implied_port) {
    std::string name;
    std::optional<std::uint16_t> port;
    if (!split_authority(host, name, port)) return false;
    if (!port) port = implied_port;
    // A port, when given, is this listener's (browsers leave out 80 and 443).
    if (port && *port != policy.port) return false;
    if (auto ip = base::IpAddress::parse(name)) {
        // An address names no one else's site: a rebinding page always
        // arrives under the attacker's name. On a wildcard bind, any of ours.
        if (is_wildcard(policy.bind_host)) return true;
        auto bound = base::IpAddress::parse(policy.bind_host);
        return bound && bound->to_string() == ip->to_string();
    }
    if (name == "localhost") {
        auto bound = base::IpAddress::parse(policy.bind_host);
        return bound && (bound->is_loopback() || is_wildcard(policy.bind_host));
    }
    return std::find(policy.host_names.begin(), policy.host_names.end(), name) !=
           policy.host_names.end();
}

std::optional<Refusal> check_access(const AccessPolicy& policy, const RequestFacts& request) {
    if (!acceptable_host(policy, request.host))
        return Refusal{421,
                       "the Host header \"" + std::string(request.host.substr(0, 100)) +
                           "\" is not this admin listener's address or one of server.admin_hosts"};
    const bool reads = request.method == "GET" || request.method == "HEAD";
    auto path = request.target.substr(0, request.target.find('?'));
    if (reads && find_asset(path)) return std::nullopt;  // the page asks for the token itself
    bool read_only = false;
    if (!policy.admin_token.empty() && !bearer_matches(request.authorization, policy.admin_token)) {
        read_only = bearer_matches(request.authorization, policy.readonly_token);
        if (!read_only) return Refusal{401, "a valid bearer token is required", true};
    }
    if (reads) return std::nullopt;
    if (read_only) return Refusal{403, "the read-only token allows GET requests only"};
    if (request.origin) {
        // Browsers send it with every POST: from any other site's page, the
        // request is cross-site (CSRF). CLI clients send none.
        std::string_view origin = *request.origin;
        std::string_view scheme = policy.tls ? "https://" : "http://";
        // An origin is scheme, host and port: http://127.0.0.1 is port 80's.
        const std::uint16_t default_port = policy.tls ? 443 : 80;
        if (!origin.starts_with(scheme) ||
            !acceptable_host(policy, origin.substr(scheme.size()), default_port))
            return Refusal{403, "cross-origin request refused: Origin \"" +
                                    std::string(origin.substr(0, 100)) +
                                    "\" is not this admin listener"};
    }
    auto media_type = lower(request.content_type.substr(0, request.content_type.find(';')));
    while (!media_type.empty() && media_type.back() == ' ')
        media_type.pop_back();
    if (media_type != "application/json") return Refusal{403, json_error(media_type)};
    boost::system::error_code ec;
    boost::json::parse(request.body, ec);
    if (ec)
        return Refusal{403,
                       "state-changing requests need a JSON body (\"{}\" when there is "
                       "nothing to say): " +
                           ec.message()};
    return std::nullopt;
}

}  // namespace smtplb::admin
