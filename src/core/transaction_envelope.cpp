// Transaction: opening it on a backend (the envelope, replayed when it
// moves), recipients on an open one, and the spool when none can take it.
#include "base/text.hpp"
#include "core/delivery.hpp"
#include "core/health.hpp"
#include "core/transaction.hpp"

namespace smtplb::core {

using Step = proto::BackendSession::Step;
using Kind = TransactionAction::Kind;
using Release = TransactionAction::Release;

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

// For the tracking log: what the backend lacks.
std::string missing_capability(const proto::Capabilities& caps, const TransactionNeeds& needs) {
    if (needs.smtputf8 && !caps.smtputf8) return "no SMTPUTF8";
    if (needs.requiretls && !caps.requiretls) return "no REQUIRETLS";
    if (needs.size > 0 && caps.size_limit && *caps.size_limit > 0 && needs.size > *caps.size_limit)
        return "SIZE " + std::to_string(*caps.size_limit);
    return "not reached over verified TLS";
}

}  // namespace
// --- Opening the transaction on a backend ---

void Transaction::establish(Purpose purpose) {
    purpose_ = purpose;
    permanent_.reset();
    recipient_deferral_.reset();
    stale_retries_ = 0;
    identity_retries_ = 0;
    fresh_next_ = false;
    establish_tries_ = 0;
    eight_bit_skips_ = 0;
    shaping_block_.reset();
    next_attempt();
}

void Transaction::next_attempt() {
    drop_shaping();  // the last backend's share, if it was not kept
    std::optional<std::size_t> chosen;
    if (may_try_again()) {
        Pool::ShapingPick shaping;
        if (pool_->shaping()) {
            envelope_domains(shaping_domains_);
            shaping.domains = &shaping_domains_;
            shaping.hold = &shaping_hold_;
        }
        chosen = pool_->pick(client_, tried_, needs_, pool_->shaping() ? &shaping : nullptr);
        if (shaping.blocked) {
            shaping_block_ = shaping.blocked;
            held_by_limits_ = true;  // room there, in time, may take it
        }
    }
    if (!chosen) {
        no_backend_left();
        return;
    }
    backend_ = *chosen;
    tried_.push_back(backend_);
    ++attempts_made_;
    ++establish_tries_;
    attempt_counted_ = false;
    push({.kind = Kind::Open, .backend = backend_, .fresh = std::exchange(fresh_next_, false)});
    waiting_ = Waiting::Open;
}

void Transaction::open_failed(const OpenFailure& f) {
    if (waiting_ != Waiting::Open) return;  // nothing was asked: ignored
    drop_shaping();  // nothing opened: its share goes back, whatever comes next
    auto& counters = pool_->backend(backend_).counters;
    using K = OpenFailure::Kind;
    // Only a refusal can be passed on as the backend's verdict on the HELO.
    auto kind =
        f.kind == K::HeloRefused && (!f.refusal || f.refusal->positive()) ? K::Greeting : f.kind;
    switch (kind) {
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
            // A 4xx to smtplb's own AUTH ("454 4.7.0 Temporary authentication
            // failure") is not the client's to hear: it did not authenticate.
            if (f.refusal && f.stage != "auth") deferred_by(*f.refusal);
            break;
        }
        case K::HeloRefused:
            // The backend's verdict on the client's HELO, as it would have
            // given it to the client directly: the client's answer.
            count_attempt();
            record("helo", f.reason);
            answer(deferral_reply(*f.refusal));  // a 421 (closing) as 451: the client stays
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
        case K::Misconfigured:
            // smtplb's own account on it (AUTH): every transaction would
            // fail the same way, and never for the client's sake.
            count_attempt();
            record(f.stage.c_str(), f.reason);
            ++counters.failed;
            report(backend_, LiveOutcome::Misconfigured, f.reason,
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
            held_by_limits_ = true;
            break;
        case K::Unreachable:
            // Passed over, as for capabilities it lacks: no attempt of max_attempts spent.
            record("connect", f.reason);
            if (attempts_made_ > 0) --attempts_made_;
            break;
    }
    next_attempt();
}

void Transaction::opened(const OpenedConnection& connection) {
    if (waiting_ != Waiting::Open) return;
    connected_ = true;
    connection_ = connection;
    const auto& caps = connection.capabilities;
    // A reused connection's EHLO was learnt when it was opened.
    if (!connection.reused) pool_->learn_capabilities(backend_, caps);
    if (needs_.any()) {
        // Its EHLO may say what its last known capabilities did not.
        const bool verified = pool_->config().tls.verifies() && !connection.tls.empty();
        if (!may_take(BackendCapabilities::from(caps), needs_, verified)) {
            count_attempt();
            record("mail", "backend cannot take it: " + missing_capability(caps, needs_));
            release(Release::Keep);
            next_attempt();
            return;
        }
    }
    if (needs_8bitmime() && !caps.eightbitmime) {
        // RFC 6152 §3: never 8-bit octets to it, and conversion is not allowed.
        // issue 25 (caps): with convert_8bit = false a pool offers 8BITMIME
        // only where its backends do; with it on, smtplb bridges the gap.
        count_attempt();
        ++eight_bit_skips_;
        record("mail", "backend does not announce 8BITMIME");
        release(Release::Keep);
        next_attempt();
        return;
    }
    // MAIL, the replayed recipients and the new one, pipelined when allowed.
    send(Step::Mail, proto::mail_command(sender_, params_, caps));
    rcpt_index_ = envelope_sent_ = 0;
    new_reply_.reset();
    if (caps.pipelining) {
        while (envelope_sent_ < envelope_size() && envelope_sent_ < kMaxAhead)
            send_envelope_rcpt();
        // With the client's next recipients: a pipelined group costs one
        // round trip to open, not two. Only behind a whole envelope, so that
        // every command goes in the client's order.
        if (purpose_ == Purpose::Recipient && envelope_sent_ == envelope_size())
            send_ahead(kMaxAhead - envelope_sent_);
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
        deferred_by(reply);
        envelope_refused(reply);
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
    const std::size_t index = envelope_sent_++;
    const bool replayed = index < recipients_.size();
    const auto& rcpt = replayed ? recipients_[index] : *new_rcpt_;
    const auto& params = replayed ? recipient_params_[index] : new_rcpt_params_;
    send(Step::Rcpt, proto::rcpt_command(rcpt, params, connection_.capabilities));
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
        deferred_by(reply);
        record("rcpt", reply.summary());
        envelope_refused(reply);
        return;
    }
    if (++rcpt_index_ == envelope_size()) {
        envelope_done();
        return;
    }
    if (envelope_sent_ < envelope_size()) send_envelope_rcpt();
    await();
}

