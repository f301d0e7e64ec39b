#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace smtplb::proto {

// RFC 3461 §4 xtext: '+', '=', controls, space and non-ASCII become "+XX".
std::string xtext_encode(std::string_view raw);
std::optional<std::string> xtext_decode(std::string_view encoded);
// For values a client sent (ENVID, ORCPT) on their way into a report:
// "+XX" in either case is decoded, anything else is kept as it is.
std::string xtext_decode_lenient(std::string_view encoded);

}  // namespace smtplb::proto
