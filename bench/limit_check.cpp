// What the [[limit]]s cost one message when none is reached (issue 27):
// the five limits bench.py's smtplb-limits configuration has, checked as a
// session checks them: MAIL (taking the transaction's concurrency), one
// RCPT, the end of data, the transaction's end. Google Benchmark; not a test.
//
//   build/tests/limit_check_bench [--benchmark_repetitions=5]
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/limits/limit_set.hpp"

namespace {

using namespace smtplb;
using config::LimitCounts;
using config::LimitKeyPart;

config::Limit rate(const char* name, std::vector<LimitKeyPart> key, LimitCounts counts,
                   std::uint64_t quantity) {
    config::Limit l;
    l.name = name;
    l.key = std::move(key);
    l.counts = counts;
    l.quantity = quantity;
    l.period = std::chrono::seconds(1);
    l.burst = quantity;
    return l;
}

// As bench/peers.py's UNREACHED_LIMITS.
std::vector<config::Limit> unreached_limits() {
    std::vector<config::Limit> limits;
    limits.push_back(rate("per-client-connections", {LimitKeyPart::ClientIp},
                          LimitCounts::Connections, 1000000));
    limits.push_back(
        rate("per-sender-messages", {LimitKeyPart::Sender}, LimitCounts::Messages, 1000000));
    limits.push_back(rate("per-domain-recipients",
                          {LimitKeyPart::SenderDomain, LimitKeyPart::RecipientDomain},
                          LimitCounts::Recipients, 1000000));
    config::Limit transactions;
    transactions.name = "per-network-transactions";
    transactions.key = {LimitKeyPart::ClientNetwork};
    transactions.counts = LimitCounts::ConcurrentTransactions;
    transactions.concurrency = 100000;
    limits.push_back(transactions);
    limits.push_back(
        rate("per-listener-bytes", {LimitKeyPart::Listener}, LimitCounts::Bytes, 100ull << 30));
    return limits;
}

void one_message_per_iteration(benchmark::State& state) {
    auto limits = unreached_limits();
    core::LimitSet set(limits, core::LimitSet::in_process_store(limits));
    const std::string listener = "mx";
    const std::string sender = "load-generator@example.org";
    const std::string recipient = "someone@example.net";
    const std::string recipient_domain = "example.net";
    const auto client = base::IpAddress::parse("192.0.2.10");
    auto now = std::chrono::steady_clock::now();
    for (auto _ : state) {
        now += std::chrono::microseconds(100);
        core::LimitSubject mail;
        mail.listener = listener;
        mail.client = client;
        mail.sender = sender;
        mail.bytes = 2000;
        auto transaction = set.check(core::LimitEvent::Mail, mail, now);
        core::LimitSubject rcpt = mail;
        rcpt.recipient = recipient;
        auto accepted = set.check(core::LimitEvent::Rcpt, rcpt, now);
        core::LimitSubject end = mail;
        end.recipient_domains.push_back(recipient_domain);
        auto delivered = set.check(core::LimitEvent::EndOfData, end, now);
        if (transaction.kind != core::LimitVerdict::Kind::Allow ||
            accepted.kind != core::LimitVerdict::Kind::Allow ||
            delivered.kind != core::LimitVerdict::Kind::Allow)
            state.SkipWithError("a limit was reached");
        benchmark::DoNotOptimize(transaction);
    }
}
BENCHMARK(one_message_per_iteration);

}  // namespace

BENCHMARK_MAIN();
