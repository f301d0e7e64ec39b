// The read path that skips Asio's try-before-wait (io/readiness.hpp), on
// real loopback connections: a socket is marked drained only when that is
// true, any new data or end of stream clears the mark, and a read never
// waits for data that has already come.
#include <gtest/gtest.h>
#include <poll.h>

#include <array>
#include <chrono>
#include <string>

#include "io/readiness.hpp"
#include "io/tls.hpp"

using namespace smtplb;
using namespace std::chrono_literals;

namespace {

struct Connected {
    io::tcp::socket peer, local;
};

Connected connect_pair(io::asio::io_context& io) {
    io::tcp::acceptor acceptor(io, {io::asio::ip::make_address("127.0.0.1"), 0});
    Connected pair{io::tcp::socket(io), io::tcp::socket(io)};
    pair.peer.connect(acceptor.local_endpoint());
    acceptor.accept(pair.local);
    pair.local.non_blocking(true);
    return pair;
}

// Blocks until the kernel holds `events` for the socket (without reading).
bool wait_for(io::tcp::socket& socket, short events) {
    pollfd fd{socket.native_handle(), events, 0};
    return ::poll(&fd, 1, 5000) == 1 && (fd.revents & events) == events;
}

struct Read {
    bool done = false;
    io::error_code ec;
    std::string data;
};

// Starts one read_some and runs the loop until it completes or `limit` passes.
Read read_once(io::asio::io_context& io, io::TlsCapableStream& stream,
               std::chrono::milliseconds limit = 5s) {
    Read result;
    io::asio::co_spawn(
        io,
        [&]() -> io::awaitable<void> {
            std::array<char, 512> buffer;
            auto [ec, n] = co_await stream.read_some(io::asio::buffer(buffer));
            result.ec = ec;
            result.data.assign(buffer.data(), n);
            result.done = true;
        },
        io::asio::detached);
    auto until = std::chrono::steady_clock::now() + limit;
    while (!result.done && std::chrono::steady_clock::now() < until) {
        if (io.stopped()) io.restart();
        io.run_one_for(20ms);
    }
    return result;
}

void send(io::tcp::socket& socket, const std::string& text) {
    io::asio::write(socket, io::asio::buffer(text));
}

}  // namespace

TEST(Readiness, AShortReadMarksTheSocketDrainedAndNewDataClearsTheMark) {
    io::asio::io_context io{1};
    auto [peer, local] = connect_pair(io);
    io::TlsCapableStream stream(local);
    send(peer, "one\r\n");
    ASSERT_TRUE(wait_for(local, POLLIN));
    auto first = read_once(io, stream);
    ASSERT_TRUE(first.done);
    EXPECT_EQ(first.data, "one\r\n");
    EXPECT_EQ(io::readiness::drained(local), io::readiness::kSupported);

    // New data: once the loop has taken epoll's event, the mark is gone.
    send(peer, "two\r\n");
    ASSERT_TRUE(wait_for(local, POLLIN));
    io.restart();
    io.poll();
    EXPECT_FALSE(io::readiness::drained(local));
    auto second = read_once(io, stream);
    ASSERT_TRUE(second.done);
    EXPECT_EQ(second.data, "two\r\n");
}

TEST(Readiness, AReadOnADrainedSocketCompletesWhenDataComes) {
    io::asio::io_context io{1};
    auto [peer, local] = connect_pair(io);
    io::TlsCapableStream stream(local);
    send(peer, "220 ready\r\n");
    ASSERT_TRUE(wait_for(local, POLLIN));
    ASSERT_EQ(read_once(io, stream).data, "220 ready\r\n");

    // Nothing to read: the read waits (and its wait is short here) ...
    Read waiting;
    io::asio::co_spawn(
        io,
        [&]() -> io::awaitable<void> {
            std::array<char, 512> buffer;
            auto [ec, n] = co_await stream.read_some(io::asio::buffer(buffer));
            waiting.ec = ec;
            waiting.data.assign(buffer.data(), n);
            waiting.done = true;
        },
        io::asio::detached);
    io.restart();
    io.run_for(100ms);
    EXPECT_FALSE(waiting.done);
    // ... and ends when the peer sends.
    send(peer, "250 ok\r\n");
    io.restart();
    for (int i = 0; i < 250 && !waiting.done; ++i)
        io.run_one_for(20ms);
    ASSERT_TRUE(waiting.done);
    EXPECT_FALSE(waiting.ec);
    EXPECT_EQ(waiting.data, "250 ok\r\n");
}

