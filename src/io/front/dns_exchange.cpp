#include "io/front/dns_exchange.hpp"

#include <openssl/rand.h>

#include <array>
#include <optional>

#include "io/runtime/deadline.hpp"

namespace smtplb::io {
namespace {

using asio::ip::udp;

// One query over UDP from a socket of its own (a random source port, and
// connected: only that server's datagrams arrive); nothing when no reply
// to it came within `timeout`.
awaitable<std::optional<core::DnsAnswer>> exchange(const asio::any_io_executor& executor,
                                                   const udp::endpoint& server,
                                                   const DnsQuestion& question, Millis timeout) {
    udp::socket socket(executor);
    error_code ec;
    socket.open(server.protocol(), ec);
    if (!ec) socket.connect(server, ec);
    std::uint16_t id = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&id), sizeof id) != 1) co_return std::nullopt;
    auto query = dns_query(question, id);
    if (ec || query.empty()) co_return std::nullopt;
    Alarm alarm(executor, std::max(timeout, Millis(1)), [&socket] {
        error_code ignored;
        socket.cancel(ignored);
    });
    auto [send_ec, sent] = co_await socket.async_send(asio::buffer(query), use_nothrow);
    if (send_ec) co_return std::nullopt;
    std::array<std::uint8_t, kDnsUdpSize> buffer;
    for (;;) {
        // Errors end the attempt: the timeout's cancel, or an ICMP "port
        // unreachable" reported on the connected socket.
        auto [read_ec, n] = co_await socket.async_receive(asio::buffer(buffer), use_nothrow);
        if (read_ec) co_return std::nullopt;
        auto answer = dns_answer(std::span(buffer.data(), n), question, id);
        if (answer) co_return answer;  // else not ours: wait on
    }
}

}  // namespace

awaitable<core::DnsAnswer> ask_dns(const asio::any_io_executor& executor,
                                   const std::vector<udp::endpoint>& servers,
                                   const DnsQuestion& question,
                                   std::chrono::steady_clock::time_point deadline, int later) {
    core::DnsAnswer failed;  // TempFail
    if (servers.empty()) co_return failed;
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) break;
        auto share = (deadline - now) / (2 - attempt + later);
        const auto& server = servers[attempt % servers.size()];
        auto answer = co_await exchange(executor, server, question,
                                        std::chrono::duration_cast<Millis>(share));
        if (answer && answer->status != core::DnsStatus::TempFail) co_return *answer;
    }
    co_return failed;
}

}  // namespace smtplb::io
