#include "proto/command.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <utility>

#include "base/text.hpp"
#include "proto/capabilities.hpp"
#include "proto/xtext.hpp"

namespace smtplb::proto {
namespace {

constexpr std::array<CommandSpec, 17> kCommands{{
    {Verb::Helo, "HELO", true, false},
    {Verb::Ehlo, "EHLO", true, false},
    {Verb::Mail, "MAIL", false, true},
    {Verb::Rcpt, "RCPT", false, true},
    {Verb::Data, "DATA", true, true},
    {Verb::Rset, "RSET", false, false},
    {Verb::Noop, "NOOP", true, false},
    {Verb::Quit, "QUIT", true, false},
    {Verb::Vrfy, "VRFY", true, false},
    {Verb::Expn, "EXPN", true, false},
    {Verb::Help, "HELP", true, false},
    {Verb::StartTls, "STARTTLS", true, false},
    {Verb::Auth, "AUTH", true, true},
    {Verb::Bdat, "BDAT", false, true},
    {Verb::Xclient, "XCLIENT", true, false},
    {Verb::Etrn, "ETRN", true, true},
    {Verb::Turn, "TURN", true, false},
}};

// Accepts "FROM:<x>" and the common "FROM: <x>".
std::optional<std::string_view> after_keyword(std::string_view argument, std::string_view keyword) {
    if (!base::istarts_with(argument, keyword)) return std::nullopt;
    argument.remove_prefix(keyword.size());
    while (!argument.empty() && argument.front() == ' ')
        argument.remove_prefix(1);
    return argument;
}

ArgumentError syntax(std::string text) {
    return {501, "5.5.4", std::move(text)};
}

// Postfix's replies (checked against Postfix 3.7): a refused DSN parameter,
// and any DSN parameter where DSN is not offered.
ArgumentError dsn_disabled() {
    return {501, "5.7.1", "DSN support is disabled"};
}

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

// RFC 3461 §4 xtext ("+" and two hex digits for what is not a plain
// printable character). Lower-case hex is taken as Postfix takes it.
// `utf8`: RFC 6533 utf-8-addr-xtext also carries UTF-8 as it is.
bool valid_xtext(std::string_view text, bool utf8 = false) {
    for (std::size_t i = 0; i < text.size(); ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c == '+') {
            if (i + 2 >= text.size() || !is_hex(text[i + 1]) || !is_hex(text[i + 2])) return false;
            i += 2;
        } else if (c >= 128 ? !utf8 : (c < 33 || c > 126 || c == '=')) {
            return false;
        }
    }
    return true;
}

bool valid_envid(std::string_view value) {
    return !value.empty() && value.size() <= kMaxEnvidLength && valid_xtext(value);
}

// addr-type ";" xtext, the address type an RFC 822 atom (rfc822, utf-8, x-...).
bool valid_orcpt(std::string_view value) {
    auto semicolon = value.find(';');
    if (value.size() > kMaxOrcptLength || semicolon == 0 || semicolon == std::string_view::npos)
        return false;
    auto type = value.substr(0, semicolon);
    for (char c : type)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    return valid_xtext(value.substr(semicolon + 1), base::iequals(type, "utf-8"));
}

// NEVER, or any of SUCCESS, FAILURE, DELAY separated by commas; 0 when bad.
std::uint8_t parse_notify(std::string_view value) {
    std::uint8_t bits = 0;
    while (!value.empty()) {
        auto comma = value.find(',');
        auto word = value.substr(0, comma);
        value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
        if (word.empty()) continue;  // "SUCCESS," as Postfix takes it
        if (base::iequals(word, "NEVER"))
            bits |= RcptParameters::Never;
        else if (base::iequals(word, "SUCCESS"))
            bits |= RcptParameters::Success;
        else if (base::iequals(word, "FAILURE"))
            bits |= RcptParameters::Failure;
        else if (base::iequals(word, "DELAY"))
            bits |= RcptParameters::Delay;
        else
            return 0;
    }
    // RFC 3461 §4.1: NEVER stands alone.
    if ((bits & RcptParameters::Never) && bits != RcptParameters::Never) return 0;
    return bits;
}

}  // namespace

