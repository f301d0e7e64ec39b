#include "admin/http_server.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "admin/api.hpp"

namespace smtplb::admin {

namespace beast = boost::beast;
namespace http = beast::http;
using io::asio::ip::make_address;

namespace {
// "Bearer <token>", compared in time independent of where it differs.
bool authorised(std::string_view header, const std::string& token) {
    constexpr std::string_view kScheme = "Bearer ";
    if (header.size() != kScheme.size() + token.size() ||
        header.substr(0, kScheme.size()) != kScheme)
        return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < token.size(); ++i)
        diff |= static_cast<unsigned char>(header[kScheme.size() + i] ^ token[i]);
    return diff == 0;
}
}  // namespace

HttpServer::HttpServer(io::Balancer& balancer, base::HostPort bind, ReloadHook reload)
    : balancer_(&balancer),
      bind_(std::move(bind)),
      reload_(std::move(reload)),
      acceptor_(balancer.io()) {}

HttpServer::~HttpServer() {
    stop();
}

bool HttpServer::start(std::string& error) {
    io::error_code ec;
    io::tcp::endpoint endpoint(make_address(bind_.host, ec), bind_.port);
    if (!ec) acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(io::asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(64, ec);
    if (ec) {
        error = "server.admin: cannot listen on " + bind_.to_string() + ": " + ec.message();
        return false;
    }
    io::asio::co_spawn(balancer_->io(), accept_loop(), io::asio::detached);
    return true;
}

void HttpServer::stop() {
    *stopped_ = true;
    io::error_code ignored;
    acceptor_.close(ignored);
}

std::uint16_t HttpServer::port() const {
    io::error_code ec;
    auto endpoint = acceptor_.local_endpoint(ec);
    return ec ? 0 : endpoint.port();
}

io::awaitable<void> HttpServer::accept_loop() {
    auto stopped = stopped_;
    for (;;) {
        auto [ec, socket] = co_await acceptor_.async_accept(io::use_nothrow);
        if (*stopped) co_return;
        if (ec) continue;
        io::asio::co_spawn(balancer_->io(), serve(std::move(socket)), io::asio::detached);
    }
}

io::awaitable<void> HttpServer::serve(io::tcp::socket socket) {
    auto stopped = stopped_;
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer(16384);
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(8192);
        parser.body_limit(65536);
        stream.expires_after(std::chrono::seconds(30));
        auto [ec, n] = co_await http::async_read(stream, buffer, parser, io::use_nothrow);
        if (ec || *stopped) co_return;
        auto& request = parser.get();
        const auto& token = balancer_->config().server.admin_token;
        if (!token.empty() && !authorised(request[http::field::authorization], token)) {
            http::response<http::string_body> denied{http::status::unauthorized, request.version()};
            denied.set(http::field::server, "smtplb");
            denied.set(http::field::www_authenticate, "Bearer");
            denied.set(http::field::content_type, "application/json");
            denied.body() = "{\"error\":\"a valid bearer token is required\"}\n";
            denied.keep_alive(false);
            denied.prepare_payload();
            co_await http::async_write(stream, denied, io::use_nothrow);
            co_return;
        }
        auto result = handle_request(*balancer_, std::string(request.method_string()),
                                     std::string(request.target()), reload_);
        http::response<http::string_body> response{static_cast<http::status>(result.status),
                                                   request.version()};
        response.set(http::field::server, "smtplb");
        response.set(http::field::content_type, result.content_type);
        response.set(http::field::cache_control, "no-store");
        response.keep_alive(request.keep_alive());
        response.body() = std::move(result.body);
        response.prepare_payload();
        auto [wec, written] = co_await http::async_write(stream, response, io::use_nothrow);
        if (wec || !response.keep_alive()) co_return;
    }
}

}  // namespace smtplb::admin
