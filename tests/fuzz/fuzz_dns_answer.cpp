// DNS replies (untrusted bytes from the network) as the client name lookup
// reads them: never a crash, and what it returns keeps its promises.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/client_names.hpp"
#include "io/front/dns_packets.hpp"

using namespace smtplb;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    // The first bytes are the reply's own id: the id check passes often.
    std::uint16_t id = static_cast<std::uint16_t>(data[0] << 8 | data[1]);
    std::span<const std::uint8_t> reply(data, size);
    for (const auto& question : {io::DnsQuestion{"20.2.0.192.in-addr.arpa", io::kDnsTypePtr},
                                 io::DnsQuestion{"mx.example", io::kDnsTypeA},
                                 io::DnsQuestion{"mx.example", io::kDnsTypeAaaa}}) {
        auto answer = io::dns_answer(reply, question, id);
        if (!answer) continue;
        bool records = !answer->names.empty() || !answer->addresses.empty();
        if ((answer->status == core::DnsStatus::Ok) != records) __builtin_trap();
        for (const auto& a : answer->addresses)
            if (a.v6 != (question.type == io::kDnsTypeAaaa)) __builtin_trap();
        auto step = core::after_reverse(*answer);
        if (!step.result && !core::valid_client_hostname(step.confirm)) __builtin_trap();
    }
    // Pool discovery's questions (docs/cluster.md, "Pools from DNS").
    for (const auto& question : {io::DnsQuestion{"example.org", io::kDnsTypeMx},
                                 io::DnsQuestion{"_smtp._tcp.example.org", io::kDnsTypeSrv}}) {
        auto answer = io::dns_answer(reply, question, id);
        if (!answer) continue;
        if (!answer->addresses.empty() || !answer->names.empty()) __builtin_trap();
        if (answer->status == core::DnsStatus::Ok && answer->services.empty()) __builtin_trap();
    }
    return 0;
}
