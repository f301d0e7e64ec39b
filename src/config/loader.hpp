#pragma once
#include <optional>
#include <string>

#include "config/config.hpp"
#include "config/diagnostics.hpp"

namespace smtplb::config {

struct LoadResult {
    std::optional<Config> config;  // set only when there is no error
    Diagnostics diagnostics;
};

LoadResult load_string(const std::string& text, const std::string& source_name);
LoadResult load_file(const std::string& path);

}  // namespace smtplb::config
