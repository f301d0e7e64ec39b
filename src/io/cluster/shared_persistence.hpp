#pragma once
#include <memory>
#include <string>

#include "config/config.hpp"
#include "core/cluster/node_registry.hpp"
#include "io/asio.hpp"
#include "io/cluster/cluster_messages.hpp"
#include "io/cluster/redis_client.hpp"

namespace smtplb::io {

class Balancer;

// Source-IP persistence shared by the nodes (docs/cluster.md, "Shared
// source_ip persistence"): a new stick one node makes in a pool with
// persistence = "source_ip" is written to KEY_PREFIX:stick:POOL:ADDRESS
// (expiring after the pool's persistence_ttl) and published on
// KEY_PREFIX:sticks; every other node puts it in its own table. The pick
// never waits for Redis: the local table decides, a miss is decided
// locally, and a stick reaches the others a moment later. Runs on the
// daemon's first loop; the pools' hooks post to it from any loop.
class SharedPersistence {
  public:
    SharedPersistence(const config::Cluster& cluster, RedisClient& client,
                      const asio::any_io_executor& executor,
                      std::shared_ptr<core::cluster::RegistryStats> stats);
    ~SharedPersistence();
    SharedPersistence(const SharedPersistence&) = delete;
    SharedPersistence& operator=(const SharedPersistence&) = delete;

    void attach(Balancer& balancer);
    void detach();

    const std::string& channel() const { return channel_; }
    std::string stick_key(const std::string& pool, const std::string& client) const;
    // The channel's message for a stick, and back (tab-separated: names
    // and addresses hold no tab).
    static std::string message(const std::string& node, const std::string& pool,
                               const std::string& client, const std::string& backend);
    using Stick = StickMessage;
    static std::optional<Stick> parse(const std::string& message) { return parse_stick(message); }

  private:
    void made_here(const std::string& pool, const std::string& client, const std::string& backend);
    void heard(const std::string& text);

    config::Cluster cluster_;
    RedisClient& client_;
    asio::any_io_executor executor_;
    std::shared_ptr<core::cluster::RegistryStats> stats_;
    std::string channel_;
    Balancer* balancer_ = nullptr;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace smtplb::io
