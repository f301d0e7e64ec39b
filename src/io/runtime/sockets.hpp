#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "io/asio.hpp"
#include "proto/identity.hpp"

namespace smtplb::io {

// Waits until the socket is readable, then reads into one buffer shared by
// all connections of the thread, so a waiting connection holds no read
// buffer (the sink, the demo client). The returned view is valid until the
// next read on this thread.
awaitable<std::pair<error_code, std::string_view>> read_some_shared(tcp::socket& socket);

// The client as the socket shows it: both ends' addresses and ports.
proto::ClientIdentity identity_of(tcp::socket& socket);

// Socket options every connection of ours gets.
void tune_socket(tcp::socket& socket);

// Opens, binds (with SO_REUSEADDR) and listens on a numeric address.
error_code listen_on(tcp::acceptor& acceptor, const std::string& host, std::uint16_t port);

}  // namespace smtplb::io
