#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/network.hpp"
#include "config/config.hpp"
#include "core/client_names.hpp"
#include "io/asio.hpp"

namespace smtplb::io {

// Finds a client's host name as Postfix's smtpd does (core/client_names.hpp):
// a reverse (PTR) lookup of the address, then a forward lookup (A for IPv4,
// AAAA for IPv6) of that name, which must list the address. Never fails:
// trouble is [UNAVAILABLE] or [TEMPUNAVAIL] in the result. Bounded in time
// (server.dns_timeout). An extension point: tests answer from a table
// (tests/mocks/fake_client_names.hpp).
class ClientNameResolver {
  public:
    virtual ~ClientNameResolver() = default;
    virtual awaitable<core::ClientNames> lookup(base::IpAddress address) = 0;
};

struct ClientNameSettings {
    std::vector<asio::ip::udp::endpoint> servers;  // asked in this order
    Millis timeout{5000};                          // both lookups together
    std::size_t cache_size = 10000;                // results kept, by their TTL
};

// server.dns_servers, or else the nameservers of `resolv_conf`; 127.0.0.1:53
// (as the C library does) when it names none or cannot be read.
std::vector<asio::ip::udp::endpoint> client_name_servers(
    const config::Server& server, const char* resolv_conf = "/etc/resolv.conf");

// The resolver for the sessions of one event loop, on its executor: it
// talks DNS over UDP itself (never blocking the loop), caches results and
// shares one lookup between sessions that ask for the same address at once.
// Not thread-safe, by design: each loop has its own (a session stays on its
// loop), so nothing is locked on the way; the price is that a client seen
// on two loops is looked up twice.
// (Shared: a lookup in flight keeps it, after the session that asked has gone.)
std::shared_ptr<ClientNameResolver> make_client_name_resolver(const asio::any_io_executor& executor,
                                                              ClientNameSettings settings);

// The client's host names, looked up while the session goes on (the banner
// does not wait for them); shared with the lookup, which may outlive the
// session. `done` never expires on its own until the session waits on it:
// the lookup cancels it when the result is in.
struct NameLookup {
    explicit NameLookup(const asio::any_io_executor& executor)
        : done(executor, std::chrono::steady_clock::time_point::max()) {}
    asio::steady_timer done;
    std::optional<core::ClientNames> result;
};

// Runs the lookup into `lookup` (spawned by the session).
awaitable<void> look_up_names(std::shared_ptr<ClientNameResolver> resolver, base::IpAddress address,
                              std::shared_ptr<NameLookup> lookup);

}  // namespace smtplb::io
