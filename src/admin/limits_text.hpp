#pragma once
#include <boost/json.hpp>
#include <string>

namespace smtplb::admin {

// The command line's tables, from the API's JSON (GET /api/v1/limits and
// the status document's "limits"; GET /api/v1/limits?key=...). Fields that
// are missing print as "-": an older daemon's answer still prints.

// Each limit: hits, tracked keys, evictions and its one-line summary, then
// the keys nearest it, one a line, indented.
std::string format_limits(const boost::json::array& limits);
// One key's state under each limit that has it.
std::string format_key_states(const boost::json::object& answer);
// A key's state in words: "0 of 5 left, all back in 52s (at the limit)",
// "3 of 3 in use (at the limit)".
std::string key_state_words(const boost::json::object& state, const boost::json::object& limit);

}  // namespace smtplb::admin
