#include "io/front/tcp_session.hpp"

#include <array>
#include <memory>

#include "config/transparent.hpp"
#include "core/tracking.hpp"
#include "io/balancer.hpp"
#include "io/front/listener.hpp"
#include "io/front/session_limits.hpp"
#include "io/runtime/deadline.hpp"
#include "io/runtime/readiness.hpp"
#include "io/runtime/sockets.hpp"
#include "proto/identity.hpp"

namespace smtplb::io {
namespace {

// Bytes in flight are read into one scratch buffer per thread and written
// on at once; a connection holds a buffer of its own only for what the
// receiver cannot take yet, and a small landing buffer per direction for
// the read that waits for data (an SMTP command or reply fits in it).
constexpr std::size_t kScratchSize = 65536;
constexpr std::size_t kLandingSize = 256;

// Owned by shared_ptr: the setup runs as a coroutine, then the two copying
// directions run as plain completion handlers, each holding the session.
// A coroutine frame per direction (and the operator&& machinery joining
// them) would cost more memory per idle connection than everything else.
class TcpSession : public std::enable_shared_from_this<TcpSession> {
  public:
    TcpSession(tcp::socket socket, Listener& listener, std::string client,
               const tcp::endpoint& peer)
        : task_(listener.balancer().sessions().hold()),
          client_key_(std::move(client)),
          client_(std::move(socket)),
          backend_(client_.get_executor()),
          listener_(listener),
          balancer_(listener.balancer()),
          identity_(),
          limits_(balancer_, listener.config().name, identity_) {
        // Only the client's end: the local one is asked for when a PROXY
        // header needs it (two syscalls fewer per connection otherwise).
        if (auto a = base::IpAddress::parse(peer.address().to_string()))
            identity_.address = a->unmapped();
        identity_.port = peer.port();
        listener_.track(&client_, nullptr);
        limits_.close_silently();
    }
    ~TcpSession() {
        // Their callbacks refer to this session.
        if (deadline_) deadline_->stop();
        if (chosen_) pool_->connection_closed(*chosen_);
        listener_.untrack(&client_);
        listener_.untrack(&backend_);
    }
    TcpSession(const TcpSession&) = delete;
    TcpSession& operator=(const TcpSession&) = delete;

    // Sets up (PROXY header in, backend chosen, header out) and starts the
    // copying; the session ends (end()) when both directions have.
    awaitable<void> run();

  private:
    struct Pump {
        Pump(tcp::socket& source, tcp::socket& sink) : from(source), to(sink) {}
        tcp::socket& from;
        tcp::socket& to;
        std::string unsent;  // what `to` could not take at once
        std::uint64_t bytes = 0;
        bool done = false;
        bool writing = false;              // an Asio write to `to` is in flight
        std::uint32_t writes_started = 0;  // Asio writes to `to`, ever
        std::array<char, kLandingSize> landing{};
    };

    // A backend connection, trying others as the pool allows; false when none.
    awaitable<bool> connect();
    // Copies what `from` has, or, once it is known drained, parks. HAProxy's
    // rule: read again only after a full buffer.
    void wait_readable(Pump& pump);
    // A read into the landing buffer: with `from` marked drained, no
    // syscall until epoll reports data (io/readiness.hpp).
    void park(Pump& pump);
    // `landed`: bytes already in the landing buffer, sent on first.
    void copy_available(Pump& pump, std::size_t landed = 0);
    // Writes `data` on; false when the pump stopped or must wait for the
    // receiver (it resumes itself then).
    bool forward(Pump& pump, const char* data, std::size_t n);
    // The direction writing to `pump.from`.
    Pump& opposite(Pump& pump) { return &pump == &up_ ? down_ : up_; }
    // End of stream is passed on as a half close; an error ends both ways.
    void stop_pump(Pump& pump, const error_code& ec);
    void close_both();
    void finish(const char* result);
    // The last step: accounting released after the session is gone.
    static void end(std::shared_ptr<TcpSession> self, const char* result);

