#pragma once
#include <string>

#include "config/config.hpp"

namespace smtplb::config {

// The effective configuration, defaults filled in, as TOML.
std::string describe(const Config& config);

}  // namespace smtplb::config
