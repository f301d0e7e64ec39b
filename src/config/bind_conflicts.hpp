#pragma once
#include "config/config.hpp"
#include "config/diagnostics.hpp"
#include "config/key_lines.hpp"

namespace smtplb::config {

// Addresses the daemon would fail to bind because another of its own
// sockets has them: two listeners, or a listener and the admin API, on the
// same port where one address covers the other ("0.0.0.0:25" covers every
// IPv4 address on port 25; "[::]:25" covers IPv4 too, as the sockets are
// dual-stack). Port 0 (any free port) never collides.
void check_bind_conflicts(const Config& config, const KeyLines& lines, Diagnostics& diags);

}  // namespace smtplb::config
