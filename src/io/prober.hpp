#pragma once
#include <optional>
#include <string>
#include <vector>

#include "base/network.hpp"
#include "io/asio.hpp"
#include "io/backend_connector.hpp"
#include "proto/probe.hpp"

namespace smtplb::io {

struct ProbeLine {
    std::chrono::microseconds at;  // since the probe started
    proto::ProbeSession::Event event;
};

struct ProbeReport {
    proto::ProbeResult result;
    std::vector<ProbeLine> transcript;  // filled only when asked for
    std::chrono::microseconds elapsed{0};
};

// Runs one health probe against `to` within `timeout` (connect included).
// The verdict never waits for the polite end: RSET/QUIT get what is left of
// the timeout and cannot change it.
awaitable<ProbeReport> run_probe(BackendConnector& connector, base::HostPort to,
                                 std::optional<base::IpAddress> source, proto::ProbePlan plan,
                                 Millis timeout, bool with_transcript);

// The same on a loop of its own, for the command line (probe, audit).
ProbeReport run_probe_blocking(base::HostPort to, std::optional<base::IpAddress> source,
                               proto::ProbePlan plan, Millis timeout);

}  // namespace smtplb::io
