#include "core/transaction.hpp"

#include <chrono>
#include <utility>

#include "core/delivery.hpp"
#include "core/health.hpp"

namespace smtplb::core {

using Step = proto::ClientSession::Step;
using Kind = TransactionAction::Kind;
using Release = TransactionAction::Release;

const char* to_string(Kind kind) {
    switch (kind) {
        case Kind::Open:
            return "open";
        case Kind::Send:
            return "send";
        case Kind::Flush:
            return "flush";
        case Kind::Await:
            return "await";
        case Kind::SendBody:
            return "send-body";
        case Kind::Release:
            return "release";
        case Kind::Answer:
            return "answer";
        case Kind::CheckSpool:
            return "check-spool";
        case Kind::Spool:
            return "spool";
        case Kind::Done:
            return "done";
    }
    return "?";
}

const char* to_string(Release release) {
    switch (release) {
        case Release::Keep:
            return "keep";
        case Release::Reset:
            return "reset";
        case Release::Quit:
            return "quit";
        case Release::Close:
            return "close";
    }
    return "?";
}

namespace {

// A 4xx to a recipient moves the transaction to another backend only when
// it speaks for the backend (resources, 421: RFC 3463 subjects 3 and 4).
// One about the recipient (a full mailbox, greylisting, a policy) would be
// the same elsewhere: it goes to the client.
bool moves_transaction(const proto::Reply& reply) {
    if (classify(reply) != Verdict::TryElsewhere) return false;
    auto live = classify_live(reply);
    return live == LiveOutcome::BackendDeferred || live == LiveOutcome::Failed;
}

// Real MTAs use 4.3.x per recipient too (Postfix: "451 4.3.0 Temporary
// lookup failure" from a recipient's table lookup), so a 4xx to RCPT says
// nothing certain about the backend: it never counts against its health.
// Once the backend has accepted another recipient of the transaction, it is
// about this recipient alone and goes to the client as it is; only a 421
// (the backend is closing the connection) still moves the transaction.
bool about_the_recipient(const proto::Reply& reply, bool others_accepted) {
    if (reply.code == 421) return false;
    return others_accepted || !moves_transaction(reply);
}

}  // namespace

Transaction::~Transaction() {
    if (holding_) pool_->transaction_ended(backend_);
}

// --- Inputs from the client ---

void Transaction::begin(Pool& pool, const std::optional<base::IpAddress>& client,
                        const proto::Path& sender, const proto::MailParameters& params,
                        bool spools) {
    release(Release::Reset);
    pool_ = &pool;
    client_ = client;
    sender_ = sender;
    params_ = params;
    spools_ = spools;
    recipients_.clear();
    accepted_.clear();
    tried_.clear();
    attempts_.clear();
    queue_id_.clear();
    mail_refusal_.reset();
    attempts_made_ = 0;
    first_failure_.reset();
    spooling_ = false;
    push({.kind = Kind::Done});
}

void Transaction::switch_pool(Pool& pool, bool spools) {
    release(Release::Reset);
    pool_ = &pool;
    spools_ = spools;
    recipients_.clear();
    tried_.clear();
    mail_refusal_.reset();
    attempts_made_ = 0;
    first_failure_.reset();
    push({.kind = Kind::Done});
}

void Transaction::recipient(const proto::Mailbox& rcpt) {
    new_rcpt_ = rcpt;
    no_backend_ = false;
    if (spooling_) {
        check_spool();
        return;
    }
    // The backends refused the sender: directly, every RCPT after a refused
    // MAIL is refused too (503), and the sender learns why from the MAIL
    // reply. Here smtplb accepted the MAIL, so every recipient gets the
    // backends' refusal of it.
    if (mail_refusal_ && !holding_) {
        answer(relay_reply(*mail_refusal_));
        return;
    }
    if (holding_) {
        send(Step::Rcpt, proto::rcpt_command(rcpt));
        await();
        waiting_ = Waiting::RcptReply;
        return;
    }
    establish(Purpose::Recipient);
}

void Transaction::data() {
    if (holding_ && !spooling_ && !data_sent_ && !recipients_.empty()) {
        send(Step::Data, "DATA\r\n");
        data_sent_ = true;
        push({.kind = Kind::Flush});
    }
    push({.kind = Kind::Done});
}

void Transaction::message_complete() {
    no_backend_ = false;
    if (spooling_) {
        push({.kind = Kind::Spool});
        waiting_ = Waiting::Spool;
        return;
    }
    if (recipients_.empty()) {
        answer(proto::Reply::make(554, "5.5.1", "Error: no valid recipients"));
        return;
    }
    start_delivery();
}

void Transaction::abandon() {
    release(Release::Reset);
    recipients_.clear();
    new_rcpt_.reset();
    spooling_ = false;
    push({.kind = Kind::Done});
}

void Transaction::client_slow() {
    if (holding_) {
        // The backend may count the wait against its own timeout (Postfix's
        // smtpd_timeout, 10 s under stress) and holds a process for it: it
        // gets its connection back, and the envelope is replayed later on
        // any backend (this one is not "tried": it did nothing wrong).
        uncount_attempt();
        release(data_sent_ ? Release::Close : Release::Quit);
    }
    push({.kind = Kind::Done});
}

// --- Helpers ---

void Transaction::send(Step step, std::string line) {
    push({.kind = Kind::Send, .backend = backend_, .step = step, .line = std::move(line)});
}

void Transaction::await(bool final_reply) {
    push({.kind = Kind::Await, .backend = backend_, .final_reply = final_reply});
}

void Transaction::answer(const proto::Reply& reply) {
    push({.kind = Kind::Answer, .reply = reply});
    waiting_ = Waiting::Input;
}

void Transaction::release(Release how) {
    if (!connected_) return;
    if (holding_) {
        pool_->transaction_ended(backend_);
        holding_ = false;
    }
    // A backend in DATA can only be given the message or abandoned: closing
    // without the final "." discards the transaction there.
    if (data_sent_) how = Release::Close;
    data_sent_ = false;
    connected_ = false;
    push({.kind = Kind::Release, .backend = backend_, .release = how});
}

void Transaction::record(const char* stage, const std::string& what) {
    attempts_.push_back({pool_->backend(backend_).config.name, stage, what, {}});
}

void Transaction::report(std::size_t backend, LiveOutcome outcome, const std::string& reason,
                         const proto::Reply* reply) {
    if (outcome == LiveOutcome::BackendDeferred || outcome == LiveOutcome::Failed ||
        outcome == LiveOutcome::MessageDeferred) {
        if (!first_failure_) first_failure_ = pool_->clock().now();
    }
    pool_->report(backend, outcome, reason, reply ? reply->summary() : std::string());
}

void Transaction::report_reply(const char* stage, const proto::Reply& reply) {
    report(backend_, classify_live(reply), std::string("live ") + stage, &reply);
}

bool Transaction::may_try_again() const {
    if (attempts_made_ >= pool_->config().max_attempts || closing_) return false;
    return !first_failure_ || pool_->clock().now() - *first_failure_ < pool_->config().retry_time;
}

// Counted once, when the attempt is decided: after the stale rule has had
// its say (/metrics exports it as a counter, and one that goes back reads
// as a reset).
void Transaction::count_attempt() {
    if (!std::exchange(attempt_counted_, true)) ++pool_->backend(backend_).counters.attempts;
}

void Transaction::uncount_attempt() {
    if (!tried_.empty() && tried_.back() == backend_) tried_.pop_back();
    if (attempts_made_ > 0) --attempts_made_;
}

// A reused connection that breaks before its first reply was most likely
// closed by the backend while idle (the cache checks only connections idle
// for a second or more): not the backend's fault, and not a reason to skip
// it. Once more (twice at most), on another connection.
bool Transaction::stale(bool reused, bool refusal, bool protocol_error) {
    if (!reused || stale_retries_ >= 2 || refusal || protocol_error) return false;
    ++stale_retries_;
    uncount_attempt();
    return true;
}

// --- Opening the transaction on a backend ---

void Transaction::establish(Purpose purpose) {
    purpose_ = purpose;
    permanent_.reset();
    recipient_deferral_.reset();
    stale_retries_ = 0;
    identity_retries_ = 0;
    fresh_next_ = false;
    next_attempt();
}

void Transaction::next_attempt() {
    std::optional<std::size_t> chosen;
    if (may_try_again()) chosen = pool_->pick(client_, tried_);
    if (!chosen) {
        no_backend_left();
        return;
    }
    backend_ = *chosen;
    tried_.push_back(backend_);
    ++attempts_made_;
    attempt_counted_ = false;
    push({.kind = Kind::Open, .backend = backend_, .fresh = std::exchange(fresh_next_, false)});
    waiting_ = Waiting::Open;
}

void Transaction::open_failed(const OpenFailure& f) {
    if (waiting_ != Waiting::Open) return;  // nothing was asked: ignored
    auto& counters = pool_->backend(backend_).counters;
    using K = OpenFailure::Kind;
    switch (f.kind) {
        case K::Connect:
        case K::Greeting: {
            count_attempt();
            record(f.stage.c_str(), f.reason);
            ++counters.failed;
            // 421 at the greeting is back pressure; 554 is a refusal of service.
            auto outcome = f.refusal && f.refusal->transient() ? LiveOutcome::BackendDeferred
                                                               : LiveOutcome::Failed;
            report(backend_, outcome, "live " + f.stage + ": " + f.reason,
                   f.refusal ? &*f.refusal : nullptr);
            break;
        }
        case K::HeloRefused:
            // The backend's verdict on the client's HELO, as it would have
            // given it to the client directly: the client's answer.
            count_attempt();
            record("helo", f.reason);
            answer(relay_reply(f.refusal.value_or(no_backend_reply())));
            return;
        case K::IdentityBroken:
            if (stale(f.reused, false, f.protocol_error)) break;
            count_attempt();
            record("xclient", f.reason);
            ++counters.failed;
            report(backend_, LiveOutcome::Failed, "live XCLIENT: " + f.reason);
            break;
        case K::Unauthorised:
            // Not "down" (it works for others), but useless to us until its
            // configuration is fixed: say so, loudly.
            count_attempt();
            record("xclient", f.reason);
            ++counters.failed;
            report(backend_, LiveOutcome::Misconfigured,
                   "XCLIENT refused: the backend does not authorise this balancer",
                   f.refusal ? &*f.refusal : nullptr);
            break;
        case K::IdentityRefused:
            // About this client, or about the client a reused connection
            // spoke for before (Postfix refuses a second XCLIENT from a
            // client it does not authorise): never the backend's health.
            record("xclient", f.reason);
            if (f.reused && identity_retries_ == 0) {
                ++identity_retries_;
                uncount_attempt();  // the same attempt, on a fresh connection
                fresh_next_ = true;
            } else {
                count_attempt();
            }
            break;
        case K::NoSlot:
            // smtplb's own cap on connections to it: no judgement of the backend.
            record("connect", f.reason);
            break;
    }
    next_attempt();
}

void Transaction::opened(const OpenedConnection& connection) {
    if (waiting_ != Waiting::Open) return;
    connected_ = true;
    connection_ = connection;
    const auto& caps = connection.capabilities;
    if (params_.smtputf8 && !caps.smtputf8) {
        count_attempt();
        record("mail", "backend does not announce SMTPUTF8");
        release(Release::Keep);
        next_attempt();
        return;
    }
    // MAIL, the replayed recipients and the new one, pipelined when allowed.
    send(Step::Mail, proto::mail_command(sender_, params_, caps));
    rcpt_index_ = 0;
    new_reply_.reset();
    if (caps.pipelining) {
        for (const auto& r : recipients_)
            send(Step::Rcpt, proto::rcpt_command(r));
        if (purpose_ == Purpose::Recipient) send(Step::Rcpt, proto::rcpt_command(*new_rcpt_));
    }
    await();
    waiting_ = Waiting::MailReply;
}

std::size_t Transaction::envelope_size() const {
    return recipients_.size() + (purpose_ == Purpose::Recipient ? 1 : 0);
}

void Transaction::mail_reply(const proto::Reply& reply) {
    count_attempt();
    if (classify(reply) != Verdict::Accepted) {
        if (classify(reply) == Verdict::Rejected) permanent_ = reply;
        record("mail", reply.summary());
        report_reply("MAIL", reply);
        envelope_refused();
        return;
    }
    if (envelope_size() == 0) {
        envelope_done();
        return;
    }
    if (!connection_.capabilities.pipelining) send_envelope_rcpt();
    await();
    waiting_ = Waiting::EnvelopeReply;
}

void Transaction::send_envelope_rcpt() {
    const auto& rcpt = rcpt_index_ < recipients_.size() ? recipients_[rcpt_index_] : *new_rcpt_;
    send(Step::Rcpt, proto::rcpt_command(rcpt));
}

void Transaction::envelope_reply(const proto::Reply& reply) {
    bool ok = true;
    if (rcpt_index_ >= recipients_.size()) {
        new_reply_ = reply;
        if (!about_the_recipient(reply, !recipients_.empty())) {
            ok = false;
            recipient_deferral_ = reply;
            if (reply.code == 421) report_reply("RCPT", reply);
        }
    } else if (classify(reply) != Verdict::Accepted) {
        // This backend refuses a recipient another one accepted: it cannot
        // carry the transaction as the client sees it.
        ok = false;
    }
    if (!ok) {
        record("rcpt", reply.summary());
        envelope_refused();
        return;
    }
    if (++rcpt_index_ == envelope_size()) {
        envelope_done();
        return;
    }
    if (!connection_.capabilities.pipelining) send_envelope_rcpt();
    await();
}

void Transaction::envelope_refused() {
    ++pool_->backend(backend_).counters.deferred;
    release(Release::Reset);
    next_attempt();
}

void Transaction::envelope_broken(const std::string& reason, bool protocol_error) {
    bool first_reply = waiting_ == Waiting::MailReply;
    release(Release::Close);
    if (first_reply && stale(connection_.reused, false, protocol_error)) {
        next_attempt();
        return;
    }
    count_attempt();
    record("mail", reason);
    ++pool_->backend(backend_).counters.failed;
    report(backend_, LiveOutcome::Failed, "live MAIL/RCPT: " + reason);
    next_attempt();
}

void Transaction::envelope_done() {
    report(backend_, LiveOutcome::Success, "live MAIL");
    pool_->transaction_started(backend_);
    holding_ = true;
    if (purpose_ == Purpose::Message) {
        start_delivery();
        return;
    }
    recipient_answer(*new_reply_);
}

void Transaction::recipient_answer(const proto::Reply& reply) {
    auto& counters = pool_->backend(backend_).counters;
    if (reply.positive()) {
        recipients_.push_back(*new_rcpt_);
        accepted_.push_back(*new_rcpt_);
        ++counters.recipients;
    } else if (reply.transient()) {
        ++counters.deferred;
    } else {
        ++counters.rejected;
    }
    answer(relay_reply(reply));
}

void Transaction::no_backend_left() {
    if (permanent_) {
        mail_refusal_ = permanent_;
        answer(relay_reply(*permanent_));
        return;
    }
    // Every backend reached answered the recipient with a 4xx: the client
    // hears the last one, as it would directly (no spool: it is the
    // recipient's, not a lack of backends). The next recipient starts
    // afresh, on any backend (with one, it would otherwise find none left).
    if (purpose_ == Purpose::Recipient && recipient_deferral_ && recipient_deferral_->code != 421) {
        tried_.clear();
        attempts_made_ = 0;
        answer(relay_reply(*recipient_deferral_));
        return;
    }
    if (!spools_) {
        no_backend_ = true;
        answer(no_backend_reply());
        return;
    }
    if (purpose_ == Purpose::Recipient) {
        check_spool();
        return;
    }
    spooling_ = true;
    push({.kind = Kind::Spool});
    waiting_ = Waiting::Spool;
}

void Transaction::check_spool() {
    push({.kind = Kind::CheckSpool});
    waiting_ = Waiting::SpoolCheck;
}

void Transaction::spool_checked(const std::optional<proto::Reply>& refusal) {
    if (waiting_ != Waiting::SpoolCheck) return;
    if (refusal) {
        answer(*refusal);
        return;
    }
    // Accepted by the listener's policy; no backend can verify it now.
    spooling_ = true;
    accepted_.push_back(*new_rcpt_);
    answer(proto::Reply::make(250, "2.1.5", "Ok"));
}

void Transaction::spooled(const proto::Reply& reply) {
    if (waiting_ != Waiting::Spool) return;
    answer(reply);
}

// --- Recipients on an open transaction ---

void Transaction::rcpt_reply(const proto::Reply& reply) {
    if (about_the_recipient(reply, !recipients_.empty())) {
        recipient_answer(reply);
        return;
    }
    // Deferred for the backend's sake: the whole transaction moves.
    record("rcpt", reply.summary());
    ++pool_->backend(backend_).counters.deferred;
    if (reply.code == 421) report_reply("RCPT", reply);
    release(Release::Reset);
    establish(Purpose::Recipient);
}

void Transaction::rcpt_broken(const std::string& reason) {
    record("rcpt", reason);
    ++pool_->backend(backend_).counters.failed;
    report(backend_, LiveOutcome::Failed, "live RCPT: " + reason);
    release(Release::Close);
    establish(Purpose::Recipient);
}

// --- The message ---

void Transaction::start_delivery() {
    body_sent_ = false;
    if (!holding_) {
        establish(Purpose::Message);
        return;
    }
    if (!data_sent_) send(Step::Data, "DATA\r\n");
    data_sent_ = true;
    await();
    waiting_ = Waiting::DataReply;
}

void Transaction::data_reply(const proto::Reply& reply) {
    if (reply.code == 354) {
        body_sent_ = true;
        push({.kind = Kind::SendBody, .backend = backend_});
        waiting_ = Waiting::Body;
        return;
    }
    // Refused before the body: the backend still holds the transaction
    // (it needs RSET before reuse), and is not in DATA.
    data_sent_ = false;
    delivery_reply(reply);
}

void Transaction::body_done(BodyResult result, const std::string& reason) {
    if (waiting_ != Waiting::Body) return;
    switch (result) {
        case BodyResult::ReadFailed:
            // Our own spill file failed: nobody else can do better.
            release(Release::Close);
            answer(proto::Reply::make(451, "4.3.0", "Local error reading message"));
            return;
        case BodyResult::WriteFailed:
            delivery_failed("message", reason);
            return;
        case BodyResult::Sent:
            body_sent_at_ = pool_->clock().now();
            // RFC 5321 §4.5.3.2.6: the backend may be filtering the content.
            await(true);
            waiting_ = Waiting::FinalReply;
            return;
    }
}

void Transaction::final_reply(const proto::Reply& reply) {
    data_sent_ = false;
    pool_->observe_reply_time(
        backend_, std::chrono::duration<double>(pool_->clock().now() - body_sent_at_).count());
    delivery_reply(reply);
}

void Transaction::delivery_reply(const proto::Reply& reply) {
    auto& counters = pool_->backend(backend_).counters;
    const char* stage = body_sent_ ? "message" : "data";
    record(stage, reply.summary());
    attempts_.back().tls = connection_.tls;
    if (body_sent_ || !reply.positive()) report_reply(body_sent_ ? "end of data" : "DATA", reply);
    switch (classify(reply)) {
        case Verdict::Accepted:
            if (!body_sent_) break;  // 2xx to DATA: nonsense, go elsewhere
            ++counters.delivered;
            queue_id_ = queue_id_from(reply.lines.empty() ? "" : reply.lines[0]);
            release(Release::Keep);
            recipients_.clear();
            answer(relay_reply(reply));
            return;
        case Verdict::Rejected:
            ++counters.rejected;
            // Postfix keeps the transaction open after its end-of-data
            // restrictions refuse (REAL-PEERS.md): RSET before reuse.
            release(Release::Reset);
            recipients_.clear();
            answer(relay_reply(reply));
            return;
        case Verdict::TryElsewhere:
            break;
    }
    ++counters.deferred;
    release(Release::Reset);
    start_delivery();
}

void Transaction::delivery_failed(const char* stage, const std::string& reason) {
    record(stage, reason);
    ++pool_->backend(backend_).counters.failed;
    report(backend_, LiveOutcome::Failed, std::string("live ") + stage + ": " + reason);
    release(Release::Close);
    start_delivery();
}

// --- Results, dispatched by what was asked ---

void Transaction::replied(const proto::Reply& reply) {
    switch (waiting_) {
        case Waiting::MailReply:
            mail_reply(reply);
            return;
        case Waiting::EnvelopeReply:
            envelope_reply(reply);
            return;
        case Waiting::RcptReply:
            rcpt_reply(reply);
            return;
        case Waiting::DataReply:
            data_reply(reply);
            return;
        case Waiting::FinalReply:
            final_reply(reply);
            return;
        default:
            return;  // nothing was asked: ignored
    }
}

void Transaction::broken(const std::string& reason, bool protocol_error) {
    switch (waiting_) {
        case Waiting::MailReply:
        case Waiting::EnvelopeReply:
            envelope_broken(reason, protocol_error);
            return;
        case Waiting::RcptReply:
            rcpt_broken(reason);
            return;
        case Waiting::DataReply:
            delivery_failed("data", reason);
            return;
        case Waiting::FinalReply:
            delivery_failed("message", reason);
            return;
        default:
            return;
    }
}

std::optional<TransactionAction> Transaction::next() {
    if (out_.empty()) return std::nullopt;
    auto action = std::move(out_.front());
    out_.pop_front();
    return action;
}

}  // namespace smtplb::core
