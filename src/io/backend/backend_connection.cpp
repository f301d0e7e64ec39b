#include "io/backend/backend_connection.hpp"

#include <sys/socket.h>

#include "io/backend/connection_cache.hpp"
#include "io/runtime/sockets.hpp"

namespace smtplb::io {

using Step = proto::BackendSession::Step;

namespace {
constexpr std::size_t kReadBufferSize = 16384;
}  // namespace

BackendConnection::BackendConnection(tcp::socket socket, core::Pool& pool, std::size_t backend,
                                     std::optional<base::IpAddress> source)
    : socket_(std::move(socket)),
      read_buffer_(std::make_unique_for_overwrite<char[]>(kReadBufferSize)),
      pool_(pool),
      backend_(backend),
      source_(source) {
    tune_socket(socket_);
    deadline_ = Deadline::start(socket_.get_executor(), [this] {
        error_code ec;
        socket_.close(ec);
    });
    pool_.connection_opened(backend_);
}

void BackendConnection::track_in(ConnectionCache& cache, ConnectionSlot* slot) {
    if (slot) slot->opened();
    tracker_ = &cache;
    cache.track(this);
}

BackendConnection::~BackendConnection() {
    deadline_->stop();
    pool_.connection_closed(backend_);
    if (tracker_) tracker_->untrack(this);
}

void BackendConnection::close() {
    error_code ec;
    socket_.close(ec);
}

awaitable<bool> BackendConnection::flush() {
    return write_queued(pool_.config().reply_timeout);
}

awaitable<bool> BackendConnection::write_queued(Millis budget) {
    auto& out = protocol_.output();
    if (out.empty()) co_return socket_.is_open();
    error_code ec;
    bool timed_out = false;
    std::size_t written = stream_.write_now(asio::buffer(out), ec);
    if (!ec && written < out.size()) {
        DeadlineStep step(*deadline_, budget);  // from the write's start
        auto [rest_ec, n] = co_await stream_.write_rest(asio::buffer(out), written);
        ec = rest_ec;
        timed_out = ec && deadline_->expired();
    }
    out.clear();
    if (ec) {
        failure_ = timed_out ? "timeout writing to backend" : "write failed: " + ec.message();
        co_return false;
    }
    co_return true;
}

awaitable<std::optional<BackendConnection::Completion>> BackendConnection::next(Millis timeout) {
    if (!protocol_.output().empty()) {  // a coroutine call saved when there is nothing to send
        bool flushed = co_await flush();
        if (!flushed) co_return std::nullopt;
    }
    DeadlineStep step(*deadline_, timeout);
    for (;;) {
        if (auto done = protocol_.next()) co_return done;
        if (protocol_.failed()) {
            failure_ = "protocol error: " + protocol_.failure();
            co_return std::nullopt;
        }
        auto buffer = asio::buffer(read_buffer_.get(), kReadBufferSize);
        auto [ec, n] = co_await stream_.read_some(buffer);
        if (ec) {
            failure_ = deadline_->expired()     ? "timeout waiting for reply"
                       : ec == asio::error::eof ? "connection closed by backend"
                                                : "read failed: " + ec.message();
            co_return std::nullopt;
        }
        protocol_.feed(std::string_view(read_buffer_.get(), n));
    }
}

awaitable<bool> BackendConnection::drain(Millis timeout) {
    while (!protocol_.idle()) {
        auto reply = co_await next(timeout);
        if (!reply) co_return false;
    }
    co_return true;
}

std::string BackendConnection::tls_name() const {
    return config::tls_name_for(pool_.config(), pool_.backend(backend_).config);
}

awaitable<bool> BackendConnection::start_tls(const TlsContext& context, bool verify,
                                             Millis timeout) {
    bool flushed = co_await flush();  // a PROXY header goes out before the handshake
    if (!flushed) co_return false;
    DeadlineStep step(*deadline_, timeout);
    auto name = tls_name();
    auto ec = co_await stream_.connect(context, name, verify);
    if (ec) {
        failure_ = deadline_->expired()
                       ? "timeout in the TLS handshake"
                       : "TLS handshake with " + name + ": " + stream_.describe(ec);
        co_return false;
    }
    co_return true;
}

awaitable<bool> BackendConnection::ehlo(const std::string& hostname, Millis timeout, bool esmtp) {
    protocol_.send(Step::Ehlo, (esmtp ? "EHLO " : "HELO ") + hostname + "\r\n");
    auto reply = co_await next(timeout);
    if (!reply) co_return false;
    if (esmtp && (reply->reply.code == 500 || reply->reply.code == 502)) {
        // An SMTP-only server (RFC 5321 §3.2): HELO, and no extensions.
        protocol_.send(Step::Ehlo, "HELO " + hostname + "\r\n");
        reply = co_await next(timeout);
        if (!reply) co_return false;
    }
    if (reply->reply.code != 250) {
        refusal_ = reply->reply;
        failure_ = "EHLO " + reply->reply.summary();
        helo_refused_ = reply->reply.code != 421;
        co_return false;
    }
    co_return true;
}

awaitable<bool> BackendConnection::handshake(const std::string& hostname, Millis timeout,
                                             const TlsContext& tls_context, bool esmtp) {
    using Mode = config::BackendTlsMode;
    const auto& tls = pool_.config().tls;
    if (tls.mode == Mode::Implicit) {
        bool secured = co_await start_tls(tls_context, true, timeout);
        if (!secured) co_return false;
    }
    auto greeting = co_await next(timeout);
    if (!greeting) co_return false;
    if (greeting->reply.code != 220) {
        refusal_ = greeting->reply;
        failure_ = "greeting " + greeting->reply.summary();
        co_return false;
    }
    const bool starttls = tls.mode == Mode::Opportunistic || tls.mode == Mode::Required;
    // AUTH (pool.backend.auth) needs EHLO's extensions, as STARTTLS does.
    const bool auth = pool_.backend(backend_).config.auth.has_value();
    bool greeted = co_await ehlo(hostname, timeout, esmtp || starttls || auth);
    if (!greeted) co_return false;
    if (!starttls) co_return true;
    if (!protocol_.capabilities().starttls) {
        if (tls.mode == Mode::Opportunistic) co_return true;
        failure_ = "STARTTLS required but not offered";
        co_return false;
    }
    protocol_.send(Step::StartTls, "STARTTLS\r\n");
    auto reply = co_await next(timeout);
    if (!reply) co_return false;
    if (reply->reply.code != 220) {
        // The plaintext session goes on where that is allowed.
        if (tls.mode == Mode::Opportunistic) co_return true;
        refusal_ = reply->reply;
        failure_ = "STARTTLS " + reply->reply.summary();
        co_return false;
    }
    if (!protocol_.tls_started()) {
        failure_ = "protocol error: " + protocol_.failure();
        co_return false;
    }
    bool secured = co_await start_tls(tls_context, tls.mode == Mode::Required, timeout);
    if (!secured) co_return false;
    bool again = co_await ehlo(hostname, timeout);
    co_return again;
}

awaitable<BackendConnection::Identity> BackendConnection::present(const proto::ClientIdentity& id,
                                                                  const std::string& key,
                                                                  const std::string& hostname,
                                                                  Millis timeout) {
    if (xclients_sent_ > 0 && presented_key_ == key) co_return Identity::Presented;
    const auto& caps = protocol_.capabilities();
    if (!caps.xclient || !caps.xclient_attributes.count("ADDR")) co_return Identity::NotOffered;
    const bool first = xclients_sent_ == 0;
    auto attributes = caps.xclient_attributes;
    // With pool.backend.auth the backend's login is smtplb's account: a
    // client's LOGIN= would replace it (docs/tls.md, AUTH towards smarthosts).
    if (pool_.backend(backend_).config.auth) attributes.erase("LOGIN");
    auto command = proto::xclient_command(id, attributes, pool_.config().xclient_line_limit);
    protocol_.send(Step::Xclient, command.line);
    ++xclients_sent_;
    // From here on the backend may speak for the client whatever happens:
    // this connection serves nobody else until an EHLO says otherwise.
    presented_key_ = key;
    bound_ = true;
    authenticated_ = false;  // Postfix ends the SASL session with XCLIENT
    omitted_ = std::move(command.omitted);
    auto reply = co_await next(timeout);
    if (!reply) co_return Identity::Broken;
    // Postfix answers 220 (a new session); others, smtp-sink among them,
    // answer 250. Either way EHLO follows.
    if (reply->reply.klass() != 2) {
        refusal_ = reply->reply;
        failure_ = "XCLIENT " + reply->reply.summary();
        const auto& r = reply->reply;
        bool authorisation = r.code == 550 || r.enhanced.rfind("5.7.", 0) == 0;
        if (r.code == 421) co_return Identity::Broken;
        co_return first&& authorisation ? Identity::Unauthorised : Identity::Refused;
    }
    // Postfix takes the HELO name it records and judges from the EHLO that
    // must follow XCLIENT: the client's own, as the client said it.
    auto name = proto::helo_for_backend(id.helo, hostname, pool_.config().xclient_line_limit);
    // EHLO for a client that said HELO too where smtplb must AUTH after it
    // (the backend then records ESMTP; docs/tls.md).
    const bool esmtp = id.esmtp || pool_.backend(backend_).config.auth.has_value();
    protocol_.send(Step::Ehlo, (esmtp ? "EHLO " : "HELO ") + name + "\r\n");
    auto ehlo = co_await next(timeout);
    if (!ehlo) co_return Identity::Broken;
    if (ehlo->reply.code != 250) {
        refusal_ = ehlo->reply;
        failure_ = "EHLO after XCLIENT " + ehlo->reply.summary();
        co_return ehlo->reply.code == 421 ? Identity::Broken : Identity::HeloRefused;
    }
    // Still offered: the backend authorises the client it now speaks for
    // too, so another client's XCLIENT may follow (HELO greets without
    // extensions, so nothing can be told then).
    bound_ = !(esmtp && protocol_.capabilities().xclient);
    co_return Identity::Presented;
}

bool BackendConnection::worn_out() const {
    const auto& config = pool_.config();
    return transactions_ >= config.max_messages_per_connection ||
           std::chrono::steady_clock::now() - opened_at_ >= config.max_connection_age;
}

awaitable<bool> BackendConnection::reset(Millis timeout) {
    bool drained = co_await drain(timeout);
    if (!drained) co_return false;
    protocol_.send(Step::Rset, "RSET\r\n");
    auto reply = co_await next(timeout);
    co_return reply && reply->reply.code == 250;
}

awaitable<void> BackendConnection::quit(Millis timeout) {
    if (socket_.is_open() && protocol_.idle()) {
        protocol_.send(Step::Quit, "QUIT\r\n");
        co_await next(timeout);
    }
    close();
}

bool BackendConnection::reusable() {
    if (!socket_.is_open() || !protocol_.idle() || protocol_.failed()) return false;
    // Used within the last second: the backend has had no time to close it
    // (a peek per message would cost a syscall on the hot path).
    if (std::chrono::steady_clock::now() - idle_since < std::chrono::seconds(1)) return true;
    char byte;
    ssize_t n = ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    // 0: the backend closed; >0: it said something nobody asked for.
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace smtplb::io
