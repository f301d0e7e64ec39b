#pragma once
#include <optional>

#include "base/network.hpp"
#include "io/health/prober.hpp"
#include "proto/probe.hpp"

namespace smtplb::tools {

// One health probe (io::run_probe, with its transcript) on a loop of its
// own, for the command line (probe, audit).
io::ProbeReport run_probe_blocking(base::HostPort to, std::optional<base::IpAddress> source,
                                   proto::ProbePlan plan, io::Millis timeout);

}  // namespace smtplb::tools
