#pragma once
#include "config/config.hpp"
#include "config/diagnostics.hpp"
#include "config/key_lines.hpp"

namespace smtplb::app {

// Whether this process may bind sockets to addresses that are not its own
// (IP_TRANSPARENT): CAP_NET_ADMIN in its effective set. Root without the
// capability (a unit's CapabilityBoundingSet, a container) has not.
bool has_net_admin();

// One finding per listener with client_identity = "transparent..." when
// `permitted` is false: a warning for `check` (the service may be granted
// the capability by its unit), an error for `run` (each backend connection
// would fail). Returns whether an error was added.
bool check_transparent_privilege(const config::Config& config, const config::KeyLines& lines,
                                 bool permitted, bool as_error, config::Diagnostics& diags);

}  // namespace smtplb::app
