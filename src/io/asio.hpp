#pragma once
// The one place Asio comes in (DESIGN.md: only src/io sees it).
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

namespace smtplb::io {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
template <typename T = void>
using awaitable = asio::awaitable<T>;
using asio::use_awaitable;
// Completion token that returns (error_code, ...) instead of throwing:
// peers failing is normal, not exceptional.
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
using error_code = boost::system::error_code;
using Millis = std::chrono::milliseconds;

}  // namespace smtplb::io
