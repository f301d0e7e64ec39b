#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/address.hpp"
#include "proto/command.hpp"
#include "proto/data_decoder.hpp"
#include "proto/reply.hpp"

namespace smtplb::proto {

// What EHLO offers that depends on the listener's configuration and its
// backends (issue 25, docs/esmtp.md "What a listener offers"): the one
// source of the session's decision on these keywords and their parameters.
// Read once per HELO/EHLO, so it may change with the pools' health between
// transactions, never inside one.
struct EhloOffer {
    std::uint64_t max_message_size = 0;  // 0: the settings' max_message_size alone
    bool smtputf8 = true;                // and the settings' advertise_smtputf8
    bool eightbitmime = true;
    // DSN (RFC 3461): RET, ENVID, NOTIFY and ORCPT are taken; without it they
    // are refused as Postfix refuses them ("501 5.7.1 DSN support is
    // disabled"). smtplb relays DSN itself, whatever the backends offer.
    bool dsn = false;
    // CHUNKING (RFC 3030): BDAT is offered and taken (DATA to backends
    // without it). Off, a BDAT is still framed by its count (its octets
    // discarded, never read as commands).
    bool chunking = true;
    bool requiretls = false;  // inside TLS only (RFC 8689 §4)
};

// Where a session reads the current offer (a listener, from its pools);
// must be cheap and safe to call from any event loop.
class EhloOfferSource {
  public:
    virtual ~EhloOfferSource() = default;
    virtual EhloOffer current() const = 0;
};

struct ServerSettings {
    std::string hostname = "localhost";
    std::size_t max_line_length = 512;  // command line including CRLF
    std::size_t max_data_line_length = 65536;
    std::uint64_t max_message_size = 50u << 20;
    std::size_t max_recipients = 100;
    std::size_t max_commands = 100000;  // per session
    std::size_t max_errors = 10;        // protocol errors before 421
    BareLineEndings bare_line_endings = BareLineEndings::Reject;
    NulBytes nul_bytes = NulBytes::Reject;
    bool advertise_smtputf8 = true;
    bool advertise_xclient = false;  // the built-in sink only
    // The attribute names the EHLO reply lists after XCLIENT.
    std::string xclient_attributes = "NAME ADDR PORT PROTO HELO LOGIN";
    // A command line longer than max_line_length: false refuses it (500
    // 5.5.2); true runs its first max_line_length bytes (not counting the
    // LF) as the command and skips the rest, as Postfix's smtpd does with
    // line_length_limit.
    bool truncate_long_lines = false;
    bool require_helo = true;
    bool ehlo_enabled = true;  // false: an SMTP-only server (the sink's --no-esmtp)
    // TLS on this listener: STARTTLS is offered until the session is in TLS.
    bool starttls = false;
    // MAIL before TLS is refused with 530 5.7.0 (RFC 3207 §4).
    bool require_tls = false;
    // AUTH PLAIN and LOGIN (RFC 4954), offered inside TLS only.
    bool auth = false;
    // Null: the fixed `offer` (the sink, tests).
    const EhloOfferSource* offer_source = nullptr;
    EhloOffer offer;
};

// What the caller must know or decide. Events marked "answer" wait for
// answer(); the session processes no further input until then, which keeps
// pipelined replies in order.
struct ServerEvent {
    enum class Kind {
        NeedInput,   // all input used; write output() and read more
        Close,       // write output() and close the connection
        Reset,       // transaction abandoned: RSET, HELO, or failed DATA (notification)
        Mail,        // answer: accept the sender?
        Rcpt,        // answer: accept this recipient?
        Data,        // answer: 354 to start the message, or a refusal (for
                     // a BDAT, `chunking`: the 354 is not sent; a chunk's 250 is)
        MessageEnd,  // answer: the message is complete (see data_outcome)
        Xclient,     // answer: 220 applies the attributes (sink only)
        StartTls,    // write output() (the 220), run the TLS handshake, then
                     // tls_started(); or close if it fails
        Auth,        // answer: 235 when login/password are right, 535 when not, 454
        // Recipients were deferred (defer()) and what follows is not another
        // recipient to take now: answer_deferred() each, in order, then next().
        Deferred,
    };
    Kind kind = Kind::NeedInput;
    Path path;                                                     // Mail, Rcpt
    MailParameters mail_params;                                    // Mail
    DataDecoder::Outcome data_outcome = DataDecoder::Outcome::Ok;  // MessageEnd
    std::uint64_t message_size = 0;                                // MessageEnd
    std::string argument;                                          // Xclient
    std::string login;           // Auth: the authentication identity
    std::string password;        // Auth: never to be logged
    std::string mechanism;       // Auth: PLAIN or LOGIN
    RcptParameters rcpt_params;  // Rcpt: its DSN parameters
    bool chunking = false;       // Data: the message comes in BDAT chunks
};

// The standard refusal for a message the decoder did not accept.
Reply data_outcome_reply(DataDecoder::Outcome outcome);

// The server side of one SMTP session, sans-I/O (DESIGN.md "proto").
class ServerSession {
  public:
    explicit ServerSession(const ServerSettings& settings);

