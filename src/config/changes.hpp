#pragma once
#include <string>
#include <vector>

#include "config/config.hpp"

namespace smtplb::config {

// What a reload changes, in words, one entry per change, in the order of
// the file: "added listener submission on 0.0.0.0:587 (mode smtp, role
// submission)", "removed backend hub3 from pool hubs", "weight of backend
// hub2 in pool hubs: 1 -> 2", "health.interval of pool hubs: 5s -> 10s".
// Listeners and pools are matched by name, backends by pool and name, so a
// rename reads as a removal and an addition; routes are a list in order.
// Every key `smtplb check` prints is compared (the admin token is not
// printed, so never shown). Empty: nothing changed.
std::vector<std::string> describe_changes(const Config& before, const Config& after);

}  // namespace smtplb::config
