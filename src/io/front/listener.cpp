#include "io/front/listener.hpp"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "io/balancer.hpp"
#include "io/front/client_session.hpp"
#include "io/front/proxy_reader.hpp"
#include "io/front/tcp_session.hpp"
#include "io/runtime/sockets.hpp"

namespace smtplb::io {

Listener::Listener(Balancer& balancer, const config::Listener& config)
    : balancer_(balancer),
      config_(config),
      policy_(config),
      auth_verifier_(make_auth_verifier(balancer, config)),
      auth_throttle_(balancer.clock(), config.auth.max_failures, config.auth.failure_window),
      acceptor_(balancer.io()) {
    for (std::size_t loop = 0; loop < balancer.loops().size(); ++loop)
        backend_accesses_.push_back(BackendAccess{
            balancer.connector(), balancer.cache(loop), balancer.config().server.hostname,
            config.client_identity, config.source_address, &balancer.backend_tls(),
            [&balancer](const std::string& line) { balancer.log(line); }, config.transparent});
    settings_.hostname = balancer.config().server.hostname;
    settings_.max_line_length = config.max_line_length;
    settings_.max_data_line_length = config.max_data_line_length;
    settings_.max_message_size = config.max_message_size;
    settings_.max_recipients = config.max_recipients;
    settings_.max_commands = config.max_commands;
    settings_.max_errors = config.max_errors;
    settings_.bare_line_endings = config.bare_line_endings;
    settings_.nul_bytes = config.nul_bytes;
    settings_.advertise_smtputf8 = config.smtputf8;
    using config::ServerTlsMode;
    settings_.starttls =
        config.tls.mode == ServerTlsMode::Starttls || config.tls.mode == ServerTlsMode::Required;
    settings_.require_tls = config.tls.mode == ServerTlsMode::Required;
    settings_.auth = config.role == config::Role::Submission;
    settings_.offer_source = this;
    auto reach = [this](const std::string& name) {
        const auto* pool = std::as_const(balancer_).pool(name);
        if (pool && std::find(offer_pools_.begin(), offer_pools_.end(), pool) == offer_pools_.end())
            offer_pools_.push_back(pool);
    };
    reach(config.pool);
    for (const auto& route : balancer.config().routes)
        if (route.serves(config.name)) reach(route.pool);
}

proto::EhloOffer Listener::current() const {
    std::uint64_t epoch = 0;  // each pool's only grows: the sum changes when one does
    for (const auto* pool : offer_pools_)
        epoch += pool->capabilities_epoch();
    std::lock_guard guard(offer_mutex_);
    if (offer_ && epoch == offer_epoch_) return *offer_;
    // docs/esmtp.md, "What a listener offers".
    proto::EhloOffer offer;
    offer.max_message_size = config_.max_message_size;
    offer.requiretls = config_.tls.enabled() && !offer_pools_.empty();
    for (const auto* pool : offer_pools_) {
        auto caps = pool->capabilities();
        offer.max_message_size = caps.size_offer(offer.max_message_size);
        offer.smtputf8 = offer.smtputf8 && caps.smtputf8_possible();
        // issue 25 (mime): 8BITMIME is bridged by conversion; without it
        // (convert_8bit = false), offered only where a backend may have it.
        offer.eightbitmime =
            offer.eightbitmime && (pool->config().convert_8bit || caps.eightbitmime_possible());
        // Offered only where a backend is known to honour it.
        offer.requiretls = offer.requiretls && caps.verified_tls && caps.requiretls > 0;
    }
    // 8BITMIME, DSN and CHUNKING are smtplb's own bridges (it converts,
    // it sends "relayed" notices, it sends DATA to backends without BDAT).
    offer.dsn = config_.dsn;
    offer.chunking = config_.chunking;
    offer_ = offer;
    offer_epoch_ = epoch;
    return offer;
}

bool Listener::bind(std::string& error, Listener* inherited) {
    if (config_.tls.enabled()) {
        tls_context_ = make_server_tls(config_.tls, error);
        if (!tls_context_) {
            error = "listener " + config_.name + ": tls: " + error;
            return false;
        }
    }
    if (inherited) {
        // A second descriptor for the same listening socket: the old
        // listener closes its own when it stops; this one goes on accepting.
        int fd = ::dup(inherited->acceptor().native_handle());
        error_code ec;
        if (fd >= 0) {
            auto endpoint = inherited->acceptor().local_endpoint(ec);
            if (!ec) acceptor_.assign(endpoint.protocol(), fd, ec);
            if (ec) ::close(fd);
        }
        if (fd < 0 || ec) {
            error = "listener " + config_.name + ": cannot take over " + config_.bind.to_string() +
                    ": " + (ec ? ec.message() : "dup failed");
            return false;
        }
        return true;
    }
    if (auto ec = listen_on(acceptor_, config_.bind.host, config_.bind.port)) {
        error = "listener " + config_.name + ": cannot listen on " + config_.bind.to_string() +
                ": " + ec.message();
        return false;
    }
    return true;
}

void Listener::begin() {
    // Its sessions and its accept loop are tasks of the generation's group;
    // a stop of the group stops this listener.
    stop_registration_ = balancer_.sessions().on_stop([this] { stop(); });
    balancer_.sessions().spawn(acceptor_.get_executor(), accept_loop());
}

void Listener::stop_accepting() {
    error_code ec;
    // Release, then close: after a reload another descriptor refers to the
    // same listening socket, so a plain close would not take this one out
    // of epoll (Asio leaves that to close), and its events would go on.
    if (acceptor_.is_open()) {
        int fd = acceptor_.release(ec);
        if (!ec && fd >= 0) ::close(fd);
    }
    acceptor_.close(ec);
}

void Listener::stop() {
    stop_accepting();
    stopping_ = true;
    // An idle session is waiting for its next command: wake it so it says
    // 421 now. Sessions in a transaction finish it first (they check
    // stopping() before reading the next command).
    for_each_session([](tcp::socket& socket, const proto::ServerSession* protocol) {
        error_code ec;
        if (protocol && !protocol->in_transaction()) socket.cancel(ec);
    });
}

void Listener::for_each_session(
    const std::function<void(tcp::socket&, const proto::ServerSession*)>& action) {
    // The executors are copied under the lock: a session that ends on its
    // own thread meanwhile takes its socket with it.
    std::vector<std::pair<tcp::socket*, asio::any_io_executor>> sockets;
    {
        std::lock_guard guard(registry_->mutex);
        for (auto& [socket, protocol] : registry_->sessions)
            sockets.emplace_back(socket, socket->get_executor());
    }
    for (auto& [socket, executor] : sockets) {
        // On the socket's own thread, and only if its session has not ended
        // meanwhile: sessions end on that thread too, so it cannot end
        // while the action runs.
        asio::post(executor, [registry = registry_, socket = socket, action] {
            const proto::ServerSession* protocol = nullptr;
            {
                std::lock_guard guard(registry->mutex);
                auto it = registry->sessions.find(socket);
                if (it == registry->sessions.end()) return;
                protocol = it->second;
            }
            action(*socket, protocol);
        });
    }
}

std::uint16_t Listener::port() const {
    error_code ec;
    auto ep = acceptor_.local_endpoint(ec);
    return ec ? 0 : ep.port();
}

void Listener::close_sessions() {
    for_each_session([](tcp::socket& socket, const proto::ServerSession*) {
        error_code ec;
        socket.close(ec);  // the session's pending read or write ends; it unwinds
    });
}

void Listener::session_ended(const std::string& client) {
    std::lock_guard guard(accounting_);
    --connections_;
    auto it = per_client_.find(client);
    if (it != per_client_.end() && --it->second == 0) per_client_.erase(it);
}

bool Listener::admit(const std::string& client) {
    std::lock_guard guard(accounting_);
    return admit_locked(client);
}

bool Listener::admit_locked(const std::string& client) {
    auto& count = per_client_[client];
    if (count >= config_.max_connections_per_client) {
        if (count == 0) per_client_.erase(client);
        ++counters.refused;
        return false;
    }
    ++count;
    return true;
}

awaitable<std::optional<proto::ProxyHeader>> Listener::read_upstream_header(tcp::socket& socket) {
    auto versions = config_.proxy_protocol == config::ProxyProtocol::V1 ? proto::ProxyVersions::V1
                    : config_.proxy_protocol == config::ProxyProtocol::V2
                        ? proto::ProxyVersions::V2
                        : proto::ProxyVersions::Any;
    auto parsed = co_await read_proxy_header(socket, versions);
    if (parsed.status == proto::ProxyParse::Status::Done) co_return parsed.header;
    ++counters.proxy_refused;
    error_code ec;
    auto peer = socket.remote_endpoint(ec);
    balancer_.log("event=proxy_refused listener=" + config_.name +
                  " peer=" + (ec ? std::string("?") : peer.address().to_string()) + " reason=\"" +
                  parsed.error + "\"");
    co_return std::nullopt;
}

awaitable<void> Listener::refuse(tcp::socket socket, const char* reply) {
    co_await asio::async_write(socket, asio::buffer(std::string_view(reply)), use_nothrow);
    error_code ec;
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
}

const char* Listener::open_session(const std::string& client, bool proxied) {
    std::lock_guard guard(accounting_);
    if (connections_ >= config_.max_connections) {
        ++counters.refused;
        return "421 4.7.0 Too many connections, try again later\r\n";
    }
    // Behind a PROXY header the client is counted once the header names it.
    if (!proxied && !admit_locked(client))
        return "421 4.7.0 Too many connections from your address\r\n";
    ++connections_;
    ++counters.connections;
    return nullptr;
}

awaitable<void> Listener::accept_loop() {
    auto& loops = balancer_.loops();
    for (;;) {
        // The connection goes to the next event loop: its socket is
        // registered with that loop's reactor from the start.
        std::size_t loop = loops.next();
        auto [ec, socket] = co_await acceptor_.async_accept(
            asio::any_io_executor(loops.loop(loop).get_executor()), use_nothrow);
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
            // EMFILE and friends: back off briefly instead of spinning.
            asio::steady_timer pause(acceptor_.get_executor(), std::chrono::milliseconds(100));
            co_await pause.async_wait(use_nothrow);
            continue;
        }
        error_code peer_ec;
        auto peer = socket.remote_endpoint(peer_ec);
        if (peer_ec) continue;
        std::string client = peer.address().to_string();
        bool proxied = config_.proxy_protocol != config::ProxyProtocol::None;
        if (proxied) {
            auto address = base::IpAddress::parse(client);
            bool trusted = false;
            for (const auto& net : config_.proxy_trusted_networks)
                trusted |= address && net.contains(address->unmapped());
            if (!trusted) {
                // Not a proxy of ours: nothing it says can be believed, and
                // it is not owed an SMTP reply either.
                ++counters.proxy_refused;
                balancer_.log("event=proxy_refused listener=" + config_.name + " peer=" + client +
                              " reason=\"not in proxy_trusted_networks\"");
                error_code ignored;
                socket.close(ignored);
                continue;
            }
        }
        auto executor = socket.get_executor();
        if (const char* refusal = open_session(client, proxied)) {
            asio::co_spawn(executor, refuse(std::move(socket), refusal), asio::detached);
            continue;
        }
        if (proxied) client.clear();  // counted once the header names the client
        tune_socket(socket);
        // Owned by the generation's group, which keeps this listener (and
        // everything a session uses) until the last one has ended.
        auto& sessions = balancer_.sessions();
        bool started =
            config_.mode == config::ListenerMode::Tcp
                ? sessions.spawn(executor, run_tcp_session(std::move(socket), *this, client, peer))
                : sessions.spawn(executor,
                                 run_client_session(std::move(socket), *this, client, loop));
        // Refused (the group is closed): the connection is closed unanswered.
        if (!started) session_ended(client);
    }
}

}  // namespace smtplb::io
