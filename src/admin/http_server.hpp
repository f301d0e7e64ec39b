#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "admin/api.hpp"
#include "admin/run_info.hpp"
#include "base/network.hpp"
#include "io/asio.hpp"
#include "io/balancer.hpp"
#include "io/runtime/tls.hpp"

namespace smtplb::admin {

// The admin HTTP listener (server.admin): the dashboard, the JSON API and
// /metrics, over TLS with server.admin_tls. Requests are small and few; each
// connection is bounded in header and body size and in time, and served on
// the balancer's own event loop. Who may ask what: admin/access.hpp.
class HttpServer {
  public:
    HttpServer(io::Balancer& balancer, base::HostPort bind, ReloadHook reload = {});
    ~HttpServer();
    bool start(std::string& error);
    void stop();
    std::uint16_t port() const;
    // After a reload: requests are answered from the new generation (its
    // tokens and admin_hosts too; a TLS certificate and key are read again).
    void set_balancer(io::Balancer& balancer);
    // Every reload, whoever asked for it (signal, API, CLI): for the status.
    void record_reload(const ReloadOutcome& outcome) {
        run_.record_reload(outcome.ok, outcome.message);
    }

  private:
    io::awaitable<void> accept_loop();
    io::awaitable<void> serve(io::tcp::socket socket);
    template <typename Stream>
    io::awaitable<void> serve_requests(Stream& stream);

    io::Balancer* balancer_;
    base::HostPort bind_;
    ReloadHook reload_;
    io::tcp::acceptor acceptor_;
    io::TlsContext tls_;  // null: plain HTTP
    RunInfo run_;
    std::shared_ptr<bool> stopped_ = std::make_shared<bool>(false);
};

// The admin listener's TLS context from server.admin_tls; null with a
// message that names the key and its line when the files do not load.
io::TlsContext make_admin_tls(const config::Server& server, std::string& error);

}  // namespace smtplb::admin
