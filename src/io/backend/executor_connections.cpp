// TransactionExecutor's connections: this session's idle ones, the shared cache, new ones,
// and the client's identity presented on them.
#include <algorithm>
#include <string_view>

#include "config/transparent.hpp"
#include "io/backend/transaction_executor.hpp"

namespace smtplb::io {

using Failure = core::OpenFailure;

std::string TransactionExecutor::identity_key() const {
    if (context_.identity_mode == config::IdentityMode::Xclient)
        return proto::identity_key(identity_);
    if (greets_with_client_helo())
        return proto::helo_key(proto::helo_for_backend(identity_.helo, context_.hostname),
                               identity_.esmtp);
    return {};
}

bool TransactionExecutor::greets_with_client_helo() const {
    // Probes and clients that have not said HELO greet with smtplb's name.
    return context_.identity_mode == config::IdentityMode::None && tx_ && tx_->pool() &&
           tx_->pool()->config().helo_to_backend == config::HeloToBackend::Client &&
           !identity_.helo.empty();
}

void TransactionExecutor::keep(std::unique_ptr<BackendConnection> conn) {
    if (conn->worn_out()) {
        context_.cache.retire(std::move(conn));
        return;
    }
    conn->idle_since = std::chrono::steady_clock::now();
    // One idle connection per backend stays with the session (its identity
    // is already presented); older ones go to the shared cache (which
    // closes those bound to this client).
    for (auto& held : stash_) {
        if (&held->pool() == &conn->pool() && held->backend() == conn->backend()) {
            std::swap(held, conn);
            context_.cache.put(std::move(conn));
            return;
        }
    }
    stash_.push_back(std::move(conn));
}

void TransactionExecutor::release_connections() {
    for (auto& conn : stash_) {
        if (conn->dedicated)
            context_.cache.retire(std::move(conn));  // PROXY: this client's only
        else
            context_.cache.put(std::move(conn));
    }
    stash_.clear();
}

void TransactionExecutor::identity_not_presented(BackendConnection& conn, std::size_t backend,
                                                 const char* reason) {
    auto& pool = *tx_->pool();
    auto& counters = pool.backend(backend).counters;
    ++(std::string_view(reason) == "not-offered" ? counters.identity_not_offered
                                                 : counters.identity_incomplete);
    if (conn.identity_logged || !context_.log) return;
    conn.identity_logged = true;
    std::string line = "event=identity_not_presented pool=" + pool.name() +
                       " backend=" + pool.backend(backend).config.name + " reason=" + reason +
                       " client=" + identity_.address.to_string();
    if (!conn.omitted().empty()) {
        line += " omitted=";
        for (std::size_t i = 0; i < conn.omitted().size(); ++i)
            line += (i ? "," : "") + conn.omitted()[i];
    }
    context_.log(line);
}

awaitable<void> TransactionExecutor::open(std::size_t backend, bool fresh) {
    Opening opening;
    // This session's own idle connection, without a coroutine of its own:
    // the common case of a client's next message.
    if (!fresh) opening.conn = from_stash(backend);
    if (!opening.conn) opening = co_await acquire(backend, fresh);
    if (opening.conn) {
        auto failure = co_await present_identity(opening.conn, backend);
        if (!failure) failure = co_await authenticate(*opening.conn);
        if (failure) {
            opening.failure = std::move(*failure);
            opening.conn.reset();
        }
    }
    if (!opening.conn) {
        tx_->open_failed(opening.failure);
        co_return;
    }
    conn_ = std::move(opening.conn);
    core::OpenedConnection facts;
    facts.reused = conn_->reused;
    facts.capabilities = conn_->protocol().capabilities();
    facts.tls = conn_->tls_summary();
    tx_->opened(facts);
}

awaitable<std::optional<Failure>> TransactionExecutor::present_identity(
    std::unique_ptr<BackendConnection>& conn, std::size_t backend) {
    using Identity = BackendConnection::Identity;
    const bool transparent = context_.transparent;
    if (context_.identity_mode != config::IdentityMode::Xclient) {
        identity_presented_ =
            transparent ? "transparent" : config::to_string(context_.identity_mode);
        co_return std::nullopt;
    }
    bool reused = conn->reused;
    auto outcome =
        co_await conn->present(identity_, identity_key(), context_.hostname, reply_timeout());
    Failure failure{.stage = "xclient",
                    .reason = conn->failure(),
                    .refusal = conn->refusal(),
                    .reused = reused};
    switch (outcome) {
        case Identity::Presented: {
            identity_presented_ = transparent ? "transparent+xclient" : "xclient";
            const auto& omitted = conn->omitted();
            // HELO left out of XCLIENT still reaches the backend in the EHLO.
            if (std::any_of(omitted.begin(), omitted.end(),
                            [](const std::string& a) { return a != "HELO"; }))
                identity_not_presented(*conn, backend, "incomplete");
            co_return std::nullopt;
        }
        case Identity::NotOffered:
            identity_presented_ = transparent ? "transparent" : "none";
            identity_not_presented(*conn, backend, "not-offered");
            co_return std::nullopt;
        case Identity::Broken:
            failure.kind = Failure::Kind::IdentityBroken;
            failure.protocol_error = conn->protocol().failed();
            failure.refusal.reset();
            break;
        case Identity::Unauthorised:
            failure.kind = Failure::Kind::Unauthorised;
            break;
        case Identity::Refused:
            failure.kind = Failure::Kind::IdentityRefused;
            context_.cache.retire(std::move(conn));
            break;
        case Identity::HeloRefused:
            failure.kind = Failure::Kind::HeloRefused;
            failure.stage = "helo";
            context_.cache.retire(std::move(conn));
            break;
    }
    co_return failure;
}

awaitable<std::optional<Failure>> TransactionExecutor::authenticate(BackendConnection& conn) {
    using Auth = BackendConnection::Auth;
    auto outcome = co_await conn.authenticate(reply_timeout());
    if (outcome == Auth::Ready) co_return std::nullopt;
    // A 4xx is this connection's (Greeting with the refusal: back pressure);
    // a broken one is the backend's (down); a refusal is smtplb's own
    // account: misconfigured, and never the client's answer.
    Failure failure{
        .kind =
            outcome == Auth::Misconfigured ? Failure::Kind::Misconfigured : Failure::Kind::Greeting,
        .stage = "auth",
        .reason = conn.failure(),
        .refusal = outcome == Auth::Broken ? std::optional<proto::Reply>() : conn.refusal(),
        .reused = conn.reused};
    co_return failure;
}

std::unique_ptr<BackendConnection> TransactionExecutor::from_stash(std::size_t backend) {
    auto* pool = tx_->pool();
    for (auto it = stash_.begin(); it != stash_.end(); ++it) {
        if (&(*it)->pool() != pool || (*it)->backend() != backend) continue;
        auto conn = std::move(*it);
        stash_.erase(it);
        // The client's identity may have changed since (a new EHLO, AUTH).
        if (conn->serves(identity_key()) && !conn->worn_out() && conn->reusable()) {
            conn->reused = true;
            return conn;
        }
        // Greeted with the client's former HELO: another client that says
        // that name may still use it (the cache keeps only what is reusable).
        if (conn->bound() || conn->dedicated)
            context_.cache.retire(std::move(conn));
        else
            context_.cache.put(std::move(conn));
        return nullptr;
    }
    return nullptr;
}

awaitable<TransactionExecutor::Opening> TransactionExecutor::acquire(std::size_t backend,
                                                                     bool fresh) {
    auto& pool = *tx_->pool();
    const auto key = identity_key();
    Opening opening;
    bool proxy = context_.identity_mode == config::IdentityMode::ProxyV1 ||
                 context_.identity_mode == config::IdentityMode::ProxyV2;
    // A transparent connection comes from its client's address: kept under
    // that address, it serves that client's later sessions and no other.
    const auto& source =
        context_.transparent ? std::optional(identity_.address) : context_.source_address;
    if (!proxy && !fresh) {
        if (auto conn = context_.cache.take(pool, backend, source, key)) {
            conn->reused = true;
            opening.conn = std::move(conn);
            co_return opening;
        }
    }
    opening.conn = co_await connect(backend, opening);
    co_return opening;
}

awaitable<std::unique_ptr<BackendConnection>> TransactionExecutor::connect(std::size_t backend,
                                                                           Opening& opening) {
    auto& pool = *tx_->pool();
    auto& failure = opening.failure;
    const auto& address = pool.backend(backend).config.address;
    if (context_.transparent && !config::transparent_reachable(identity_.address, address)) {
        failure = {.kind = Failure::Kind::Unreachable,
                   .stage = "connect",
                   .reason = "transparent: the client's address family is not the backend's"};
        co_return nullptr;
    }
    // The backend's max_connections (io/connection_slots.hpp): no slot within
    // the pool's connection_wait is smtplb's own limit, not the backend's fault.
    auto slot = co_await context_.cache.reserve(pool, backend);
    if (!slot) {
        failure = {.kind = Failure::Kind::NoSlot, .stage = "connect", .reason = slot.failure()};
        co_return nullptr;
    }
    const ConnectFrom from = context_.transparent ? ConnectFrom::client(identity_.address)
                                                  : ConnectFrom(context_.source_address);
    auto [ec, socket] =
        co_await context_.connector.connect(address, from, pool.config().connect_timeout);
    if (ec) {
        failure = {.kind = Failure::Kind::Connect, .stage = "connect", .reason = ec.message()};
        if (context_.transparent && transparent_local_failure(ec)) {
            // This host refused the client's address (a capability lost, the
            // address and port in use): not the backend's fault.
            failure.kind = Failure::Kind::Unreachable;
            failure.reason = "transparent bind: " + ec.message();
            if (context_.log)
                context_.log("event=transparent_connect_failed pool=" + pool.name() +
                             " backend=" + pool.backend(backend).config.name + " client=" +
                             identity_.address.to_string() + " reason=\"" + ec.message() + "\"");
        }
        co_return nullptr;
    }
    bool proxy = context_.identity_mode == config::IdentityMode::ProxyV1 ||
                 context_.identity_mode == config::IdentityMode::ProxyV2;
    auto conn = std::make_unique<BackendConnection>(std::move(socket), pool, backend, from.address);
    conn->track_in(context_.cache, &slot);
    if (proxy) {
        conn->dedicated = true;
        conn->protocol().output() = context_.identity_mode == config::IdentityMode::ProxyV1
                                        ? proto::proxy_v1_header(identity_)
                                        : proto::proxy_v2_header(identity_);
    }
    auto tls = context_.backend_tls ? context_.backend_tls->for_pool(pool.name()) : nullptr;
    // A PROXY connection is this client's alone: it greets with the client's
    // own HELO, which the backend records and judges (as XCLIENT's EHLO does);
    // so does one for helo_to_backend = "client", kept for that HELO name.
    const bool client_helo = proxy || greets_with_client_helo();
    const std::string name = client_helo
                                 ? proto::helo_for_backend(identity_.helo, context_.hostname)
                                 : context_.hostname;
    bool greeted = co_await conn->handshake(name, pool.config().greeting_timeout, tls,
                                            !client_helo || identity_.esmtp);
    if (greeted) {
        if (!proxy && client_helo) conn->greeted_as(identity_key());
        co_return conn;
    }
    failure = {.kind = Failure::Kind::Greeting,
               .stage = "greeting",
               .reason = conn->failure(),
               .refusal = conn->refusal()};
    // The backend's verdict on the client's own HELO is the client's answer
    // (as it would hear it directly), not a fault of the backend.
    if (client_helo && conn->helo_refused()) {
        failure.kind = Failure::Kind::HeloRefused;
        failure.stage = "helo";
    }
    co_return nullptr;
}

}  // namespace smtplb::io
