#include "io/tcp_session.hpp"

#include <memory>

#include "core/tracking.hpp"
#include "io/balancer.hpp"
#include "io/deadline.hpp"
#include "io/listener.hpp"
#include "io/sockets.hpp"
#include "proto/identity.hpp"

namespace smtplb::io {
namespace {

using namespace asio::experimental::awaitable_operators;
constexpr std::size_t kBufferSize = 16384;

class TcpSession {
  public:
    TcpSession(tcp::socket socket, Listener& listener, std::string client,
               const tcp::endpoint& peer)
        : client_key_(std::move(client)),
          client_(std::move(socket)),
          backend_(client_.get_executor()),
          listener_(listener),
          balancer_(listener.balancer()),
          identity_() {
        // Only the client's end: the local one is asked for when a PROXY
        // header needs it (two syscalls fewer per connection otherwise).
        if (auto a = base::IpAddress::parse(peer.address().to_string()))
            identity_.address = a->unmapped();
        identity_.port = peer.port();
        listener_.track(&client_, nullptr);
    }
    ~TcpSession() {
        if (deadline_) deadline_->stop();  // its callback refers to this session
        if (chosen_) --pool_->backend(*chosen_).active_connections;
        listener_.untrack(&client_);
    }

    awaitable<void> run();
    const std::string& client_key() const { return client_key_; }

  private:
    // A backend connection, trying others as the pool allows; false when none.
    awaitable<bool> connect();
    // Copies one direction until its end of stream, which is passed on as a
    // half close; an error ends both directions.
    awaitable<void> pump(tcp::socket& from, tcp::socket& to, std::uint64_t& bytes);
    void finish(const char* result);

    std::string client_key_;
    tcp::socket client_;
    tcp::socket backend_;
    Listener& listener_;
    Balancer& balancer_;
    proto::ClientIdentity identity_;
    core::Pool* pool_ = nullptr;
    std::optional<std::size_t> chosen_;
    std::unique_ptr<Deadline> deadline_;
    core::TrackingRecord record_;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    std::uint64_t bytes_up_ = 0, bytes_down_ = 0;
};

awaitable<bool> TcpSession::connect() {
    const auto& config = listener_.config();
    std::vector<std::size_t> tried;
    while (tried.size() < pool_->config().max_attempts) {
        auto pick = pool_->pick(identity_.address, tried);
        if (!pick) break;
        tried.push_back(*pick);
        auto& state = pool_->backend(*pick);
        ++state.counters.attempts;
        auto [ec, socket] = co_await balancer_.connector().connect(
            state.config.address, config.source_address, pool_->config().connect_timeout);
        if (ec) {
            ++state.counters.failed;
            record_.attempts.push_back({state.config.name, "connect", ec.message()});
            pool_->report(*pick, core::LiveOutcome::Failed, "live connect: " + ec.message());
            continue;
        }
        record_.attempts.push_back({state.config.name, "connect", "connected"});
        backend_ = std::move(socket);
        tune_socket(backend_);
        chosen_ = pick;
        ++state.active_connections;
        co_return true;
    }
    co_return false;
}

awaitable<void> TcpSession::pump(tcp::socket& from, tcp::socket& to, std::uint64_t& bytes) {
    auto buffer = std::make_unique_for_overwrite<char[]>(kBufferSize);
    error_code ignored;
    for (;;) {
        auto [ec, n] =
            co_await from.async_read_some(asio::buffer(buffer.get(), kBufferSize), use_nothrow);
        if (ec) {
            if (ec == asio::error::eof) {
                to.shutdown(tcp::socket::shutdown_send, ignored);
            } else {
                // Reset, timeout or shutdown: the other direction ends too.
                from.close(ignored);
                to.close(ignored);
            }
            co_return;
        }
        deadline_->expires_after(listener_.config().command_timeout);
        auto [write_ec, written] =
            co_await asio::async_write(to, asio::buffer(buffer.get(), n), use_nothrow);
        bytes += written;
        if (write_ec) {
            from.close(ignored);
            to.close(ignored);
            co_return;
        }
    }
}

void TcpSession::finish(const char* result) {
    record_.time_ms = balancer_.clock().wall_ms();
    record_.listener = listener_.config().name;
    record_.client_address = identity_.address.to_string();
    record_.client_port = identity_.port;
    record_.pool = pool_ ? pool_->name() : "";
    record_.size = bytes_up_;
    record_.result = result;
    record_.identity = config::to_string(listener_.config().client_identity);
    record_.reply = std::to_string(bytes_up_) + " bytes to the backend, " +
                    std::to_string(bytes_down_) + " back";
    record_.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - started_)
                              .count();
    balancer_.tracking().write(record_.to_json());
}

awaitable<void> TcpSession::run() {
    const auto& config = listener_.config();
    deadline_ = Deadline::start(client_.get_executor(), [this] {
        error_code ec;
        client_.close(ec);
        backend_.close(ec);
    });
    if (config.proxy_protocol != config::ProxyProtocol::None) {
        deadline_->expires_after(config.proxy_timeout);
        auto header = co_await listener_.read_upstream_header(client_);
        if (!header) co_return;
        if (!header->local) {
            identity_.address = header->source.unmapped();
            identity_.port = header->source_port;
            identity_.local_address = header->destination.unmapped();
            identity_.local_port = header->destination_port;
        }
        auto key = identity_.address.to_string();
        if (!listener_.admit(key)) co_return;
        client_key_ = key;
    }
    pool_ = balancer_.pool(config.pool);
    deadline_->expires_after(pool_->config().connect_timeout * pool_->config().max_attempts);
    bool connected = co_await connect();
    if (!connected) {
        // Nothing SMTP can be said here (the client may expect TLS): close.
        finish("tempfailed");
        co_return;
    }
    std::string header;
    bool proxied = config.proxy_protocol != config::ProxyProtocol::None;
    bool sends_header = config.client_identity == config::IdentityMode::ProxyV1 ||
                        config.client_identity == config::IdentityMode::ProxyV2;
    if (sends_header && !proxied) {
        auto local = identity_of(client_);
        identity_.local_address = local.local_address;
        identity_.local_port = local.local_port;
    }
    if (config.client_identity == config::IdentityMode::ProxyV1)
        header = proto::proxy_v1_header(identity_);
    else if (config.client_identity == config::IdentityMode::ProxyV2)
        header = proto::proxy_v2_header(identity_);
    deadline_->expires_after(config.command_timeout);
    if (!header.empty()) {
        auto [ec, n] = co_await asio::async_write(backend_, asio::buffer(header), use_nothrow);
        if (ec) {
            pool_->report(*chosen_, core::LiveOutcome::Failed, "live connect: " + ec.message());
            finish("tempfailed");
            co_return;
        }
    }
    co_await (pump(client_, backend_, bytes_up_) && pump(backend_, client_, bytes_down_));
    finish("spliced");
}

}  // namespace

awaitable<void> run_tcp_session(tcp::socket socket, Listener& listener, std::string client,
                                tcp::endpoint peer) {
    {
        TcpSession session(std::move(socket), listener, std::move(client), peer);
        co_await session.run();
        client = session.client_key();
    }
    listener.session_ended(client);
}

}  // namespace smtplb::io
