#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/clock.hpp"
#include "config/config.hpp"
#include "core/client_names.hpp"

namespace smtplb::core {

// A pool's backends from DNS (pool.discover, docs/cluster.md): the pure
// half. io asks the questions (MX or SRV, then each host's A and AAAA; or
// the name's A and AAAA) and hands the answers here; what they make of the
// pool, when to ask again and what to keep when DNS fails are decided here.

// One host the DNS named (an MX exchange, an SRV target, the `a` name) and
// what its A and AAAA questions gave, together: Ok with the addresses of
// both, NoName when neither has any, TempFail when either failed.
struct DiscoveredHost {
    std::string host;             // without the final dot
    std::uint32_t priority = 10;  // MX preference, SRV priority
    std::uint32_t weight = 1;     // SRV weight
    std::uint16_t port = 25;
    DnsAnswer addresses;
};

struct DiscoveryAnswer {
    // The MX or SRV question's (for `a`: Ok, with the one host).
    DnsStatus status = DnsStatus::TempFail;
    std::optional<std::uint32_t> ttl;  // the smallest of the MX or SRV records
    std::optional<std::uint32_t> negative_ttl;
    std::vector<DiscoveredHost> hosts;
};

// The backends an answer gives, in a stable order (priority, host,
// address), each address once (its lowest priority wins): named
// "HOST@ADDRESS" ("HOST:PORT@ADDRESS" for SRV), MX preference or SRV
// priority as `priority`, SRV weight as `weight` (0 counts as 1, the
// smallest weight a backend has). An `a` name's addresses get priority 10,
// weight 1 and discover.port.
struct DiscoveredBackends {
    enum class Kind {
        Found,   // at least one backend
        Empty,   // DNS says there is nothing (NXDOMAIN, no records, no addresses)
        Failed,  // DNS did not answer (or not for every host)
    };
    Kind kind = Kind::Failed;
    std::vector<config::Backend> backends;
    std::optional<std::uint32_t> ttl;  // the smallest TTL of what was used
    std::string reason;                // Empty and Failed: why, for the log
};
DiscoveredBackends backends_from(const config::Discover& discover, const DiscoveryAnswer& answer);

// One line for the event log: "event=NAME" and its fields (logfmt).
struct DiscoveryEvent {
    std::string event;
    std::vector<std::pair<std::string, std::string>> fields;
};

// One pool's discovery over time. The first answer with backends fills the
// pool; a later answer replaces the list when it differs. An answer that
// fails, or says there is nothing, keeps the last list (a typo in a zone
// must not empty a pool); its streak is logged once and every one counted.
// Asks again after the answers' smallest TTL, within [min_refresh,
// max_refresh]; after a failure, after min_refresh.
class PoolDiscovery {
  public:
    PoolDiscovery(std::string pool, config::Discover discover, const base::Clock& clock);

    struct Step {
        bool changed = false;                     // backends() differs from before this answer
        std::vector<std::string> added, removed;  // backend names
        std::vector<DiscoveryEvent> events;       // to log
        base::Clock::TimePoint next;              // when to ask again
    };
    Step on_answer(const DiscoveryAnswer& answer);

    const std::string& pool() const { return pool_; }
    const config::Discover& discover() const { return discover_; }
    // The last good list; empty until DNS first gave one.
    const std::vector<config::Backend>& backends() const { return backends_; }
    bool answered() const { return answered_; }
    base::Clock::TimePoint next_refresh() const { return next_; }
    // Resolutions that failed or found nothing, in all (a metric).
    std::uint64_t failures() const { return failures_; }
    // Of the current streak (0: the last one succeeded).
    std::uint64_t failing() const { return failing_; }
    const std::string& last_error() const { return last_error_; }

  private:
    base::Clock::TimePoint after(std::optional<std::uint32_t> ttl, bool failed) const;

    std::string pool_;
    config::Discover discover_;
    const base::Clock& clock_;
    std::vector<config::Backend> backends_;
    bool answered_ = false;
    base::Clock::TimePoint next_{};
    std::uint64_t failures_ = 0;
    std::uint64_t failing_ = 0;
    std::string last_error_;
};

// The pool as it runs: the file's backends, then those DNS found (whose
// names cannot collide: they carry an '@').
void add_discovered(config::Pool& pool, const std::vector<config::Backend>& discovered);

}  // namespace smtplb::core