// The peer's last words and its FIN arrive together. A read that takes the
// words finds the socket empty, but the end of stream is still to be read:
// the socket must not be marked drained, or the next read would wait for an
// event that never comes.
TEST(Readiness, DataWithEndOfStreamDoesNotLeaveTheNextReadWaiting) {
    io::asio::io_context io{1};
    auto [peer, local] = connect_pair(io);
    io::TlsCapableStream stream(local);
    send(peer, "a");
    ASSERT_TRUE(wait_for(local, POLLIN));
    ASSERT_EQ(read_once(io, stream).data, "a");  // now watched for the end of stream

    send(peer, "421 bye\r\n");
    peer.shutdown(io::tcp::socket::shutdown_send);
    ASSERT_TRUE(wait_for(local, POLLIN | POLLRDHUP));
    auto words = read_once(io, stream);
    ASSERT_TRUE(words.done);
    EXPECT_EQ(words.data, "421 bye\r\n");
    EXPECT_FALSE(io::readiness::drained(local));
    auto end = read_once(io, stream, 2s);
    ASSERT_TRUE(end.done) << "the end of stream was not read";
    EXPECT_EQ(end.ec, io::asio::error::eof);
}

// As above, but the loop takes epoll's event before anybody reads: the data
// is then read at once, outside Asio, and the event said the peer closed.
TEST(Readiness, EndOfStreamSeenByTheLoopFirstIsNotForgotten) {
    io::asio::io_context io{1};
    auto [peer, local] = connect_pair(io);
    io::TlsCapableStream stream(local);
    send(peer, "a");
    ASSERT_TRUE(wait_for(local, POLLIN));
    ASSERT_EQ(read_once(io, stream).data, "a");

    send(peer, "221 bye\r\n");
    peer.shutdown(io::tcp::socket::shutdown_send);
    ASSERT_TRUE(wait_for(local, POLLIN | POLLRDHUP));
    io.restart();
    io.poll();
    ASSERT_EQ(read_once(io, stream).data, "221 bye\r\n");
    auto end = read_once(io, stream, 2s);
    ASSERT_TRUE(end.done) << "the end of stream was not read";
    EXPECT_EQ(end.ec, io::asio::error::eof);
}

// Asio reuses its per-socket records: the end of stream a closed socket saw
// must not keep a new socket from being marked drained.
TEST(Readiness, ANewSocketDoesNotInheritAnOldEndOfStream) {
    io::asio::io_context io{1};
    {
        auto [peer, local] = connect_pair(io);
        io::TlsCapableStream stream(local);
        send(peer, "a");
        ASSERT_TRUE(wait_for(local, POLLIN));
        ASSERT_EQ(read_once(io, stream).data, "a");
        peer.shutdown(io::tcp::socket::shutdown_send);
        ASSERT_TRUE(wait_for(local, POLLRDHUP));
        io.restart();
        io.poll();
        EXPECT_EQ(read_once(io, stream).ec, io::asio::error::eof);
    }
    // Which new socket gets the old record is Asio's business: both ends of
    // a new connection read before anything came (and before any event for
    // them could overwrite what the record holds), so both are drained.
    auto [peer, local] = connect_pair(io);
    peer.non_blocking(true);
    io::TlsCapableStream peer_stream(peer), local_stream(local);
    int completed = 0;
    for (auto* stream : {&peer_stream, &local_stream}) {
        io::asio::co_spawn(
            io,
            [stream, &completed]() -> io::awaitable<void> {
                std::array<char, 512> buffer;
                auto [ec, n] = co_await stream->read_some(io::asio::buffer(buffer));
                if (!ec && std::string(buffer.data(), n) == "fresh\r\n") ++completed;
            },
            io::asio::detached);
    }
    io.restart();
    io.run_for(100ms);
    EXPECT_EQ(io::readiness::drained(local), io::readiness::kSupported);
    EXPECT_EQ(io::readiness::drained(peer), io::readiness::kSupported);
    send(peer, "fresh\r\n");
    send(local, "fresh\r\n");
    for (int i = 0; i < 250 && completed < 2; ++i)
        io.run_one_for(20ms);
    EXPECT_EQ(completed, 2);
}
