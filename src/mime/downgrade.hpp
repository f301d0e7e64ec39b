#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace smtplb::mime {

// True when `bytes` hold an octet above 127 (RFC 6152 "8-bit data").
bool has_8bit(std::string_view bytes);

// Bounds on what downgrade_to_7bit() takes on. Every MIME part announces
// itself with a Content-Type header, so counting those lines bounds both the
// number of parts and the nesting before the parser sees the message.
struct DowngradeLimits {
    std::uint64_t max_size = 64ull << 20;  // the message as received
    std::size_t max_content_types = 1000;  // "Content-Type:" lines, at any depth
    std::size_t max_depth = 100;           // multipart and message/rfc822 levels (Postfix's
                                           // mime_nesting_limit)
};

struct DowngradeResult {
    std::string message;  // the converted message, CRLF line endings (when ok())
    std::string error;    // why it was not converted; "" on success
    std::size_t parts_converted = 0;
    bool ok() const { return error.empty(); }
};

// Converts an 8-bit message (RFC 5322 content, CRLF, not dot-stuffed) into
// 7-bit MIME, the way Postfix's smtp client does for a server without
// 8BITMIME: each leaf part whose Content-Transfer-Encoding is 8bit or binary,
// or that is declared 7bit (or nothing) but holds 8-bit octets, is re-encoded
// (text/* and message/* as quoted-printable, lines of at most 76 characters;
// other types as base64); multipart and message/rfc822 containers are walked
// and their own "8bit"/"binary" Content-Transfer-Encoding becomes "7bit". A
// message with no MIME headers is text/plain and gets "MIME-Version: 1.0".
// Headers are left as they are, 8-bit octets included (as Postfix does: an
// encoded-word rewrite would change what the recipient sees); so are parts
// already 7-bit, quoted-printable or base64. Callers only pass messages that
// has_8bit(): a 7-bit message must go out unchanged, byte for byte.
DowngradeResult downgrade_to_7bit(std::string_view message, const DowngradeLimits& limits = {});

// The message of a DATA stream stored dot-stuffed (BodyForm::Transmission):
// the one '.' added at the start of a line that begins with '.' removed.
std::string unstuff(std::string_view transmission);

}  // namespace smtplb::mime
