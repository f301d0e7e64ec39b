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
