// Drives core::Transaction with event sequences chosen by the fuzzer's bytes
// (client inputs in a session's order, and any result a backend or the
// spool may give to what the transaction asked) and checks the delivery
// contract's invariants after every step:
//  - a 2xx to the end of the message only after a backend's 2xx to its
//    final "." or the spool's 2xx, in this delivery;
//  - a 2xx to a recipient only after a backend's 2xx to a RCPT or the
//    spool's room for it, in this input;
//  - every input ends in exactly one Answer (recipient, end) or Done (the
//    others), with no action after it;
//  - connection actions only on an open connection, one Open at a time;
//  - every transaction_started is ended: nothing in flight when the
//    transaction holds no backend, one when it does, none once destroyed;
//  - per-destination shaping: a concurrent transaction held only while a
//    backend connection is (none once destroyed);
//  - no 421 to the client (a backend's becomes 451: the client's stays open);
//  - a bounded number of actions per input.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>

#include "core/transaction.hpp"

namespace {

using namespace smtplb;
using Kind = core::TransactionAction::Kind;
using Step = proto::BackendSession::Step;

class Clock final : public base::Clock {
  public:
    TimePoint now() const override { return now_; }
    std::int64_t wall_ms() const override { return 0; }
    void advance(Duration d) { now_ += d; }

  private:
    TimePoint now_{std::chrono::hours(1)};
};

class Random final : public base::Random {
  public:
    std::uint64_t below(std::uint64_t bound) override { return bound ? next_++ % bound : 0; }

  private:
    std::uint64_t next_ = 0;
};

class Bytes {
  public:
    Bytes(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    std::uint8_t next() { return at_ < size_ ? data_[at_++] : 0; }
    bool done() const { return at_ >= size_; }

  private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t at_ = 0;
};

[[noreturn]] void broken_invariant(const char* what) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
}

void check(bool ok, const char* what) {
    if (!ok) broken_invariant(what);
}

const proto::Reply& reply_for(std::uint8_t b) {
    static const proto::Reply replies[] = {
        proto::Reply::make(250, "2.1.0", "Ok"),
        proto::Reply::make(250, "2.0.0", "Ok: queued as X"),
        proto::Reply::make(251, "2.1.5", "Will forward"),
        proto::Reply::make(354, "", "Go ahead"),
        proto::Reply::make(421, "4.3.2", "Shutting down"),
        proto::Reply::make(450, "4.2.0", "Greylisted"),
        proto::Reply::make(451, "4.3.0", "Temporary lookup failure"),
        proto::Reply::make(452, "4.3.1", "Insufficient system storage"),
        proto::Reply::make(452, "4.5.3", "Too many recipients"),
        proto::Reply::make(451, "", "No enhanced code"),
        proto::Reply::make(503, "5.5.1", "Error: nested MAIL command"),
        proto::Reply::make(550, "5.1.1", "User unknown"),
        proto::Reply::make(554, "5.7.1", "Refused"),
        proto::Reply::make(220, "2.0.0", "Odd"),
        proto::Reply::make(334, "", "Odd"),
        proto::Reply::make(599, "", "Odd"),
    };
    return replies[b % (sizeof replies / sizeof replies[0])];
}

struct Harness {
    Clock clock;
    Random random;
    std::unique_ptr<core::Pool> pool;
    std::unique_ptr<core::Transaction> tx;
    bool spools = false;
    bool connected = false;
    bool opening = false;
    bool in_mail = false;        // the client's MAIL was accepted
    std::size_t accepted = 0;    // recipients the client was told 2xx
    bool in_data = false;        // the client sent DATA
    bool client_bdat = false;    // ... or BDAT
    bool conn_chunking = false;  // the current connection offers CHUNKING
    bool conn_pipelining = false;
    bool conn_8bitmime = false;
    bool streaming = false;  // the body streams on the current connection
    // What this input saw: a backend's 2xx to RCPT or to the final ".",
    // the spool's room or commit.
    bool rcpt_ok_seen = false;
    bool final_ok_seen = false;
    // The replies the backend owes, in order (what proto::BackendSession keeps).
    std::deque<Step> owed;
    std::size_t in_flight() const {
        std::size_t n = 0;
        for (const auto& b : pool->backends())
            n += b.pending;
        return n;
    }

