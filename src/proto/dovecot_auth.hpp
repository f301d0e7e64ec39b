#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "proto/identity.hpp"

namespace smtplb::proto {

// The client side of Dovecot's authentication protocol (v1), enough to
// verify one login and password with PLAIN: the handshake, one AUTH request,
// its verdict. Sans-I/O: the caller writes what the methods return and
// feeds what the server sends. The server is trusted more than a client but
// its input is still bounded.
class DovecotAuthClient {
  public:
    enum class State {
        Handshake,  // waiting for the server's handshake up to DONE
        Ready,      // handshake done: send request()
        Waiting,    // request sent
        Ok,         // the credentials are right
        Fail,       // they are not
        TempFail,   // the server could not tell (its backend is down, ...)
        Error,      // not the protocol we speak: see error()
    };
    static constexpr std::size_t kMaxLine = 16384;

    // What the client sends first.
    static std::string handshake(std::uint32_t pid);
    // The AUTH request for `login` and `password`, on behalf of `client`
    // (rip/lip let Dovecot apply its own penalties and logging).
    std::string request(std::string_view login, std::string_view password,
                        const ClientIdentity& client, bool secured);
    void feed(std::string_view bytes);
    State state() const { return state_; }
    const std::string& error() const { return error_; }

  private:
    void line(std::string_view text);
    void fail(std::string why);

    State state_ = State::Handshake;
    std::string buffer_;
    std::string error_;
    bool version_ok_ = false;
    bool plain_offered_ = false;
    std::uint32_t id_ = 1;
};

}  // namespace smtplb::proto
