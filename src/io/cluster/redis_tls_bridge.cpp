#include "io/cluster/redis_tls_bridge.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <filesystem>

namespace smtplb::io {
namespace {

using tcp = asio::ip::tcp;
using local_socket = asio::local::stream_protocol::socket;

// Both ends are closed when either direction ends: hiredis sees the
// connection go, as it would without the bridge.
struct Link {
    local_socket local;
    tcp::socket remote;
    TlsCapableStream tls{remote};
    explicit Link(local_socket s) : local(std::move(s)), remote(local.get_executor()) {}
    void close() {
        error_code ignored;
        local.close(ignored);
        remote.close(ignored);
    }
};

awaitable<void> to_redis(std::shared_ptr<Link> link) {
    std::array<char, 16384> buffer{};
    for (;;) {
        auto [ec, n] = co_await link->local.async_read_some(asio::buffer(buffer), use_nothrow);
        if (ec) break;
        auto [wec, written] = co_await link->tls.write(asio::const_buffer(buffer.data(), n));
        if (wec) break;
    }
    link->close();
}

awaitable<void> from_redis(std::shared_ptr<Link> link) {
    std::array<char, 16384> buffer{};
    for (;;) {
        auto [ec, n] = co_await link->tls.read_some(asio::buffer(buffer));
        if (ec) break;
        auto [wec, written] =
            co_await asio::async_write(link->local, asio::buffer(buffer.data(), n), use_nothrow);
        if (wec) break;
    }
    link->close();
}

}  // namespace

RedisTlsBridge::RedisTlsBridge(asio::any_io_executor executor, TlsContext context, std::string name)
    : executor_(std::move(executor)), context_(std::move(context)), name_(std::move(name)) {}

// close() cancels and removes files: only an allocation failure could
// throw, and that ends the process anyway.
// NOLINTNEXTLINE(bugprone-exception-escape)
RedisTlsBridge::~RedisTlsBridge() {
    close();
}

bool RedisTlsBridge::open(std::string& error) {
    // A directory only this user may enter: no other local user reaches
    // Redis through the bridge (the socket's own mode is not portable).
    const char* base = std::getenv("RUNTIME_DIRECTORY");  // systemd's, when set
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/smtplb-redis-XXXXXX";
    if (!mkdtemp(pattern.data())) {
        error = "cannot make a directory for the Redis TLS bridge under " +
                pattern.substr(0, pattern.rfind('/'));
        return false;
    }
    directory_ = pattern;
    ::chmod(directory_.c_str(), 0700);
    path_ = directory_ + "/redis.sock";
    error_code ec;
    acceptor_ = std::make_unique<asio::local::stream_protocol::acceptor>(executor_);
    acceptor_->open(asio::local::stream_protocol(), ec);
    if (!ec) acceptor_->bind(asio::local::stream_protocol::endpoint(path_), ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        error = "cannot listen on " + path_ + ": " + ec.message();
        close();
        return false;
    }
    *open_ = true;
    asio::co_spawn(executor_, accept_loop(), asio::detached);
    return true;
}

void RedisTlsBridge::close() {
    *open_ = false;
    if (acceptor_) {
        error_code ignored;
        acceptor_->close(ignored);
        acceptor_.reset();
    }
    if (!directory_.empty()) {
        std::error_code ignored;
        std::filesystem::remove_all(directory_, ignored);
        directory_.clear();
    }
}

awaitable<void> RedisTlsBridge::accept_loop() {
    auto self = shared_from_this();
    auto open = open_;
    while (*open && acceptor_) {
        auto [ec, local] = co_await acceptor_->async_accept(use_nothrow);
        if (ec || !*open) co_return;
        asio::co_spawn(executor_, carry(std::move(local), target_), asio::detached);
    }
}

awaitable<void> RedisTlsBridge::carry(local_socket local, base::HostPort target) {
    auto link = std::make_shared<Link>(std::move(local));
    error_code ec;
    auto address = asio::ip::make_address(target.host, ec);
    if (ec) {
        // A name: resolved here, as hiredis would have.
        tcp::resolver resolver(executor_);
        auto [rec, results] =
            co_await resolver.async_resolve(target.host, std::to_string(target.port), use_nothrow);
        if (rec || results.empty()) {
            failure_ = "cannot resolve " + target.host;
            link->close();
            co_return;
        }
        address = results.begin()->endpoint().address();
    }
    auto [cec] =
        co_await link->remote.async_connect(tcp::endpoint(address, target.port), use_nothrow);
    if (cec) {
        failure_ = "cannot connect to " + target.host + ":" + std::to_string(target.port) + ": " +
                   cec.message();
        link->close();  // hiredis sees its connection end
        co_return;
    }
    auto hec = co_await link->tls.connect(context_, name_.empty() ? target.host : name_, true);
    if (hec) {
        failure_ = link->tls.describe(hec);
        link->close();
        co_return;
    }
    failure_.clear();
    asio::co_spawn(executor_, to_redis(link), asio::detached);
    asio::co_spawn(executor_, from_redis(link), asio::detached);
}

}  // namespace smtplb::io
