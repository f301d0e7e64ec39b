#include "io/health/prober.hpp"

#include "io/runtime/deadline.hpp"
#include "io/runtime/sockets.hpp"

namespace smtplb::io {

ProbeTls probe_tls_for(const config::Pool& pool, std::size_t backend, const TlsContext& context) {
    ProbeTls tls;
    if (pool.tls.mode == config::BackendTlsMode::None) return tls;
    tls.context = context;
    tls.verify = pool.tls.verifies();
    tls.implicit = pool.tls.mode == config::BackendTlsMode::Implicit;
    tls.name = config::tls_name_for(pool, pool.backends[backend]);
    return tls;
}

void plan_tls_for(const config::Pool& pool, proto::ProbePlan& plan) {
    using Mode = config::BackendTlsMode;
    plan.starttls = pool.tls.mode == Mode::Opportunistic || pool.tls.mode == Mode::Required;
    plan.tls_required = pool.tls.mode == Mode::Required;
}

awaitable<ProbeReport> run_probe(BackendConnector& connector, base::HostPort to,
                                 std::optional<base::IpAddress> source, proto::ProbePlan plan,
                                 Millis timeout, bool with_transcript, ProbeTls tls) {
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

    auto [ec, connected] = co_await connector.connect(to, source, timeout);
    // A named variable, not a structured binding: lambdas capture it (clang).
    tcp::socket socket = std::move(connected);
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
        TlsCapableStream stream(socket);
        bool handshake_now = tls.implicit;
        while (!probe.done()) {
            collect();
            if (probe.needs_tls() || handshake_now) {
                handshake_now = false;
                if (!tls.context) {
                    std::string ignored;
                    config::BackendTls unverified;
                    tls.context = make_backend_tls(unverified, ignored);
                }
                auto hec = co_await stream.connect(tls.context, tls.name, tls.verify);
                if (hec) {
                    probe.tls_failed(deadline.expired() ? "timeout" : stream.describe(hec));
                    break;
                }
                auto facts = stream.facts();
                probe.tls_started(facts.peer_seconds_left
                                      ? proto::certificate_warning(*facts.peer_seconds_left)
                                      : std::string());
                continue;
            }
            if (!probe.output().empty()) {
                auto [wec, written] = co_await stream.write(asio::buffer(probe.output()));
                probe.output().clear();
                if (wec) {
                    deadline.expired() ? probe.timed_out() : probe.closed();
                    break;
                }
            }
            auto [rec, n] = co_await stream.read_some(asio::buffer(buffer));
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
