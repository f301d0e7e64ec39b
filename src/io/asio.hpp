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

// GCC 12 miscompiles some coroutine expressions (seen here: SIGILL on
// `if (!co_await f())` where f returns std::optional, and a double free of a
// braced temporary passed to a coroutine). House rule: bind every co_await
// result to a named local before testing it, and pass named objects, not
// braced temporaries, to coroutines.

}  // namespace smtplb::io
