#include "io/cluster/hiredis_sentinel.hpp"

#include "base/text.hpp"

namespace smtplb::io {

std::unique_ptr<RedisClient> make_cluster_redis_client(const asio::any_io_executor& executor,
                                                       const config::Cluster& cluster,
                                                       const HiredisSettings& settings) {
    if (cluster.uses_sentinels()) return make_hiredis_sentinel_client(executor, cluster, settings);
    return std::make_unique<HiredisClient>(executor, settings);
}

std::unique_ptr<SentinelClient> make_hiredis_sentinel_client(const asio::any_io_executor& executor,
                                                             const config::Cluster& cluster,
                                                             const HiredisSettings& settings) {
    SentinelSettings s;
    s.sentinels = cluster.sentinels;
    s.master_name = cluster.master_name;
    auto factory = [executor, settings, sentinel_password = cluster.sentinel_password](
                       const base::HostPort& at, bool to_sentinel) {
        auto mine = settings;
        mine.redis = at;
        if (to_sentinel) {
            // A sentinel that does not answer soon is passed over for the next.
            mine.password = sentinel_password;
            mine.timeout = Millis(200);
            mine.connect_timeout = Millis(500);
        }
        return std::make_unique<HiredisClient>(executor, mine);
    };
    return std::make_unique<SentinelClient>(executor, s, factory);
}

void report_master_moves(SentinelClient& client,
                         const std::shared_ptr<core::cluster::ClusterStats>& stats,
                         const std::string& node,
                         const std::function<void(const std::string&)>& log) {
    auto who = " node=" + base::logfmt_value(node);
    client.on_master_change([stats, who, log](const std::string& from, const std::string& to,
                                              const std::string& reason) {
        stats->set_master(to);
        auto why = " reason=" + base::logfmt_value(reason);
        if (from.empty()) {
            log("event=cluster_master_found master=" + base::logfmt_value(to) + why + who);
            return;
        }
        ++stats->master_changes;
        log("event=cluster_master_changed old=" + base::logfmt_value(from) +
            " new=" + base::logfmt_value(to) + why + who);
    });
    client.on_unanswered([who, log](const std::string& reason) {
        log("event=cluster_master_unknown reason=" + base::logfmt_value(reason) +
            " note=\"no sentinel named the master: asking again\"" + who);
    });
}

}  // namespace smtplb::io
