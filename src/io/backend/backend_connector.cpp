#include "io/backend/backend_connector.hpp"

#include "io/runtime/deadline.hpp"

namespace smtplb::io {

awaitable<std::pair<error_code, tcp::socket>> TcpConnector::connect(
    const base::HostPort& to, const std::optional<base::IpAddress>& source, Millis timeout) {
    auto executor = co_await asio::this_coro::executor;
    tcp::socket socket(executor);
    error_code ec;
    auto address = asio::ip::make_address(to.host, ec);
    if (ec) co_return std::pair{ec, std::move(socket)};
    tcp::endpoint endpoint(address, to.port);
    socket.open(endpoint.protocol(), ec);
    if (!ec && source) {
        // The listener's own source address lets backends tell listeners apart.
        socket.bind(tcp::endpoint(asio::ip::make_address(source->to_string()), 0), ec);
    }
    if (ec) co_return std::pair{ec, std::move(socket)};
    // Closing the socket ends the connect with an error: no parallel wait.
    Alarm alarm(executor, timeout, [&socket] {
        error_code ignored;
        socket.close(ignored);
    });
    auto [connect_ec] = co_await socket.async_connect(endpoint, use_nothrow);
    if (alarm.expired()) co_return std::pair{error_code(asio::error::timed_out), std::move(socket)};
    alarm.cancel();
    co_return std::pair{connect_ec, std::move(socket)};
}

}  // namespace smtplb::io
