// The read path that skips Asio's try-before-wait (io/readiness.hpp), on
// real loopback connections: a socket is marked drained only when that is
// true, any new data or end of stream clears the mark, and a read never
// waits for data that has already come.
#include <gtest/gtest.h>
#include <poll.h>

#include <array>
#include <chrono>
#include <string>

#include "io/runtime/readiness.hpp"
#include "io/runtime/tls.hpp"

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
    bool drained_after = false;  // the mark, looked at as the read ended
};

// Starts one read_some; `result` is filled in when it completes.
void start_read(io::asio::io_context& io, io::TlsCapableStream& stream, io::tcp::socket& socket,
                Read& result) {
    io::asio::co_spawn(
        io,
        [&stream, &socket, &result]() -> io::awaitable<void> {
            std::array<char, 512> buffer;
            auto [ec, n] = co_await stream.read_some(io::asio::buffer(buffer));
            result.drained_after = io::readiness::drained(socket);
            result.ec = ec;
            result.data.assign(buffer.data(), n);
            result.done = true;
        },
        io::asio::detached);
}

// Runs the loop until `done` says so, or `limit` passes.
template <typename Predicate>
void run_until(io::asio::io_context& io, Predicate done, std::chrono::milliseconds limit = 2s) {
    io.restart();
    // Without work, the loop would stop instead of waiting for events.
    auto work = io::asio::make_work_guard(io);
    auto until = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < until)
        io.run_one_for(10ms);
}

void send(io::tcp::socket& socket, const std::string& text) {
    io::asio::write(socket, io::asio::buffer(text));
}

// One read, with the loop run until it completes or `limit` passes.
Read read_once(io::asio::io_context& io, io::TlsCapableStream& stream, io::tcp::socket& socket,
               std::chrono::milliseconds limit = 2s) {
    Read result;
    start_read(io, stream, socket, result);
    run_until(
        io, [&] { return result.done; }, limit);
    return result;
}

// Runs the loop for `time`, handling whatever events come meanwhile.
void run_for(io::asio::io_context& io, std::chrono::milliseconds time) {
    run_until(
        io, [] { return false; }, time);
}

// The next read ends the stream, without waiting for anything.
void expect_end_of_stream(io::asio::io_context& io, io::TlsCapableStream& stream,
                          io::tcp::socket& socket) {
    auto end = read_once(io, stream, socket);
    ASSERT_TRUE(end.done) << "the end of stream was not read";
    EXPECT_EQ(end.ec, io::asio::error::eof);
}

// Brings `local` to the state of a busy connection: marked drained by a
// read that waited for its data, and no event of the loop left to handle.
void settle(io::asio::io_context& io, io::tcp::socket& peer, io::tcp::socket& local,
            io::TlsCapableStream& stream) {
    send(peer, "a");
    ASSERT_TRUE(wait_for(local, POLLIN));
    ASSERT_EQ(read_once(io, stream, local).data, "a");  // the first mark
    Read waiting;
    start_read(io, stream, local, waiting);
    run_for(io, 50ms);
    ASSERT_FALSE(waiting.done);
    send(peer, "b");
    run_until(io, [&] { return waiting.done; });
    ASSERT_EQ(waiting.data, "b");
    run_for(io, 50ms);
    ASSERT_EQ(io::readiness::drained(local), io::readiness::kSupported);
}

// A connection in the state of a busy one (see settle()).
class SettledConnection : public ::testing::Test {
  protected:
    void SetUp() override { settle(io, pair.peer, pair.local, stream); }

    // A read that starts with nothing to read; `peer_acts` then sends.
    template <typename Action>
    Read read_waiting_for(Action peer_acts) {
        Read waiting;
        start_read(io, stream, pair.local, waiting);
        run_for(io, 100ms);
        EXPECT_FALSE(waiting.done);
        EXPECT_EQ(io::readiness::drained(pair.local), io::readiness::kSupported);
        peer_acts();
        run_until(io, [&] { return waiting.done; });
        EXPECT_TRUE(waiting.done);
        return waiting;
    }

    io::asio::io_context io{1};
    Connected pair = connect_pair(io);
    io::TlsCapableStream stream{pair.local};
};

}  // namespace

