#pragma once
#include "io/asio.hpp"
#include "proto/proxy_header.hpp"

namespace smtplb::io {

// Reads the PROXY header that starts a connection, exactly: nothing behind
// it is consumed (an implicit-TLS ClientHello may follow in the same
// segment). A broken or timed-out connection comes back Invalid. Cancel the
// socket to time it out.
awaitable<proto::ProxyParse> read_proxy_header(tcp::socket& socket, proto::ProxyVersions versions);

}  // namespace smtplb::io
