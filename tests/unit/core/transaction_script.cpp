#include "unit/core/transaction_script.hpp"

#include <deque>
#include <map>
#include <sstream>

#include "config/limits_reader.hpp"
#include "core/transaction.hpp"
#include "mocks/fake_clock.hpp"
#include "mocks/scripted_random.hpp"
#include "proto/command.hpp"

namespace smtplb::testing {
namespace {

using Action = core::TransactionAction;
using Kind = Action::Kind;

std::vector<std::string> words(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> out;
    for (std::string w; in >> w;)
        out.push_back(w);
    return out;
}

// "CODE [X.Y.Z] text... [| more text...]" from words[from...]: each "|"
// starts another line of a multi-line reply.
proto::Reply reply_of(const std::vector<std::string>& w, std::size_t from) {
    int code = from < w.size() ? std::atoi(w[from].c_str()) : 0;
    std::string enhanced, text;
    std::size_t i = from + 1;
    if (i < w.size() && w[i].size() >= 5 && w[i][1] == '.') enhanced = w[i++];
    for (; i < w.size() && w[i] != "|"; ++i)
        text += (text.empty() ? "" : " ") + w[i];
    auto reply = proto::Reply::make(code, enhanced, text);
    while (i < w.size()) {  // at a "|"
        std::string line;
        for (++i; i < w.size() && w[i] != "|"; ++i)
            line += (line.empty() ? "" : " ") + w[i];
        reply.lines.push_back(line);
    }
    return reply;
}

// The first line's summary; the others below it, each after "|".
std::string shown(const proto::Reply& reply) {
    std::string out = reply.summary();
    for (std::size_t i = 1; i < reply.lines.size(); ++i)
        out += "\n      | " + reply.lines[i];
    return out;
}

std::string rest(const std::vector<std::string>& w, std::size_t from) {
    std::string text;
    for (std::size_t i = from; i < w.size(); ++i)
        text += (text.empty() ? "" : " ") + w[i];
    return text;
}

bool has(const std::vector<std::string>& w, const char* flag) {
    return std::find(w.begin(), w.end(), flag) != w.end();
}

proto::Mailbox mailbox(const std::string& text) {
    auto parsed = proto::parse_path(text, true);
    return parsed.path ? parsed.path->mailbox
                       : proto::Mailbox{text, "", false, false, false, false};
}

class Runner {
  public:
    std::string run(const std::string& script);

  private:
    void setup(const std::vector<std::string>& w);
    // Runs the actions of one input up to its answer (`answers`: one per
    // recipient of a batch).
    void drive(std::size_t answers = 1);
    // The next scripted line for backend `b` (or "spool"), or nothing.
    std::optional<std::vector<std::string>> take(const std::string& who, const char* what);
    void open(std::size_t backend);

