#include "io/balancer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "io/listener.hpp"

namespace smtplb::io {

Balancer::Balancer(asio::io_context& io, const config::Config& config,
                   std::unique_ptr<BackendConnector> connector)
    : io_(io),
      config_(config),
      router_(config_.routes),
      connector_(connector ? std::move(connector) : std::make_unique<TcpConnector>()),
      cache_(io.get_executor()),
      tracking_(io.get_executor(), config_.server.tracking_log) {
    for (const auto& p : config_.pools)
        pools_.push_back(std::make_unique<core::Pool>(p, clock_, random_));
}

Balancer::~Balancer() {
    cache_.set_closing();
}

core::Pool* Balancer::pool(const std::string& name) {
    for (auto& p : pools_)
        if (p->name() == name) return p.get();
    return nullptr;
}

bool Balancer::start(std::string& error) {
    if (!tracking_.error().empty()) {
        error = tracking_.error();
        return false;
    }
    // Messages past spill_threshold are buffered there: find out now, not
    // when the first large message gets a 451.
    const auto& dir = config_.server.state_dir;
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        error =
            "server.state_dir \"" + dir + "\" cannot hold temporary files: " + std::strerror(errno);
        return false;
    }
    ::close(fd);
    for (const auto& l : config_.listeners) {
        auto listener = std::make_unique<Listener>(*this, l);
        if (!listener->start(error)) return false;
        listeners_.push_back(std::move(listener));
    }
    return true;
}

void Balancer::stop() {
    for (auto& l : listeners_)
        l->stop();
    cache_.close_all();
    tracking_.flush();
}

void Balancer::abort_sessions() {
    cache_.set_closing();  // relays give up instead of trying more backends
    for (auto& l : listeners_)
        l->close_sessions();
    for (auto* conn : cache_.in_use())
        conn->close();
}

std::size_t Balancer::active_sessions() const {
    std::size_t n = 0;
    for (const auto& l : listeners_)
        n += l->sessions();
    return n;
}

std::vector<std::uint16_t> Balancer::bound_ports() const {
    std::vector<std::uint16_t> ports;
    for (const auto& l : listeners_)
        ports.push_back(l->port());
    return ports;
}

}  // namespace smtplb::io
