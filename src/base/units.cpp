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

}  // namespace smtplb::base
