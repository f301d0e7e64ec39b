#include "io/cluster/shared_admin_state.hpp"

#include <map>

#include "base/text.hpp"
#include "io/balancer.hpp"

namespace smtplb::io {

SharedAdminState::SharedAdminState(const config::Cluster& cluster,
                                   std::unique_ptr<RedisClient> client, const base::Clock& clock,
                                   EventLog log)
    : cluster_(cluster),
      client_(std::move(client)),
      clock_(clock),
      log_(std::move(log)),
      hash_key_(cluster.key_prefix + ":admin"),
      channel_(cluster.key_prefix + ":admin:changes"),
      stats_(std::make_shared<core::cluster::ClusterStats>()) {
    // Whatever the announcement says, the hash is the truth: read it whole.
    client_->subscribe(channel_, [this](const std::string&) { reread(); });
    client_->on_link_change(
        [this](bool up, const std::string& reason) { link_changed(up, reason); });
}

SharedAdminState::~SharedAdminState() {
    stop();
    detach();
}

void SharedAdminState::start() {
    client_->start();
}

void SharedAdminState::stop() {
    client_->stop();
}

void SharedAdminState::attach(Balancer& balancer) {
    detach();
    balancer_ = &balancer;
    balancer.set_cluster_stats(stats_);
    balancer.set_admin_hook([this](const std::string& pool, const std::string& backend,
                                   core::AdminState state) { changed_here(pool, backend, state); });
    if (client_->connected()) reread();  // its backends may be new
}

void SharedAdminState::detach() {
    if (balancer_) balancer_->set_admin_hook(nullptr);
    balancer_ = nullptr;
}

void SharedAdminState::link_changed(bool up, const std::string& reason) {
    auto redis = cluster_.redis_description();
    auto line = up ? link_.connected(clock_.now(), redis) : link_.lost(clock_.now(), redis, reason);
    stats_->redis_up = link_.up();
    if (line) {
        if (up)
            ++stats_->switched_up;
        else
            ++stats_->switched_down;
        if (log_) log_(*line + " node=" + base::logfmt_value(cluster_.node_name));
    }
    // Redis's state wins: whatever was set here meanwhile gives way to it.
    if (up) reread();
}

void SharedAdminState::changed_here(const std::string& pool, const std::string& backend,
                                    core::AdminState state) {
    std::string fields =
        "pool=" + base::logfmt_value(pool) + " backend=" + base::logfmt_value(backend) +
        " state=" + core::to_string(state) + " node=" + base::logfmt_value(cluster_.node_name);
    if (!client_->connected()) {
        ++stats_->admin_local_only;
        if (log_)
            log_("event=cluster_admin_local_only " + fields +
                 " reason=redis_unreachable note=\"Redis's state wins when it is back\"");
        return;
    }
    reads_.wrote();  // a read issued before this would undo it for a moment
    auto field = core::cluster::admin_field(pool, backend);
    client_->command({"HSET", hash_key_, field, core::to_string(state)},
                     [this, fields](const RedisReply& reply) {
                         if (reply.ok()) return;
                         count_failure(reply);
                         ++stats_->admin_local_only;
                         if (log_)
                             log_("event=cluster_admin_local_only " + fields +
                                  " reason=" + base::logfmt_value(reply.text));
                     });
    client_->command({"PUBLISH", channel_, cluster_.node_name + " " + field},
                     [this](const RedisReply& reply) {
                         if (!reply.ok()) count_failure(reply);
                     });
}

void SharedAdminState::reread() {
    auto token = reads_.begin_read();
    client_->command({"HGETALL", hash_key_}, [this, token](const RedisReply& reply) {
        if (!reply.ok())
            return count_failure(reply);   // the next announcement or reconnect reads again
        if (!reads_.fresh(token)) return;  // a change made here since; its announcement re-reads
        apply(reply);
    });
}

void SharedAdminState::apply(const RedisReply& hash) {
    if (!balancer_) return;
    std::map<std::string, std::string> remote;
    for (std::size_t i = 0; i + 1 < hash.elements.size(); i += 2)
        remote[hash.elements[i].text] = hash.elements[i + 1].text;
    std::vector<core::cluster::AdminEntry> local;
    for (const auto& pool : balancer_->pools()) {
        auto guard = pool->lock();
        for (const auto& b : pool->backends())
            local.push_back({pool->name(), b.config.name, b.health.admin()});
    }
    auto result = core::cluster::reconcile(local, remote);
    for (const auto& field : result.unreadable)
        if (log_)
            log_("event=cluster_admin_unreadable field=" + base::logfmt_value(field) +
                 " value=" + base::logfmt_value(remote[field]) + " action=kept_local");
    for (const auto& change : result.changes) {
        std::string error;
        if (!balancer_->set_backend_state(change.pool, change.backend, change.state, error,
                                          Balancer::AdminOrigin::Cluster))
            continue;
        ++stats_->admin_applied;
        if (log_)
            log_("event=cluster_admin_applied pool=" + base::logfmt_value(change.pool) +
                 " backend=" + base::logfmt_value(change.backend) +
                 " state=" + core::to_string(change.state) + " from=redis");
    }
}

void SharedAdminState::count_failure(const RedisReply& reply) {
    if (reply.kind == RedisReply::Kind::Timeout)
        ++stats_->request_timeouts;
    else
        ++stats_->request_errors;
}

}  // namespace smtplb::io
