#include "io/backend/transaction_executor.hpp"

#include <algorithm>
#include <utility>

#include "core/delivery.hpp"

namespace smtplb::io {

using Action = core::TransactionAction;
using Kind = Action::Kind;

TransactionExecutor::TransactionExecutor(BackendAccess& context,
                                         const proto::ClientIdentity& identity,
                                         std::uint64_t session)
    : context_(context),
      identity_(identity),
      session_(session),
      identity_presented_(config::to_string(context.identity_mode)) {}

TransactionExecutor::~TransactionExecutor() {
    if (conn_) conn_->close();
    conn_.reset();
    release_connections();
}

Millis TransactionExecutor::reply_timeout() const {
    return tx_->pool()->config().reply_timeout;
}

Millis TransactionExecutor::hold_time() const {
    return pool() ? pool()->config().backend_hold_time : Millis::max();
}

bool TransactionExecutor::spools(const core::Pool& pool) const {
    return spool_ && pool.config().on_unavailable == config::OnUnavailable::Spool;
}

void TransactionExecutor::begin(core::Pool& pool, const proto::Path& sender,
                                const proto::MailParameters& params) {
    if (!tx_) tx_ = std::make_unique<core::Transaction>();
    tx_->begin(pool, identity_.address, sender, params, spools(pool));
    run_without_waiting();
}

awaitable<void> TransactionExecutor::switch_pool(core::Pool& pool) {
    tx_->switch_pool(pool, spools(pool));
    co_await run();
}

awaitable<proto::Reply> TransactionExecutor::add_recipient(const proto::Mailbox& rcpt,
                                                           const proto::RcptParameters& params) {
    tx_->recipient(rcpt, params);
    auto reply = co_await run();
    co_return reply.value_or(core::no_backend_reply());
}

awaitable<proto::Reply> TransactionExecutor::recipient_reply() {
    auto reply = co_await run();  // up to the next recipient's answer
    co_return reply.value_or(core::no_backend_reply());
}

awaitable<void> TransactionExecutor::start_data(bool chunking) {
    tx_->data(chunking);
    co_await run();
}

awaitable<void> TransactionExecutor::body_arriving() {
    if (!tx_) co_return;
    // The 354 is the backend's last step before the body, as DATA was: the
    // hold goes on counting from there, not from now.
    const auto since = idle_since_;
    tx_->body_arriving();
    co_await run();
    idle_since_ = since;
}

awaitable<void> TransactionExecutor::stream(const proto::BodySource& body) {
    if (!streaming()) co_return;
    bool written = co_await conn_->stream_body(body);
    if (written) {
        // The backend's last step: it has just been given more of the body.
        // A client that trickles sends no step (kStreamStep at a time) and
        // is let go as before.
        if (tx_->holding()) idle_since_ = std::chrono::steady_clock::now();
        co_return;
    }
    tx_->stream_failed(conn_->failure());
    run_without_waiting();
}

awaitable<proto::Reply> TransactionExecutor::deliver(const proto::BodySource& body) {
    body_ = &body;
    tx_->message_complete();
    auto reply = co_await run();
    body_ = nullptr;
    co_return reply.value_or(core::no_backend_reply());
}

awaitable<void> TransactionExecutor::abandon() {
    if (!tx_) co_return;
    tx_->abandon();
    co_await run();
}

void TransactionExecutor::client_slow() {
    if (!holding()) {
        release_connections();
        return;
    }
    tx_->client_slow();
    run_without_waiting();
}

std::chrono::steady_clock::time_point TransactionExecutor::waiting_since() const {
    if (holding()) return idle_since_;
    auto since = std::chrono::steady_clock::time_point::max();
    for (const auto& conn : stash_)
        since = std::min(since, conn->idle_since);
    return since;
}

void TransactionExecutor::run_without_waiting() {
    // Only releases come from begin() and client_slow(), and none of them
    // need an answer: a Reset becomes a QUIT in the background.
    while (auto action = tx_->next()) {
        if (action->kind != Kind::Release) continue;
        release_now(action->release == Action::Release::Close ? Action::Release::Close
                                                              : Action::Release::Quit);
    }
}

void TransactionExecutor::release_now(Action::Release how) {
    auto conn = std::move(conn_);
    if (!conn) return;
    switch (how) {
        case Action::Release::Keep:
            keep(std::move(conn));
            break;
        case Action::Release::Reset:  // not without waiting: see release()
        case Action::Release::Quit:
            context_.cache.retire(std::move(conn));  // QUIT in the background
            break;
        case Action::Release::Close:
            conn->close();
            break;
    }
}

awaitable<void> TransactionExecutor::reset_and_keep() {
    auto conn = std::move(conn_);
    if (!conn) co_return;
    bool clean = co_await conn->reset(reply_timeout());
    if (clean) keep(std::move(conn));  // else broken: dropped
}

awaitable<std::optional<proto::Reply>> TransactionExecutor::run() {
    std::optional<proto::Reply> answer;
    for (;;) {
        tx_->set_closing(context_.cache.closing());
        auto action = tx_->next();
        if (!action || action->kind == Kind::Done) break;
        if (action->kind == Kind::Answer) {
            answer = std::move(action->reply);
            break;
        }
        switch (action->kind) {
            case Kind::Open:
                co_await open(action->backend, action->fresh);
                break;
            case Kind::Send:
                if (action->step == proto::BackendSession::Step::Mail) conn_->count_transaction();
                conn_->protocol().send(action->step, action->line);
                break;
            case Kind::Flush:
                co_await conn_->flush();  // a failure shows at the next reply
                break;
            case Kind::Await: {
                auto timeout = action->final_reply ? tx_->pool()->config().final_reply_timeout
                                                   : reply_timeout();
                auto completion = co_await conn_->next(timeout);
                if (completion)
                    tx_->replied(completion->reply);
                else
                    tx_->broken(conn_->failure(), conn_->protocol().failed());
                break;
            }
            case Kind::SendBody: {
                using R = BackendConnection::BodyResult;
                using TR = core::Transaction::BodyResult;
                auto result = co_await conn_->send_body(*body_, action->eight_bit, action->chunking,
                                                        action->streamed);
                if (result == R::Sent)
                    conn_->protocol().expect(proto::BackendSession::Step::Message);
                tx_->body_done(result == R::Sent              ? TR::Sent
                               : result == R::ReadFailed      ? TR::ReadFailed
                               : result == R::EightBitRefused ? TR::EightBitRefused
                                                              : TR::WriteFailed,
                               conn_->failure());
                break;
            }
            case Kind::Release:
                if (action->release == Action::Release::Reset)
                    co_await reset_and_keep();
                else
                    release_now(action->release);
                break;
            case Kind::CheckSpool: {
                auto refusal = co_await spool_->check_recipient(*tx_->current_recipient());
                tx_->spool_checked(refusal);
                break;
            }
            case Kind::Spool: {
                auto reply = co_await spool_->commit();
                tx_->spooled(reply);
                break;
            }
            default:
                break;
        }
    }
    // The hold timer's start: only wanted while a backend waits on the client.
    if (tx_->holding()) idle_since_ = std::chrono::steady_clock::now();
    co_return answer;
}

}  // namespace smtplb::io
