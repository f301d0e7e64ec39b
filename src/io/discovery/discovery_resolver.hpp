#pragma once
#include <memory>
#include <vector>

#include "config/config.hpp"
#include "core/discovery.hpp"
#include "io/asio.hpp"

namespace smtplb::io {

// Asks DNS what a pool's `discover` names (core/discovery.hpp has what the
// answers mean): the MX or SRV records and each host's A and AAAA, or the
// name's A and AAAA. An extension point: tests answer from a table
// (tests/mocks/fake_discovery_resolver.hpp).
class DiscoveryResolver {
  public:
    virtual ~DiscoveryResolver() = default;
    virtual awaitable<core::DiscoveryAnswer> resolve(const config::Discover& discover) = 0;
};

// Over UDP on `executor`, never blocking it (io/front/dns_exchange.hpp),
// of `servers` in order (server.dns_servers, else /etc/resolv.conf's);
// each question within `timeout` (server.dns_timeout).
std::shared_ptr<DiscoveryResolver> make_discovery_resolver(
    const asio::any_io_executor& executor, std::vector<asio::ip::udp::endpoint> servers,
    Millis timeout);

}  // namespace smtplb::io
