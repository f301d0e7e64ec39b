// What the nodes of a cluster read from Redis (untrusted: another node's
// text, a sentinel's, a script's answer): never a crash, and what a reader
// accepts keeps its promises (src/io/cluster/cluster_messages.hpp).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "io/cluster/cluster_messages.hpp"

using namespace smtplb;
using io::RedisReply;

namespace {

struct Input {
    const std::uint8_t* data;
    std::size_t size;
    std::uint8_t byte() {
        if (size == 0) return 0;
        --size;
        return *data++;
    }
    std::string text(std::size_t n) {
        n = std::min(n, size);
        std::string out(reinterpret_cast<const char*>(data), n);
        data += n;
        size -= n;
        return out;
    }
};

// A reply as the client would hand it over, from bytes; bounded in depth.
RedisReply reply_from(Input& in, int depth) {
    RedisReply r;
    switch (in.byte() % 7) {
        case 0:
            r.kind = RedisReply::Kind::Integer;
            break;
        case 1:
            r.kind = RedisReply::Kind::String;
            break;
        case 2:
            r.kind = RedisReply::Kind::Error;
            break;
        case 3:
            r.kind = RedisReply::Kind::Nil;
            break;
        case 4:
            r.kind = RedisReply::Kind::Timeout;
            break;
        default:
            r.kind = depth < 3 ? RedisReply::Kind::Array : RedisReply::Kind::Integer;
    }
    if (r.kind == RedisReply::Kind::Integer) {
        auto raw = in.text(8);
        raw.resize(8, '\0');
        std::int64_t v = 0;
        std::memcpy(&v, raw.data(), sizeof v);
        // Small values reach the interesting cases (refusal indexes).
        r.integer = (in.byte() & 1) ? v : static_cast<std::int8_t>(v);
    } else if (r.kind == RedisReply::Kind::Array) {
        const int n = in.byte() % 12;
        for (int i = 0; i < n && in.size > 0; ++i)
            r.elements.push_back(reply_from(in, depth + 1));
    } else {
        r.text = in.text(in.byte() % 32);
    }
    return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Input in{data, size};
    const auto reader = in.byte() % 4;
    if (reader == 0) {
        auto text = in.text(in.size);
        if (auto h = io::decode_heartbeat(text)) {
            if (h->node.empty()) __builtin_trap();
            auto again = io::decode_heartbeat(io::encode_heartbeat(*h));
            if (!again || again->node != h->node || again->digest != h->digest ||
                again->sequence != h->sequence || again->sessions != h->sessions ||
                again->backends.size() != h->backends.size())
                __builtin_trap();
        }
    } else if (reader == 1) {
        auto text = in.text(in.size);
        if (auto change = io::parse_switch_master(text)) {
            if (change->name.empty() || change->from.host.empty() || change->to.host.empty() ||
                change->from.port == 0 || change->to.port == 0)
                __builtin_trap();
        }
        if (auto stick = io::parse_stick(text)) {
            if (io::encode_stick(*stick) != text) __builtin_trap();
        }
    } else {
        std::vector<std::size_t> ops;
        for (int n = in.byte() % 4; n > 0; --n)
            ops.push_back(in.byte() % 6);
        auto reply = reply_from(in, 0);
        if (auto address = io::master_address(reply))
            if (address->host.empty() || address->port == 0) __builtin_trap();
        (void)io::role_of(reply);
        (void)io::is_demoted_error(reply);
        if (auto results = io::parse_limit_reply(reply, ops)) {
            if (results->size() != ops.size()) __builtin_trap();
            for (std::size_t i = 0; i < ops.size(); ++i) {
                const auto& r = (*results)[i];
                if (r.refused > ops[i]) __builtin_trap();
                if (r.refused == ops[i] && r.ops.size() != ops[i]) __builtin_trap();
                if (r.refused < ops[i] && !r.ops.empty()) __builtin_trap();
            }
        }
    }
    return 0;
}
