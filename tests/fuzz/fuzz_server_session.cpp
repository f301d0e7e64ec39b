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
    ServerSession s(settings);
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
        int code = codes[(answers++ + size) % 5];
        if (ev.kind == ServerEvent::Kind::Data && code != 354 && answers % 2) code = 354;
        s.answer(Reply::make(code, "", "x"));
        if (s.buffered_input() > settings.max_line_length + 64) __builtin_trap();
    }
    return 0;
}
