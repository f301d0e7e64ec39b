// The memory a flood of distinct senders costs the limits (issue 27):
// one [[limit]] keyed by sender, `keys` distinct senders each sending one
// message, at most `max_keys` remembered. Prints the keys tracked, the
// evictions and the peak RSS (VmHWM); run it under /usr/bin/time -v too.
//
//   build/tests/limit_keys_bench [keys] [max_keys] [pad]   (default 1000000 1000000 0)
// `pad` lengthens every sender's local part by that many characters.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "core/limits/limit_set.hpp"

namespace {

std::string peak_rss() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmHWM:", 0) == 0) return line.substr(6);
    return " unknown";
}

}  // namespace

int main(int argc, char** argv) {
    using namespace smtplb;
    const long keys = argc > 1 ? std::atol(argv[1]) : 1000000;
    const long max_keys = argc > 2 ? std::atol(argv[2]) : 1000000;
    const std::string pad(argc > 3 ? static_cast<std::size_t>(std::atol(argv[3])) : 0, 'x');
    config::Limit limit;
    limit.name = "per-sender";
    limit.key = {config::LimitKeyPart::Sender};
    limit.counts = config::LimitCounts::Messages;
    limit.quantity = 10;
    limit.period = std::chrono::minutes(1);
    limit.burst = 5;
    limit.max_keys = static_cast<std::uint32_t>(max_keys);
    std::vector<config::Limit> limits{limit};
    core::LimitSet set(limits, core::LimitSet::in_process_store(limits));

    std::printf("before: peak RSS%s\n", peak_rss().c_str());
    const auto now = std::chrono::steady_clock::now();
    const auto start = std::chrono::steady_clock::now();
    core::LimitSubject subject;
    subject.listener = "internet";
    long refused = 0;
    for (long i = 0; i < keys; ++i) {
        subject.sender =
            "user" + pad + std::to_string(i) + "@example" + std::to_string(i % 1000) + ".net";
        refused += set.check(core::LimitEvent::EndOfData, subject, now).kind ==
                   core::LimitVerdict::Kind::Tempfail;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    auto stats = set.store().stats(0);
    std::printf("keys=%ld (%zu bytes each) max_keys=%ld tracked=%llu evictions=%llu refused=%ld\n",
                keys, set.keys(0, core::LimitEvent::EndOfData, subject).at(0).size(), max_keys,
                static_cast<unsigned long long>(stats.tracked_keys),
                static_cast<unsigned long long>(stats.evictions), refused);
    std::printf("%.0f decisions/s; peak RSS%s\n", keys / seconds, peak_rss().c_str());
    return 0;
}
