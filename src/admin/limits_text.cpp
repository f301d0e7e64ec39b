#include "admin/limits_text.hpp"

#include <cstdint>

namespace smtplb::admin {
namespace json = boost::json;

namespace {

std::string text(const json::object& o, const char* key) {
    const auto* v = o.if_contains(key);
    if (!v) return "-";
    if (v->is_string()) return std::string(v->as_string());
    return json::serialize(*v);
}

std::uint64_t number(const json::object& o, const char* key) {
    const auto* v = o.if_contains(key);
    if (!v) return 0;
    if (v->is_uint64()) return v->as_uint64();
    if (v->is_int64()) return v->as_int64() < 0 ? 0 : static_cast<std::uint64_t>(v->as_int64());
    return 0;
}

// Whole seconds, rounded up: "52s", "1m 5s"; "0s" once it is back.
std::string seconds_text(std::uint64_t ms) {
    auto s = (ms + 999) / 1000;
    if (s < 60) return std::to_string(s) + "s";
    if (s < 3600) return std::to_string(s / 60) + "m " + std::to_string(s % 60) + "s";
    return std::to_string(s / 3600) + "h " + std::to_string(s / 60 % 60) + "m";
}

// Left-aligned in `width` (a longer text is kept whole, one space after it).
std::string left(const std::string& s, std::size_t width) {
    return s.size() < width ? s + std::string(width - s.size(), ' ') : s + " ";
}
std::string right(const std::string& s, std::size_t width) {
    return s.size() < width ? std::string(width - s.size(), ' ') + s + " " : s + " ";
}

}  // namespace

std::string key_state_words(const json::object& state, const json::object& limit) {
    if (state.contains("in_use")) {
        auto in_use = number(state, "in_use");
        auto max = number(limit, "concurrency");
        std::string out = std::to_string(in_use) + " of " + text(limit, "concurrency") + " in use";
        if (limit.contains("concurrency") && in_use >= max) out += " (at the limit)";
        return out;
    }
    auto remaining = number(state, "remaining");
    std::string out = std::to_string(remaining) + " of " + text(limit, "burst") + " left";
    if (number(state, "reset_after_ms") > 0)
        out += ", all back in " + seconds_text(number(state, "reset_after_ms"));
    if (state.contains("remaining") && remaining == 0) out += " (at the limit)";
    return out;
}

std::string format_limits(const json::array& limits) {
    if (limits.empty()) return "no [[limit]] is configured\n";
    std::string out = left("LIMIT", 20) + right("TEMPFAIL", 9) + right("DELAYED", 9) +
                      right("KEYS", 9) + right("EVICTED", 9) + " WHAT\n";
    for (const auto& v : limits) {
        if (!v.is_object()) continue;
        const auto& l = v.as_object();
        json::object hits;
        if (const auto* h = l.if_contains("hits"); h && h->is_object()) hits = h->as_object();
        out += left(text(l, "name"), 20) + right(text(hits, "tempfail"), 9) +
               right(text(hits, "delay"), 9) + right(text(l, "tracked_keys"), 9) +
               right(text(l, "evictions"), 9) + " " + text(l, "summary") + "\n";
        const auto* nearest = l.if_contains("nearest");
        if (!nearest || !nearest->is_array()) continue;
        for (const auto& k : nearest->as_array()) {
            if (!k.is_object()) continue;
            out += "    " + text(k.as_object(), "key") + "  " + key_state_words(k.as_object(), l) +
                   "\n";
        }
    }
    return out;
}

std::string format_key_states(const json::object& answer) {
    std::string out = left("LIMIT", 20) + left("KEY", 40) + "STATE\n";
    const auto* limits = answer.if_contains("limits");
    if (!limits || !limits->is_array()) return out;
    for (const auto& v : limits->as_array()) {
        if (!v.is_object()) continue;
        const auto& s = v.as_object();
        out += left(text(s, "limit"), 20) + left(text(s, "key"), 40) + key_state_words(s, s) + "\n";
    }
    return out;
}

}  // namespace smtplb::admin
