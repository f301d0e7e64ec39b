#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.hpp"
#include "base/units.hpp"
#include "core/pool.hpp"
#include "core/pool_capabilities.hpp"
#include "core/shaping.hpp"
#include "core/tracking.hpp"
#include "proto/address.hpp"
#include "proto/backend_session.hpp"
#include "proto/capabilities.hpp"
#include "proto/command.hpp"
#include "proto/reply.hpp"

namespace smtplb::core {

// A backend connection that is open and speaks for the client.
struct OpenedConnection {
    bool reused = false;  // from a cache, not opened for this attempt
    proto::Capabilities capabilities;
    std::string tls;  // for the tracking log; "" in plaintext
};

// Why a connection could not be opened, or could not speak for the client.
struct OpenFailure {
    enum class Kind {
        Connect,          // no TCP connection
        Greeting,         // handshake broken, or refused (refusal: 421/554 greeting, EHLO)
        HeloRefused,      // the backend refused the client's own HELO: the client's answer
        IdentityBroken,   // the connection broke during XCLIENT
        Unauthorised,     // 550 / 5.7.x to the first XCLIENT: this balancer is not authorised
        IdentityRefused,  // XCLIENT refused for this client, or for a reused connection's last
        NoSlot,  // the backend's max_connections stayed reached: smtplb's cap, not its fault
        // This client cannot reach it (transparent mode: another address
        // family, or its address and port in use): not the backend's fault.
        Unreachable,
        Misconfigured,  // smtplb's AUTH refused or impossible (pool.backend.auth): its fault
    };
    Kind kind = Kind::Connect;
    std::string stage;  // for the tracking log: connect, greeting, helo, xclient, auth
    std::string reason;
    std::optional<proto::Reply> refusal;
    bool reused = false;
    bool protocol_error = false;  // the backend sent something that is not SMTP
};

// One thing the transaction needs done. Each Open, Await, SendBody,
// CheckSpool and Spool is answered by exactly one result (Transaction's
// opened/open_failed, replied/broken, body_done, spool_checked, spooled)
// before anything else is asked; the others need no answer.
struct TransactionAction {
    enum class Kind {
        Open,   // a connection to `backend` that speaks for the client (`fresh`: not a cached one)
        Send,   // queue `line` on the current connection; its reply is of `step`
        Flush,  // write what is queued now (its failure shows at the next Await)
        Await,  // the next reply on the current connection (`final_reply`: to the final ".")
        SendBody,    // the message and its final "." on the current connection
                     // (`chunking`: as one "BDAT <size> LAST", not stuffed;
                     // `streamed`: only what the stream has not sent yet)
        Release,     // the current connection is no longer this transaction's (`release` says how)
        Answer,      // the client's reply (`reply`); nothing more until the next input
                     // (in a batch of recipients, until the next recipient's Answer)
        CheckSpool,  // may the spool take this recipient? (policy: known recipients; room)
        Spool,       // write the message to the spool
        Done,        // the input needs no reply (DATA, RSET, the client is slow)
    };
    enum class Release {
        Keep,   // clean: no transaction open on it
        Reset,  // RSET first (dropped if that fails)
        Quit,   // QUIT in the background: it may not be reused
        Close,  // close at once (it is broken, or in DATA)
    };
    Kind kind = Kind::Done;
    std::size_t backend = 0;
    bool fresh = false;
    proto::BackendSession::Step step = proto::BackendSession::Step::Mail;
    std::string line;
    bool final_reply = false;
    bool chunking = false;
    bool streamed = false;
    Release release = Release::Keep;
    proto::Reply reply;
    // SendBody to a backend without 8BITMIME (issue 25): what to do with
    // 8-bit content. Pass: the backend offers 8BITMIME. Convert: to 7-bit MIME
    // (a 7-bit message goes as it is). Refuse: BodyResult::EightBitRefused
    // instead of sending it.
    enum class EightBit { Pass, Convert, Refuse };
    EightBit eight_bit = EightBit::Pass;
};

const char* to_string(TransactionAction::Kind kind);
const char* to_string(TransactionAction::Release release);

// A recipient the listener's policy accepted, with its DSN parameters.
struct RecipientInput {
    proto::Mailbox mailbox;
    proto::RcptParameters params;
};

// One client transaction carried to the backends, as a sans-I/O state
// machine (DESIGN.md, delivery contract): inputs from the client (a
// recipient, DATA, the end of the message), results of what it asked for
// (a connection opened, a reply, the body sent, the spool's verdict); out
// come actions, one at a time (next()). It decides everything the contract
// rests on: which backend, retrying on another, the stale-connection rule,
// a 4xx about the recipient or about the backend, the spool fallback, and
// the pool's accounting (transaction_started is always ended).
class Transaction {
  public:
    using Action = TransactionAction;
    // EightBitRefused: the body holds 8-bit octets this backend could not
    // take (SendBody's EightBit::Refuse, or the conversion failed): nothing
    // was sent after the 354.
    enum class BodyResult { Sent, WriteFailed, ReadFailed, EightBitRefused };

