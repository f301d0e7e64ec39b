// Transaction: the message, from DATA to the final reply.
#include <chrono>
#include <utility>

#include "core/delivery.hpp"
#include "core/health.hpp"
#include "core/transaction.hpp"

namespace smtplb::core {

using Step = proto::BackendSession::Step;
using Kind = TransactionAction::Kind;
using Release = TransactionAction::Release;

// --- The message ---

void Transaction::start_delivery() {
    body_sent_ = false;
    if (!holding_) {
        establish(Purpose::Message);
        return;
    }
    if (bdat_to_backend() && !data_sent_) {
        // RFC 3030: BDAT LAST's reply is the final one, as the "."'s is;
        // from the first octet on, the backend is in the message.
        data_sent_ = true;
        body_sent_ = true;
        push({.kind = Kind::SendBody, .backend = backend_, .chunking = true});
        waiting_ = Waiting::Body;
        return;
    }
    if (streaming_) {
        // The 354 came while the client sent: the rest of the body follows
        // what the stream wrote.
        body_sent_ = true;
        push({.kind = Kind::SendBody, .backend = backend_, .streamed = true});
        waiting_ = Waiting::Body;
        return;
    }
    if (early_data_reply_) {
        auto reply = *std::exchange(early_data_reply_, std::nullopt);
        data_reply(reply);
        return;
    }
    if (!data_sent_) send(Step::Data, "DATA\r\n");
    data_sent_ = true;
    await();
    waiting_ = Waiting::DataReply;
}

void Transaction::body_arriving() {
    // A backend without 8BITMIME may need the body converted, or refused,
    // which only the whole body can say: it gets the body at the end.
    if (holding_ && data_sent_ && !streaming_ && !early_data_reply_ && !client_chunking_ &&
        !spooling_ && connection_.capabilities.eightbitmime) {
        await();
        waiting_ = Waiting::EarlyDataReply;
        return;
    }
    push({.kind = Kind::Done});
}

void Transaction::early_data_reply(const proto::Reply& reply) {
    waiting_ = Waiting::Input;
    if (reply.code == 354) {
        streaming_ = true;
        ++pool_->backend(backend_).counters.streamed;
    } else {
        early_data_reply_ = reply;  // for the end of the message, as if read then
    }
    push({.kind = Kind::Done});
}

void Transaction::stream_failed(const std::string& reason) {
    if (!streaming_ && waiting_ != Waiting::EarlyDataReply) {
        push({.kind = Kind::Done});  // nothing streamed: nothing to let go
        return;
    }
    waiting_ = Waiting::Input;
    // As a failure while the body is sent at the end (delivery_failed), but
    // the next backend is chosen once the whole message is here.
    record("message", reason);
    ++pool_->backend(backend_).counters.failed;
    report(backend_, LiveOutcome::Failed, "live message: " + reason);
    release(Release::Close);
    push({.kind = Kind::Done});
}

void Transaction::data_reply(const proto::Reply& reply) {
    if (reply.code == 354) {
        body_sent_ = true;
        using EightBit = Action::EightBit;
        auto eight_bit = connection_.capabilities.eightbitmime              ? EightBit::Pass
                         : pool_->config().convert_8bit && !eight_bit_only_ ? EightBit::Convert
                                                                            : EightBit::Refuse;
        push({.kind = Kind::SendBody, .backend = backend_, .eight_bit = eight_bit});
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
        case BodyResult::EightBitRefused:
            // Not the backend's fault: the message needs one offering 8BITMIME.
            // It is in DATA with nothing sent: closing drops the message.
            record("message", reason);
            eight_bit_only_ = true;
            body_refused_8bit_ = true;
            release(Release::Close);
            start_delivery();
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
            queue_id_ = queue_id_from(reply.lines);
            relayed_without_dsn_ = !connection_.capabilities.dsn;
            if (!shaping_hold_.empty()) {
                // Counted for each domain among the recipients it took.
                std::vector<std::string> delivered;
                for (const auto& r : recipients_)
                    add_domain(delivered, r.domain);
                pool_->settle_shaping(shaping_hold_, delivered);
            }
            release(Release::Keep);
            recipients_.clear();
            recipient_params_.clear();
            answer(relay_reply(reply));
            return;
        case Verdict::Rejected:
            ++counters.rejected;
            // Postfix keeps the transaction open after its end-of-data
            // restrictions refuse (REAL-PEERS.md): RSET before reuse.
            release(Release::Reset);
            recipients_.clear();
            recipient_params_.clear();
            answer(relay_reply(reply));
            return;
        case Verdict::TryElsewhere:
            deferred_by(reply);
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

}  // namespace smtplb::core
