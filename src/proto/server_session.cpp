#include "proto/server_session.hpp"

#include <algorithm>
#include <utility>

#include "base/base64.hpp"
#include "base/text.hpp"
#include "proto/xtext.hpp"

namespace smtplb::proto {

using Kind = ServerEvent::Kind;

Reply data_outcome_reply(DataDecoder::Outcome outcome) {
    switch (outcome) {
        case DataDecoder::Outcome::TooBig:
            return Reply::make(552, "5.3.4", "Message size exceeds fixed limit");
        case DataDecoder::Outcome::BareLineEnding:
            return Reply::make(550, "5.6.11", "Message contains bare CR or LF; use CRLF");
        case DataDecoder::Outcome::NulByte:
            return Reply::make(550, "5.6.0", "Message contains NUL characters");
        case DataDecoder::Outcome::LineTooLong:
            return Reply::make(550, "5.6.0", "Message has a line that is too long");
        case DataDecoder::Outcome::Ok:
            break;
    }
    return Reply::make(250, "2.0.0", "Ok");
}

ServerSession::ServerSession(const ServerSettings& settings)
    : settings_(settings), xclient_offered_(settings.advertise_xclient), offer_(current_offer()) {}

EhloOffer ServerSession::current_offer() const {
    return settings_.offer_source ? settings_.offer_source->current() : settings_.offer;
}

void ServerSession::start() {
    reply(220, "", settings_.hostname + " ESMTP smtplb");
}

void ServerSession::shutdown(const Reply& r) {
    if (mode_ == Mode::Closed) return;
    held_.clear();  // never answered: the session ends here
    held_first_ = 0;
    r.append_wire(output_);
    mode_ = Mode::Closed;
}

void ServerSession::feed(std::string_view bytes) {
    // Inside a message with nothing buffered, the decoder reads the
    // caller's bytes where they are (a message body is most of the input,
    // and copying it here first was one copy of every message); only what
    // follows the end of data is kept.
    if (mode_ == Mode::Data && !pending_ && consumed_ == input_.size() && decoder_ &&
        !decoder_->done()) {
        bytes.remove_prefix(decoder_->feed(bytes));
    }
    // The same for a BDAT chunk: its octets go where they are, up to its count.
    if (mode_ == Mode::Chunk && !pending_ && consumed_ == input_.size() && chunk_left_ > 0) {
        auto take = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_left_, bytes.size()));
        if (!chunk_discarded_) {
            decoder_->feed(bytes.substr(0, take));
            bdat_received_ += take;
        }
        chunk_left_ -= take;
        bytes.remove_prefix(take);
    }
    input_.append(bytes);
}

void ServerSession::reply(int code, std::string_view enhanced, std::string_view text) {
    Reply::make(code, enhanced, text).append_wire(out());
}

void ServerSession::compact() {
    if (consumed_ == input_.size()) {
        input_.clear();
        // An idle session should not keep a large buffer from a big message.
        if (input_.capacity() > 4096) input_.shrink_to_fit();
    } else if (consumed_ > 0) {
        input_.erase(0, consumed_);
    }
    consumed_ = 0;
}

void ServerSession::reset_transaction() {
    mail_accepted_ = false;
    accepted_recipients_ = 0;
    recipients_seen_ = 0;
    if (bdat_active_) decoder_.reset();
    bdat_active_ = false;
    bdat_error_ = false;
    bdat_received_ = 0;
}

std::optional<ServerEvent> ServerSession::error(int code, std::string_view enhanced,
                                                std::string_view text) {
    reply(code, enhanced, text);
    if (++errors_ >= settings_.max_errors) {
        reply(421, "4.7.0", settings_.hostname + " Error: too many errors");
        mode_ = Mode::Closed;
        return ServerEvent{Kind::Close};
    }
    return std::nullopt;
}

