#pragma once
#include <functional>
#include <string>
#include <vector>

// What smtplb asks of Redis, behind an interface: the daemon's client is
// hiredis on the event loop (hiredis_client.hpp), tests use
// tests/mocks/mock_redis_client.hpp. Shared limits (Lua scripts) build on
// command() as the admin state does.
namespace smtplb::io {

struct RedisReply {
    enum class Kind {
        Timeout,       // past the request's deadline: the caller goes on locally
        Disconnected,  // no connection, or it was lost before the reply
        Error,         // Redis answered "-ERR ..."
        Nil,
        Integer,
        String,  // bulk strings and status replies ("+OK")
        Array,
    };
    Kind kind = Kind::Nil;
    std::string text;  // String, Error; what went wrong for Timeout, Disconnected
    long long integer = 0;
    std::vector<RedisReply> elements;

    // Redis answered (anything but Timeout, Disconnected or Error).
    bool answered() const { return kind != Kind::Timeout && kind != Kind::Disconnected; }
    bool ok() const { return answered() && kind != Kind::Error; }
};

class RedisClient {
  public:
    using Done = std::function<void(const RedisReply&)>;
    using Message = std::function<void(const std::string& message)>;
    // up: both connections are there (and subscribed); the reason says why not.
    using LinkChange = std::function<void(bool up, const std::string& reason)>;

    virtual ~RedisClient() = default;

    // Connects, and keeps reconnecting with backoff until stop().
    virtual void start() = 0;
    // Closes both connections. Nothing is called back afterwards (not
    // even the requests still pending): their owner may be going away.
    virtual void stop() = 0;
    virtual bool connected() const = 0;
    // One command, pipelined behind the others. `done` is called exactly
    // once, always later (never from inside this call): with the reply,
    // with Timeout at the deadline, or with Disconnected.
    virtual void command(std::vector<std::string> args, Done done) = 0;
    // Messages published on `channel`, on a connection of their own,
    // subscribed again after each reconnect. Call before start().
    virtual void subscribe(const std::string& channel, Message on_message) = 0;
    // Called with up once both connections stand (the subscription too, so
    // that a re-read then misses nothing), and with the reason after every
    // attempt that fails or connection that is lost (repeats included).
    virtual void on_link_change(LinkChange change) = 0;
};

}  // namespace smtplb::io
