#pragma once
#include <functional>
#include <memory>
#include <string>

#include "base/clock.hpp"
#include "config/config.hpp"
#include "core/cluster/shared_admin.hpp"
#include "io/cluster/redis_client.hpp"

namespace smtplb::io {

class Balancer;

// The backends' administrative state (drain, maintenance, enabled) shared
// by every node through Redis (docs/cluster.md): a hash KEY_PREFIX:admin,
// one field "POOL/BACKEND" per backend set through any node, and a channel
// KEY_PREFIX:admin:changes announcing each change. A change made here is
// applied here at once and then written and announced; each node re-reads
// the hash on every announcement and whenever its link to Redis is made
// again, and Redis's state wins. Without Redis a node keeps its own state.
// Runs on the daemon's first loop, where the admin API runs.
class SharedAdminState {
  public:
    using EventLog = std::function<void(const std::string& line)>;
    SharedAdminState(const config::Cluster& cluster, std::unique_ptr<RedisClient> client,
                     const base::Clock& clock, EventLog log);
    ~SharedAdminState();
    SharedAdminState(const SharedAdminState&) = delete;
    SharedAdminState& operator=(const SharedAdminState&) = delete;

    // The generation that runs now (at start, after each reload): its
    // admin changes are shared from now on, and it is brought up to date.
    void attach(Balancer& balancer);
    void detach();
    void start();
    void stop();

    const std::shared_ptr<core::cluster::ClusterStats>& stats() const { return stats_; }
    const std::string& hash_key() const { return hash_key_; }
    const std::string& channel() const { return channel_; }

  private:
    void changed_here(const std::string& pool, const std::string& backend, core::AdminState state);
    void reread();
    void apply(const RedisReply& hash);
    void link_changed(bool up, const std::string& reason);
    void count_failure(const RedisReply& reply);

    config::Cluster cluster_;
    std::unique_ptr<RedisClient> client_;
    const base::Clock& clock_;
    EventLog log_;
    std::string hash_key_;
    std::string channel_;
    std::shared_ptr<core::cluster::ClusterStats> stats_;
    core::cluster::LinkState link_;
    core::cluster::ReadGuard reads_;
    Balancer* balancer_ = nullptr;
};

}  // namespace smtplb::io
