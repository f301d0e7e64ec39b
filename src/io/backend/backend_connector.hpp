#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "base/network.hpp"
#include "io/asio.hpp"

namespace smtplb::io {

// Where a backend connection comes from: the kernel's choice, a listener's
// source_address, or (transparent mode) the client's own address, which is
// not this host's and needs IP_TRANSPARENT / IPV6_TRANSPARENT (CAP_NET_ADMIN).
struct ConnectFrom {
    std::optional<base::IpAddress> address;  // none: the kernel's choice
    std::uint16_t port = 0;                  // 0: any free port
    bool transparent = false;

    ConnectFrom() = default;
    ConnectFrom(std::nullopt_t) {}  // NOLINT: reads as "from anywhere"
    // A local source address (a listener's source_address).
    ConnectFrom(const std::optional<base::IpAddress>& local)  // NOLINT
        : address(local) {}
    // A client's address, and its port when it is kept (tcp transparent_port).
    static ConnectFrom client(const base::IpAddress& client, std::uint16_t port = 0) {
        ConnectFrom from;
        from.address = client.unmapped();
        from.port = port;
        from.transparent = true;
        return from;
    }
};

// How backend connections are opened (an extension point with a mock in
// tests/mocks): TCP today; a test can connect somewhere else or fail at will.
class BackendConnector {
  public:
    virtual ~BackendConnector() = default;
    // A connected socket, bound as `from` says, within `timeout`; or the error.
    virtual awaitable<std::pair<error_code, tcp::socket>> connect(const base::HostPort& to,
                                                                  const ConnectFrom& from,
                                                                  Millis timeout) = 0;
};

class TcpConnector final : public BackendConnector {
  public:
    awaitable<std::pair<error_code, tcp::socket>> connect(const base::HostPort& to,
                                                          const ConnectFrom& from,
                                                          Millis timeout) override;
};

// Binds an open socket as `from` says (IP_TRANSPARENT first when it is a
// client's address); nothing to do without an address.
error_code bind_source(tcp::socket& socket, const ConnectFrom& from);

// A connect error of this host (bind refused, the address and port in use,
// no such route), not of the backend: in transparent mode it says nothing
// about the backend's health.
bool transparent_local_failure(const error_code& ec);

}  // namespace smtplb::io
