#pragma once
#include <cstddef>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/pool.hpp"
#include "io/asio.hpp"

namespace smtplb::io {

class ConnectionCache;

// Leave to open one new connection to a backend, under its max_connections
// (Pool::try_open_connection). Given back when destroyed, or by opened()
// once the connection counts itself.
class ConnectionSlot {
  public:
    ConnectionSlot() = default;
    // Counted in `pool` (a backend with a max_connections).
    ConnectionSlot(core::Pool& pool, std::size_t backend)
        : pool_(&pool), backend_(backend), granted_(true) {}
    // A backend without a max_connections: nothing to count.
    static ConnectionSlot unlimited() {
        ConnectionSlot slot;
        slot.granted_ = true;
        return slot;
    }
    static ConnectionSlot refused(std::string why) {
        ConnectionSlot slot;
        slot.failure_ = std::move(why);
        return slot;
    }
    ConnectionSlot(ConnectionSlot&& other) noexcept { *this = std::move(other); }
    ConnectionSlot& operator=(ConnectionSlot&& other) noexcept;
    ConnectionSlot(const ConnectionSlot&) = delete;
    ConnectionSlot& operator=(const ConnectionSlot&) = delete;
    ~ConnectionSlot() { opened(); }

    explicit operator bool() const { return granted_; }
    // The connection opened on this slot is counted now by its own
    // Pool::connection_opened() (BackendConnection's constructor, a tcp
    // session's): the slot's count is given back. Call it right after that,
    // with no co_await between. Without it the connection is counted twice
    // until the slot is destroyed: never over the cap, only under it.
    void opened();
    // Why there is no slot, for the tracking log's attempt.
    const std::string& failure() const { return failure_; }

  private:
    core::Pool* pool_ = nullptr;  // what it holds a count in; none: nothing
    std::size_t backend_ = 0;
    bool granted_ = false;
    std::string failure_;
};

// The connection slots of one configuration generation's backends, shared
// by its event loops (backend max_connections, pool connection_wait).
//
// A transaction that needs a new connection to a backend at its cap first
// has the idle cached connections to that backend closed (its own loop's
// at once, the other loops' on their threads: the transaction could take
// none of them, or ConnectionCache::take() would have given it one), then
// waits at most connection_wait. Every connection closed to that backend,
// on any loop, wakes one waiter: its timer is cancelled on its own loop
// (asio::post), and it tries again. A waiter leaves the list before its
// coroutine is gone, so nothing is posted to a loop that no longer runs it.
class ConnectionSlots : public std::enable_shared_from_this<ConnectionSlots> {
  public:
    using Log = std::function<void(const std::string&)>;
    explicit ConnectionSlots(Log log) : log_(std::move(log)) {}

    // Each event loop's cache: idle connections there may be closed to make
    // room. Held weakly (a cache holds its slots).
    void add_cache(const std::shared_ptr<ConnectionCache>& cache);
    // The pool's closed connections wake waiters from now on.
    void watch(core::Pool& pool);

    // A slot for a new connection to `backend`, waiting for one at most the
    // pool's connection_wait; `own` is the caller's loop's cache (null: the
    // one added for the loop it runs on, if any), which also says when to
    // give up (closing()). A refused slot
    // has counted the wait's timeout and logged it (at most once a minute
    // per backend); it says nothing about the backend's health.
    awaitable<ConnectionSlot> reserve(core::Pool& pool, std::size_t backend, ConnectionCache* own);
    // Whether a transaction waits for a slot to this backend now: an idle
    // connection to it is then closed rather than kept.
    bool waiting(const core::Pool& pool, std::size_t backend) const;
    // Wakes every waiter (abort): each gives up if its cache is closing.
    void wake_all();

  private:
    struct Waiter;
    using Key = std::pair<const core::Pool*, std::size_t>;
    // Leaves the list when the waiting coroutine ends or is destroyed.
    struct Enrolment;

    void wake_one(const Key& key);
    // Under the lock: a slot now, or `waiter` queued for one.
    bool take_or_queue(core::Pool& pool, std::size_t backend,
                       const std::shared_ptr<Waiter>& waiter);
    // Takes `waiter` off the list; true when it had been woken.
    bool withdraw(const Key& key, const std::shared_ptr<Waiter>& waiter);
    void close_idle(const core::Pool& pool, std::size_t backend, ConnectionCache* own);
    // The cache of the loop that runs on `executor`, if one was added.
    std::shared_ptr<ConnectionCache> cache_on(const asio::any_io_executor& executor);

    mutable std::mutex mutex_;
    std::map<Key, std::list<std::shared_ptr<Waiter>>> waiters_;
    std::vector<std::weak_ptr<ConnectionCache>> caches_;
    Log log_;
};

}  // namespace smtplb::io
