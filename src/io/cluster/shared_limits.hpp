#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "core/limits/limit_set.hpp"
#include "core/limits/rate_grants.hpp"
#include "io/asio.hpp"
#include "io/cluster/redis_limit_store.hpp"

namespace smtplb::io {

// Counters of the shared limits, for /metrics (docs/cluster.md).
struct SharedLimitStats {
    std::atomic<std::uint64_t> redis{0};     // checks Redis answered
    std::atomic<std::uint64_t> local{0};     // decided here: Redis not connected
    std::atomic<std::uint64_t> timeout{0};   // decided here: Redis too slow or failing
    std::atomic<std::uint64_t> met_here{0};  // met from units granted ahead: no round trip
    // Per event (core::LimitEvent's order): events checked against Redis.
    // (Their round trips are the store's: several events share a call.)
    std::array<std::atomic<std::uint64_t>, 4> events{};
};

// The shared limits of one generation's LimitSet (those check() leaves
// alone with [cluster]): what units of shared rates this node already holds
// (core::RateGrants) are spent here; the rest of the event goes as one
// batch to the RedisLimitStore (asking ahead for busy keys), with
// [cluster] timeout as its deadline (the client's); without an answer in
// time, or without a store, they are decided here, each divided by the
// nodes alive (live_nodes()), and Redis is used again once it answers.
// Thread-safe: sessions on every loop call check().
class SharedLimits {
  public:
    using EventLog = std::function<void(const std::string& line)>;
    SharedLimits(std::shared_ptr<core::LimitSet> set, std::string node, EventLog log);

    // Null: decided here only (until a store is attached).
    void use_store(std::shared_ptr<RedisLimitStore> store);
    // How many nodes share the limits now (the node registry); default 1.
    void set_live_nodes(std::function<std::size_t()> live_nodes);
    // Carries the counters and the local/shared state of a reload's previous generation.
    void carry_over(const SharedLimits& previous);

    // The verdict of the shared limits for `event` (Allow when none applies).
    awaitable<core::LimitVerdict> check(core::LimitEvent event, const core::LimitSubject& subject,
                                        base::Clock::TimePoint now);

    const SharedLimitStats& stats() const { return *stats_; }
    std::uint64_t leases_held() const;
    // Requests the store has sent Redis (scripts, their loading, renewals).
    std::uint64_t round_trips() const;
    // Events met entirely from grants held here (no round trip).
    std::uint64_t met_here() const { return stats_->met_here.load(); }

  private:
    core::LimitVerdict locally(core::LimitEvent event, const core::LimitSubject& subject,
                               base::Clock::TimePoint now);
    void switched(bool to_redis, const char* reason);
    std::size_t live_nodes() const;

    std::shared_ptr<core::LimitSet> set_;
    std::string node_;
    EventLog log_;
    std::vector<std::string> names_;  // the limits' names, by index
    mutable std::mutex mutex_;
    std::shared_ptr<RedisLimitStore> store_;
    std::function<std::size_t()> live_nodes_ = [] { return std::size_t(1); };
    // The shared limits as applied here alone, for `fallback_nodes_` nodes.
    std::shared_ptr<core::LimitSet> fallback_;
    std::size_t fallback_nodes_ = 0;
    std::shared_ptr<SharedLimitStats> stats_ = std::make_shared<SharedLimitStats>();
    core::RateGrants grants_;
    // Shared with a reload's next generation: the switch is logged once.
    std::shared_ptr<std::atomic<bool>> local_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace smtplb::io
