#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "base/clock.hpp"
#include "base/counter.hpp"
#include "config/config.hpp"
#include "core/health.hpp"
#include "core/metrics.hpp"
#include "core/pool_capabilities.hpp"

namespace smtplb::core {

// Counters per backend, for the tracking summary, the demo view and metrics.
struct BackendCounters {
    base::Counter attempts = 0;    // transactions started on it
    base::Counter delivered = 0;   // messages it answered 250 for
    base::Counter rejected = 0;    // 5xx verdicts passed to clients
    base::Counter deferred = 0;    // 4xx that sent the transaction elsewhere
    base::Counter failed = 0;      // connection or protocol failures
    base::Counter recipients = 0;  // recipients it accepted
    // Transactions it carried without the client's identity: it announced
    // no XCLIENT (or no ADDR), or an attribute had to be left out.
    base::Counter identity_not_offered = 0;
    base::Counter identity_incomplete = 0;
    // Transactions that found it at its max_connections and waited for a
    // connection slot, and those whose connection_wait ran out.
    base::Counter connection_waits = 0;
    base::Counter connection_wait_timeouts = 0;
    // Messages converted to 7-bit MIME for it: it lacks 8BITMIME (issue 25).
    base::Counter converted_8bit = 0;
    // Messages whose body went to it as it arrived (Transaction::body_arriving).
    base::Counter streamed = 0;
    // Picks that passed it over at its per-destination shaping limit for
    // one of the transaction's recipient domains ([[pool.destination_limit]]).
    base::Counter shaping_skips = 0;
};

// One backend as the scheduler sees it: configuration plus live load and state.
struct BackendState {
    BackendState(const config::Backend& backend, const config::Pool& pool)
        : config(backend), effective_weight(backend.weight * 1000), health(pool) {}

    config::Backend config;
    // The weight schedulers use: the configured one in thousandths, lowered
    // during slow start.
    std::uint32_t effective_weight;
    std::uint32_t active_connections = 0;  // connections open to it
    std::uint32_t pending = 0;             // transactions in flight on it
    std::int64_t smooth_current = 0;       // smooth weighted round robin state
    BackendHealth health;
    ReplyRates rates;
    Histogram reply_seconds;  // end of a message until the backend's reply
    BackendCounters counters;
    // Its last known EHLO capabilities (probes, opened connections).
    BackendCapabilities capabilities;
    // Healthy, but not for long: "certificate expires in 3 days" (probes).
    std::string warning;
    // When the event log last heard that it was at its max_connections,
    // and that a wait for a slot ran out (Pool::connection_wait_*).
    std::optional<base::Clock::TimePoint> cap_logged;
    std::optional<base::Clock::TimePoint> wait_timeout_logged;
};

}  // namespace smtplb::core
