#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/network.hpp"
#include "core/pool.hpp"
#include "core/transaction.hpp"
#include "io/asio.hpp"
#include "io/runtime/deadline.hpp"
#include "io/runtime/tls.hpp"
#include "proto/backend_session.hpp"
#include "proto/identity.hpp"

namespace smtplb::io {

// One SMTP connection to a backend: a socket, the sans-I/O client protocol,
// and a deadline. The conversation's order is decided by TransactionExecutor; this class
// only moves bytes and waits for replies.
class BackendConnection {
  public:
    using Completion = proto::BackendSession::Completion;

    BackendConnection(tcp::socket socket, core::Pool& pool, std::size_t backend,
                      std::optional<base::IpAddress> source);
    ~BackendConnection();
    BackendConnection(const BackendConnection&) = delete;
    BackendConnection& operator=(const BackendConnection&) = delete;

    proto::BackendSession& protocol() { return protocol_; }
    // Writes the queued commands, within the pool's reply_timeout from the
    // write's start; false when the connection broke or the time ran out.
    awaitable<bool> flush();
    // EightBitRefused: 8-bit content this backend cannot take (failure() says why).
    enum class BodyResult { Sent, WriteFailed, ReadFailed, EightBitRefused };
    // After a 354: the message, dot-stuffed unless it is stored that way
    // already, and the final "." line. ReadFailed: the body could not be
    // read back (our own spill file), which no other backend would change.
    // Each write has its own budget (config::body_write_budget).
    // `eight_bit`: for a backend without 8BITMIME, 8-bit content is
    // converted to 7-bit MIME (Convert) or not sent at all (Refuse).
    // `chunking` (the backend announced CHUNKING): instead of DATA's body,
    // one "BDAT <size> LAST" with the content as it is (RFC 3030), its size
    // checked against what is sent (a mismatch closes: ReadFailed).
    // `streamed`: only what stream_body() has not written yet, then the ".".
    awaitable<BodyResult> send_body(
        const proto::BodySource& body,
        core::TransactionAction::EightBit eight_bit = core::TransactionAction::EightBit::Pass,
        bool chunking = false, bool streamed = false);
    // After a 354 read while the client still sends (Transaction::
    // body_arriving): writes what has arrived of a body stored as it is sent
    // (BodyForm::Transmission) since the last call, without the final ".".
    // Bounded by the body's write budget; false when the write failed
    // (failure()) or the body cannot be read back.
    awaitable<bool> stream_body(const proto::BodySource& body);
    // Octets of the body written by stream_body().
    std::uint64_t streamed() const { return streamed_; }
    // The next reply, or nothing when the connection broke, timed out or sent
    // something that is not SMTP (failure() says which). Queued commands go
    // out first (flush()); then `timeout` counts from the wait's start.
    awaitable<std::optional<Completion>> next(Millis timeout);
    // Reads and discards replies until none is outstanding.
    awaitable<bool> drain(Millis timeout);

    // Greeting and EHLO on a new connection, with TLS as the pool's `tls`
    // says (`tls_context` is the pool's; null for none): implicit TLS before
    // the greeting, or STARTTLS after EHLO and EHLO again.
    // `esmtp` false greets with HELO (a PROXY connection for a client that
    // said HELO), unless STARTTLS needs EHLO.
    awaitable<bool> handshake(const std::string& hostname, Millis timeout,
                              const TlsContext& tls_context = nullptr, bool esmtp = true);
    bool tls_active() const { return stream_.active(); }
    // The TLS in use, for the tracking log ("" in plaintext).
    std::string tls_summary() const { return stream_.summary(); }
    enum class Identity {
        Presented,     // the backend now judges the client (or already did)
        NotOffered,    // the backend announces no XCLIENT, or no ADDR: nothing presented
        Broken,        // the connection broke, timed out or closed (failure())
        Unauthorised,  // 550 / 5.7.x to the first XCLIENT on this connection: the
                       // backend does not authorise this balancer (refusal())
        Refused,       // XCLIENT refused otherwise: about this client or this
                       // connection's earlier client, not the backend (refusal())
        HeloRefused,   // the EHLO after XCLIENT refused: the client's HELO, as the
                       // backend judges it; refusal() is the client's answer
    };
    // Makes the backend speak for `id` (key: proto::identity_key(id)): one
    // XCLIENT, then EHLO (or HELO, as the client said) with the client's own
    // name. Nothing is sent when the connection already speaks for that key.
    // Only call it when serves(key).
    awaitable<Identity> present(const proto::ClientIdentity& id, const std::string& key,
                                const std::string& hostname, Millis timeout);
    // Whether this connection may carry a transaction of the client with
    // this identity key: any client until an XCLIENT bound it to one (the
    // backend stopped offering XCLIENT after it, as Postfix does when the
    // client it now speaks for is not itself authorised).
    // A connection greeted with a client's own HELO (greeted_as()) serves
    // only clients with that HELO key, and one greeted with smtplb's own
    // name no client with a HELO key.
    bool serves(const std::string& key) const {
        if (bound_) return presented_key_ == key;
        return greeting_key_ == (proto::is_helo_key(key) ? key : std::string());
    }
    // The handshake greeted with a client's own HELO (proto::helo_key).
    void greeted_as(const std::string& helo_key) { presented_key_ = greeting_key_ = helo_key; }
    // Bound to one client by an XCLIENT (see serves()).
    bool bound() const { return bound_; }
    // The identity key the backend judges this connection's mail by ("":
    // the balancer itself).
    const std::string& presented_key() const { return presented_key_; }
    // Attributes the last XCLIENT left out to fit the backend's line.
    const std::vector<std::string>& omitted() const { return omitted_; }
    enum class Auth {
        Ready,          // authenticated, or the backend has no pool.backend.auth
        Misconfigured,  // AUTH refused, not offered, or no TLS for it (failure())
        Deferred,       // a 4xx to AUTH: this connection only (refusal())
        Broken,         // the connection broke or timed out (failure())
    };
    // smtplb's own AUTH on a backend with pool.backend.auth (backend_auth.cpp):
    // after the EHLO, and again after an XCLIENT (which ends the backend's
    // SASL session). Nothing is sent when the connection is authenticated.
    awaitable<Auth> authenticate(Millis timeout);

