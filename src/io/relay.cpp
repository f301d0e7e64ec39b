#include "io/relay.hpp"

#include <algorithm>
#include <string_view>
#include <utility>

#include "core/delivery.hpp"

namespace smtplb::io {

using Step = proto::ClientSession::Step;
using core::classify;
using core::Verdict;

// A 4xx to a recipient moves the transaction to another backend only when
// it speaks for the backend (resources, 421: RFC 3463 subjects 3 and 4).
// One about the recipient (a full mailbox, greylisting, a policy) would be
// the same elsewhere: it goes to the client, and the recipients accepted so
// far stay where they are.
static bool moves_transaction(const proto::Reply& reply) {
    if (classify(reply) != Verdict::TryElsewhere) return false;
    auto live = core::classify_live(reply);
    return live == core::LiveOutcome::BackendDeferred || live == core::LiveOutcome::Failed;
}

// Real MTAs use 4.3.x per recipient too (Postfix: "451 4.3.0 Temporary
// lookup failure" from a recipient's table lookup), so a 4xx to RCPT says
// nothing certain about the backend: it never counts against its health.
// Once the backend has accepted another recipient of the transaction, it is
// about this recipient alone and goes to the client as it is; only a 421
// (the backend is closing the connection) still moves the transaction.
static bool about_the_recipient(const proto::Reply& reply, bool others_accepted) {
    if (reply.code == 421) return false;
    return others_accepted || !moves_transaction(reply);
}

Relay::Relay(RelayContext& context, const proto::ClientIdentity& identity, std::uint64_t session)
    : context_(context),
      identity_(identity),
      session_(session),
      identity_presented_(config::to_string(context.identity_mode)) {}

Relay::~Relay() {
    release_connections();
}

Millis Relay::reply_timeout() const {
    return pool_->config().reply_timeout;
}

std::string Relay::identity_key() const {
    return context_.identity_mode == config::IdentityMode::Xclient ? proto::identity_key(identity_)
                                                                   : std::string();
}

void Relay::begin(core::Pool& pool, const proto::Path& sender,
                  const proto::MailParameters& params) {
    pool_ = &pool;
    sender_ = sender;
    params_ = params;
    recipients_.clear();
    tried_.clear();
    attempts_.clear();
    queue_id_.clear();
    mail_refusal_.reset();
    attempts_made_ = 0;
    first_failure_.reset();
}

awaitable<void> Relay::switch_pool(core::Pool& pool) {
    co_await release_current(true);
    pool_ = &pool;
    recipients_.clear();
    tried_.clear();
    mail_refusal_.reset();
    attempts_made_ = 0;
    first_failure_.reset();
}

void Relay::record(std::size_t backend, const char* stage, const std::string& what) {
    attempts_.push_back({pool_->backend(backend).config.name, stage, what});
}

void Relay::report(std::size_t backend, core::LiveOutcome outcome, const std::string& reason,
                   const proto::Reply* reply) {
    using core::LiveOutcome;
    if (outcome == LiveOutcome::BackendDeferred || outcome == LiveOutcome::Failed ||
        outcome == LiveOutcome::MessageDeferred) {
        if (!first_failure_) first_failure_ = pool_->clock().now();
    }
    pool_->report(backend, outcome, reason, reply ? reply->summary() : std::string());
}

void Relay::report_reply(std::size_t backend, const char* stage, const proto::Reply& reply) {
    auto outcome = core::classify_live(reply);
    report(backend, outcome, std::string("live ") + stage, &reply);
}

bool Relay::may_try_again() const {
    if (attempts_made_ >= pool_->config().max_attempts || context_.cache.closing()) return false;
    return !first_failure_ || pool_->clock().now() - *first_failure_ < pool_->config().retry_time;
}

void Relay::keep(std::unique_ptr<BackendConnection> conn) {
    if (conn->worn_out()) {
        context_.cache.retire(std::move(conn));
        return;
    }
    conn->idle_since = std::chrono::steady_clock::now();
    // One idle connection per backend stays with the session (its identity
    // is already presented); older ones go to the shared cache (which
    // closes those bound to this client).
    for (auto& held : stash_) {
        if (&held->pool() == &conn->pool() && held->backend() == conn->backend()) {
            std::swap(held, conn);
            context_.cache.put(std::move(conn));
            return;
        }
    }
    stash_.push_back(std::move(conn));
}

void Relay::release_connections() {
    for (auto& conn : stash_) {
        if (conn->dedicated)
            context_.cache.retire(std::move(conn));  // PROXY: this client's only
        else
            context_.cache.put(std::move(conn));
    }
    stash_.clear();
}

awaitable<Relay::IdentityStep> Relay::present_identity(std::unique_ptr<BackendConnection>& conn,
                                                       std::size_t backend, bool may_retry_fresh) {
    using Identity = BackendConnection::Identity;
    if (context_.identity_mode != config::IdentityMode::Xclient) {
        identity_presented_ = config::to_string(context_.identity_mode);
        co_return IdentityStep::Continue;
    }
    bool reused = conn->reused;
    auto outcome =
        co_await conn->present(identity_, identity_key(), context_.hostname, reply_timeout());
    switch (outcome) {
        case Identity::Presented: {
            identity_presented_ = "xclient";
            const auto& omitted = conn->omitted();
            // HELO left out of XCLIENT still reaches the backend in the EHLO.
            if (std::any_of(omitted.begin(), omitted.end(),
                            [](const std::string& a) { return a != "HELO"; }))
                identity_not_presented(*conn, backend, "incomplete");
            co_return IdentityStep::Continue;
        }
        case Identity::NotOffered:
            identity_presented_ = "none";
            identity_not_presented(*conn, backend, "not-offered");
            co_return IdentityStep::Continue;
        case Identity::Broken:
            co_return IdentityStep::Broken;
        case Identity::Unauthorised:
            // The backend refuses this balancer's very first XCLIENT: not
            // "down" (it works for others), but useless to us until its
            // configuration is fixed: say so, loudly.
            record(backend, "xclient", conn->failure());
            ++pool_->backend(backend).counters.failed;
            pool_->report(backend, core::LiveOutcome::Misconfigured,
                          "XCLIENT refused: the backend does not authorise this balancer",
                          conn->refusal()->summary());
            co_return IdentityStep::NextBackend;
        case Identity::Refused:
            // About this client, or about the client a reused connection
            // spoke for before (Postfix refuses a second XCLIENT from a
            // client it does not authorise): never the backend's health.
            record(backend, "xclient", conn->failure());
            context_.cache.retire(std::move(conn));
            co_return reused&& may_retry_fresh ? IdentityStep::FreshConnection
                                               : IdentityStep::NextBackend;
        case Identity::HeloRefused:
            // The backend's verdict on the client's HELO, as it would have
            // given it to the client directly: the client's answer.
            record(backend, "helo", conn->failure());
            helo_verdict_ = conn->refusal();
            context_.cache.retire(std::move(conn));
            co_return IdentityStep::AnswerClient;
    }
    co_return IdentityStep::Broken;
}

void Relay::identity_not_presented(BackendConnection& conn, std::size_t backend,
                                   const char* reason) {
    auto& counters = pool_->backend(backend).counters;
    ++(std::string_view(reason) == "not-offered" ? counters.identity_not_offered
                                                 : counters.identity_incomplete);
    if (conn.identity_logged || !context_.log) return;
    conn.identity_logged = true;
    std::string line = "event=identity_not_presented pool=" + pool_->name() +
                       " backend=" + pool_->backend(backend).config.name + " reason=" + reason +
                       " client=" + identity_.address.to_string();
    if (!conn.omitted().empty()) {
        line += " omitted=";
        for (std::size_t i = 0; i < conn.omitted().size(); ++i)
            line += (i ? "," : "") + conn.omitted()[i];
    }
    context_.log(line);
}

awaitable<std::unique_ptr<BackendConnection>> Relay::acquire(std::size_t backend) {
    auto& state = pool_->backend(backend);
    const auto key = identity_key();
    for (auto it = stash_.begin(); it != stash_.end(); ++it) {
        if (&(*it)->pool() == pool_ && (*it)->backend() == backend) {
            auto conn = std::move(*it);
            stash_.erase(it);
            // The client's identity may have changed since (a new EHLO, AUTH).
            if (conn->serves(key) && !conn->worn_out() && conn->reusable()) {
                conn->reused = true;
                co_return conn;
            }
            context_.cache.retire(std::move(conn));
            break;
        }
    }
    bool proxy = context_.identity_mode == config::IdentityMode::ProxyV1 ||
                 context_.identity_mode == config::IdentityMode::ProxyV2;
    if (!proxy) {
        if (auto conn = context_.cache.take(*pool_, backend, context_.source_address, key)) {
            conn->reused = true;
            co_return conn;
        }
    }
    auto slot = co_await context_.cache.reserve(*pool_, backend);  // max_connections
    if (!slot) co_return at_capacity(backend, slot);
    auto [ec, socket] = co_await context_.connector.connect(
        state.config.address, context_.source_address, pool_->config().connect_timeout);
    acquire_outcome_ = core::LiveOutcome::Failed;
    acquire_refusal_.reset();
    if (ec) {
        record(backend, "connect", ec.message());
        co_return nullptr;
    }
    auto conn = std::make_unique<BackendConnection>(std::move(socket), *pool_, backend,
                                                    context_.source_address);
    conn->track_in(context_.cache, &slot);
    if (proxy) {
        conn->dedicated = true;
        conn->protocol().output() = context_.identity_mode == config::IdentityMode::ProxyV1
                                        ? proto::proxy_v1_header(identity_)
                                        : proto::proxy_v2_header(identity_);
    }
    auto tls = context_.backend_tls ? context_.backend_tls->for_pool(pool_->name()) : nullptr;
    // A PROXY connection is this client's alone: it greets with the client's
    // own HELO, which the backend records and judges (as XCLIENT's EHLO does).
    const std::string name =
        proxy ? proto::helo_for_backend(identity_.helo, context_.hostname) : context_.hostname;
    bool greeted = co_await conn->handshake(name, pool_->config().greeting_timeout, tls,
                                            !proxy || identity_.esmtp);
    if (!greeted && proxy && conn->helo_refused()) {
        // The backend's verdict on the client's HELO: the client's answer.
        record(backend, "helo", conn->failure());
        helo_verdict_ = conn->refusal();
        co_return nullptr;
    }
    if (!greeted) {
        record(backend, "greeting", conn->failure());
        if (conn->refusal()) {
            // 421 at the greeting is back pressure; 554 is a refusal of service.
            acquire_refusal_ = conn->refusal();
            acquire_outcome_ = conn->refusal()->transient() ? core::LiveOutcome::BackendDeferred
                                                            : core::LiveOutcome::Failed;
        }
        co_return nullptr;
    }
    co_return conn;
}

awaitable<void> Relay::release_current(bool needs_reset) {
    if (!conn_) co_return;
    auto conn = std::move(conn_);
    pool_->transaction_ended(conn->backend());
    if (data_sent_) {
        // A backend in DATA can only be given the message or abandoned:
        // closing without the final "." discards the transaction there.
        data_sent_ = false;
        conn->close();
        co_return;
    }
    if (needs_reset) {
        bool clean = co_await conn->reset(reply_timeout());
        if (!clean) co_return;  // broken: dropped
    }
    keep(std::move(conn));
}

awaitable<proto::Reply> Relay::establish(const proto::Mailbox* new_rcpt) {
    no_backend_ = false;
    helo_verdict_.reset();
    std::optional<proto::Reply> permanent;  // a 5xx worth passing on if nobody accepts
    // The last backend's 4xx for the new recipient, when that moved the
    // transaction: what the client gets if no backend accepts it either.
    std::optional<proto::Reply> recipient_deferral;
    int stale_retries = 0;     // reused connections found closed
    int identity_retries = 0;  // reused connections whose backend refused another XCLIENT
    while (may_try_again()) {
        auto chosen = pool_->pick(identity_.address, tried_);
        if (!chosen) break;
        std::size_t backend = *chosen;
        tried_.push_back(backend);
        ++attempts_made_;
        auto& state = pool_->backend(backend);
        // Counted once, when the attempt is decided: after the stale rule
        // below has had its say (/metrics exports it as a counter, and a
        // counter that goes back reads as a reset).
        bool counted = false;
        auto count_attempt = [&] {
            if (!std::exchange(counted, true)) ++state.counters.attempts;
        };

        auto conn = co_await acquire(backend);
        if (!conn) count_attempt();
        if (!conn && helo_verdict_) co_return core::relay_reply(*helo_verdict_);
        if (!conn) {
            ++state.counters.failed;
            report(backend, acquire_outcome_,
                   "live " + attempts_.back().stage + ": " + attempts_.back().reply,
                   acquire_refusal_ ? &*acquire_refusal_ : nullptr);
            continue;
        }
        // A reused connection that breaks before its first reply was most
        // likely closed by the backend while idle (the cache checks only
        // connections idle for a second or more): not the backend's fault,
        // and not a reason to skip it. Once more, on another connection.
        auto stale = [&, reused = conn->reused](BackendConnection& c) {
            if (!reused || stale_retries >= 2 || c.refusal() || c.protocol().failed()) return false;
            ++stale_retries;
            tried_.pop_back();
            --attempts_made_;
            return true;
        };
        switch (co_await present_identity(conn, backend, identity_retries == 0)) {
            case IdentityStep::Continue:
                break;
            case IdentityStep::Broken:
                if (stale(*conn)) continue;
                count_attempt();
                record(backend, "xclient", conn->failure());
                ++state.counters.failed;
                report(backend, core::LiveOutcome::Failed, "live XCLIENT: " + conn->failure());
                continue;
            case IdentityStep::NextBackend:
                count_attempt();
                continue;
            case IdentityStep::FreshConnection:  // the same attempt, not counted
                ++identity_retries;
                tried_.pop_back();
                --attempts_made_;
                continue;
            case IdentityStep::AnswerClient:
                count_attempt();
                co_return core::relay_reply(*helo_verdict_);
        }
        const auto& caps = conn->protocol().capabilities();
        if (params_.smtputf8 && !caps.smtputf8) {
            count_attempt();
            record(backend, "mail", "backend does not announce SMTPUTF8");
            keep(std::move(conn));
            continue;
        }
        // MAIL, the replayed recipients and the new one, pipelined when allowed.
        auto& proto = conn->protocol();
        proto.send(Step::Mail, proto::mail_command(sender_, params_, caps));
        conn->count_transaction();
        std::size_t expected_rcpts = recipients_.size() + (new_rcpt ? 1 : 0);
        auto send_rcpt = [&](const proto::Mailbox& m) {
            proto.send(Step::Rcpt, proto::rcpt_command(m));
        };
        bool ok = true, broken = false;
        std::optional<proto::Reply> new_reply;
        if (caps.pipelining) {
            for (const auto& r : recipients_)
                send_rcpt(r);
            if (new_rcpt) send_rcpt(*new_rcpt);
        }
        auto mail = co_await conn->next(reply_timeout());
        if (!mail && stale(*conn)) continue;
        count_attempt();
        if (!mail) {
            broken = true;
        } else if (classify(mail->reply) != Verdict::Accepted) {
            ok = false;
            if (classify(mail->reply) == Verdict::Rejected) permanent = mail->reply;
            record(backend, "mail", mail->reply.summary());
            report_reply(backend, "MAIL", mail->reply);
        } else {
            for (std::size_t i = 0; i < expected_rcpts && !broken; ++i) {
                if (!caps.pipelining)
                    send_rcpt(i < recipients_.size() ? recipients_[i] : *new_rcpt);
                auto rc = co_await conn->next(reply_timeout());
                if (!rc) {
                    broken = true;
                    break;
                }
                bool is_new = i >= recipients_.size();
                if (is_new) {
                    new_reply = rc->reply;
                    if (!about_the_recipient(rc->reply, !recipients_.empty())) {
                        ok = false;
                        recipient_deferral = rc->reply;
                        if (rc->reply.code == 421) report_reply(backend, "RCPT", rc->reply);
                    }
                } else if (classify(rc->reply) != Verdict::Accepted) {
                    // This backend refuses a recipient another one accepted:
                    // it cannot carry the transaction as the client sees it.
                    ok = false;
                }
                if (!ok) {
                    record(backend, "rcpt", rc->reply.summary());
                    break;
                }
            }
        }
        if (broken) {
            record(backend, "mail", conn->failure());
            ++state.counters.failed;
            report(backend, core::LiveOutcome::Failed, "live MAIL/RCPT: " + conn->failure());
            continue;
        }
        if (!ok) {
            ++state.counters.deferred;
            bool clean = co_await conn->reset(reply_timeout());
            if (clean) keep(std::move(conn));
            continue;
        }
        report(backend, core::LiveOutcome::Success, "live MAIL");
        pool_->transaction_started(backend);
        conn_ = std::move(conn);
        if (!new_rcpt) co_return proto::Reply::make(250, "2.0.0", "Ok");
        if (new_reply->positive()) {
            recipients_.push_back(*new_rcpt);
            ++state.counters.recipients;
        } else {
            ++state.counters.rejected;
        }
        co_return core::relay_reply(*new_reply);
    }
    if (permanent) {
        mail_refusal_ = permanent;
        co_return core::relay_reply(*permanent);
    }
    // Every backend reached answered the recipient with a 4xx: the client
    // hears the last one, as it would directly (no spool: it is the
    // recipient's, not a lack of backends).
    if (recipient_deferral && recipient_deferral->code != 421) {
        // No recipient is accepted yet: the next one starts afresh, on any
        // backend (with one backend, it would otherwise find none left).
        tried_.clear();
        attempts_made_ = 0;
        co_return core::relay_reply(*recipient_deferral);
    }
    no_backend_ = true;
    co_return core::no_backend_reply();
}

awaitable<proto::Reply> Relay::add_recipient(const proto::Mailbox& rcpt) {
    no_backend_ = false;
    // The backends refused the sender: directly, every RCPT after a refused
    // MAIL is refused too (503), and the sender learns why from the MAIL
    // reply. Here the client's MAIL was accepted by smtplb, so every one of
    // its recipients gets the backend's MAIL refusal.
    if (mail_refusal_ && !conn_) co_return core::relay_reply(*mail_refusal_);
    if (conn_) {
        std::size_t backend = conn_->backend();
        auto& state = pool_->backend(backend);
        conn_->protocol().send(Step::Rcpt, proto::rcpt_command(rcpt));
        auto rc = co_await conn_->next(reply_timeout());
        if (rc && about_the_recipient(rc->reply, !recipients_.empty())) {
            if (rc->reply.positive()) {
                recipients_.push_back(rcpt);
                ++state.counters.recipients;
            } else if (rc->reply.transient()) {
                ++state.counters.deferred;
            } else {
                ++state.counters.rejected;
            }
            co_return core::relay_reply(rc->reply);
        }
        // Deferred or broken: move the whole transaction elsewhere.
        record(backend, "rcpt", rc ? rc->reply.summary() : conn_->failure());
        if (!rc) {
            ++state.counters.failed;
            report(backend, core::LiveOutcome::Failed, "live RCPT: " + conn_->failure());
            conn_.reset();
            pool_->transaction_ended(backend);
        } else {
            ++state.counters.deferred;
            if (rc->reply.code == 421) report_reply(backend, "RCPT", rc->reply);
            co_await release_current(true);
        }
    }
    co_return co_await establish(&rcpt);
}

awaitable<void> Relay::start_data() {
    if (!conn_ || data_sent_ || recipients_.empty()) co_return;
    conn_->protocol().send(Step::Data, "DATA\r\n");
    data_sent_ = true;
    co_await conn_->flush();  // a failure shows when deliver() reads the reply
}

awaitable<proto::Reply> Relay::deliver(const proto::BodySource& body) {
    no_backend_ = false;
    if (recipients_.empty())
        co_return proto::Reply::make(554, "5.5.1", "Error: no valid recipients");
    for (;;) {
        if (!conn_) {
            if (!may_try_again()) {
                no_backend_ = true;
                co_return core::no_backend_reply();
            }
            auto replay = co_await establish(nullptr);
            if (!conn_) co_return replay;
        }
        std::size_t backend = conn_->backend();
        auto& state = pool_->backend(backend);
        auto& proto = conn_->protocol();
        if (!data_sent_) proto.send(Step::Data, "DATA\r\n");
        data_sent_ = false;  // from here on, its reply is being read
        auto data = co_await conn_->next(reply_timeout());
        std::optional<proto::Reply> final_reply;
        // Until the body has gone out, the reply is to DATA and the backend
        // still holds the transaction (it needs RSET before reuse).
        bool body_sent = data && data->reply.code == 354;
        const char* stage = body_sent ? "message" : "data";
        if (body_sent) {
            auto result = co_await conn_->send_body(body);
            if (result == BackendConnection::BodyResult::ReadFailed) {
                // Our own spill file failed: nobody else can do better.
                conn_->close();
                conn_.reset();
                pool_->transaction_ended(backend);
                co_return proto::Reply::make(451, "4.3.0", "Local error reading message");
            }
            bool sent = result == BackendConnection::BodyResult::Sent;
            if (sent) {
                proto.expect(Step::Message);
                auto sent_at = std::chrono::steady_clock::now();
                // RFC 5321 §4.5.3.2.6: the backend may be filtering the content.
                auto done = co_await conn_->next(pool_->config().final_reply_timeout);
                if (done) {
                    final_reply = done->reply;
                    pool_->observe_reply_time(
                        backend,
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - sent_at)
                            .count());
                }
            }
        } else if (data) {
            final_reply = data->reply;
        }
        if (!final_reply) {
            record(backend, stage, conn_->failure());
            ++state.counters.failed;
            report(backend, core::LiveOutcome::Failed,
                   std::string("live ") + stage + ": " + conn_->failure());
            conn_.reset();
            pool_->transaction_ended(backend);
            continue;
        }
        record(backend, stage, final_reply->summary());
        attempts_.back().tls = conn_->tls_summary();
        if (body_sent || !final_reply->positive())
            report_reply(backend, body_sent ? "end of data" : "DATA", *final_reply);
        switch (classify(*final_reply)) {
            case Verdict::Accepted:
                if (!body_sent) break;  // 2xx to DATA: nonsense, go elsewhere
                ++state.counters.delivered;
                queue_id_ =
                    core::queue_id_from(final_reply->lines.empty() ? "" : final_reply->lines[0]);
                co_await release_current(false);
                recipients_.clear();
                co_return core::relay_reply(*final_reply);
            case Verdict::Rejected:
                ++state.counters.rejected;
                // Postfix keeps the transaction open after its end-of-data
                // restrictions refuse (REAL-PEERS.md): RSET before reuse.
                co_await release_current(true);
                recipients_.clear();
                co_return core::relay_reply(*final_reply);
            case Verdict::TryElsewhere:
                break;
        }
        ++state.counters.deferred;
        co_await release_current(true);
    }
}

awaitable<void> Relay::abandon() {
    co_await release_current(true);
    recipients_.clear();
}

}  // namespace smtplb::io
