#include "io/backend/connection_cache.hpp"

namespace smtplb::io {
namespace {
std::string source_key(const std::optional<base::IpAddress>& source) {
    return source ? source->to_string() : std::string();
}

awaitable<void> say_quit(std::unique_ptr<BackendConnection> connection) {
    co_await connection->quit(Millis(5000));
}
}  // namespace

ConnectionCache::ConnectionCache(const asio::any_io_executor& executor, TaskGroup& tasks)
    : executor_(executor), timer_(executor), tasks_(tasks) {}

std::unique_ptr<BackendConnection> ConnectionCache::take(
    core::Pool& pool, std::size_t backend, const std::optional<base::IpAddress>& source,
    const std::string& identity_key) {
    auto it = idle_.find(Key{&pool, backend, source_key(source)});
    if (it == idle_.end()) return nullptr;
    auto& list = it->second;
    // Newest first: it is the least likely to have been closed by the
    // backend. One already speaking for the client saves an XCLIENT.
    for (bool same_client : {true, false}) {
        for (auto pos = list.rbegin(); pos != list.rend();) {
            auto& conn = *pos;
            bool fits =
                same_client ? conn->presented_key() == identity_key : conn->serves(identity_key);
            if (!fits) {
                ++pos;
                continue;
            }
            auto taken = std::move(conn);
            pos = decltype(pos)(list.erase(std::next(pos).base()));
            if (taken->worn_out())
                retire(std::move(taken));
            else if (taken->reusable())
                return taken;
        }
    }
    return nullptr;
}

void ConnectionCache::put(std::unique_ptr<BackendConnection> conn) {
    if (closing_ || conn->dedicated || !conn->reusable()) return;  // destroyed, socket closed
    // One bound to a client is not kept after that client's session: it
    // holds a backend process (a Postfix smtpd) that only that client could
    // use, and many clients would leave enough of them idle to fill the
    // backend's process limit. The backend is then used as directly: one
    // connection per client session.
    if (conn->worn_out() || conn->bound() || wanted_elsewhere(*conn)) {
        retire(std::move(conn));
        return;
    }
    auto max = conn->pool().config().max_idle_connections;
    if (max == 0) {
        retire(std::move(conn));
        return;
    }
    conn->idle_since = std::chrono::steady_clock::now();
    // Idle, it can be closed for a waiter at the backend's cap: the spool's
    // messages deferred at that cap may try again (issue 25).
    conn->pool().room_for_spool(conn->backend());
    auto* conn_pool = &conn->pool();
    const auto backend = conn->backend();
    auto& list = idle_[Key{conn_pool, backend, source_key(conn->source())}];
    list.push_back(std::move(conn));
    while (list.size() > max) {
        retire(std::move(list.front()));
        list.pop_front();
    }
    keep_backend_under(conn_pool, backend, max);
    if (!sweeping_) {
        sweeping_ = true;
        // The sweep keeps the cache: the generation may end before it does.
        asio::co_spawn(
            executor_, [self = shared_from_this()] { return self->sweep(); }, asio::detached);
    }
}

void ConnectionCache::keep_backend_under(const core::Pool* pool, std::size_t backend,
                                         std::size_t max) {
    // Transparent connections are kept per client address: without a bound
    // over all addresses, many clients would leave enough idle connections
    // to fill the backend's process limit. The oldest idle one goes first.
    for (;;) {
        const auto first = idle_.lower_bound(Key{pool, backend, std::string()});
        std::size_t count = 0;
        auto oldest = idle_.end();
        for (auto it = first; it != idle_.end() && std::get<0>(it->first) == pool &&
                              std::get<1>(it->first) == backend;
             ++it) {
            count += it->second.size();
            if (!it->second.empty() &&
                (oldest == idle_.end() ||
                 it->second.front()->idle_since < oldest->second.front()->idle_since))
                oldest = it;
        }
        if (count <= max || oldest == idle_.end()) return;
        retire(std::move(oldest->second.front()));
        oldest->second.pop_front();
        if (oldest->second.empty()) idle_.erase(oldest);
    }
}

bool ConnectionCache::wanted_elsewhere(BackendConnection& conn) const {
    // Its slot is worth more to a transaction waiting for one than idle here.
    auto& pool = conn.pool();
    return slots_ && pool.backend(conn.backend()).config.max_connections > 0 &&
           slots_->waiting(pool, conn.backend());
}

awaitable<ConnectionSlot> ConnectionCache::reserve(core::Pool& pool, std::size_t backend) {
    if (!slots_) co_return ConnectionSlot::unlimited();
    auto slot = co_await slots_->reserve(pool, backend, this);
    co_return slot;
}

void ConnectionCache::retire(std::unique_ptr<BackendConnection> conn) {
    if (closing_) return;
    // Refused once the group is closed: the connection is closed at once.
    tasks_.spawn(executor_, say_quit(std::move(conn)));
}

awaitable<void> ConnectionCache::sweep() {
    while (!idle_.empty()) {
        timer_.expires_after(std::chrono::seconds(1));
        auto [ec] = co_await timer_.async_wait(use_nothrow);
        if (ec) break;
        auto now = std::chrono::steady_clock::now();
        for (auto it = idle_.begin(); it != idle_.end();) {
            auto& list = it->second;
            while (!list.empty() &&
                   (now - list.front()->idle_since >= list.front()->pool().config().idle_timeout ||
                    list.front()->worn_out() || !list.front()->reusable())) {
                retire(std::move(list.front()));
                list.pop_front();
            }
            it = list.empty() ? idle_.erase(it) : std::next(it);
        }
    }
    sweeping_ = false;
}

void ConnectionCache::close_all() {
    for (auto& [key, list] : idle_)
        for (auto& conn : list)
            retire(std::move(conn));
    idle_.clear();
    timer_.cancel();
}

void ConnectionCache::close_idle(const core::Pool& pool, std::size_t backend) {
    for (auto it = idle_.begin(); it != idle_.end();) {
        if (std::get<0>(it->first) == &pool && std::get<1>(it->first) == backend) {
            for (auto& conn : it->second)
                retire(std::move(conn));
            it = idle_.erase(it);
        } else {
            ++it;
        }
    }
}

std::size_t ConnectionCache::size() const {
    std::size_t n = 0;
    for (const auto& [key, list] : idle_)
        n += list.size();
    return n;
}

}  // namespace smtplb::io
