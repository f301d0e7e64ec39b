#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/capabilities.hpp"
#include "proto/reply.hpp"
#include "proto/reply_parser.hpp"
#include "proto/smarthost_auth.hpp"

namespace smtplb::proto {

// How far a health probe goes into an SMTP conversation.
enum class ProbeDepth { Connect, Banner, Ehlo, Starttls, Mail, Rcpt };
const char* to_string(ProbeDepth depth);

// What a probe saw, as the pool uses it: 2xx at every step is healthy, a 4xx
// at any step is back pressure (busy), a 5xx, garbage, a timeout or a closed
// connection is down. Misconfigured: the backend refuses smtplb's own AUTH
// (pool.backend.auth), which no wait will change.
enum class ProbeVerdict { Healthy, Busy, Down, Misconfigured };
const char* to_string(ProbeVerdict verdict);

struct ProbePlan {
    ProbeDepth depth = ProbeDepth::Mail;
    std::string helo = "localhost";
    std::string mail_from;  // without <>; empty is the null sender
    std::string rcpt_to;
    // STARTTLS after EHLO: at depth "starttls", and deeper on pools whose
    // live traffic uses TLS. With tls_required, a backend that does not
    // offer it, or whose handshake fails, is down.
    bool starttls = false;
    bool tls_required = false;
    // Sent as soon as the connection is up, before the banner is read: a
    // PROXY header, for backends that expect one (smtplb audit).
    std::string preamble;
    // smtplb's account on the backend: AUTH after the (last) EHLO at depth
    // ehlo and deeper, only inside TLS unless auth_plaintext.
    std::optional<AuthCredentials> auth;
    bool auth_plaintext = false;
};

// "certificate expires in 3 days" when fewer than 14 days are left (or it
// has expired), else "": a warning, not a verdict, since it still works.
std::string certificate_warning(long long seconds_left);

struct ProbeResult {
    ProbeVerdict verdict = ProbeVerdict::Down;
    std::string step;            // connect, banner, ehlo, helo, mail, rcpt
    std::optional<Reply> reply;  // the reply that decided, when one did
    std::string reason;          // for logs: what went wrong, or "ok"
    std::string warning;         // healthy, but not for long (certificate expiry)
    // What the EHLO announced, when the probe got that far (in TLS: the
    // EHLO inside it): the pool keeps it as the backend's capabilities.
    std::optional<Capabilities> capabilities;
};

// One health probe as declarative send/expect steps, sans-I/O: the caller
// connects, writes output(), feeds what it reads and reports closes and
// timeouts. After the verdict the probe ends politely (RSET when a MAIL was
// sent, then QUIT) so backends log no aborted sessions; the teardown never
// changes the verdict. Lock-step on purpose: one command, one reply, so the
// transcript reads like a telnet session, except where the backend announces
// PIPELINING (RFC 2920): then MAIL, RCPT, RSET and QUIT go out in one
// group after EHLO, which saves three of six exchanges per probe. Replies
// are still judged one by one, in order.
class ProbeSession {
  public:
    struct Event {
        enum class Kind { Sent, Received, Note };
        Kind kind;
        std::string text;  // one line, without CRLF
    };

    explicit ProbeSession(ProbePlan plan);

    void connected();
    void connect_failed(const std::string& reason);
    void feed(std::string_view bytes);
    void closed();     // the peer closed or the read failed
    void timed_out();  // the caller's deadline passed

    std::string& output() { return output_; }
    // STARTTLS was accepted: write nothing more, run the TLS handshake, then
    // call tls_started() (with certificate_warning()'s text, if any) or
    // tls_failed(). For implicit TLS the caller calls them after connected().
    bool needs_tls() const { return phase_ == Phase::Handshake; }
    void tls_started(std::string warning);
    void tls_failed(const std::string& reason);
    // Nothing more to send or to wait for: the caller closes the socket.
    bool done() const { return phase_ == Phase::Done; }
    const std::optional<ProbeResult>& result() const { return result_; }
    // Events since the last call, for transcripts and logs.
    std::vector<Event> take_events();

  private:
    enum class Phase {
        Connecting,
        Banner,
        Ehlo,
        Helo,
        StartTls,
        Handshake,
        Auth,
        Mail,
        Rcpt,
        Rset,
        Quit,
        Done
    };

    void handle(const Reply& reply);
    void passed(const char* step, const Reply& reply);  // this step answered 2xx
    void decide(ProbeVerdict verdict, const char* step, std::optional<Reply> reply,
                std::string reason);
    void send(Phase next, const std::string& line);
    // AUTH after the EHLO's 2xx; false when there is none to do.
    bool start_auth();
    void handle_auth(const Reply& reply);
    void send_auth(const SmarthostAuth::Step& step);
    void teardown();
    void note(std::string text);
    const char* phase_name() const;

    ProbePlan plan_;
    Phase phase_ = Phase::Connecting;
    ReplyParser parser_;
    std::string output_;
    std::optional<ProbeResult> result_;
    bool mail_sent_ = false;
    bool pipelining_ = false;  // the backend announced PIPELINING
    bool starttls_offered_ = false;
    bool tls_done_ = false;
    std::string warning_;
    std::optional<Capabilities> capabilities_;  // from the last EHLO's 250
    bool rcpt_sent_ = false;                    // RCPT went out together with MAIL
    bool quit_sent_ = false;                    // QUIT went out together with RSET
    bool teardown_sent_ = false;                // RSET and QUIT went out with MAIL
    int ignore_replies_ = 0;                    // due to commands sent before the verdict
    std::vector<Event> events_;
    std::unique_ptr<SmarthostAuth> auth_;  // once AUTH started
    bool auth_done_ = false;
};

}  // namespace smtplb::proto