    Transaction() = default;
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

    // --- Inputs from the client (each after the last one's Answer/Done) ---
    // A new transaction (the client's MAIL, accepted locally).
    // `spools`: the pool's on_unavailable is "spool" and a spool exists.
    void begin(Pool& pool, const std::optional<base::IpAddress>& client, const proto::Path& sender,
               const proto::MailParameters& params, bool spools);
    // Moves a transaction with no accepted recipient yet to another pool.
    void switch_pool(Pool& pool, bool spools);
    // A recipient the listener's policy accepted: verified live.
    void recipient(const proto::Mailbox& rcpt);
    // The same with its DSN parameters (RFC 3461), passed on to backends with DSN.
    void recipient(const proto::Mailbox& rcpt, const proto::RcptParameters& params);
    // Recipients the client pipelined (RFC 2920), each answered in order as
    // if given alone (one Answer each). To a backend holding the transaction
    // that offers PIPELINING, those still unanswered go out in one write
    // (at most kMaxAhead), not one round trip each.
    void recipients(std::vector<RecipientInput> batch);
    static constexpr std::size_t kMaxAhead = 100;
    // The client sent DATA: DATA goes to the backend now, so that its 354
    // arrives while the client sends, and the end costs one round trip.
    // `chunking`: the client sent BDAT instead; a backend that offers
    // CHUNKING then gets one BDAT ... LAST at the end (the client's verb,
    // so its final reply is the one the backend gives BDAT), others DATA.
    void data(bool chunking = false);
    // The body arrives fast and is large enough to be worth sending on as it
    // comes (the io's call): where the backend holding the transaction has
    // DATA, offers 8BITMIME (the body goes as it is) and the client did not
    // use BDAT, its 354 is read now; after a 354, streaming() is true and
    // the io writes the body on the connection as it arrives. Any other
    // reply to DATA is kept for the end of the message. The hold counts
    // from the backend's last step (the 354, then each write of the body):
    // a client that stalls or trickles is let go as before (client_slow),
    // and the whole body replayed.
    void body_arriving();
    // A write of the streamed body failed: the backend is let go, and the
    // message goes to another at its end.
    void stream_failed(const std::string& reason);
    bool streaming() const { return streaming_; }
    // The message is complete and stored: deliver it (or spool it).
    void message_complete();
    // The transaction ends without a message (RSET, QUIT, a refused body).
    void abandon();
    // smtplb has been waiting on the client for the pool's backend_hold_time
    // while a backend waits on smtplb: the backend connection is let go, and
    // the envelope is replayed when the client goes on.
    void client_slow();

    // --- Results of the actions ---
    void opened(const OpenedConnection& connection);
    void open_failed(const OpenFailure& failure);
    void replied(const proto::Reply& reply);
    void broken(const std::string& reason, bool protocol_error = false);
    void body_done(BodyResult result, const std::string& reason = {});
    // The spool may take the recipient (nothing), or the reply to give.
    void spool_checked(const std::optional<proto::Reply>& refusal);
    // The spool's reply: 250 once the message is durable, else a 4xx.
    void spooled(const proto::Reply& reply);
    // smtplb is stopping: no new attempts.
    void set_closing(bool closing) { closing_ = closing; }

    // The next action, or nothing when the transaction waits for an input.
    std::optional<Action> next();

