#include "admin/client.hpp"

#include <openssl/x509_vfy.h>

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "io/asio.hpp"

namespace smtplb::admin {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = io::asio::ssl;

namespace {

// A client context that trusts only `tls.trust_file`.
bool make_client_context(ssl::context& context, const ClientTls& tls, const std::string& host,
                         std::string& error) {
    boost::system::error_code ec;
    context.load_verify_file(tls.trust_file, ec);
    if (ec) {
        error =
            "cannot load \"" + tls.trust_file + "\" to verify the admin listener: " + ec.message();
        return false;
    }
    // A certificate in the trust file is an anchor itself, even when it is a
    // leaf signed by someone else (the listener's own certificate).
    X509_STORE_set_flags(SSL_CTX_get_cert_store(context.native_handle()),
                         X509_V_FLAG_PARTIAL_CHAIN);
    context.set_verify_mode(ssl::verify_peer);
    if (!tls.pinned) context.set_verify_callback(ssl::host_name_verification(host));
    return true;
}

template <typename Stream>
io::awaitable<void> exchange(Stream& stream, const base::HostPort& to, const std::string& method,
                             const std::string& target, const std::string& bearer_token,
                             HttpResult& result) {
    http::request<http::string_body> request{http::string_to_verb(method), target, 11};
    request.set(http::field::host, to.to_string());
    request.set(http::field::user_agent, "smtplb");
    if (!bearer_token.empty()) request.set(http::field::authorization, "Bearer " + bearer_token);
    if (method != "GET" && method != "HEAD") {
        request.set(http::field::content_type, "application/json");
        request.body() = "{}";
    }
    request.prepare_payload();
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
}

}  // namespace

HttpResult http_request(const base::HostPort& to, const std::string& method,
                        const std::string& target, std::chrono::milliseconds timeout,
                        const std::string& bearer_token, const ClientTls& tls) {
    io::asio::io_context context(1);
    HttpResult result;
    ssl::context tls_context(ssl::context::tls_client);
    if (tls.enabled && !make_client_context(tls_context, tls, to.host, result.error)) return result;
    io::asio::co_spawn(
        context,
        [&]() -> io::awaitable<void> {
            io::error_code ec;
            auto address = io::asio::ip::make_address(to.host, ec);
            if (ec) {
                result.error = "not a numeric address: " + to.host;
                co_return;
            }
            beast::tcp_stream tcp(context);
            tcp.expires_after(timeout);
            io::tcp::endpoint endpoint(address, to.port);
            auto [cec] = co_await tcp.async_connect(endpoint, io::use_nothrow);
            if (cec) {
                result.error = "cannot connect to " + to.to_string() + ": " + cec.message();
                co_return;
            }
            if (!tls.enabled) {
                co_await exchange(tcp, to, method, target, bearer_token, result);
                co_return;
            }
            ssl::stream<beast::tcp_stream&> stream(tcp, tls_context);
            auto [hec] = co_await stream.async_handshake(ssl::stream_base::client, io::use_nothrow);
            if (hec) {
                result.error = "TLS with " + to.to_string() + " failed: " + hec.message();
                co_return;
            }
            co_await exchange(stream, to, method, target, bearer_token, result);
        },
        io::asio::detached);
    context.run();
    return result;
}

}  // namespace smtplb::admin