ServerEvent ServerSession::next() {
    while (!pending_) {
        if (deferred() > 0 && !recipient_follows()) return ServerEvent{Kind::Deferred};
        std::string_view rest(input_.data() + consumed_, input_.size() - consumed_);
        switch (mode_) {
            case Mode::Closed:
            case Mode::Handshake:  // a caller that did not handshake must not read on
                return ServerEvent{Kind::Close};
            case Mode::Data: {
                consumed_ += decoder_->feed(rest);
                if (!decoder_->done()) {
                    compact();
                    return ServerEvent{Kind::NeedInput};
                }
                mode_ = Mode::Command;
                ServerEvent ev{Kind::MessageEnd};
                ev.data_outcome = decoder_->outcome();
                ev.message_size = decoder_->size();
                decoder_.reset();
                pending_ = Kind::MessageEnd;
                return ev;
            }
            case Mode::Chunk:
                if (auto ev = chunk_input(rest)) return *ev;
                if (mode_ == Mode::Chunk) {
                    compact();
                    return ServerEvent{Kind::NeedInput};
                }
                break;
            case Mode::SkipLine: {
                auto lf = rest.find('\n');
                if (lf == std::string_view::npos) {
                    consumed_ = input_.size();
                    compact();
                    return ServerEvent{Kind::NeedInput};
                }
                consumed_ += lf + 1;
                mode_ = Mode::Command;
                if (!truncated_line_.empty()) {
                    // The long line has ended: now its first part runs.
                    std::string line = std::move(truncated_line_);
                    truncated_line_.clear();
                    if (auto ev = run_line(line)) return *ev;
                }
                break;
            }
            case Mode::Command: {
                auto lf = rest.find('\n');
                // RFC 4954 §4: SASL responses may be up to 12288 octets.
                std::size_t max_line =
                    auth_step_ == AuthStep::None
                        ? settings_.max_line_length
                        : std::max<std::size_t>(settings_.max_line_length, 12288);
                // Postfix's way: a line is what comes before its LF, cut to
                // max_line bytes; one byte more must be seen to know.
                const bool truncate = settings_.truncate_long_lines && auth_step_ == AuthStep::None;
                if (lf == std::string_view::npos && rest.size() < max_line + (truncate ? 1 : 0)) {
                    compact();
                    return ServerEvent{Kind::NeedInput};
                }
                if (truncate && lf == std::string_view::npos) {
                    // Runs once the rest of the line has been skipped.
                    truncated_line_.assign(rest.substr(0, max_line));
                    consumed_ = input_.size();
                    mode_ = Mode::SkipLine;
                    break;
                }
                if (!truncate && (lf == std::string_view::npos || lf + 1 > max_line)) {
                    auth_step_ = AuthStep::None;
                    // Drop the overlong line up to its end, wherever that is.
                    consumed_ += lf == std::string_view::npos ? rest.size() : lf + 1;
                    if (lf == std::string_view::npos) mode_ = Mode::SkipLine;
                    if (auto ev = error(500, "5.5.2", "Error: line too long")) return *ev;
                    break;
                }
                std::string_view line = rest.substr(0, std::min(lf, max_line));
                consumed_ += lf + 1;
                if (auto ev = run_line(line)) return *ev;
                break;
            }
        }
    }
    // Called again while an answer is owed: nothing can be processed.
    return ServerEvent{Kind::NeedInput};
}

std::optional<ServerEvent> ServerSession::run_line(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (++commands_ > settings_.max_commands) {
        reply(421, "4.7.0", settings_.hostname + " Error: too many commands");
        mode_ = Mode::Closed;
        return ServerEvent{Kind::Close};
    }
    return auth_step_ == AuthStep::None ? handle_line(line) : auth_response(line);
}

std::uint64_t ServerSession::size_limit() const {
    auto limit = settings_.max_message_size;
    if (offer_.max_message_size > 0 && (limit == 0 || offer_.max_message_size < limit))
        limit = offer_.max_message_size;
    return limit;
}

void ServerSession::ehlo_reply(std::string_view name) {
    Reply r;
    r.code = 250;
    r.lines.push_back(settings_.hostname);
    r.lines.push_back("PIPELINING");
    r.lines.push_back("SIZE " + std::to_string(size_limit()));
    if (offer_.eightbitmime) r.lines.push_back("8BITMIME");
    r.lines.push_back("ENHANCEDSTATUSCODES");
    if (settings_.advertise_smtputf8 && offer_.smtputf8) r.lines.push_back("SMTPUTF8");
    if (offer_.dsn) r.lines.push_back("DSN");
    if (offer_.chunking) r.lines.push_back("CHUNKING");
    if (offer_.requiretls && tls_) r.lines.push_back("REQUIRETLS");
    if (settings_.advertise_xclient && xclient_offered_)
        r.lines.push_back("XCLIENT " + settings_.xclient_attributes);
    if (settings_.starttls && !tls_) r.lines.push_back("STARTTLS");
    if (settings_.auth && tls_) r.lines.push_back("AUTH PLAIN LOGIN");
    r.append_wire(out());
}

