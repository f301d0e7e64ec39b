#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "proto/data_decoder.hpp"

namespace smtplb::core {

struct DsnRecipient {
    std::string address;
    std::string status;      // RFC 3463 code, e.g. "5.1.1"
    std::string diagnostic;  // the reply that decided it, e.g. "550 5.1.1 No such user"
};

struct DsnInput {
    std::string reporting_mta;  // our hostname
    std::string queue_id;
    std::string sender;  // the envelope sender the report goes to
    std::int64_t arrival_ms = 0;
    std::int64_t now_ms = 0;
    std::vector<DsnRecipient> failed;
    std::string original_headers;  // the returned message's header section
};

// A delivery status notification (RFC 3464 in an RFC 6522 multipart/report):
// a readable part, the message/delivery-status part, and the original
// message's headers (text/rfc822-headers). CRLF lines, ready for DATA.
std::string build_dsn(const DsnInput& input);

// The header section of a message (up to and excluding the empty line),
// at most `max` bytes, cut at a line end.
std::string header_section(const proto::BodySource& body, std::size_t max = 16384);

// RFC 5322 date-time in UTC, e.g. "Mon, 23 Nov 2026 17:30:00 +0000".
std::string rfc5322_date(std::int64_t epoch_ms);

// The RFC 3463 status in a reply line, or the class default ("4.0.0"/"5.0.0").
std::string status_of(int code, const std::string& enhanced);

}  // namespace smtplb::core
