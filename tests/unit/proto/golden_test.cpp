#include <gtest/gtest.h>

#include "unit/proto/transcript.hpp"

using namespace smtplb::testing;

// tests/golden/*.in -> *.ref. Set SMTPLB_UPDATE_GOLDEN=1 to rewrite the refs
// (then review the diff). Every transcript must also come out the same when
// the input arrives one byte at a time: framing must not depend on packets
// (".unchunked" inputs test what happens to bytes that arrive together).
TEST(Golden, Transcripts) {
    int count = check_golden_dir(SMTPLB_GOLDEN_DIR, [](std::string text, std::size_t chunk) {
        auto settings = golden_settings();
        apply_golden_options(text, settings);
        auto input = decode_golden_input(text);
        return run_transcript(settings, input, chunk == 1 ? 1 : input.size() + 1);
    });
    EXPECT_GE(count, 6);
}