void Transaction::envelope_refused(const proto::Reply& reply) {
    auto& counters = pool_->backend(backend_).counters;
    ++(reply.permanent() ? counters.rejected : counters.deferred);
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
    // The replayed recipients are this backend's too (its counters say what
    // it accepted, whichever backend accepted them first).
    pool_->backend(backend_).counters.recipients += recipients_.size();
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
        recipient_params_.push_back(new_rcpt_params_);
        accepted_.push_back(*new_rcpt_);
        accepted_params_.push_back(new_rcpt_params_);
        ++counters.recipients;
    } else if (reply.transient()) {
        ++counters.deferred;
    } else {
        ++counters.rejected;
    }
    // The tracking line names the backend that refused a recipient.
    if (!reply.positive()) record("rcpt", reply.summary());
    answer(relay_reply(reply));
}

void Transaction::no_backend_left() {
    if (permanent_) {
        mail_refusal_ = permanent_;
        answer(relay_reply(*permanent_));
        return;
    }
    if (refuse_8bit()) {
        // Every backend reached lacks 8BITMIME and conversion is off or failed.
        mail_refusal_ = proto::Reply::make(554, "5.6.3", "Conversion required but not supported");
        answer(*mail_refusal_);
        return;
    }
    // No backend of the pool can ever take it (SMTPUTF8, SIZE=, REQUIRETLS):
    // refused at once, as a backend would, never deferred nor spooled.
    if (needs_.any()) {
        if (auto refusal = pool_refusal(pool_->capabilities(), needs_)) {
            mail_refusal_ = refusal;
            answer(*refusal);
            return;
        }
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
    // Every backend left was at its limit for a domain: smtplb's own
    // shaping, named in the reply (or the spool keeps the message for later).
    const bool shaped = shaping_block_ && !last_deferral_;
    if (shaped) ++pool_->shaping_full;
    if (!spools_) {
        // The most specific reply there is: the last backend's own 4xx
        // about this message, as the client would have had it directly
        // from that backend; the generic one only when none answered.
        unavailable_ = true;
        no_backend_ = !last_deferral_ && !shaped;
        answer(last_deferral_ ? deferral_reply(*last_deferral_)
               : shaped       ? pool_->shaping()->refusal(*shaping_block_, pool_->name())
                              : no_backend_reply());
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

void Transaction::envelope_domains(std::vector<std::string>& out) const {
    out.clear();
    for (const auto& r : recipients_)
        add_domain(out, r.domain);
    if (purpose_ == Purpose::Recipient && new_rcpt_) add_domain(out, new_rcpt_->domain);
}

void Transaction::drop_shaping() {
    if (!shaping_hold_.empty()) pool_->settle_shaping(shaping_hold_);
}

// A later recipient's domain at its limit on the backend holding the
// transaction. With nothing accepted there yet, the transaction moves
// (establish() looks for a backend with room); otherwise the client sends
// that recipient in another transaction (452 4.5.3, as for a recipient
// routed to another pool), which may go to another backend.
bool Transaction::shaped_out(const proto::Mailbox& rcpt) {
    if (!pool_->shaping() || rcpt.domain.empty()) return false;
    auto domain = base::to_lower(rcpt.domain);
    if (shaping_hold_.holds(domain)) return false;
    auto block = pool_->shape_recipient(backend_, domain, shaping_hold_);
    if (!block) return false;
    if (recipients_.empty()) {
        record("rcpt", "at its destination limit for " + domain + ": moved");
        uncount_attempt();  // not a failure: it may take other domains' mail
        release(Release::Reset);
        establish(Purpose::Recipient);
        return true;
    }
    ++pool_->shaping_full;
    answer(pool_->shaping()->separate(*block, pool_->name()));
    return true;
}

bool Transaction::needs_8bitmime() const {
    return eight_bit_only_ || (params_.body_8bitmime && !pool_->config().convert_8bit);
}

// The answer is 554 5.6.3 only when the lack of 8BITMIME is all that stood
// in the way: a backend that was down says nothing about it.
bool Transaction::refuse_8bit() const {
    return needs_8bitmime() && eight_bit_skips_ == establish_tries_ &&
           (eight_bit_skips_ > 0 || body_refused_8bit_);
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
    accepted_params_.push_back(new_rcpt_params_);
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
    deferred_by(reply);
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

}  // namespace smtplb::core
