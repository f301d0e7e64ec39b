#pragma once
#include <map>
#include <set>
#include <string>

#include "io/backend/backend_connector.hpp"

namespace smtplb::testing {

// A BackendConnector that refuses chosen backends (as a dead host would)
// and counts every attempt; the rest go through a real TcpConnector.
class ScriptedConnector final : public io::BackendConnector {
  public:
    std::set<std::uint16_t> refuse_ports;
    std::map<std::uint16_t, int> attempts;

    io::awaitable<std::pair<io::error_code, io::tcp::socket>> connect(
        const base::HostPort& to, const std::optional<base::IpAddress>& source,
        io::Millis timeout) override {
        ++attempts[to.port];
        if (refuse_ports.count(to.port)) {
            auto executor = co_await io::asio::this_coro::executor;
            io::tcp::socket socket(executor);
            co_return std::pair{io::error_code(io::asio::error::connection_refused),
                                std::move(socket)};
        }
        co_return co_await real_.connect(to, source, timeout);
    }

  private:
    io::TcpConnector real_;
};

}  // namespace smtplb::testing
