#pragma once
#include "config/config.hpp"
#include "config/diagnostics.hpp"
#include "config/key_lines.hpp"
#include "config/table_reader.hpp"

namespace smtplb::config {

// One [[route]] table: its conditions (recipient, auth_user, client_network,
// listener) and its pool.
void read_route(TableReader& r, Route& route);
// What needs the whole file: pools and listeners that exist, conditions a
// listener can never meet.
void check_routes(const Config& config, const KeyLines& lines, Diagnostics& d);

}  // namespace smtplb::config
