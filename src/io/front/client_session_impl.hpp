#pragma once
// The session behind run_client_session (client_session.hpp): its state and
// the steps it is made of. Only the client session's own sources include it.
#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/backend/transaction_executor.hpp"
#include "io/balancer.hpp"
#include "io/front/client_names.hpp"
#include "io/front/listener.hpp"
#include "io/front/session_auth.hpp"
#include "io/front/session_limits.hpp"
#include "io/front/transaction_log.hpp"
#include "io/runtime/deadline.hpp"
#include "io/runtime/event_loops.hpp"
#include "io/runtime/message_buffer.hpp"
#include "io/runtime/sockets.hpp"
#include "io/runtime/spare_buffers.hpp"
#include "io/runtime/tls.hpp"
#include "proto/server_session.hpp"

namespace smtplb::io::client_session_detail {

using Kind = proto::ServerEvent::Kind;
using proto::Reply;

class ClientSession : public SpoolPort {
  public:
    ~ClientSession() override { listener_.untrack(&socket_); }
    ClientSession(tcp::socket socket, Listener& listener, std::string client, std::size_t loop)
        : loop_(loop),
          client_key_(std::move(client)),
          socket_(std::move(socket)),
          listener_(listener),
          balancer_(listener.balancer()),
          protocol_(listener.settings()),
          relay_(listener.backend_access(loop), identity_of(socket_), balancer_.next_session_id()),
          limits_(balancer_, listener.config().name, relay_.identity()) {
        listener_.track(&socket_, &protocol_);
        relay_.set_spool(balancer_.spool() ? this : nullptr);
    }

    awaitable<void> run();
    // Whom the listener counts this connection against (per-client limit).
    const std::string& client_key() const { return client_key_; }

  private:
    // The PROXY header a trusted upstream starts with: it names the client.
    // False when it is missing, malformed or late, or the client it names
    // is over its connection limit.
    awaitable<bool> accept_proxy_header(Deadline& deadline);
    // The TLS handshake, bounded by the command timeout; false when it failed.
    awaitable<bool> start_tls(Deadline& deadline);
    // Starts looking up the client's host names, once its address is known
    // (after a PROXY header); resolve_client_names = false leaves them empty.
    void start_name_lookup();
    // The first transaction waits for them (at most server.dns_timeout)
    // before anything about the client goes to a backend.
    awaitable<void> await_client_names();
    std::string spill_dir() const { return balancer_.config().server.state_dir; }
    awaitable<bool> flush();
    // The daemon is stopping: 421 4.3.2 and the end of the session.
    awaitable<void> say_goodbye();
    awaitable<void> handle(proto::ServerEvent& ev);
    awaitable<void> answer_recipients();
    // A body arriving with a backend already in DATA: once
    // core::worth_streaming says so, written on to the backend as it comes,
    // kStreamStep at a time (the rest and the "." at its end), so that a
    // large message reaches the backend about when it would directly.
    // Smaller or slower messages go whole at their end, as before.
    awaitable<void> stream_body(Deadline& deadline);
    static constexpr std::uint64_t kStreamStep = 256 * 1024;
    void begin_tracking(const proto::ServerEvent& ev);
    void finish_tracking(const std::string& reply, const char* result);
    void finish_tracking(const Reply& reply);
    // A transaction that ends without a message (RSET, QUIT, disconnect):
    // logged as aborted when recipients were accepted, as refused when every
    // recipient was (relay attempts show up here), else not at all.
    void end_without_message(const char* why);
    // Checks AUTH credentials with the listener's verifier, unless this
    // address or user has failed too often lately. On the balancer's own
    // loop, where the verifier and the throttle live.
    awaitable<Reply> authenticate(proto::ServerEvent& ev) {
        return on_loop(balancer_.io(), check_credentials(listener_, relay_, ev));
    }
    // Writes the message to the spool: 250 only once it is durable. The
    // spool, too, lives on the balancer's own loop.
    awaitable<Reply> commit() override { return on_loop(balancer_.io(), write_to_spool()); }
    awaitable<Reply> write_to_spool();
    awaitable<bool> spool_has_room();
    // Accepted by the listener's policy; no backend can verify it now.
    awaitable<std::optional<Reply>> check_recipient(const proto::Mailbox& rcpt) override;
    void note_rcpt_reply(const proto::Mailbox& rcpt, const Reply& reply) {
        if (log_) log_->note_recipient(rcpt, reply);
    }

