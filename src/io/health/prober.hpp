#pragma once
#include <optional>
#include <string>
#include <vector>

#include "base/network.hpp"
#include "io/asio.hpp"
#include "io/backend/backend_connector.hpp"
#include "io/runtime/tls.hpp"
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

// TLS for probes that STARTTLS: the pool's context and checks; without a
// context, an unverified one (the command line's probe).
struct ProbeTls {
    TlsContext context;
    std::string name;  // the name the certificate must carry, when verifying
    bool verify = false;
    bool implicit = false;  // TLS from the first byte (the pool's "implicit" mode)
};

// The probe TLS a pool's live traffic implies, for its health checks.
ProbeTls probe_tls_for(const config::Pool& pool, std::size_t backend, const TlsContext& context);
void plan_tls_for(const config::Pool& pool, proto::ProbePlan& plan);

// Runs one health probe against `to` within `timeout` (connect included).
// The verdict never waits for the polite end: RSET/QUIT get what is left of
// the timeout and cannot change it.
awaitable<ProbeReport> run_probe(BackendConnector& connector, base::HostPort to,
                                 std::optional<base::IpAddress> source, proto::ProbePlan plan,
                                 Millis timeout, bool with_transcript, ProbeTls tls);

}  // namespace smtplb::io
