#pragma once
#include <memory>
#include <string>
#include <utility>

#include "base/network.hpp"
#include "io/asio.hpp"
#include "io/runtime/tls.hpp"

namespace smtplb::io {

// TLS to Redis for hiredis 0.14 (Debian 12's), which has none
// (docs/cluster.md, "TLS"): hiredis connects to a Unix socket of this
// process, in a directory of its own that only this user may enter, and
// each connection made there is carried over TLS to the Redis address of
// the moment, its certificate verified for `name` (the address's host when
// empty). One bridge per hiredis connection; on its executor only.
class RedisTlsBridge : public std::enable_shared_from_this<RedisTlsBridge> {
  public:
    RedisTlsBridge(asio::any_io_executor executor, TlsContext context, std::string name);
    ~RedisTlsBridge();
    RedisTlsBridge(const RedisTlsBridge&) = delete;
    RedisTlsBridge& operator=(const RedisTlsBridge&) = delete;

    // Makes the socket and listens; false with `error` when it cannot.
    bool open(std::string& error);
    // Where the next connection made to path() goes.
    void set_target(const base::HostPort& target) { target_ = target; }
    const std::string& path() const { return path_; }
    // Why the last connection could not be carried ("" when it was), and
    // the same, forgotten.
    const std::string& last_failure() const { return failure_; }
    std::string take_failure() { return std::exchange(failure_, {}); }
    // Stops listening and ends every connection carried.
    void close();

  private:
    awaitable<void> accept_loop();
    awaitable<void> carry(asio::local::stream_protocol::socket local, base::HostPort target);

    asio::any_io_executor executor_;
    TlsContext context_;
    std::string name_;
    base::HostPort target_;
    std::string failure_;
    std::string directory_;
    std::string path_;
    std::unique_ptr<asio::local::stream_protocol::acceptor> acceptor_;
    std::shared_ptr<bool> open_ = std::make_shared<bool>(false);
};

}  // namespace smtplb::io
