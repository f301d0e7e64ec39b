#include "proto/message_id.hpp"

#include <gtest/gtest.h>

#include <string>

namespace smtplb::proto {
namespace {

std::string scan(std::string_view message, std::size_t piece = 0) {
    MessageIdScanner scanner;
    if (piece == 0) {
        scanner.feed(message);
    } else {
        for (std::size_t i = 0; i < message.size(); i += piece)
            scanner.feed(message.substr(i, piece));
    }
    return scanner.message_id();
}

TEST(MessageIdScanner, FindsTheHeaderWhateverItsCase) {
    EXPECT_EQ(scan("From: a@example.net\r\nMessage-ID: <1@example.net>\r\n\r\nbody\r\n"),
              "<1@example.net>");
    EXPECT_EQ(scan("message-id:<2@x>\r\n\r\n"), "<2@x>");
    EXPECT_EQ(scan("MESSAGE-ID  : <3@x>\r\n\r\n"), "<3@x>");
}

TEST(MessageIdScanner, UnfoldsAFoldedValue) {
    EXPECT_EQ(scan("Subject: hi\r\nMessage-Id:\r\n\t<folded@example.net>\r\nTo: b@x\r\n\r\n"),
              "<folded@example.net>");
}

TEST(MessageIdScanner, SameResultInAnyPieces) {
    std::string message =
        "Received: from a\r\n by b\r\nMessage-ID:\r\n <pieces@example.net> (comment)\r\n\r\nx\r\n";
    for (std::size_t piece : {1, 2, 3, 7, 64})
        EXPECT_EQ(scan(message, piece), "<pieces@example.net>") << piece;
}

TEST(MessageIdScanner, IgnoresTheBodyAndLookalikeFields) {
    EXPECT_EQ(scan("Subject: x\r\n\r\nMessage-ID: <in-body@x>\r\n"), "");
    EXPECT_EQ(scan("X-Message-ID: <other@x>\r\nResent-Message-ID: <r@x>\r\n\r\n"), "");
    EXPECT_EQ(scan("no header line\r\nMessage-ID: <late@x>\r\n\r\n"), "");
}

TEST(MessageIdScanner, TheFirstOneCounts) {
    EXPECT_EQ(scan("Message-ID: <first@x>\r\nMessage-ID: <second@x>\r\n\r\n"), "<first@x>");
}

TEST(MessageIdScanner, WithoutAngleBracketsTheTrimmedValue) {
    EXPECT_EQ(scan("Message-ID:   bare-id@x  \r\n\r\n"), "bare-id@x");
}

TEST(MessageIdScanner, BoundedLinesValuesAndHeaderSection) {
    std::string long_value = "Message-ID: <" + std::string(5000, 'a') + "@x>\r\n\r\n";
    auto id = scan(long_value);
    EXPECT_LE(id.size(), MessageIdScanner::kMaxValue);
    EXPECT_EQ(id.substr(0, 2), "<a");

    std::string huge;
    while (huge.size() <= MessageIdScanner::kMaxHeaderBytes)
        huge += "X-Filler: 0123456789\r\n";
    huge += "Message-ID: <too-late@x>\r\n\r\n";
    MessageIdScanner scanner;
    EXPECT_FALSE(scanner.feed(huge));  // gave up, at the bound
    EXPECT_EQ(scanner.message_id(), "");
}

TEST(MessageIdScanner, StopsOnceFound) {
    MessageIdScanner scanner;
    EXPECT_TRUE(scanner.feed("From: a@x\r\n"));
    EXPECT_FALSE(scanner.feed("Message-ID: <done@x>\r\nTo: b@x\r\n"));
    EXPECT_TRUE(scanner.done());
    EXPECT_EQ(scanner.message_id(), "<done@x>");
}

}  // namespace
}  // namespace smtplb::proto
