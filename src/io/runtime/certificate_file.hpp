#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace smtplb::io {

// Seconds from now until the first certificate in a PEM file (the leaf of
// a chain file) stops being valid; negative when it has expired. Empty,
// with `error` set, when the file holds no certificate OpenSSL can read.
std::optional<std::int64_t> certificate_seconds_left(const std::string& path, std::string& error);

}  // namespace smtplb::io