    // Queues the 220 greeting; call once before the first next().
    void start();
    // Queues a 421 and ends the session (timeouts, shutdown, overload).
    void shutdown(const Reply& reply);
    void feed(std::string_view bytes);
    ServerEvent next();
    void answer(const Reply& reply);
    // The pending Rcpt is answered later (answer_deferred()), so that the
    // recipients a client pipelines can go to a backend together (RFC 2920).
    // Meanwhile next() goes on only to further recipients; replies stay in
    // order (anything said after a deferred one waits behind it).
    void defer();
    void answer_deferred(const Reply& reply);
    std::size_t deferred() const { return held_.size() - held_first_; }

    std::string& output() { return output_; }
    // Where message content goes during DATA; null discards it.
    void set_body_sink(BodySink* sink) { body_sink_ = sink; }

    // The TLS handshake succeeded (after StartTls, or before start() on an
    // implicit-TLS listener): RFC 3207 §4.2, everything learnt in plaintext
    // is forgotten and the client must say EHLO again.
    void tls_started();
    bool tls() const { return tls_; }
    // Whether EHLO lists XCLIENT, for servers whose XCLIENT authorisation
    // follows the current client (Postfix); initially advertise_xclient.
    void set_xclient_offered(bool offered) { xclient_offered_ = offered; }
    bool authenticated() const { return !login_.empty(); }
    const std::string& login() const { return login_; }

    const std::string& helo() const { return helo_; }
    bool esmtp() const { return esmtp_; }
    bool in_transaction() const { return mail_accepted_; }
    std::size_t accepted_recipients() const { return accepted_recipients_; }
    std::size_t buffered_input() const { return input_.size() - consumed_; }

  private:
    enum class Mode { Command, Data, Chunk, SkipLine, Handshake, Closed };
    // Each returns an event for the caller, or nothing to go on reading.
    std::optional<ServerEvent> run_line(std::string_view line);
    std::optional<ServerEvent> handle_line(std::string_view line);
    std::optional<ServerEvent> bdat(std::string_view argument);
    // A BDAT that is not taken: `reply`, and its chunk's octets discarded.
    std::optional<ServerEvent> refuse_chunk(int code, std::string_view enhanced,
                                            std::string_view text, bool count_error);
    std::optional<ServerEvent> chunk_input(std::string_view rest);
    void start_chunked_message(const Reply& answer);
    std::optional<ServerEvent> start_auth(std::string_view argument);
    std::optional<ServerEvent> auth_response(std::string_view line);
    std::optional<ServerEvent> auth_complete(std::string login, std::string password);
    std::optional<ServerEvent> error(int code, std::string_view enhanced, std::string_view text);
    void reply(int code, std::string_view enhanced, std::string_view text);
    void reset_transaction();
    void ehlo_reply(std::string_view name);
    void compact();
    // Where a reply goes: behind the last deferred recipient, if any.
    std::string& out() { return deferred() == 0 ? output_ : held_.back(); }
    // The next buffered line is a recipient that next() would hand out as a
    // Rcpt event, saying nothing itself.
    bool recipient_follows() const;
    // The message size limit: the settings' and the current offer's.
    std::uint64_t size_limit() const;
    // The offer source's, else the settings' fixed offer.
    EhloOffer current_offer() const;

    const ServerSettings& settings_;
    std::string input_;
    std::size_t consumed_ = 0;
    std::string output_;
    // One per deferred recipient, in order, from held_first_ on: what was
    // said after it. (A vector: empty, it costs an idle session nothing;
    // a deque allocates when made.)
    std::vector<std::string> held_;
    std::size_t held_first_ = 0;
    Mode mode_ = Mode::Command;
    std::optional<ServerEvent::Kind> pending_;
    std::optional<DataDecoder> decoder_;
    BodySink* body_sink_ = nullptr;

    std::string helo_;
    bool esmtp_ = false;
    bool mail_accepted_ = false;
    std::size_t accepted_recipients_ = 0;
    std::size_t recipients_seen_ = 0;
    std::size_t commands_ = 0;
    std::size_t errors_ = 0;
    bool data_pipelined_ = false;  // input followed DATA in the same group
    // BDAT: the chunk being read (its octets still to come), whether it is
    // the last one or is discarded; the message's chunks so far.
    std::uint64_t chunk_left_ = 0;
    bool chunk_last_ = false;
    bool chunk_discarded_ = false;
    bool chunk_starting_ = false;  // the Data event of a BDAT waits for its answer
    bool chunk_failed_ = false;    // the MessageEnd of a failed chunk before LAST
    bool bdat_active_ = false;     // this transaction's message comes in chunks
    bool bdat_error_ = false;      // a chunk failed: BDAT refused until MAIL or RSET
    std::uint64_t bdat_received_ = 0;
    bool tls_ = false;
    bool xclient_offered_ = false;
    EhloOffer offer_;             // as of the last HELO/EHLO (or the session's start)
    std::string truncated_line_;  // truncate_long_lines: waits for its LF
    // A SASL exchange in progress: the next line is a response, not a command.
    enum class AuthStep { None, PlainResponse, LoginUser, LoginPassword };
    AuthStep auth_step_ = AuthStep::None;
    std::string auth_mechanism_;
    std::string auth_user_;      // LOGIN: the user name given first
    std::string pending_login_;  // until the verdict
    std::string login_;          // authenticated as
};

}  // namespace smtplb::proto
