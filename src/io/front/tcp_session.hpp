#pragma once
#include <string>

#include "io/asio.hpp"

namespace smtplb::io {

class Listener;

// A "tcp" listener's connection: one backend chosen per connection by the
// pool (with its scheduler, health and retries on connect), an optional
// PROXY header to it, then bytes copied both ways until both sides are done.
// Releases the listener's accounting for `client` on the way out.
// `peer` is the client's address as accepted (saves asking the kernel again).
awaitable<void> run_tcp_session(tcp::socket socket, Listener& listener, std::string client,
                                tcp::endpoint peer);

}  // namespace smtplb::io
