// The whole server state machine under arbitrary client bytes, with answers
// chosen by the input too.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proto/server_session.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace smtplb::proto;
    ServerSettings settings;
    settings.max_recipients = 5;
    settings.max_message_size = 4096;
    settings.advertise_xclient = size > 0 && (data[0] & 1);
    // STARTTLS and AUTH too: a StartTls event is "handshaken" at once.
    settings.starttls = size > 0 && (data[0] & 2);
    settings.auth = size > 0 && (data[0] & 4);
    settings.require_tls = size > 0 && (data[0] & 8);
    ServerSession s(settings);
    if (size > 0 && (data[0] & 16)) s.tls_started();  // implicit TLS
    s.start();
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::size_t fed = 0, answers = 0;
    static const int codes[] = {250, 354, 451, 550, 220};
    for (int rounds = 0; rounds < 100000; ++rounds) {
        auto ev = s.next();
        if (ev.kind == ServerEvent::Kind::Close) break;
        if (ev.kind == ServerEvent::Kind::NeedInput) {
            if (fed >= in.size()) break;
            std::size_t n = 1 + (fed * 7) % 31;
            s.feed(in.substr(fed, n));
            fed += n;
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
        if (ev.kind == ServerEvent::Kind::Data && code != 354 && answers % 2) code = 354;
        s.answer(Reply::make(code, "", "x"));
        // Commands are bounded by max_line_length, SASL responses by 12288.
        if (s.buffered_input() > 12288 + 64) __builtin_trap();
    }
    return 0;
}
