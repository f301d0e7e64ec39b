#include "tools/sink.hpp"

#include <boost/json.hpp>

#include "base/text.hpp"
#include "base/units.hpp"
#include "io/runtime/sockets.hpp"
#include "proto/xtext.hpp"

namespace smtplb::tools {

using io::error_code;
using io::use_nothrow;

using Kind = proto::ServerEvent::Kind;
using proto::Reply;

namespace {

// The XCLIENT attributes Postfix 3.7's EHLO reply lists, in its order.
constexpr const char* kPostfixXclientAttributes =
    "NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT";

// A host name as Postfix's smtpd accepts in XCLIENT NAME: at most 255
// characters of dot-separated labels (letters, digits, '-', '_'; none empty,
// over 63 long, or starting or ending with '-'), not all digits.
bool valid_hostname(std::string_view name) {
    if (name.empty() || name.size() > 255) return false;
    bool all_numeric = true;
    std::size_t label = 0;
    for (std::size_t i = 0; i <= name.size(); ++i) {
        char c = i < name.size() ? name[i] : '.';
        if (c == '.') {
            if (label == 0 || label > 63 || name[i - 1] == '-') return false;
            label = 0;
            continue;
        }
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool digit = c >= '0' && c <= '9';
        if (!alpha && !digit && c != '-' && c != '_') return false;
        if (c == '-' && label == 0) return false;
        if (!digit) all_numeric = false;
        ++label;
    }
    return !all_numeric;
}

// XCLIENT ADDR: an IPv4 address, or an IPv6 one after "IPV6:".
std::optional<base::IpAddress> xclient_address(std::string_view value) {
    bool v6 = base::istarts_with(value, "IPV6:");
    if (v6) value.remove_prefix(5);
    auto addr = base::IpAddress::parse(value);
    if (!addr || addr->v6 != v6) return std::nullopt;
    return addr;
}

bool valid_port(std::string_view value) {
    return !value.empty() && value.size() <= 5 &&
           value.find_first_not_of("0123456789") == std::string_view::npos;
}

}  // namespace

std::optional<SinkFault> SinkFault::parse(const std::string& text, std::string& error) {
    auto eq = text.find('=');
    if (eq == std::string::npos) {
        error = "fault must be STAGE=ACTION, e.g. mail=452";
        return std::nullopt;
    }
    std::string stage = base::to_lower(text.substr(0, eq));
    std::string action = text.substr(eq + 1);
    SinkFault f;
    if (stage == "greeting")
        f.stage = Stage::Greeting;
    else if (stage == "mail")
        f.stage = Stage::Mail;
    else if (stage == "rcpt")
        f.stage = Stage::Rcpt;
    else if (stage == "data")
        f.stage = Stage::Data;
    else if (stage == "message")
        f.stage = Stage::Message;
    else {
        error = "fault stage must be greeting, mail, rcpt, data or message";
        return std::nullopt;
    }
    if (action == "drop") {
        f.drop = true;
    } else if (action.rfind("delay:", 0) == 0) {
        auto d = base::parse_duration(action.substr(6));
        if (!d) {
            error = "bad delay in " + text;
            return std::nullopt;
        }
        f.delay = *d;
    } else {
        auto colon = action.find(':');
        std::string code = action.substr(0, colon);
        if (code.size() != 3 || code[0] < '4' || code[0] > '5' ||
            code.find_first_not_of("0123456789") != std::string::npos) {
            error = "fault action must be a 4xx/5xx code, drop, or delay:DURATION";
            return std::nullopt;
        }
        f.code = std::stoi(code);
        f.enhanced = colon == std::string::npos ? std::string(1, code[0]) + ".3.0"
                                                : action.substr(colon + 1);
    }
    return f;
}

class SinkSession {
  public:
    SinkSession(Sink& sink, tcp::socket socket)
        : sink_(sink), socket_(std::move(socket)), protocol_(sink.settings_) {
        error_code ec;
        peer_ = socket_.remote_endpoint(ec).address().to_string();
        if (sink_.options_.xclient_strict) {
            authorized_ = sink_.authorized(base::IpAddress::parse(peer_));
            protocol_.set_xclient_offered(authorized_);
        }
    }

    awaitable<void> run();

  private:
    struct Body final : proto::BodySink {
        std::string text;
        bool keep = false;
        std::uint64_t size = 0;
        void append(std::string_view b) override {
            size += b.size();
            if (keep && text.size() < 65536) text.append(b.substr(0, 65536 - text.size()));
        }
    };