const CommandSpec* find_command(std::string_view name) {
    for (const auto& spec : kCommands)
        if (base::iequals(spec.name, name)) return &spec;
    return nullptr;
}

Command parse_command(std::string_view line) {
    auto space = line.find(' ');
    Command cmd;
    cmd.spec = find_command(line.substr(0, space));
    if (space != std::string_view::npos) cmd.argument = base::trim(line.substr(space + 1));
    return cmd;
}

std::string mail_command(const Path& sender, const MailParameters& params,
                         const Capabilities& caps) {
    std::string cmd =
        "MAIL FROM:<" + (sender.null ? std::string() : sender.mailbox.address()) + ">";
    if (params.size && caps.size_limit) cmd += " SIZE=" + std::to_string(*params.size);
    if (params.body_8bitmime && caps.eightbitmime) cmd += " BODY=8BITMIME";
    if (params.smtputf8) cmd += " SMTPUTF8";
    // RFC 4954 §5: a parameter of the AUTH extension, only where it is announced.
    if (params.auth && !caps.auth_mechanisms.empty()) cmd += " AUTH=" + *params.auth;
    if (params.requiretls) cmd += " REQUIRETLS";  // only to backends that announce it
    if (caps.dsn && params.ret != DsnReturn::Unset)
        cmd += params.ret == DsnReturn::Full ? " RET=FULL" : " RET=HDRS";
    if (caps.dsn && !params.envid.empty()) cmd += " ENVID=" + params.envid;
    return cmd + "\r\n";
}

std::string rcpt_command(const Mailbox& rcpt) {
    return "RCPT TO:<" + rcpt.address() + ">\r\n";
}

bool valid_auth_parameter(std::string_view xtext) {
    if (xtext.empty() || xtext.size() > kMaxAuthParameter) return false;
    auto decoded = xtext_decode(xtext);
    if (!decoded || decoded->empty()) return false;
    if (*decoded == "<>") return true;
    // An addr-spec: printable, no spaces or angle brackets, an '@' inside.
    for (unsigned char ch : *decoded)
        if (ch <= ' ' || ch == 0x7f || ch == '<' || ch == '>') return false;
    auto at = decoded->rfind('@');
    return at != std::string::npos && at > 0 && at + 1 < decoded->size();
}

std::string rcpt_command(const Mailbox& rcpt, const RcptParameters& params,
                         const Capabilities& caps) {
    std::string cmd = "RCPT TO:<" + rcpt.address() + ">";
    if (caps.dsn && params.notify) cmd += " NOTIFY=" + params.notify_keywords();
    if (caps.dsn && !params.orcpt.empty()) cmd += " ORCPT=" + params.orcpt;
    return cmd + "\r\n";
}

std::string RcptParameters::notify_keywords() const {
    if (notify & Never) return "NEVER";
    std::string out;
    for (auto [bit, word] :
         {std::pair{Success, "SUCCESS"}, std::pair{Failure, "FAILURE"}, std::pair{Delay, "DELAY"}})
        if (notify & bit) out += std::string(out.empty() ? "" : ",") + word;
    return out;
}

std::string RcptParameters::original_recipient() const {
    auto semicolon = orcpt.find(';');
    if (semicolon == std::string::npos) return {};
    auto decoded = xtext_decode_lenient(std::string_view(orcpt).substr(semicolon + 1));
    return orcpt.substr(0, semicolon + 1) + decoded;
}