    // --- What the session and the tracking log read ---
    Pool* pool() const { return pool_; }
    const proto::Path& sender() const { return sender_; }
    // The recipient being decided (CheckSpool asks about it).
    const std::optional<proto::Mailbox>& current_recipient() const { return new_rcpt_; }
    const proto::MailParameters& mail_parameters() const { return params_; }
    // Every recipient the client was told 250 for (the spool needs them).
    const std::vector<proto::Mailbox>& accepted() const { return accepted_; }
    // Their DSN parameters, one for each of accepted().
    const std::vector<proto::RcptParameters>& accepted_parameters() const {
        return accepted_params_;
    }
    // After a backend's 250 for the message: that backend did not announce
    // DSN, so the NOTIFY=SUCCESS recipients are owed an RFC 3461 §4.2
    // "relayed" notice (smtplb's to send).
    bool relayed_without_dsn() const { return relayed_without_dsn_; }
    const std::vector<AttemptRecord>& attempts() const { return attempts_; }
    const std::string& queue_id() const { return queue_id_; }
    // No backend can take the transaction: the spool does.
    bool spooling() const { return spooling_; }
    // The last answer was the generic "no mail server is available now".
    bool no_backend() const { return no_backend_; }
    // The last answer said no backend could take the transaction now: the
    // generic reply, or the last backend's deferral passed on (not one
    // about this recipient alone). The spool then waits for the pool.
    bool unavailable() const { return unavailable_; }
    // A backend of the pool was passed over at its max_connections, or at
    // a destination limit, since begin(): room there may take the transaction.
    bool held_by_limits() const { return held_by_limits_; }
    // A backend holds an open transaction for this client (the hold timer runs).
    bool holding() const { return holding_; }
    // Waiting for a result of its own actions, or actions not yet taken (an
    // input's last action leaves it not busy: the fuzzer checks this).
    bool busy() const {
        return waiting_ != Waiting::Input || taken_ < out_.size() || batch_next_ < batch_.size();
    }

  private:
    enum class Waiting {
        Input,           // the next client input
        Open,            // opened / open_failed
        MailReply,       // replied / broken: to MAIL
        EnvelopeReply,   // to RCPT number rcpt_index_ of the envelope being opened
        RcptReply,       // to a recipient added on the current connection
        DataReply,       // to DATA
        EarlyDataReply,  // to DATA, while the client still sends the body
        Body,            // body_done
        FinalReply,      // to the final "."
        SpoolCheck,      // spool_checked
        Spool,           // spooled
    };
    // What the current establish() is for.
    enum class Purpose { Recipient, Message };

    void push(Action action) { out_.push_back(std::move(action)); }
    // The next recipient of the batch: its actions, up to its Answer.
    void next_recipient();
    void send(proto::BackendSession::Step step, std::string line);
    void await(bool final_reply = false);
    void answer(const proto::Reply& reply);
    void release(Action::Release how);
    void record(const char* stage, const std::string& what);
    void report(std::size_t backend, LiveOutcome outcome, const std::string& reason,
                const proto::Reply* reply = nullptr);
    void report_reply(const char* stage, const proto::Reply& reply);
    bool may_try_again() const;
    void count_attempt();
    // The attempt did not count: a stale reused connection, a fresh retry.
    void uncount_attempt();
    bool stale(bool reused, bool refusal, bool protocol_error);

    // Opens the transaction on a backend, replaying the recipients accepted
    // so far and then new_rcpt_ (Purpose::Recipient), then for
    // Purpose::Message goes on to the message.
    void establish(Purpose purpose);
    void next_attempt();
    std::size_t envelope_size() const;
    // Sends the envelope's next RCPT (the replayed ones, then new_rcpt_).
    // To a backend with PIPELINING at most kMaxAhead are ahead of their
    // replies, one more after each: a long envelope replayed does not fill
    // both socket buffers while neither side reads.
    void send_envelope_rcpt();
    // The client's further pipelined recipients (batch_), sent ahead of
    // their turn to a backend with PIPELINING, until `room` are ahead; not
    // where destination limits decide per recipient before it is sent.
    void send_ahead(std::size_t room);
    void mail_reply(const proto::Reply& reply);
    void envelope_reply(const proto::Reply& reply);
    void envelope_refused(const proto::Reply& reply);
    void envelope_broken(const std::string& reason, bool protocol_error);
    void envelope_done();
    void no_backend_left();
    // Per-destination shaping (core/shaping.hpp): the recipient domains the
    // next backend must take; what the transaction holds given back; a
    // later recipient whose domain the held backend cannot take now.
    void envelope_domains(std::vector<std::string>& out) const;
    void drop_shaping();
    bool shaped_out(const proto::Mailbox& rcpt);
    void check_spool();
    void recipient_answer(const proto::Reply& reply);
    void rcpt_reply(const proto::Reply& reply);
    void rcpt_broken(const std::string& reason);
    void start_delivery();
    bool bdat_to_backend() const { return client_chunking_ && connection_.capabilities.chunking; }
    void data_reply(const proto::Reply& reply);
    void early_data_reply(const proto::Reply& reply);
    void final_reply(const proto::Reply& reply);
    void delivery_reply(const proto::Reply& reply);
    void delivery_failed(const char* stage, const std::string& reason);
    // The message may only go to a backend that offers 8BITMIME.
    bool needs_8bitmime() const;
    bool refuse_8bit() const;
    // A backend's 4xx about this message: the client hears the last one if
    // no backend takes the message.
    void deferred_by(const proto::Reply& reply);

