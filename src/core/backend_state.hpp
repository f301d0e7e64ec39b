#pragma once
#include <cstdint>
#include <string>

#include "base/clock.hpp"
#include "config/config.hpp"

namespace smtplb::core {

// Counters per backend, for the tracking summary, the demo view and metrics.
struct BackendCounters {
    std::uint64_t attempts = 0;    // transactions started on it
    std::uint64_t delivered = 0;   // messages it answered 250 for
    std::uint64_t rejected = 0;    // 5xx verdicts passed to clients
    std::uint64_t deferred = 0;    // 4xx that sent the transaction elsewhere
    std::uint64_t failed = 0;      // connection or protocol failures
    std::uint64_t recipients = 0;  // recipients it accepted
};

// One backend as the scheduler sees it: configuration plus live load and state.
struct BackendState {
    config::Backend config;
    std::uint32_t active_connections = 0;  // connections open to it
    std::uint32_t pending = 0;             // transactions in flight on it
    std::int64_t smooth_current = 0;       // smooth weighted round robin state
    bool down = false;
    base::Clock::TimePoint retry_at{};  // when a down backend may be tried again
    std::uint32_t consecutive_failures = 0;
    BackendCounters counters;
};

}  // namespace smtplb::core
