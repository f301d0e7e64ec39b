#include "io/cluster/shared_limits.hpp"

#include <algorithm>

#include "base/text.hpp"

namespace smtplb::io {
namespace {

using Outcome = std::pair<std::optional<core::LimitBatchResult>, RedisReply::Kind>;

// The store answers on its own executor (the client's loop); the session
// resumes on its own: the completion is posted back there.
awaitable<Outcome> run_on_store(std::shared_ptr<RedisLimitStore> store,
                                std::vector<std::string> names, core::LimitBatch batch) {
    auto initiate = [store = std::move(store), names = std::move(names),
                     batch = std::move(batch)](auto handler) mutable {
        auto guard = asio::make_work_guard(asio::get_associated_executor(handler));
        // std::function wants a copyable callable; the handler is move-only.
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        store->execute(
            std::move(names), std::move(batch),
            [shared, guard = std::move(guard)](std::optional<core::LimitBatchResult> result,
                                               RedisReply::Kind kind) mutable {
                auto executor = guard.get_executor();
                asio::post(executor,
                           [shared, outcome = Outcome{std::move(result), kind}]() mutable {
                               std::move (*shared)(std::move(outcome));
                           });
                guard.reset();
            });
    };
    return asio::async_initiate<decltype(use_awaitable), void(Outcome)>(std::move(initiate),
                                                                        use_awaitable);
}

}  // namespace

SharedLimits::SharedLimits(std::shared_ptr<core::LimitSet> set, std::string node, EventLog log)
    : set_(std::move(set)), node_(std::move(node)), log_(std::move(log)) {
    for (const auto& l : set_->limits())
        names_.push_back(l.name);
}

void SharedLimits::use_store(std::shared_ptr<RedisLimitStore> store) {
    std::lock_guard lock(mutex_);
    store_ = std::move(store);
}

void SharedLimits::set_live_nodes(std::function<std::size_t()> live_nodes) {
    std::lock_guard lock(mutex_);
    if (live_nodes) live_nodes_ = std::move(live_nodes);
}

void SharedLimits::carry_over(const SharedLimits& previous) {
    stats_ = previous.stats_;
    local_ = previous.local_;
    std::lock_guard lock(previous.mutex_);
    live_nodes_ = previous.live_nodes_;
}

std::uint64_t SharedLimits::leases_held() const {
    std::lock_guard lock(mutex_);
    return store_ ? store_->leases_held() : 0;
}

std::uint64_t SharedLimits::round_trips() const {
    std::lock_guard lock(mutex_);
    return store_ ? store_->round_trips() : 0;
}

void SharedLimits::switched(bool to_redis, const char* reason) {
    // Logged once per switch, not per check.
    if (local_->exchange(!to_redis) == !to_redis) return;
    if (!log_) return;
    if (to_redis)
        log_("event=cluster_limits_shared node=" + base::logfmt_value(node_));
    else
        log_("event=cluster_limits_local node=" + base::logfmt_value(node_) + " reason=" + reason +
             " note=\"shared limits decided on this node, divided by the live nodes\"");
}

core::LimitVerdict SharedLimits::locally(core::LimitEvent event, const core::LimitSubject& subject,
                                         base::Clock::TimePoint now) {
    std::shared_ptr<core::LimitSet> fallback;
    {
        std::lock_guard lock(mutex_);
        const std::size_t nodes = std::max<std::size_t>(1, live_nodes_());
        // Built again when the number of nodes changes (its state starts afresh).
        if (!fallback_ || fallback_nodes_ != nodes) {
            auto limits = set_->local_share(nodes);
            fallback_ =
                std::make_shared<core::LimitSet>(limits, core::LimitSet::in_process_store(limits));
            fallback_nodes_ = nodes;
        }
        fallback = fallback_;
    }
    return fallback->check(event, subject, now);
}

std::size_t SharedLimits::live_nodes() const {
    std::lock_guard lock(mutex_);
    return std::max<std::size_t>(1, live_nodes_());
}

awaitable<core::LimitVerdict> SharedLimits::check(core::LimitEvent event,
                                                  const core::LimitSubject& subject,
                                                  base::Clock::TimePoint now) {
    auto batch = set_->plan(event, subject);
    if (batch.empty()) co_return core::LimitVerdict{};
    std::shared_ptr<RedisLimitStore> store;
    {
        std::lock_guard lock(mutex_);
        store = store_;
    }
    if (!store || !store->connected()) {
        ++stats_->local;
        switched(false, "redis_unreachable");
        co_return locally(event, subject, now);
    }
    // What the units held here meet; the rest goes to Redis, asking ahead
    // for the busy keys (core::RateGrants).
    auto split = grants_.split(batch, live_nodes(), now);
    if (split.remote.empty()) {
        ++stats_->met_here;
        core::LimitBatchResult all;
        all.refused = batch.ops.size();
        all.ops.resize(batch.ops.size());
        co_return set_->conclude(event, batch, all, store);
    }
    auto [result, kind] = co_await run_on_store(store, names_, split.remote);
    ++stats_->events[static_cast<std::size_t>(event)];
    auto all = grants_.merge(batch, split, std::move(result), now);
    if (!all) {
        ++stats_->timeout;
        switched(false, kind == RedisReply::Kind::Timeout ? "timeout" : "redis_failed");
        co_return locally(event, subject, now);
    }
    ++stats_->redis;
    switched(true, "");
    co_return set_->conclude(event, batch, *all, store);
}

}  // namespace smtplb::io
