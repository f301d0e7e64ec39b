#pragma once
#include <boost/json/array.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.hpp"
#include "config/config.hpp"
#include "core/cluster/node_registry.hpp"
#include "io/asio.hpp"
#include "io/cluster/cluster_messages.hpp"
#include "io/cluster/redis_client.hpp"

namespace smtplb::io {

class Balancer;

// The digest of the configuration a generation runs (per-node keys and
// backends found by DNS left out: docs/cluster.md, "Nodes").
std::string running_config_digest(const config::Config& config);

// The node registry (docs/cluster.md, "Nodes"): every `interval` this node
// writes its heartbeat (version, configuration digest, sessions,
// messages/s, its view of every backend) to KEY_PREFIX:node:NAME with an
// expiry of `expiry`, keeps its name in the set KEY_PREFIX:nodes, and reads
// every node's back into a core::cluster::NodeTable. Runs on the daemon's
// first loop; nothing of it is ever waited on by mail.
class NodeRegistry {
  public:
    struct Timing {
        std::chrono::milliseconds interval{1000};
        std::chrono::milliseconds expiry{3000};
        std::chrono::milliseconds forget_after{std::chrono::hours(1)};
    };
    using EventLog = std::function<void(const core::cluster::RegistryEvent& event)>;
    NodeRegistry(const config::Cluster& cluster, RedisClient& client,
                 const asio::any_io_executor& executor, const base::Clock& clock,
                 std::string version, EventLog log, Timing timing);
    NodeRegistry(const config::Cluster& cluster, RedisClient& client,
                 const asio::any_io_executor& executor, const base::Clock& clock,
                 std::string version, EventLog log)
        : NodeRegistry(cluster, client, executor, clock, std::move(version), std::move(log),
                       Timing{}) {}
    ~NodeRegistry();
    NodeRegistry(const NodeRegistry&) = delete;
    NodeRegistry& operator=(const NodeRegistry&) = delete;

    // The generation that runs now: its configuration's digest, its
    // sessions and backends go into the heartbeats from now on.
    void attach(Balancer& balancer);
    void detach();
    // Heartbeats every `interval` from now on, the first one `interval`
    // from now (the link to Redis is being made meanwhile).
    void start();
    void stop();
    // One heartbeat and one read now (the timer calls it; tests too).
    void tick();

    // Nodes seen alive at the last read of Redis, at least 1 (this one):
    // for shared limits divided among the nodes. Any thread.
    std::size_t live_nodes() const { return stats_->live_nodes.load(); }
    std::vector<core::cluster::NodeView> nodes() const { return table_.view(clock_.now()); }
    std::string majority_digest() const { return table_.majority_digest(clock_.now()); }
    const std::string& node_name() const { return cluster_.node_name; }
    const std::string& digest() const { return digest_; }
    std::chrono::milliseconds expiry() const { return timing_.expiry; }
    // Whether the last read of the heartbeats worked (else the view is old).
    bool last_read_ok() const { return last_read_ok_; }
    const std::shared_ptr<core::cluster::RegistryStats>& stats() const { return stats_; }
    std::string node_key(const std::string& node) const;
    const std::string& index_key() const { return index_key_; }

  private:
    core::cluster::Heartbeat heartbeat();
    void read();
    void read_nodes(const std::vector<std::string>& names);
    void arm();

    config::Cluster cluster_;
    RedisClient& client_;
    const base::Clock& clock_;
    std::string version_;
    EventLog log_;
    Timing timing_;
    std::string index_key_;
    std::string digest_;
    std::int64_t started_ms_ = 0;
    std::uint64_t sequence_ = 0;
    std::uint64_t delivered_before_ = 0;
    base::Clock::TimePoint delivered_at_{};
    bool have_delivered_ = false;
    double rate_ = 0;
    bool last_read_ok_ = false;
    core::cluster::NodeTable table_;
    std::shared_ptr<core::cluster::RegistryStats> stats_;
    Balancer* balancer_ = nullptr;
    asio::steady_timer timer_;
    bool running_ = false;
    // Callbacks still queued when this is gone find it expired.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace smtplb::io
