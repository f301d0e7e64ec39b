#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace smtplb::base {

char ascii_lower(char c);
std::string to_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
bool istarts_with(std::string_view s, std::string_view prefix);
std::string_view trim(std::string_view s);
// Splits on runs of spaces and tabs; empty fields are dropped.
std::vector<std::string_view> split_words(std::string_view s);
// Printable rendering of untrusted bytes for logs and errors (bounded length).
std::string printable(std::string_view s, std::size_t max_len = 200);
// One logfmt value: made printable, quoted when it holds spaces, quotes, '='
// or nothing at all.
std::string logfmt_value(std::string_view raw);
// The number of single-character insertions, deletions, substitutions and
// swaps of two neighbours that turn `a` into `b` (for "did you mean").
std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace smtplb::base
