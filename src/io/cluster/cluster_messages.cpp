#include "io/cluster/cluster_messages.hpp"

#include <boost/json.hpp>
#include <charconv>
#include <sstream>

namespace smtplb::io {
namespace json = boost::json;
namespace {

std::optional<std::uint16_t> port_number(const std::string& text) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535)
        return std::nullopt;
    return static_cast<std::uint16_t>(value);
}

std::optional<base::HostPort> address(const std::string& host, const std::string& port) {
    auto number = port_number(port);
    if (host.empty() || !number) return std::nullopt;
    return base::HostPort{host, *number};
}

}  // namespace

// --- Heartbeats ---

json::array backend_opinions_json(const std::vector<core::cluster::BackendOpinion>& opinions) {
    json::array backends;
    for (const auto& b : opinions) {
        json::object e;
        e["pool"] = b.pool;
        e["backend"] = b.backend;
        e["health"] = b.health;
        e["admin"] = b.admin;
        e["accepts_new"] = b.accepts_new;
        if (!b.reason.empty()) e["reason"] = b.reason;
        backends.push_back(std::move(e));
    }
    return backends;
}

std::string encode_heartbeat(const core::cluster::Heartbeat& h) {
    json::object o;
    o["node"] = h.node;
    o["version"] = h.version;
    o["digest"] = h.digest;
    o["started_ms"] = h.started_ms;
    o["sequence"] = h.sequence;
    o["sessions"] = h.sessions;
    o["messages_per_second"] = h.messages_per_second;
    o["backends"] = backend_opinions_json(h.backends);
    return json::serialize(o);
}

namespace {

std::string string_of(const json::object& o, const char* key) {
    const auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

template <typename T>
T number_of(const json::object& o, const char* key) {
    const auto* v = o.if_contains(key);
    if (!v || !v->is_number()) return T{};
    std::error_code ec;
    auto n = v->to_number<T>(ec);
    return ec ? T{} : n;
}

}  // namespace

std::optional<core::cluster::Heartbeat> decode_heartbeat(const std::string& text) {
    std::error_code ec;
    auto doc = json::parse(text, ec);
    if (ec || !doc.is_object()) return std::nullopt;
    const auto& o = doc.as_object();
    core::cluster::Heartbeat h;
    h.node = string_of(o, "node");
    if (h.node.empty()) return std::nullopt;
    h.version = string_of(o, "version");
    h.digest = string_of(o, "digest");
    h.started_ms = number_of<std::int64_t>(o, "started_ms");
    h.sequence = number_of<std::uint64_t>(o, "sequence");
    h.sessions = number_of<std::uint64_t>(o, "sessions");
    h.messages_per_second = number_of<double>(o, "messages_per_second");
    if (const auto* list = o.if_contains("backends"); list && list->is_array())
        for (const auto& v : list->as_array()) {
            if (!v.is_object()) continue;
            const auto& e = v.as_object();
            core::cluster::BackendOpinion b;
            b.pool = string_of(e, "pool");
            b.backend = string_of(e, "backend");
            b.health = string_of(e, "health");
            b.admin = string_of(e, "admin");
            const auto* accepts = e.if_contains("accepts_new");
            b.accepts_new = accepts && accepts->is_bool() && accepts->as_bool();
            b.reason = string_of(e, "reason");
            h.backends.push_back(std::move(b));
        }
    return h;
}

// --- Sentinels ---

std::optional<base::HostPort> master_address(const RedisReply& reply) {
    if (reply.kind != RedisReply::Kind::Array || reply.elements.size() != 2) return std::nullopt;
    const auto& host = reply.elements[0];
    const auto& port = reply.elements[1];
    if (host.kind != RedisReply::Kind::String || port.kind != RedisReply::Kind::String)
        return std::nullopt;
    return address(host.text, port.text);
}

std::optional<MasterSwitch> parse_switch_master(const std::string& message) {
    std::istringstream in(message);
    std::string name, from_host, from_port, to_host, to_port, extra;
    if (!(in >> name >> from_host >> from_port >> to_host >> to_port) || (in >> extra))
        return std::nullopt;
    auto from = address(from_host, from_port);
    auto to = address(to_host, to_port);
    if (!from || !to) return std::nullopt;
    return MasterSwitch{name, *from, *to};
}

RedisRole role_of(const RedisReply& reply) {
    if (reply.kind != RedisReply::Kind::Array || reply.elements.empty() ||
        reply.elements[0].kind != RedisReply::Kind::String)
        return RedisRole::Unknown;
    const auto& role = reply.elements[0].text;
    if (role == "master") return RedisRole::Master;
    if (role == "slave" || role == "replica") return RedisRole::Replica;
    return RedisRole::Other;
}

bool is_demoted_error(const RedisReply& reply) {
    return reply.kind == RedisReply::Kind::Error && reply.text.rfind("READONLY", 0) == 0;
}

bool same_address(const base::HostPort& a, const base::HostPort& b) {
    return a.host == b.host && a.port == b.port;
}

// --- Sticks ---

std::string encode_stick(const StickMessage& s) {
    return s.node + "\t" + s.pool + "\t" + s.client + "\t" + s.backend;
}

std::optional<StickMessage> parse_stick(const std::string& message) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
        auto tab = message.find('\t', start);
        parts.push_back(message.substr(start, tab - start));
        if (tab == std::string::npos) break;
        start = tab + 1;
    }
    if (parts.size() != 4) return std::nullopt;
    for (const auto& p : parts)
        if (p.empty()) return std::nullopt;
    return StickMessage{parts[0], parts[1], parts[2], parts[3]};
}

