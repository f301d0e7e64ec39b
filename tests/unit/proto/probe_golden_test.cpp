// Probe conversations as golden transcripts: tests/golden/probe/*.in hold
// what a backend sends (same escapes as the session transcripts), with
// optional first lines "#depth=NAME" and "#end=timeout" (default: the backend
// closes after its last byte). The .ref shows both sides and the verdict.
#include <gtest/gtest.h>

#include "proto/probe.hpp"
#include "unit/proto/transcript.hpp"

using namespace smtplb;
using smtplb::testing::check_golden_dir;

namespace {

proto::ProbeDepth depth_named(const std::string& name) {
    for (auto d : {proto::ProbeDepth::Connect, proto::ProbeDepth::Banner, proto::ProbeDepth::Ehlo,
                   proto::ProbeDepth::Mail, proto::ProbeDepth::Rcpt})
        if (name == proto::to_string(d)) return d;
    ADD_FAILURE() << "unknown depth " << name;
    return proto::ProbeDepth::Rcpt;
}

void render(proto::ProbeSession& probe, std::string& out) {
    static const char* kPrefix[] = {"C: ", "S: ", "# "};
    for (auto& e : probe.take_events())
        out += kPrefix[static_cast<int>(e.kind)] + e.text + "\n";
}

std::string run_probe(const std::string& file_text, std::size_t chunk) {
    std::string text = file_text;
    proto::ProbePlan plan;
    plan.depth = proto::ProbeDepth::Rcpt;
    plan.helo = "lb.test";
    plan.mail_from = "probe@external.invalid";
    plan.rcpt_to = "postmaster@example.net";
    bool timeout = false;
    while (text.rfind("#", 0) == 0) {
        auto nl = text.find('\n');
        std::string option = text.substr(1, nl - 1);
        text.erase(0, nl + 1);
        if (option.rfind("depth=", 0) == 0) plan.depth = depth_named(option.substr(6));
        if (option == "end=timeout") timeout = true;
    }
    auto input = smtplb::testing::decode_golden_input(text);
    proto::ProbeSession probe(plan);
    std::string out;
    probe.connected();
    if (chunk > 1) chunk = input.size() + 1;  // all at once
    for (std::size_t i = 0; i < input.size() && !probe.done(); i += chunk) {
        probe.feed(std::string_view(input).substr(i, chunk));
        probe.output().clear();  // "written"
    }
    if (!probe.done()) timeout ? probe.timed_out() : probe.closed();
    render(probe, out);
    const auto& r = probe.result();
    if (!r) return out + "= no verdict\n";
    out += std::string("= ") + proto::to_string(r->verdict) + " at " + r->step + ": " + r->reason;
    if (r->reply) out += " [" + r->reply->summary() + "]";
    return out + "\n";
}

}  // namespace

TEST(ProbeGolden, Transcripts) {
    EXPECT_GE(check_golden_dir(SMTPLB_GOLDEN_DIR "/probe", run_probe), 10);
}

TEST(Probe, ConnectDepthNeedsNoBanner) {
    proto::ProbeSession probe({proto::ProbeDepth::Connect, "lb", "", ""});
    probe.connected();
    EXPECT_TRUE(probe.done());
    EXPECT_EQ(probe.result()->verdict, proto::ProbeVerdict::Healthy);
    EXPECT_TRUE(probe.output().empty());
}

TEST(Probe, RefusedConnectionIsDown) {
    proto::ProbeSession probe({proto::ProbeDepth::Rcpt, "lb", "", "x@y"});
    probe.connect_failed("Connection refused");
    EXPECT_TRUE(probe.done());
    EXPECT_EQ(probe.result()->verdict, proto::ProbeVerdict::Down);
    EXPECT_EQ(probe.result()->step, "connect");
}

TEST(Probe, NullSenderIsSentAsEmptyPath) {
    proto::ProbeSession probe({proto::ProbeDepth::Mail, "lb", "", ""});
    probe.connected();
    probe.feed("220 x\r\n250 x\r\n");
    EXPECT_NE(probe.output().find("MAIL FROM:<>\r\n"), std::string::npos);
}