    // Carries out actions until the input's last (`more`: an Answer of a
    // batch of recipients with more to come); returns it.
    Kind drive(Bytes& in, bool more = false) {
        for (int steps = 0; steps < 500; ++steps) {
            auto action = tx->next();
            check(action.has_value(), "an input ended without an Answer or Done");
            if (trace)
                std::fprintf(stderr, "  %s b%zu %s %s\n", core::to_string(action->kind),
                             action->backend, action->line.c_str(),
                             action->reply.summary().c_str());
            switch (action->kind) {
                case Kind::Open:
                    check(!connected, "Open while a connection is open");
                    if (in.next() % 4 == 0) {
                        core::OpenFailure f;
                        f.kind = static_cast<core::OpenFailure::Kind>(in.next() % 9);
                        f.stage = "connect";
                        f.reused = in.next() % 2;
                        if (in.next() % 2) f.refusal = reply_for(in.next());
                        tx->open_failed(f);
                    } else {
                        core::OpenedConnection c;
                        auto flags = in.next();
                        c.reused = flags & 1;
                        c.capabilities.pipelining = flags & 2;
                        c.capabilities.smtputf8 = flags & 4;
                        c.capabilities.eightbitmime = flags & 8;
                        c.capabilities.chunking = flags & 16;
                        conn_chunking = c.capabilities.chunking;
                        conn_pipelining = c.capabilities.pipelining;
                        conn_8bitmime = c.capabilities.eightbitmime;
                        connected = true;
                        streaming = false;
                        owed.clear();
                        tx->opened(c);
                    }
                    break;
                case Kind::Send:
                    check(connected, "Send without a connection");
                    // The client's verb where the backend takes it (esmtp.md).
                    check(action->step != Step::Data || !(client_bdat && conn_chunking),
                          "DATA to a CHUNKING backend for a BDAT client");
                    check(conn_pipelining || owed.empty(),
                          "commands pipelined to a backend without PIPELINING");
                    check(owed.size() <= core::Transaction::kMaxAhead + 2,
                          "more commands ahead than kMaxAhead");
                    owed.push_back(action->step);
                    break;
                case Kind::Flush:
                    check(connected, "Flush without a connection");
                    break;
                case Kind::Await: {
                    check(connected, "Await without a connection");
                    check(!owed.empty(), "Await with no reply owed");
                    auto step = owed.front();
                    owed.pop_front();
                    check(action->final_reply == (step == Step::Message),
                          "the final reply's timeout for another step, or the reverse");
                    auto b = in.next();
                    if (b % 8 == 7) {
                        tx->broken("broken", b & 8);
                        break;
                    }
                    const auto& reply = reply_for(in.next());
                    if (trace) std::fprintf(stderr, "    <- %s\n", reply.summary().c_str());
                    if (reply.positive() && step == Step::Message) final_ok_seen = true;
                    if (reply.positive() && step == Step::Rcpt) rcpt_ok_seen = true;
                    tx->replied(reply);
                    break;
                }
                case Kind::SendBody:
                    check(connected, "SendBody without a connection");
                    check(owed.empty(), "the body before every reply was read");
                    check(action->chunking == (client_bdat && conn_chunking),
                          "BDAT to a backend without CHUNKING, or for a DATA client");
                    check(action->streamed == streaming,
                          "the rest of a body that did not stream, or all of one that did");
                    owed.push_back(Step::Message);
                    tx->body_done(static_cast<core::Transaction::BodyResult>(in.next() % 4), "x");
                    break;
                case Kind::Release:
                    check(connected, "Release without a connection");
                    connected = false;
                    streaming = false;
                    owed.clear();  // a reset drains them; a close forgets them
                    break;
                case Kind::CheckSpool:
                    check(spools, "CheckSpool in a pool that does not spool");
                    if (in.next() % 3) {
                        rcpt_ok_seen = true;
                        tx->spool_checked(std::nullopt);
                    } else {
                        tx->spool_checked(proto::Reply::make(452, "4.3.1", "Full"));
                    }
                    break;
                case Kind::Spool:
                    check(spools, "Spool in a pool that does not spool");
                    if (in.next() % 3) {
                        final_ok_seen = true;
                        tx->spooled(proto::Reply::make(250, "2.0.0", "Ok: queued as S"));
                    } else {
                        tx->spooled(proto::Reply::make(452, "4.3.1", "Full"));
                    }
                    break;
                case Kind::Answer:
                    if (more) {  // the batch goes on: its next recipient
                        last_answer = action->reply;
                        return action->kind;
                    }
                    [[fallthrough]];
                case Kind::Done:
                    check(!tx->next(), "an action after the input's last");
                    // smtplb keeps the client's connection: never "closing".
                    check(action->reply.code != 421, "a 421 passed on to the client");
                    last_answer = action->reply;
                    return action->kind;
            }
        }
        broken_invariant("more than 500 actions for one input");
    }
    proto::Reply last_answer;
    // FUZZ_TRACE=1: each action on stderr, to read a failing input's story.
    bool trace = std::getenv("FUZZ_TRACE") != nullptr;

