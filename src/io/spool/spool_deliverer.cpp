#include "io/spool/spool_deliverer.hpp"

#include "io/balancer.hpp"
#include "io/front/listener.hpp"
#include "io/spool/spool.hpp"

namespace smtplb::io {

SpoolDeliverer::SpoolDeliverer(Balancer& balancer, Spool& spool)
    : balancer_(balancer), spool_(spool), timer_(balancer.io()) {}

SpoolDeliverer::~SpoolDeliverer() {
    spool_.clear_waker(this);
}

void SpoolDeliverer::start() {
    spool_.set_waker(this, [this] { fill(); });
    stop_registration_ = balancer_.tasks().on_stop([this] { stop(); });
    balancer_.tasks().spawn(balancer_.io().get_executor(), ticker());
}

void SpoolDeliverer::stop() {
    if (stopped_) return;
    stopped_ = true;
    timer_.cancel();
}

awaitable<void> SpoolDeliverer::ticker() {
    while (!stopped_) {
        fill();
        timer_.expires_after(std::chrono::milliseconds(500));
        auto [ec] = co_await timer_.async_wait(use_nothrow);
        if (ec == asio::error::operation_aborted) co_return;
    }
}

BackendAccess& SpoolDeliverer::context_for(const std::string& listener) {
    auto it = contexts_.find(listener);
    if (it != contexts_.end()) return *it->second;
    const config::Listener* found = nullptr;
    for (const auto& l : balancer_.config().listeners)
        if (l.name == listener) found = &l;
    // Never transparent: the client is gone, so a spooled message goes from
    // smtplb's own address; its Received header names the client.
    auto context = std::make_unique<BackendAccess>(
        BackendAccess{balancer_.connector(), balancer_.cache(), balancer_.config().server.hostname,
                      found ? found->client_identity : config::IdentityMode::Xclient,
                      found ? found->source_address : std::nullopt, &balancer_.backend_tls(),
                      [this](const std::string& line) { balancer_.log(line); }});
    return *contexts_.emplace(listener, std::move(context)).first->second;
}

std::uint64_t SpoolDeliverer::session_for(const proto::ClientIdentity& id) {
    if (sessions_.size() > 10000) sessions_.clear();  // bounded; only a cache
    auto [it, added] = sessions_.try_emplace(client_key(id), 0);
    if (added) it->second = balancer_.next_session_id();
    return it->second;
}

void SpoolDeliverer::fill() {
    if (stopped_ || balancer_.stopped()) return;
    auto limit = spool_.settings().concurrency;
    if (in_flight_ >= limit) return;
    // Only messages whose pool can take mail now: while every backend is
    // down, nothing is opened, and nothing waits out a long backoff when
    // they come back.
    // One message per client connection at a time: its messages then go
    // out on backend connections that already carry its identity (no
    // XCLIENT per message), and concurrency is spread over clients.
    auto ids = spool_.queue().take_due(
        limit - in_flight_,
        [this](const auto& entry) {
            if (entry.client.empty()) return true;  // not read yet (recovered from disk)
            return busy_clients_.insert(entry.client).second;
        },
        [this](const std::string& name) {
            const auto* pool = balancer_.pool(name);
            return pool && pool->any_usable();
        });
    for (auto& id : ids) {
        ++in_flight_;
        const auto* entry = spool_.queue().find(id);
        std::string client = entry ? entry->client : std::string();
        if (balancer_.tasks().spawn(balancer_.io().get_executor(), deliver(id))) continue;
        // Closed (only ever after stop(), which this checks first): the
        // message waits for the next generation.
        --in_flight_;
        busy_clients_.erase(client);
        spool_.queue().postpone(id, std::chrono::milliseconds(0));
    }
}

}  // namespace smtplb::io
