#include "io/backend/backend_connector.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <cerrno>

#include "io/runtime/deadline.hpp"

namespace smtplb::io {

error_code bind_source(tcp::socket& socket, const ConnectFrom& from) {
    error_code ec;
    if (!from.address) return ec;
    auto address = asio::ip::make_address(from.address->to_string(), ec);
    if (ec) return ec;
    if (from.transparent) {
        // A client's address is not this host's: without the option the
        // bind fails (EADDRNOTAVAIL). The replies reach this socket through
        // the routing recipe (docs/identity.md).
        const int on = 1;
        const bool v6 = address.is_v6();
        if (::setsockopt(socket.native_handle(), v6 ? SOL_IPV6 : SOL_IP,
                         v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &on, sizeof on) != 0)
            return error_code(errno, asio::error::get_system_category());
        // The client's own port may still be in TIME_WAIT here from its last
        // connection: the connect fails then if the whole 4-tuple is taken.
        if (from.port != 0) socket.set_option(asio::socket_base::reuse_address(true), ec);
        if (ec) return ec;
    }
    socket.bind(tcp::endpoint(address, from.port), ec);
    return ec;
}

bool transparent_local_failure(const error_code& ec) {
    return ec == asio::error::address_in_use || ec == asio::error::address_family_not_supported ||
           ec == asio::error::access_denied || ec == asio::error::no_permission ||
           (ec.category() == asio::error::get_system_category() && ec.value() == EADDRNOTAVAIL);
}

awaitable<std::pair<error_code, tcp::socket>> TcpConnector::connect(const base::HostPort& to,
                                                                    const ConnectFrom& from,
                                                                    Millis timeout) {
    auto executor = co_await asio::this_coro::executor;
    tcp::socket socket(executor);
    error_code ec;
    auto address = asio::ip::make_address(to.host, ec);
    if (ec) co_return std::pair{ec, std::move(socket)};
    tcp::endpoint endpoint(address, to.port);
    if (from.transparent && from.address && from.address->v6 != address.is_v6())
        // The client's address family is the connection's: an IPv4 client
        // cannot reach an IPv6 backend from its own address.
        co_return std::pair{error_code(asio::error::address_family_not_supported),
                            std::move(socket)};
    socket.open(endpoint.protocol(), ec);
    // The listener's own source address lets backends tell listeners apart.
    if (!ec) ec = bind_source(socket, from);
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
