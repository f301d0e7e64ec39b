// A backend's bytes during a health probe (untrusted): the probe always
// ends, decides at most once, and sends only what its plan allows.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proto/probe.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace smtplb::proto;
    if (size < 1) return 0;
    ProbeSession probe({static_cast<ProbeDepth>(data[0] % 6), "lb.fuzz", "probe@x.invalid",
                        "postmaster@example.net"});
    probe.connected();
    std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    std::size_t sent = 0;
    for (std::size_t i = 0; i < in.size() && !probe.done(); i += 7) {
        probe.feed(in.substr(i, 7));
        sent += probe.output().size();
        probe.output().clear();
        probe.take_events();
    }
    // At most EHLO, HELO, MAIL, RCPT, RSET and QUIT, each bounded.
    if (sent > 6 * 600) __builtin_trap();
    if (!probe.done()) probe.closed();
    if (!probe.done() || !probe.result()) __builtin_trap();
    return 0;
}
