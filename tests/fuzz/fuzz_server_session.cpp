// The whole server state machine under arbitrary client bytes, with answers
// chosen by the input too. Fed in small pieces and again all at once, the
// session must say and decide the same, except where it discards what was
// pipelined by design (behind STARTTLS, behind a refused DATA): what is
// discarded there depends on what had arrived.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/server_session.hpp"

namespace {

struct BodyCopy final : smtplb::proto::BodySink {
    std::string bytes;
    void append(std::string_view b) override { bytes.append(b); }
};

// Every event, everything the session said and every message byte it
// decoded, each in order (how they interleave depends on the pieces).
// `defer`: recipients are answered when the session says Deferred (as
// smtplb does, to pass a pipelined group on together), not at once.
std::string run(const std::uint8_t* data, std::size_t size, bool whole, bool always_354,
                bool defer = false) {
    using namespace smtplb::proto;
    ServerSettings settings;
    settings.max_recipients = 5;
    settings.max_message_size = 4096;
    settings.advertise_xclient = size > 0 && (data[0] & 1);
    // STARTTLS and AUTH too: a StartTls event is "handshaken" at once.
    settings.starttls = size > 0 && (data[0] & 2);
    settings.auth = size > 0 && (data[0] & 4);
    settings.require_tls = size > 0 && (data[0] & 8);
    // Postfix's way with long lines (the sink's --xclient-strict).
    settings.truncate_long_lines = size > 0 && (data[0] & 32);
    ServerSession s(settings);
    BodyCopy bodies;
    s.set_body_sink(&bodies);
    if (size > 0 && (data[0] & 16)) s.tls_started();  // implicit TLS
    s.start();
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::size_t fed = 0, answers = 0;
    std::string events, said;
    static const int codes[] = {250, 354, 451, 550, 220};
    std::vector<int> deferred;
    for (int rounds = 0; rounds < 100000; ++rounds) {
        auto ev = s.next();
        if (ev.kind == ServerEvent::Kind::Deferred) {
            if (deferred.empty() || deferred.size() != s.deferred()) __builtin_trap();
            for (int code : deferred)
                s.answer_deferred(Reply::make(code, "", "x"));
            deferred.clear();
            continue;
        }
        if (!deferred.empty() && ev.kind != ServerEvent::Kind::Rcpt) __builtin_trap();
        if (ev.kind != ServerEvent::Kind::NeedInput)  // how often depends on the pieces
            events += static_cast<char>('A' + static_cast<int>(ev.kind));
        if (ev.kind == ServerEvent::Kind::Close) break;
        if (ev.kind == ServerEvent::Kind::NeedInput) {
            if (fed >= in.size()) break;
            std::size_t n = whole ? in.size() : 1 + (fed * 7) % 31;
            s.feed(in.substr(fed, n));
            fed += n;
            said += s.output();
            s.output().clear();
            continue;
        }
        if (ev.kind == ServerEvent::Kind::Reset) continue;
        if (ev.kind == ServerEvent::Kind::StartTls) {
            if (s.buffered_input() != 0) __builtin_trap();  // plaintext behind STARTTLS kept
            s.tls_started();
            continue;
        }
        static const int auth_codes[] = {235, 535, 454};
        int code = ev.kind == ServerEvent::Kind::Auth ? auth_codes[(answers++ + size) % 3]
                                                      : codes[(answers++ + size) % 5];
        if (ev.kind == ServerEvent::Kind::Data && code != 354 && (always_354 || answers % 2))
            code = 354;
        if (defer && ev.kind == ServerEvent::Kind::Rcpt) {
            s.defer();
            deferred.push_back(code);
            continue;
        }
        s.answer(Reply::make(code, "", "x"));
        // Commands are bounded by max_line_length, SASL responses by 12288.
        if (!whole && s.buffered_input() > 12288 + 64) __builtin_trap();
    }
    return events + "|" + said + s.output() + "|" + bodies.bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    run(data, size, false, false);
    bool starttls = size > 0 && (data[0] & 2);
    if (starttls) return 0;
    auto pieces = run(data, size, false, true);
    if (pieces.find("554 5.5.1 Error: no valid recipients") != std::string::npos) return 0;
    if (run(data, size, true, true) != pieces) __builtin_trap();
    // Deferring recipients changes nothing the client is told, nor when.
    if (run(data, size, false, true, true) != pieces) __builtin_trap();
    return 0;
}
