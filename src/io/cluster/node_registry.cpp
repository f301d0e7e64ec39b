#include "io/cluster/node_registry.hpp"

#include <boost/json.hpp>

#include "config/describe.hpp"
#include "io/balancer.hpp"

namespace smtplb::io {
namespace json = boost::json;

std::string running_config_digest(const config::Config& config) {
    // What DNS found comes and goes on each node at its own moment: only
    // the `discover` setting, which describe() prints, is compared.
    auto copy = config;
    for (auto& pool : copy.pools)
        std::erase_if(pool.backends,
                      [](const config::Backend& b) { return !b.discovered_from.empty(); });
    return core::cluster::config_digest(config::describe(copy));
}

NodeRegistry::NodeRegistry(const config::Cluster& cluster, RedisClient& client,
                           const asio::any_io_executor& executor, const base::Clock& clock,
                           std::string version, EventLog log, Timing timing)
    : cluster_(cluster),
      client_(client),
      clock_(clock),
      version_(std::move(version)),
      log_(std::move(log)),
      timing_(timing),
      index_key_(cluster.key_prefix + ":nodes"),
      started_ms_(clock.wall_ms()),
      table_(cluster.node_name, timing.expiry, timing.forget_after),
      stats_(std::make_shared<core::cluster::RegistryStats>()),
      timer_(executor) {}

// Stopping cancels timers and closes sockets: only an allocation failure
// could throw, and that ends the process anyway.
// NOLINTNEXTLINE(bugprone-exception-escape)
NodeRegistry::~NodeRegistry() {
    *alive_ = false;
    stop();
}

std::string NodeRegistry::node_key(const std::string& node) const {
    return cluster_.key_prefix + ":node:" + node;
}

void NodeRegistry::attach(Balancer& balancer) {
    balancer_ = &balancer;
    digest_ = running_config_digest(balancer.config());
    balancer.set_node_registry(this);
}

void NodeRegistry::detach() {
    if (balancer_) balancer_->set_node_registry(nullptr);
    balancer_ = nullptr;
}

void NodeRegistry::start() {
    running_ = true;
    arm();  // the first heartbeat a period from now: the link is made meanwhile
}

void NodeRegistry::stop() {
    running_ = false;
    timer_.cancel();
}

void NodeRegistry::arm() {
    if (!running_) return;
    timer_.expires_after(timing_.interval);
    timer_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](const error_code& ec) {
        if (ec || alive.expired()) return;
        tick();
    });
}

core::cluster::Heartbeat NodeRegistry::heartbeat() {
    core::cluster::Heartbeat h;
    h.node = cluster_.node_name;
    h.version = version_;
    h.digest = digest_;
    h.started_ms = started_ms_;
    h.sequence = ++sequence_;
    h.messages_per_second = rate_;
    if (!balancer_) return h;
    h.sessions = balancer_->active_sessions();
    std::uint64_t delivered = 0;
    for (const auto& pool : balancer_->pools()) {
        auto guard = pool->lock();
        for (const auto& b : pool->backends()) {
            delivered += b.counters.delivered;
            std::string reason;
            if (const auto& change = b.health.last_change()) reason = change->reason;
            h.backends.push_back({pool->name(), b.config.name, core::to_string(b.health.state()),
                                  core::to_string(b.health.admin()),
                                  b.health.accepts_new(clock_.now()), reason});
        }
    }
    // Messages relayed per second since the last heartbeat (a reload's new
    // counters, smaller than before, count as none).
    auto now = clock_.now();
    if (have_delivered_ && now > delivered_at_ && delivered >= delivered_before_)
        rate_ = double(delivered - delivered_before_) /
                std::chrono::duration<double>(now - delivered_at_).count();
    h.messages_per_second = rate_;
    delivered_before_ = delivered;
    delivered_at_ = now;
    have_delivered_ = true;
    return h;
}

void NodeRegistry::tick() {
    arm();
    auto alive = std::weak_ptr<bool>(alive_);
    if (!client_.connected()) {
        ++stats_->heartbeat_failures;
        last_read_ok_ = false;
        return;
    }
    client_.command({"SET", node_key(cluster_.node_name), encode_heartbeat(heartbeat()), "PX",
                     std::to_string(timing_.expiry.count())},
                    [this, alive](const RedisReply& reply) {
                        if (alive.expired()) return;
                        if (reply.ok())
                            ++stats_->heartbeats;
                        else
                            ++stats_->heartbeat_failures;
                    });
    client_.command({"SADD", index_key_, cluster_.node_name}, [](const RedisReply&) {});
    read();
}

void NodeRegistry::read() {
    auto alive = std::weak_ptr<bool>(alive_);
    client_.command({"SMEMBERS", index_key_}, [this, alive](const RedisReply& reply) {
        if (alive.expired()) return;
        if (!reply.ok() || reply.kind != RedisReply::Kind::Array) {
            ++stats_->reads_failed;
            last_read_ok_ = false;
            return;
        }
        std::vector<std::string> names;
        for (const auto& e : reply.elements)
            if (e.kind == RedisReply::Kind::String) names.push_back(e.text);
        read_nodes(names);
    });
}

void NodeRegistry::read_nodes(const std::vector<std::string>& names) {
    auto alive = std::weak_ptr<bool>(alive_);
    if (names.empty()) return;
    std::vector<std::string> args{"MGET"};
    for (const auto& name : names)
        args.push_back(node_key(name));
    client_.command(std::move(args), [this, alive, names](const RedisReply& reply) {
        if (alive.expired()) return;
        if (!reply.ok() || reply.kind != RedisReply::Kind::Array) {
            ++stats_->reads_failed;
            last_read_ok_ = false;
            return;
        }
        last_read_ok_ = true;
        std::vector<core::cluster::Heartbeat> found;
        for (const auto& e : reply.elements)
            if (e.kind == RedisReply::Kind::String)
                if (auto h = decode_heartbeat(e.text)) found.push_back(std::move(*h));
        auto now = clock_.now();
        for (const auto& event : table_.observe(found, now))
            if (log_) log_(event);
        // Long gone: out of the index too, so that it stops being read.
        for (const auto& gone : table_.forget(now))
            client_.command({"SREM", index_key_, gone}, [](const RedisReply&) {});
        stats_->live_nodes = table_.live_at_last_read();
        stats_->known_nodes = table_.view(now).size();
    });
}

}  // namespace smtplb::io
