// Replies from backends (untrusted): never crash, never unbounded.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proto/capabilities.hpp"
#include "proto/reply_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    smtplb::proto::ReplyParser p(smtplb::proto::ReplyParser::Limits{512, 50});
    std::string_view in(reinterpret_cast<const char*>(data), size);
    for (std::size_t i = 0; i < in.size(); i += 13) {
        p.feed(in.substr(i, 13));
        while (auto r = p.next()) {
            if (r->code < 200 || r->code > 599 || r->lines.size() > 50) __builtin_trap();
            smtplb::proto::Capabilities::from_ehlo(*r);
            r->wire();
        }
    }
    return 0;
}