    // The fault for this stage, if one applies to this message.
    const SinkFault* fault(SinkFault::Stage stage) {
        const auto& opts = sink_.options_;
        if (!opts.faults_unless_sender_domain.empty() && !from_.empty()) {
            auto at = from_.rfind('@');
            if (at != std::string::npos &&
                base::iequals(from_.substr(at + 1), opts.faults_unless_sender_domain))
                return nullptr;
        }
        for (const auto& f : opts.faults) {
            if (f.stage != stage) continue;
            if (opts.fault_rate < 1.0) {
                // xorshift: cheap, and no shared Random needed in a test tool
                auto& s = sink_.random_state_;
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                if (static_cast<double>(s % 1000000) / 1e6 >= opts.fault_rate) continue;
            }
            ++sink_.stats_.faults;
            return &f;
        }
        return nullptr;
    }

    // Applies a fault: true when it decided the answer (or dropped the connection).
    awaitable<bool> apply(const SinkFault* f) {
        if (!f) co_return false;
        if (f->delay.count() > 0) {
            asio::steady_timer t(socket_.get_executor(), f->delay);
            co_await t.async_wait(use_nothrow);
        }
        if (f->drop) {
            error_code ec;
            socket_.close(ec);
            dropped_ = true;
            co_return true;
        }
        if (f->code) {
            protocol_.answer(Reply::make(f->code, f->enhanced, "Fault injected by smtplb sink"));
            co_return true;
        }
        co_return false;
    }

    void record_message();
    Reply strict_xclient(std::string_view argument);

    Sink& sink_;
    tcp::socket socket_;
    proto::ServerSession protocol_;
    Body body_;
    std::string peer_;
    std::string from_;
    std::vector<std::string> rcpts_;
    std::string xclient_addr_, xclient_helo_, xclient_login_;
    std::string xclient_name_, xclient_reverse_name_;
    bool authorized_ = false;  // strict: the current client may use XCLIENT
    bool dropped_ = false;
    // Reads so far, and how many brought this transaction's recipients: one
    // for a group a client pipelined, one per recipient otherwise.
    std::uint64_t reads_ = 0, last_rcpt_read_ = 0;
    std::uint64_t rcpt_reads_ = 0;
};

void SinkSession::record_message() {
    boost::json::object o;
    o["port"] = sink_.port();
    o["peer"] = peer_;
    o["client"] = xclient_addr_.empty() ? peer_ : xclient_addr_;
    o["client_helo"] = xclient_helo_;
    o["client_name"] = xclient_name_;
    o["login"] = xclient_login_;
    // Postfix records the HELO of the EHLO after XCLIENT, else XCLIENT HELO=.
    bool xclient_helo = sink_.options_.xclient_strict && protocol_.helo().empty();
    o["helo"] = xclient_helo ? xclient_helo_ : protocol_.helo();
    o["client_reverse_name"] = xclient_reverse_name_;
    o["from"] = from_;
    boost::json::array rcpts;
    for (const auto& r : rcpts_)
        rcpts.emplace_back(r);
    o["rcpt"] = std::move(rcpts);
    o["rcpt_reads"] = rcpt_reads_;
    o["size"] = body_.size;
    o["body"] = body_.text;
    sink_.record(boost::json::serialize(o));
}

// XCLIENT as Postfix 3.7's smtpd answers it (XCLIENT_README; replies checked
// against a real smtpd). Like Postfix, attributes before a bad one stay set.
Reply SinkSession::strict_xclient(std::string_view argument) {
    auto words = base::split_words(argument);
    if (words.empty()) return Reply::make(501, "5.5.4", "Syntax: XCLIENT attribute=value...");
    if (!authorized_) return Reply::make(550, "5.7.0", "Error: insufficient authorization");
    bool got_helo = false, got_login = false;
    for (auto word : words) {
        auto eq = word.find('=');
        if (eq == std::string_view::npos || eq + 1 == word.size())
            return Reply::make(501, "5.5.4", "Error: attribute=value expected");
        auto raw = word.substr(eq + 1);
        if (raw.size() > 255) return Reply::make(501, "5.5.4", "Error: attribute value too long");
        auto name = word.substr(0, eq);
        auto key = base::to_lower(name);
        // Values that are not valid xtext are taken as they are (Postfix < 2.3).
        std::string value = proto::xtext_decode(raw).value_or(std::string(raw));
        for (auto& c : value)
            if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) > 126) c = '?';
        bool unavailable = base::iequals(value, "[UNAVAILABLE]");
        bool temporary = base::iequals(value, "[TEMPUNAVAIL]");
        auto bad = [&](const char* attribute) {
            return Reply::make(501, "5.5.4", std::string("Bad ") + attribute + " syntax: " + value);
        };
        if (key == "name" || key == "reverse_name") {
            if (!unavailable && !temporary && !valid_hostname(value))
                return bad(key == "name" ? "NAME" : "REVERSE_NAME");
            (key == "name" ? xclient_name_ : xclient_reverse_name_) = value;
        } else if (key == "addr" || key == "destaddr") {
            if (!unavailable && !xclient_address(value))
                return bad(key == "addr" ? "ADDR" : "DESTADDR");
            if (key == "addr") xclient_addr_ = value;
        } else if (key == "port" || key == "destport") {
            if (!unavailable && !valid_port(value)) return bad(key == "port" ? "PORT" : "DESTPORT");
        } else if (key == "helo") {
            if (!unavailable && value.size() > 255) return bad("HELO");
            xclient_helo_ = unavailable ? "" : value;
            got_helo = true;
        } else if (key == "proto") {
            if (!base::iequals(value, "SMTP") && !base::iequals(value, "ESMTP"))
                return bad("PROTO");
        } else if (key == "login") {
            if (!unavailable) {
                xclient_login_ = value;
                got_login = true;
            }
        } else {
            return Reply::make(501, "5.5.4", "Bad XCLIENT attribute name: " + std::string(name));
        }
    }
    // A new session for the new client: what it did not say is forgotten,
    // and its own address decides whether it may use XCLIENT again.
    if (!got_helo) xclient_helo_.clear();
    if (!got_login) xclient_login_.clear();
    auto current =
        xclient_addr_.empty() ? base::IpAddress::parse(peer_) : xclient_address(xclient_addr_);
    authorized_ = sink_.authorized(current);
    protocol_.set_xclient_offered(authorized_);
    return Reply::make(220, "", sink_.options_.hostname + " ESMTP smtplb sink");
}

