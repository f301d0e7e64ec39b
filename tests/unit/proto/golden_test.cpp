#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "unit/proto/transcript.hpp"

namespace fs = std::filesystem;
using namespace smtplb::testing;

namespace {
std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}
}  // namespace

// tests/golden/*.in -> *.ref. Set SMTPLB_UPDATE_GOLDEN=1 to rewrite the refs
// (then review the diff). Every transcript must also come out the same when
// the input arrives one byte at a time: framing must not depend on packets.
TEST(Golden, Transcripts) {
    int count = 0;
    for (const auto& entry : fs::directory_iterator(SMTPLB_GOLDEN_DIR)) {
        if (entry.path().extension() != ".in") continue;
        ++count;
        auto input = decode_golden_input(slurp(entry.path()));
        auto whole = run_transcript(golden_settings(), input, input.size() + 1);
        auto bytewise = run_transcript(golden_settings(), input, 1);
        // ".unchunked" inputs test what happens to bytes that arrive together.
        if (entry.path().stem().string().find(".unchunked") == std::string::npos)
            EXPECT_EQ(whole, bytewise) << entry.path();
        auto ref = entry.path();
        ref.replace_extension(".ref");
        if (std::getenv("SMTPLB_UPDATE_GOLDEN")) {
            std::ofstream(ref, std::ios::binary) << whole;
            continue;
        }
        ASSERT_TRUE(fs::exists(ref)) << ref;
        EXPECT_EQ(whole, slurp(ref)) << entry.path();
    }
    EXPECT_GE(count, 6);
}
