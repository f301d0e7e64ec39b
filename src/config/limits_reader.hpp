#pragma once
#include <cstdint>
#include <optional>
#include <string_view>

#include "config/config.hpp"
#include "config/diagnostics.hpp"
#include "config/key_lines.hpp"
#include "config/table_reader.hpp"

namespace smtplb::config {

// One [[limit]] table.
void read_limit(TableReader& r, Limit& limit);
// What needs the whole file: unique names, listeners that exist.
void check_limits(const Config& config, const KeyLines& lines, Diagnostics& d);

// "10/1m", "10/m", "500/1h"; with `sizes`, the quantity may be "50MiB".
struct RateText {
    std::uint64_t quantity = 0;
    std::chrono::milliseconds period{0};
};
std::optional<RateText> parse_rate(std::string_view text, bool sizes);

}  // namespace smtplb::config
