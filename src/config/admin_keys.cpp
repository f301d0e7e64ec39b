#include "config/admin_keys.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>

#include "base/text.hpp"

namespace smtplb::config {
namespace {

constexpr std::size_t kMaxAdminHosts = 32;
constexpr std::size_t kMaxHostName = 253;  // RFC 1035's limit for a whole name
constexpr std::size_t kMaxToken = 1024;    // it travels in every request's header

// A DNS name (letters, digits, '-', '.', '_') or an address; no port, no scheme.
bool valid_host_name(const std::string& name) {
    if (name.empty() || name.size() > kMaxHostName) return false;
    if (base::IpAddress::parse(name)) return true;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
    });
}

void read_admin_tls(TableReader& parent, Server& s) {
    const auto* table = parent.table("admin_tls");
    if (!table) return;
    s.admin_tls_line = parent.line_of("admin_tls");
    TableReader r(*table, parent.key_path("admin_tls"), parent.diagnostics());
    r.string("cert", s.admin_tls.cert, true);
    r.string("key", s.admin_tls.key, true);
    if (s.admin_tls.cert.empty() || s.admin_tls.key.empty()) return;
    // Whether they hold a usable certificate and key is known once OpenSSL
    // loads them: `check` and the start do (admin/http_server.cpp).
    for (const auto& [key, path] : {std::pair{"cert", s.admin_tls.cert}, {"key", s.admin_tls.key}})
        if (!std::ifstream(path))
            r.diagnostics().error(r.key_path(key), r.line_of(key), "cannot read \"" + path + "\"");
    s.admin_tls.mode = ServerTlsMode::Implicit;
}

}  // namespace

std::string read_token_line(const std::string& path, bool& readable) {
    std::ifstream in(path);
    readable = static_cast<bool>(in);
    std::string token;
    std::getline(in, token);
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back())))
        token.pop_back();
    return token;
}

void read_admin_security(TableReader& r, Server& s) {
    auto& d = r.diagnostics();
    r.string("admin_readonly_token_file", s.admin_readonly_token_file);
    if (!s.admin_readonly_token_file.empty()) {
        const auto key = "admin_readonly_token_file";
        bool readable = false;
        s.admin_readonly_token = read_token_line(s.admin_readonly_token_file, readable);
        if (!readable)
            d.error(r.key_path(key), r.line_of(key),
                    "cannot read \"" + s.admin_readonly_token_file + "\"");
        else if (s.admin_readonly_token.size() > kMaxToken)
            d.error(r.key_path(key), r.line_of(key),
                    "the token must have at most " + std::to_string(kMaxToken) + " characters");
        else if (s.admin_readonly_token.size() < 16)
            d.error(r.key_path(key), r.line_of(key),
                    "the token (the file's first line) must have at least 16 characters");
        else if (s.admin_token_file.empty())
            // Without the admin token every request would be allowed anyway.
            d.error(r.key_path(key), r.line_of(key),
                    "a read-only token needs admin_token_file (the token that may change things)");
        else if (s.admin_readonly_token == s.admin_token)
            d.error(r.key_path(key), r.line_of(key),
                    "must differ from the token in admin_token_file");
    }
    std::vector<std::string> hosts;
    r.strings("admin_hosts", hosts);
    if (hosts.size() > kMaxAdminHosts)
        d.error(r.key_path("admin_hosts"), r.line_of("admin_hosts"),
                "at most " + std::to_string(kMaxAdminHosts) + " names");
    s.admin_hosts.clear();
    for (auto& h : hosts) {
        std::transform(h.begin(), h.end(), h.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (!valid_host_name(h))
            d.error(r.key_path("admin_hosts"), r.line_of("admin_hosts"),
                    "\"" + base::printable(h) +
                        "\" is not a host name or address (no port, no scheme)");
        else
            s.admin_hosts.push_back(h);
    }
    read_admin_tls(r, s);
}

}  // namespace smtplb::config
