#pragma once
#include "io/asio.hpp"
#include "proto/reply.hpp"
#include "proto/server_session.hpp"

namespace smtplb::io {

class Listener;
class TransactionExecutor;

// Checks a client's AUTH credentials with the listener's verifier, unless
// its address or user has failed too often lately; counts and logs the
// outcome (never the password, which is wiped), and on success gives the
// login to `relay`. Runs on the balancer's own loop, where the verifier and
// the throttle live.
awaitable<proto::Reply> check_credentials(Listener& listener, TransactionExecutor& relay,
                                          proto::ServerEvent& ev);

}  // namespace smtplb::io