awaitable<void> SinkSession::run() {
    ++sink_.stats_.connections;
    if (auto* f = fault(SinkFault::Stage::Greeting); f && (f->drop || f->code)) {
        if (f->code)
            protocol_.shutdown(Reply::make(f->code, f->enhanced, "Fault injected by smtplb sink"));
    } else {
        protocol_.start();
    }
    body_.keep = sink_.record_ != nullptr;
    protocol_.set_body_sink(&body_);
    for (;;) {
        auto ev = protocol_.next();
        if (ev.kind == Kind::NeedInput || ev.kind == Kind::Close) {
            auto& out = protocol_.output();
            if (!out.empty()) {
                auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(out), use_nothrow);
                out.clear();
                if (ec) break;
            }
            if (ev.kind == Kind::Close) break;
            auto [ec, bytes] = co_await io::read_some_shared(socket_);
            if (ec) break;
            protocol_.feed(bytes);
            ++reads_;
            continue;
        }
        bool handled = false;
        switch (ev.kind) {
            case Kind::Mail:
                from_ = ev.path.null ? "" : ev.path.mailbox.address();
                rcpts_.clear();
                rcpt_reads_ = 0;
                // Postfix with smtpd_helo_required: XCLIENT HELO= counts.
                if (sink_.options_.xclient_strict && protocol_.helo().empty() &&
                    xclient_helo_.empty()) {
                    protocol_.answer(Reply::make(503, "5.5.1", "Error: send HELO/EHLO first"));
                    break;
                }
                handled = co_await apply(fault(SinkFault::Stage::Mail));
                if (!handled) protocol_.answer(Reply::make(250, "2.1.0", "Ok"));
                break;
            case Kind::Rcpt:
                if (rcpt_reads_ == 0 || last_rcpt_read_ != reads_) ++rcpt_reads_;
                last_rcpt_read_ = reads_;
                handled = co_await apply(fault(SinkFault::Stage::Rcpt));
                if (!handled) {
                    rcpts_.push_back(ev.path.mailbox.address());
                    protocol_.answer(Reply::make(250, "2.1.5", "Ok"));
                }
                break;
            case Kind::Data:
                body_.text.clear();
                body_.size = 0;
                handled = co_await apply(fault(SinkFault::Stage::Data));
                if (!handled)
                    protocol_.answer(Reply::make(354, "", "End data with <CR><LF>.<CR><LF>"));
                break;
            case Kind::MessageEnd:
                if (ev.data_outcome != proto::DataDecoder::Outcome::Ok) {
                    protocol_.answer(proto::data_outcome_reply(ev.data_outcome));
                    break;
                }
                handled = co_await apply(fault(SinkFault::Stage::Message));
                if (!handled) {
                    ++sink_.stats_.messages;
                    sink_.stats_.recipients += rcpts_.size();
                    sink_.stats_.bytes += body_.size;
                    sink_.stats_.last_client = xclient_addr_.empty() ? peer_ + " (no XCLIENT)"
                                                                     : xclient_addr_ + " (XCLIENT)";
                    if (sink_.record_) record_message();
                    protocol_.answer(Reply::make(250, "2.0.0",
                                                 "Ok: queued as S" + std::to_string(sink_.port()) +
                                                     "N" + std::to_string(sink_.stats_.messages)));
                }
                break;
            case Kind::Xclient: {
                if (sink_.options_.xclient_strict) {
                    protocol_.answer(strict_xclient(ev.argument));
                    break;
                }
                for (auto word : base::split_words(ev.argument)) {
                    auto eq = word.find('=');
                    if (eq == std::string_view::npos) continue;
                    auto key = base::to_lower(word.substr(0, eq));
                    auto value = proto::xtext_decode(word.substr(eq + 1)).value_or("");
                    if (key == "addr") xclient_addr_ = value;
                    if (key == "helo") xclient_helo_ = value;
                    if (key == "login") xclient_login_ = value;
                }
                protocol_.answer(
                    Reply::make(220, "", sink_.options_.hostname + " ESMTP smtplb sink"));
                break;
            }
            default:
                break;
        }
        if (dropped_) break;
    }
    error_code ec;
    socket_.close(ec);
}