std::optional<ArgumentError> parse_mail_argument(std::string_view argument, MailArgument& out,
                                                 bool dsn_offered) {
    auto rest = after_keyword(argument, "FROM:");
    if (!rest) return syntax("Syntax: MAIL FROM:<address>");
    auto parsed = parse_path(*rest, true);
    if (!parsed.path) return syntax(parsed.error);
    out.path = std::move(*parsed.path);
    out.params = {};
    for (auto word : base::split_words(rest->substr(parsed.consumed))) {
        auto eq = word.find('=');
        auto key = word.substr(0, eq);
        auto value = eq == std::string_view::npos ? std::string_view{} : word.substr(eq + 1);
        if (base::iequals(key, "SIZE") && !value.empty()) {
            std::uint64_t n = 0;
            auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (ec != std::errc{} || ptr != value.data() + value.size())
                return syntax("Bad SIZE parameter");
            out.params.size = n;
        } else if (base::iequals(key, "BODY") && !value.empty()) {
            if (base::iequals(value, "8BITMIME")) {
                out.params.body_8bitmime = true;
            } else if (!base::iequals(value, "7BIT")) {
                return ArgumentError{555, "5.5.4", "Unsupported BODY parameter"};
            }
        } else if (base::iequals(key, "SMTPUTF8") && value.empty()) {
            out.params.smtputf8 = true;
        } else if (base::iequals(key, "AUTH") && eq != std::string_view::npos) {
            if (out.params.auth) return syntax("Duplicate AUTH parameter");
            if (!valid_auth_parameter(value)) return syntax("Bad AUTH parameter");
            out.params.auth = std::string(value);
        } else if (base::iequals(key, "REQUIRETLS") && value.empty()) {
            out.params.requiretls = true;
        } else if (base::iequals(key, "RET") && eq != std::string_view::npos) {
            if (!dsn_offered) return dsn_disabled();
            if (out.params.ret != DsnReturn::Unset) return syntax("Bad RET parameter syntax");
            if (base::iequals(value, "FULL"))
                out.params.ret = DsnReturn::Full;
            else if (base::iequals(value, "HDRS"))
                out.params.ret = DsnReturn::Headers;
            else
                return syntax("Bad RET parameter syntax");
        } else if (base::iequals(key, "ENVID") && eq != std::string_view::npos) {
            if (!dsn_offered) return dsn_disabled();
            if (!out.params.envid.empty() || !valid_envid(value))
                return syntax("Bad ENVID parameter syntax");
            out.params.envid = value;
        } else {
            return ArgumentError{555, "5.5.4", "Unsupported parameter"};
        }
    }
    if (out.path.mailbox.non_ascii && !out.params.smtputf8)
        return ArgumentError{553, "5.6.7", "Non-ASCII address needs SMTPUTF8"};
    return std::nullopt;
}

std::optional<ArgumentError> parse_rcpt_argument(std::string_view argument, RcptArgument& out,
                                                 bool dsn_offered) {
    auto rest = after_keyword(argument, "TO:");
    if (!rest) return syntax("Syntax: RCPT TO:<address>");
    auto parsed = parse_path(*rest, false);
    if (!parsed.path) return syntax(parsed.error);
    RcptParameters params;
    for (auto word : base::split_words(rest->substr(parsed.consumed))) {
        auto eq = word.find('=');
        auto key = word.substr(0, eq);
        auto value = eq == std::string_view::npos ? std::string_view{} : word.substr(eq + 1);
        if (eq != std::string_view::npos && base::iequals(key, "NOTIFY")) {
            if (!dsn_offered) return dsn_disabled();
            if (params.notify != 0 || (params.notify = parse_notify(value)) == 0)
                return syntax("Error: Bad NOTIFY parameter syntax");
        } else if (eq != std::string_view::npos && base::iequals(key, "ORCPT")) {
            if (!dsn_offered) return dsn_disabled();
            if (!params.orcpt.empty() || !valid_orcpt(value))
                return syntax("Error: Bad ORCPT parameter syntax");
            params.orcpt = value;
        } else {
            return ArgumentError{555, "5.5.4", "Unsupported parameter"};
        }
    }
    out.path = std::move(*parsed.path);
    out.params = std::move(params);
    return std::nullopt;
}

std::optional<ArgumentError> parse_rcpt_argument(std::string_view argument, Path& out) {
    RcptArgument full;
    auto error = parse_rcpt_argument(argument, full);
    if (!error) out = std::move(full.path);
    return error;
}

}  // namespace smtplb::proto
