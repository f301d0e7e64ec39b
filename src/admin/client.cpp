#include "admin/client.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "io/asio.hpp"

namespace smtplb::admin {

namespace beast = boost::beast;
namespace http = beast::http;

HttpResult http_request(const base::HostPort& to, const std::string& method,
                        const std::string& target, std::chrono::milliseconds timeout,
                        const std::string& bearer_token) {
    io::asio::io_context context(1);
    HttpResult result;
    io::asio::co_spawn(
        context,
        [&]() -> io::awaitable<void> {
            io::error_code ec;
            auto address = io::asio::ip::make_address(to.host, ec);
            if (ec) {
                result.error = "not a numeric address: " + to.host;
                co_return;
            }
            beast::tcp_stream stream(context);
            stream.expires_after(timeout);
            io::tcp::endpoint endpoint(address, to.port);
            auto [cec] = co_await stream.async_connect(endpoint, io::use_nothrow);
            if (cec) {
                result.error = "cannot connect to " + to.to_string() + ": " + cec.message();
                co_return;
            }
            http::request<http::empty_body> request{http::string_to_verb(method), target, 11};
            request.set(http::field::host, to.to_string());
            request.set(http::field::user_agent, "smtplb");
            if (!bearer_token.empty())
                request.set(http::field::authorization, "Bearer " + bearer_token);
            auto [wec, written] = co_await http::async_write(stream, request, io::use_nothrow);
            if (wec) {
                result.error = "cannot send the request: " + wec.message();
                co_return;
            }
            beast::flat_buffer buffer;
            http::response_parser<http::string_body> parser;
            parser.body_limit(16u << 20);
            auto [rec, read] = co_await http::async_read(stream, buffer, parser, io::use_nothrow);
            if (rec) {
                result.error = "no response: " + rec.message();
                co_return;
            }
            result.status = static_cast<int>(parser.get().result_int());
            result.body = parser.get().body();
        },
        io::asio::detached);
    context.run();
    return result;
}

}  // namespace smtplb::admin
