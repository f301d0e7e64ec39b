#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "io/backend/backend_connector.hpp"

namespace smtplb::testing {

// A BackendConnector that refuses chosen backends (as a dead host would)
// and counts every attempt, with where it was to come from; the rest go
// through a real TcpConnector. A transparent origin is bound as a plain
// local address (127.0.0.0/8 is this host's), so tests need no privilege.
class ScriptedConnector final : public io::BackendConnector {
  public:
    std::set<std::uint16_t> refuse_ports;
    std::map<std::uint16_t, int> attempts;
    std::vector<std::pair<std::uint16_t, io::ConnectFrom>> origins;

    io::awaitable<std::pair<io::error_code, io::tcp::socket>> connect(const base::HostPort& to,
                                                                      const io::ConnectFrom& from,
                                                                      io::Millis timeout) override {
        ++attempts[to.port];
        origins.emplace_back(to.port, from);
        if (refuse_ports.count(to.port)) {
            auto executor = co_await io::asio::this_coro::executor;
            io::tcp::socket socket(executor);
            co_return std::pair{io::error_code(io::asio::error::connection_refused),
                                std::move(socket)};
        }
        auto local = from;
        local.transparent = false;
        co_return co_await real_.connect(to, local, timeout);
    }

  private:
    io::TcpConnector real_;
};

}  // namespace smtplb::testing
