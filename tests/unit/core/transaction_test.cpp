#include <gtest/gtest.h>

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
