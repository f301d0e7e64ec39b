#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "admin/api.hpp"
#include "base/network.hpp"
#include "io/asio.hpp"
#include "io/balancer.hpp"

namespace smtplb::admin {

// The admin HTTP listener (server.admin): the JSON API for now. Requests
// are small and few; each connection is bounded in header and body size and
// in time, and served on the balancer's own event loop.
class HttpServer {
  public:
    HttpServer(io::Balancer& balancer, base::HostPort bind, ReloadHook reload = {});
    ~HttpServer();
    bool start(std::string& error);
    void stop();
    std::uint16_t port() const;
    // After a reload: requests are answered from the new generation.
    void set_balancer(io::Balancer& balancer) { balancer_ = &balancer; }

  private:
    io::awaitable<void> accept_loop();
    io::awaitable<void> serve(io::tcp::socket socket);

    io::Balancer* balancer_;
    base::HostPort bind_;
    ReloadHook reload_;
    io::tcp::acceptor acceptor_;
    std::shared_ptr<bool> stopped_ = std::make_shared<bool>(false);
};

}  // namespace smtplb::admin
