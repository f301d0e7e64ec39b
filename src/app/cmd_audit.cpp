#include <iostream>
#include <set>

#include "commands.hpp"
#include "config/loader.hpp"
#include "core/audit.hpp"
#include "io/backend_connector.hpp"
#include "io/prober.hpp"

namespace smtplb::app {

namespace {

using Finding = core::Finding;
using S = Finding::Severity;

// What a backend does for the balancer's address: a probe to a recipient
// domain no backend can be responsible for. A 250 there means the backend
// relays for anything that reaches it from the balancer, whatever policy
// smtplb applies in front of it.
void audit_backend(const config::Config& config, const config::Pool& pool,
                   const config::Backend& backend, const std::optional<base::IpAddress>& source,
                   bool wants_xclient, std::vector<Finding>& out) {
    proto::ProbePlan plan{proto::ProbeDepth::Rcpt, config.server.hostname,
                          "smtplb-audit@audit.invalid", "relay-test@audit.invalid"};
    io::asio::io_context io(1);
    io::TcpConnector connector;
    io::ProbeReport report;
    io::asio::co_spawn(
        io,
        [&]() -> io::awaitable<void> {
            report = co_await io::run_probe(connector, backend.address, source, plan,
                                            std::chrono::seconds(10), true);
        },
        io::asio::detached);
    io.run();
    std::string where = "pool " + pool.name + ", backend " + backend.name + " (" +
                        backend.address.to_string() + ") from " +
                        (source ? source->to_string() : std::string("the default address"));
    const auto& r = report.result;
    if (r.step == "connect" || r.step == "banner" ||
        (r.verdict != proto::ProbeVerdict::Healthy && r.step == "ehlo")) {
        out.push_back({S::Warning, where, "could not be checked: " + r.reason,
                       "make it reachable from this address, or check the configuration"});
        return;
    }
    bool xclient = false;
    for (const auto& line : report.transcript)
        if (line.event.kind == proto::ProbeSession::Event::Kind::Received &&
            line.event.text.find("XCLIENT") != std::string::npos)
            xclient = true;
    if (wants_xclient && !xclient)
        out.push_back({S::Warning, where,
                       "does not announce XCLIENT to the balancer: the client's identity is lost",
                       "Postfix: smtpd_authorized_xclient_hosts = the balancer's addresses"});
    if (r.verdict == proto::ProbeVerdict::Healthy && r.step == "rcpt")
        out.push_back({S::Problem, where,
                       "accepts mail for any domain from the balancer's address (RCPT TO:<" +
                           plan.rcpt_to + "> answered " + (r.reply ? r.reply->summary() : "") +
                           "): an open relay for whatever reaches it through that address",
                       "give the balancer's address no relay rights (Postfix: keep it out of "
                       "mynetworks); smtplb enforces the relay boundary, and XCLIENT lets the "
                       "backend judge the real client"});
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
