#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/pool.hpp"
#include "core/tracking.hpp"
#include "core/transaction.hpp"
#include "io/asio.hpp"
#include "io/backend/backend_connection.hpp"
#include "io/backend/backend_connector.hpp"
#include "io/backend/connection_cache.hpp"
#include "io/runtime/message_buffer.hpp"
#include "proto/address.hpp"
#include "proto/command.hpp"
#include "proto/identity.hpp"
#include "proto/reply.hpp"

namespace smtplb::io {

// How one listener's transactions reach backends (one per event loop).
struct BackendAccess {
    BackendConnector& connector;
    ConnectionCache& cache;
    std::string hostname;  // our EHLO name towards backends
    config::IdentityMode identity_mode = config::IdentityMode::Xclient;
    std::optional<base::IpAddress> source_address;
    const BackendTlsContexts* backend_tls = nullptr;
    // Where warnings go (the balancer's event log); none in some tests.
    std::function<void(const std::string&)> log;
    // Backend connections come from the client's own address (transparent
    // mode): each is this client's only, never cached for another.
    bool transparent = false;
};

// Where a client session's spool is, for a transaction no backend can
// take (pools with on_unavailable = "spool").
class SpoolPort {
  public:
    virtual ~SpoolPort() = default;
    // Nothing when the spool may take this recipient; else the reply to give.
    virtual awaitable<std::optional<proto::Reply>> check_recipient(const proto::Mailbox& rcpt) = 0;
    // Writes the message: 250 once durable, else a 4xx.
    virtual awaitable<proto::Reply> commit() = 0;
};

// Carries one client session's transactions to backends: core::Transaction
// decides (which backend, retries, what the client hears, DESIGN.md
// delivery contract); this class does what it asks, on real connections,
// and keeps this session's idle ones.
class TransactionExecutor {
  public:
    TransactionExecutor(BackendAccess& context, const proto::ClientIdentity& identity,
                        std::uint64_t session);
    ~TransactionExecutor();

    // The session's spool, for pools that spool (none: they never do).
    void set_spool(SpoolPort* spool) { spool_ = spool; }
    // A new transaction (the client's MAIL FROM, already accepted locally).
    void begin(core::Pool& pool, const proto::Path& sender, const proto::MailParameters& params);
    // These speak of the current transaction (there is one after begin()).
    const proto::Path& sender() const { return tx_->sender(); }
    const proto::MailParameters& mail_parameters() const { return tx_->mail_parameters(); }
    core::Pool* pool() const { return tx_ ? tx_->pool() : nullptr; }
    // Moves a transaction with no accepted recipient yet to another pool.
    awaitable<void> switch_pool(core::Pool& pool);
    awaitable<proto::Reply> add_recipient(const proto::Mailbox& rcpt,
                                          const proto::RcptParameters& params = {});
    // Recipients the client pipelined (their RCPTs go to the backend
    // together where it offers PIPELINING): recipients() starts them, and
    // each recipient_reply() is the next one's reply, in order.
    void recipients(std::vector<core::RecipientInput> batch) { tx_->recipients(std::move(batch)); }
    awaitable<proto::Reply> recipient_reply();
    // Some of the backend's next reply is already here: waiting for it costs
    // no time.
    bool reply_buffered() const { return conn_ && conn_->protocol().buffered() > 0; }
    // The client sent DATA: DATA goes to the backend now, so its 354 arrives
    // while the client is still sending.
    // `chunking`: the client sent BDAT (core::Transaction::data).
    awaitable<void> start_data(bool chunking = false);
    // The body arrives and is worth sending on as it comes
    // (core::Transaction::body_arriving): the backend's answer to DATA is
    // read now. The hold keeps counting from where it did.
    awaitable<void> body_arriving();
    // The backend takes the body as it arrives (after body_arriving()).
    bool streaming() const { return tx_ && tx_->streaming() && conn_; }
    // Octets of the body the backend has been sent so far.
    std::uint64_t streamed() const { return streaming() ? conn_->streamed() : 0; }
    // Writes what has arrived of the body since the last call; a failed
    // write lets the backend go (the message goes elsewhere at its end).
    // A write is the backend's last step: the hold counts from it.
    awaitable<void> stream(const proto::BodySource& body);
    awaitable<proto::Reply> deliver(const proto::BodySource& body);
    // The transaction ended without delivery (RSET, QUIT, refused message).
    awaitable<void> abandon();
    // A backend holds this client's open transaction while smtplb waits on
    // the client.
    bool holding() const { return tx_ && tx_->holding(); }
    // A backend waits on this client: it holds its open transaction, or a
    // connection of this session sits idle (one XCLIENT bound to this client
    // holds a backend process for it alone). The hold timer runs from
    // waiting_since().
    bool keeps_backend_waiting() const { return holding() || !stash_.empty(); }
    std::chrono::steady_clock::time_point waiting_since() const;
    // The client kept a backend waiting for the pool's backend_hold_time:
    // the transaction's connection is let go (replayed when the client goes
    // on), or, between transactions, the session's idle ones (not a
    // coroutine: called from a timer while the session waits on the client).
    void client_slow();
    Millis hold_time() const;
    // Session end: connections go back to the shared cache.
    void release_connections();

