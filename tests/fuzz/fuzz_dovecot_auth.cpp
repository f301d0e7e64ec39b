// Dovecot auth replies: arbitrary server bytes, fed in two pieces, must end
// in a defined state with bounded memory.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proto/dovecot_auth.hpp"

using namespace smtplb::proto;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view wire(reinterpret_cast<const char*>(data), size);
    DovecotAuthClient c;
    auto half = wire.size() / 2;
    c.feed(wire.substr(0, half));
    if (c.state() == DovecotAuthClient::State::Ready) c.request("user", "pw", {}, true);
    c.feed(wire.substr(half));
    if (c.state() == DovecotAuthClient::State::Error && c.error().empty()) __builtin_trap();
    return 0;
}