    Pool* pool_ = nullptr;
    std::optional<base::IpAddress> client_;
    proto::Path sender_;
    proto::MailParameters params_;
    TransactionNeeds needs_;                  // of params_: which backends may take it
    std::vector<proto::Mailbox> recipients_;  // accepted by the current backend
    std::vector<proto::Mailbox> accepted_;    // told 250 (backend or spool)
    std::optional<proto::Mailbox> new_rcpt_;
    // DSN parameters, parallel to recipients_, accepted_ and new_rcpt_.
    std::vector<proto::RcptParameters> recipient_params_;
    std::vector<proto::RcptParameters> accepted_params_;
    proto::RcptParameters new_rcpt_params_;
    // recipients(): the batch, the next one to decide, and how many after
    // the current one were sent ahead on the current connection (their
    // replies follow in order; a Reset drains them first).
    std::vector<RecipientInput> batch_;
    std::size_t batch_next_ = 0;
    std::size_t sent_ahead_ = 0;
    bool relayed_without_dsn_ = false;
    std::vector<std::size_t> tried_;
    std::uint32_t attempts_made_ = 0;
    std::optional<base::Clock::TimePoint> first_failure_;
    std::vector<AttemptRecord> attempts_;
    std::string queue_id_;
    std::optional<proto::Reply> mail_refusal_;  // the backends refused the sender
    bool spooling_ = false;
    bool spools_ = false;
    bool no_backend_ = false;
    bool unavailable_ = false;
    bool held_by_limits_ = false;
    bool closing_ = false;
    // The last backend 4xx since the client's last input (MAIL, RCPT or
    // end of data): the reply when every backend deferred.
    std::optional<proto::Reply> last_deferral_;
    // Shaping: what is held on the backend chosen, why a backend was last
    // passed over in this establish(), and pick()'s list of domains.
    ShapingHold shaping_hold_;
    std::optional<ShapingBlock> shaping_block_;
    std::vector<std::string> shaping_domains_;

    // The connection being opened or used.
    bool connected_ = false;
    std::size_t backend_ = 0;
    OpenedConnection connection_;
    bool holding_ = false;          // transaction_started for backend_ (ended on release)
    bool data_sent_ = false;        // in DATA: it can only be finished or closed
    bool client_chunking_ = false;  // the client sent its message with BDAT
    bool attempt_counted_ = false;

    // The current establish().
    Purpose purpose_ = Purpose::Recipient;
    std::size_t rcpt_index_ = 0;     // the envelope's RCPT awaiting its reply
    std::size_t envelope_sent_ = 0;  // the envelope's RCPTs sent so far
    std::optional<proto::Reply> new_reply_;
    std::optional<proto::Reply> permanent_;  // a 5xx worth passing on if nobody accepts
    std::optional<proto::Reply> recipient_deferral_;
    int stale_retries_ = 0;
    int identity_retries_ = 0;
    bool fresh_next_ = false;
    // 8BITMIME (issue 25): backends chosen in this establish() and those of
    // them passed over for lacking 8BITMIME; eight_bit_only_: conversion is
    // off or failed for this message.
    std::size_t establish_tries_ = 0;
    std::size_t eight_bit_skips_ = 0;
    bool eight_bit_only_ = false;
    bool body_refused_8bit_ = false;

    // The current delivery.
    bool body_sent_ = false;
    // body_arriving(): the backend said 354 and takes the body as it comes,
    // or answered DATA otherwise (that answer counts at the end).
    bool streaming_ = false;
    std::optional<proto::Reply> early_data_reply_;
    base::Clock::TimePoint body_sent_at_{};

    Waiting waiting_ = Waiting::Input;
    // Actions not yet taken, from out_[taken_] on; emptied once all are
    // taken (a vector that keeps its capacity: no allocation per action).
    std::vector<Action> out_;
    std::size_t taken_ = 0;
};

}  // namespace smtplb::core
