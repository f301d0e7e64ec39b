#include <cstdio>
#include <iostream>

#include "commands.hpp"
#include "tools/prober_blocking.hpp"

namespace smtplb::app {

int run_probe_command(const ProbeOptions& options) {
    auto target = base::HostPort::parse(options.target);
    if (!target || !base::IpAddress::parse(target->host)) {
        std::cerr << "smtplb probe: the target must be ADDRESS:PORT with a numeric address, e.g. "
                     "127.0.0.1:25 or [::1]:25\n";
        return 64;
    }
    proto::ProbePlan plan;
    plan.depth = options.depth;
    plan.helo = options.helo;
    plan.mail_from = options.mail_from;
    plan.rcpt_to = options.rcpt_to;
    if (plan.depth == proto::ProbeDepth::Rcpt && plan.rcpt_to.empty()) {
        std::cerr << "smtplb probe: depth rcpt needs --rcpt-to\n";
        return 64;
    }
    auto report = tools::run_probe_blocking(*target, std::nullopt, plan, options.timeout);

    std::printf("probe %s depth=%s\n", target->to_string().c_str(), proto::to_string(plan.depth));
    static const char* kPrefix[] = {"C: ", "S: ", "   "};
    for (const auto& line : report.transcript) {
        if (line.event.text.rfind("verdict: ", 0) == 0) continue;  // printed below
        std::printf("%8.1f ms  %s%s\n", line.at.count() / 1000.0,
                    kPrefix[static_cast<int>(line.event.kind)], line.event.text.c_str());
    }
    const auto& r = report.result;
    std::printf("result: %s at %s: %s (%.1f ms)\n", proto::to_string(r.verdict), r.step.c_str(),
                r.reason.c_str(), report.elapsed.count() / 1000.0);
    if (!r.warning.empty()) std::printf("warning: %s\n", r.warning.c_str());
    switch (r.verdict) {
        case proto::ProbeVerdict::Healthy:
            return 0;
        case proto::ProbeVerdict::Busy:
            return 1;
        case proto::ProbeVerdict::Down:
        case proto::ProbeVerdict::Misconfigured:
            return 2;
    }
    return 2;
}

}  // namespace smtplb::app
