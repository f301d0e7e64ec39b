#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "proto/data_decoder.hpp"

namespace smtplb::core {

// What a report tells the sender (RFC 3464 Action): a final failure, a
// delay (still being retried), or a message relayed to a backend that
// offers no DSN of its own (RFC 3461 §4.2: "relayed").
enum class DsnKind { Failure, Delay, Relayed };

struct DsnRecipient {
    std::string address;
    std::string status;      // RFC 3463 code, e.g. "5.1.1"
    std::string diagnostic;  // the reply that decided it, e.g. "550 5.1.1 No such user"
    // The client's ORCPT, xtext-decoded ("rfc822;u@example.net"); "" when none.
    std::string original_recipient;
};

struct DsnInput {
    DsnKind kind = DsnKind::Failure;
    std::string reporting_mta;  // our hostname
    std::string queue_id;
    std::string sender;  // the envelope sender the report goes to
    std::int64_t arrival_ms = 0;
    std::int64_t now_ms = 0;
    std::int64_t retry_until_ms = 0;   // Delay: when the spool gives up
    std::string envelope_id;           // the client's ENVID, xtext-decoded; "" when none
    std::vector<DsnRecipient> failed;  // the recipients reported on (whatever the kind)
    std::string original_headers;      // the returned message's header section
    // RET=FULL on a failure: the whole message, returned as message/rfc822
    // instead of the headers; "" returns the headers.
    std::string original_message;
};

// A delivery status notification (RFC 3464 in an RFC 6522 multipart/report):
// a readable part, the message/delivery-status part, and the original
// message's headers (text/rfc822-headers) or the message (message/rfc822).
// CRLF lines, ready for DATA.
std::string build_dsn(const DsnInput& input);

// The header section of a message (up to and excluding the empty line),
// at most `max` bytes, cut at a line end.
std::string header_section(const proto::BodySource& body, std::size_t max = 16384);
// The whole message, unstuffed; "" when it is larger than `max` bytes.
std::string whole_message(const proto::BodySource& body, std::size_t max);

// RFC 5322 date-time in UTC, e.g. "Mon, 23 Nov 2026 17:30:00 +0000".
std::string rfc5322_date(std::int64_t epoch_ms);

// The RFC 3463 status in a reply line, or the class default ("4.0.0"/"5.0.0").
std::string status_of(int code, const std::string& enhanced);

}  // namespace smtplb::core
