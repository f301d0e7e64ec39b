#pragma once
#include <boost/json.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "admin/api.hpp"
#include "core/limits/limit_set.hpp"

namespace smtplb::admin {

// How many keys nearest their limits a listing shows: ?top=N, 1..kMaxTop.
constexpr std::size_t kDefaultTop = 10;
constexpr std::size_t kMaxTop = core::LimitSet::kTopKeys;
// The status document's share (smtplb status, the dashboard).
constexpr std::size_t kStatusTop = 5;
// The longest ?key= taken (a key is at most a few SMTP-bounded values).
constexpr std::size_t kMaxKeyLength = 2048;

// GET /api/v1/limits[?top=N][&limit=NAME]: every limit (or one) with its
// configuration, hits, tracked keys, evictions and the N keys nearest it.
// GET /api/v1/limits?key=K[&limit=NAME]: K's state under every limit keyed
// by K's parts (or under NAME). A malformed query is a 400 that says what
// is wrong; a well-formed key no limit is keyed by, or an unknown limit
// name, a 404. `query`: what follows '?' in the target, URL-encoded.
ApiResponse limits_request(core::LimitSet& limits, const std::string& method,
                           std::string_view query, base::Clock::TimePoint now);

// One limit as the listing and the status document show it, with its
// `top` keys nearest their limit (from LimitSet::top_keys, so from a scan
// at most a few seconds old, whose age it gives).
boost::json::object limit_json(core::LimitSet& limits, std::size_t index,
                               base::Clock::TimePoint now, std::size_t top);
// Every limit, for the status document's "limits".
boost::json::array limits_json(core::LimitSet& limits, base::Clock::TimePoint now, std::size_t top);

// "messages 10/1m burst 5 per sender, tempfail": a limit in one line.
std::string limit_summary(const config::Limit& limit);

// A key as the tracking log writes it ("sender=a@example.net|client_ip=
// 192.0.2.7"; '%', '|' and '=' in a value %-escaped), its parts in any
// order, the values unescaped. None with `error` saying why.
std::optional<core::LimitSet::KeyValues> parse_limit_key(std::string_view key, std::string& error);

}  // namespace smtplb::admin
