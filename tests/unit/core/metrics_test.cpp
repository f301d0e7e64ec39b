#include <gtest/gtest.h>

#include "core/metrics.hpp"

using namespace smtplb;

TEST(PrometheusText, FamiliesSamplesAndEscapedLabels) {
    core::PrometheusText m;
    m.family("x_total", "counter", "Things.");
    m.sample("x_total", {{"name", "a\"b\\c\nd"}}, 3);
    m.sample("x_ratio", {}, 0.25);
    EXPECT_EQ(m.text(),
              "# HELP x_total Things.\n# TYPE x_total counter\n"
              "x_total{name=\"a\\\"b\\\\c\\nd\"} 3\nx_ratio 0.25\n");
}

TEST(Histogram, BucketsAreCumulativeInTheExposition) {
    core::Histogram h;
    h.observe(0.004);
    h.observe(0.2);
    h.observe(0.2);
    h.observe(100);  // past the last bound: only +Inf
    core::PrometheusText m;
    m.histogram("t_seconds", {{"b", "x"}}, h);
    const auto& text = m.text();
    EXPECT_NE(text.find("t_seconds_bucket{b=\"x\",le=\"0.005\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("t_seconds_bucket{b=\"x\",le=\"0.1\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("t_seconds_bucket{b=\"x\",le=\"0.25\"} 3\n"), std::string::npos);
    EXPECT_NE(text.find("t_seconds_bucket{b=\"x\",le=\"60\"} 3\n"), std::string::npos);
    EXPECT_NE(text.find("t_seconds_bucket{b=\"x\",le=\"+Inf\"} 4\n"), std::string::npos);
    EXPECT_NE(text.find("t_seconds_count{b=\"x\"} 4\n"), std::string::npos);
    EXPECT_NE(text.find("t_seconds_sum{b=\"x\"} 100.404\n"), std::string::npos);
}

TEST(ListenerCounters, ResultsAndBytes) {
    core::ListenerCounters c;
    c.count_result("relayed", 100);
    c.count_result("rejected", 50);
    c.count_result("aborted", 10);
    c.count_result("tempfailed", 10);
    EXPECT_EQ(c.relayed, 1u);
    EXPECT_EQ(c.rejected, 1u);
    EXPECT_EQ(c.aborted, 1u);
    EXPECT_EQ(c.tempfailed, 1u);
    EXPECT_EQ(c.message_bytes, 100u);
}