    // The last answer was "no backend can take it now" (no spool took over).
    bool no_backend() const { return tx_ && tx_->no_backend(); }
    // No backend could take it now (the generic reply or the last backend's
    // deferral), and whether a backend's max_connections was in the way.
    bool unavailable() const { return tx_ && tx_->unavailable(); }
    bool held_by_limits() const { return tx_ && tx_->held_by_limits(); }
    bool spooling() const { return tx_ && tx_->spooling(); }
    // Every recipient the client was told 250 for.
    const std::vector<proto::Mailbox>& accepted() const { return tx_->accepted(); }
    const std::vector<proto::RcptParameters>& accepted_parameters() const {
        return tx_->accepted_parameters();
    }
    // The backend that took the message did not announce DSN (RFC 3461 §4.2).
    bool relayed_without_dsn() const { return tx_ && tx_->relayed_without_dsn(); }
    const std::vector<core::AttemptRecord>& attempts() const { return tx_->attempts(); }
    const std::string& queue_id() const { return tx_->queue_id(); }
    // The identity the backend that carried the transaction was given:
    // "xclient", "proxy-v1", "proxy-v2", or "none" (configured so, or the
    // backend took no XCLIENT: then a warning was logged and counted).
    const std::string& identity_result() const { return identity_presented_; }
    const proto::ClientIdentity& identity() const { return identity_; }
    // The client a trusted upstream proxy named (PROXY protocol): it is who
    // policy, limits, logs and XCLIENT speak of from now on.
    void set_origin(const base::IpAddress& address, std::uint16_t port,
                    const base::IpAddress& local_address, std::uint16_t local_port) {
        identity_.address = address.unmapped();
        identity_.port = port;
        identity_.local_address = local_address.unmapped();
        identity_.local_port = local_port;
    }
    // The client's TLS: PROXY v2 passes it on.
    void set_tls(const std::string& version, const std::string& cipher, bool certificate) {
        identity_.tls_version = version;
        identity_.tls_cipher = cipher;
        identity_.client_certificate = certificate;
    }
    // The client authenticated: XCLIENT LOGIN passes it on.
    void set_login(const std::string& login) { identity_.login = login; }
    // The client's host names, once looked up: XCLIENT NAME and REVERSE_NAME.
    void set_client_names(const std::string& name, const std::string& reverse_name) {
        identity_.name = name;
        identity_.reverse_name = reverse_name;
    }
    void set_helo(const std::string& helo, bool esmtp) {
        identity_.helo = helo;
        identity_.esmtp = esmtp;
    }

  private:
    // Does what the transaction asks until it answers the client (the
    // reply) or needs nothing more (none).
    awaitable<std::optional<proto::Reply>> run();
    // Carries out what needs no waiting (after begin(), client_slow()).
    void run_without_waiting();
    // Releases that need no waiting: Keep, Quit, Close.
    void release_now(core::TransactionAction::Release how);
    // RSET, then this session's idle connection (dropped if the RSET fails).
    awaitable<void> reset_and_keep();
    bool spools(const core::Pool& pool) const;
    // A connection to `backend` that speaks for the client: this session's,
    // a cached one (unless `fresh`), or a new one; the transaction hears how
    // it went.
    awaitable<void> open(std::size_t backend, bool fresh);
    struct Opening {
        std::unique_ptr<BackendConnection> conn;
        core::OpenFailure failure;
    };
    // This session's idle connection to `backend`, if it may carry the mail.
    std::unique_ptr<BackendConnection> from_stash(std::size_t backend);
    // A cached connection (unless `fresh`), or a new one.
    awaitable<Opening> acquire(std::size_t backend, bool fresh);
    awaitable<std::unique_ptr<BackendConnection>> connect(std::size_t backend, Opening& opening);
    // XCLIENT for the transaction's client on conn, when the listener says
    // so. Nothing when the transaction may go on with conn; else why not
    // (conn is then gone).
    awaitable<std::optional<core::OpenFailure>> present_identity(
        std::unique_ptr<BackendConnection>& conn, std::size_t backend);
    // smtplb's own AUTH on a backend with pool.backend.auth, once the
    // connection speaks for the client (an XCLIENT ends the SASL session).
    awaitable<std::optional<core::OpenFailure>> authenticate(BackendConnection& conn);
    void keep(std::unique_ptr<BackendConnection> conn);
    // The identity key connections must serve for this client: XCLIENT's,
    // the HELO key where the pool greets with the client's HELO, else "".
    std::string identity_key() const;
    // No XCLIENT or PROXY, and the pool's helo_to_backend is "client".
    bool greets_with_client_helo() const;
    // A warning (once per connection) and a count: the backend was not told
    // who the client is, or not all of it.
    void identity_not_presented(BackendConnection& conn, std::size_t backend, const char* reason);
    Millis reply_timeout() const;

    BackendAccess& context_;
    proto::ClientIdentity identity_;
    std::uint64_t session_;
    // Made at the first MAIL and kept: an idle connection that never sent
    // one does not carry it (the per-connection memory budget).
    std::unique_ptr<core::Transaction> tx_;
    SpoolPort* spool_ = nullptr;
    const proto::BodySource* body_ = nullptr;                // during deliver()
    std::unique_ptr<BackendConnection> conn_;                // the transaction's connection
    std::vector<std::unique_ptr<BackendConnection>> stash_;  // this session's idle ones
    std::chrono::steady_clock::time_point idle_since_{};
    std::string identity_presented_;
};

}  // namespace smtplb::io
