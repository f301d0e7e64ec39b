#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"
#include "core/auth_throttle.hpp"
#include "core/metrics.hpp"
#include "core/policy.hpp"
#include "io/asio.hpp"
#include "io/backend/transaction_executor.hpp"
#include "io/front/auth_verifier.hpp"
#include "io/runtime/task_group.hpp"
#include "io/runtime/tls.hpp"
#include "proto/proxy_header.hpp"
#include "proto/server_session.hpp"

namespace smtplb::io {

class Balancer;

// One [[listener]]: its socket, its policy and limits, and its sessions.
class Listener : public proto::EhloOfferSource {
  public:
    Listener(Balancer& balancer, const config::Listener& config);
    // Binds the address, or takes over `inherited` (a listener of the
    // previous configuration on the same address: no connection is refused
    // during a reload). Nothing runs until begin().
    bool bind(std::string& error, Listener* inherited = nullptr);
    void begin();
    // No new connections; sessions go on (a reload's old generation).
    void stop_accepting();
    // Stopping the daemon: also tells sessions between transactions 421
    // 4.3.2 now, the others when their transaction is over.
    void stop();
    std::uint16_t port() const;
    tcp::acceptor& acceptor() { return acceptor_; }

    Balancer& balancer() { return balancer_; }
    const config::Listener& config() const { return config_; }
    const proto::ServerSettings& settings() const { return settings_; }
    // What EHLO offers now, from the pools this listener reaches (its own
    // and every [[route]]'s): recomputed only when their capabilities
    // changed, so an EHLO costs a few atomic loads and one short lock.
    proto::EhloOffer current() const override;
    const core::RelayPolicy& policy() const { return policy_; }
    // What relays of the sessions on event loop `loop` share (its cache).
    BackendAccess& backend_access(std::size_t loop = 0) { return backend_accesses_[loop]; }
    // Submission listeners: who checks passwords, and who has guessed too often.
    AuthVerifier& auth_verifier() { return *auth_verifier_; }
    core::AuthThrottle& auth_throttle() { return auth_throttle_; }
    // The certificate clients see; null on a listener without TLS.
    const TlsContext& tls_context() const { return tls_context_; }

    // Connection accounting, released by the session when it ends.
    void session_ended(const std::string& client);
    // Behind a PROXY header the real client is known only in the session:
    // counts it, or false when it is over max_connections_per_client.
    bool admit(const std::string& client);
    // Reads the PROXY header a trusted upstream starts each connection with
    // (the caller bounds the time); nothing when it is missing or malformed,
    // which is counted and logged.
    awaitable<std::optional<proto::ProxyHeader>> read_upstream_header(tcp::socket& socket);
    std::size_t sessions() const {
        std::lock_guard guard(accounting_);
        return connections_;
    }
    // Sessions register their sockets (and protocol state, to tell idle
    // ones) so that a stop can end them.
    // (A null protocol: a "tcp" session, which has no idle state to tell.)
    void track(tcp::socket* socket, const proto::ServerSession* protocol) {
        std::lock_guard guard(registry_->mutex);
        registry_->sessions[socket] = protocol;
    }
    void untrack(tcp::socket* socket) {
        std::lock_guard guard(registry_->mutex);
        registry_->sessions.erase(socket);
    }
    // Stopping: no new connections; sessions between transactions are told
    // 421 4.3.2 now, the others when their transaction is over.
    bool stopping() const { return stopping_; }
    void close_sessions();
    core::ListenerCounters counters;

  private:
    awaitable<void> accept_loop();
    awaitable<void> refuse(tcp::socket socket, const char* reply);
    // Whether a new connection from `client` may open one more session
    // (and counts it when it may); the refusal's reply when not.
    const char* open_session(const std::string& client, bool proxied);
    // admit() with accounting_ held.
    bool admit_locked(const std::string& client);
    // The sessions' sockets, by event loop (shared: work posted to a loop
    // to wake or close them may outlive this listener).
    struct Registry {
        std::mutex mutex;
        std::unordered_map<tcp::socket*, const proto::ServerSession*> sessions;
    };
    // Runs `action` on each tracked socket, on that socket's own loop.
    void for_each_session(
        const std::function<void(tcp::socket&, const proto::ServerSession*)>& action);

    Balancer& balancer_;
    const config::Listener& config_;
    proto::ServerSettings settings_;
    std::vector<const core::Pool*> offer_pools_;
    mutable std::mutex offer_mutex_;
    mutable std::optional<proto::EhloOffer> offer_;
    mutable std::uint64_t offer_epoch_ = 0;
    core::RelayPolicy policy_;
    std::vector<BackendAccess> backend_accesses_;
    TlsContext tls_context_;
    std::unique_ptr<AuthVerifier> auth_verifier_;
    core::AuthThrottle auth_throttle_;
    tcp::acceptor acceptor_;
    // Sessions on every loop open and close: connections_ and per_client_
    // are under this lock.
    mutable std::mutex accounting_;
    std::size_t connections_ = 0;
    std::unordered_map<std::string, std::uint32_t> per_client_;
    std::shared_ptr<Registry> registry_ = std::make_shared<Registry>();
    std::atomic<bool> stopping_ = false;
    TaskGroup::StopCallback stop_registration_;
};

}  // namespace smtplb::io
