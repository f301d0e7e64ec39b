#pragma once
#include <cstddef>
#include <optional>
#include <set>
#include <string>

#include "proto/capabilities.hpp"
#include "proto/reply.hpp"

namespace smtplb::proto {

// SASL mechanisms smtplb uses towards a smarthost. Auto: the first of PLAIN,
// LOGIN that the backend's EHLO offers.
enum class AuthMechanism { Auto, Plain, Login };
const char* to_string(AuthMechanism mechanism);

// RFC 4616 allows 255 octets for each; LOGIN has no limit of its own.
inline constexpr std::size_t kMaxAuthUsername = 255;
inline constexpr std::size_t kMaxAuthPassword = 255;

// smtplb's own account on a smarthost (pool.backend.auth).
struct AuthCredentials {
    std::string username;
    std::string password;  // never printed, logged or put in a reason
    AuthMechanism mechanism = AuthMechanism::Auto;
};

// The client side of SMTP AUTH (RFC 4954) towards a smarthost, sans-I/O:
// start() after the EHLO (inside TLS where there is TLS), then each reply to
// reply() until the step is no longer Send. PLAIN goes with its initial
// response; LOGIN answers the two 334 challenges with the user name and the
// password. The backend's verdict is about smtplb's account, never about a
// client: a 5xx (535 bad credentials, 534 mechanism too weak, 538 encryption
// required, 504 unknown mechanism...) and an offer without a usable
// mechanism are Misconfigured; a 4xx (454 temporary failure, 421) is
// Deferred, a failure of this connection only.
class SmarthostAuth {
  public:
    enum class Status { Send, Authenticated, Misconfigured, Deferred };
    struct Step {
        Status status = Status::Send;
        std::string line;    // to send, CRLF included (Send); carries credentials: never log it
        std::string reason;  // Misconfigured/Deferred: for logs, the backend's text, no secret
        std::optional<Reply> reply;  // the reply that decided, when one did
    };

    // `again`: this connection authenticated before (an XCLIENT since ended
    // that SASL session on Postfix; a backend that kept it answers 503,
    // RFC 4954 §4: still authenticated).
    SmarthostAuth(const AuthCredentials& credentials, const Capabilities& capabilities,
                  bool again = false);

    Step start();
    Step reply(const Reply& reply);
    // The mechanism chosen by start() (Auto before, or when none could be).
    AuthMechanism mechanism() const { return chosen_; }
    // What a transcript may show of the last line sent: the command and
    // mechanism, the credentials replaced.
    const std::string& redacted() const { return redacted_; }

  private:
    Step send(std::string line, std::string redacted);
    Step fail(Status status, std::string reason, std::optional<Reply> reply = std::nullopt);

    AuthCredentials credentials_;
    std::set<std::string> offered_;  // the EHLO's AUTH mechanisms, upper case
    AuthMechanism chosen_ = AuthMechanism::Auto;
    bool again_ = false;
    int challenges_ = 0;  // 334s answered
    bool done_ = false;
    std::string redacted_;
};

}  // namespace smtplb::proto
