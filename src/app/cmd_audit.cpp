#include <iostream>
#include <set>

#include "commands.hpp"
#include "config/loader.hpp"
#include "core/audit.hpp"
#include "io/prober.hpp"

namespace smtplb::app {

namespace {

using Finding = core::Finding;
using S = Finding::Severity;

// One probe of a backend from one balancer address, judged by core.
void audit_backend(const config::Config& config, const config::Pool& pool,
                   const config::Backend& backend, const std::optional<base::IpAddress>& source,
                   bool wants_xclient, std::vector<Finding>& out) {
    proto::ProbePlan plan{proto::ProbeDepth::Rcpt, config.server.hostname, core::kAuditSender,
                          core::kAuditRecipient};
    auto report = io::run_probe_blocking(backend.address, source, plan, std::chrono::seconds(10));
    bool xclient = false;
    for (const auto& line : report.transcript)
        if (line.event.kind == proto::ProbeSession::Event::Kind::Received &&
            line.event.text.find("XCLIENT") != std::string::npos)
            xclient = true;
    std::string where = "pool " + pool.name + ", backend " + backend.name + " (" +
                        backend.address.to_string() + ") from " +
                        (source ? source->to_string() : std::string("the default address"));
    for (auto& f : core::audit_probe(where, report.result, xclient, wants_xclient))
        out.push_back(std::move(f));
}

}  // namespace

int run_audit(const std::string& path, bool offline) {
    auto loaded = config::load_file(path);
    if (!loaded.config) {
        std::cerr << loaded.diagnostics.format(path) << path << ": configuration is not valid\n";
        return 1;
    }
    const auto& config = *loaded.config;
    auto findings = core::audit_config(config);
    if (!offline) {
        for (const auto& pool : config.pools) {
            // Each address the balancer reaches this pool from, and whether
            // that listener passes identity with XCLIENT.
            std::set<std::pair<std::string, bool>> seen;
            for (const auto& l : config.listeners) {
                bool uses = l.pool == pool.name;
                for (const auto& route : config.routes)
                    uses |= route.pool == pool.name;
                if (!uses) continue;
                std::string key = l.source_address ? l.source_address->to_string() : "";
                bool xclient = l.client_identity == config::IdentityMode::Xclient;
                if (!seen.insert({key, xclient}).second) continue;
                for (const auto& backend : pool.backends)
                    audit_backend(config, pool, backend, l.source_address, xclient, findings);
            }
        }
    }
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
