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

// RFC 3461 §4.3 RET: what a failure report returns of the message.
enum class DsnReturn { Unset, Full, Headers };

// MAIL FROM parameters we implement (RFC 1870, 6152, 6531, 3461, 4954).
struct MailParameters {
    std::optional<std::uint64_t> size;
    bool body_8bitmime = false;
    bool smtputf8 = false;
    bool requiretls = false;  // RFC 8689: accepted in TLS only (ServerSession)
    DsnReturn ret = DsnReturn::Unset;
    std::string envid;  // RFC 3461 §4.4 ENVID, xtext as received; "" when absent
    // RFC 4954 §5 AUTH=, xtext as sent (validated: "<>" or an address once
    // decoded); only sent on to a backend that announces AUTH.
    std::optional<std::string> auth;
};

// AUTH= values longer than this are refused (an address is at most 256
// octets, RFC 5321 §4.5.3.1.3; xtext may triple it).
inline constexpr std::size_t kMaxAuthParameter = 800;
// Whether `xtext` is a valid AUTH= value: "<>" or an address, xtext-encoded.
bool valid_auth_parameter(std::string_view xtext);

// RCPT TO parameters (RFC 3461 §4.1, §4.2), kept per recipient.
struct RcptParameters {
    enum : std::uint8_t { Never = 1, Success = 2, Failure = 4, Delay = 8 };
    std::uint8_t notify = 0;  // NOTIFY bits; 0 = not given
    std::string orcpt;        // "addr-type;xtext" as received; "" when absent

    bool empty() const { return notify == 0 && orcpt.empty(); }
    // Without NOTIFY, RFC 3461 §4.1 leaves it to the MTA: failures and delays.
    bool wants_failure() const { return notify == 0 || (notify & Failure) != 0; }
    bool wants_delay() const { return notify == 0 || (notify & Delay) != 0; }
    bool wants_success() const { return (notify & Success) != 0; }
    // "NEVER" or the keywords in RFC order ("SUCCESS,FAILURE,DELAY"); "" when absent.
    std::string notify_keywords() const;
    // The ORCPT address, xtext-decoded ("rfc822;u@example.net"); "" when absent.
    std::string original_recipient() const;
};

// RFC 3461 bounds on the xtext values.
inline constexpr std::size_t kMaxEnvidLength = 100;
inline constexpr std::size_t kMaxOrcptLength = 500;

struct MailArgument {
    Path path;
    MailParameters params;
};

struct RcptArgument {
    Path path;
    RcptParameters params;
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
// With the DSN parameters when the backend announced DSN (RFC 3461 §4.2).
std::string rcpt_command(const Mailbox& rcpt, const RcptParameters& params,
                         const Capabilities& caps);

// "FROM:<path> [params]"; returns the error to reply with on failure.
// `dsn_offered` false: RET and ENVID are refused as Postfix does without DSN.
std::optional<ArgumentError> parse_mail_argument(std::string_view argument, MailArgument& out,
                                                 bool dsn_offered = true);
// "TO:<path> [NOTIFY=...] [ORCPT=...]"; any other parameter is refused.
std::optional<ArgumentError> parse_rcpt_argument(std::string_view argument, RcptArgument& out,
                                                 bool dsn_offered = true);
// The path alone (tests, tools): DSN parameters are accepted and dropped.
std::optional<ArgumentError> parse_rcpt_argument(std::string_view argument, Path& out);

}  // namespace smtplb::proto