    FakeClock clock_;
    ScriptedRandom random_{{0}};
    std::unique_ptr<core::Pool> pool_;
    core::Transaction tx_;
    std::map<std::string, std::deque<std::vector<std::string>>> scripted_;
    std::ostringstream out_;
    bool spool_ = false;
};

void Runner::setup(const std::vector<std::string>& w) {
    config::Pool p;
    p.name = "p";
    p.health.enabled = false;
    std::size_t backends = 1;
    for (std::size_t i = 1; i < w.size(); ++i) {
        auto eq = w[i].find('=');
        auto key = w[i].substr(0, eq), value = w[i].substr(eq + 1);
        if (key == "backends") backends = std::stoul(value);
        if (key == "max_attempts") p.max_attempts = std::stoul(value);
        if (key == "retry_time") p.retry_time = std::chrono::seconds(std::stoul(value));
        if (key == "spool") spool_ = value == "yes";
        if (key == "convert_8bit") p.convert_8bit = value == "yes";
        if (key == "tls" && value == "required") p.tls.mode = config::BackendTlsMode::Required;
        // shape=DOMAIN [messages=N/PERIOD] [burst=N] [concurrent=N]: a destination limit.
        if (key == "shape") {
            p.destination_limits.emplace_back();
            p.destination_limits.back().domain = value;
        }
        if (p.destination_limits.empty()) continue;
        auto& shape = p.destination_limits.back();
        if (key == "messages") {
            auto rate = config::parse_rate(value, false);
            shape.messages = shape.burst = rate->quantity;
            shape.period = rate->period;
        }
        if (key == "burst") shape.burst = std::stoul(value);
        if (key == "concurrent") shape.concurrent_transactions = std::stoul(value);
    }
    for (std::size_t i = 0; i < backends; ++i) {
        config::Backend b;
        b.name = "b" + std::to_string(i);
        p.backends.push_back(b);
    }
    pool_ = std::make_unique<core::Pool>(p, clock_, random_);
}

std::optional<std::vector<std::string>> Runner::take(const std::string& who, const char* what) {
    auto& queue = scripted_[who];
    if (queue.empty()) {
        out_ << "  !! nothing scripted for " << who << " " << what << "\n";
        return std::nullopt;
    }
    auto line = std::move(queue.front());
    queue.pop_front();
    return line;
}

void Runner::open(std::size_t backend) {
    auto name = "b" + std::to_string(backend);
    auto w = take(name, "open");
    out_ << "  open " << name;
    if (!w || w->size() < 3) {
        out_ << " -> (unscripted: connect failure)\n";
        tx_.open_failed(
            {.kind = core::OpenFailure::Kind::Connect, .stage = "connect", .reason = "unscripted"});
        return;
    }
    const auto& kind = (*w)[2];
    out_ << " -> " << rest(*w, 2) << "\n";
    if (kind == "ok") {
        core::OpenedConnection c;
        c.reused = has(*w, "reused");
        c.capabilities.pipelining = has(*w, "pipelining");
        c.capabilities.smtputf8 = has(*w, "smtputf8");
        c.capabilities.eightbitmime = !has(*w, "7bit");  // as Postfix, unless told
        if (has(*w, "auth")) c.capabilities.auth_mechanisms = {"PLAIN"};
        c.capabilities.requiretls = has(*w, "requiretls");
        for (const auto& word : *w)
            if (word.starts_with("size=")) c.capabilities.size_limit = std::stoull(word.substr(5));
        c.capabilities.dsn = has(*w, "dsn");
        c.capabilities.chunking = has(*w, "chunking");
        c.tls = has(*w, "tls") ? "TLSv1.3" : "";
        tx_.opened(c);
        return;
    }
    using K = core::OpenFailure::Kind;
    static const std::map<std::string, K> kinds{{"connect", K::Connect},
                                                {"greeting", K::Greeting},
                                                {"helo-refused", K::HeloRefused},
                                                {"identity-broken", K::IdentityBroken},
                                                {"unauthorised", K::Unauthorised},
                                                {"identity-refused", K::IdentityRefused},
                                                {"no-slot", K::NoSlot},
                                                {"auth-refused", K::Misconfigured},
                                                {"auth-deferred", K::Greeting}};
    core::OpenFailure f;
    f.kind = kinds.count(kind) ? kinds.at(kind) : K::Connect;
    f.stage = kind == "connect" || kind == "no-slot" ? "connect"
              : kind == "greeting"                   ? "greeting"
              : kind == "helo-refused"               ? "helo"
              : kind.starts_with("auth-")            ? "auth"
                                                     : "xclient";
    f.reused = has(*w, "reused");
    std::size_t from = 3;
    if (from < w->size() && (*w)[from] == "reused") ++from;
    if (from < w->size() && std::isdigit(static_cast<unsigned char>((*w)[from][0]))) {
        f.refusal = reply_of(*w, from);
        f.reason = f.refusal->summary();
    } else {
        f.reason = rest(*w, from);
    }
    tx_.open_failed(f);
}

void Runner::drive(std::size_t answers) {
    for (int steps = 0; steps < 1000; ++steps) {
        auto action = tx_.next();
        if (!action) {
            out_ << "  !! no answer\n";
            return;
        }
        auto name = "b" + std::to_string(action->backend);
        switch (action->kind) {
            case Kind::Open:
                open(action->backend);
                break;
            case Kind::Send: {
                auto line = action->line;
                while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
                    line.pop_back();
                out_ << "  " << name << " < " << line << "\n";
                break;
            }
            case Kind::Flush:
                out_ << "  flush " << name << "\n";
                break;
            case Kind::Await: {
                auto w = take(name, action->final_reply ? "final reply" : "reply");
                out_ << "  await " << name << (action->final_reply ? " (final)" : "") << " -> ";
                if (w && w->size() > 2 && (*w)[1] == "reply") {
                    auto reply = reply_of(*w, 2);
                    out_ << shown(reply) << "\n";
                    tx_.replied(reply);
                } else {
                    auto why = w ? rest(*w, 2) : "unscripted";
                    out_ << "broken: " << why << "\n";
                    tx_.broken(why);
                }
                break;
            }
            case Kind::SendBody: {
                auto w = take(name, "body");
                auto how = w && w->size() > 2 ? (*w)[2] : "write-failed";
                using EightBit = core::TransactionAction::EightBit;
                out_ << "  " << name
                     << (action->chunking   ? " < (BDAT LAST"
                         : action->streamed ? " < (rest of the streamed body"
                                            : " < (body")
                     << (action->eight_bit == EightBit::Convert  ? ", 8-bit converted"
                         : action->eight_bit == EightBit::Refuse ? ", 8-bit refused"
                                                                 : "")
                     << ") -> " << how << "\n";
                using R = core::Transaction::BodyResult;
                tx_.body_done(how == "sent"                ? R::Sent
                              : how == "read-failed"       ? R::ReadFailed
                              : how == "eight-bit-refused" ? R::EightBitRefused
                                                           : R::WriteFailed,
                              w && w->size() > 3 ? rest(*w, 3) : how);
                break;
            }
            case Kind::Release:
                out_ << "  release " << name << " " << core::to_string(action->release) << "\n";
                break;
            case Kind::CheckSpool: {
                auto w = take("spool-check", "");
                out_ << "  check spool -> " << (w ? rest(*w, 1) : "unscripted") << "\n";
                if (w && w->size() > 1 && (*w)[1] == "ok")
                    tx_.spool_checked(std::nullopt);
                else
                    tx_.spool_checked(w ? reply_of(*w, 1) : proto::Reply::make(452, "4.3.1", "x"));
                break;
            }
            case Kind::Spool: {
                auto w = take("spool", "");
                auto reply = w ? reply_of(*w, 1) : proto::Reply::make(452, "4.3.1", "unscripted");
                out_ << "  spool -> " << reply.summary() << "\n";
                tx_.spooled(reply);
                break;
            }
            case Kind::Answer:
                out_ << "  answer " << shown(action->reply) << "\n";
                if (--answers > 0) break;  // the batch's next recipient
                if (auto more = tx_.next())
                    out_ << "  !! action after the answer: " << core::to_string(more->kind) << "\n";
                return;
            case Kind::Done:
                out_ << "  done\n";
                if (auto more = tx_.next())
                    out_ << "  !! action after done: " << core::to_string(more->kind) << "\n";
                return;
        }
    }
    out_ << "  !! more than 1000 actions\n";
}

std::string Runner::run(const std::string& script) {
    std::istringstream in(script);
    std::vector<std::vector<std::string>> client;
    for (std::string line; std::getline(in, line);) {
        if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
        auto w = words(line);
        if (w.empty()) continue;
        if (w[0] == "pool")
            setup(w);
        else if (w[0][0] == 'b' && w[0].size() > 1 && std::isdigit(w[0][1]))
            scripted_[w[0]].push_back(w);
        else if (w[0] == "spool-check" || w[0] == "spool")
            scripted_[w[0]].push_back(w);
        else
            client.push_back(w);
    }
    if (!pool_) setup({"pool"});
    proto::Path sender;
    for (const auto& w : client) {
        out_ << "> " << rest(w, 0) << "\n";
        const auto& verb = w[0];
        if (verb == "mail") {
            sender.mailbox = mailbox(w.size() > 1 ? w[1] : "<>");
            sender.null = sender.mailbox.local.empty();
            proto::MailParameters params;
            proto::MailArgument parsed;  // SIZE=, RET=, ENVID= ... as a client sends them
            if (!proto::parse_mail_argument("FROM:" + rest(w, 1), parsed)) params = parsed.params;
            params.smtputf8 = has(w, "SMTPUTF8");
            params.body_8bitmime = has(w, "BODY=8BITMIME");
            for (const auto& word : w)
                if (word.starts_with("AUTH=")) params.auth = word.substr(5);
            params.requiretls = has(w, "REQUIRETLS");
            for (const auto& word : w)
                if (word.starts_with("SIZE=")) params.size = std::stoull(word.substr(5));
            tx_.begin(*pool_, base::IpAddress::parse("192.0.2.10"), sender, params, spool_);
        } else if (verb == "rcpt") {
            proto::RcptArgument parsed;  // NOTIFY=, ORCPT= as a client sends them
            if (w.size() > 2 && !proto::parse_rcpt_argument("TO:" + rest(w, 1), parsed))
                tx_.recipient(parsed.path.mailbox, parsed.params);
            else
                tx_.recipient(mailbox(w.size() > 1 ? w[1] : "<>"));
        } else if (verb == "rcpts") {  // pipelined by the client: one batch
            std::vector<core::RecipientInput> batch;
            for (std::size_t i = 1; i < w.size(); ++i)
                batch.push_back({mailbox(w[i]), {}});
            tx_.recipients(std::move(batch));
            drive(w.size() - 1);
            continue;
        } else if (verb == "data") {
            tx_.data();
        } else if (verb == "bdat") {
            tx_.data(true);
        } else if (verb == "end") {
            tx_.message_complete();
        } else if (verb == "arriving") {  // the body comes fast: stream it if it may
            tx_.body_arriving();
            drive();
            out_ << "  streaming: " << (tx_.streaming() ? "yes" : "no") << "\n";
            continue;
        } else if (verb == "stream-failed") {
            tx_.stream_failed(rest(w, 1));
        } else if (verb == "rset") {
            tx_.abandon();
        } else if (verb == "slow") {
            tx_.client_slow();
        } else if (verb == "advance") {
            clock_.advance(std::chrono::seconds(std::stoul(w.at(1))));
            continue;
        } else {
            out_ << "  !! unknown input\n";
            continue;
        }
        drive();
    }
    out_ << "= attempts:";
    for (const auto& a : tx_.attempts())
        out_ << " [" << a.backend << " " << a.stage << ": " << a.reply
             << (a.tls.empty() ? "" : " tls " + a.tls) << "]";
    out_ << "\n= queue id: " << tx_.queue_id() << (tx_.spooling() ? " (spooling)" : "") << "\n";
    std::size_t owed = 0;  // RFC 3461 §4.2: NOTIFY=SUCCESS, taken by a backend without DSN
    for (const auto& p : tx_.accepted_parameters())
        owed += tx_.relayed_without_dsn() && p.wants_success() ? 1 : 0;
    if (owed) out_ << "= relayed notices owed: " << owed << "\n";
    for (const auto& [who, left] : scripted_)
        if (!left.empty()) out_ << "= unused script for " << who << ": " << left.size() << "\n";
    for (const auto& b : pool_->backends()) {
        const auto& c = b.counters;
        out_ << "= " << b.config.name << ": " << core::to_string(b.health.state())
             << " attempts=" << c.attempts << " delivered=" << c.delivered
             << " rejected=" << c.rejected << " deferred=" << c.deferred << " failed=" << c.failed
             << " recipients=" << c.recipients << " in-flight=" << b.pending;
        if (pool_->shaping()) out_ << " shaping-skips=" << c.shaping_skips;
        out_ << "\n";
    }
    if (pool_->shaping()) out_ << "= shaping full: " << pool_->shaping_full << "\n";
    return out_.str();
}

}  // namespace

std::string run_transaction_script(const std::string& script) {
    return Runner().run(script);
}

}  // namespace smtplb::testing
