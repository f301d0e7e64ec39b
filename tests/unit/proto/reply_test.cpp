#include <gtest/gtest.h>

#include "proto/reply_parser.hpp"

using namespace smtplb::proto;

TEST(Reply, WireFormatSingleAndMultiLine) {
    EXPECT_EQ(Reply::make(250, "2.1.0", "Ok").wire(), "250 2.1.0 Ok\r\n");
    Reply r;
    r.code = 250;
    r.lines = {"mx.example", "PIPELINING", "SIZE 100"};
    EXPECT_EQ(r.wire(), "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n");
}

TEST(ReplyParser, ParsesMultiLineAcrossFeeds) {
    ReplyParser p;
    p.feed("250-first\r\n25");
    EXPECT_FALSE(p.next());
    p.feed("0 2.0.0 last\r\n");
    auto r = p.next();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, 250);
    ASSERT_EQ(r->lines.size(), 2u);
    EXPECT_EQ(r->lines[1], "2.0.0 last");
    EXPECT_FALSE(p.error());
}

TEST(ReplyParser, ExtractsEnhancedCode) {
    ReplyParser p;
    p.feed("452 4.3.1 Insufficient system resources\r\n");
    auto r = p.next();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->enhanced, "4.3.1");
    EXPECT_EQ(r->lines[0], "Insufficient system resources");
    EXPECT_TRUE(r->transient());
}

TEST(ReplyParser, EnhancedCodeMustMatchClass) {
    ReplyParser p;
    p.feed("250 5.0.0 odd\r\n");
    auto r = p.next();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->enhanced, "");
}

TEST(ReplyParser, RejectsGarbage) {
    for (const char* bad :
         {"HTTP/1.1 200 OK\r\n", "25\r\n", "250x\r\n", "650 six\r\n", "250-a\r\n251 b\r\n"}) {
        ReplyParser p;
        p.feed(bad);
        while (p.next()) {
        }
        EXPECT_TRUE(p.error()) << bad;
    }
}

TEST(ReplyParser, BoundsLineLengthAndLineCount) {
    ReplyParser p(ReplyParser::Limits{100, 5});
    p.feed(std::string(200, '2'));
    EXPECT_FALSE(p.next());
    EXPECT_TRUE(p.error());
    ReplyParser q(ReplyParser::Limits{100, 5});
    for (int i = 0; i < 10; ++i)
        q.feed("250-x\r\n");
    EXPECT_FALSE(q.next());
    EXPECT_TRUE(q.error());
}
