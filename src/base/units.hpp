#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace smtplb::base {

// "50MiB", "10MB", "4096", "1GiB" -> bytes. Binary and decimal suffixes.
std::optional<std::uint64_t> parse_size(std::string_view text);
// "250ms", "5s", "10m", "1h", "2d" -> milliseconds.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

}  // namespace smtplb::base