// --- The shared limits' script ---

namespace {

// One batch's answer, from `at` in the script's answer (all integers);
// `at` moves past it. Nothing when the answer does not fit the batch.
std::optional<core::LimitBatchResult> parse_batch(const RedisReply& reply, std::size_t& at,
                                                  std::size_t ops) {
    const auto& e = reply.elements;
    if (at >= e.size()) return std::nullopt;
    core::LimitBatchResult result;
    const long long refused = e[at].integer;
    if (refused != 0) {
        if (refused < 0 || at + 1 >= e.size() || static_cast<std::size_t>(refused) > ops)
            return std::nullopt;
        result.refused = static_cast<std::size_t>(refused - 1);
        const long long retry = e[at + 1].integer;
        result.retry_after = retry < 0 ? core::Gcra::kNever
                                       : std::chrono::duration_cast<base::Clock::Duration>(
                                             std::chrono::microseconds(retry));
        at += 2;
        return result;
    }
    if (e.size() - at < 2 * ops + 1) return std::nullopt;
    result.refused = ops;
    result.ops.resize(ops);
    for (std::size_t i = 0; i < ops; ++i) {
        const long long hold = e[at + 1 + 2 * i].integer;
        const long long granted = e[at + 2 + 2 * i].integer;
        if (hold < 0 || granted < 0) return std::nullopt;
        result.ops[i].wait =
            std::chrono::duration_cast<base::Clock::Duration>(std::chrono::microseconds(hold));
        result.ops[i].granted = static_cast<std::uint64_t>(granted);
    }
    at += 2 * ops + 1;
    return result;
}

bool all_integers(const RedisReply& reply) {
    if (reply.kind != RedisReply::Kind::Array) return false;
    for (const auto& e : reply.elements)
        if (e.kind != RedisReply::Kind::Integer) return false;
    return true;
}

}  // namespace

std::optional<std::vector<core::LimitBatchResult>> parse_limit_reply(
    const RedisReply& reply, const std::vector<std::size_t>& ops) {
    if (!all_integers(reply)) return std::nullopt;
    std::vector<core::LimitBatchResult> out;
    std::size_t at = 0;
    for (auto n : ops) {
        auto result = parse_batch(reply, at, n);
        if (!result) return std::nullopt;
        out.push_back(std::move(*result));
    }
    if (at != reply.elements.size()) return std::nullopt;
    return out;
}

}  // namespace smtplb::io
