#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace smtplb::proto {

// RFC 3461 §4 xtext: '+', '=', controls, space and non-ASCII become "+XX".
std::string xtext_encode(std::string_view raw);
std::optional<std::string> xtext_decode(std::string_view encoded);

}  // namespace smtplb::proto
