// 8-bit MIME to 7-bit, on arbitrary messages: never a crash, the bounds
// hold, and what comes out has CRLF line endings only.
#include <cstddef>
#include <cstdint>
#include <string>

#include "mime/downgrade.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string message(reinterpret_cast<const char*>(data), size);
    smtplb::mime::DowngradeLimits limits{
        .max_size = 1 << 20, .max_content_types = 50, .max_depth = 20};
    auto result = smtplb::mime::downgrade_to_7bit(message, limits);
    if (!result.ok()) return 0;
    for (std::size_t i = 0; i < result.message.size(); ++i)
        if (result.message[i] == '\n' && (i == 0 || result.message[i - 1] != '\r'))
            __builtin_trap();  // line endings are CRLF
    smtplb::mime::unstuff(message);
    return 0;
}
