#pragma once
#include <string_view>

#include "config/config.hpp"
#include "config/table_reader.hpp"

namespace smtplb::config {

// pool.discover = { mx = "example.org" } | { a = "hubs.example.org", port = 25 }
// | { srv = "_smtp._tcp.example.org" }, with min_refresh and max_refresh:
// exactly one kind, a valid domain name, a port only for `a`.
void read_discover(TableReader& r, Pool& p);

// A name DNS can be asked: labels of letters, digits, '-' and '_' (SRV's
// "_smtp._tcp"), 1 to 63 characters each, 253 in all, at least two labels;
// one final dot allowed.
bool valid_discover_name(std::string_view name);

}  // namespace smtplb::config
