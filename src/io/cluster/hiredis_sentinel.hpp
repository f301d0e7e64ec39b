#pragma once
#include <functional>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "core/cluster/shared_admin.hpp"
#include "io/cluster/hiredis_client.hpp"
#include "io/cluster/sentinel_client.hpp"

namespace smtplb::io {

// The daemon's Redis Sentinel client ([cluster] sentinels): hiredis
// clients for the sentinels (short deadlines: each is asked in turn) and
// for whichever master they name, with `settings` (password, timeout).
std::unique_ptr<SentinelClient> make_hiredis_sentinel_client(const asio::any_io_executor& executor,
                                                             const config::Cluster& cluster,
                                                             const HiredisSettings& settings);

// The link to the cluster's Redis that `cluster` names: the master the
// sentinels name (`sentinels`), else `redis` itself.
std::unique_ptr<RedisClient> make_cluster_redis_client(const asio::any_io_executor& executor,
                                                       const config::Cluster& cluster,
                                                       const HiredisSettings& settings);

// The master's moves logged (one logfmt line each, through `log`), counted
// and shown (`stats`: metrics and status).
void report_master_moves(SentinelClient& client,
                         const std::shared_ptr<core::cluster::ClusterStats>& stats,
                         const std::string& node,
                         const std::function<void(const std::string&)>& log);

}  // namespace smtplb::io