    // Reads go into buffers of the session's own, which Asio fills from one
    // readiness event (one syscall per read): a 512-byte one for commands
    // (an RFC 5321 command line), and during a transaction a 16 KiB one,
    // freed when the transaction ends. A plain function, not a coroutine:
    // an idle connection carries no frame for it.
    asio::mutable_buffer read_buffer();
    // What the first read is waiting for: a PROXY header, implicit TLS.
    // False when the session ends before its greeting.
    awaitable<bool> open(Deadline& deadline);
    // Answers what the client has sent, up to where more input is needed;
    // false when the session is to end.
    awaitable<bool> answer(Deadline& deadline);
    // A read filled the command buffer between transactions: a client that
    // pipelines (MAIL, a group of RCPTs, DATA) has sent more, and what has
    // already arrived is taken now (without waiting, at most kArrivedReads
    // more of it), so that the whole group goes to the backend in one write
    // instead of the part that fitted first and the rest a round trip later.
    void take_arrived();
    static constexpr int kArrivedReads = 16;
    // The read failed: a timeout gets its 421, a stopping daemon its goodbye.
    awaitable<void> read_failed(const error_code& ec, Deadline& deadline);
    // The idle timeout counts only while smtplb waits for the client (a read,
    // a write of replies); it is suspended while a command is handled.
    // While a backend waits on this client, the hold timer counts from the
    // backend's last step (not from this read: a client that trickles bytes
    // keeps the backend waiting all the same).
    void wait_for_client(Deadline& deadline) {
        const auto& config = listener_.config();
        deadline.expires_after(protocol_.in_transaction() ? config.data_timeout
                                                          : config.command_timeout);
        if (!relay_.keeps_backend_waiting()) {
            if (hold_) hold_->suspend();
            return;
        }
        if (!hold_)
            hold_ = Deadline::start(socket_.get_executor(), [this] { relay_.client_slow(); });
        if (!hold_->armed()) hold_->expires_at(relay_.waiting_since() + relay_.hold_time());
    }
    // Handling a command: the relay is busy, and not to be let go under it.
    void stop_waiting_for_client(Deadline& deadline) {
        deadline.suspend();
        if (hold_) hold_->suspend();
    }

    std::size_t loop_;
    std::string client_key_;
    tcp::socket socket_;
    TlsCapableStream stream_{socket_};
    std::unique_ptr<TlsFacts> tls_;  // once TLS is up
    std::unique_ptr<char[]> transaction_buffer_;
    SpareSize transaction_buffer_size_ = SpareSize::Small;
    bool last_read_filled_ = false;  // the last read filled its buffer
    bool stream_asked_ = false;      // this message's body_arriving() is done
    std::chrono::steady_clock::time_point body_started_{};  // the client's DATA
    std::array<char, 512> command_buffer_;
    Listener& listener_;
    Balancer& balancer_;
    proto::ServerSession protocol_;
    TransactionExecutor relay_;
    SessionLimits limits_;  // the [[limit]]s: checks, holds, leases
    // The message being received; made at DATA and gone after it, so an
    // idle connection does not carry it (the per-connection memory budget).
    std::unique_ptr<MessageBuffer> body_;
    std::unique_ptr<TransactionLog> log_;          // the current transaction's tracking line
    std::shared_ptr<NameLookup> names_;            // until the first transaction has the result
    std::unique_ptr<Deadline> hold_;               // made when a backend first waits on this client
    std::vector<core::RecipientInput> pipelined_;  // deferred recipients (answer_recipients)
};

}  // namespace smtplb::io::client_session_detail
