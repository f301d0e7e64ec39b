#pragma once
#include <memory>
#include <string>

#include "base/clock.hpp"
#include "config/config.hpp"
#include "io/balancer.hpp"
#include "io/cluster/hiredis_client.hpp"
#include "io/cluster/node_registry.hpp"
#include "io/cluster/shared_persistence.hpp"

namespace smtplb::app {

// [cluster]: the node registry and the shared source_ip persistence
// (docs/cluster.md, "Nodes"), over a Redis link of their own (their
// channel is not the admin state's), on the daemon's first loop.
struct ClusterNodes {
    std::unique_ptr<io::RedisClient> link;
    std::unique_ptr<io::NodeRegistry> registry;
    std::unique_ptr<io::SharedPersistence> sticks;

    // The generation that runs now (at start, after each reload).
    void attach(io::Balancer& balancer);
    // At shutdown: no more heartbeats (the key expires: the others see
    // this node gone), no more sticks, the link closed.
    void stop();
};

// What of [cluster] a reload cannot change (the passwords too, unprinted).
std::string cluster_settings(const config::Cluster& c);
// How the daemon's clients reach Redis (or the master `c`'s sentinels name).
// `error` is set when [cluster] tls's files do not make a TLS context.
io::HiredisSettings cluster_redis_settings(const config::Cluster& c, std::string& error);

std::unique_ptr<ClusterNodes> start_cluster_nodes(const io::asio::any_io_executor& executor,
                                                  const config::Cluster& cluster,
                                                  const io::HiredisSettings& settings,
                                                  const base::Clock& clock, io::Balancer& balancer);

}  // namespace smtplb::app
