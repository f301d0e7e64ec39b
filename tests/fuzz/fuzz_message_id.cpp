// The Message-ID scanner on arbitrary header sections: the result does not
// depend on how the bytes are split, and stays within its bound.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proto/message_id.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using smtplb::proto::MessageIdScanner;
    std::string_view input(reinterpret_cast<const char*>(data), size);
    MessageIdScanner whole;
    whole.feed(input);
    MessageIdScanner pieces;
    std::size_t step = size ? 1 + data[0] % 7 : 1;
    for (std::size_t i = 0; i < input.size() && !pieces.done(); i += step)
        pieces.feed(input.substr(i, step));
    if (whole.message_id() != pieces.message_id()) __builtin_trap();
    if (whole.message_id().size() > MessageIdScanner::kMaxValue) __builtin_trap();
    return 0;
}
