#pragma once
#include <optional>
#include <string>
#include <utility>

#include "base/network.hpp"
#include "io/asio.hpp"

namespace smtplb::io {

// How backend connections are opened (an extension point with a mock in
// tests/mocks): TCP today; a test can connect somewhere else or fail at will.
class BackendConnector {
  public:
    virtual ~BackendConnector() = default;
    // A connected socket, from `source` when given, within `timeout`; or the error.
    virtual awaitable<std::pair<error_code, tcp::socket>> connect(
        const base::HostPort& to, const std::optional<base::IpAddress>& source, Millis timeout) = 0;
};

class TcpConnector final : public BackendConnector {
  public:
    awaitable<std::pair<error_code, tcp::socket>> connect(
        const base::HostPort& to, const std::optional<base::IpAddress>& source,
        Millis timeout) override;
};

}  // namespace smtplb::io
