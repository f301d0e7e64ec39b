#include <gtest/gtest.h>

#include "core/report.hpp"

using namespace smtplb;
using namespace std::chrono_literals;

namespace {
constexpr std::int64_t kHour = 3600000;
constexpr std::int64_t kStart = 1795442400000 - 1795442400000 % kHour;  // an hour boundary

std::vector<core::ReportInput> traffic() {
    std::vector<core::ReportInput> out;
    auto add = [&](std::int64_t t, const char* backend, const char* result = "relayed") {
        core::ReportInput in;
        in.time_ms = t;
        in.result = result;
        in.backend = backend;
        in.listener = "internet";
        in.domains = {"example.net"};
        out.push_back(in);
    };
    for (int i = 0; i < 30; ++i)
        add(kStart + i * 1000, "hub1");
    for (int i = 0; i < 10; ++i)
        add(kStart + kHour + i * 1000, "hub2");
    add(kStart, "hub2", "tempfailed");
    return out;
}
}  // namespace

TEST(TrafficReport, CountsRelayedMessagesPerKeyAndInterval) {
    auto r = core::build_report(traffic(), core::ReportBy::Backend, 1h);
    EXPECT_EQ(r.keys, (std::vector<std::string>{"hub1", "hub2"}));
    ASSERT_EQ(r.rows.size(), 2u);
    EXPECT_EQ(r.rows.at(kStart), (std::vector<std::uint64_t>{30, 0}));
    EXPECT_EQ(r.rows.at(kStart + kHour), (std::vector<std::uint64_t>{0, 10}));
    EXPECT_EQ(r.totals, (std::vector<std::uint64_t>{30, 10}));
    EXPECT_EQ(r.total, 40u);
    EXPECT_EQ(r.skipped, 1u);
    EXPECT_DOUBLE_EQ(r.skew, 3.0);
    auto table = r.table();
    EXPECT_NE(table.find("skew (max/min share): 3.00  IMBALANCED"), std::string::npos) << table;
    EXPECT_NE(table.find("75.0%"), std::string::npos) << table;
}

TEST(TrafficReport, WiderIntervalsMergeRowsAndBalancedIsNotFlagged) {
    auto lines = traffic();
    for (int i = 0; i < 20; ++i) {
        core::ReportInput in = lines.front();
        in.backend = "hub2";
        lines.push_back(in);
    }
    auto r = core::build_report(lines, core::ReportBy::Backend, 24h);
    EXPECT_EQ(r.rows.size(), 1u);
    EXPECT_DOUBLE_EQ(r.skew, 1.0);
    EXPECT_EQ(r.table().find("IMBALANCED"), std::string::npos);
}

TEST(TrafficReport, SvgHasALinePerKeyAndEscapesNames) {
    auto lines = traffic();
    lines[0].backend = "<hub&1>";
    auto svg = core::build_report(lines, core::ReportBy::Backend, 1h).svg();
    EXPECT_EQ(svg.rfind("<svg", 0), 0u);
    std::size_t polylines = 0;
    for (auto p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1))
        ++polylines;
    EXPECT_EQ(polylines, 3u);
    EXPECT_NE(svg.find("&lt;hub&amp;1&gt;"), std::string::npos);
    EXPECT_EQ(svg.find("<hub&1>"), std::string::npos);
}

TEST(TrafficReport, HeaderIsAsWideAsTheRows) {
    auto table = core::build_report(traffic(), core::ReportBy::Backend, 1h).table();
    std::vector<std::string> lines;
    for (std::size_t at = 0, next; (next = table.find('\n', at)) != std::string::npos;
         at = next + 1)
        lines.push_back(table.substr(at, next - at));
    ASSERT_GE(lines.size(), 5u) << table;
    // Header, two intervals, the total line: the same width, the columns'
    // right edges in the same places.
    for (std::size_t i = 1; i <= 3; ++i)
        EXPECT_EQ(lines[i].size(), lines[0].size()) << table;
    EXPECT_EQ(lines[0].find(" hub1 ") + 5, lines[1].find(" 30 ") + 3) << table;
}

TEST(TrafficReport, OneIntervalDrawsABarPerKeyWithItsValue) {
    auto lines = traffic();
    lines.resize(30);  // hub1's 30 messages, all in the first hour
    for (int i = 0; i < 12; ++i) {
        core::ReportInput in = lines.front();
        in.backend = "hub2";
        lines.push_back(in);
    }
    auto r = core::build_report(lines, core::ReportBy::Backend, 1h);
    ASSERT_EQ(r.rows.size(), 1u);
    auto svg = r.svg();
    auto count = [&](const std::string& what) {
        std::size_t n = 0;
        for (auto p = svg.find(what); p != std::string::npos; p = svg.find(what, p + 1))
            ++n;
        return n;
    };
    // Every <rect x=...> is a bar or a legend square (12x12); the background has no x.
    const auto rects = count("<rect x=");
    const auto legend = count("width=\"12\" height=\"12\"");
    EXPECT_EQ(legend, 2u) << svg;
    EXPECT_EQ(rects - legend, 2u) << svg;
    EXPECT_NE(svg.find(">30</text>"), std::string::npos) << svg;
    EXPECT_NE(svg.find(">12</text>"), std::string::npos) << svg;
    EXPECT_EQ(svg.find("<polyline"), std::string::npos) << svg;
}
