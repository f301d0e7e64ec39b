// A spool file as read back after a crash or by a damaged disk (untrusted:
// anything may be in it): the reader refuses or returns a layout whose
// every record lies inside the file, and what it accepts it writes back the same.
#include <cstddef>
#include <cstdint>
#include <string>

#include "proto/spool_format.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace smtplb::proto;
    std::string file(reinterpret_cast<const char*>(data), size);
    // Mostly-valid inputs get further: give every input the magic line.
    if (size > 0 && (data[0] & 1) && !file.starts_with(kSpoolMagic))
        file = std::string(kSpoolMagic) + file.substr(1);
    auto read = [&](std::uint64_t offset, std::size_t n, std::string& out) {
        if (offset > file.size()) return false;
        out = file.substr(offset, n);
        return true;
    };
    std::string error;
    auto layout = parse_spool(read, file.size(), error);
    if (!layout) {
        if (error.empty()) __builtin_trap();
        return 0;
    }
    std::uint64_t body = 0;
    for (const auto& chunk : layout->body) {
        if (chunk.offset + chunk.length > file.size()) __builtin_trap();
        body += chunk.length;
    }
    if (body != layout->body_size) __builtin_trap();
    for (const auto& r : layout->recipients)
        if (r.offset >= file.size()) __builtin_trap();
    // Round trip: the envelope and recipients written again parse the same.
    std::vector<Mailbox> rcpts;
    for (const auto& r : layout->recipients)
        rcpts.push_back(r.mailbox);
    std::string again = spool_head(layout->envelope, rcpts) + spool_end(0);
    auto read_again = [&](std::uint64_t offset, std::size_t n, std::string& out) {
        if (offset > again.size()) return false;
        out = again.substr(offset, n);
        return true;
    };
    auto second = parse_spool(read_again, again.size(), error);
    if (!second || second->recipients.size() != rcpts.size() ||
        second->envelope.pool != layout->envelope.pool ||
        second->envelope.sender.null != layout->envelope.sender.null ||
        second->envelope.identity.helo != layout->envelope.identity.helo)
        __builtin_trap();
    return 0;
}
