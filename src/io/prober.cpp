#include "io/prober.hpp"

#include "io/deadline.hpp"
#include "io/sockets.hpp"

namespace smtplb::io {

awaitable<ProbeReport> run_probe(BackendConnector& connector, base::HostPort to,
                                 std::optional<base::IpAddress> source, proto::ProbePlan plan,
                                 Millis timeout, bool with_transcript) {
    using SteadyClock = std::chrono::steady_clock;
    const auto started = SteadyClock::now();
    auto since_start = [&] {
        return std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - started);
    };
    ProbeReport report;
    proto::ProbeSession probe(plan);
    auto collect = [&] {
        auto events = probe.take_events();
        if (!with_transcript) return;
        for (auto& e : events)
            report.transcript.push_back({since_start(), std::move(e)});
    };

    auto [ec, socket] = co_await connector.connect(to, source, timeout);
    if (ec) {
        probe.connect_failed(ec == asio::error::timed_out ? "timeout" : ec.message());
    } else {
        probe.connected();
        auto left = timeout - std::chrono::duration_cast<Millis>(since_start());
        Alarm deadline(socket.get_executor(), left > Millis(0) ? left : Millis(1), [&socket] {
            error_code ignored;
            socket.close(ignored);
        });
        std::array<char, 4096> buffer;
        while (!probe.done()) {
            collect();
            if (!probe.output().empty()) {
                auto [wec, written] =
                    co_await asio::async_write(socket, asio::buffer(probe.output()), use_nothrow);
                probe.output().clear();
                if (wec) {
                    deadline.expired() ? probe.timed_out() : probe.closed();
                    break;
                }
            }
            auto [rec, n] = co_await socket.async_read_some(asio::buffer(buffer), use_nothrow);
            if (rec) {
                deadline.expired() ? probe.timed_out() : probe.closed();
                break;
            }
            probe.feed(std::string_view(buffer.data(), n));
        }
        deadline.cancel();
        error_code ignored;
        socket.close(ignored);
    }
    collect();
    report.elapsed = since_start();
    if (probe.result()) report.result = *probe.result();
    co_return report;
}

}  // namespace smtplb::io
