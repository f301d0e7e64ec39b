#include "io/backend/connection_slots.hpp"

#include <algorithm>
#include <chrono>

#include "base/text.hpp"
#include "base/units.hpp"
#include "io/backend/connection_cache.hpp"

namespace smtplb::io {

ConnectionSlot& ConnectionSlot::operator=(ConnectionSlot&& other) noexcept {
    if (this != &other) {
        opened();
        pool_ = std::exchange(other.pool_, nullptr);
        backend_ = other.backend_;
        granted_ = std::exchange(other.granted_, false);
        failure_ = std::move(other.failure_);
    }
    return *this;
}

void ConnectionSlot::opened() {
    if (auto* pool = std::exchange(pool_, nullptr)) pool->connection_closed(backend_);
}

struct ConnectionSlots::Waiter {
    explicit Waiter(const asio::any_io_executor& executor) : executor(executor), timer(executor) {}
    asio::any_io_executor executor;
    asio::steady_timer timer;  // used on `executor` only
    bool woken = false;        // under the slots' lock
};

struct ConnectionSlots::Enrolment {
    ConnectionSlots& slots;
    Key key;
    std::shared_ptr<Waiter> waiter;
    ~Enrolment() { slots.withdraw(key, waiter); }
};

void ConnectionSlots::add_cache(const std::shared_ptr<ConnectionCache>& cache) {
    std::lock_guard lock(mutex_);
    caches_.push_back(cache);
}

void ConnectionSlots::watch(core::Pool& pool) {
    pool.set_slot_freed([self = shared_from_this(), p = &pool](std::size_t backend) {
        self->wake_one({p, backend});
    });
}

bool ConnectionSlots::waiting(const core::Pool& pool, std::size_t backend) const {
    std::lock_guard lock(mutex_);
    auto it = waiters_.find(Key{&pool, backend});
    return it != waiters_.end() && !it->second.empty();
}

void ConnectionSlots::wake_one(const Key& key) {
    std::lock_guard lock(mutex_);
    auto it = waiters_.find(key);
    if (it == waiters_.end()) return;
    // Still registered, so its coroutine and its loop are still there.
    auto waiter = std::move(it->second.front());
    it->second.pop_front();
    if (it->second.empty()) waiters_.erase(it);
    waiter->woken = true;
    asio::post(waiter->executor, [waiter] { waiter->timer.cancel(); });
}

void ConnectionSlots::wake_all() {
    std::lock_guard lock(mutex_);
    for (auto& [key, list] : waiters_)
        for (auto& waiter : list) {
            waiter->woken = true;
            asio::post(waiter->executor, [waiter] { waiter->timer.cancel(); });
        }
    waiters_.clear();
}

bool ConnectionSlots::take_or_queue(core::Pool& pool, std::size_t backend,
                                    const std::shared_ptr<Waiter>& waiter) {
    // Under the lock, so that a connection closed between the try and the
    // queueing still finds this waiter to wake.
    std::lock_guard lock(mutex_);
    if (pool.try_open_connection(backend)) return true;
    waiter->woken = false;
    waiters_[Key{&pool, backend}].push_back(waiter);
    return false;
}

bool ConnectionSlots::withdraw(const Key& key, const std::shared_ptr<Waiter>& waiter) {
    std::lock_guard lock(mutex_);
    if (auto it = waiters_.find(key); it != waiters_.end()) {
        it->second.remove(waiter);
        if (it->second.empty()) waiters_.erase(it);
    }
    return waiter->woken;
}

std::shared_ptr<ConnectionCache> ConnectionSlots::cache_on(const asio::any_io_executor& executor) {
    std::lock_guard lock(mutex_);
    for (const auto& weak : caches_)
        if (auto cache = weak.lock(); cache && cache->executor() == executor) return cache;
    return nullptr;
}

void ConnectionSlots::close_idle(const core::Pool& pool, std::size_t backend,
                                 ConnectionCache* own) {
    if (own) own->close_idle(pool, backend);
    std::vector<std::shared_ptr<ConnectionCache>> others;
    {
        std::lock_guard lock(mutex_);
        for (const auto& weak : caches_)
            if (auto cache = weak.lock(); cache && cache.get() != own) others.push_back(cache);
    }
    // Each cache belongs to its loop's thread. The pool is only compared
    // there, never used: a generation gone meanwhile has emptied its caches.
    for (auto& cache : others)
        asio::post(cache->executor(),
                   [cache, p = &pool, backend] { cache->close_idle(*p, backend); });
}

awaitable<ConnectionSlot> ConnectionSlots::reserve(core::Pool& pool, std::size_t backend,
                                                   ConnectionCache* own) {
    const auto& config = pool.backend(backend).config;  // never changes: no lock
    if (config.max_connections == 0) co_return ConnectionSlot::unlimited();
    if (pool.try_open_connection(backend)) co_return ConnectionSlot(pool, backend);
    auto self = shared_from_this();  // the waiters' list outlives this wait
    const auto wait = pool.config().connection_wait;
    const auto where = "pool=" + base::logfmt_value(pool.name()) +
                       " backend=" + base::logfmt_value(config.name) +
                       " max_connections=" + std::to_string(config.max_connections);
    if (pool.connection_wait_started(backend))
        log_("event=backend_connections_at_max " + where +
             " connection_wait=" + base::format_duration(wait) +
             " waits=" + std::to_string(pool.backend(backend).counters.connection_waits.load()));
    auto executor = co_await asio::this_coro::executor;
    std::shared_ptr<ConnectionCache> found;  // kept while it is used here
    if (!own) {
        found = cache_on(executor);
        own = found.get();
    }
    close_idle(pool, backend, own);
    auto waiter = std::make_shared<Waiter>(executor);
    Enrolment enrolment{*this, Key{&pool, backend}, waiter};
    const auto deadline = std::chrono::steady_clock::now() + wait;
    auto over = [&] {
        return (own && own->closing()) || std::chrono::steady_clock::now() >= deadline;
    };
    while (!over()) {
        if (take_or_queue(pool, backend, waiter)) co_return ConnectionSlot(pool, backend);
        waiter->timer.expires_at(deadline);
        auto woken_or_expired = co_await waiter->timer.async_wait(use_nothrow);
        (void)woken_or_expired;  // which one, the list says
        bool woken = withdraw(enrolment.key, waiter);
        if (pool.try_open_connection(backend)) co_return ConnectionSlot(pool, backend);
        // A wake-up this waiter cannot use goes to the next one.
        if (woken && over()) wake_one(enrolment.key);
    }
    if (own && own->closing()) co_return ConnectionSlot::refused("shutting down");
    if (pool.connection_wait_timed_out(backend))
        log_("event=connection_wait_timeout " + where +
             " connection_wait=" + base::format_duration(wait) + " timeouts=" +
             std::to_string(pool.backend(backend).counters.connection_wait_timeouts.load()));
    co_return ConnectionSlot::refused("no connection slot within " + base::format_duration(wait) +
                                      " (max_connections " +
                                      std::to_string(config.max_connections) + ")");
}

}  // namespace smtplb::io