Sink::Sink(asio::io_context& io, SinkOptions options)
    : io_(io), options_(std::move(options)), acceptor_(io) {
    settings_.hostname = options_.hostname;
    settings_.advertise_xclient = options_.xclient;
    settings_.ehlo_enabled = options_.esmtp;
    settings_.max_recipients = 100000;
    settings_.max_errors = 100;
    settings_.max_message_size = 1ull << 32;
    settings_.require_helo = false;
    // Not offered: balancers in front of a sink send DATA, as to smtp-sink
    // (Postfix's real smtpd is the test peer for BDAT).
    settings_.offer.chunking = false;
    // NUL octets are ordinary content, as in Postfix by default (empty
    // message_reject_characters): a test sees whether smtplb passed them on.
    settings_.nul_bytes = proto::NulBytes::Keep;
    if (options_.xclient_strict) {
        settings_.advertise_xclient = true;
        settings_.xclient_attributes = kPostfixXclientAttributes;
        settings_.max_line_length = 2048;  // Postfix's line_length_limit
        settings_.truncate_long_lines = true;
        if (options_.xclient_authorized.empty())
            options_.xclient_authorized.push_back(*base::Cidr::parse("127.0.0.1/32"));
    }
}

bool Sink::authorized(const std::optional<base::IpAddress>& address) const {
    if (!address) return false;
    for (const auto& cidr : options_.xclient_authorized)
        if (cidr.contains(*address)) return true;
    return false;
}

Sink::~Sink() {
    if (record_) std::fclose(record_);
}

bool Sink::start(std::string& error) {
    if (!options_.record_path.empty()) {
        record_ = std::fopen(options_.record_path.c_str(), "a");
        if (!record_) {
            error = "cannot open " + options_.record_path;
            return false;
        }
    }
    if (auto ec = io::listen_on(acceptor_, options_.listen.host, options_.listen.port)) {
        error = "sink cannot listen on " + options_.listen.to_string() + ": " + ec.message();
        return false;
    }
    asio::co_spawn(io_, accept_loop(), asio::detached);
    return true;
}

void Sink::stop() {
    error_code ec;
    acceptor_.close(ec);
}

std::uint16_t Sink::port() const {
    error_code ec;
    auto ep = acceptor_.local_endpoint(ec);
    return ec ? 0 : ep.port();
}

void Sink::record(const std::string& line) {
    std::fwrite(line.data(), 1, line.size(), record_);
    std::fputc('\n', record_);
    std::fflush(record_);  // tests read it while the sink runs
}

awaitable<void> Sink::accept_loop() {
    for (;;) {
        auto [ec, socket] = co_await acceptor_.async_accept(use_nothrow);
        if (ec) {
            if (!acceptor_.is_open()) co_return;
            continue;
        }
        io::tune_socket(socket);
        asio::co_spawn(
            io_,
            [this, s = std::move(socket)]() mutable -> awaitable<void> {
                SinkSession session(*this, std::move(s));
                co_await session.run();
            },
            asio::detached);
    }
}

}  // namespace smtplb::tools
