#include "io/runtime/sockets.hpp"

#include <array>

namespace smtplb::io {

awaitable<std::pair<error_code, std::string_view>> read_some_shared(tcp::socket& socket) {
    thread_local std::array<char, 65536> buffer;
    for (;;) {
        // Wait first: reading before the peer can have answered is a wasted syscall.
        auto [wait_ec] = co_await socket.async_wait(tcp::socket::wait_read, use_nothrow);
        if (wait_ec) co_return std::pair{wait_ec, std::string_view{}};
        error_code ec;
        std::size_t n = socket.read_some(asio::buffer(buffer), ec);
        if (!ec) co_return std::pair{ec, std::string_view(buffer.data(), n)};
        if (ec != asio::error::would_block && ec != asio::error::try_again)
            co_return std::pair{ec, std::string_view{}};
    }
}

error_code listen_on(tcp::acceptor& acceptor, const std::string& host, std::uint16_t port) {
    error_code ec;
    tcp::endpoint endpoint(asio::ip::make_address(host, ec), port);
    if (!ec) acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    return ec;
}

proto::ClientIdentity identity_of(tcp::socket& socket) {
    proto::ClientIdentity id;
    error_code ec;
    auto remote = socket.remote_endpoint(ec);
    auto local = socket.local_endpoint(ec);
    if (auto a = base::IpAddress::parse(remote.address().to_string())) id.address = a->unmapped();
    if (auto a = base::IpAddress::parse(local.address().to_string()))
        id.local_address = a->unmapped();
    id.port = remote.port();
    id.local_port = local.port();
    return id;
}

void tune_socket(tcp::socket& socket) {
    error_code ec;
    // Without NODELAY a reply written after a body stalls on delayed ACKs.
    socket.set_option(tcp::no_delay(true), ec);
    socket.non_blocking(true, ec);
}

}  // namespace smtplb::io