    void after_input() {
        check(!tx->busy(), "an input's last action left a result owed");
        check(in_flight() == (tx->holding() ? 1u : 0u), "transaction_started not paired");
        check(!tx->holding() || connected, "holding a backend without a connection");
        check(connected || shaping_held() == 0, "a shaping place held without a backend");
    }
    // Concurrent transactions held under the pool's destination limits.
    std::uint64_t shaping_held() const {
        if (!pool->shaping()) return 0;
        std::uint64_t n = 0;
        for (std::size_t i = 0; i < pool->shaping()->rules().size(); ++i)
            if (pool->shaping()->rules()[i].messages == 0)
                n += pool->shaping()->store().stats(i).tracked_keys;
        return n;
    }
};

proto::Mailbox mailbox(std::uint8_t b) {
    proto::Mailbox m;
    m.local = "u" + std::to_string(b % 4);
    m.domain = b & 4 ? "e.example" : "d.example";  // d.example may be shaped
    return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Bytes in(data, size);
    Harness h;
    config::Pool p;
    p.name = "p";
    p.health.enabled = false;
    auto setup = in.next();
    p.max_attempts = 1 + setup % 4;
    h.spools = setup & 0x10;
    p.convert_8bit = setup & 0x80;
    if (setup & 0x04) {  // a destination limit: a rate, or (0x08) one transaction at once
        config::DestinationLimit shape;
        shape.domain = "d.example";
        if (setup & 0x08) {
            shape.concurrent_transactions = 1;
        } else {
            shape.messages = shape.burst = 1;
            shape.period = std::chrono::seconds(60);
        }
        p.destination_limits.push_back(shape);
    }
    for (int i = 0; i < 1 + (setup >> 5) % 3; ++i) {
        config::Backend b;
        b.name = "b" + std::to_string(i);
        p.backends.push_back(b);
    }
    h.pool = std::make_unique<core::Pool>(p, h.clock, h.random);
    h.tx = std::make_unique<core::Transaction>();
    for (int inputs = 0; inputs < 64 && !in.done(); ++inputs) {
        auto choice = in.next() % 10;
        if (h.trace) std::fprintf(stderr, "input %d\n", choice);
        h.rcpt_ok_seen = h.final_ok_seen = false;
        if (choice == 0 || !h.in_mail) {
            proto::Path sender;
            sender.mailbox = mailbox(in.next());
            proto::MailParameters params;
            auto param_bits = in.next();
            params.smtputf8 = param_bits % 4 == 0;
            params.body_8bitmime = param_bits & 0x10;
            h.tx->begin(*h.pool, base::IpAddress::parse("192.0.2.1"), sender, params, h.spools);
            check(h.drive(in) == Kind::Done, "MAIL needs no answer");
            h.in_mail = true;
            h.client_bdat = false;
            h.accepted = 0;
            h.in_data = false;
        } else if (choice <= 2 && !h.in_data) {
            h.tx->recipient(mailbox(in.next()));
            check(h.drive(in) == Kind::Answer, "a recipient gets an answer");
            if (h.last_answer.positive()) {
                check(h.rcpt_ok_seen, "2xx to a recipient nobody accepted");
                ++h.accepted;
            }
        } else if (choice == 3 && !h.in_data) {  // pipelined by the client
            std::vector<core::RecipientInput> batch(2 + in.next() % 4);
            for (auto& r : batch)
                r.mailbox = mailbox(in.next());
            const auto count = batch.size();
            h.tx->recipients(std::move(batch));
            for (std::size_t i = 0; i < count; ++i) {
                h.rcpt_ok_seen = false;
                check(h.drive(in, i + 1 < count) == Kind::Answer, "each recipient gets an answer");
                if (h.last_answer.positive()) {
                    check(h.rcpt_ok_seen, "2xx to a recipient nobody accepted");
                    ++h.accepted;
                }
            }
        } else if (choice == 4 && h.accepted > 0 && !h.in_data) {
            h.client_bdat = in.next() % 2;
            h.tx->data(h.client_bdat);
            check(h.drive(in) == Kind::Done, "DATA needs no answer from the transaction");
            h.in_data = true;
        } else if (choice == 5 && h.in_data) {
            h.tx->message_complete();
            check(h.drive(in) == Kind::Answer, "the end of a message gets an answer");
            if (h.last_answer.positive())
                check(h.final_ok_seen, "2xx to a message no backend or spool accepted");
            check(!h.tx->holding(), "a backend still held after the end of the message");
            h.in_mail = false;
        } else if (choice == 6) {
            h.tx->client_slow();
            check(h.drive(in) == Kind::Done, "client_slow needs no answer");
            check(!h.tx->holding(), "still holding after client_slow");
        } else if (choice == 7) {
            h.tx->abandon();
            check(h.drive(in) == Kind::Done, "RSET needs no answer from the transaction");
            check(!h.tx->holding() && !h.connected, "a connection kept after abandon");
            h.in_mail = false;
        } else if (choice == 8 && h.in_data) {
            h.tx->body_arriving();
            check(h.drive(in) == Kind::Done, "a body arriving needs no answer");
            h.streaming = h.tx->streaming();
            check(!h.streaming || (h.connected && h.conn_8bitmime && !h.client_bdat),
                  "streaming without a connection, to a 7-bit backend, or for BDAT");
        } else if (choice == 9 && h.in_data) {
            const bool was_streaming = h.streaming;
            h.tx->stream_failed("write failed");
            check(h.drive(in) == Kind::Done, "a failed stream needs no answer");
            check(!h.tx->streaming(), "still streaming after the stream failed");
            check(!was_streaming || (!h.connected && !h.tx->holding()),
                  "the backend of a failed stream kept");
        } else {
            h.clock.advance(std::chrono::seconds(in.next()));
        }
        h.after_input();
    }
    h.tx.reset();
    check(h.in_flight() == 0, "in flight after the transaction ended");
    check(h.shaping_held() == 0, "a shaping place held after the transaction ended");
    return 0;
}
