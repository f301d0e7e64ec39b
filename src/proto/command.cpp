#include "proto/command.hpp"

#include <array>
#include <charconv>

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

std::optional<ArgumentError> parse_mail_argument(std::string_view argument, MailArgument& out) {
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
        } else {
            return ArgumentError{555, "5.5.4", "Unsupported parameter"};
        }
    }
    if (out.path.mailbox.non_ascii && !out.params.smtputf8)
        return ArgumentError{553, "5.6.7", "Non-ASCII address needs SMTPUTF8"};
    return std::nullopt;
}

std::optional<ArgumentError> parse_rcpt_argument(std::string_view argument, Path& out) {
    auto rest = after_keyword(argument, "TO:");
    if (!rest) return syntax("Syntax: RCPT TO:<address>");
    auto parsed = parse_path(*rest, false);
    if (!parsed.path) return syntax(parsed.error);
    if (!base::trim(rest->substr(parsed.consumed)).empty())
        return ArgumentError{555, "5.5.4", "Unsupported parameter"};
    out = std::move(*parsed.path);
    return std::nullopt;
}

}  // namespace smtplb::proto
