#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "io/asio.hpp"

namespace smtplb::io {

// Waits until the socket is readable, then reads into one buffer shared by
// all connections of the thread: an idle connection holds no read buffer,
// which is most of what keeps idle client connections small. The returned
// view is valid until the next read on this thread.
// `try_first`: read before waiting. Worth it only when bytes are likely
// already there (the peer is streaming); after sending a command or a reply
// the answer is never there yet, and the speculative read is a wasted syscall.
awaitable<std::pair<error_code, std::string_view>> read_some_shared(tcp::socket& socket,
                                                                    bool try_first = false);

// Socket options every connection of ours gets.
void tune_socket(tcp::socket& socket);

// Opens, binds (with SO_REUSEADDR) and listens on a numeric address.
error_code listen_on(tcp::acceptor& acceptor, const std::string& host, std::uint16_t port);

}  // namespace smtplb::io
