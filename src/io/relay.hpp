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
#include "io/asio.hpp"
#include "io/backend_connection.hpp"
#include "io/backend_connector.hpp"
#include "io/connection_cache.hpp"
#include "io/message_buffer.hpp"
#include "proto/address.hpp"
#include "proto/command.hpp"
#include "proto/identity.hpp"
#include "proto/reply.hpp"

namespace smtplb::io {

struct RelayContext {
    BackendConnector& connector;
    ConnectionCache& cache;
    std::string hostname;  // our EHLO name towards backends
    config::IdentityMode identity_mode = config::IdentityMode::Xclient;
    std::optional<base::IpAddress> source_address;
    const BackendTlsContexts* backend_tls = nullptr;
    // Where warnings go (the balancer's event log); none in some tests.
    std::function<void(const std::string&)> log;
};

// Carries one client session's transactions to backends (DESIGN.md delivery
// contract): each transaction is opened on a backend chosen by the pool at
// its first recipient, recipients are verified live, and when a backend
// defers or fails the transaction is replayed on another one before the
// client is answered. The client sees 4xx only when no backend could take it.
class Relay {
  public:
    Relay(RelayContext& context, const proto::ClientIdentity& identity, std::uint64_t session);
    ~Relay();

    // A new transaction (the client's MAIL FROM, already accepted locally).
    void begin(core::Pool& pool, const proto::Path& sender, const proto::MailParameters& params);
    // The transaction's MAIL FROM, as begin() was given it.
    const proto::Path& sender() const { return sender_; }
    const proto::MailParameters& mail_parameters() const { return params_; }
    core::Pool* pool() const { return pool_; }
    // Moves a transaction with no accepted recipient yet to another pool.
    awaitable<void> switch_pool(core::Pool& pool);
    awaitable<proto::Reply> add_recipient(const proto::Mailbox& rcpt);
    // The client sent DATA: send DATA to the backend now, so its 354 arrives
    // while the client is still sending, and the end of the message costs
    // one round trip instead of two. Its reply is read by deliver().
    awaitable<void> start_data();
    awaitable<proto::Reply> deliver(const proto::BodySource& body);
    // The transaction ended without delivery (RSET, QUIT, refused message).
    awaitable<void> abandon();
    // Session end: connections go back to the shared cache.
    void release_connections();

    // The last add_recipient() or deliver() failed because no backend could
    // take the transaction now (not because one refused it): a spooling
    // pool takes over from here.
    bool no_backend() const { return no_backend_; }
    const std::vector<core::AttemptRecord>& attempts() const { return attempts_; }
    const std::string& queue_id() const { return queue_id_; }
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
    // Opens the transaction on a new backend, replaying accepted recipients
    // and then `new_rcpt` if any. Returns the reply for new_rcpt (or, with
    // none, for the replay: a positive reply means conn_ holds it).
    awaitable<proto::Reply> establish(const proto::Mailbox* new_rcpt);
    awaitable<std::unique_ptr<BackendConnection>> acquire(std::size_t backend);
    // max_connections: no slot for a new connection to `backend` within the
    // pool's connection_wait (io/connection_slots.hpp). A failed attempt for
    // the tracking log and the counters; for health, nothing (AtCapacity).
    std::unique_ptr<BackendConnection> at_capacity(std::size_t backend,
                                                   const ConnectionSlot& slot) {
        acquire_outcome_ = core::LiveOutcome::AtCapacity;
        record(backend, "connect", slot.failure());
        return nullptr;
    }
    // Ends use of the current connection; `clean` when it may carry more mail.
    awaitable<void> release_current(bool needs_reset);
    void keep(std::unique_ptr<BackendConnection> conn);
    void record(std::size_t backend, const char* stage, const std::string& what);
    // XCLIENT for the transaction's client on conn, when the listener says
    // so. Returns nothing when the transaction may go on with conn, else
    // what to do: try another backend, try this one on a fresh connection,
    // or answer the client with the backend's verdict on its HELO.
    enum class IdentityStep { Continue, Broken, NextBackend, FreshConnection, AnswerClient };
    awaitable<IdentityStep> present_identity(std::unique_ptr<BackendConnection>& conn,
                                             std::size_t backend, bool may_retry_fresh);
    // The identity key connections must serve for this client ("" without XCLIENT).
    std::string identity_key() const;
    // A warning (once per connection) and a count: the backend was not told
    // who the client is, or not all of it.
    void identity_not_presented(BackendConnection& conn, std::size_t backend, const char* reason);
    // Passive health: tells the pool how a step went on a backend, and
    // starts the retry clock at the transaction's first failure.
    void report(std::size_t backend, core::LiveOutcome outcome, const std::string& reason,
                const proto::Reply* reply = nullptr);
    // Reports a reply and counts it as deferred, rejected or delivered.
    void report_reply(std::size_t backend, const char* stage, const proto::Reply& reply);
    // Retries stop after max_attempts or retry_time since the first failure.
    bool may_try_again() const;
    Millis reply_timeout() const;

    RelayContext& context_;
    proto::ClientIdentity identity_;
    std::uint64_t session_;
    core::Pool* pool_ = nullptr;
    proto::Path sender_;
    proto::MailParameters params_;
    std::vector<proto::Mailbox> recipients_;  // accepted by the current backend
    std::vector<std::size_t> tried_;
    std::uint32_t attempts_made_ = 0;
    std::optional<base::Clock::TimePoint> first_failure_;
    // Why the last acquire() failed, for passive health.
    core::LiveOutcome acquire_outcome_ = core::LiveOutcome::Failed;
    std::optional<proto::Reply> acquire_refusal_;
    std::unique_ptr<BackendConnection> conn_;  // holds the open transaction
    bool data_sent_ = false;  // conn_ is in DATA: it can only be finished or closed
    std::vector<std::unique_ptr<BackendConnection>> stash_;  // this session's idle ones
    std::vector<core::AttemptRecord> attempts_;
    std::string queue_id_;
    std::string identity_presented_;
    std::optional<proto::Reply> helo_verdict_;  // a backend's refusal of the client's HELO
    std::optional<proto::Reply> mail_refusal_;  // the backends refused the sender
    bool no_backend_ = false;
};

}  // namespace smtplb::io
