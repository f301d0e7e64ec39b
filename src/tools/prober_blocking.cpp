// run_probe_blocking, apart from run_probe: in one translation unit GCC 12
// warns falsely (-Wmismatched-new-delete) about the inlined coroutine frame.
#include "tools/prober_blocking.hpp"

namespace smtplb::tools {

namespace asio = io::asio;
using io::Millis;
using io::ProbeReport;

namespace {
io::awaitable<void> probe_into(ProbeReport& out, base::HostPort to,
                               std::optional<base::IpAddress> source, proto::ProbePlan plan,
                               Millis timeout) {
    io::TcpConnector connector;
    io::ProbeTls unverified;  // named: GCC 12 mishandles braced temporaries passed to coroutines
    out = co_await io::run_probe(connector, std::move(to), source, std::move(plan), timeout, true,
                                 unverified);
}
}  // namespace

ProbeReport run_probe_blocking(base::HostPort to, std::optional<base::IpAddress> source,
                               proto::ProbePlan plan, Millis timeout) {
    asio::io_context io(1);
    ProbeReport report;
    asio::co_spawn(io, probe_into(report, std::move(to), source, std::move(plan), timeout),
                   asio::detached);
    io.run();
    return report;
}

}  // namespace smtplb::tools
