#pragma once
#include <string>
#include <vector>

namespace smtplb::config::toml_text {

// A TOML basic string: `s` in double quotes, with `"` and `\` escaped.
std::string quoted(const std::string& s);
// A TOML array of basic strings.
std::string list(const std::vector<std::string>& items);

}  // namespace smtplb::config::toml_text
