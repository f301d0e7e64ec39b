#pragma once
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "proto/capabilities.hpp"
#include "proto/reply_parser.hpp"

namespace smtplb::proto {

// The client (backend) side, sans-I/O: commands are queued with the reply
// each expects, replies are matched to them in order, which is all that
// RFC 2920 pipelining needs. The caller writes output() and feeds what it
// reads; it decides what to send next from the completions.
class BackendSession {
  public:
    enum class Step {
        Greeting,
        Ehlo,
        StartTls,
        Auth,
        Xclient,
        Mail,
        Rcpt,
        Data,
        Message,
        Rset,
        Quit
    };
    struct Completion {
        Step step;
        Reply reply;
    };

    BackendSession() { expected_.push_back(Step::Greeting); }

    void send(Step step, std::string_view line);  // line includes CRLF
    // For the message body: bytes go out, the reply is expected after them.
    std::string& output() { return output_; }
    void expect(Step step) { expected_.push_back(step); }

    void feed(std::string_view bytes) { parser_.feed(bytes); }
    // Bytes of replies fed and not yet handed out by next().
    std::size_t buffered() const { return parser_.buffered(); }
    // The next completed step; nothing when more input is needed or on error.
    std::optional<Completion> next();
    // Protocol failure: malformed reply, or a reply nobody asked for.
    bool failed() const { return !failure_.empty(); }
    const std::string& failure() const { return failure_; }
    bool idle() const { return expected_.empty(); }

    // After a 220 to STARTTLS: false when the backend sent anything behind
    // it (RFC 3207 §4.2 injection; the connection must be dropped). Else
    // forgets the plaintext session (capabilities, buffered input) for the
    // TLS handshake, after which the greeting is not repeated: EHLO comes next.
    bool tls_started();

    const Capabilities& capabilities() const { return caps_; }

  private:
    ReplyParser parser_;
    std::deque<Step> expected_;
    std::string output_;
    Capabilities caps_;
    std::string failure_;
};

}  // namespace smtplb::proto
