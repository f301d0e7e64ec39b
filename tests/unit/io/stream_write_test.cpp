// TlsCapableStream's plaintext writes over a real loopback connection whose
// buffers are made small, so the socket takes only part of a write: what
// write_now leaves must follow, in order, through write_rest.
#include <gtest/gtest.h>

#include <array>
#include <span>
#include <string>
#include <thread>

#include "io/runtime/tls.hpp"

using namespace smtplb;
using namespace std::chrono_literals;

namespace {

struct Connected {
    io::tcp::socket writer, reader;
};

Connected connect_pair(io::asio::io_context& io, int buffer_bytes) {
    io::tcp::acceptor acceptor(io, {io::asio::ip::make_address("127.0.0.1"), 0});
    Connected pair{io::tcp::socket(io), io::tcp::socket(io)};
    pair.writer.open(io::tcp::v4());
    pair.writer.set_option(io::asio::socket_base::send_buffer_size(buffer_bytes));
    pair.writer.connect(acceptor.local_endpoint());
    acceptor.accept(pair.reader);
    return pair;
}

// Bytes that show any reordering or loss: position modulo a prime.
std::string pattern(std::size_t size, std::size_t offset) {
    std::string text(size, '\0');
    for (std::size_t i = 0; i < size; ++i)
        text[i] = static_cast<char>('a' + (offset + i) % 23);
    return text;
}

// Everything the reader gets until the writer shuts down, while the
// io_context runs.
struct Collector {
    io::tcp::socket& reader;
    std::string received;
    std::array<char, 65536> buffer;
    void start() {
        reader.async_read_some(io::asio::buffer(buffer), [this](io::error_code e, std::size_t n) {
            received.append(buffer.data(), n);
            if (!e) start();
        });
    }
};

// Runs `write` (a coroutine that shuts the writer down when it is done)
// and returns what the reader got meanwhile.
template <typename Write>
std::string run_and_collect(io::asio::io_context& io, io::tcp::socket& reader, Write write) {
    io::asio::co_spawn(io, std::move(write), io::asio::detached);
    Collector collector{reader};
    collector.start();
    io.run_for(20s);
    return collector.received;
}

}  // namespace

TEST(StreamWrite, WhatTheSocketDoesNotTakeAtOnceFollowsInOrder) {
    io::asio::io_context io{1};
    auto [writer, reader] = connect_pair(io, 4096);
    writer.non_blocking(true);
    io::TlsCapableStream stream(writer);

    // Three pieces, far more than the shrunken buffers hold.
    constexpr std::size_t kPiece = 1 << 20;
    std::array<std::string, 3> pieces{pattern(kPiece, 0), pattern(kPiece, kPiece),
                                      pattern(kPiece, 2 * kPiece)};
    std::array<io::asio::const_buffer, 3> gather{
        io::asio::buffer(pieces[0]), io::asio::buffer(pieces[1]), io::asio::buffer(pieces[2])};
    std::span<const io::asio::const_buffer> all(gather);

    io::error_code ec;
    std::size_t at_once = stream.write_now(all, ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_GT(at_once, 0u);
    EXPECT_LT(at_once, 3 * kPiece) << "the socket took everything: the test proves nothing";

    io::error_code rest_ec;
    std::size_t total = 0;
    auto received = run_and_collect(io, reader, [&]() -> io::awaitable<void> {
        auto [e, n] = co_await stream.write_rest(all, at_once);
        rest_ec = e;
        total = n;
        writer.shutdown(io::tcp::socket::shutdown_send);
    });

    EXPECT_FALSE(rest_ec) << rest_ec.message();
    EXPECT_EQ(total, 3 * kPiece);
    ASSERT_EQ(received.size(), 3 * kPiece);
    EXPECT_TRUE(received == pieces[0] + pieces[1] + pieces[2]) << "bytes lost or reordered";
}

TEST(StreamWrite, WriteSendsEverythingWhetherOrNotItFitsAtOnce) {
    io::asio::io_context io{1};
    auto [writer, reader] = connect_pair(io, 4096);
    writer.non_blocking(true);
    io::TlsCapableStream stream(writer);
    std::string small = "250 2.0.0 Ok\r\n";
    std::string large = pattern(3 << 20, 7);

    std::size_t small_sent = 0, large_sent = 0;
    auto received = run_and_collect(io, reader, [&]() -> io::awaitable<void> {
        auto [e1, n1] = co_await stream.write(io::asio::buffer(small));
        small_sent = e1 ? 0 : n1;
        auto [e2, n2] = co_await stream.write(io::asio::buffer(large));
        large_sent = e2 ? 0 : n2;
        writer.shutdown(io::tcp::socket::shutdown_send);
    });

    EXPECT_EQ(small_sent, small.size());
    EXPECT_EQ(large_sent, large.size());
    EXPECT_TRUE(received == small + large) << "got " << received.size() << " bytes";
}

TEST(StreamWrite, ABlockingSocketIsLeftToAsio) {
    io::asio::io_context io{1};
    auto [writer, reader] = connect_pair(io, 4096);
    io::TlsCapableStream stream(writer);  // not made non-blocking
    std::string reply = "250 2.0.0 Ok\r\n";
    io::error_code ec;
    EXPECT_EQ(stream.write_now(io::asio::buffer(reply), ec), 0u);
    EXPECT_FALSE(ec);
    std::array<char, 64> buffer;
    reader.non_blocking(true);
    io::error_code read_ec;
    reader.read_some(io::asio::buffer(buffer), read_ec);
    EXPECT_EQ(read_ec, io::asio::error::would_block) << "write_now wrote on a blocking socket";
}

TEST(StreamWrite, AWriteToAClosedPeerFails) {
    io::asio::io_context io{1};
    auto [writer, reader] = connect_pair(io, 4096);
    writer.non_blocking(true);
    io::TlsCapableStream stream(writer);
    reader.close();
    std::string data = pattern(1 << 20, 0);
    io::error_code ec;
    // The first write may still be taken before the reset comes back.
    for (int i = 0; i < 50 && !ec; ++i) {
        stream.write_now(io::asio::buffer(data), ec);
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(ec) << "writing to a closed peer never failed";
}
