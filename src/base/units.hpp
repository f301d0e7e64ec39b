#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace smtplb::base {

// "50MiB", "10MB", "4096", "1GiB" -> bytes. Binary and decimal suffixes.
std::optional<std::uint64_t> parse_size(std::string_view text);
// "250ms", "5s", "10m", "1h", "2d" -> milliseconds.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// The inverse, in the largest unit that is exact, so what an administrator
// reads is what they would write: 300000ms -> "5m", 10485760 -> "10MiB",
// 10000000 -> "10MB", 1500 -> "1500ms", 4097 -> "4097B".
std::string format_duration(std::chrono::milliseconds duration);
std::string format_size(std::uint64_t bytes);

}  // namespace smtplb::base