// A read that finds nothing waits, the socket marked; the read that then
// takes what came marks it again, before anything else runs. New data
// clears the mark once the loop has handled epoll's event, and the next
// read takes the data at once.
TEST_F(SettledConnection, AReadThatEmptiesTheSocketMarksItAndNewDataClearsTheMark) {
    auto waited = read_waiting_for([&] { send(pair.peer, "one\r\n"); });
    EXPECT_FALSE(waited.ec);
    EXPECT_EQ(waited.data, "one\r\n");
    EXPECT_EQ(waited.drained_after, io::readiness::kSupported);

    send(pair.peer, "two\r\n");
    ASSERT_TRUE(wait_for(pair.local, POLLIN));
    run_until(io, [&] { return !io::readiness::drained(pair.local); });
    EXPECT_FALSE(io::readiness::drained(pair.local));
    auto next = read_once(io, stream, pair.local);
    ASSERT_TRUE(next.done);
    EXPECT_EQ(next.data, "two\r\n");
}

// The peer's last words and its FIN arrive together, while a read waits.
// The read takes the words and finds the socket empty, but the end of
// stream is still to be read: the socket must not be marked drained, or
// the next read would wait for an event that never comes.
TEST_F(SettledConnection, DataWithEndOfStreamDoesNotLeaveTheNextReadWaiting) {
    auto words = read_waiting_for([&] {
        send(pair.peer, "421 bye\r\n");
        pair.peer.shutdown(io::tcp::socket::shutdown_send);
    });
    EXPECT_EQ(words.data, "421 bye\r\n");
    EXPECT_FALSE(words.drained_after);
    expect_end_of_stream(io, stream, pair.local);
}

// As above, but the loop handles epoll's event before anybody reads: the
// words are then read at once, outside Asio, and the event said the peer
// closed.
TEST_F(SettledConnection, EndOfStreamSeenByTheLoopFirstIsNotForgotten) {
    send(pair.peer, "221 bye\r\n");
    pair.peer.shutdown(io::tcp::socket::shutdown_send);
    ASSERT_TRUE(wait_for(pair.local, POLLIN | POLLRDHUP));
    run_until(io, [&] { return !io::readiness::drained(pair.local); });
    run_for(io, 50ms);
    ASSERT_EQ(read_once(io, stream, pair.local).data, "221 bye\r\n");
    run_for(io, 50ms);
    EXPECT_FALSE(io::readiness::drained(pair.local));
    expect_end_of_stream(io, stream, pair.local);
}

// Asio reuses its per-socket records: the end of stream a closed socket saw
// must not keep a new socket from being marked drained.
TEST(Readiness, ANewSocketDoesNotInheritAnOldEndOfStream) {
    io::asio::io_context io{1};
    {
        auto [peer, local] = connect_pair(io);
        io::TlsCapableStream stream(local);
        settle(io, peer, local, stream);
        peer.shutdown(io::tcp::socket::shutdown_send);
        ASSERT_TRUE(wait_for(local, POLLRDHUP));
        run_until(io, [&] { return !io::readiness::drained(local); });
        EXPECT_EQ(read_once(io, stream, local).ec, io::asio::error::eof);
    }
    // Which new socket gets the old record is Asio's business: both ends of
    // a new connection read before anything came (and before any event for
    // them could overwrite what the record holds), so both are drained.
    auto [peer, local] = connect_pair(io);
    peer.non_blocking(true);
    io::TlsCapableStream peer_stream(peer), local_stream(local);
    Read at_peer, at_local;
    start_read(io, peer_stream, peer, at_peer);
    start_read(io, local_stream, local, at_local);
    run_for(io, 100ms);
    EXPECT_EQ(io::readiness::drained(local), io::readiness::kSupported);
    EXPECT_EQ(io::readiness::drained(peer), io::readiness::kSupported);
    send(peer, "fresh\r\n");
    send(local, "fresh\r\n");
    run_until(io, [&] { return at_peer.done && at_local.done; });
    EXPECT_EQ(at_peer.data, "fresh\r\n");
    EXPECT_EQ(at_local.data, "fresh\r\n");
}