    // Past the pool's max_connection_age or max_messages_per_connection:
    // to be closed with QUIT rather than reused.
    bool worn_out() const;
    // A transaction (MAIL) goes out on it: nothing of its body streamed yet.
    void count_transaction() {
        ++transactions_;
        streamed_ = 0;
        streamed_ends_line_ = true;
    }
    // RSET so the connection can carry another transaction.
    awaitable<bool> reset(Millis timeout);
    // Polite end: QUIT, its reply, close.
    awaitable<void> quit(Millis timeout);

    // True when the connection can be lent to another transaction: open,
    // nothing outstanding, and the backend has not closed it or sent
    // anything unasked (a 421 on idle timeout, say).
    bool reusable();
    void close();
    // Registers with the cache's list of open connections until destroyed,
    // and gives back the slot it was opened on (max_connections), for the
    // constructor has counted it already (ConnectionSlot::opened).
    void track_in(class ConnectionCache& cache, class ConnectionSlot* slot = nullptr);

    core::Pool& pool() { return pool_; }
    std::size_t backend() const { return backend_; }
    const std::optional<base::IpAddress>& source() const { return source_; }
    const std::string& failure() const { return failure_; }
    // The backend's reply that ended the handshake (a 421 or 554 greeting,
    // a refused EHLO), when it was a reply and not a broken connection.
    const std::optional<proto::Reply>& refusal() const { return refusal_; }
    // The handshake ended at a refused EHLO (not a 421): on a connection that
    // greets with the client's own HELO (PROXY), the backend's verdict on it.
    bool helo_refused() const { return helo_refused_; }
    // Connections that carry a PROXY header speak for one client only.
    bool dedicated = false;
    // Taken from a cache rather than opened for this transaction: if it
    // breaks before any reply, the backend probably closed it while idle.
    bool reused = false;
    // Identity presented and not presented are logged once per connection.
    bool identity_logged = false;
    std::chrono::steady_clock::time_point idle_since{};

  private:
    awaitable<BodyResult> send_chunked(const proto::BodySource& body);
    // The stored body from `from` on, as it is, in gathered writes; with
    // `terminate`, its final "." line after it.
    awaitable<BodyResult> write_stored(const proto::BodySource& body, std::uint64_t from,
                                       bool terminate);
    // The name the backend's certificate must carry.
    std::string tls_name() const;
    awaitable<bool> start_tls(const TlsContext& context, bool verify, Millis timeout);
    // EHLO (HELO for an SMTP-only server), or HELO straight away with !esmtp.
    awaitable<bool> ehlo(const std::string& hostname, Millis timeout, bool esmtp = true);
    // flush() with its budget.
    awaitable<bool> write_queued(Millis budget);

    tcp::socket socket_;
    TlsCapableStream stream_{socket_};
    // Own read buffer: async_read_some into it costs one syscall per read,
    // where waiting first then reading costs two (Asio re-arms epoll for
    // every async_wait). Backend connections are few; this is cheap.
    std::unique_ptr<char[]> read_buffer_;
    core::Pool& pool_;
    std::size_t backend_;
    std::optional<base::IpAddress> source_;
    proto::BackendSession protocol_;
    // Armed only while a step waits on the backend (DeadlineStep): a write,
    // a reply, a TLS handshake; suspended in between.
    std::unique_ptr<Deadline> deadline_;
    std::string failure_;
    std::optional<proto::Reply> refusal_;
    bool helo_refused_ = false;
    std::string presented_key_;
    std::string greeting_key_;  // "": greeted with smtplb's own name
    bool bound_ = false;
    std::uint32_t xclients_sent_ = 0;
    bool authenticated_ = false;       // AUTH holds on this connection now
    bool ever_authenticated_ = false;  // AUTH succeeded once (before an XCLIENT)
    std::vector<std::string> omitted_;
    std::uint32_t transactions_ = 0;
    std::uint64_t streamed_ = 0;      // stream_body(): octets written
    bool streamed_ends_line_ = true;  // ... and whether they end a line
    const std::chrono::steady_clock::time_point opened_at_ = std::chrono::steady_clock::now();
    class ConnectionCache* tracker_ = nullptr;
};

}  // namespace smtplb::io
