#include "admin/limits_api.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>

#include "base/units.hpp"

namespace smtplb::admin {
namespace json = boost::json;
using config::LimitKeyPart;

namespace {

constexpr LimitKeyPart kKeyParts[] = {LimitKeyPart::ClientIp, LimitKeyPart::ClientNetwork,
                                      LimitKeyPart::Sender,   LimitKeyPart::SenderDomain,
                                      LimitKeyPart::AuthUser, LimitKeyPart::RecipientDomain,
                                      LimitKeyPart::Listener};

ApiResponse error_response(int status, const std::string& message) {
    json::object o;
    o["error"] = message;
    return {status, "application/json", json::serialize(o) + "\n"};
}

std::int64_t ms(base::Clock::Duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// %XX escapes decoded; false for a '%' not followed by two hex digits.
bool percent_decode(std::string_view in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out += in[i];
            continue;
        }
        if (i + 2 >= in.size()) return false;
        int hi = hex_digit(in[i + 1]), lo = hex_digit(in[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return true;
}

std::string key_parts_text(const std::vector<LimitKeyPart>& parts) {
    std::string out;
    for (auto p : parts)
        out += (out.empty() ? "" : "|") + std::string(config::to_string(p));
    return out;
}

json::object key_state_json(const config::Limit& limit, const core::LimitKeyState& s) {
    json::object o;
    o["key"] = s.key;
    if (limit.is_rate()) {
        o["remaining"] = s.remaining;
        o["reset_after_ms"] = ms(s.reset_after);
    } else {
        o["in_use"] = s.in_use;
    }
    return o;
}

std::optional<std::size_t> find_limit(const core::LimitSet& limits, const std::string& name) {
    for (std::size_t i = 0; i < limits.limits().size(); ++i)
        if (limits.limits()[i].name == name) return i;
    return std::nullopt;
}

using Query = std::vector<std::pair<std::string, std::string>>;

std::optional<Query> parse_query(std::string_view query, std::string& error) {
    Query out;
    std::size_t i = 0;
    while (i < query.size()) {
        auto amp = query.find('&', i);
        if (amp == std::string_view::npos) amp = query.size();
        auto item = query.substr(i, amp - i);
        i = amp + 1;
        if (item.empty()) continue;
        auto eq = item.find('=');
        std::string name, value;
        if (!percent_decode(item.substr(0, eq), name) ||
            !percent_decode(eq == std::string_view::npos ? "" : item.substr(eq + 1), value)) {
            error = "a bad %-escape in the query (write a '%' as %25)";
            return std::nullopt;
        }
        if (name != "key" && name != "limit" && name != "top") {
            error = "unknown parameter \"" + name + "\": use key, limit or top";
            return std::nullopt;
        }
        for (const auto& [seen, _] : out)
            if (seen == name) {
                error = "\"" + name + "\" is given twice";
                return std::nullopt;
            }
        out.emplace_back(std::move(name), std::move(value));
    }
    return out;
}

const std::string* parameter(const Query& query, std::string_view name) {
    for (const auto& [n, v] : query)
        if (n == name) return &v;
    return nullptr;
}

ApiResponse key_response(core::LimitSet& limits, const std::string& key_text,
                         std::optional<std::size_t> only, base::Clock::TimePoint now) {
    std::string error;
    auto values = parse_limit_key(key_text, error);
    if (!values) return error_response(400, "key: " + error);
    std::vector<LimitKeyPart> given;
    for (const auto& [part, value] : *values) {
        given.push_back(part);
        if ((part == LimitKeyPart::ClientIp || part == LimitKeyPart::ClientNetwork) &&
            !base::IpAddress::parse(std::string_view(value).substr(0, value.find('/'))))
            return error_response(400, std::string("key: ") + config::to_string(part) +
                                           " must be an IP address, not \"" + value + "\"");
    }
    json::array found;
    std::vector<std::string> shapes;
    for (std::size_t i = 0; i < limits.limits().size(); ++i) {
        if (only && i != *only) continue;
        const auto& limit = limits.limits()[i];
        auto key = limits.key_of(i, *values);
        if (!key) {
            shapes.push_back(key_parts_text(limit.key));
            continue;
        }
        auto state = limits.inspect(i, *key, now);
        json::object o;
        o["limit"] = limit.name;
        for (auto& [name, value] : key_state_json(limit, state))
            o[name] = value;
        o["counts"] = config::to_string(limit.counts);
        if (limit.is_rate()) {
            o["burst"] = limit.burst;
            o["at_limit"] = state.remaining == 0;
        } else {
            o["concurrency"] = limit.concurrency;
            o["at_limit"] = state.in_use >= limit.concurrency;
        }
        found.push_back(std::move(o));
    }
    if (found.empty()) {
        std::string keyed;
        for (const auto& shape : shapes)
            keyed += (keyed.empty() ? "" : ", ") + shape;
        std::string which = only ? "limit \"" + limits.limits()[*only].name + "\" is" : "limit is";
        return error_response(404, "no " + which + " keyed by " + key_parts_text(given) +
                                       (keyed.empty() ? " (no [[limit]] is configured)"
                                                      : " (keyed by: " + keyed + ")"));
    }
    json::object root;
    root["key"] = key_text;
    root["limits"] = std::move(found);
    return {200, "application/json", json::serialize(root) + "\n"};
}

}  // namespace

std::string limit_summary(const config::Limit& limit) {
    std::string out = config::to_string(limit.counts);
    if (limit.is_rate()) {
        auto quantity = limit.counts == config::LimitCounts::Bytes
                            ? base::format_size(limit.quantity)
                            : std::to_string(limit.quantity);
        out += " " + quantity + "/" + base::format_duration(limit.period) + " burst " +
               (limit.counts == config::LimitCounts::Bytes ? base::format_size(limit.burst)
                                                           : std::to_string(limit.burst));
    } else {
        out += " " + std::to_string(limit.concurrency);
    }
    out += " per " + key_parts_text(limit.key) + ", " + config::to_string(limit.action);
    if (limit.action == config::LimitAction::Delay)
        out += " up to " + base::format_duration(limit.delay);
    if (!limit.listeners.empty()) {
        out += " on";
        for (std::size_t i = 0; i < limit.listeners.size(); ++i)
            out += (i ? ", " : " ") + limit.listeners[i];
    }
    return out;
}

std::optional<core::LimitSet::KeyValues> parse_limit_key(std::string_view key, std::string& error) {
    if (key.empty()) {
        error = "empty; write it as part=value|part=value, e.g. sender=a@example.net";
        return std::nullopt;
    }
    if (key.size() > kMaxKeyLength) {
        error = "longer than " + std::to_string(kMaxKeyLength) + " characters";
        return std::nullopt;
    }
    core::LimitSet::KeyValues out;
    std::size_t i = 0;
    while (i <= key.size()) {
        auto bar = key.find('|', i);
        if (bar == std::string_view::npos) bar = key.size();
        auto item = key.substr(i, bar - i);
        i = bar + 1;
        auto eq = item.find('=');
        if (eq == std::string_view::npos) {
            error = "\"" + std::string(item) + "\" is not part=value";
            return std::nullopt;
        }
        auto name = item.substr(0, eq);
        const LimitKeyPart* part = nullptr;
        for (const auto& p : kKeyParts)
            if (name == config::to_string(p)) part = &p;
        if (!part) {
            error = "\"" + std::string(name) +
                    "\" is not a key part (client_ip, client_network, sender, sender_domain, "
                    "auth_user, recipient_domain, listener)";
            return std::nullopt;
        }
        for (const auto& [seen, _] : out)
            if (seen == *part) {
                error = std::string(name) + " is given twice";
                return std::nullopt;
            }
        std::string value;
        if (!percent_decode(item.substr(eq + 1), value)) {
            error = "a bad %-escape in " + std::string(name) +
                    " (the key escapes '%', '|' and '=' as %25, %7C and %3D)";
            return std::nullopt;
        }
        out.emplace_back(*part, std::move(value));
    }
    return out;
}

json::object limit_json(core::LimitSet& limits, std::size_t index, base::Clock::TimePoint now,
                        std::size_t top) {
    const auto& limit = limits.limits().at(index);
    json::object o;
    o["name"] = limit.name;
    json::array key;
    for (auto part : limit.key)
        key.emplace_back(config::to_string(part));
    o["key"] = std::move(key);
    o["counts"] = config::to_string(limit.counts);
    o["summary"] = limit_summary(limit);
    if (limit.is_rate()) {
        o["quantity"] = limit.quantity;
        o["period_ms"] = limit.period.count();
        o["burst"] = limit.burst;
    } else {
        o["concurrency"] = limit.concurrency;
    }
    o["action"] = config::to_string(limit.action);
    if (limit.action == config::LimitAction::Delay) o["delay_ms"] = limit.delay.count();
    json::array listeners;
    for (const auto& l : limit.listeners)
        listeners.emplace_back(l);
    o["listeners"] = std::move(listeners);
    o["max_keys"] = limit.max_keys;
    auto hits = limits.hits(index);
    json::object h;
    h["tempfail"] = hits.tempfail;
    h["delay"] = hits.delay;
    o["hits"] = std::move(h);
    auto stats = limits.stats(index);
    o["tracked_keys"] = stats.tracked_keys;
    o["evictions"] = stats.evictions;
    o["table_full"] = stats.table_full;
    auto scan = limits.top_keys(index, now);
    json::array nearest;
    for (std::size_t i = 0; i < scan.keys.size() && i < top; ++i)
        nearest.push_back(key_state_json(limit, scan.keys[i]));
    o["nearest"] = std::move(nearest);
    o["nearest_age_ms"] = ms(now - scan.scanned_at);
    return o;
}

json::array limits_json(core::LimitSet& limits, base::Clock::TimePoint now, std::size_t top) {
    json::array out;
    for (std::size_t i = 0; i < limits.limits().size(); ++i)
        out.push_back(limit_json(limits, i, now, top));
    return out;
}

ApiResponse limits_request(core::LimitSet& limits, const std::string& method,
                           std::string_view query_text, base::Clock::TimePoint now) {
    if (method != "GET") return error_response(405, "use GET");
    std::string error;
    auto query = parse_query(query_text, error);
    if (!query) return error_response(400, error);
    std::optional<std::size_t> only;
    if (const auto* name = parameter(*query, "limit")) {
        only = find_limit(limits, *name);
        if (!only) return error_response(404, "no [[limit]] named \"" + *name + "\"");
    }
    const auto* key = parameter(*query, "key");
    const auto* top_text = parameter(*query, "top");
    if (key && top_text) return error_response(400, "top lists keys: it does not go with key");
    if (key) return key_response(limits, *key, only, now);
    std::size_t top = kDefaultTop;
    if (top_text) {
        auto [end, ec] =
            std::from_chars(top_text->data(), top_text->data() + top_text->size(), top);
        if (ec != std::errc{} || end != top_text->data() + top_text->size() || top < 1 ||
            top > kMaxTop)
            return error_response(400, "top must be a number from 1 to " + std::to_string(kMaxTop));
    }
    json::object root;
    root["top"] = top;
    root["scan_interval_ms"] = ms(core::LimitSet::kTopKeysMaxAge);
    json::array list;
    for (std::size_t i = 0; i < limits.limits().size(); ++i)
        if (!only || i == *only) list.push_back(limit_json(limits, i, now, top));
    root["limits"] = std::move(list);
    return {200, "application/json", json::serialize(root) + "\n"};
}

}  // namespace smtplb::admin
