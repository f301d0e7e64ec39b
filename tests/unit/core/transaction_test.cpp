#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>

#include "core/transaction.hpp"

#include "unit/core/transaction_script.hpp"
#include "unit/proto/transcript.hpp"

using namespace smtplb::testing;

// tests/golden/transaction/*.in -> *.ref (SMTPLB_UPDATE_GOLDEN=1 rewrites the
// refs; review the diff). A transcript with "!!" in it broke a rule of the
// harness: an action after the answer, a step nobody scripted.
TEST(TransactionGolden, Transcripts) {
    int count = check_golden_dir(SMTPLB_GOLDEN_DIR "/transaction",
                                 [](const std::string& text, std::size_t) {
                                     auto out = run_transaction_script(text);
                                     EXPECT_EQ(out.find("!!"), std::string::npos) << out;
                                     return out;
                                 });
    EXPECT_GE(count, 15);
}

TEST(TransactionScript, AnUnscriptedStepIsReported) {
    auto out = run_transaction_script("mail <a@x.example>\nrcpt <b@y.example>\n");
    EXPECT_NE(out.find("!! nothing scripted for b0 open"), std::string::npos) << out;
}

// A long envelope replayed on another backend with PIPELINING: at most
// kMaxAhead RCPTs go ahead of their replies, then one more after each, so
// that neither side's socket buffer fills while the other does not read.
TEST(TransactionPipelining, AReplayedEnvelopeKeepsAtMostMaxAheadAhead) {
    constexpr std::size_t kAccepted = smtplb::core::Transaction::kMaxAhead + 20;
    std::string script = "pool backends=2\nmail <a@client.example>\n";
    for (std::size_t i = 0; i <= kAccepted; ++i)
        script += "rcpt <r" + std::to_string(i) + "@dest.example>\n";
    script += "b0 open ok pipelining\nb0 reply 250 2.1.0 Ok\n";
    for (std::size_t i = 0; i < kAccepted; ++i)
        script += "b0 reply 250 2.1.5 Ok\n";
    script += "b0 reply 421 4.3.2 Service shutting down\nb1 open ok pipelining\n";
    script += "b1 reply 250 2.1.0 Ok\n";
    for (std::size_t i = 0; i <= kAccepted; ++i)
        script += "b1 reply 250 2.1.5 Ok\n";
    auto out = run_transaction_script(script);
    ASSERT_EQ(out.find("!!"), std::string::npos) << out;
    // Walk b1's lines: commands sent less replies read, never above
    // MAIL + kMaxAhead; every RCPT of the envelope is sent and answered.
    auto b1 = out.find("open b1");
    ASSERT_NE(b1, std::string::npos) << out;
    std::size_t ahead = 0, most_ahead = 0, rcpts = 0, replies = 0;
    std::istringstream lines(out.substr(b1));
    for (std::string line; std::getline(lines, line);) {
        if (line.find("b1 < RCPT TO:") != std::string::npos) ++rcpts;
        if (line.find("b1 < ") != std::string::npos) most_ahead = std::max(most_ahead, ++ahead);
        if (line.find("await b1") != std::string::npos) --ahead, ++replies;
    }
    EXPECT_EQ(most_ahead, smtplb::core::Transaction::kMaxAhead + 1);  // with MAIL
    EXPECT_EQ(rcpts, kAccepted + 1);
    EXPECT_EQ(replies, kAccepted + 2);
    EXPECT_NE(out.rfind("answer 250 2.1.5 Ok"), std::string::npos);
}
