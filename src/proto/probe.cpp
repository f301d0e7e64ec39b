#include "proto/probe.hpp"

#include <cctype>

namespace smtplb::proto {

const char* to_string(ProbeDepth depth) {
    switch (depth) {
        case ProbeDepth::Connect:
            return "connect";
        case ProbeDepth::Banner:
            return "banner";
        case ProbeDepth::Ehlo:
            return "ehlo";
        case ProbeDepth::Starttls:
            return "starttls";
        case ProbeDepth::Mail:
            return "mail";
        case ProbeDepth::Rcpt:
            return "rcpt";
    }
    return "?";
}

const char* to_string(ProbeVerdict verdict) {
    switch (verdict) {
        case ProbeVerdict::Healthy:
            return "healthy";
        case ProbeVerdict::Busy:
            return "busy";
        case ProbeVerdict::Down:
            return "down";
        case ProbeVerdict::Misconfigured:
            return "misconfigured";
    }
    return "?";
}

namespace {
bool announces(const Reply& ehlo, std::string_view keyword) {
    for (std::size_t i = 1; i < ehlo.lines.size(); ++i) {
        std::string word = ehlo.lines[i].substr(0, ehlo.lines[i].find(' '));
        for (auto& c : word)
            c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (word == keyword) return true;
    }
    return false;
}
}  // namespace

ProbeSession::ProbeSession(ProbePlan plan) : plan_(std::move(plan)) {
    // Probing STARTTLS is the point of that depth.
    if (plan_.depth == ProbeDepth::Starttls) plan_.starttls = plan_.tls_required = true;
}

std::vector<ProbeSession::Event> ProbeSession::take_events() {
    std::vector<Event> out;
    out.swap(events_);
    return out;
}

void ProbeSession::note(std::string text) {
    events_.push_back({Event::Kind::Note, std::move(text)});
}

const char* ProbeSession::phase_name() const {
    switch (phase_) {
        case Phase::Connecting:
            return "connect";
        case Phase::Banner:
            return "banner";
        case Phase::Ehlo:
            return "ehlo";
        case Phase::Helo:
            return "helo";
        case Phase::StartTls:
        case Phase::Handshake:
            return "starttls";
        case Phase::Auth:
            return "auth";
        case Phase::Mail:
            return "mail";
        case Phase::Rcpt:
            return "rcpt";
        case Phase::Rset:
            return "rset";
        case Phase::Quit:
            return "quit";
        case Phase::Done:
            return "done";
    }
    return "?";
}

void ProbeSession::connected() {
    if (phase_ != Phase::Connecting) return;
    note("connected");
    if (plan_.depth == ProbeDepth::Connect) {
        decide(ProbeVerdict::Healthy, "connect", std::nullopt, "ok");
        phase_ = Phase::Done;  // a connect probe does not wait for the banner
        return;
    }
    if (!plan_.preamble.empty()) {
        output_ += plan_.preamble;
        note("sent a PROXY header of " + std::to_string(plan_.preamble.size()) + " bytes");
    }
    phase_ = Phase::Banner;
}

void ProbeSession::connect_failed(const std::string& reason) {
    if (done()) return;
    decide(ProbeVerdict::Down, "connect", std::nullopt, "connection failed: " + reason);
    phase_ = Phase::Done;
}

void ProbeSession::closed() {
    if (done()) return;
    if (!result_)
        decide(ProbeVerdict::Down, phase_name(), std::nullopt,
               std::string("connection closed waiting for the ") + phase_name() + " reply");
    else
        note("connection closed");
    phase_ = Phase::Done;
}

void ProbeSession::timed_out() {
    if (done()) return;
    if (!result_)
        decide(ProbeVerdict::Down, phase_name(), std::nullopt,
               std::string("timeout waiting for the ") + phase_name() + " reply");
    else
        note(std::string("timeout waiting for the ") + phase_name() + " reply");
    phase_ = Phase::Done;
}

void ProbeSession::feed(std::string_view bytes) {
    if (done()) return;
    parser_.feed(bytes);
    while (!done()) {
        auto reply = parser_.next();
        if (!reply) break;
        std::string wire = reply->wire();
        for (std::size_t start = 0; start < wire.size();) {
            auto end = wire.find("\r\n", start);
            events_.push_back({Event::Kind::Received, wire.substr(start, end - start)});
            start = end + 2;
        }
        handle(*reply);
    }
    if (!done() && parser_.error()) {
        if (!result_)
            decide(ProbeVerdict::Down, phase_name(), std::nullopt,
                   "not SMTP: " + parser_.error_text());
        else
            note("not SMTP: " + parser_.error_text());
        phase_ = Phase::Done;  // no point in QUIT to something that is not SMTP
    }
}

void ProbeSession::decide(ProbeVerdict verdict, const char* step, std::optional<Reply> reply,
                          std::string reason) {
    if (result_) return;
    result_ =
        ProbeResult{verdict, step, std::move(reply), std::move(reason), warning_, capabilities_};
    note(std::string("verdict: ") + to_string(verdict) + " at " + step + " (" + result_->reason +
         ")");
}

void ProbeSession::send(Phase next, const std::string& line) {
    events_.push_back({Event::Kind::Sent, line});
    output_ += line;
    output_ += "\r\n";
    phase_ = next;
}

void ProbeSession::teardown() {
    if (teardown_sent_) {
        phase_ = Phase::Rset;  // their replies are still to come
        return;
    }
    if (mail_sent_) {
        mail_sent_ = false;
        send(Phase::Rset, "RSET");
        if (pipelining_) {
            send(Phase::Rset, "QUIT");
            quit_sent_ = true;
        }
    } else {
        send(Phase::Quit, "QUIT");
    }
}

std::string certificate_warning(long long seconds_left) {
    constexpr long long kDay = 86400;
    if (seconds_left < 0)
        return "certificate expired " + std::to_string(-seconds_left / kDay) + " days ago";
    if (seconds_left < 14 * kDay)
        return "certificate expires in " + std::to_string(seconds_left / kDay) + " days";
    return {};
}

void ProbeSession::tls_started(std::string warning) {
    if (done()) return;
    tls_done_ = true;
    warning_ = std::move(warning);
    note("TLS started" + (warning_.empty() ? std::string() : ": " + warning_));
    if (phase_ != Phase::Handshake) return;  // implicit TLS: before the banner
    pipelining_ = false;                     // learnt again from the EHLO inside TLS
    capabilities_.reset();
    if (plan_.depth == ProbeDepth::Starttls) {
        decide(ProbeVerdict::Healthy, "starttls", std::nullopt, "ok");
        send(Phase::Quit, "QUIT");
        return;
    }
    send(Phase::Ehlo, "EHLO " + plan_.helo);
}

void ProbeSession::tls_failed(const std::string& reason) {
    if (done()) return;
    decide(ProbeVerdict::Down, phase_ == Phase::Handshake ? "starttls" : "tls", std::nullopt,
           "TLS handshake failed: " + reason);
    phase_ = Phase::Done;
}

void ProbeSession::passed(const char* step, const Reply& reply) {
    auto depth = plan_.depth;
    if ((phase_ == Phase::Ehlo || phase_ == Phase::Helo) && plan_.starttls && !tls_done_) {
        if (phase_ == Phase::Ehlo && starttls_offered_) {
            send(Phase::StartTls, "STARTTLS");
            return;
        }
        if (plan_.tls_required) {
            decide(ProbeVerdict::Down, step, reply, "STARTTLS is not offered");
            teardown();
            return;
        }
        // Opportunistic: live traffic goes in plaintext too; probe the same.
    }
    if (phase_ == Phase::StartTls) {
        if (parser_.buffered() > 0) {
            // RFC 3207 §4.2: anything behind the 220 is injected plaintext.
            decide(ProbeVerdict::Down, step, reply, "reply injected after STARTTLS");
            phase_ = Phase::Done;
            return;
        }
        phase_ = Phase::Handshake;
        return;
    }
    if ((phase_ == Phase::Ehlo || phase_ == Phase::Helo) && start_auth()) return;
    bool last = (phase_ == Phase::Banner && depth == ProbeDepth::Banner) ||
                ((phase_ == Phase::Ehlo || phase_ == Phase::Helo) &&
                 (depth == ProbeDepth::Ehlo || depth == ProbeDepth::Starttls)) ||
                (phase_ == Phase::Mail && depth == ProbeDepth::Mail) || phase_ == Phase::Rcpt;
    if (last) {
        decide(ProbeVerdict::Healthy, step, reply, "ok");
        teardown();
        return;
    }
    switch (phase_) {
        case Phase::Banner:
            send(Phase::Ehlo, "EHLO " + plan_.helo);
            break;
        case Phase::Ehlo:
        case Phase::Helo:
            mail_sent_ = true;
            send(Phase::Mail, "MAIL FROM:<" + plan_.mail_from + ">");
            if (pipelining_) {
                if (plan_.depth == ProbeDepth::Rcpt) {
                    send(Phase::Mail, "RCPT TO:<" + plan_.rcpt_to + ">");
                    rcpt_sent_ = true;
                }
                send(Phase::Mail, "RSET");
                send(Phase::Mail, "QUIT");
                teardown_sent_ = quit_sent_ = true;
            }
            break;
        case Phase::Mail:
            if (rcpt_sent_)
                phase_ = Phase::Rcpt;
            else
                send(Phase::Rcpt, "RCPT TO:<" + plan_.rcpt_to + ">");
            break;
        default:
            break;
    }
}

void ProbeSession::handle(const Reply& reply) {
    if (ignore_replies_ > 0) {
        --ignore_replies_;
        return;
    }
    switch (phase_) {
        case Phase::Rset:
            if (quit_sent_)
                phase_ = Phase::Quit;
            else
                send(Phase::Quit, "QUIT");
            return;
        case Phase::Quit:
            phase_ = Phase::Done;
            return;
        case Phase::Connecting:
        case Phase::Done:
            return;
        default:
            break;
    }
    if (phase_ == Phase::Auth) {
        handle_auth(reply);
        return;
    }
    const char* step = phase_name();
    std::string what = std::string(step) + " answered " + std::to_string(reply.code);
    switch (reply.klass()) {
        case 2:
            if (phase_ == Phase::Ehlo) {
                pipelining_ = announces(reply, "PIPELINING");
                starttls_offered_ = announces(reply, "STARTTLS");
                // Before a STARTTLS the offer may differ: only the last EHLO counts.
                capabilities_ = Capabilities::from_ehlo(reply);
            }
            passed(step, reply);
            return;
        case 4:
            decide(ProbeVerdict::Busy, step, reply, what + " (back pressure)");
            break;
        case 5:
            if (phase_ == Phase::Ehlo) {
                // An old server without ESMTP: HELO is as good a step.
                note("EHLO refused; trying HELO");
                send(Phase::Helo, "HELO " + plan_.helo);
                return;
            }
            decide(ProbeVerdict::Down, step, reply, what);
            break;
        default:
            decide(ProbeVerdict::Down, step, reply, what + ", which is not a reply to this step");
            break;
    }
    // The RCPT sent with MAIL still has its reply coming (a 503, most likely).
    if (phase_ == Phase::Mail && rcpt_sent_) ignore_replies_ = 1;
    if (phase_ == Phase::Banner) {
        // RFC 5321 §3.1: after a 554 (or 421) greeting the client should QUIT.
        send(Phase::Quit, "QUIT");
        return;
    }
    teardown();
}

bool ProbeSession::start_auth() {
    if (!plan_.auth || auth_done_ || auth_) return false;
    if (plan_.depth != ProbeDepth::Ehlo && plan_.depth != ProbeDepth::Mail &&
        plan_.depth != ProbeDepth::Rcpt)
        return false;
    if (!tls_done_ && !plan_.auth_plaintext) {
        // Opportunistic TLS that did not happen: the password stays here.
        decide(ProbeVerdict::Misconfigured, "auth", std::nullopt,
               "AUTH needs TLS and STARTTLS did not happen: the password is not sent");
        teardown();
        return true;
    }
    // After HELO (no extensions) nothing is offered: start() says so.
    auth_ = std::make_unique<SmarthostAuth>(*plan_.auth, capabilities_.value_or(Capabilities{}));
    phase_ = Phase::Auth;
    send_auth(auth_->start());
    return true;
}

void ProbeSession::send_auth(const SmarthostAuth::Step& step) {
    using Status = SmarthostAuth::Status;
    switch (step.status) {
        case Status::Send:
            // The transcript shows the command, never the credentials.
            events_.push_back({Event::Kind::Sent, auth_->redacted()});
            output_ += step.line;
            return;
        case Status::Authenticated:
            auth_done_ = true;
            phase_ = Phase::Ehlo;  // go on as after the EHLO
            passed("auth", *step.reply);
            return;
        case Status::Deferred:
            decide(ProbeVerdict::Busy, "auth", step.reply, step.reason);
            break;
        case Status::Misconfigured:
            decide(ProbeVerdict::Misconfigured, "auth", step.reply, step.reason);
            break;
    }
    teardown();
}

void ProbeSession::handle_auth(const Reply& reply) {
    send_auth(auth_->reply(reply));
}

}  // namespace smtplb::proto
