#include "unit/proto/transcript.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/text.hpp"

namespace smtplb::testing {
namespace {

struct Sink : proto::BodySink {
    std::string text;
    void append(std::string_view b) override { text.append(b); }
};

void take_output(proto::ServerSession& s, std::string& out) {
    std::string& o = s.output();
    std::size_t start = 0;
    while (start < o.size()) {
        auto end = o.find("\r\n", start);
        if (end == std::string::npos) end = o.size();
        out += "S: " + o.substr(start, end - start) + "\n";
        start = end + 2;
    }
    o.clear();
}

}  // namespace

proto::ServerSettings golden_settings() {
    proto::ServerSettings s;
    s.hostname = "mx.test";
    s.max_recipients = 3;
    s.max_message_size = 2000;
    s.max_errors = 6;
    s.max_commands = 60;
    return s;
}

void apply_golden_options(std::string& text, proto::ServerSettings& settings) {
    while (!text.empty() && text.front() == '#') {
        auto nl = text.find('\n');
        std::string line = text.substr(1, nl == std::string::npos ? std::string::npos : nl - 1);
        text.erase(0, nl == std::string::npos ? text.size() : nl + 1);
        if (line == "nul_bytes=strip")
            settings.nul_bytes = proto::NulBytes::Strip;
        else if (line == "nul_bytes=keep")
            settings.nul_bytes = proto::NulBytes::Keep;
        else if (line == "chunking=off")
            settings.offer.chunking = false;
        else if (line == "bare_line_endings=normalise")
            settings.bare_line_endings = proto::BareLineEndings::Normalise;
        else
            ADD_FAILURE() << "unknown golden option #" << line;
    }
}

std::string run_transcript(const proto::ServerSettings& settings, const std::string& input,
                           std::size_t chunk_size) {
    using Kind = proto::ServerEvent::Kind;
    proto::ServerSession s(settings);
    Sink body;
    s.set_body_sink(&body);
    s.start();
    std::string out;
    std::size_t fed = 0;
    std::string sender;  // one starting with "nodata": its message is refused at DATA/BDAT
    for (;;) {
        auto ev = s.next();
        take_output(s, out);
        if (ev.kind == Kind::Close) {
            out += "# close\n";
            break;
        }
        if (ev.kind == Kind::NeedInput) {
            if (fed >= input.size()) {
                out += "# end of input\n";
                break;
            }
            auto n = std::min(chunk_size, input.size() - fed);
            s.feed(std::string_view(input).substr(fed, n));
            fed += n;
            continue;
        }
        switch (ev.kind) {
            case Kind::Reset:
                out += "# reset\n";
                break;
            case Kind::Mail:
                out += "# mail <" + ev.path.mailbox.address() + ">\n";
                sender = ev.path.mailbox.local;
                s.answer(proto::Reply::make(250, "2.1.0", "Ok"));
                break;
            case Kind::Rcpt: {
                const auto& local = ev.path.mailbox.local;
                out += "# rcpt <" + ev.path.mailbox.address() + ">\n";
                if (local.rfind("bad", 0) == 0)
                    s.answer(proto::Reply::make(550, "5.1.1", "User unknown"));
                else if (local.rfind("busy", 0) == 0)
                    s.answer(proto::Reply::make(451, "4.3.0", "Try later"));
                else
                    s.answer(proto::Reply::make(250, "2.1.5", "Ok"));
                break;
            }
            case Kind::Data:
                out += ev.chunking ? "# data (bdat)\n" : "# data\n";
                body.text.clear();
                if (sender.rfind("nodata", 0) == 0)
                    s.answer(proto::Reply::make(451, "4.3.0", "No message now"));
                else
                    s.answer(proto::Reply::make(354, "", "Go ahead"));
                break;
            case Kind::MessageEnd:
                out += "# message size=" + std::to_string(ev.message_size) +
                       " outcome=" + std::to_string(static_cast<int>(ev.data_outcome)) +
                       " body=" + base::printable(body.text, 400) + "\n";
                if (ev.data_outcome == proto::DataDecoder::Outcome::Ok)
                    s.answer(proto::Reply::make(250, "2.0.0", "Ok: queued"));
                else
                    s.answer(proto::data_outcome_reply(ev.data_outcome));
                break;
            case Kind::Xclient:
                out += "# xclient " + ev.argument + "\n";
                s.answer(proto::Reply::make(220, "", "mx.test ESMTP"));
                break;
            default:
                break;
        }
    }
    return out;
}

std::string decode_golden_input(const std::string& text) {
    std::string out;
    std::size_t i = 0;
    while (i < text.size()) {
        auto nl = text.find('\n', i);
        std::string line = text.substr(i, nl == std::string::npos ? std::string::npos : nl - i);
        i = nl == std::string::npos ? text.size() : nl + 1;
        bool continued = !line.empty() && line.back() == '\\' &&
                         (line.size() < 2 || line[line.size() - 2] != '\\');
        if (continued) line.pop_back();
        for (std::size_t k = 0; k < line.size(); ++k) {
            if (line[k] != '\\' || k + 1 >= line.size()) {
                out += line[k];
                continue;
            }
            char e = line[++k];
            if (e == 'r')
                out += '\r';
            else if (e == 'n')
                out += '\n';
            else if (e == '0')
                out += '\0';
            else if (e == '\\')
                out += '\\';
            else if (e == 'x' && k + 2 < line.size()) {
                out += static_cast<char>(std::stoi(line.substr(k + 1, 2), nullptr, 16));
                k += 2;
            } else
                out += e;
        }
        if (!continued) out += "\r\n";
    }
    return out;
}

int check_golden_dir(const std::string& dir,
                     const std::function<std::string(const std::string&, std::size_t)>& render) {
    namespace fs = std::filesystem;
    auto slurp = [](const fs::path& p) {
        std::ifstream in(p, std::ios::binary);
        std::ostringstream s;
        s << in.rdbuf();
        return s.str();
    };
    int count = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.path().extension() != ".in") continue;
        ++count;
        auto text = slurp(entry.path());
        auto whole = render(text, text.size() + 1);
        if (entry.path().stem().string().find(".unchunked") == std::string::npos) {
            EXPECT_EQ(whole, render(text, 1)) << entry.path() << ": depends on packet boundaries";
        }
        auto ref = entry.path();
        ref.replace_extension(".ref");
        if (std::getenv("SMTPLB_UPDATE_GOLDEN")) {
            std::ofstream(ref, std::ios::binary) << whole;
            continue;
        }
        EXPECT_TRUE(fs::exists(ref)) << ref;
        EXPECT_EQ(whole, slurp(ref)) << entry.path();
    }
    return count;
}

}  // namespace smtplb::testing
