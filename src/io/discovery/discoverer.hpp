#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.hpp"
#include "config/config.hpp"
#include "core/discovery.hpp"
#include "io/asio.hpp"
#include "io/discovery/discovery_resolver.hpp"

namespace smtplb::io {

// Runs the pools' `discover` (docs/cluster.md): each discovering pool asks
// DNS, hands the answer to its core::PoolDiscovery and waits until that
// says to ask again. It outlives configuration generations: when a pool's
// backends change, `changed` is told, and its owner builds the next
// generation from the running configuration with apply() (the way a
// reload adds and drains backends, keeping the health and counters of
// those that stay). Runs on one executor (loop 0); not thread-safe.
class Discoverer {
  public:
    using Changed = std::function<void()>;
    using EventLog = std::function<void(const core::DiscoveryEvent&)>;
    Discoverer(asio::any_io_executor executor, EventLog log, Changed changed);
    ~Discoverer();
    Discoverer(const Discoverer&) = delete;
    Discoverer& operator=(const Discoverer&) = delete;

    // Who answers from the next question on (the nameservers are read at
    // start and on every reload, as for client names).
    void use_resolver(std::shared_ptr<DiscoveryResolver> resolver) {
        resolver_ = std::move(resolver);
    }
    // Follows `config`'s discovering pools: one whose `discover` is as
    // before keeps its list and schedule; a new or changed one starts
    // asking now; one that is gone stops.
    void configure(const config::Config& config);
    // `config`'s pools with the backends DNS found for them (for a pool
    // whose `discover` is the one followed).
    void apply(config::Config& config) const;
    // Stops every pool's asking (shutdown); lookups in flight end unheard.
    void stop();

    // For status and metrics.
    std::vector<const core::PoolDiscovery*> pools() const;
    const core::PoolDiscovery* find(const std::string& pool) const;

  private:
    struct Entry;
    static awaitable<void> run(std::shared_ptr<Entry> entry);

    asio::any_io_executor executor_;
    std::shared_ptr<DiscoveryResolver> resolver_;
    EventLog log_;
    Changed changed_;
    std::vector<std::shared_ptr<Entry>> entries_;
};

}  // namespace smtplb::io
