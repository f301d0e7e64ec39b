#pragma once
#include <string_view>
#include <utility>

#include "io/asio.hpp"

namespace smtplb::io {

// Waits until the socket is readable, then reads into one buffer shared by
// all connections of the thread: an idle connection holds no read buffer,
// which is most of what keeps idle client connections small. The returned
// view is valid until the next read on this thread.
awaitable<std::pair<error_code, std::string_view>> read_some_shared(tcp::socket& socket);

// Socket options every connection of ours gets.
void tune_socket(tcp::socket& socket);

}  // namespace smtplb::io
