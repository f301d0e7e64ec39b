#pragma once
#include <string>

#include "io/asio.hpp"

namespace smtplb::io {

class Listener;

// Serves one client connection until it ends; releases the listener's
// accounting for `client` on the way out.
// `loop`: the index of the event loop it runs on (EventLoops).
awaitable<void> run_client_session(tcp::socket socket, Listener& listener, std::string client,
                                   std::size_t loop);

}  // namespace smtplb::io
