#pragma once
#include <optional>
#include <string>

#include "config/config.hpp"
#include "config/diagnostics.hpp"
#include "config/key_lines.hpp"

namespace smtplb::config {

struct LoadResult {
    std::optional<Config> config;  // set only when there is no error
    Diagnostics diagnostics;
    KeyLines lines;  // for checks made after loading
};

LoadResult load_string(const std::string& text, const std::string& source_name);
LoadResult load_file(const std::string& path);

}  // namespace smtplb::config
