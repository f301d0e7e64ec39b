#include "admin/http_server.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>

#include "admin/access.hpp"
#include "admin/api.hpp"
#include "base/text.hpp"

namespace smtplb::admin {

namespace beast = boost::beast;
namespace http = beast::http;
using io::asio::ip::make_address;

namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(30);

template <typename Body>
void common_headers(http::response<Body>& response) {
    response.set(http::field::server, "smtplb");
    response.set(http::field::cache_control, "no-store");
    // The page has buttons that drain backends: no other site may frame it.
    response.set(http::field::x_frame_options, "DENY");
    response.set("Content-Security-Policy", "frame-ancestors 'none'");
    response.set("X-Content-Type-Options", "nosniff");
    response.set("Referrer-Policy", "no-referrer");
}

http::response<http::string_body> refusal_response(const Refusal& refusal, unsigned version) {
    http::response<http::string_body> r{static_cast<http::status>(refusal.status), version};
    common_headers(r);
    if (refusal.ask_for_token) r.set(http::field::www_authenticate, "Bearer");
    r.set(http::field::content_type, "application/json");
    boost::json::object o;
    o["error"] = refusal.reason;
    r.body() = boost::json::serialize(o) + "\n";
    r.keep_alive(false);
    r.prepare_payload();
    return r;
}

}  // namespace

io::TlsContext make_admin_tls(const config::Server& server, std::string& error) {
    if (!server.admin_tls.enabled()) return nullptr;
    std::string why;
    auto context = io::make_server_tls(server.admin_tls, why);
    if (!context)
        error = "server.admin_tls (line " + std::to_string(server.admin_tls_line) + "): " + why;
    return context;
}

HttpServer::HttpServer(io::Balancer& balancer, base::HostPort bind, ReloadHook reload)
    : balancer_(&balancer),
      bind_(std::move(bind)),
      reload_(std::move(reload)),
      acceptor_(balancer.io()) {}

HttpServer::~HttpServer() {
    stop();
}

bool HttpServer::start(std::string& error) {
    const auto& server = balancer_->config().server;
    if (server.admin_tls.enabled() && !(tls_ = make_admin_tls(server, error))) return false;
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

void HttpServer::set_balancer(io::Balancer& balancer) {
    balancer_ = &balancer;
    // TLS on or off is decided at start (like the address); renewed files
    // are picked up here. A pair that does not load keeps the old one.
    const auto& server = balancer.config().server;
    if (bool(tls_) != server.admin_tls.enabled()) {
        balancer.log(
            std::string("event=admin_tls_unchanged tls=") + (tls_ ? "on" : "off") + " reason=" +
            base::logfmt_value("server.admin_tls on or off takes effect at the next start"));
        return;
    }
    if (!tls_) return;
    std::string error;
    if (auto renewed = make_admin_tls(server, error))
        tls_ = std::move(renewed);
    else
        balancer.log("event=admin_tls_unchanged reason=" + base::logfmt_value(error));
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
    if (!tls_) {
        beast::tcp_stream stream(std::move(socket));
        co_await serve_requests(stream);
        co_return;
    }
    beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), *tls_);
    auto context = tls_;  // kept: a reload may replace it meanwhile
    beast::get_lowest_layer(stream).expires_after(kRequestTimeout);
    auto [ec] = co_await stream.async_handshake(io::ssl::stream_base::server, io::use_nothrow);
    if (ec || *stopped) co_return;
    co_await serve_requests(stream);
}

template <typename Stream>
io::awaitable<void> HttpServer::serve_requests(Stream& stream) {
    auto stopped = stopped_;
    beast::flat_buffer buffer(16384);
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(8192);
        parser.body_limit(65536);
        beast::get_lowest_layer(stream).expires_after(kRequestTimeout);
        auto [ec, n] = co_await http::async_read(stream, buffer, parser, io::use_nothrow);
        if (ec || *stopped) co_return;
        auto& request = parser.get();
        // RFC 9112 §3.2: one Host; two Hosts (or Origins) could pass the
        // check with one and mean the other.
        if (request.count(http::field::host) != 1 || request.count(http::field::origin) > 1) {
            auto bad = refusal_response(Refusal{400, "exactly one Host and at most one Origin"},
                                        request.version());
            co_await http::async_write(stream, bad, io::use_nothrow);
            co_return;
        }
        auto policy = AccessPolicy::from(balancer_->config().server, port());
        RequestFacts facts{request.method_string(),
                           request.target(),
                           request[http::field::host],
                           std::nullopt,
                           request[http::field::content_type],
                           request[http::field::authorization],
                           request.body()};
        if (auto origin = request.find(http::field::origin); origin != request.end())
            facts.origin = origin->value();
        if (auto refusal = check_access(policy, facts)) {
            auto denied = refusal_response(*refusal, request.version());
            if (request.method() == http::verb::head) denied.body().clear();
            co_await http::async_write(stream, denied, io::use_nothrow);
            co_return;
        }
        // HEAD: what GET would answer, without the body (RFC 9110 §9.3.2).
        const bool head = request.method() == http::verb::head;
        auto result =
            handle_request(*balancer_, head ? "GET" : std::string(request.method_string()),
                           std::string(request.target()), reload_, &run_);
        http::response<http::string_body> response{static_cast<http::status>(result.status),
                                                   request.version()};
        common_headers(response);
        response.set(http::field::content_type, result.content_type);
        response.keep_alive(request.keep_alive());
        response.body() = std::move(result.body);
        response.prepare_payload();
        if (head) response.body().clear();  // Content-Length stays GET's
        auto [wec, written] = co_await http::async_write(stream, response, io::use_nothrow);
        if (wec || !response.keep_alive()) co_return;
    }
}

}  // namespace smtplb::admin
