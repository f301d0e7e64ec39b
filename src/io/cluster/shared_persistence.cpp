#include "io/cluster/shared_persistence.hpp"

#include "io/balancer.hpp"

namespace smtplb::io {

SharedPersistence::SharedPersistence(const config::Cluster& cluster, RedisClient& client,
                                     const asio::any_io_executor& executor,
                                     std::shared_ptr<core::cluster::RegistryStats> stats)
    : cluster_(cluster),
      client_(client),
      executor_(executor),
      stats_(std::move(stats)),
      channel_(cluster.key_prefix + ":sticks") {
    client_.subscribe(channel_, [this](const std::string& text) { heard(text); });
}

SharedPersistence::~SharedPersistence() {
    *alive_ = false;
    detach();
}

std::string SharedPersistence::stick_key(const std::string& pool, const std::string& client) const {
    return cluster_.key_prefix + ":stick:" + pool + ":" + client;
}

std::string SharedPersistence::message(const std::string& node, const std::string& pool,
                                       const std::string& client, const std::string& backend) {
    return encode_stick({node, pool, client, backend});
}

void SharedPersistence::attach(Balancer& balancer) {
    detach();
    balancer_ = &balancer;
    for (const auto& pool : balancer.pools()) {
        if (!pool->persistent()) continue;
        // On whichever loop picked, under the pool's lock: hand it off.
        pool->set_stick_hook(
            [this, alive = std::weak_ptr<bool>(alive_), executor = executor_, name = pool->name()](
                const std::string& client, const std::string& backend) {
                asio::post(executor, [this, alive, name, client, backend] {
                    if (!alive.expired()) made_here(name, client, backend);
                });
            });
    }
}

void SharedPersistence::detach() {
    if (balancer_)
        for (const auto& pool : balancer_->pools())
            pool->set_stick_hook(nullptr);
    balancer_ = nullptr;
}

void SharedPersistence::made_here(const std::string& pool, const std::string& client,
                                  const std::string& backend) {
    if (!client_.connected()) {  // the stick stays this node's own
        ++stats_->sticks_failed;
        return;
    }
    const auto* p = balancer_ ? balancer_->pool(pool) : nullptr;
    auto ttl =
        p ? std::chrono::duration_cast<std::chrono::milliseconds>(p->config().persistence_ttl)
          : std::chrono::milliseconds(0);
    if (ttl.count() <= 0) return;
    auto alive = std::weak_ptr<bool>(alive_);
    client_.command({"SET", stick_key(pool, client), backend, "PX", std::to_string(ttl.count())},
                    [this, alive](const RedisReply& reply) {
                        if (alive.expired()) return;
                        if (reply.ok())
                            ++stats_->sticks_shared;
                        else
                            ++stats_->sticks_failed;
                    });
    client_.command({"PUBLISH", channel_, message(cluster_.node_name, pool, client, backend)},
                    [](const RedisReply&) {});
}

void SharedPersistence::heard(const std::string& text) {
    auto stick = parse(text);
    if (!stick || stick->node == cluster_.node_name || !balancer_) return;
    auto* pool = balancer_->pool(stick->pool);
    if (pool && pool->adopt_stick(stick->client, stick->backend)) ++stats_->sticks_applied;
}

}  // namespace smtplb::io
