#include "io/discovery/discoverer.hpp"

#include <algorithm>

namespace smtplb::io {

// Shared with its coroutine, which may outlive a configure() that dropped
// it (a lookup in flight): `stopped` tells it to end without a word.
struct Discoverer::Entry {
    Entry(const asio::any_io_executor& executor, std::string pool, config::Discover discover)
        : state(std::move(pool), std::move(discover), clock), timer(executor) {}
    base::SystemClock clock;  // before `state`, which refers to it
    core::PoolDiscovery state;
    asio::steady_timer timer;
    Discoverer* owner = nullptr;  // null once stopped
};

Discoverer::Discoverer(asio::any_io_executor executor, EventLog log, Changed changed)
    : executor_(std::move(executor)), log_(std::move(log)), changed_(std::move(changed)) {}

// Stopping cancels timers and closes sockets: only an allocation failure
// could throw, and that ends the process anyway.
// NOLINTNEXTLINE(bugprone-exception-escape)
Discoverer::~Discoverer() {
    stop();
}

void Discoverer::stop() {
    for (auto& e : entries_) {
        e->owner = nullptr;
        e->timer.cancel();
    }
    entries_.clear();
}

awaitable<void> Discoverer::run(std::shared_ptr<Entry> entry) {
    for (;;) {
        if (!entry->owner || !entry->owner->resolver_) co_return;
        // Copies: a reload may replace the resolver while this one asks.
        auto discover = entry->state.discover();
        auto resolver = entry->owner->resolver_;
        auto answer = co_await resolver->resolve(discover);
        auto* owner = entry->owner;
        if (!owner) co_return;
        auto step = entry->state.on_answer(answer);
        for (const auto& event : step.events)
            if (owner->log_) owner->log_(event);
        if (step.changed && owner->changed_) owner->changed_();
        entry->timer.expires_at(step.next);
        auto [ec] = co_await entry->timer.async_wait(use_nothrow);
        (void)ec;                      // cancelled or expired: `owner` says which matters
        if (!entry->owner) co_return;  // stopped (cancelled, or gone meanwhile)
    }
}

void Discoverer::configure(const config::Config& config) {
    std::vector<std::shared_ptr<Entry>> next;
    for (const auto& p : config.pools) {
        if (!p.discover) continue;
        auto same = std::find_if(entries_.begin(), entries_.end(), [&](const auto& e) {
            return e->state.pool() == p.name && e->state.discover() == *p.discover;
        });
        if (same != entries_.end()) {
            next.push_back(*same);
            entries_.erase(same);
            continue;
        }
        auto entry = std::make_shared<Entry>(executor_, p.name, *p.discover);
        entry->owner = this;
        next.push_back(entry);
        asio::co_spawn(executor_, run(entry), asio::detached);
    }
    stop();  // what is left was dropped
    entries_ = std::move(next);
}

void Discoverer::apply(config::Config& config) const {
    for (auto& p : config.pools) {
        if (!p.discover) continue;
        const auto* found = find(p.name);
        if (found && found->discover() == *p.discover) core::add_discovered(p, found->backends());
    }
}

std::vector<const core::PoolDiscovery*> Discoverer::pools() const {
    std::vector<const core::PoolDiscovery*> out;
    for (const auto& e : entries_)
        out.push_back(&e->state);
    return out;
}

const core::PoolDiscovery* Discoverer::find(const std::string& pool) const {
    for (const auto& e : entries_)
        if (e->state.pool() == pool) return &e->state;
    return nullptr;
}

}  // namespace smtplb::io
