#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace smtplb::base {

// RFC 4648 base64 with padding, as SASL uses it (RFC 4954).
std::string base64_encode(std::string_view bytes);
// Strict: the standard alphabet, padding to a multiple of four, no spaces,
// no bits left over; nothing when the text is not exactly that.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace smtplb::base
