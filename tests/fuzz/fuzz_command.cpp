// SMTP command lines: verb table, MAIL/RCPT arguments, paths and parameters.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proto/command.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view line(reinterpret_cast<const char*>(data), size);
    auto cmd = smtplb::proto::parse_command(line);
    smtplb::proto::MailArgument mail;
    smtplb::proto::parse_mail_argument(cmd.argument, mail);
    if (mail.params.envid.size() > smtplb::proto::kMaxEnvidLength) __builtin_trap();
    smtplb::proto::RcptArgument rcpt;
    if (!smtplb::proto::parse_rcpt_argument(cmd.argument, rcpt)) {
        // Whatever parses must be a bounded, printable-enough address.
        if (rcpt.path.mailbox.address().size() > 300) __builtin_trap();
        // DSN parameters within the RFC's bounds, NEVER alone.
        const auto& p = rcpt.params;
        if (p.orcpt.size() > smtplb::proto::kMaxOrcptLength) __builtin_trap();
        if ((p.notify & p.Never) && p.notify != p.Never) __builtin_trap();
        (void)p.original_recipient();
    }
    return 0;
}
