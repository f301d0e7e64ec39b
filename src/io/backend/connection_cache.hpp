#pragma once
#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>

#include "io/asio.hpp"
#include "io/backend/backend_connection.hpp"
#include "io/backend/connection_slots.hpp"
#include "io/runtime/task_group.hpp"

namespace smtplb::io {

// Idle backend connections kept for reuse, per (pool, backend, source
// address: a transparent one's is its client's), bounded per backend and closed with QUIT after the
// pool's idle timeout, age or message count. Only connections whose identity goes by XCLIENT (or
// none at all) come here, PROXY connections never, and those an XCLIENT bound to one client never
// either (they end with its session); take() still never hands out one that speaks for another
// client.
//
// One per event loop, used only on that loop's thread, except for the
// closing flag, which the generation's owner sets. Connections it ends with
// QUIT are tasks of the generation's group (`tasks`): they refer to its
// pools. Set closing before the generation goes; nothing reaches `tasks`
// from then on.
class ConnectionCache : public std::enable_shared_from_this<ConnectionCache> {
  public:
    ConnectionCache(const asio::any_io_executor& executor, TaskGroup& tasks);
    ~ConnectionCache() { idle_.clear(); }  // before open_, which they unregister from

    // An idle connection that may carry mail of the client with this
    // identity key (BackendConnection::serves), preferring one that already
    // speaks for it. One bound to another client is never handed out.
    std::unique_ptr<BackendConnection> take(core::Pool& pool, std::size_t backend,
                                            const std::optional<base::IpAddress>& source,
                                            const std::string& identity_key);
    // Kept idle for reuse; closed instead when a transaction waits for a
    // slot to its backend (max_connections).
    void put(std::unique_ptr<BackendConnection> connection);
    // Leave to open a new connection to a backend under its max_connections
    // (ConnectionSlots::reserve, with this loop's idle connections to make
    // room): call it after take() gave nothing. Without slots (tests):
    // always granted.
    awaitable<ConnectionSlot> reserve(core::Pool& pool, std::size_t backend);
    // The generation's slots, shared by every loop's cache.
    void use_slots(std::shared_ptr<ConnectionSlots> slots) { slots_ = std::move(slots); }
    const asio::any_io_executor& executor() const { return executor_; }
    // Closes everything politely (shutdown).
    void close_all();
    // Closes the idle connections to one backend (drain, maintenance).
    void close_idle(const core::Pool& pool, std::size_t backend);
    // From now on connections handed in are simply closed (the event loop is
    // going away, so nothing may be scheduled on it).
    void set_closing() { closing_ = true; }
    bool closing() const { return closing_; }
    // Every open backend connection, idle or not (for shutdown).
    void track(BackendConnection* c) { open_.insert(c); }
    void untrack(BackendConnection* c) { open_.erase(c); }
    const std::set<BackendConnection*>& in_use() const { return open_; }
    std::size_t size() const;
    // Ends a connection politely in the background (QUIT, then close).
    void retire(std::unique_ptr<BackendConnection> connection);

  private:
    using Key = std::tuple<const core::Pool*, std::size_t, std::string>;
    awaitable<void> sweep();
    // A transaction waits for a slot to this connection's backend.
    bool wanted_elsewhere(BackendConnection& conn) const;
    // At most `max` idle connections to one backend, whatever their source.
    void keep_backend_under(const core::Pool* pool, std::size_t backend, std::size_t max);

    asio::any_io_executor executor_;
    asio::steady_timer timer_;
    std::map<Key, std::deque<std::unique_ptr<BackendConnection>>> idle_;
    bool sweeping_ = false;
    std::atomic<bool> closing_ = false;
    std::set<BackendConnection*> open_;
    std::shared_ptr<ConnectionSlots> slots_;
    TaskGroup& tasks_;
};

}  // namespace smtplb::io
