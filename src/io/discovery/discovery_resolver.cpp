#include "io/discovery/discovery_resolver.hpp"

#include <algorithm>

#include "io/front/dns_exchange.hpp"

namespace smtplb::io {
namespace {

using Steady = std::chrono::steady_clock;

class UdpDiscoveryResolver final : public DiscoveryResolver,
                                   public std::enable_shared_from_this<UdpDiscoveryResolver> {
  public:
    UdpDiscoveryResolver(const asio::any_io_executor& executor,
                         std::vector<asio::ip::udp::endpoint> servers, Millis timeout)
        : executor_(executor), servers_(std::move(servers)), timeout_(timeout) {}

    awaitable<core::DiscoveryAnswer> resolve(const config::Discover& discover) override {
        auto self = shared_from_this();  // kept while a lookup is in flight
        core::DiscoveryAnswer out;
        if (discover.kind == config::DiscoverKind::A) {
            out.status = core::DnsStatus::Ok;
            core::DiscoveredHost host;
            host.host = discover.name;
            host.port = discover.port;
            host.addresses = co_await addresses(discover.name);
            out.hosts.push_back(std::move(host));
            co_return out;
        }
        bool mx = discover.kind == config::DiscoverKind::Mx;
        DnsQuestion question{discover.name, mx ? kDnsTypeMx : kDnsTypeSrv};
        auto answer = co_await ask_dns(executor_, servers_, question, Steady::now() + timeout_, 0);
        out.status = answer.status;
        out.ttl = answer.ttl;
        out.negative_ttl = answer.negative_ttl;
        for (const auto& record : answer.services) {
            core::DiscoveredHost host;
            host.host = record.host;
            host.priority = record.priority;
            host.weight = mx ? 1 : record.weight;
            host.port = mx ? 25 : record.port;
            // A null MX (RFC 7505) or an SRV target "." says: no service.
            if (host.host.empty()) continue;
            host.addresses = co_await addresses(host.host);
            out.hosts.push_back(std::move(host));
        }
        co_return out;
    }

  private:
    // A and AAAA together, one after the other within one timeout: Ok with
    // the addresses of both, NoName when neither has any, TempFail when
    // either went unanswered (half a list would drain the other half).
    awaitable<core::DnsAnswer> addresses(const std::string& host) {
        auto deadline = Steady::now() + timeout_;
        DnsQuestion a{host, kDnsTypeA};
        DnsQuestion aaaa{host, kDnsTypeAaaa};
        auto v4 = co_await ask_dns(executor_, servers_, a, deadline, 2);
        auto v6 = co_await ask_dns(executor_, servers_, aaaa, deadline, 0);
        core::DnsAnswer out;
        if (v4.status == core::DnsStatus::TempFail || v6.status == core::DnsStatus::TempFail)
            co_return out;
        out.status = core::DnsStatus::NoName;
        for (const auto* a : {&v4, &v6}) {
            if (a->status != core::DnsStatus::Ok) continue;
            out.status = core::DnsStatus::Ok;
            out.addresses.insert(out.addresses.end(), a->addresses.begin(), a->addresses.end());
            if (a->ttl) out.ttl = std::min(out.ttl.value_or(UINT32_MAX), *a->ttl);
        }
        co_return out;
    }

    asio::any_io_executor executor_;
    std::vector<asio::ip::udp::endpoint> servers_;
    Millis timeout_;
};

}  // namespace

std::shared_ptr<DiscoveryResolver> make_discovery_resolver(
    const asio::any_io_executor& executor, std::vector<asio::ip::udp::endpoint> servers,
    Millis timeout) {
    return std::make_shared<UdpDiscoveryResolver>(executor, std::move(servers), timeout);
}

}  // namespace smtplb::io
