#include "io/front/client_session.hpp"

#include "base/text.hpp"
#include "core/body_streaming.hpp"
#include "core/delivery.hpp"
#include "core/tracking.hpp"
#include "io/front/client_session_impl.hpp"
#include "io/spool/dsn_notices.hpp"

namespace smtplb::io {
namespace client_session_detail {
namespace {

Reply storage_full() {
    return Reply::make(452, "4.3.1", "Insufficient system storage");
}

}  // namespace

// Commands between messages fit the session's own 512 bytes; a transaction
// gets 16 KiB, and 64 KiB while a body arrives faster than 16 KiB per read,
// so that a large message takes few reads (100 KiB: 3 instead of 7) while a
// client that trickles its body, as a slowloris does, holds only 16 KiB.
asio::mutable_buffer ClientSession::read_buffer() {
    SpareSize wanted = body_ && last_read_filled_ ? SpareSize::Large : SpareSize::Small;
    if (transaction_buffer_ &&
        (!protocol_.in_transaction() || transaction_buffer_size_ != wanted)) {
        give_spare(transaction_buffer_size_, std::move(transaction_buffer_));
    }
    if (!protocol_.in_transaction())
        return asio::buffer(command_buffer_.data(), command_buffer_.size());
    if (!transaction_buffer_) {
        transaction_buffer_size_ = wanted;
        transaction_buffer_ = take_spare(wanted);
    }
    return asio::buffer(transaction_buffer_.get(), static_cast<std::size_t>(wanted));
}

awaitable<bool> ClientSession::flush() {
    auto& out = protocol_.output();
    if (out.empty()) co_return true;
    error_code ec;
    std::size_t written = stream_.write_now(asio::buffer(out), ec);
    if (!ec && written < out.size()) {
        auto [rest_ec, n] = co_await stream_.write_rest(asio::buffer(out), written);
        ec = rest_ec;
    }
    out.clear();
    if (out.capacity() > 16384) out.shrink_to_fit();
    co_return !ec;
}

awaitable<void> ClientSession::say_goodbye() {
    protocol_.shutdown(
        Reply::make(421, "4.3.2", listener_.settings().hostname + " Service shutting down"));
    co_await flush();
}

void ClientSession::begin_tracking(const proto::ServerEvent& ev) {
    log_ = std::make_unique<TransactionLog>();
    auto& r = log_->record;
    r.time_ms = balancer_.clock().wall_ms();
    r.listener = listener_.config().name;
    r.client_address = relay_.identity().address.to_string();
    r.client_port = relay_.identity().port;
    r.client_name = relay_.identity().name;
    r.helo = protocol_.helo();
    if (tls_) {
        r.tls = tls_->summary();
        r.client_cert = tls_->peer_subject;
        r.client_cert_sha256 = tls_->peer_fingerprint;
    }
    r.login = protocol_.login();
    r.sender = ev.path.null ? "" : ev.path.mailbox.address();
    log_->started = std::chrono::steady_clock::now();
}

void ClientSession::finish_tracking(const Reply& reply) {
    finish_tracking(reply.summary(), reply.positive()    ? "relayed"
                                     : reply.permanent() ? "rejected"
                                                         : "tempfailed");
}

void ClientSession::end_without_message(const char* why) {
    if (!log_) return;
    if (log_->rcpts_accepted > 0)
        finish_tracking(why, "aborted");
    else if (log_->last_refusal)
        finish_tracking(Reply(*log_->last_refusal));
    else
        log_.reset();
}

void ClientSession::finish_tracking(const std::string& reply, const char* result) {
    if (!log_) return;
    auto& r = log_->record;
    r.recipients = log_->rcpts_accepted;
    r.recipient_domains.assign(log_->domains.begin(), log_->domains.end());
    r.pool = relay_.pool() ? relay_.pool()->name() : "";
    r.attempts = relay_.attempts();
    r.queue_id = relay_.queue_id();
    // What a backend was given; nothing when no backend was reached.
    r.identity = r.attempts.empty() ? std::string() : relay_.identity_result();
    r.reply = reply;
    r.result = result;
    r.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - log_->started)
                        .count();
    listener_.counters.count_result(r.result, r.size);
    balancer_.tracking().write(r.to_json());
    log_.reset();
}

awaitable<std::optional<Reply>> ClientSession::check_recipient(const proto::Mailbox& rcpt) {
    if (auto unknown = listener_.policy().check_known_recipient(rcpt)) co_return unknown;
    bool room = co_await spool_has_room();
    if (!room) co_return storage_full();
    co_return std::nullopt;
}

awaitable<bool> ClientSession::spool_has_room() {
    auto* spool = balancer_.spool();
    co_return co_await on_loop(
        balancer_.io(), [](Spool* s) -> awaitable<bool> { co_return s->has_room(0); }(spool));
}

awaitable<Reply> ClientSession::write_to_spool() {
    auto* spool = balancer_.spool();
    proto::SpoolEnvelope envelope;
    envelope.arrival_ms = balancer_.clock().wall_ms();
    envelope.listener = listener_.config().name;
    envelope.pool = relay_.pool()->name();
    envelope.sender = relay_.sender();
    envelope.params = relay_.mail_parameters();
    envelope.recipient_params = relay_.accepted_parameters();
    envelope.identity = relay_.identity();
    // Named: a temporary in a co_await is destroyed twice by GCC 12.
    std::string received_by;
    if (balancer_.config().spool.received_header) received_by = balancer_.config().server.hostname;
    auto committed = co_await spool->commit(envelope, relay_.accepted(), *body_, received_by);
    if (committed.id.empty()) co_return storage_full();
    if (log_) log_->record.spool_id = committed.id;
    co_return Reply::make(250, "2.0.0", "Ok: queued as " + committed.id);
}

// The deferred recipients, to the backend together, each reply in order. Known
// replies go out before a wait on a slow backend, as directly (in plaintext,
// what the socket takes at once: a client that does not read holds nothing);
// from a quick one, all in one write.
awaitable<void> ClientSession::answer_recipients() {
    if (pipelined_.empty()) co_return;
    relay_.recipients(pipelined_);
    for (std::size_t i = 0; i < pipelined_.size(); ++i) {
        auto reply = co_await relay_.recipient_reply();
        const auto& rcpt = pipelined_[i].mailbox;
        if (!reply.positive()) limits_.refund_rcpt(rcpt);  // not counted
        note_rcpt_reply(rcpt, reply);
        protocol_.answer_deferred(reply);
        if (i + 1 < pipelined_.size() && !relay_.reply_buffered()) {
            error_code ec;
            auto& out = protocol_.output();
            out.erase(0, stream_.write_now(asio::buffer(out), ec));
        }
    }
    pipelined_.clear();
}

awaitable<void> ClientSession::handle(proto::ServerEvent& ev) {
    const auto& config = listener_.config();
    const auto& policy = listener_.policy();
    const auto& client = relay_.identity().address;
    switch (ev.kind) {
        case Kind::Reset:
            end_without_message("RSET");
            limits_.end_transaction();
            co_await relay_.abandon();
            protocol_.set_body_sink(nullptr);  // a BDAT message abandoned midway
            body_.reset();
            break;
        case Kind::Mail: {
            if (auto refusal = policy.check_sender(protocol_.authenticated())) {
                protocol_.answer(*refusal);
                break;
            }
            co_await await_client_names();
            auto* pool = balancer_.pool(balancer_.router().route(
                {nullptr, config.name, client, protocol_.login()}, config.pool));
            if (auto refusal = pool->refusal(ev.mail_params)) {  // no backend can take it
                protocol_.answer(*refusal);
                break;
            }
            auto over = co_await limits_.mail(ev.path, ev.mail_params.size.value_or(0));
            if (over) {
                protocol_.answer(*over);
                break;
            }
            relay_.set_helo(protocol_.helo(), protocol_.esmtp());
            relay_.begin(*pool, ev.path, ev.mail_params);
            begin_tracking(ev);
            protocol_.answer(Reply::make(250, "2.1.0", "Ok"));
            break;
        }
        case Kind::Rcpt: {
            const auto& rcpt = ev.path.mailbox;
            if (auto refusal = policy.check_recipient(client, protocol_.authenticated(), rcpt)) {
                co_await answer_recipients();  // those before it first, in order
                note_rcpt_reply(rcpt, *refusal);
                protocol_.answer(*refusal);
                break;
            }
            auto* pool = balancer_.pool(balancer_.router().route(
                {&rcpt, config.name, client, protocol_.login()}, config.pool));
            if (relay_.pool() != pool) co_await answer_recipients();  // how many were accepted?
            if (protocol_.accepted_recipients() == 0 && relay_.pool() != pool) {
                co_await relay_.switch_pool(*pool);  // the first recipient decides the pool
            }
            if (relay_.pool() != pool) {
                // RFC 5321 §4.5.3.1.10: the client sends it again in a new transaction.
                auto later = Reply::make(
                    452, "4.5.3", "Recipient belongs to another mail system; send it separately");
                note_rcpt_reply(rcpt, later);
                protocol_.answer(later);
                break;
            }
            auto over = co_await limits_.rcpt(rcpt);
            if (over) {
                co_await answer_recipients();
                note_rcpt_reply(rcpt, *over);
                protocol_.answer(*over);
                break;
            }
            // Answered with the recipients pipelined behind it (Kind::Deferred).
            protocol_.defer();
            pipelined_.push_back({rcpt, ev.rcpt_params});
            break;
        }
        case Kind::Deferred:
            co_await answer_recipients();
            break;
        case Kind::Data:
            co_await relay_.start_data(ev.chunking);
            body_ = std::make_unique<MessageBuffer>(balancer_.config().server.spill_threshold,
                                                    spill_dir());
            body_->expect(relay_.mail_parameters().size.value_or(0));
            protocol_.set_body_sink(body_.get());
            stream_asked_ = false;
            body_started_ = std::chrono::steady_clock::now();
            protocol_.answer(Reply::make(354, "", "End data with <CR><LF>.<CR><LF>"));
            break;
        case Kind::MessageEnd: {
            Reply reply;
            std::optional<Reply> over;  // a [[limit]], before any backend has the message
            if (ev.data_outcome == proto::DataDecoder::Outcome::Ok && !body_->failed()) {
                auto checked = co_await limits_.end_of_data(relay_.accepted(), ev.message_size);
                over = std::move(checked);
            }
            if (ev.data_outcome != proto::DataDecoder::Outcome::Ok) {
                reply = proto::data_outcome_reply(ev.data_outcome);
                co_await relay_.abandon();
            } else if (body_->failed()) {
                reply = Reply::make(451, "4.3.0", "Local error storing the message");
                co_await relay_.abandon();
            } else if (over) {
                reply = *over;
                co_await relay_.abandon();
            } else {
                if (log_) log_->record.size = ev.message_size;
                body_->set_content_size(ev.message_size);
                if (log_ && balancer_.tracking().enabled()) log_->find_message_id(*body_);
                reply = co_await relay_.deliver(*body_);
                if (reply.positive() && relay_.relayed_without_dsn())  // RFC 3461 §4.2
                    co_await send_relayed_notice(balancer_, relay_, config.name, *body_, reply);
            }
            protocol_.set_body_sink(nullptr);
            body_.reset();
            limits_.end_transaction();
            if (relay_.spooling() && reply.positive())
                finish_tracking(reply.summary(), "spooled");
            else
                finish_tracking(reply);
            protocol_.answer(reply);
            break;
        }
        case Kind::Xclient:
            protocol_.answer(Reply::make(502, "5.5.1", "Error: command not implemented"));
            break;
        case Kind::Auth: {
            auto reply = co_await authenticate(ev);
            protocol_.answer(reply);
            break;
        }
        default:
            break;
    }
}

awaitable<bool> ClientSession::accept_proxy_header(Deadline& deadline) {
    const auto& config = listener_.config();
    deadline.expires_after(config.proxy_timeout);
    auto header = co_await listener_.read_upstream_header(socket_);
    if (!header) co_return false;
    if (!header->local)
        relay_.set_origin(header->source, header->source_port, header->destination,
                          header->destination_port);
    auto client = relay_.identity().address.to_string();
    if (!listener_.admit(client)) {
        if (config.tls.mode != config::ServerTlsMode::Implicit) {
            protocol_.output() = "421 4.7.0 Too many connections from your address\r\n";
            co_await flush();
        }
        co_return false;
    }
    client_key_ = client;
    co_return true;
}

awaitable<bool> ClientSession::start_tls(Deadline& deadline) {
    deadline.expires_after(listener_.config().command_timeout);
    auto ec = co_await stream_.accept(listener_.tls_context());
    if (ec) {
        // Scanners and clients with no common cipher: normal, not logged.
        listener_.counters.tls_failures++;
        co_return false;
    }
    tls_ = std::make_unique<TlsFacts>(stream_.facts());
    relay_.set_tls(tls_->version, tls_->cipher, !tls_->peer_subject.empty());
    listener_.counters.tls_sessions++;
    protocol_.tls_started();
    co_return true;
}

void ClientSession::start_name_lookup() {
    const auto& resolver = balancer_.client_names(loop_);
    if (!listener_.config().resolve_client_names || !resolver) return;
    names_ = std::make_shared<NameLookup>(socket_.get_executor());
    asio::co_spawn(socket_.get_executor(),
                   look_up_names(resolver, relay_.identity().address, names_), asio::detached);
}

awaitable<void> ClientSession::await_client_names() {
    if (!names_) co_return;
    if (!names_->result) {
        // The lookup bounds itself; this bounds the wait should it not.
        names_->done.expires_after(balancer_.config().server.dns_timeout);
        auto [ec] = co_await names_->done.async_wait(use_nothrow);
        (void)ec;
    }
    auto names = names_->result.value_or(core::ClientNames{
        std::string(core::kNameTempUnavailable), std::string(core::kNameTempUnavailable)});
    relay_.set_client_names(names.name, names.reverse_name);
    names_.reset();
}

awaitable<bool> ClientSession::open(Deadline& deadline) {
    const auto& config = listener_.config();
    if (config.proxy_protocol != config::ProxyProtocol::None) {
        bool accepted = co_await accept_proxy_header(deadline);
        if (!accepted) co_return false;
    }
    deadline.suspend();                      // a hold is not the client's time
    auto over = co_await limits_.connect();  // the real client is known now
    if (!over) start_name_lookup();
    if (config.tls.mode == config::ServerTlsMode::Implicit) {
        bool handshaken = co_await start_tls(deadline);
        if (!handshaken) co_return false;
    }
    if (over) {
        protocol_.shutdown(*over);  // as the greeting
        co_await flush();
        co_return false;
    }
    protocol_.start();
    co_return true;
}

awaitable<void> ClientSession::read_failed(const error_code& ec, Deadline& deadline) {
    if (ec == asio::error::operation_aborted && listener_.stopping() && !deadline.expired()) {
        co_await say_goodbye();  // woken by Listener::stop
    } else if (deadline.expired()) {
        protocol_.shutdown(
            Reply::make(421, "4.4.2", listener_.settings().hostname + " Error: timeout exceeded"));
        deadline.expires_after(std::chrono::seconds(10));
        co_await flush();
    }
}

awaitable<void> ClientSession::stream_body(Deadline& deadline) {
    if (body_->failed()) co_return;
    if (!relay_.streaming()) {
        if (stream_asked_ || body_->size() < core::kStreamFrom || !relay_.holding()) co_return;
        const auto now = std::chrono::steady_clock::now();
        if (!core::worth_streaming({body_->size(), now - body_started_,
                                    relay_.mail_parameters().size,
                                    relay_.waiting_since() + relay_.hold_time() - now}))
            co_return;  // asked again with the next read
        stream_asked_ = true;
        // Waiting on the backend now, not on the client: neither the
        // client's timeout nor the hold may end it midway.
        stop_waiting_for_client(deadline);
        co_await relay_.body_arriving();
        if (!relay_.streaming()) co_return;
    }
    if (body_->size() - relay_.streamed() < kStreamStep) co_return;
    stop_waiting_for_client(deadline);
    co_await relay_.stream(*body_);
}

awaitable<bool> ClientSession::answer(Deadline& deadline) {
    for (;;) {
        auto ev = protocol_.next();
        switch (ev.kind) {
            case Kind::NeedInput: {
                if (body_) co_await stream_body(deadline);
                wait_for_client(deadline);
                bool flushed = co_await flush();
                co_return flushed;
            }
            case Kind::Close:
                wait_for_client(deadline);
                co_await flush();
                co_return false;
            case Kind::StartTls: {
                wait_for_client(deadline);
                bool flushed = co_await flush();
                if (!flushed) co_return false;
                bool handshaken = co_await start_tls(deadline);
                if (!handshaken) co_return false;
                break;
            }
            default:
                stop_waiting_for_client(deadline);
                co_await handle(ev);
                break;
        }
    }
}

// Kept lean: its frame lives as long as the connection, so everything but
// the wait for input (opening, answering, read errors) is a coroutine of
// its own whose frame exists only while it runs.
void ClientSession::take_arrived() {
    for (int reads = 0; reads < kArrivedReads; ++reads) {
        error_code ec;
        std::size_t got = stream_.read_now(asio::buffer(command_buffer_), ec);
        // An error or the end of the stream: the next read meets it again.
        if (ec || got == 0) return;
        protocol_.feed(std::string_view(command_buffer_.data(), got));
        if (got < command_buffer_.size()) {
            readiness::mark_drained(socket_);
            return;
        }
    }
}

awaitable<void> ClientSession::run() {
    Deadline deadline(socket_.get_executor(), [this] {
        error_code ec;
        socket_.cancel(ec);
    });
    bool open = co_await this->open(deadline);
    while (open) {
        bool more = co_await answer(deadline);
        if (!more) break;
        if (listener_.stopping() && !protocol_.in_transaction()) {
            co_await say_goodbye();
            break;
        }
        wait_for_client(deadline);
        auto buffer = read_buffer();
        auto [ec, n] = co_await stream_.read_some(buffer);
        if (ec) {
            co_await read_failed(ec, deadline);
            break;
        }
        last_read_filled_ = n == buffer.size();
        protocol_.feed(std::string_view(static_cast<const char*>(buffer.data()), n));
        if (last_read_filled_ && !protocol_.in_transaction()) take_arrived();
    }
    deadline.stop();
    if (hold_) hold_->stop();
    end_without_message("connection ended");
    co_await relay_.abandon();
    relay_.release_connections();
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
}

}  // namespace client_session_detail

awaitable<void> run_client_session(tcp::socket socket, Listener& listener, std::string client,
                                   std::size_t loop) {
    {
        client_session_detail::ClientSession session(std::move(socket), listener, std::move(client),
                                                     loop);
        co_await session.run();
        client = session.client_key();
    }
    listener.session_ended(client);
}

}  // namespace smtplb::io
