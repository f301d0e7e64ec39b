#include "base/units.hpp"

#include <charconv>
#include <limits>

#include "base/text.hpp"

namespace smtplb::base {
namespace {

// Splits "123unit" into its number and unit; rejects anything else.
bool split_number(std::string_view text, std::uint64_t& number, std::string_view& unit) {
    text = trim(text);
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec != std::errc{} || ptr == text.data()) return false;
    unit = trim(std::string_view(ptr, text.data() + text.size() - ptr));
    return true;
}

std::optional<std::uint64_t> multiply(std::uint64_t n, std::uint64_t factor) {
    if (factor != 0 && n > std::numeric_limits<std::uint64_t>::max() / factor) return std::nullopt;
    return n * factor;
}

}  // namespace

std::optional<std::uint64_t> parse_size(std::string_view text) {
    std::uint64_t n = 0;
    std::string_view unit;
    if (!split_number(text, n, unit)) return std::nullopt;
    struct Unit {
        std::string_view name;
        std::uint64_t factor;
    };
    static constexpr Unit units[] = {
        {"", 1},           {"b", 1},           {"k", 1000},        {"kb", 1000},
        {"kib", 1024},     {"m", 1000000},     {"mb", 1000000},    {"mib", 1048576},
        {"g", 1000000000}, {"gb", 1000000000}, {"gib", 1073741824}};
    for (const auto& u : units)
        if (iequals(unit, u.name)) return multiply(n, u.factor);
    return std::nullopt;
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
    std::uint64_t n = 0;
    std::string_view unit;
    if (!split_number(text, n, unit)) return std::nullopt;
    struct Unit {
        std::string_view name;
        std::uint64_t factor;
    };
    static constexpr Unit units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    for (const auto& u : units) {
        if (unit == u.name) {
            auto ms = multiply(n, u.factor);
            if (!ms || *ms > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                return std::nullopt;
            return std::chrono::milliseconds(static_cast<std::int64_t>(*ms));
        }
    }
    return std::nullopt;
}

std::string format_duration(std::chrono::milliseconds duration) {
    const auto ms = duration.count();
    if (ms == 0) return "0s";
    struct Unit {
        const char* name;
        std::int64_t factor;
    };
    static constexpr Unit units[] = {
        {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    for (const auto& u : units)
        if (ms % u.factor == 0) return std::to_string(ms / u.factor) + u.name;
    return std::to_string(ms) + "ms";  // unreachable: every count divides by 1
}

std::string format_size(std::uint64_t bytes) {
    if (bytes == 0) return "0B";
    struct Unit {
        const char* name;
        std::uint64_t factor;
    };
    // Binary first: limits are usually powers of two; a decimal unit only
    // when the binary one would not be exact.
    static constexpr Unit units[] = {{"GiB", 1ull << 30}, {"GB", 1000000000},  {"MiB", 1ull << 20},
                                     {"MB", 1000000},     {"KiB", 1ull << 10}, {"kB", 1000}};
    for (const auto& u : units)
        if (bytes % u.factor == 0) return std::to_string(bytes / u.factor) + u.name;
    return std::to_string(bytes) + "B";
}

}  // namespace smtplb::base