    // The session outlives the coroutine that set it up (its handlers own
    // it): it counts in the generation's group itself, until everything
    // else of it is gone (the first member, destroyed last).
    TaskGroup::Token task_;
    std::string client_key_;
    tcp::socket client_;
    tcp::socket backend_;
    Listener& listener_;
    Balancer& balancer_;
    proto::ClientIdentity identity_;
    SessionLimits limits_;  // only connection limits apply: there is no SMTP here
    core::Pool* pool_ = nullptr;
    std::optional<std::size_t> chosen_;
    std::unique_ptr<Deadline> deadline_;
    core::TrackingRecord record_;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    Pump up_{client_, backend_};
    Pump down_{backend_, client_};
};

awaitable<bool> TcpSession::connect() {
    const auto& config = listener_.config();
    std::vector<std::size_t> tried;
    std::size_t passed_over = 0;  // transparent: backends this client cannot reach
    while (tried.size() - passed_over < pool_->config().max_attempts) {
        auto pick = pool_->pick(identity_.address, tried);
        if (!pick) break;
        tried.push_back(*pick);
        auto& state = pool_->backend(*pick);
        if (config.transparent &&
            !smtplb::config::transparent_reachable(identity_.address, state.config.address)) {
            ++passed_over;
            record_.attempts.push_back(
                {state.config.name, "connect", "transparent: another address family"});
            continue;
        }
        ++state.counters.attempts;
        // max_connections, as in smtp mode: no slot says nothing about its health.
        auto slot =
            co_await balancer_.slots().reserve(*pool_, *pick, nullptr);  // this loop's cache
        if (!slot) {
            ++state.counters.failed;
            record_.attempts.push_back({state.config.name, "connect", slot.failure()});
            continue;
        }
        const auto from = config.transparent
                              ? ConnectFrom::client(identity_.address,
                                                    config.transparent_port ? identity_.port : 0)
                              : ConnectFrom(config.source_address);
        auto [ec, socket] = co_await balancer_.connector().connect(state.config.address, from,
                                                                   pool_->config().connect_timeout);
        if (ec && config.transparent && transparent_local_failure(ec)) {
            // The client's address (and port) refused here: not the backend's fault.
            ++passed_over;
            record_.attempts.push_back(
                {state.config.name, "connect", "transparent: " + ec.message()});
            balancer_.log("event=transparent_connect_failed listener=" + config.name + " backend=" +
                          state.config.name + " client=" + identity_.address.to_string() + ":" +
                          std::to_string(from.port) + " reason=\"" + ec.message() + "\"");
            continue;
        }
        if (ec) {
            ++state.counters.failed;
            record_.attempts.push_back({state.config.name, "connect", ec.message()});
            pool_->report(*pick, core::LiveOutcome::Failed, "live connect: " + ec.message());
            continue;
        }
        record_.attempts.push_back({state.config.name, "connect", "connected"});
        backend_ = std::move(socket);
        tune_socket(backend_);
        // A stop that runs out of patience closes both ends: with the
        // client's side half closed, only the backend's wakes the session.
        listener_.track(&backend_, nullptr);
        chosen_ = pick;
        pool_->connection_opened(*pick);
        slot.opened();
        co_return true;
    }
    co_return false;
}

void TcpSession::wait_readable(Pump& pump) {
    if (!readiness::kSupported) {
        // Asio re-arms the descriptor for this wait (a syscall), so data
        // that came before it is not missed.
        pump.from.async_wait(tcp::socket::wait_read,
                             [self = shared_from_this(), &pump](const error_code& ec) {
                                 if (ec)
                                     self->stop_pump(pump, ec);
                                 else
                                     self->copy_available(pump);
                             });
        return;
    }
    if (readiness::drained(pump.from))
        park(pump);
    else
        copy_available(pump);
}

void TcpSession::park(Pump& pump) {
    // The read completes on epoll's event, in that turn of the loop, unless
    // a write to the same socket completed on the same event first.
    auto& writer = opposite(pump);
    bool alone = !writer.writing;
    auto writes = writer.writes_started;
    pump.from.async_read_some(
        asio::buffer(pump.landing),
        [self = shared_from_this(), &pump, alone, writes](const error_code& ec, std::size_t n) {
            if (ec) {
                self->stop_pump(pump, ec);
                return;
            }
            bool drained =
                n < pump.landing.size() && alone && writes == self->opposite(pump).writes_started;
            if (!drained) {
                // More may wait (a message body): read it behind these
                // bytes, to send them on in one write.
                self->copy_available(pump, n);
                return;
            }
            readiness::mark_drained(pump.from);
            if (self->forward(pump, pump.landing.data(), n)) self->park(pump);
        });
}

bool TcpSession::forward(Pump& pump, const char* data, std::size_t n) {
    deadline_->expires_after(listener_.config().command_timeout);
    error_code ec;
    std::size_t written = pump.to.write_some(asio::buffer(data, n), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
        written = 0;
        ec.clear();
    }
    pump.bytes += written;
    if (ec) {
        stop_pump(pump, ec);
        return false;
    }
    if (written == n) return true;
    // The receiver is slow: keep the rest and stop reading until it has
    // gone (back pressure towards the sender).
    pump.unsent.assign(data + written, n - written);
    pump.writing = true;
    ++pump.writes_started;
    asio::async_write(
        pump.to, asio::buffer(pump.unsent),
        [self = shared_from_this(), &pump](const error_code& write_ec, std::size_t more) {
            pump.writing = false;
            pump.bytes += more;
            std::string().swap(pump.unsent);
            if (write_ec)
                self->stop_pump(pump, write_ec);
            else
                self->wait_readable(pump);
        });
    return false;
}

void TcpSession::copy_available(Pump& pump, std::size_t landed) {
    thread_local std::array<char, kScratchSize> scratch;
    std::copy_n(pump.landing.data(), landed, scratch.data());
    for (;;) {
        error_code ec;
        std::size_t n = landed + pump.from.read_some(asio::buffer(scratch) + landed, ec);
        landed = 0;
        bool nothing_more = ec == asio::error::would_block || ec == asio::error::try_again;
        if (nothing_more) ec.clear();
        // Drained, and no event for it can have been taken since.
        bool drained = !ec && (nothing_more || n < scratch.size());
        if (drained) readiness::mark_drained(pump.from);
        if (n > 0 && !forward(pump, scratch.data(), n)) return;
        if (ec) {
            stop_pump(pump, ec);
            return;
        }
        if (drained) break;
    }
    if (readiness::kSupported)
        park(pump);  // marked drained or not: Asio tries first if not
    else
        wait_readable(pump);
}

void TcpSession::stop_pump(Pump& pump, const error_code& ec) {
    error_code ignored;
    if (ec == asio::error::eof) {
        pump.to.shutdown(tcp::socket::shutdown_send, ignored);
    } else {
        // Reset, timeout or shutdown: the other direction ends too.
        close_both();
    }
    pump.done = true;
    if (up_.done && down_.done) end(shared_from_this(), "spliced");
}

void TcpSession::close_both() {
    error_code ignored;
    client_.close(ignored);
    backend_.close(ignored);
}

void TcpSession::finish(const char* result) {
    record_.time_ms = balancer_.clock().wall_ms();
    record_.listener = listener_.config().name;
    record_.client_address = identity_.address.to_string();
    record_.client_port = identity_.port;
    record_.pool = pool_ ? pool_->name() : "";
    record_.size = up_.bytes;
    record_.result = result;
    record_.identity = config::identity_text(listener_.config());
    record_.reply = std::to_string(up_.bytes) + " bytes to the backend, " +
                    std::to_string(down_.bytes) + " back";
    record_.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - started_)
                              .count();
    balancer_.tracking().write(record_.to_json());
}

void TcpSession::end(std::shared_ptr<TcpSession> self, const char* result) {
    auto task = self->task_;  // the listener is used below, after the session
    if (result) self->finish(result);
    Listener& listener = self->listener_;
    std::string client = std::move(self->client_key_);
    self->close_both();
    self.reset();  // unless a handler still holds it, the session is gone here
    listener.session_ended(client);
}

awaitable<void> TcpSession::run() {
    const auto& config = listener_.config();
    deadline_ = Deadline::start(client_.get_executor(), [this] { close_both(); });
    if (config.proxy_protocol != config::ProxyProtocol::None) {
        deadline_->expires_after(config.proxy_timeout);
        auto header = co_await listener_.read_upstream_header(client_);
        if (!header) {
            end(shared_from_this(), nullptr);
            co_return;
        }
        if (!header->local) {
            identity_.address = header->source.unmapped();
            identity_.port = header->source_port;
            identity_.local_address = header->destination.unmapped();
            identity_.local_port = header->destination_port;
        }
        auto key = identity_.address.to_string();
        if (!listener_.admit(key)) {
            end(shared_from_this(), nullptr);
            co_return;
        }
        client_key_ = key;
    }
    deadline_->suspend();  // a hold is not the client's time
    auto over = co_await limits_.connect();
    if (over) {
        end(shared_from_this(), nullptr);  // refused: closed (logged as a limit line)
        co_return;
    }
    pool_ = balancer_.pool(config.pool);
    // Each backend tried may first wait for a connection slot (max_connections).
    deadline_->expires_after((pool_->config().connect_timeout + pool_->config().connection_wait) *
                             pool_->config().max_attempts);
    bool connected = co_await connect();
    if (!connected) {
        // Nothing SMTP can be said here (the client may expect TLS): close.
        end(shared_from_this(), "tempfailed");
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
            end(shared_from_this(), "tempfailed");
            co_return;
        }
    }
    wait_readable(up_);
    wait_readable(down_);
}

}  // namespace

awaitable<void> run_tcp_session(tcp::socket socket, Listener& listener, std::string client,
                                tcp::endpoint peer) {
    auto session =
        std::make_shared<TcpSession>(std::move(socket), listener, std::move(client), peer);
    co_await session->run();
}

}  // namespace smtplb::io