std::optional<ServerEvent> ServerSession::handle_line(std::string_view line) {
    if (line.find('\0') != std::string_view::npos)
        return error(500, "5.5.2", "Error: NUL character in command");
    Command cmd = parse_command(line);
    if (!cmd.spec) return error(500, "5.5.2", "Error: command not recognized");
    if (cmd.spec->needs_helo && settings_.require_helo && helo_.empty())
        return error(503, "5.5.1", "Error: send HELO/EHLO first");

    switch (cmd.spec->verb) {
        case Verb::Helo:
        case Verb::Ehlo: {
            if (cmd.argument.empty())
                return error(501, "5.5.4",
                             cmd.spec->verb == Verb::Ehlo ? "Syntax: EHLO hostname"
                                                          : "Syntax: HELO hostname");
            if (cmd.spec->verb == Verb::Ehlo && !settings_.ehlo_enabled)
                return error(502, "5.5.1", "Error: command not implemented");
            bool had_transaction = mail_accepted_;
            reset_transaction();
            helo_ = std::string(cmd.argument);
            esmtp_ = cmd.spec->verb == Verb::Ehlo;
            offer_ = current_offer();
            if (esmtp_)
                ehlo_reply(cmd.argument);
            else
                reply(250, "", settings_.hostname);
            if (had_transaction) return ServerEvent{Kind::Reset};
            return std::nullopt;
        }
        case Verb::Mail: {
            if (mail_accepted_) return error(503, "5.5.1", "Error: nested MAIL command");
            if (settings_.require_tls && !tls_)
                return error(530, "5.7.0", "Must issue a STARTTLS command first");
            MailArgument arg;
            if (auto err = parse_mail_argument(cmd.argument, arg, offer_.dsn))
                return error(err->code, err->enhanced, err->text);
            if (arg.params.smtputf8 && !settings_.advertise_smtputf8)
                return error(555, "5.5.4", "SMTPUTF8 is not supported");
            // RFC 4954 §5: accepted on every listener, as Postfix does even
            // with SASL off; the authenticated login wins over the client's claim.
            if (arg.params.auth && !login_.empty()) arg.params.auth = xtext_encode(login_);
            // Not offered outside TLS (RFC 8689 §4): an unknown parameter there.
            if (arg.params.requiretls && !tls_) return error(555, "5.5.4", "Unsupported parameter");
            if (arg.params.size && *arg.params.size > size_limit()) {
                reply(552, "5.3.4", "Message size exceeds fixed limit");
                return std::nullopt;
            }
            ServerEvent ev{Kind::Mail};
            ev.path = std::move(arg.path);
            ev.mail_params = arg.params;
            pending_ = Kind::Mail;
            return ev;
        }
        case Verb::Rcpt: {
            if (!mail_accepted_) return error(503, "5.5.1", "Error: need MAIL command");
            if (bdat_active_) return error(503, "5.5.1", "Error: RCPT after BDAT");
            RcptArgument arg;
            if (auto err = parse_rcpt_argument(cmd.argument, arg, offer_.dsn))
                return error(err->code, err->enhanced, err->text);
            if (recipients_seen_ >= settings_.max_recipients) {
                reply(452, "4.5.3", "Error: too many recipients");
                return std::nullopt;
            }
            ServerEvent ev{Kind::Rcpt};
            ev.path = std::move(arg.path);
            ev.rcpt_params = std::move(arg.params);
            pending_ = Kind::Rcpt;
            return ev;
        }
        case Verb::Data:
            if (!cmd.argument.empty()) return error(501, "5.5.4", "Syntax: DATA");
            if (!mail_accepted_) return error(503, "5.5.1", "Error: need RCPT command");
            if (bdat_active_) return error(503, "5.5.1", "Error: DATA after BDAT");
            if (accepted_recipients_ == 0) {
                reply(554, "5.5.1", "Error: no valid recipients");
                // Whatever was pipelined behind a refused DATA is message
                // text; never run it as commands.
                consumed_ = input_.size();
                return std::nullopt;
            }
            data_pipelined_ = buffered_input() > 0;
            pending_ = Kind::Data;
            return ServerEvent{Kind::Data};
        case Verb::Bdat:
            return bdat(cmd.argument);
        case Verb::Rset: {
            bool had_transaction = mail_accepted_;
            reset_transaction();
            reply(250, "2.0.0", "Ok");
            if (had_transaction) return ServerEvent{Kind::Reset};
            return std::nullopt;
        }
        case Verb::Noop:
            reply(250, "2.0.0", "Ok");
            return std::nullopt;
        case Verb::Quit:
            reply(221, "2.0.0", "Bye");
            mode_ = Mode::Closed;
            return ServerEvent{Kind::Close};
        case Verb::Vrfy:
            reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery");
            return std::nullopt;
        case Verb::Help:
            reply(214, "2.0.0", "See RFC 5321");
            return std::nullopt;
        case Verb::StartTls:
            if (!settings_.starttls) break;
            if (tls_) return error(503, "5.5.1", "Error: TLS already active");
            if (!cmd.argument.empty()) return error(501, "5.5.4", "Syntax: STARTTLS");
            if (mail_accepted_) return error(503, "5.5.1", "Error: MAIL transaction in progress");
            reply(220, "2.0.0", "Ready to start TLS");
            // RFC 3207 §4.2 / CVE-2011-0411: plaintext pipelined behind
            // STARTTLS must never be run as commands inside the TLS session.
            consumed_ = input_.size();
            compact();
            mode_ = Mode::Handshake;  // until tls_started(); nothing is read meanwhile
            return ServerEvent{Kind::StartTls};
        case Verb::Auth:
            if (!settings_.auth) break;
            if (!tls_)
                return error(538, "5.7.11",
                             "Encryption required for requested authentication mechanism");
            if (!login_.empty()) return error(503, "5.5.1", "Error: already authenticated");
            if (mail_accepted_) return error(503, "5.5.1", "Error: MAIL transaction in progress");
            return start_auth(cmd.argument);
        case Verb::Xclient:
            if (!settings_.advertise_xclient) break;
            if (mail_accepted_) return error(503, "5.5.1", "Error: MAIL transaction in progress");
            pending_ = Kind::Xclient;
            return ServerEvent{Kind::Xclient, {}, {}, {}, 0, std::string(cmd.argument)};
        default:
            break;
    }
    return error(502, "5.5.1", "Error: command not implemented");
}

