#include <openssl/rand.h>

#include <array>
#include <unordered_map>

#include "io/front/client_names.hpp"
#include "io/front/dns_packets.hpp"
#include "io/runtime/deadline.hpp"

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

    // Asks `question` of the first server and, when it does not answer in
    // its share of the time or answers with a temporary failure, of the
    // next one (the same one when there is only one). `later` attempts of
    // another question follow and get their share of what is left.
    awaitable<core::DnsAnswer> ask(const DnsQuestion& question, Steady::time_point deadline,
                                   int later) {
        core::DnsAnswer failed;  // TempFail
        if (settings_.servers.empty()) co_return failed;
        for (int attempt = 0; attempt < 2; ++attempt) {
            auto now = Steady::now();
            if (now >= deadline) break;
            auto share = (deadline - now) / (2 - attempt + later);
            const auto& server = settings_.servers[attempt % settings_.servers.size()];
            auto answer =
                co_await exchange(server, question, std::chrono::duration_cast<Millis>(share));
            if (answer && answer->status != core::DnsStatus::TempFail) co_return *answer;
        }
        co_return failed;
    }

    // One query over UDP from a socket of its own (a random source port,
    // and connected: only that server's datagrams arrive); nothing when no
    // reply to it came within `timeout`.
    awaitable<std::optional<core::DnsAnswer>> exchange(const udp::endpoint& server,
                                                       const DnsQuestion& question,
                                                       Millis timeout) {
        udp::socket socket(executor_);
        error_code ec;
        socket.open(server.protocol(), ec);
        if (!ec) socket.connect(server, ec);
        std::uint16_t id = 0;
        if (RAND_bytes(reinterpret_cast<unsigned char*>(&id), sizeof id) != 1)
            co_return std::nullopt;
        auto query = dns_query(question, id);
        if (ec || query.empty()) co_return std::nullopt;
        Alarm alarm(executor_, std::max(timeout, Millis(1)), [&socket] {
            error_code ignored;
            socket.cancel(ignored);
        });
        auto [send_ec, sent] = co_await socket.async_send(asio::buffer(query), use_nothrow);
        if (send_ec) co_return std::nullopt;
        std::array<std::uint8_t, kDnsUdpSize> buffer;
        for (;;) {
            // Errors end the attempt: the timeout's cancel, or an ICMP
            // "port unreachable" reported on the connected socket.
            auto [read_ec, n] = co_await socket.async_receive(asio::buffer(buffer), use_nothrow);
            if (read_ec) co_return std::nullopt;
            auto answer = dns_answer(std::span(buffer.data(), n), question, id);
            if (answer) co_return answer;  // else not ours: wait on
        }
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

}  // namespace smtplb::io
