#include "core/transaction.hpp"

#include <chrono>
#include <utility>

#include "core/delivery.hpp"
#include "core/health.hpp"

namespace smtplb::core {

using Step = proto::BackendSession::Step;
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

Transaction::~Transaction() {
    drop_shaping();
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
    needs_ = TransactionNeeds::of(params);
    spools_ = spools;
    recipients_.clear();
    accepted_.clear();
    recipient_params_.clear();
    accepted_params_.clear();
    relayed_without_dsn_ = false;
    tried_.clear();
    attempts_.clear();
    queue_id_.clear();
    mail_refusal_.reset();
    last_deferral_.reset();
    held_by_limits_ = false;
    attempts_made_ = 0;
    first_failure_.reset();
    eight_bit_only_ = false;
    body_refused_8bit_ = false;
    spooling_ = false;
    client_chunking_ = false;
    batch_.clear();
    batch_next_ = 0;
    push({.kind = Kind::Done});
}

void Transaction::switch_pool(Pool& pool, bool spools) {
    release(Release::Reset);
    pool_ = &pool;
    spools_ = spools;
    recipients_.clear();
    recipient_params_.clear();
    tried_.clear();
    mail_refusal_.reset();
    last_deferral_.reset();
    attempts_made_ = 0;
    first_failure_.reset();
    push({.kind = Kind::Done});
}

void Transaction::recipient(const proto::Mailbox& rcpt) {
    recipient(rcpt, proto::RcptParameters{});
}

void Transaction::recipient(const proto::Mailbox& rcpt, const proto::RcptParameters& params) {
    std::vector<RecipientInput> one;
    one.push_back({rcpt, params});
    recipients(std::move(one));
}

void Transaction::recipients(std::vector<RecipientInput> batch) {
    batch_ = std::move(batch);
    batch_next_ = 0;
    if (!batch_.empty()) next_recipient();
}

void Transaction::next_recipient() {
    auto& input = batch_[batch_next_++];
    new_rcpt_ = std::move(input.mailbox);
    new_rcpt_params_ = std::move(input.params);
    const auto& rcpt = *new_rcpt_;
    no_backend_ = unavailable_ = false;
    last_deferral_.reset();
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
        if (sent_ahead_ > 0) {  // already sent: its reply is next
            --sent_ahead_;
            await();
            waiting_ = Waiting::RcptReply;
            return;
        }
        if (shaped_out(rcpt)) return;
        send(Step::Rcpt, proto::rcpt_command(rcpt, new_rcpt_params_, connection_.capabilities));
        send_ahead(kMaxAhead);
        await();
        waiting_ = Waiting::RcptReply;
        return;
    }
    establish(Purpose::Recipient);
}

void Transaction::send_ahead(std::size_t room) {
    const auto& caps = connection_.capabilities;
    // Shaping decides per recipient's domain, before each is sent.
    if (!caps.pipelining || pool_->shaping()) return;
    for (auto i = batch_next_ + sent_ahead_; i < batch_.size() && sent_ahead_ < room; ++i) {
        send(Step::Rcpt, proto::rcpt_command(batch_[i].mailbox, batch_[i].params, caps));
        ++sent_ahead_;
    }
}

void Transaction::data(bool chunking) {
    client_chunking_ = chunking;
    // A BDAT to the backend goes at the end, in one: nothing to send before it.
    if (holding_ && !spooling_ && !data_sent_ && !recipients_.empty() && !bdat_to_backend()) {
        send(Step::Data, "DATA\r\n");
        data_sent_ = true;
        push({.kind = Kind::Flush, .backend = backend_});
    }
    push({.kind = Kind::Done});
}

void Transaction::message_complete() {
    no_backend_ = unavailable_ = false;
    last_deferral_.reset();
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
    recipient_params_.clear();
    new_rcpt_.reset();
    spooling_ = false;
    batch_.clear();
    batch_next_ = 0;
    push({.kind = Kind::Done});
}

void Transaction::client_slow() {
    if (holding_) {
        // The backend may count the wait against its own timeout (Postfix's
        // smtpd_timeout, 10 s under stress) and holds a process for it: it
        // gets its connection back, and the envelope is replayed later on
        // any backend (this one is not "tried": it did nothing wrong).
        uncount_attempt();
        // In the tracking record: the backend's log has a transaction ended
        // by smtplb here ("lost connection after DATA" in Postfix's).
        record("hold",
               data_sent_ ? "let go in DATA: the client was slow" : "let go: the client was slow");
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
    drop_shaping();
    if (!connected_) return;
    if (holding_) {
        pool_->transaction_ended(backend_);
        holding_ = false;
    }
    // A backend in DATA can only be given the message or abandoned: closing
    // without the final "." discards the transaction there.
    if (data_sent_) how = Release::Close;
    data_sent_ = false;
    streaming_ = false;
    early_data_reply_.reset();
    // Replies still owed to recipients sent ahead are not ours to read: a
    // Reset drains them before its RSET (io), anything else drops them.
    sent_ahead_ = 0;
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

void Transaction::deferred_by(const proto::Reply& reply) {
    if (reply.transient()) last_deferral_ = reply;
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
        case Waiting::EarlyDataReply:
            early_data_reply(reply);
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
        case Waiting::EarlyDataReply:
            stream_failed(reason);
            return;
        case Waiting::FinalReply:
            delivery_failed("message", reason);
            return;
        default:
            return;
    }
}

std::optional<TransactionAction> Transaction::next() {
    // A batch goes on once the last recipient's Answer has been taken.
    if (taken_ == out_.size() && waiting_ == Waiting::Input && batch_next_ < batch_.size())
        next_recipient();
    if (taken_ == out_.size()) return std::nullopt;
    auto action = std::move(out_[taken_++]);
    if (taken_ == out_.size()) {  // all taken: the next input starts at the front
        out_.clear();
        taken_ = 0;
    }
    return action;
}

}  // namespace smtplb::core
