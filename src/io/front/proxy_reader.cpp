#include "io/front/proxy_reader.hpp"

#include <string>

namespace smtplb::io {

awaitable<proto::ProxyParse> read_proxy_header(tcp::socket& socket, proto::ProxyVersions versions) {
    std::string header;
    for (;;) {
        auto parsed = proto::parse_proxy_header(header, versions);
        if (parsed.status != proto::ProxyParse::Status::NeedMore) co_return parsed;
        // The parser asks for at most the header's own bytes (byte by byte
        // inside a v1 line), so this read never takes anything behind it.
        std::size_t have = header.size();
        header.resize(parsed.length);
        auto [ec, n] = co_await asio::async_read(
            socket, asio::buffer(header.data() + have, parsed.length - have), use_nothrow);
        if (ec) {
            proto::ProxyParse failed;
            failed.status = proto::ProxyParse::Status::Invalid;
            failed.error = ec == asio::error::operation_aborted
                               ? "timeout before a complete header"
                               : "connection ended: " + ec.message();
            co_return failed;
        }
    }
}

}  // namespace smtplb::io
