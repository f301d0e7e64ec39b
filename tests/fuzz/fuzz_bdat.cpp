// BDAT framing (RFC 3030) under arbitrary chunk sizes and content: the input
// is a script of chunks (size, LAST, content, and now and then a count that
// lies), wrapped in real transactions. Checked: no octet of a chunk is ever
// run as a command (the only MAILs are the script's own), a message that is
// taken arrives as its chunks' content exactly, and the session says and
// decides the same whether the bytes come one by one or all at once.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/dot_stuffer.hpp"
#include "proto/server_session.hpp"

namespace {

using namespace smtplb::proto;

struct BodyCopy final : BodySink {
    explicit BodyCopy(BodyForm f) : how(f) {}
    BodyForm form() const override { return how; }
    void append(std::string_view b) override { bytes.append(b); }
    BodyForm how;
    std::string bytes;
};

struct Script {
    std::string input;
    std::size_t mails = 0;           // MAIL commands of the script itself
    std::vector<std::string> taken;  // each LAST message's content, as sent
};

constexpr std::string_view kEnvelope = "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n";

Script build(const std::uint8_t* data, std::size_t size) {
    Script s;
    s.input = "EHLO client.example\r\n";
    s.input += kEnvelope;
    ++s.mails;
    std::string message;
    std::size_t i = 1;
    while (i + 2 <= size) {
        std::size_t count = data[i] | ((data[i + 1] & 0x0f) << 8);
        bool last = data[i + 1] & 0x10;
        bool lie = (data[i + 1] & 0xe0) == 0xe0;  // a count that differs from what follows
        i += 2;
        std::size_t have = std::min(count, size - i);
        std::string_view content(reinterpret_cast<const char*>(data + i), have);
        i += have;
        s.input += "BDAT " + std::to_string(lie ? count + 7 : have) + (last ? " LAST\r\n" : "\r\n");
        s.input.append(content);
        message.append(content);
        if (last && !lie) {
            s.taken.push_back(message);
            message.clear();
            s.input += kEnvelope;
            ++s.mails;
        }
        if (lie) break;  // the rest of the input is the lying chunk's
    }
    return s;
}

std::string run(const Script& script, std::uint8_t flags, bool whole, std::size_t& mails,
                std::vector<std::string>& messages) {
    ServerSettings settings;
    settings.max_message_size = 3000;
    settings.max_data_line_length = 1000;
    settings.max_errors = 1000;
    settings.offer.chunking = !(flags & 1);
    BodyCopy body(flags & 2 ? BodyForm::Transmission : BodyForm::Content);
    ServerSession s(settings);
    s.set_body_sink(&body);
    s.start();
    std::string_view in(script.input);
    std::size_t fed = 0, answers = 0;
    std::string trace;
    for (int rounds = 0; rounds < 200000; ++rounds) {
        auto ev = s.next();
        trace += s.output();
        s.output().clear();
        if (ev.kind == ServerEvent::Kind::Close) break;
        if (ev.kind == ServerEvent::Kind::NeedInput) {
            if (fed >= in.size()) break;
            std::size_t n = whole ? in.size() : 1 + (fed * 13) % 37;
            s.feed(in.substr(fed, n));
            fed += n;
            continue;
        }
        trace += static_cast<char>('A' + static_cast<int>(ev.kind));
        switch (ev.kind) {
            case ServerEvent::Kind::Mail:
                ++mails;
                s.answer(Reply::make(250, "2.1.0", "Ok"));
                break;
            case ServerEvent::Kind::Data:
                if (!ev.chunking) __builtin_trap();  // the script sends no DATA
                body.bytes.clear();
                // Now and then the caller refuses the message.
                s.answer(flags & 4 && ++answers % 3 == 0 ? Reply::make(451, "4.3.0", "x")
                                                         : Reply::make(354, "", "x"));
                break;
            case ServerEvent::Kind::MessageEnd:
                if (ev.data_outcome == DataDecoder::Outcome::Ok) {
                    std::string content;
                    if (body.how == BodyForm::Transmission) {
                        DotUnstuffer unstuffer;
                        unstuffer.decode(body.bytes, content);
                    } else {
                        content = body.bytes;
                    }
                    if (content.size() != ev.message_size) __builtin_trap();
                    messages.push_back(content);
                }
                s.answer(Reply::make(250, "2.0.0", "Ok"));
                break;
            case ServerEvent::Kind::Rcpt:
                s.answer(Reply::make(250, "2.1.5", "Ok"));
                break;
            default:
                if (ev.kind != ServerEvent::Kind::Reset) s.answer(Reply::make(250, "", "x"));
                break;
        }
    }
    return trace;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    auto script = build(data, size);
    std::size_t mails = 0;
    std::vector<std::string> messages;
    auto pieces = run(script, data[0], false, mails, messages);
    // Content never becomes commands: no MAIL but the script's own.
    if (mails > script.mails) __builtin_trap();
    // A message taken is its chunks' content, a last line completed with CRLF.
    std::size_t next = 0;
    for (const auto& m : messages) {
        bool found = false;
        while (!found && next < script.taken.size()) {
            auto expected = script.taken[next++];
            if (!expected.empty() &&
                (expected.size() < 2 || expected.compare(expected.size() - 2, 2, "\r\n") != 0))
                expected += "\r\n";
            found = expected == m;
        }
        if (!found) __builtin_trap();  // taken, but not as sent
    }
    std::size_t mails_whole = 0;
    std::vector<std::string> messages_whole;
    if (run(script, data[0], true, mails_whole, messages_whole) != pieces) __builtin_trap();
    if (messages_whole != messages) __builtin_trap();
    return 0;
}
