#include <unordered_map>

#include "io/front/client_names.hpp"
#include "io/front/dns_exchange.hpp"

// Last: with ldns.h first, clang (clang-tidy) fails to parse libstdc++
// headers in this file.
#include <ldns/ldns.h>

namespace smtplb::io {
namespace {

using asio::ip::udp;
using Steady = std::chrono::steady_clock;

// One lookup in flight, which every session asking for that address awaits:
// `signal` never expires on its own; cancelling it wakes them all.
struct Pending {
    explicit Pending(const asio::any_io_executor& executor)
        : signal(executor, Steady::time_point::max()) {}
    asio::steady_timer signal;
    bool done = false;
    core::ClientNames result;
};

class UdpClientNameResolver final : public ClientNameResolver,
                                    public std::enable_shared_from_this<UdpClientNameResolver> {
  public:
    UdpClientNameResolver(const asio::any_io_executor& executor, ClientNameSettings settings)
        : executor_(executor),
          settings_(std::move(settings)),
          cache_(clock_, settings_.cache_size) {}

    awaitable<core::ClientNames> lookup(base::IpAddress address) override {
        auto client = address.unmapped();
        if (auto hit = cache_.find(client)) co_return *hit;
        auto key = client.to_string();
        auto& slot = pending_[key];
        auto pending = slot;
        if (!pending) {
            slot = pending = std::make_shared<Pending>(executor_);
            asio::co_spawn(executor_, resolve(shared_from_this(), client, pending), asio::detached);
        }
        if (!pending->done) {
            auto [ec] = co_await pending->signal.async_wait(use_nothrow);
            (void)ec;
        }
        co_return pending->result;
    }

  private:
    static awaitable<void> resolve(std::shared_ptr<UdpClientNameResolver> self,
                                   base::IpAddress client, std::shared_ptr<Pending> pending) {
        auto deadline = Steady::now() + self->settings_.timeout;
        DnsQuestion reverse{core::reverse_query_name(client), kDnsTypePtr};
        // Two attempts for each of the two questions share the time.
        auto ptr = co_await self->ask(reverse, deadline, 2);
        auto step = core::after_reverse(ptr);
        std::optional<core::DnsAnswer> forward;
        core::ClientNames result;
        if (step.result) {
            result = *step.result;
        } else {
            DnsQuestion confirm{step.confirm, client.v6 ? kDnsTypeAaaa : kDnsTypeA};
            forward = co_await self->ask(confirm, deadline, 0);
            result = core::after_forward(step.confirm, *forward, client);
        }
        std::vector<const core::DnsAnswer*> used{&ptr};
        if (forward) used.push_back(&*forward);
        if (auto ttl = core::cache_ttl(result, used)) self->cache_.store(client, result, *ttl);
        pending->result = result;
        pending->done = true;
        self->pending_.erase(client.to_string());
        pending->signal.cancel();
    }

    awaitable<core::DnsAnswer> ask(const DnsQuestion& question, Steady::time_point deadline,
                                   int later) {
        co_return co_await ask_dns(executor_, settings_.servers, question, deadline, later);
    }

    asio::any_io_executor executor_;
    ClientNameSettings settings_;
    base::SystemClock clock_;
    core::ClientNameCache cache_;
    std::unordered_map<std::string, std::shared_ptr<Pending>> pending_;
};

std::optional<udp::endpoint> endpoint_of(const std::string& host, std::uint16_t port) {
    error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec) return std::nullopt;
    return udp::endpoint(address, port);
}

}  // namespace

std::vector<udp::endpoint> client_name_servers(const config::Server& server,
                                               const char* resolv_conf) {
    std::vector<udp::endpoint> out;
    for (const auto& hp : server.dns_servers)
        if (auto e = endpoint_of(hp.host, hp.port)) out.push_back(*e);
    if (!out.empty()) return out;
    ldns_resolver* resolver = nullptr;
    if (ldns_resolver_new_frm_file(&resolver, resolv_conf) == LDNS_STATUS_OK && resolver) {
        ldns_rdf** list = ldns_resolver_nameservers(resolver);
        for (std::size_t i = 0; i < ldns_resolver_nameserver_count(resolver); ++i) {
            char* text = ldns_rdf2str(list[i]);
            if (text) {
                if (auto e = endpoint_of(text, ldns_resolver_port(resolver))) out.push_back(*e);
                free(text);
            }
        }
        ldns_resolver_deep_free(resolver);
    }
    if (out.empty()) out.emplace_back(asio::ip::address_v4::loopback(), 53);
    return out;
}

std::shared_ptr<ClientNameResolver> make_client_name_resolver(const asio::any_io_executor& executor,
                                                              ClientNameSettings settings) {
    return std::make_shared<UdpClientNameResolver>(executor, std::move(settings));
}

awaitable<void> look_up_names(std::shared_ptr<ClientNameResolver> resolver, base::IpAddress address,
                              std::shared_ptr<NameLookup> lookup) {
    auto names = co_await resolver->lookup(address);
    lookup->result = std::move(names);
    lookup->done.cancel();
}

}  // namespace smtplb::io
