#include "core/policy.hpp"
#include "base/text.hpp"

namespace smtplb::core {
namespace {
proto::Reply denied(const char* text) {
    return proto::Reply::make(550, "5.7.1", text);
}
}  // namespace

bool RelayPolicy::may_relay(const base::IpAddress& client, bool authenticated) const {
    if (authenticated) return true;
    if (listener_.role != config::Role::Relay) return false;
    for (const auto& net : listener_.trusted_networks)
        if (net.contains(client)) return true;
    return false;
}

std::optional<proto::Reply> RelayPolicy::check_sender(bool authenticated) const {
    if (listener_.role == config::Role::Submission && !authenticated)
        return proto::Reply::make(530, "5.7.0", "Authentication required");
    return std::nullopt;
}

bool RelayPolicy::accepts_domain(const std::string& domain) const {
    for (const auto& d : listener_.accepted_domains) {
        if (d == domain) return true;
        // ".example.net" accepts every subdomain of example.net.
        if (!d.empty() && d.front() == '.' && domain.size() > d.size() &&
            domain.compare(domain.size() - d.size(), d.size(), d) == 0)
            return true;
    }
    return false;
}

std::optional<proto::Reply> RelayPolicy::check_recipient(const base::IpAddress& client,
                                                         bool authenticated,
                                                         const proto::Mailbox& rcpt) const {
    if (may_relay(client, authenticated)) return std::nullopt;
    if (listener_.role == config::Role::Submission)
        return proto::Reply::make(530, "5.7.0", "Authentication required");
    // Sender-specified routing (RFC 5321 §3.6.1, source routes; %-hack, bang
    // paths, quoted '@') lets an outsider relay through a backend that
    // trusts us: refused before any backend sees it.
    if (rcpt.had_source_route) return denied("Source routes are not accepted");
    if (rcpt.has_routing_characters())
        return denied("Recipient address has routing characters (% ! @)");
    if (rcpt.quoted_local && rcpt.local.find('\\') != std::string::npos)
        return denied("Quoted local part with escapes is not accepted");
    if (rcpt.domain.empty()) return std::nullopt;  // <postmaster>, RFC 5321 §4.5.1
    if (rcpt.address_literal) return denied("Relay access denied (address literal)");
    if (!accepts_domain(rcpt.domain)) return denied("Relay access denied");
    return std::nullopt;
}

}  // namespace smtplb::core

namespace smtplb::core {

std::optional<proto::Reply> RelayPolicy::check_known_recipient(const proto::Mailbox& rcpt) const {
    if (listener_.recipients_file.empty()) return std::nullopt;
    auto address = base::to_lower(rcpt.address());
    auto domain = base::to_lower(rcpt.domain);
    const auto& known = listener_.known_recipients;
    if (known.count(address) || known.count("@" + domain)) return std::nullopt;
    return proto::Reply::make(550, "5.1.1",
                              "<" + rcpt.address() + ">: Recipient address rejected: User unknown");
}

}  // namespace smtplb::core