std::optional<ServerEvent> ServerSession::start_auth(std::string_view argument) {
    auto space = argument.find(' ');
    auto mechanism = base::to_lower(std::string(argument.substr(0, space)));
    std::string_view initial =
        space == std::string_view::npos ? std::string_view() : argument.substr(space + 1);
    bool has_initial = space != std::string_view::npos;
    if (mechanism == "plain") {
        auth_mechanism_ = "PLAIN";
        auth_step_ = AuthStep::PlainResponse;
        if (has_initial) return auth_response(initial);
        reply(334, "", "");
        return std::nullopt;
    }
    if (mechanism == "login") {
        auth_mechanism_ = "LOGIN";
        auth_step_ = AuthStep::LoginUser;
        if (has_initial) return auth_response(initial);
        reply(334, "", "VXNlcm5hbWU6");  // "Username:"
        return std::nullopt;
    }
    return error(504, "5.5.4", "Unrecognized authentication type");
}

std::optional<ServerEvent> ServerSession::auth_response(std::string_view line) {
    auto step = auth_step_;
    auth_step_ = AuthStep::None;
    if (line == "*") return error(501, "5.7.0", "Authentication aborted");
    // "=" is an empty initial response (RFC 4954 §4).
    auto decoded = line == "=" ? std::optional<std::string>("") : base::base64_decode(line);
    if (!decoded) return error(501, "5.5.2", "Cannot decode response");
    switch (step) {
        case AuthStep::PlainResponse: {
            // authzid NUL authcid NUL passwd (RFC 4616); we act for no one else.
            auto& d = *decoded;
            auto first = d.find('\0');
            auto second = first == std::string::npos ? first : d.find('\0', first + 1);
            if (second == std::string::npos || d.find('\0', second + 1) != std::string::npos)
                return error(501, "5.5.2", "Invalid PLAIN response");
            std::string authzid = d.substr(0, first);
            std::string authcid = d.substr(first + 1, second - first - 1);
            std::string password = d.substr(second + 1);
            std::fill(d.begin(), d.end(), '\0');
            if (!authzid.empty() && authzid != authcid)
                return error(535, "5.7.8", "Authentication credentials invalid");
            return auth_complete(std::move(authcid), std::move(password));
        }
        case AuthStep::LoginUser:
            auth_user_ = std::move(*decoded);
            auth_step_ = AuthStep::LoginPassword;
            reply(334, "", "UGFzc3dvcmQ6");  // "Password:"
            return std::nullopt;
        case AuthStep::LoginPassword:
            return auth_complete(std::move(auth_user_), std::move(*decoded));
        case AuthStep::None:
            break;
    }
    return std::nullopt;
}

