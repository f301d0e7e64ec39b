#pragma once
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>

#include <boost/asio/ssl.hpp>

#include "config/config.hpp"
#include "io/asio.hpp"
#include "io/runtime/readiness.hpp"

namespace smtplb::io {

namespace ssl = asio::ssl;
using TlsContext = std::shared_ptr<ssl::context>;

// What a finished handshake established, for the tracking log.
struct TlsFacts {
    std::string version;                         // "TLSv1.3"
    std::string cipher;                          // "TLS_AES_256_GCM_SHA384"
    std::string peer_subject;                    // the peer certificate's subject, "" without one
    std::string peer_fingerprint;                // its SHA-256, lower-case hex
    std::optional<long long> peer_seconds_left;  // until it expires (negative: expired)
    std::string summary() const { return version.empty() ? "" : version + " " + cipher; }
};

// Contexts built from the configuration's files; null with `error` set
// when a certificate, key or CA file does not load or does not match. Built
// again on every reload, which is how renewed certificates are picked up.
TlsContext make_server_tls(const config::ServerTls& tls, std::string& error);
TlsContext make_backend_tls(const config::BackendTls& tls, std::string& error);
// Seconds until the context's own certificate (a listener's) expires,
// negative once it has; nothing without a context or certificate.
std::optional<long long> certificate_seconds_left(const TlsContext& context);

// The pools' backend TLS contexts, by pool name; built with each
// configuration generation.
class BackendTlsContexts {
  public:
    bool build(const config::Config& config, std::string& error);
    TlsContext for_pool(const std::string& pool) const {
        auto it = contexts_.find(pool);
        return it == contexts_.end() ? nullptr : it->second;
    }

  private:
    std::map<std::string, TlsContext> contexts_;
};

// One connection's byte stream: plaintext until upgraded (STARTTLS), or
// TLS from the first byte (implicit TLS). Reads and writes go through
// whichever is active, so the SMTP code above does not care.
class TlsCapableStream {
  public:
    explicit TlsCapableStream(tcp::socket& socket) : socket_(socket) {}

    bool active() const { return stream_ != nullptr; }

    // Some bytes, or an error. In plaintext, a read right after the socket
    // was found drained waits for epoll's event instead of trying first,
    // and a read after an event reads at once (io/readiness.hpp). An Asio
    // operation, not a coroutine: a waiting read holds no frame of its own
    // (idle connections). Ended by cancelling or closing the socket.
    auto read_some(asio::mutable_buffer buffer) {
        return asio::async_initiate<decltype(use_nothrow), void(error_code, std::size_t)>(
            [this, buffer](auto handler) { start_read(buffer, std::move(handler)); }, use_nothrow);
    }
    // All of `buffers`, or an error: write_now, then Asio for the rest.
    template <typename Buffers>
    awaitable<std::tuple<error_code, std::size_t>> write(const Buffers& buffers);
    // In plaintext, writes what the socket takes at once and says how much:
    // a reply or a body almost always fits the send buffer, and then a write
    // costs one syscall instead of an Asio operation's trip through the
    // reactor and the scheduler, and no coroutine. 0 under TLS or when the
    // socket is full; `ec` is set only for a real failure.
    template <typename Buffers>
    std::size_t write_now(const Buffers& buffers, error_code& ec);
    // In plaintext, reads what has arrived, without waiting: 0 under TLS or
    // when nothing has; `ec` is set for a failure or the end of the stream.
    std::size_t read_now(asio::mutable_buffer buffer, error_code& ec);
    // What write_now left, `skip` bytes into `buffers`, through Asio.
    template <typename Buffers>
    awaitable<std::tuple<error_code, std::size_t>> write_rest(const Buffers& buffers,
                                                              std::size_t skip);
    // (The three are defined in tls.cpp for the buffer types used: out of
    // line, as GCC 12 warns falsely about coroutines inlined into others.)

    // The server side of a handshake. Cancel the socket to time it out.
    awaitable<error_code> accept(TlsContext context);
    // The client side: with `verify`, the peer's certificate must chain to
    // the context's trust store and carry `name` (a host name or address).
    awaitable<error_code> connect(TlsContext context, const std::string& name, bool verify);
    // Why a failed handshake failed, as precisely as OpenSSL says.
    std::string describe(const error_code& ec) const;
    TlsFacts facts() const;
    // "TLSv1.3 TLS_AES_256_GCM_SHA384", or "" in plaintext: facts() without
    // the certificate work, for every message.
    std::string summary() const;

  private:
    template <typename Handler>
    void start_read(asio::mutable_buffer buffer, Handler handler) {
        if (stream_) {
            stream_->async_read_some(buffer, std::move(handler));
            return;
        }
        if (!readiness::kSupported || !socket_.non_blocking()) {
            socket_.async_read_some(buffer, std::move(handler));
            return;
        }
        if (!readiness::drained(socket_)) {
            // Data may have come: read it now, and if that empties the
            // socket, say so while no event for it can have been taken since.
            error_code ec;
            std::size_t got = read_now(buffer, ec);
            if (ec || got > 0) {
                if (!ec && got < buffer.size()) readiness::mark_drained(socket_);
                asio::post(socket_.get_executor(),
                           [handler = std::move(handler), ec, got]() mutable {
                               std::move(handler)(ec, got);
                           });
                return;
            }
            readiness::mark_drained(socket_);
        }
        // Drained: Asio reads when epoll reports data, and its reactor runs
        // this handler at once, in that turn of the loop, before another
        // event can be taken; unless an Asio write on this socket completed
        // on the same event first.
        bool alone = writes_started_ == writes_finished_;
        socket_.async_read_some(
            buffer, [this, handler = std::move(handler), alone, started = writes_started_,
                     size = buffer.size()](error_code ec, std::size_t got) mutable {
                if (!ec && got < size && alone && started == writes_started_)
                    readiness::mark_drained(socket_);
                std::move(handler)(ec, got);
            });
    }

    tcp::socket& socket_;
    // Asio writes started and finished. A read that waited may be taken as
    // proof the socket was drained only if no Asio write ran beside it: a
    // write's completion on the same event would delay the read's.
    std::uint32_t writes_started_ = 0;
    std::uint32_t writes_finished_ = 0;
    TlsContext context_;  // kept: a reload may replace the listener's or pool's
    std::unique_ptr<ssl::stream<tcp::socket&>> stream_;
};

}  // namespace smtplb::io
