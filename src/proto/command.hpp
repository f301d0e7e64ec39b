#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proto/address.hpp"

namespace smtplb::proto {

enum class Verb {
    Unknown,
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    Auth,
    Bdat,
    Xclient,
    Etrn,
    Turn
};

// Per-command facts, in the manner of Postfix's smtpd_cmd_table.
struct CommandSpec {
    Verb verb;
    std::string_view name;
    bool ends_pipeline_group;  // RFC 2920 §3.1: must be the last command of a group
    bool needs_helo;           // refused with 503 before HELO/EHLO
};

const CommandSpec* find_command(std::string_view name);

struct Command {
    const CommandSpec* spec = nullptr;  // null for an unknown verb
    std::string_view argument;          // after the verb and one space, trimmed
};

// Splits one command line (without CRLF) into verb and argument.
Command parse_command(std::string_view line);

// MAIL FROM parameters we implement (RFC 1870, 6152, 6531, 4954).
struct MailParameters {
    std::optional<std::uint64_t> size;
    bool body_8bitmime = false;
    bool smtputf8 = false;
    // RFC 4954 §5 AUTH=, xtext as sent (validated: "<>" or an address once
    // decoded); only sent on to a backend that announces AUTH.
    std::optional<std::string> auth;
};

// AUTH= values longer than this are refused (an address is at most 256
// octets, RFC 5321 §4.5.3.1.3; xtext may triple it).
inline constexpr std::size_t kMaxAuthParameter = 800;
// Whether `xtext` is a valid AUTH= value: "<>" or an address, xtext-encoded.
bool valid_auth_parameter(std::string_view xtext);

struct MailArgument {
    Path path;
    MailParameters params;
};

struct ArgumentError {
    int code;
    std::string enhanced;
    std::string text;
};

// Commands as sent to a backend: the client's envelope, with only the
// parameters this backend announced (SMTPUTF8 is checked by the caller).
struct Capabilities;
std::string mail_command(const Path& sender, const MailParameters& params,
                         const Capabilities& caps);
std::string rcpt_command(const Mailbox& rcpt);

// "FROM:<path> [params]"; returns the error to reply with on failure.
std::optional<ArgumentError> parse_mail_argument(std::string_view argument, MailArgument& out);
// "TO:<path>"; no RCPT parameters are advertised, so any is refused.
std::optional<ArgumentError> parse_rcpt_argument(std::string_view argument, Path& out);

}  // namespace smtplb::proto
