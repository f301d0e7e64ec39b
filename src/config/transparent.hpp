#pragma once
#include "base/network.hpp"
#include "config/config.hpp"
#include "config/diagnostics.hpp"
#include "config/key_lines.hpp"
#include "config/table_reader.hpp"

namespace smtplb::config {

// client_identity (xclient | proxy-v1 | proxy-v2 | none | transparent |
// transparent+xclient) and transparent_port, into client_identity and
// transparent.
void read_client_identity(TableReader& r, Listener& l);
// One listener's transparent settings against the rest of it.
void check_transparent(TableReader& r, const Listener& l);
// Each transparent listener against the backends it can reach: a backend
// connection keeps the client's address family, so an IPv4 client never
// reaches an IPv6 backend transparently (and the reverse).
void check_transparent_families(const Config& c, const KeyLines& lines, Diagnostics& d);
// Whether a transparent connection from `client` can reach `backend`
// (same address family).
bool transparent_reachable(const base::IpAddress& client, const base::HostPort& backend);

}  // namespace smtplb::config
