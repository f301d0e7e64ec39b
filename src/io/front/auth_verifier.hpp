#pragma once
#include <memory>
#include <string>

#include "config/config.hpp"
#include "io/asio.hpp"
#include "proto/identity.hpp"

namespace smtplb::io {

class Balancer;

struct AuthRequest {
    std::string login;
    std::string password;  // wiped by the caller after verify()
    proto::ClientIdentity client;
};

enum class AuthVerdict { Ok, Fail, TempFail };

// Checks a submission client's credentials (an extension point with a
// mock in tests). `why` says what went wrong on TempFail, for the log; it
// never carries the password.
class AuthVerifier {
  public:
    virtual ~AuthVerifier() = default;
    virtual awaitable<AuthVerdict> verify(const AuthRequest& request, std::string& why) = 0;
};

// The listener's configured verifier: the pool's backends (SASL relayed over
// TLS to one healthy backend) or Dovecot's auth socket.
std::unique_ptr<AuthVerifier> make_auth_verifier(Balancer& balancer,
                                                 const config::Listener& listener);

}  // namespace smtplb::io
