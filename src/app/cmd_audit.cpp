#include <iostream>
#include <set>

#include "audit_routing_facts.hpp"
#include "base/text.hpp"
#include "commands.hpp"
#include "config/loader.hpp"
#include "core/audit.hpp"
#include "proto/identity.hpp"
#include "tools/dns_resolver.hpp"
#include "tools/prober_blocking.hpp"

namespace smtplb::app {

namespace {

using Finding = core::Finding;
using S = Finding::Severity;

// One probe of a backend from one balancer address, as a listener with
// this identity mode reaches it, judged by core.
void audit_backend(const config::Config& config, const config::Pool& pool,
                   const config::Backend& backend, const std::optional<base::IpAddress>& source,
                   config::IdentityMode mode, std::vector<Finding>& out) {
    proto::ProbePlan plan{proto::ProbeDepth::Rcpt, config.server.hostname, core::kAuditSender,
                          core::kAuditRecipient};
    core::ProbeIdentity identity;
    identity.wants_xclient = mode == config::IdentityMode::Xclient;
    identity.proxy = mode == config::IdentityMode::ProxyV1 || mode == config::IdentityMode::ProxyV2;
    if (identity.proxy) {
        // As smtplb would send it for a client from outside.
        proto::ClientIdentity outside;
        outside.address = *base::IpAddress::parse(core::kAuditProxyClient);
        outside.port = 40000;
        outside.local_address = source ? *source : *base::IpAddress::parse("127.0.0.1");
        outside.local_port = 25;
        plan.preamble = mode == config::IdentityMode::ProxyV1 ? proto::proxy_v1_header(outside)
                                                              : proto::proxy_v2_header(outside);
    }
    auto report =
        tools::run_probe_blocking(backend.address, source, plan, std::chrono::seconds(10));
    bool banner = false, ehlo_answered = false;
    for (const auto& line : report.transcript) {
        if (line.event.kind != proto::ProbeSession::Event::Kind::Received) continue;
        const auto& text = line.event.text;
        if (text.find("XCLIENT") != std::string::npos) identity.announces_xclient = true;
        // The first reply after the banner answers the PROXY header when the
        // backend took it as a command: 500/502, "command not recognized".
        if (banner && !ehlo_answered && identity.proxy && text.rfind("50", 0) == 0)
            identity.proxy_refused = true;
        if (banner && text.rfind("250", 0) == 0) ehlo_answered = true;
        if (text.rfind("220", 0) == 0) banner = true;
    }
    std::string where = "pool " + pool.name + ", backend " + backend.name + " (" +
                        backend.address.to_string() + ") from " +
                        (source ? source->to_string() : std::string("the default address")) +
                        (identity.proxy ? " with a PROXY header" : "");
    auto findings = core::audit_probe(where, report.result, identity);
    bool refused =
        report.result.step == "rcpt" && report.result.verdict != proto::ProbeVerdict::Healthy;
    bool clean = findings.empty();
    for (auto& f : findings)
        out.push_back(std::move(f));
    // The plain relay attempt was refused: the tricks that fooled relay
    // checks before, each on a connection of its own.
    if (!refused || !clean) return;
    for (const auto& form : core::relay_battery(backend.address.host)) {
        plan.rcpt_to = form;
        auto tried =
            tools::run_probe_blocking(backend.address, source, plan, std::chrono::seconds(10));
        if (auto f = core::audit_relay_form(where, form, tried.result))
            out.push_back(std::move(*f));
    }
}

}  // namespace

// The domains' MX records against the balancer's listeners.
bool audit_dns(const config::Config& config, const std::vector<std::string>& domains,
               const std::string& dns_server, std::vector<Finding>& out) {
    std::optional<base::HostPort> server;
    if (!dns_server.empty()) {
        server = base::HostPort::parse(dns_server);
        if (!server || !base::IpAddress::parse(server->host)) {
            std::cerr << "smtplb audit: --dns must be ADDRESS:PORT with a numeric address\n";
            return false;
        }
    }
    std::string error;
    auto resolver = tools::make_dns_resolver(server, error);
    if (!resolver) {
        out.push_back({S::Warning, "DNS", "MX records were not checked: " + error,
                       "pass --dns ADDRESS:PORT"});
        return true;
    }
    std::vector<std::string> addresses;
    for (const auto& l : config.listeners)
        addresses.push_back(l.bind.host);
    // A backup MX that is this balancer can queue only if its pools spool.
    bool spools = false;
    for (const auto& p : config.pools)
        spools |= p.on_unavailable == config::OnUnavailable::Spool;
    for (const auto& domain : domains)
        for (auto& f : core::audit_mx(resolver->mx(base::to_lower(domain)), addresses, spools))
            out.push_back(std::move(f));
    return true;
}

int run_audit(const std::string& path, bool offline, const std::vector<std::string>& domains,
              const std::string& dns_server) {
    auto loaded = config::load_file(path);
    if (!loaded.config) {
        std::cerr << loaded.diagnostics.format(path) << path << ": configuration is not valid\n";
        return 1;
    }
    const auto& config = *loaded.config;
    auto findings = core::audit_config(config);
    if (!offline) {
        // Transparent listeners: the routing that brings the backends' replies back.
        auto targets = core::transparent_targets(config);
        if (!targets.empty())
            for (auto& f : core::audit_transparent_routing(config, gather_routing_facts(targets)))
                findings.push_back(std::move(f));
        for (const auto& pool : config.pools) {
            // Each address the balancer reaches this pool from, and how
            // that listener passes identity on.
            std::set<std::pair<std::string, config::IdentityMode>> seen;
            for (const auto& l : config.listeners) {
                bool uses = l.pool == pool.name;
                for (const auto& route : config.routes)
                    uses |= route.pool == pool.name && route.serves(l.name);
                if (!uses) continue;
                std::string key = l.source_address ? l.source_address->to_string() : "";
                if (!seen.insert({key, l.client_identity}).second) continue;
                for (const auto& backend : pool.backends)
                    audit_backend(config, pool, backend, l.source_address, l.client_identity,
                                  findings);
            }
        }
    }
    if (!offline && !domains.empty() && !audit_dns(config, domains, dns_server, findings))
        return 64;
    int problems = 0, warnings = 0, notes = 0;
    for (const auto& f : findings) {
        std::cout << core::to_string(f.severity) << ": " << f.where << ": " << f.what << "\n"
                  << "    fix: " << f.fix << "\n";
        (f.severity == S::Problem ? problems : f.severity == S::Warning ? warnings : notes)++;
    }
    std::cout << problems << " problems, " << warnings << " warnings, " << notes << " notes"
              << (offline ? " (configuration only)" : "") << "\n";
    return problems > 0 ? 1 : 0;
}

}  // namespace smtplb::app
