#include "core/audit.hpp"

#include <algorithm>
#include <map>

namespace smtplb::core {

const char* to_string(Finding::Severity severity) {
    switch (severity) {
        case Finding::Severity::Problem:
            return "PROBLEM";
        case Finding::Severity::Warning:
            return "warning";
        case Finding::Severity::Note:
            return "note";
    }
    return "?";
}

std::vector<Finding> audit_config(const config::Config& config) {
    using S = Finding::Severity;
    std::vector<Finding> out;
    for (std::size_t i = 0; i < config.listeners.size(); ++i) {
        const auto& l = config.listeners[i];
        std::string at = "listener[" + std::to_string(i) + "] (" + l.name + ")";
        // Transparent listeners pass the client as the TCP peer itself.
        if (l.client_identity == config::IdentityMode::None && !l.transparent)
            out.push_back({S::Warning, at + ".client_identity",
                           "backends see only the balancer's address: their logs, RBL checks and "
                           "per-client limits lose the real client",
                           "client_identity = \"xclient\" (or proxy-v1/proxy-v2)"});
        for (const auto& net : l.trusted_networks)
            if (net.prefix == 0)
                out.push_back({S::Problem, at + ".trusted_networks",
                               "trusts every address: anyone can relay through this listener",
                               "list only your own networks"});
    }
    for (std::size_t i = 0; i < config.pools.size(); ++i) {
        const auto& p = config.pools[i];
        std::string at = "pool[" + std::to_string(i) + "] (" + p.name + ")";
        const auto depth = p.health.depth;
        if (!p.health.enabled)
            out.push_back({S::Warning, at + ".health",
                           "no active probes: a backend that defers every sender is noticed only "
                           "by live mail",
                           "health = { depth = \"mail\" } (or \"rcpt\" with a recipient)"});
        else if (depth == config::HealthDepth::Connect || depth == config::HealthDepth::Banner ||
                 depth == config::HealthDepth::Ehlo)
            out.push_back({S::Warning, at + ".health.depth",
                           "probes stop before MAIL FROM: a server answering 452 4.3.1 to every "
                           "sender looks healthy",
                           "depth = \"mail\" or \"rcpt\""});
        if (p.persistence == config::Persistence::SourceIp)
            out.push_back({S::Warning, at + ".persistence",
                           "source_ip persistence keeps a busy sender (a filtering appliance) on "
                           "one backend: the skew per-message balancing removes",
                           "persistence = \"none\", unless backends need it"});
        if (p.algorithm == config::Algorithm::SourceHash)
            out.push_back({S::Warning, at + ".algorithm",
                           "source_hash sends all of one client's mail to one backend",
                           "round_robin or least_pending"});
        std::map<std::uint32_t, std::pair<std::uint32_t, std::uint32_t>> weights;  // min, max
        for (const auto& b : p.backends) {
            auto [it, added] = weights.try_emplace(b.priority, b.weight, b.weight);
            it->second.first = std::min(it->second.first, b.weight);
            it->second.second = std::max(it->second.second, b.weight);
        }
        for (const auto& [priority, range] : weights)
            if (range.second >= 4 * range.first)
                out.push_back({S::Note, at + " priority " + std::to_string(priority),
                               "weights from " + std::to_string(range.first) + " to " +
                                   std::to_string(range.second) + ": the heaviest backend gets " +
                                   std::to_string(range.second / range.first) +
                                   " times the lightest one's mail",
                               "intended? smtplb report --by backend shows the shares"});
        if (p.backends.size() == 1)
            out.push_back({S::Note, at,
                           "a single backend: when it is out, clients get 451 (no failover)",
                           "add a backend, or a backup with a higher priority"});
    }
    return out;
}

std::vector<Finding> audit_probe(const std::string& where, const proto::ProbeResult& r,
                                 const ProbeIdentity& identity) {
    using S = Finding::Severity;
    std::vector<Finding> out;
    if (identity.proxy && identity.proxy_refused) {
        out.push_back(
            {S::Problem, where,
             "does not take the PROXY header the listener sends: every connection "
             "through smtplb fails there",
             "Postfix: smtpd_upstream_proxy_protocol = haproxy on the smtpd (or "
             "postscreen_upstream_proxy_protocol), or use client_identity = \"xclient\""});
        return out;
    }
    bool reached_ehlo = r.step != "connect" && r.step != "banner" &&
                        !(r.step == "ehlo" && r.verdict != proto::ProbeVerdict::Healthy);
    if (!reached_ehlo) {
        out.push_back({S::Warning, where, "could not be checked: " + r.reason,
                       "make it reachable from this address, or check the configuration"});
        return out;
    }
    if (identity.wants_xclient && !identity.announces_xclient)
        out.push_back({S::Warning, where,
                       "does not announce XCLIENT to the balancer: the client's identity is lost",
                       "Postfix: smtpd_authorized_xclient_hosts = the balancer's addresses"});
    if (r.verdict == proto::ProbeVerdict::Healthy && r.step == "rcpt")
        out.push_back(
            {S::Problem, where,
             std::string(identity.proxy ? "accepts mail for any domain from an outside client "
                                          "named in the PROXY header ("
                                        : "accepts mail for any domain from the balancer's "
                                          "address (") +
                 "RCPT TO:<" + kAuditRecipient + "> answered " +
                 (r.reply ? r.reply->summary() : "") +
                 "): an open relay for whatever reaches it through that address",
             "give the balancer's address no relay rights (Postfix: keep it out of "
             "mynetworks); smtplb enforces the relay boundary, and XCLIENT lets the "
             "backend judge the real client"});
    return out;
}

std::vector<std::string> relay_battery(const std::string& backend_address) {
    std::string literal = "[" + backend_address + "]";
    return {
        "relay-test%audit.invalid@" + literal,        // percent hack
        "audit.invalid!relay-test@" + literal,        // bang path via the backend
        "audit.invalid!relay-test",                   // bare bang path
        "\"relay-test@audit.invalid\"@" + literal,    // quoted local part
        "\"relay-test@audit.invalid\"",               // quoted, unqualified
        "@" + literal + ":relay-test@audit.invalid",  // source route
        "relay-test%audit.invalid",                   // unqualified percent hack
    };
}

std::optional<Finding> audit_relay_form(const std::string& where, const std::string& form,
                                        const proto::ProbeResult& r) {
    if (r.verdict != proto::ProbeVerdict::Healthy || r.step != "rcpt") return std::nullopt;
    return Finding{Finding::Severity::Problem, where,
                   "relays through an address trick: RCPT TO:<" + form + "> answered " +
                       (r.reply ? r.reply->summary() : std::string("250")),
                   "Postfix: allow_percent_hack = no, swap_bangpath = no, "
                   "resolve_dequoted_address = yes (the default), and no relay rights for "
                   "the balancer's address; check what the form rewrites to"};
}

std::vector<Finding> audit_mx(const MxLookup& lookup,
                              const std::vector<std::string>& balancer_addresses, bool spools) {
    using S = Finding::Severity;
    std::vector<Finding> out;
    std::string where = "domain " + lookup.domain;
    if (!lookup.error.empty()) {
        out.push_back({S::Warning, where, "MX records could not be looked up: " + lookup.error,
                       "check the DNS (or pass --dns ADDRESS:PORT)"});
        return out;
    }
    if (!lookup.exists) {
        out.push_back({S::Problem, where, "does not exist in the DNS (NXDOMAIN)",
                       "publish the zone, or remove the domain from accepted_domains"});
        return out;
    }
    if (lookup.records.empty()) {
        out.push_back({S::Warning, where,
                       "has no MX records: senders fall back to its A/AAAA record",
                       "publish MX records pointing at the balancer's address"});
        return out;
    }
    auto is_balancer = [&](const MxRecord& r) {
        for (const auto& a : r.addresses)
            if (std::find(balancer_addresses.begin(), balancer_addresses.end(), a) !=
                balancer_addresses.end())
                return true;
        return false;
    };
    int best = lookup.records.front().preference;
    for (const auto& r : lookup.records)
        best = std::min(best, r.preference);
    bool any_balancer = false;
    for (const auto& r : lookup.records) {
        if (r.addresses.empty())
            out.push_back({S::Problem, where,
                           "MX " + r.host + " has no A or AAAA record: senders skip it",
                           "publish its address, or remove the MX record"});
        if (!is_balancer(r)) continue;
        any_balancer = true;
        if (r.preference > best && !spools)
            out.push_back({S::Problem, where,
                           "backup MX " + r.host + " (preference " + std::to_string(r.preference) +
                               ") is this balancer, but no pool spools: when the primary is "
                               "down it answers 451 instead of queueing",
                           "set on_unavailable = \"spool\" on the pools it serves (and "
                           "recipients_file on the listener), or remove the backup MX"});
    }
    if (lookup.records.size() == 1 && any_balancer)
        out.push_back({S::Warning, where,
                       "a single MX, and it is this balancer: nothing else takes its mail "
                       "while the balancer is down or being upgraded",
                       "add a second balancer (or a backup MX that queues) with its own MX "
                       "record"});
    if (!any_balancer)
        out.push_back({S::Note, where,
                       "no MX record points at this balancer's listener addresses (" +
                           std::to_string(lookup.records.size()) + " MX)",
                       "intended? mail for it does not come through smtplb"});
    return out;
}

}  // namespace smtplb::core