std::optional<ServerEvent> ServerSession::auth_complete(std::string login, std::string password) {
    auth_user_.clear();
    bool printable = !login.empty() && login.size() <= 255 && !password.empty();
    for (unsigned char c : login)
        printable &= c > ' ' && c != 0x7f;
    if (!printable) return error(535, "5.7.8", "Authentication credentials invalid");
    ServerEvent ev{Kind::Auth};
    ev.login = login;
    ev.password = std::move(password);
    ev.mechanism = auth_mechanism_;
    pending_login_ = std::move(login);
    pending_ = Kind::Auth;
    return ev;
}

void ServerSession::tls_started() {
    tls_ = true;
    login_.clear();
    auth_step_ = AuthStep::None;
    helo_.clear();
    esmtp_ = false;
    reset_transaction();
    input_.clear();
    consumed_ = 0;
    if (mode_ == Mode::Handshake) mode_ = Mode::Command;
}

void ServerSession::defer() {
    if (pending_ != Kind::Rcpt) return;
    pending_.reset();
    ++recipients_seen_;  // max_recipients counts it now
    held_.emplace_back();
}

void ServerSession::answer_deferred(const Reply& r) {
    if (deferred() == 0) return;
    r.append_wire(output_);
    output_ += held_[held_first_++];
    if (held_first_ == held_.size()) {
        held_.clear();
        held_first_ = 0;
    }
    if (r.positive()) ++accepted_recipients_;
}

bool ServerSession::recipient_follows() const {
    if (mode_ != Mode::Command || auth_step_ != AuthStep::None || !mail_accepted_ || bdat_active_ ||
        recipients_seen_ >= settings_.max_recipients || commands_ >= settings_.max_commands)
        return false;
    std::string_view rest(input_.data() + consumed_, input_.size() - consumed_);
    auto lf = rest.find('\n');
    if (lf == std::string_view::npos || lf + 1 > settings_.max_line_length) return false;
    auto line = rest.substr(0, lf);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\0') != std::string_view::npos) return false;
    Command cmd = parse_command(line);
    if (!cmd.spec || cmd.spec->verb != Verb::Rcpt) return false;
    RcptArgument arg;
    return !parse_rcpt_argument(cmd.argument, arg, offer_.dsn);
}

void ServerSession::answer(const Reply& r) {
    if (!pending_) return;
    Kind kind = *pending_;
    pending_.reset();
    // A BDAT's go-ahead is not a reply: its chunk's 250 comes after the octets.
    if (kind == Kind::Data && chunk_starting_) {
        chunk_starting_ = false;
        start_chunked_message(r);
        return;
    }
    r.append_wire(out());
    switch (kind) {
        case Kind::Mail:
            if (r.positive()) mail_accepted_ = true;
            if (r.positive()) bdat_error_ = false;
            break;
        case Kind::Rcpt:
            ++recipients_seen_;
            if (r.positive()) ++accepted_recipients_;
            break;
        case Kind::Data:
            if (r.code == 354) {
                DataDecoder::Limits limits{size_limit(), settings_.max_data_line_length,
                                           settings_.bare_line_endings, settings_.nul_bytes};
                decoder_.emplace(limits, body_sink_);
                mode_ = Mode::Data;
            } else if (data_pipelined_) {
                consumed_ = input_.size();
            }
            break;
        case Kind::MessageEnd:
            reset_transaction();
            // RFC 3030 §2: no more chunks after a failed one; any that come
            // (pipelined) are discarded until MAIL or RSET.
            bdat_error_ = std::exchange(chunk_failed_, false);
            break;
        case Kind::Auth:
            if (r.code == 235) login_ = std::move(pending_login_);
            pending_login_.clear();
            // Wrong passwords count as errors: a session cannot guess forever.
            if (r.code >= 500 && ++errors_ >= settings_.max_errors) {
                reply(421, "4.7.0", settings_.hostname + " Error: too many errors");
                mode_ = Mode::Closed;
            }
            break;
        case Kind::Xclient:
            if (r.code == 220) {
                reset_transaction();
                helo_.clear();
            }
            break;
        default:
            break;
    }
}

}  // namespace smtplb::proto
